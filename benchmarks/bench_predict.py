"""Whole-image prediction: scikit-learn ``predict_proba`` vs the Forest evaluator.

Run: ``python benchmarks/bench_predict.py [--size 1024] [--repeat 5] [--threads N] [--out f.json]``

Two forests, both 100 trees with the tool's defaults (unlimited depth,
``max_features="sqrt"``), on the tool's 20 default 2-D features:

* realistic: the micronuclei sample (real widefield image, hand-painted
  3-class truth) tiled to ``size`` x ``size``, trained on the truth at 20,000
  random pixels, boundaries included (hard labels, deep trees);
* easy: the tiled camera photo with classes = terciles of one smoothed
  feature (nearly separable, shallow trees): the old benchmark's case.

scikit-learn gets ``n_jobs = --threads`` and the Forest the same thread
count. Probabilities are checked within 1e-6 and class decisions
(``predict_index``) for equality with scikit-learn's argmax; the run fails
if they differ. With ``--device cuda`` (torch) a CUDA row is added.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import header, measure, row, strip, write_json  # noqa: E402


def _tile(a, size):
    reps = [-(-size // n) for n in a.shape]
    return np.ascontiguousarray(np.tile(a, reps)[:size, :size])


def cases(size: int, threads: int):
    from skimage.data import camera
    from sklearn.ensemble import RandomForestClassifier

    from active_annotator import data
    from active_annotator.features import FeatureSet, compute

    rng = np.random.default_rng(0)
    d = data.micronuclei2d()
    img = _tile(d["image"].astype(np.float32), size)
    truth = _tile(d["truth"], size).reshape(-1)
    xt = compute(img, FeatureSet.default(ndim=2)).reshape(20, -1)
    train = rng.choice(xt.shape[1], 20000, replace=False)
    rf = RandomForestClassifier(100, random_state=0, n_jobs=threads).fit(xt[:, train].T, truth[train])
    yield "realistic (micronuclei, truth labels)", rf, xt

    img = _tile(camera().astype(np.float32), size)
    xt = compute(img, FeatureSet.default(ndim=2)).reshape(20, -1)
    g = xt[2]
    y = np.digitize(g, np.quantile(g, [0.33, 0.66])) + 1
    train = rng.choice(xt.shape[1], xt.shape[1] // 50, replace=False)
    rf = RandomForestClassifier(100, random_state=0, n_jobs=threads).fit(xt[:, train].T, y[train])
    yield "easy (camera, terciles of one feature)", rf, xt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", default=None, help="also time the torch evaluator on this device (cuda)")
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    a = p.parse_args(argv)

    from active_annotator.forest import Forest

    results = []
    print(header(f"prediction of {a.size}x{a.size} pixels x 20 features, 100 trees", a.threads, a.repeat))
    print("\n| case | evaluator | output | wall median (s) | spread (s) | CPU (s) | Mpx/s | vs sklearn |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for name, rf, xt in cases(a.size, a.threads):
        forest = Forest.from_sklearn(rf).validate()
        x = np.ascontiguousarray(xt.T)
        depth = np.mean([e.tree_.max_depth for e in rf.estimators_])
        runs = {"scikit-learn predict_proba": (measure(lambda: rf.predict_proba(x), a.repeat), "probabilities"),
                "Forest.predict_proba": (measure(lambda: forest.predict_proba(xt, threads=a.threads), a.repeat),
                                         "probabilities"),
                "Forest.predict_index": (measure(lambda: forest.predict_index(xt, threads=a.threads), a.repeat),
                                         "class decisions")}
        if a.device:
            runs[f"Forest.predict_proba ({a.device})"] = (
                measure(lambda: forest.predict_proba(xt, device=a.device), a.repeat), "probabilities")
        ref = runs["scikit-learn predict_proba"][0]["output"]
        sk = runs["scikit-learn predict_proba"][0]["wall_median"]
        checks = {}
        for ev, (res, kind) in runs.items():
            outp = res["output"]
            if kind == "probabilities":
                diff = float(np.abs(outp - ref).max())
                same = bool(np.array_equal(outp.argmax(1), ref.argmax(1)))
                checks[ev] = {"max_abs_diff": diff, "argmax_identical": same}
                assert diff <= 1e-6 and same, f"{ev} differs from scikit-learn: {diff}, argmax {same}"
            else:
                same = bool(np.array_equal(outp, ref.argmax(1)))
                checks[ev] = {"identical_to_sklearn_argmax": same}
                assert same, f"{ev}: class decisions differ from scikit-learn"
            n = xt.shape[1]
            print(f"| {name} | {ev} | {kind} | {row(res)} | {n / res['wall_median'] / 1e6:.2f} "
                  f"| {sk / res['wall_median']:.2f}x |")
            results.append({"case": name, "evaluator": ev, "output": kind, "pixels": n,
                            "mean_max_depth": float(depth), **strip(res), **checks[ev],
                            "speedup_vs_sklearn": sk / res["wall_median"]})
        print(f"|   | ({name}: mean max tree depth {depth:.1f}; checks {checks}) | | | | | | |")
    write_json(a.out, {"benchmark": "bench_predict", "size": a.size, "threads": a.threads,
                       "repeat": a.repeat, "results": results})


if __name__ == "__main__":
    main()
