"""Sample-data commands: bundled images as napari LayerData tuples.

The arrays come from :mod:`active_annotator.data` (files in ``sample_data/``);
here they only get layer names and display settings.
"""

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
