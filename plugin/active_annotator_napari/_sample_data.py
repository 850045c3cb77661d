"""Sample-data commands: bundled images as napari LayerData tuples.

The arrays come from :mod:`active_annotator.data` (files in ``sample_data/``);
here they only get layer names and display settings.
"""

import numpy as np

from active_annotator import data

CLASS_NAMES = {1: "background", 2: "nucleus"}
MICRONUCLEI_CLASS_NAMES = {1: "background", 2: "nucleus", 3: "micronucleus"}


def _annotations(labels, scale=None, names=CLASS_NAMES):
    meta = {"name": "annotations", "metadata": {"class_names": dict(names)}, "opacity": 0.8}
    if scale is not None:
        meta["scale"] = scale
    return (labels, meta, "labels")


def _truth(truth, scale=None, names=CLASS_NAMES):
    meta = {"name": "ground truth", "visible": False,
            "metadata": {"class_names": dict(names)}}
    if scale is not None:
        meta["scale"] = scale
    return (truth, meta, "labels")


def nuclei2d():
    """Fluorescence nuclei (512x512) with starter strokes and a ground-truth mask."""
    d = data.nuclei2d()
    return [
        (d["image"], {"name": "nuclei", "colormap": "gray"}, "image"),
        _annotations(d["labels"]),
        _truth(d["truth"]),
    ]


def nuclei3d():
    """Synthetic nuclei volume (31, 61, 57) with sparse starter labels and ground truth.

    The starter "annotations" are the ground truth read at a sparse grid
    (see :func:`active_annotator.data.nuclei3d`). Press Train for a 3-D prediction.
    """
    d = data.nuclei3d()
    return [
        (d["image"], {"name": "nuclei 3D", "colormap": "gray"}, "image"),
        _annotations(d["labels"]),
        _truth(d["truth"]),
    ]


def micronuclei2d():
    """U2OS nuclei with micronuclei (768x869), an empty annotations layer and the ground truth.

    Classes: 1 background, 2 nucleus, 3 micronucleus (small and rare: let the
    Suggestions tab find them).
    """
    d = data.micronuclei2d()
    return [
        (d["image"], {"name": "micronuclei", "colormap": "gray",
                      "contrast_limits": [float(np.percentile(d["image"], 0.5)),
                                          float(np.percentile(d["image"], 99.8))]}, "image"),
        _annotations(np.zeros(d["truth"].shape, np.uint8), names=MICRONUCLEI_CLASS_NAMES),
        _truth(d["truth"], names=MICRONUCLEI_CLASS_NAMES),
    ]
