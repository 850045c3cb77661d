"""Benchmark: fine-tuned CNN versus the random forest from the same labels.

On the bundled nuclei image (512x512), with two label sets:

* ``starter``: the starter strokes shipped with the sample (435 pixels);
* ``more``: strokes sampled from the ground truth (seeded): a line through
  the middle of some nuclei and short lines in the background.

For each: the forest (PixelClassifier, 100 trees), the CNN from the labels
alone, and the CNN warm-started by distilling the forest's probabilities.
Prints a table of nucleus Jaccard against the dense truth and wall times, and
writes the loss curves to ``docs/images/cnn_loss.png``.

    python benchmarks/bench_cnn.py [--threads 2] [--png docs/images/cnn_loss.png]

Times are wall-clock on whatever machine runs it; torch is limited to
``--threads`` CPU threads and the forest to as many jobs.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from active_annotator import FeatureSet, PixelClassifier
from active_annotator.cnn import CNNClassifier, CNNConfig
from active_annotator.data import nuclei2d

NUCLEUS, BACKGROUND = 2, 1


def jaccard(pred, truth, value=NUCLEUS) -> float:
    a, b = pred == value, truth == value
    return float((a & b).sum() / max((a | b).sum(), 1))


def sampled_strokes(truth, objects, n_nuclei=40, n_background=40, seed=0) -> np.ndarray:
    """Stroke labels drawn from the truth: a line across the core of ``n_nuclei``
    nuclei and ``n_background`` short lines well inside the background."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(truth.shape, np.uint8)
    ids = [i for i in np.unique(objects) if i]
    for i in rng.choice(ids, size=min(n_nuclei, len(ids)), replace=False):
        core = ndi.binary_erosion(objects == i, iterations=2)
        if not core.any():
            continue
        r = int(round(np.argwhere(core)[:, 0].mean()))
        cols = np.flatnonzero(core[r])
        labels[r, cols] = NUCLEUS
    far = ndi.distance_transform_edt(truth == BACKGROUND) > 5
    pts = np.argwhere(far)
    for r, c in pts[rng.choice(len(pts), size=n_background, replace=False)]:
        seg = far[r, c:c + 15]
        n = int(np.argmin(seg)) if not seg.all() else seg.size
        labels[r, c:c + n] = BACKGROUND
    return labels


def run(threads: int, png: Path | None, epochs: int, warm_epochs: int) -> list[dict]:
    d = nuclei2d()
    image, truth = d["image"], d["truth"]
    label_sets = {
        "starter": d["labels"],
        "more": sampled_strokes(truth, d["objects"]),
    }
    rows, curves = [], {}
    cfg = CNNConfig(epochs=epochs, warm_start_epochs=warm_epochs)
    for name, labels in label_sets.items():
        n_px = int((labels > 0).sum())
        t = time.perf_counter()
        rf = PixelClassifier(FeatureSet.default(ndim=2), n_estimators=100, n_jobs=threads).fit(image, labels)
        rf_proba = rf.predict_proba(image)
        t_rf = time.perf_counter() - t
        rows.append(dict(labels=name, pixels=n_px, model="random forest", jaccard=jaccard(
            rf.classes_[rf_proba.argmax(0)], truth), fit_s=t_rf, note="fit + predict"))
        print(_row(rows[-1]), flush=True)
        for warm in (False, True):
            clf = CNNClassifier.from_config(cfg, device="auto", n_threads=threads)
            clf.fit(image, labels, warm_start_proba=rf_proba if warm else None,
                    warm_start_classes=rf.classes_ if warm else None)
            t = time.perf_counter()
            pred = clf.predict(image)
            t_pred = time.perf_counter() - t
            model = "CNN + RF warm start" if warm else "CNN"
            rows.append(dict(labels=name, pixels=n_px, model=model, jaccard=jaccard(pred, truth),
                             fit_s=clf.fit_time_s_ + (t_rf if warm else 0.0),
                             note=f"fit {clf.fit_time_s_:.1f} s, best epoch {clf.best_epoch_}, "
                                  f"predict {t_pred:.1f} s, {clf.device_}"))
            curves[f"{name}: {model}"] = clf.history_
            print(_row(rows[-1]), flush=True)
    if png is not None:
        _plot(curves, png)
    return rows


def _row(r: dict) -> str:
    return (f"| {r['labels']:<8} | {r['pixels']:>6} | {r['model']:<20} | {r['jaccard']:.3f} | "
            f"{r['fit_s']:7.1f} | {r['note']} |")


def _plot(curves: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.2), sharey=True)
    for ax, (title, h) in zip(np.atleast_1d(axes), curves.items()):
        x = np.arange(1, len(h["train_loss"]) + 1)
        warm = [p == "warm_start" for p in h["phase"]]
        ax.plot(x, h["train_loss"], label="training", color="C0")
        val = [np.nan if v is None else v for v in h["val_loss"]]
        if not np.all(np.isnan(val)):
            ax.plot(x, val, label="validation (held-out strokes)", color="C1")
        if any(warm):
            ax.axvspan(0.5, sum(warm) + 0.5, color="0.9", label="RF distillation")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
    np.atleast_1d(axes)[0].set_ylabel("cross-entropy")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=CNNConfig().epochs)
    ap.add_argument("--warm-start-epochs", type=int, default=CNNConfig().warm_start_epochs)
    ap.add_argument("--png", type=Path, default=Path("docs/images/cnn_loss.png"))
    args = ap.parse_args()
    import torch

    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), CNNConfig defaults (epochs {args.epochs}, "
          f"warm start {args.warm_start_epochs})")
    print("| labels   | pixels | model                | nucleus Jaccard | time (s) | notes |")
    print("|---|---|---|---|---|---|")
    run(args.threads, args.png, args.epochs, args.warm_start_epochs)


if __name__ == "__main__":
    main()
