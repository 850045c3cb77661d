"""Make ``sample_data/micronuclei2d*.tif`` from the test data that ships with mnfinder.

mnfinder 1.2.3 (PyPI, MIT licence, Copyright 2023 Lucian DiPeso) bundles
hand-painted masks of nuclei and micronuclei next to its images. We take the
U2OS test image ``test-data/2022-10-14_U2OS/images/4.tif`` (768 x 869 uint16,
H2B-emiRFP703, 20x widefield) and its two masks:

* ``micronuclei2d.tif``: the image, pixel values unchanged (zlib-compressed TIFF);
* ``micronuclei2d_truth.tif``: uint8, 1 = background, 2 = nucleus
  (``nucleus_masks/4.png`` channel 0 > 0), 3 = micronucleus
  (``mn_masks/4.png`` channel 0 > 0; wins where both are set).

``import mnfinder`` loads TensorFlow, so the package folder is found without
importing it. Install the data without its dependencies::

    pip install --no-deps mnfinder==1.2.3
    python scripts/make_micronuclei_sample.py          # write the files
    python scripts/make_micronuclei_sample.py --check  # compare with the committed files
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
SOURCE = Path("test-data") / "2022-10-14_U2OS"


def mnfinder_dir() -> Path:
    spec = importlib.util.find_spec("mnfinder")
    if spec is None or spec.origin is None:
        sys.exit("mnfinder is not installed: pip install --no-deps mnfinder==1.2.3")
    return Path(spec.origin).parent


def make(src: Path) -> tuple[np.ndarray, np.ndarray]:
    image = tifffile.imread(src / "images" / "4.tif")
    nucleus = np.asarray(Image.open(src / "nucleus_masks" / "4.png"))[..., 0] > 0
    micro = np.asarray(Image.open(src / "mn_masks" / "4.png"))[..., 0] > 0
    truth = np.ones(image.shape, np.uint8)
    truth[nucleus] = 2
    truth[micro] = 3
    return image, truth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = ap.parse_args()
    image, truth = make(mnfinder_dir() / SOURCE)
    files = {"micronuclei2d.tif": image, "micronuclei2d_truth.tif": truth}
    if args.check:
        same = all(np.array_equal(tifffile.imread(SAMPLE / n), a) for n, a in files.items())
        print("identical" if same else "DIFFERENT")
        return 0 if same else 1
    for name, arr in files.items():
        tifffile.imwrite(SAMPLE / name, arr, compression="zlib")
        print(f"wrote {SAMPLE / name}: {arr.shape} {arr.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
