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
        ts = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            fn_out = fn()
            ts.append(time.perf_counter() - t)
        return min(ts), fn_out

    forest.predict_proba(xt[:, :1000])  # compile
    t_sk, p_sk = best(lambda: rf.predict_proba(x))
    t_ours, p_ours = best(lambda: forest.predict_proba(xt))
    same = np.array_equal(np.argmax(p_sk, 1), np.argmax(p_ours, 1))
    diff = float(np.abs(p_sk - p_ours).max())
    n = xt.shape[1]
    print(f"\n{n} pixels x {n_feat} features, 100 trees depth 10, {rf.n_classes_} classes, "
          f"{a.threads} threads, best of {a.repeat}")
    print("| evaluator | time (s) | Mpixel/s | ours faster by |")
    print("|---|---:|---:|---:|")
    print(f"| scikit-learn predict_proba | {t_sk:.3f} | {n / t_sk / 1e6:.2f} | |")
    print(f"| active_annotator Forest | {t_ours:.3f} | {n / t_ours / 1e6:.2f} | {t_sk / t_ours:.2f}x |")
    print(f"identical argmax: {same}; max |proba difference|: {diff:.2e}")
    assert same, "class decisions differ from scikit-learn"


if __name__ == "__main__":
    main()
