"""Reader and writer for annotation stores (``*.aalabels``).

An ``.aalabels`` path is a zarr (v3) directory store with one integer array,
``annotations`` (0 = unlabelled, 1..K = classes, the image's non-channel
shape), and group attributes::

    format       "napari-active-annotator.labels"
    version      1
    name         the layer name
    class_names  {"1": "background", "2": "nucleus", ...}  (may be empty)
    scale, translate   per-axis lists of floats

The writer builds the store in a hidden temporary folder next to the target
and renames it into place, so an interrupted save never leaves a half-written
store under the real name.
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

SUFFIX = ".aalabels"
FORMAT = "napari-active-annotator.labels"
VERSION = 1
ARRAY = "annotations"


def _as_path(path) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(path)


def _is_store(path: Path) -> bool:
    if path.suffix != SUFFIX or not path.is_dir():
        return False
    try:
        import zarr

        return zarr.open_group(str(path), mode="r").attrs.get("format") == FORMAT
    except Exception:  # anything unreadable is not ours; let another reader try
        return False


def get_reader(path):
    """Return :func:`read_labels` when ``path`` is one ``.aalabels`` store, else None."""
    p = _as_path(path)
    if p is None or not _is_store(p):
        return None
    return read_labels


def read_labels(path):
    """Read an ``.aalabels`` store as one napari Labels LayerData tuple."""
    import zarr

    p = _as_path(path)
    group = zarr.open_group(str(p), mode="r")
    attrs = dict(group.attrs)
    if attrs.get("format") != FORMAT:
        raise ValueError(f"{p} is not an annotations store (attribute 'format' is {attrs.get('format')!r}).")
    version = int(attrs.get("version", 0))
    if version > VERSION:
        raise ValueError(
            f"{p} was written by a newer napari-active-annotator (store version {version}, "
            f"this one reads up to {VERSION}); upgrade the plugin."
        )
    if ARRAY not in group:
        raise ValueError(f"{p} has no '{ARRAY}' array; the store is incomplete.")
    labels = np.asarray(group[ARRAY][...])
    meta = {
        "name": attrs.get("name") or p.stem,
        "metadata": {"class_names": {int(k): str(v) for k, v in (attrs.get("class_names") or {}).items()}},
    }
    for key in ("scale", "translate"):
        if attrs.get(key) is not None and len(attrs[key]) == labels.ndim:
            meta[key] = [float(v) for v in attrs[key]]
    return [(labels, meta, "labels")]


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write a Labels layer to an ``.aalabels`` store; return the written path.

    The suffix ``.aalabels`` is added when missing. An existing store at the
    path is replaced only after the new one is complete.
    """
    import zarr

    target = Path(path)
    if target.suffix != SUFFIX:
        target = target.with_name(target.name + SUFFIX)
    labels = np.asarray(data)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"Annotations must be an integer array, got dtype {labels.dtype}.")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    metadata = meta.get("metadata") or {}
    class_names = {str(int(k)): str(v) for k, v in (metadata.get("class_names") or {}).items()}
    attrs = {
        "format": FORMAT,
        "version": VERSION,
        "name": str(meta.get("name") or target.stem),
        "class_names": class_names,
    }
    for key in ("scale", "translate"):
        if meta.get(key) is not None:
            attrs[key] = [float(v) for v in meta[key]]

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        chunks = tuple(min(n, 256) for n in labels.shape) or None
        array = group.create_array(ARRAY, shape=labels.shape, dtype=labels.dtype,
                                   chunks=chunks, fill_value=0)
        array[...] = labels
        group.attrs.update(attrs)
        if target.exists():
            # A directory cannot be replaced atomically by rename: move the old
            # store aside first, then drop it once the new one is in place.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "store")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [str(target)]
