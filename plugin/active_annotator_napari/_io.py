"""Reader and writer for annotation stores (``*.aalabels``).

The file work is in the core (:func:`active_annotator.persistence.read_annotation_store`
and :func:`~active_annotator.persistence.write_annotation_store`); here it is
only translated to and from napari LayerData. An ``.aalabels`` path is a zarr
(v3) folder with one integer array ``annotations`` (0 = unlabelled, 1..K =
classes) and attributes ``format``, ``version``, ``name``, ``class_names``,
``scale`` and ``translate``. Writes are atomic (temporary folder, then rename).
"""

from pathlib import Path

from active_annotator.persistence import (
    LABELS_FORMAT as FORMAT,  # noqa: F401 - re-exported for tests and users
)
from active_annotator.persistence import (
    LABELS_VERSION as VERSION,  # noqa: F401
)
from active_annotator.persistence import (
    is_annotation_store,
    read_annotation_store,
    write_annotation_store,
)

ARRAY = "annotations"


def _as_path(path) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(path)


def get_reader(path):
    """Return :func:`read_labels` when ``path`` is one ``.aalabels`` store, else None."""
    p = _as_path(path)
    if p is None or not is_annotation_store(p):
        return None
    return read_labels


def read_labels(path):
    """Read an ``.aalabels`` store as one napari Labels LayerData tuple."""
    labels, attrs = read_annotation_store(_as_path(path))
    meta = {"name": attrs["name"], "metadata": {"class_names": attrs["class_names"]}}
    for key in ("scale", "translate"):
        if key in attrs:
            meta[key] = attrs[key]
    return [(labels, meta, "labels")]


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write a Labels layer to an ``.aalabels`` store (suffix added); return the path."""
    metadata = meta.get("metadata") or {}
    target = write_annotation_store(
        path, data, name=meta.get("name"), class_names=metadata.get("class_names"),
        scale=meta.get("scale"), translate=meta.get("translate"),
    )
    return [str(target)]
