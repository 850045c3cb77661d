"""Open an OME-Zarr image with its labels as the tool's layers, and save labels back into it.

The file work is :mod:`active_annotator.io.ome_zarr`; here it is translated to
napari LayerData:

* the image: level 0 as a lazy dask array, or, when level 0 is larger than
  :data:`~active_annotator.io.ome_zarr.PREVIEW_BYTES`, every level as a
  multiscale layer (napari draws the level that fits the screen);
* each ``labels/<name>`` group: a paintable Labels layer (level 0 read into
  memory, size checked first) with the file's colours and its class names in
  ``metadata["class_names"]`` (the convention of the tool's docks).

The writer saves a Labels layer as ``labels/<layer name>`` of an existing
OME-Zarr image (File > Save Selected Layers…, choose the image's ``.zarr``
folder); the layer's ``metadata["class_names"]`` and colours go into the
``image-label`` metadata.
"""

from pathlib import Path

import numpy as np

from active_annotator import limits
from active_annotator.errors import InputError


def _as_path(path):
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(path)


def get_reader(path):
    """:func:`read_ome_zarr` for one OME-Zarr image folder, else None (other readers may take it)."""
    from active_annotator.io.ome_zarr import is_ome_zarr

    p = _as_path(path)
    if p is None or not p.is_dir() or not is_ome_zarr(p):
        return None
    return read_ome_zarr


def read_ome_zarr(path):
    """The image and its label groups as napari LayerData tuples."""
    from active_annotator.io import ome_zarr

    p = _as_path(path)
    img = ome_zarr.read_image(p, level=0)
    level0 = img.levels[0]
    big = limits.nbytes(level0.shape, level0.dtype.itemsize) > ome_zarr.PREVIEW_BYTES
    spatial_scale = [s for i, s in enumerate(img.scales[0]) if i != img.channel_axis]
    meta = {"name": p.name.removesuffix(".zarr").removesuffix(".ome"),
            "metadata": {"ome_zarr": str(p), "axes": img.axes}, "scale": spatial_scale}
    if img.channel_axis is not None:
        meta["channel_axis"] = img.channel_axis
    layers = [(img.levels if big and len(img.levels) > 1 else level0,
               dict(meta, multiscale=big and len(img.levels) > 1), "image")]
    for name, lab in ome_zarr.read_labels(p).items():
        data = lab.levels[0]
        n = limits.nbytes(data.shape, data.dtype.itemsize)
        if n > limits.get("ARRAY_BYTES"):
            raise InputError(f"The labels {name!r} of {p} are {n} bytes, more than the limit for "
                             f"editable labels. {limits.hint('ARRAY_BYTES')}")
        colormap = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0), **lab.colors} if lab.colors else None
        lmeta = {"name": name, "scale": spatial_scale,
                 "metadata": {"class_names": dict(lab.class_names), "ome_zarr": str(p)}}
        if colormap is not None:
            lmeta["colormap"] = colormap
        layers.append((np.asarray(data), lmeta, "labels"))
    return layers


def write_ome_zarr_labels(path: str, data, meta: dict) -> list[str]:
    """Write a Labels layer as ``labels/<name>`` of the OME-Zarr image at ``path``."""
    from active_annotator.io import ome_zarr

    p = Path(path)
    if not ome_zarr.is_ome_zarr(p):
        raise InputError(f"{p} is not an OME-Zarr image: choose the image's .zarr folder to save the "
                         "labels into (they go under its labels/ group).")
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in str(meta.get("name") or "annotations"))
    name = name.lstrip(".") or "annotations"
    metadata = meta.get("metadata") or {}
    colors = None
    cmap = meta.get("colormap")
    color_dict = getattr(cmap, "color_dict", None)
    if color_dict:
        colors = {int(k): tuple(float(c) for c in v) for k, v in color_dict.items()
                  if k is not None and int(k) > 0}
    target = ome_zarr.write_labels(p, np.asarray(data), name=name,
                                   class_names=metadata.get("class_names") or None, colors=colors)
    return [str(target)]
