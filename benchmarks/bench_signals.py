"""Signals: train and predict a one-day, 3-channel, 100 Hz record; ours vs scipy + scikit-learn.

Run: ``python benchmarks/bench_signals.py [--hours 24] [--trees 50] [--jobs N] [--out table.md]``

One synthetic day (8.64 million samples per channel, Z/N/E): coloured
background noise with 150 local-earthquake-like events (an impulsive onset, a
carrier of 2-12 Hz under an exponentially decaying envelope, 15-60 s long, 3-30
times the noise). 10 events (their first 20 s) are labelled "earthquake" (2)
and 10 quiet 20 s spans "noise" (1): 40,000 labelled samples. Every sample is
then classified.

Both pipelines use the same features (Gaussian, DoG, LoG and second
derivative at sigmas 0.05, 0.2, 0.8 and 3.2 s per channel, 48 features) and
the same forest settings:

* **ours**: :class:`active_annotator.signals.SignalClassifier` (features in
  tiles of 262,144 samples, FFT filtering for the long scales, the
  compiled array forest for prediction);
* **baseline**: what a scipy + scikit-learn user writes: ``gaussian_filter1d``
  (orders 0 and 2) over the whole record, ``RandomForestClassifier.fit`` on
  the labelled rows, ``predict_proba`` in chunks of 1,000,000 rows.

Reported: wall seconds of each stage (one run each; the machine may be
shared, so the command line prints the load average too) and the accuracy of
both predictions against the synthetic truth, as a check that they agree.
A third row times ours with the seismic families (envelope, STA/LTA 1 s/10 s).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import ndimage as ndi

SIGMAS_S = (0.05, 0.2, 0.8, 3.2)


def synthetic_day(hours: float = 24.0, sr: float = 100.0, n_events: int = 150, seed: int = 0):
    """``(data (3, n) float32, truth (n,) uint8, events [(start, stop)])``."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 * sr)
    # coloured noise: white noise through a gentle low-pass, per channel
    data = rng.standard_normal((3, n), dtype=np.float32)
    data = ndi.uniform_filter1d(data, 5, axis=1)
    truth = np.ones(n, np.uint8)
    events = []
    n_events = max(1, int(n_events * hours / 24.0))
    starts = np.sort(rng.choice(np.arange(int(60 * sr), n - int(70 * sr), int(70 * sr)), n_events, replace=False))
    for a in starts:
        dur = rng.uniform(15, 60)
        m = int(dur * sr)
        t = np.arange(m) / sr
        env = rng.uniform(3, 30) * np.exp(-t / (dur / 4))
        f = rng.uniform(2, 12)
        for c in range(3):
            data[c, a:a + m] += (env * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
                                 * rng.uniform(0.4, 1.0)).astype(np.float32)
        truth[a:a + m] = 2
        events.append((int(a), int(a + m)))
    return data, truth, events


def make_labels(truth, events, sr, n_each=10, span_s=20.0, seed=1):
    rng = np.random.default_rng(seed)
    labels = np.zeros_like(truth)
    w = int(span_s * sr)
    for a, _ in [events[i] for i in rng.choice(len(events), min(n_each, len(events)), replace=False)]:
        labels[a:a + w] = 2
    placed = 0
    while placed < n_each:
        a = int(rng.integers(0, truth.size - w))
        if (truth[a:a + w] == 1).all() and not labels[a:a + w].any():
            labels[a:a + w] = 1
            placed += 1
    return labels


def baseline_features(data, sigmas) -> np.ndarray:
    """The plain scipy stack, same names and order as ours: per channel original, gaussian, dog, log, hessian."""
    per = 1 + len(sigmas) + (len(sigmas) - 1) + 2 * len(sigmas)
    out = np.empty((per * data.shape[0], data.shape[1]), np.float32)
    k = 0
    for x in data:
        out[k] = x
        k += 1
        g = [ndi.gaussian_filter1d(x, s, mode="reflect") for s in sigmas]
        d2 = [ndi.gaussian_filter1d(x, s, order=2, mode="reflect") for s in sigmas]
        for arr in g:
            out[k] = arr
            k += 1
        for a, b in zip(g[:-1], g[1:]):
            out[k] = a - b
            k += 1
        for arr in d2 + d2:  # log and hessian0 are the same operator in 1-D
            out[k] = arr
            k += 1
    return out


