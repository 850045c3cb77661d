"""Whole-image prediction: scikit-learn predict_proba vs our Forest evaluator.

Run: ``python benchmarks/bench_predict.py [--repeat 2] [--size 2048]``

Same forest (RandomForestClassifier, 100 trees, max_depth 10, trained on
sparse pixels of the tiled camera photo with 3 classes), same features (our 20
default 2-D features of all size x size pixels), same run. Asserts identical
class decisions (argmax) and reports the largest probability difference.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args(argv)

    from skimage.data import camera
    from sklearn.ensemble import RandomForestClassifier

    from active_annotator.features import FeatureSet, compute
    from active_annotator.forest import Forest

    reps = -(-a.size // 512)
    img = np.tile(camera().astype(np.float32), (reps, reps))[: a.size, : a.size]
    feats = compute(img, FeatureSet.default(ndim=2))
    n_feat = feats.shape[0]
    xt = feats.reshape(n_feat, -1)
    # classes: dark / mid / bright after smoothing, labelled on 2% of pixels
    rng = np.random.default_rng(0)
    g = feats[2].reshape(-1)
    y_all = np.digitize(g, np.quantile(g, [0.33, 0.66])) + 1
    train = rng.choice(xt.shape[1], size=xt.shape[1] // 50, replace=False)
    rf = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0,
                                n_jobs=a.threads).fit(xt[:, train].T, y_all[train])
    forest = Forest.from_sklearn(rf).validate()
    x = np.ascontiguousarray(xt.T)  # sklearn wants (n_samples, n_features)

    def best(fn):
        fn_out = fn()
        walls, cpus = [], []
        for _ in range(a.repeat):
            t, c = time.perf_counter(), time.process_time()
            fn_out = fn()
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        return min(walls), min(cpus), fn_out

    forest.predict_proba(xt[:, :1000])  # compile
    forest.predict_index(xt[:, :1000])
    w_sk, c_sk, p_sk = best(lambda: rf.predict_proba(x))
    w_ours, c_ours, p_ours = best(lambda: forest.predict_proba(xt, threads=a.threads))
    w_idx, c_idx, i_ours = best(lambda: forest.predict_index(xt, threads=a.threads))
    same = np.array_equal(np.argmax(p_sk, 1), np.argmax(p_ours, 1))
    same_idx = np.array_equal(np.argmax(p_sk, 1), i_ours)
    diff = float(np.abs(p_sk - p_ours).max())
    n = xt.shape[1]
    print(f"\n{n} pixels x {n_feat} features, 100 trees depth 10, {rf.n_classes_} classes, "
          f"{a.threads} threads, best of {a.repeat}")
    print("| evaluator | output | wall (s) | CPU (s) | Mpixel/s (wall) | faster (wall) | faster (CPU) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print(f"| scikit-learn predict_proba | probabilities | {w_sk:.3f} | {c_sk:.3f} | {n / w_sk / 1e6:.2f} | 1.00x | 1.00x |")
    print(f"| Forest.predict_proba | probabilities | {w_ours:.3f} | {c_ours:.3f} | {n / w_ours / 1e6:.2f} "
          f"| {w_sk / w_ours:.2f}x | {c_sk / c_ours:.2f}x |")
    print(f"| Forest.predict_index | class decisions | {w_idx:.3f} | {c_idx:.3f} | {n / w_idx / 1e6:.2f} "
          f"| {w_sk / w_idx:.2f}x | {c_sk / c_idx:.2f}x |")
    print(f"identical argmax: proba {same}, index {same_idx}; max |proba difference|: {diff:.2e}")
    assert same_idx, "class decisions differ from scikit-learn"
    assert same, "class decisions differ from scikit-learn"


if __name__ == "__main__":
    main()
