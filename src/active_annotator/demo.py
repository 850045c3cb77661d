"""The main job on the bundled sample image, without a display.

:func:`run_headless` trains a pixel classifier on the 2-D nuclei sample's
starter strokes, predicts, and writes ``prediction.tif``,
``probabilities.tif``, ``uncertainty.tif``, the trained model
(``model.aamodel``) and an ``overview.png``, then prints a short summary that
includes the Jaccard index of the nucleus class against the ground truth.

``active-annotator demo --headless`` calls it; ``active-annotator demo``
(no ``--headless``) opens napari instead, from :mod:`active_annotator.cli.demo`
through the plugin. This module imports neither napari, Qt nor the plugin.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

#: Class value of nuclei in the sample's labels and ground truth (1 = background).
NUCLEUS = 2


def run_headless(output: Path, n_estimators: int = 100, max_depth: int | None = None) -> int:
    """Train on the sample's starter labels, predict, write results to ``output``."""
    import tifffile
    from tqdm import tqdm

    from . import data
    from .classifier import PixelClassifier
    from .evaluation import metrics
    from .features import FeatureSet
    from .uncertainty import entropy

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    sample = data.nuclei2d()
    image, labels, truth = sample["image"], sample["labels"], sample["truth"]

    clf = PixelClassifier(FeatureSet.default(ndim=2), n_estimators=n_estimators,
                          max_depth=max_depth, random_state=0)
    with tqdm(total=4, unit="step", leave=False) as bar:
        bar.set_description("training")
        t0 = time.perf_counter()
        clf.fit(image, labels)
        t_fit = time.perf_counter() - t0
        bar.update()

        bar.set_description("predicting")
        t0 = time.perf_counter()
        proba = clf.predict_proba(image)
        t_predict = time.perf_counter() - t0
        bar.update()

        bar.set_description("scoring")
        prediction = clf.classes_[np.argmax(proba, axis=0)].astype(labels.dtype)
        uncertainty = entropy(proba)
        scores = metrics(truth, prediction)
        score = scores.jaccard[NUCLEUS]
        bar.update()

        bar.set_description("writing files")
        tifffile.imwrite(output / "prediction.tif", prediction, compression="zlib")
        tifffile.imwrite(output / "probabilities.tif", proba, compression="zlib")
        tifffile.imwrite(output / "uncertainty.tif", uncertainty, compression="zlib")
        clf.save(output / "model.aamodel")
        _overview(output / "overview.png", image, labels, prediction, uncertainty, score)
        bar.update()

    counts = ", ".join(f"{int(c)}: {int(np.count_nonzero(labels == c))}" for c in clf.classes_)
    print("active-annotator demo (headless) on the nuclei2d sample")
    print(f"  image            {image.shape} {image.dtype}")
    print(f"  classes          {[int(c) for c in clf.classes_]} (1 = background, 2 = nucleus)")
    print(f"  labelled pixels  {int(np.count_nonzero(labels))} of {labels.size} ({counts})")
    print(f"  features         {clf.n_features_in_} ({', '.join(clf.feature_set.families)})")
    print(f"  training         {t_fit:.2f} s ({n_estimators} trees)")
    print(f"  prediction       {t_predict:.2f} s")
    print(f"  mean uncertainty {float(uncertainty.mean()):.3f} (entropy, 0 = certain, 1 = uniform)")
    print(f"  Jaccard          {score:.3f} (nucleus vs ground truth)")
    print(f"  accuracy         {scores.accuracy:.3f} (all pixels vs ground truth)")
    print(f"  wrote            {output}/: prediction.tif, probabilities.tif, uncertainty.tif, "
          "model.aamodel, overview.png")
    return 0


def _overview(path: Path, image, labels, prediction, uncertainty, score: float) -> None:
    """Four panels: image, starter labels, prediction, uncertainty."""
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display needed, whatever the environment says
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    classes = ListedColormap([(0, 0, 0, 0), (0.25, 0.55, 1.0, 1.0), (1.0, 0.35, 0.1, 1.0)])
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6), constrained_layout=True)
    lo, hi = np.percentile(image, (0.5, 99.8))
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
        ax.set_axis_off()
    axes[0].set_title("image (nuclei2d)")
    axes[1].imshow(np.ma.masked_equal(labels, 0), cmap=classes, vmin=0, vmax=2,
                   interpolation="nearest")
    axes[1].set_title(f"starter labels ({int(np.count_nonzero(labels))} px)")
    axes[2].imshow(prediction, cmap=classes, vmin=0, vmax=2, alpha=0.45, interpolation="nearest")
    axes[2].set_title("prediction (orange = nucleus)")
    im = axes[3].imshow(uncertainty, cmap="magma", vmin=0, vmax=1)
    axes[3].set_title("uncertainty (entropy): label here next")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    fig.suptitle(f"active-annotator demo: random forest on starter labels, "
                 f"Jaccard vs ground truth = {score:.3f}")
    fig.savefig(path, dpi=80)
    plt.close(fig)