def run_baseline(data, labels, sigmas, trees, jobs):
    from sklearn.ensemble import RandomForestClassifier

    times = {}
    t = time.perf_counter()
    feats = baseline_features(data, sigmas)
    times["features"] = time.perf_counter() - t
    t = time.perf_counter()
    m = labels > 0
    rf = RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=jobs)
    rf.fit(feats[:, m].T, labels[m])
    times["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    proba = np.empty((len(rf.classes_), data.shape[1]), np.float32)
    for a in range(0, data.shape[1], 1_000_000):
        proba[:, a:a + 1_000_000] = rf.predict_proba(feats[:, a:a + 1_000_000].T).T
    times["predict"] = time.perf_counter() - t
    del feats
    return rf.classes_[proba.argmax(0)], times


def run_ours(data, labels, sr, sigmas, trees, jobs, extras: bool):
    from active_annotator.features import FeatureSet
    from active_annotator.signals import SignalClassifier, SignalFeatures

    spec = SignalFeatures(FeatureSet(sigmas=tuple(sigmas), ndim=1), envelope=extras,
                          sta_lta=((1.0, 10.0),) if extras else (), sampling_rate=sr)
    times = {}
    t = time.perf_counter()
    clf = SignalClassifier(spec, n_estimators=trees, n_jobs=jobs).fit(data, labels)
    times["fit"] = time.perf_counter() - t  # features at the labelled tiles + forest
    t = time.perf_counter()
    proba = clf.predict_proba(data)
    times["predict"] = time.perf_counter() - t  # features of every tile + forest
    return clf.classes_[proba.argmax(0)], times, clf.n_features_in_


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--sr", type=float, default=100.0)
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--out", help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    sr = args.sr
    sigmas = [round(s * sr, 1) for s in SIGMAS_S]
    data, truth, events = synthetic_day(args.hours, sr)
    labels = make_labels(truth, events, sr)
    n = data.shape[1]
    print(f"record: 3 x {n:,} samples ({args.hours:g} h at {sr:g} Hz), {len(events)} events, "
          f"{int((labels > 0).sum()):,} labelled samples; trees={args.trees}, jobs={args.jobs}, "
          f"cpus={os.cpu_count()}, load={os.getloadavg()[0]:.1f}")

    # warm-up: compile the numba kernels outside the timings
    w = np.zeros(n, np.uint8)
    w[:2000], w[2000:4000] = 1, 2
    run_ours(data[:, :20000], w[:20000], sr, sigmas, 5, args.jobs, True)

    rows = []
    pred, t_ours, nf = run_ours(data, labels, sr, sigmas, args.trees, args.jobs, extras=False)
    acc_ours = float((pred == truth).mean())
    rows.append(("ours (SignalClassifier)", nf, t_ours["fit"], t_ours["predict"], acc_ours))
    print(f"ours: {t_ours}")
    pred_x, t_x, nf_x = run_ours(data, labels, sr, sigmas, args.trees, args.jobs, extras=True)
    rows.append(("ours + envelope + STA/LTA", nf_x, t_x["fit"], t_x["predict"], float((pred_x == truth).mean())))
    print(f"ours + extras: {t_x}")
    if not args.no_baseline:
        pred_b, t_b = run_baseline(data, labels, sigmas, args.trees, args.jobs)
        # the baseline computes all features once; charge them to predict (as ours does), fit pays for none
        rows.append(("baseline (scipy + scikit-learn)", nf, t_b["fit"], t_b["features"] + t_b["predict"],
                     float((pred_b == truth).mean())))
        print(f"baseline: {t_b}")

    base_total = rows[-1][2] + rows[-1][3] if not args.no_baseline else None
    lines = ["| pipeline | features | train (s) | predict every sample (s) | total (s) | baseline / this | accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, nfeat, fit, pr, acc in rows:
        total = fit + pr
        ratio = f"{base_total / total:.1f}x" if base_total else "-"
        lines.append(f"| {name} | {nfeat} | {fit:.1f} | {pr:.1f} | {total:.1f} | {ratio} | {acc:.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
