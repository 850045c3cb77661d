"""Bundled sample data (see ``sample_data/README.md`` for sources and licences).

Each loader returns plain numpy arrays, so scripts, tests and the napari
plugin share them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np


def sample_dir() -> Path:
    """Folder holding the bundled sample files (inside the installed package)."""
    here = resources.files("active_annotator") / "sample_data"
    return Path(str(here))


def _read(name: str) -> np.ndarray:
    import tifffile

    path = sample_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"Sample file {name} is missing from {sample_dir()}; reinstall napari-active-annotator."
        )
    return tifffile.imread(path)


def nuclei2d() -> dict[str, np.ndarray]:
    """Fluorescence nuclei, 512x512 uint16, with starter labels and ground truth.

    Returns a dict with ``image`` (uint16), ``labels`` (uint8 starter strokes:
    1 = background, 2 = nucleus), ``truth`` (uint8 dense mask, same classes)
    and ``objects`` (uint16 instance labels of the annotated nuclei).
    """
    return {
        "image": _read("nuclei2d.tif"),
        "labels": _read("nuclei2d_labels.tif"),
        "truth": _read("nuclei2d_truth.tif"),
        "objects": _read("nuclei2d_objects.tif"),
    }


def micronuclei2d() -> dict[str, np.ndarray]:
    """Widefield nuclei with micronuclei, 768x869 uint16, with hand-painted ground truth.

    U2OS cells (H2B-emiRFP703, 20x) from the test data of mnfinder 1.2.3
    (MIT licence; see sample_data/README.md). Micronuclei are small and rare
    (0.9 % of the pixels): the case where a person cannot find what to label
    by looking around.

    Returns ``image`` (uint16) and ``truth`` (uint8: 1 = background,
    2 = nucleus, 3 = micronucleus).
    """
    return {"image": _read("micronuclei2d.tif"), "truth": _read("micronuclei2d_truth.tif")}


SAMPLES = ("nuclei2d", "micronuclei2d", "nuclei3d")


def load(name: str) -> dict[str, np.ndarray]:
    """One of the image samples by name (:data:`SAMPLES`)."""
    from .errors import InputError

    loaders = {"nuclei2d": nuclei2d, "micronuclei2d": micronuclei2d, "nuclei3d": nuclei3d}
    if name not in loaders:
        raise InputError(f"Unknown sample {name!r}; choose from {list(loaders)}.")
    return loaders[name]()


def nuclei3d() -> dict[str, np.ndarray]:
    """Synthetic nuclei volume (31, 61, 57) uint16 with its dense ground truth.

    StarDist ships this volume as *synthetic* nuclei (see sample_data/README.md);
    it serves to try 3-D features, not as evidence on real data.

    Returns ``image``, ``truth`` (1 = background, 2 = nucleus) and ``labels``:
    starter clicks read from the truth on a sparse grid (every 5th voxel along
    y and x on every 5th plane, about 0.9 % of the volume), since the source
    has no hand-drawn strokes.
    """
    image, truth = _read("nuclei3d.tif"), _read("nuclei3d_truth.tif")
    labels = np.zeros(truth.shape, np.uint8)
    grid = (slice(3, None, 5), slice(None, None, 5), slice(None, None, 5))
    labels[grid] = truth[grid]
    return {"image": image, "truth": truth, "labels": labels}


def seismogram():
    """A real 3-component seismogram (BW.RJOB..EHZ/EHN/EHE, 100 Hz, 30 s, a local earthquake).

    Returns a :class:`active_annotator.signals.SignalRecord` (``data`` float32
    ``(3, 3000)``, sampling rate, start time, channel ids). Reading miniSEED
    needs ObsPy: ``pip install "napari-active-annotator[signals]"``.
    """
    from .signals import read_signal

    path = sample_dir() / "seismogram_BW_RJOB.mseed"
    if not path.is_file():
        raise FileNotFoundError(
            f"Sample file {path.name} is missing from {sample_dir()}; reinstall napari-active-annotator."
        )
    return read_signal(path)
