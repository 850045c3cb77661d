"""Held-out quality of today's default classifier vs the strongest configuration.

Run (from the repository root; ``PYTHONPATH=src`` so that this checkout's
package is measured, not an installed one): ``PYTHONPATH=src python benchmarks/bench_quality.py [names...] [--trees 50] [--n-jobs 2] [--fraction 1.0]
[--seeds 0,1,2] [--configs default,strong]``

For every dataset of ``benchmarks/datasets.py`` (real images, volumes and
signals with dense ground truth from PyPI packages): the truth of one half
(split at the middle of the longest spatial axis, :func:`datasets.halves`) is
the labels, the macro Jaccard over the classes of interest is scored on the
other half. ``--fraction`` < 1 keeps that share of the labelled half's pixels
(seeded), to keep a run short; the table says which was used.

Configurations (same labels, same forest size and seed):

* ``default``: ``FeatureSet.default(ndim)``, one stage (today's default);
* ``stages=2``: the default features with two autocontext stages;
* ``deep``: the default features plus the ``deep`` family, one stage;
* ``balanced``: as ``strong`` but ``class_weight="balanced"`` always (the
  previous ``strong``);
* ``strong``: the default features (per-slice 2-D ones for a volume whose
  spacing says its slices are thick, :func:`features.thick_slices`), two
  stages, ``class_weight="auto"`` (None or "balanced", whichever scores better
  out of fold at the labels) and ``context_sigmas="auto"`` (the second stage's
  probability smoothing reaches up to the radius of the rarest class's
  labelled regions, at most 4x the largest feature sigma); no deep family;
* ``strongest``: default features + ``deep``, two stages.

Signals: ``default`` is the signal classifier's default features at the
record's sampling rate, ``strong`` :func:`signals.invariant_signal_features`
(amplitude-free STA/LTA ratios, broadband and per band).

Goal (issue 13), checked for ``strong``: strong >= default + 0.15 wherever default < 0.7, and never
below default - 0.01 where default >= 0.7.

``--seeds``: the forests' ``random_state`` values (labels and split are fixed);
every cell is the median over them, the per-seed values are printed as they come.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets  # noqa: E402


def _labels(case, fraction, seed=0):
    truth = case["truth"]
    train, test = datasets.halves(truth.shape, case["spatial_ndim"])
    labels = np.where(train, truth, 0)
    if fraction < 1:
        keep = np.random.default_rng(seed).random(truth.shape) < fraction
        labels = np.where(keep, labels, 0)
    return labels.astype(np.uint16), test


def _image_configs(ndim, spacing=None):
    from active_annotator.features import DEFAULT_FAMILIES, FeatureSet, thick_slices

    base = FeatureSet.default(ndim=ndim)
    # strong: per-slice filters for thick slices, as the Pixel dock chooses from the layer scale
    strong = FeatureSet.default(ndim=2) if ndim == 3 and spacing and thick_slices(spacing) else base
    deep = FeatureSet(families=DEFAULT_FAMILIES + ("deep",), ndim=ndim)
    return {"default": (base, 1, None, {}), "stages=2": (base, 2, None, {}), "deep": (deep, 1, None, {}),
            "strongest": (deep, 2, None, {}), "balanced": (strong, 2, "balanced", {}),
            "strong": (strong, 2, "auto", {"context_sigmas": "auto"})}


def run_case(case, trees, n_jobs, fraction, only=None, seeds=(0,)):
    """``{config: ({class: median Jaccard}, median seconds, [macro per seed])}`` and the labels."""
    runs = [_run_case(case, trees, n_jobs, fraction, only, seed) for seed in seeds]
    labels = runs[0][1]
    rows = {}
    for name in runs[0][0]:
        per = [r[name] for r, _ in runs]
        jac = {c: float(np.median([p[0][c] for p in per])) for c in per[0][0]}
        rows[name] = (jac, float(np.median([p[1] for p in per])),
                      [float(np.nanmean(list(p[0].values()))) for p in per])
    return rows, labels


def _run_case(case, trees, n_jobs, fraction, only, seed):
    labels, test = _labels(case, fraction)
    truth_test = np.where(test, case["truth"], 0)
    rows = {}
    if case["kind"] == "signal":
        from active_annotator.signals import SignalClassifier, SignalRecord

        rec = SignalRecord(case["image"], case["sampling_rate"])
        from active_annotator.signals import invariant_signal_features

        configs = {"default": {}, "strong": {"features": invariant_signal_features(case["sampling_rate"])}}
        for name, kw in configs.items():
            t0 = time.perf_counter()
            clf = SignalClassifier(n_estimators=trees, n_jobs=n_jobs, random_state=seed, **kw).fit(rec, labels)
            pred = clf.predict(rec)
            rows[name] = (datasets.jaccard(truth_test, np.asarray(pred), case["classes_of_interest"]),
                          time.perf_counter() - t0)
        return rows, labels
    from active_annotator.classifier import PixelClassifier

    for name, (fs, stages, cw, kw) in _image_configs(case["spatial_ndim"], case.get("spacing")).items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        clf = PixelClassifier(fs, n_estimators=trees, n_jobs=n_jobs, random_state=seed, stages=stages,
                              class_weight=cw, **kw)
        clf.fit(case["image"], labels, channel_axis=case["channel_axis"])
        pred = clf.predict(case["image"], channel_axis=case["channel_axis"])
        rows[name] = (datasets.jaccard(truth_test, np.asarray(pred), case["classes_of_interest"]),
                      time.perf_counter() - t0)
        chosen = (f", chose class_weight={clf.class_weight_!r}, context sigmas {clf.context_sigmas_}"
                  if cw == "auto" else "")
        print(f"    {case['name']} {name} seed {seed}: {np.nanmean(list(rows[name][0].values())):.3f} "
              f"({rows[name][1]:.0f} s{chosen}) load {os.getloadavg()[0]:.1f}", flush=True)
    return rows, labels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="datasets (default: all)")
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=1.0,
                    help="share of the labelled half's pixels used as labels (default all)")
    ap.add_argument("--configs", default="", help="comma-separated subset, e.g. default,strongest")
    ap.add_argument("--seeds", default="0", help="comma-separated random_state values; cells are medians")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    only = [c for c in args.configs.split(",") if c] or None
    names = args.names or list(datasets.DATASETS)
    print(f"load average before: {os.getloadavg()}")
    table = []
    for name in names:
        try:
            case = datasets.load(name)
        except datasets.DatasetError as e:
            print(f"{name}: not available ({e})")
            continue
        rows, labels = run_case(case, args.trees, args.n_jobs, args.fraction, only, seeds)
        table.append((name, case, rows, int((labels > 0).sum())))
    cols = [c for c in ("default", "stages=2", "deep", "strongest", "balanced", "strong")
            if any(c in r for _, _, r, _ in table)]
    print()
    print(f"Labels: the truth of one half ({args.fraction:g} of its pixels), scored on the other "
          f"half; macro Jaccard over the classes of interest; {args.trees} trees; "
          f"median over seeds {','.join(map(str, seeds))}.")
    print("| dataset | labelled px | " + " | ".join(cols) + " | strong - default | goal met |")
    print("|---|---|" + "---|" * len(cols) + "---|---|")
    for name, case, rows, n_lab in table:
        macro = {c: float(np.median(rows[c][2])) for c in rows}  # median over seeds of the macro
        cells = [f"{macro[c]:.3f} ({rows[c][1]:.0f} s)" if c in macro else "-" for c in cols]
        if "strong" in macro and "default" in macro:
            d = macro["strong"] - macro["default"]
            ok = d >= 0.15 if macro["default"] < 0.7 else d >= -0.01
            tail = f"{d:+.3f} | {'yes' if ok else 'no'}"
        else:
            tail = "- | -"
        print(f"| {name} | {n_lab} | " + " | ".join(cells) + f" | {tail} |")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
