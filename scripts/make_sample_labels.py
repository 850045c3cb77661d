"""Make the starter strokes ``sample_data/nuclei2d_labels.tif`` from the mask.

The strokes imitate what a person paints first: four short lines across
nuclei (class 2) and four in the background (class 1), three pixels wide.

* Nuclei: four objects of ``nuclei2d_objects.tif`` picked at random; a
  horizontal stroke through each centroid (rows ``r-1..r+1``), spanning the
  centroid row's extent less 3 px at each end, and kept 3 px inside the
  nucleus (binary erosion) on the rows above and below.
* Background: random centres ``(y, x)`` with ``10 <= y < 500`` and
  ``20 <= x < 510``; a 3 x 20 stroke (rows ``y-1..y+1``, columns
  ``x-10..x+9``) is kept when all of it lies at least 8 px from any nucleus
  of the ground truth, until four are kept.

Both use ``numpy.random.default_rng(0)``, objects first. The ground truth
``nuclei2d_truth.tif`` is ``mask > 0 -> 2, else 1``.

Run from the repository root; ``--check`` compares with the committed file
instead of writing it::

    python scripts/make_sample_labels.py --check
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
N_STROKES = 4
MARGIN = 3  # nucleus strokes stop this far inside the nucleus
BACKGROUND_DISTANCE = 8.0  # background strokes stay this far from nuclei


def starter_labels(objects: np.ndarray, truth: np.ndarray, seed: int = 0) -> np.ndarray:
    """Strokes of class 1 (background) and 2 (nucleus), 0 elsewhere; uint8."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(objects.shape, np.uint8)

    ids = np.unique(objects)[1:]
    for oid in rng.choice(ids, N_STROKES, replace=False):
        mask = objects == oid
        r = int(round(ndi.center_of_mass(mask)[0]))
        cols = np.flatnonzero(mask[r])
        band = np.zeros_like(mask)
        band[r - 1:r + 2, cols.min() + MARGIN:cols.max() - MARGIN + 1] = True
        # never closer than MARGIN to the nucleus edge, also on the rows above and below
        labels[band & ndi.binary_erosion(mask, iterations=MARGIN)] = 2

    distance = ndi.distance_transform_edt(truth == 1)
    kept = 0
    while kept < N_STROKES:
        y, x = int(rng.integers(10, 500)), int(rng.integers(20, 510))
        stroke = (slice(y - 1, y + 2), slice(x - 10, x + 10))
        if distance[stroke].min() >= BACKGROUND_DISTANCE and not labels[stroke].any():
            labels[stroke] = 1
            kept += 1
    return labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed file instead of writing it")
    args = parser.parse_args(argv)
    objects = tifffile.imread(SAMPLE / "nuclei2d_objects.tif")
    truth = tifffile.imread(SAMPLE / "nuclei2d_truth.tif")
    labels = starter_labels(objects, truth)
    target = SAMPLE / "nuclei2d_labels.tif"
    if args.check:
        same = np.array_equal(tifffile.imread(target), labels)
        print(f"{target.name}: {'identical' if same else 'DIFFERENT'} "
              f"({np.count_nonzero(labels == 1)} background, {np.count_nonzero(labels == 2)} "
              "nucleus pixels)")
        return 0 if same else 1
    tifffile.imwrite(target, labels, compression="zlib")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
