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
    """Fluorescence nuclei volume (31, 61, 57) with sparse starter labels and ground truth.

    The source has no hand-drawn strokes for the volume, so the starter
    "annotations" are the ground truth read at a sparse grid: every 5th voxel
    along y and x on every 5th plane (about 0.9 % of the volume), as if a
    person had clicked that many points. Press Train for a first 3-D prediction.
    """
    d = data.nuclei3d()
    image, truth = d["image"], d["truth"]
    starter = np.zeros(truth.shape, np.uint8)
    grid = (slice(3, None, 5), slice(None, None, 5), slice(None, None, 5))
    starter[grid] = truth[grid]
    return [
        (image, {"name": "nuclei 3D", "colormap": "gray"}, "image"),
        _annotations(starter),
        _truth(truth),
    ]
