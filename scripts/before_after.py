"""README's before/after picture: the default forest vs the strong configuration on a CT lesion.

Run: ``python scripts/before_after.py [output.png]`` (default
``docs/images/before_after_ct.png``; about a minute on two cores). Needs the
``[bench]`` extra (the data is the ``ct_lung_lesion`` case of
``benchmarks/datasets.py``: pyradiomics 3.1.0's lung CT, BSD-3-Clause, pinned by
sha256). The protocol is ``benchmarks/bench_quality.py``'s: every truth pixel of
the top half is a label, the bottom half is scored; 50 trees, seed 0. The script
also prints the lesion recall on the labelled half, predicted as the annotation
session predicts its own image (``training_image=True``) and as a new image:
the strong model predicted as a new image disagrees with its own dense labels
there (see docs/classifier_strength.md).
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(output=ROOT / "docs" / "images" / "before_after_ct.png") -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import datasets
    from bench_quality import _image_configs, _labels
    from matplotlib.figure import Figure
    from skimage.segmentation import find_boundaries

    from active_annotator import PixelClassifier

    case = datasets.load("ct_lung_lesion")
    image, truth = case["image"], case["truth"]
    labels, test = _labels(case, 1.0)
    shown = {}
    for name in ("default", "strong"):
        fs, stages, cw, kw = _image_configs(2)[name]
        clf = PixelClassifier(fs, n_estimators=50, n_jobs=2, random_state=0, stages=stages, class_weight=cw, **kw)
        clf.fit(image, labels)
        # as the annotation session predicts its own image (training_image: the strong model's
        # second stage gets out-of-fold inputs at the labels, as in training)
        pred = np.asarray(clf.predict(image, training_image=True))
        plain = np.asarray(clf.predict(image))
        jac = datasets.jaccard(np.where(test, truth, 0), pred, case["classes_of_interest"])
        shown[name] = (pred, float(np.nanmean(list(jac.values()))))
        lesion = truth == 2
        recall = {k: float(((p == 2) & lesion & ~test).sum() / (lesion & ~test).sum())
                  for k, p in (("training_image", pred), ("plain", plain))}
        print(f"{name}: lesion Jaccard on the scored (bottom) half {shown[name][1]:.3f}; "
              f"lesion recall on the labelled (top) half {recall['training_image']:.3f} "
              f"(predicted as a new image: {recall['plain']:.3f})")

    lo, hi = np.percentile(image, (1, 99))
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    edge = find_boundaries(truth == 2)
    half = image.shape[0] // 2  # datasets.halves: split along the first (longest) axis
    panels = [("CT slice, lesion outlined; top half labelled", None),
              (f"default forest: bottom-half Jaccard {shown['default'][1]:.2f}", shown["default"][0]),
              (f"strong (2 stages, auto weights/context): {shown['strong'][1]:.2f}", shown["strong"][0])]
    for ax, (title, pred) in zip(axes, panels):
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
        if pred is not None:
            ax.imshow(np.ma.masked_where(pred != 2, pred), cmap="autumn", alpha=0.55, vmin=0, vmax=2)
        ax.imshow(np.ma.masked_where(~edge, edge), cmap="cool", vmin=0, vmax=1)
        ax.axhline(half - 0.5, color="white", lw=0.8, ls="--")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.savefig(output, dpi=100)
    print(f"saved {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(Path(a) for a in sys.argv[1:])))
