"""Sample-data commands: bundled images as napari LayerData tuples.

The arrays come from :mod:`active_annotator.data` (files in ``sample_data/``);
here they only get layer names and display settings.
"""

import numpy as np

from active_annotator import data

CLASS_NAMES = {1: "background", 2: "nucleus"}


def _annotations(labels, scale=None):
    meta = {"name": "annotations", "metadata": {"class_names": dict(CLASS_NAMES)}, "opacity": 0.8}
    if scale is not None:
        meta["scale"] = scale
    return (labels, meta, "labels")


def _truth(truth, scale=None):
    meta = {"name": "ground truth", "visible": False,
            "metadata": {"class_names": dict(CLASS_NAMES)}}
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
    """Fluorescence nuclei volume (31, 61, 57) with an empty annotations layer.

    The source has no hand-drawn strokes for the volume, so the annotations
    layer starts empty: paint background (1) and nuclei (2) on a few slices.
    """
    d = data.nuclei3d()
    image = d["image"]
    return [
        (image, {"name": "nuclei 3D", "colormap": "gray"}, "image"),
        _annotations(np.zeros(image.shape, np.uint8)),
        _truth(d["truth"]),
    ]
