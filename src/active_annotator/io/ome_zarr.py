"""OME-Zarr (OME-NGFF v0.4 on zarr v2 and v0.5 on zarr v3): images in, labels out.

Reading and writing go through the `ome-zarr` library (``ome_zarr.reader``,
``ome_zarr.writer``), which writes the ``multiscales`` and ``image-label``
metadata; this module adds what the tool needs on top:

* :func:`read_image`: every resolution level as a lazy dask array, the axes
  (``t``, ``c``, ``z``, ``y``, ``x`` as the file names them), the channel axis,
  and :func:`choose_level` to pick a coarser level for a preview when the full
  one is large. Nothing is read until a level is computed.
* :func:`write_labels`: annotations or predictions (``0`` = unlabelled,
  ``1..K`` classes) as a ``labels/<name>`` group under the image, with one
  level per image level (nearest-neighbour downsampling), ``colors`` and
  ``properties`` (``{"label-value": k, "class": name}``) in its
  ``image-label`` metadata, in the image's own NGFF version. The group is
  written beside the image first and renamed into place whole, so readers
  never see half of it; an older group of that name is replaced.
* :func:`read_labels`: those groups back, with colours and class names.

Needs the ``[formats]`` extra (``pip install "napari-active-annotator[formats]"``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np

from .. import limits
from ..errors import AnnotatorError, InputError, OutputError

OME_ZARR_HINT = 'Install the formats extra: pip install "napari-active-annotator[formats]" (it adds ome-zarr).'
#: a preview level should hold at most this many bytes (the widget's default)
PREVIEW_BYTES = 256 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class MissingDependencyError(AnnotatorError, ImportError):
    """The ``ome-zarr`` library is not installed."""


def _lib():
    try:
        import ome_zarr.io
        import ome_zarr.reader
        import ome_zarr.writer
    except ImportError:
        raise MissingDependencyError(f"Reading OME-Zarr needs the ome-zarr library. {OME_ZARR_HINT}") from None
    return ome_zarr


@dataclasses.dataclass
class OmeImage:
    """An OME-Zarr image: its resolution levels (lazy), finest first.

    Attributes
    ----------
    path : Path
    levels : list of dask arrays, level 0 the full resolution
    axes : tuple of str, e.g. ``("c", "y", "x")``
    channel_axis : int or None, index of the ``channel`` axis
    scales : list of tuples, the physical pixel size of each level per axis
    version : str, ``"0.4"`` or ``"0.5"``
    labels : list of str, names of the ``labels`` groups already there
    level : int, the level :attr:`data` returns
    """

    path: Path
    levels: list
    axes: tuple
    channel_axis: int | None
    scales: list
    version: str
    labels: list
    level: int = 0

    @property
    def data(self):
        """The chosen level (a dask array)."""
        return self.levels[self.level]

    @property
    def spatial_axes(self) -> tuple:
        """Axis names without the channel axis: the shape labels have."""
        return tuple(a for i, a in enumerate(self.axes) if i != self.channel_axis)


@dataclasses.dataclass
class OmeLabels:
    """A ``labels/<name>`` group: its levels, colours ``{value: (r, g, b, a)}`` in 0..1 and class names."""

    name: str
    levels: list
    colors: dict
    class_names: dict
    axes: tuple


def is_ome_zarr(path) -> bool:
    """True if ``path`` is a folder whose root group has OME ``multiscales`` metadata (v0.4 or v0.5).

    Reads only the root metadata file; needs no library.
    """
    import json

    p = Path(path)
    for name, get in ((".zattrs", lambda d: d), ("zarr.json", lambda d: d.get("attributes", {}).get("ome", {}))):
        f = p / name
        if f.is_file() and f.stat().st_size < 16 << 20:
            try:
                attrs = get(json.loads(f.read_text(encoding="utf-8")))
            except (OSError, ValueError, UnicodeDecodeError, AttributeError):
                return False
            if isinstance(attrs, dict) and isinstance(attrs.get("multiscales"), list):
                return True
    return False


def _nodes(path: Path):
    lib = _lib()
    if not path.is_dir():
        raise InputError(f"{path} is not a folder: an OME-Zarr image is a .zarr folder.")
    if not is_ome_zarr(path):
        raise InputError(f"{path} has no OME-NGFF 'multiscales' metadata at its root; point at the "
                         "image group (the folder with .zattrs or zarr.json that lists the levels).")
    loc = lib.io.parse_url(str(path), mode="r")
    if loc is None:
        raise InputError(f"{path} is not a zarr store the ome-zarr library can open.")
    return loc, list(lib.reader.Reader(loc)())


def _scales(node, n_levels: int, ndim: int) -> list:
    out = []
    for ms in node.metadata.get("coordinateTransformations", [])[:n_levels] or []:
        s = next((t.get("scale") for t in ms if t.get("type") == "scale"), None)
        out.append(tuple(float(v) for v in s) if s else (1.0,) * ndim)
    while len(out) < n_levels:
        out.append((1.0,) * ndim)
    return out


def _axes(node, ndim: int) -> tuple:
    axes = node.metadata.get("axes")
    if not axes:  # v0.3 and older name no axes: assume the last ones are spatial
        return tuple("tczyx"[-ndim:])
    return tuple(a["name"] if isinstance(a, dict) else str(a) for a in axes)


def read_image(path, level: int | None = 0, max_bytes: int | None = None) -> OmeImage:
    """Open the OME-Zarr image at ``path`` (lazily).

    Parameters
    ----------
    path : folder of the image group (``image.zarr``, or ``plate.zarr/A/1/0``)
    level : int or None
        Resolution level :attr:`OmeImage.data` returns (0 = full). None: the
        finest level that holds at most ``max_bytes`` (see :func:`choose_level`).
    max_bytes : int, optional
        For ``level=None``; default :data:`PREVIEW_BYTES`.
    """
    path = Path(path)
    loc, nodes = _nodes(path)
    from ome_zarr.reader import Label, Multiscales

    node = next((n for n in nodes if any(isinstance(s, Multiscales) for s in n.specs)
                 and not any(isinstance(s, Label) for s in n.specs)), None)
    if node is None or not node.data:
        raise InputError(f"{path} holds no multiscale image the ome-zarr library can read.")
    levels = list(node.data)
    ndim = levels[0].ndim
    axes = _axes(node, ndim)
    types = [a.get("type") if isinstance(a, dict) else None for a in node.metadata.get("axes") or []]
    channel_axis = types.index("channel") if "channel" in types else (axes.index("c") if "c" in axes else None)
    labels = []
    lab = path / "labels"
    if lab.is_dir():
        labels = [n.zarr.path.rstrip("/").rsplit("/", 1)[-1] for n in nodes
                  if any(isinstance(s, Label) for s in n.specs)]
    img = OmeImage(path=path, levels=levels, axes=axes, channel_axis=channel_axis,
                   scales=_scales(node, len(levels), ndim), version=str(loc.version), labels=labels)
    if level is None:
        level = choose_level([lv.shape for lv in levels], levels[0].dtype.itemsize, max_bytes)
    if not 0 <= level < len(levels):
        raise InputError(f"{path} has resolution levels 0..{len(levels) - 1}; level {level} does not exist.")
    img.level = level
    return img


def choose_level(shapes, itemsize: int, max_bytes: int | None = None) -> int:
    """The finest level (index into ``shapes``, finest first) of at most ``max_bytes``; else the coarsest."""
    max_bytes = PREVIEW_BYTES if max_bytes is None else int(max_bytes)
    for i, shape in enumerate(shapes):
        if limits.nbytes(shape, itemsize) <= max_bytes:
            return i
    return len(shapes) - 1


def read_labels(path) -> dict:
    """The ``labels`` groups of the image at ``path``: ``{name: OmeLabels}`` (levels lazy)."""
    path = Path(path)
    _, nodes = _nodes(path)
    from ome_zarr.reader import Label

    out = {}
    for n in nodes:
        if not any(isinstance(s, Label) for s in n.specs):
            continue
        name = n.zarr.path.rstrip("/").rsplit("/", 1)[-1]
        props = n.metadata.get("properties") or {}
        out[name] = OmeLabels(
            name=name, levels=list(n.data), axes=_axes(n, n.data[0].ndim),
            colors={int(k): tuple(float(c) for c in v) for k, v in (n.metadata.get("color") or {}).items()},
            class_names={int(k): str(v["class"]) for k, v in props.items()
                         if isinstance(v, dict) and "class" in v},
        )
    return out


def _check_writable(p: Path) -> None:
    if p.is_symlink():
        raise OutputError(f"{p} is a symbolic link; labels are never written through links. "
                          "Remove the link or copy the image.")


def write_labels(path, labels, name: str = "annotations", class_names=None, colors=None) -> Path:
    """Write ``labels`` as the ``labels/<name>`` group of the OME-Zarr image at ``path``.

    Parameters
    ----------
    path : the image group (as for :func:`read_image`)
    labels : integer array, the image's level-0 shape without its channel axis
        (0 = unlabelled, 1..K = classes); numpy or dask.
    name : group name (letters, digits, ``_.-``)
    class_names : sequence or dict, optional
        ``class_names[k - 1]`` (or ``class_names[k]`` for a dict) names class k;
        stored as ``properties`` ``{"label-value": k, "class": name}``.
    colors : dict ``{k: (r, g, b, a)}`` with components in 0..1, optional

    Returns
    -------
    Path of the written group. Uses the image's NGFF version (0.4 or 0.5).
    """
    import dask.array as da
    import zarr

    lib = _lib()
    path = Path(path)
    if not _NAME.match(name or ""):
        raise InputError(f"Label group name {name!r}: use letters, digits, '_', '.' or '-' "
                         "(at most 100, not starting with '.').")
    img = read_image(path, level=0)
    expected = tuple(s for i, s in enumerate(img.levels[0].shape) if i != img.channel_axis)
    shape = tuple(np.shape(labels))
    if shape != expected:
        raise InputError(f"Labels of shape {shape} do not fit the image {path} (axes {img.axes}, "
                         f"shape {tuple(img.levels[0].shape)}): they need shape {expected} "
                         f"(axes {img.spatial_axes}).")
    dtype = np.dtype(getattr(labels, "dtype", np.int64))
    if dtype.kind not in "iub":
        raise InputError(f"Labels must be integers (0 = unlabelled, 1..K), not {dtype}.")
    lab = labels if isinstance(labels, da.Array) else da.from_array(np.asarray(labels))
    # one level per image level, downsampled like the image (nearest: classes stay classes)
    sp_axes = img.spatial_axes
    lvl_shapes = [tuple(s for i, s in enumerate(lv.shape) if i != img.channel_axis) for lv in img.levels]
    factors = [{a: max(1, round(lvl_shapes[0][j] / s[j])) for j, a in enumerate(sp_axes)}
               for s in lvl_shapes[1:]]
    pyramid = [lab]
    for s, f in zip(lvl_shapes[1:], factors):
        step = tuple(slice(None, None, f[a]) for a in sp_axes)
        level = lab[step][tuple(slice(0, n) for n in s)]
        if level.shape != s:  # another writer rounded differently: resize exactly
            from skimage.transform import resize

            level = da.from_array(resize(np.asarray(lab), s, order=0, preserve_range=True,
                                         anti_aliasing=False).astype(dtype))
        pyramid.append(level)
    fmt = lib.format.format_from_version(img.version)
    meta = {}
    if class_names is not None:
        items = class_names.items() if isinstance(class_names, dict) else enumerate(class_names, 1)
        meta["properties"] = [{"label-value": int(k), "class": str(v)} for k, v in items]
    if colors:
        meta["colors"] = [{"label-value": int(k), "rgba": [round(255 * float(c)) for c in v]}
                          for k, v in sorted(colors.items())]
    types = {"t": "time", "c": "channel"}
    axes = [{"name": a, "type": types.get(a, "space")} for a in sp_axes]
    scale = {a: float(v) for a, v in zip(sp_axes, [s for i, s in enumerate(img.scales[0])
                                                       if i != img.channel_axis])}

    labels_dir = path / "labels"
    target = labels_dir / name
    for p in (labels_dir, target):
        _check_writable(p)
    tmp_root = path / f".{name}.partial-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        store = lib.io.parse_url(str(tmp_root), mode="w", fmt=fmt).store
        root = zarr.group(store=store, zarr_format=2 if img.version == "0.4" else 3)
        lib.writer.write_multiscale_labels(pyramid, root, name=name, fmt=fmt, axes=axes, scale=scale,
                                           label_metadata=meta)
        # the image's labels group: created by the library, our name registered once
        image_root = zarr.open_group(str(path), mode="r+", zarr_format=2 if img.version == "0.4" else 3)
        group = image_root.require_group("labels")
        listed = list(lib.writer.get_metadata(group).get("labels", []))
        old = None
        if target.exists():
            old = labels_dir / f".{name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
        os.replace(tmp_root / "labels" / name, target)
        if name not in listed:
            lib.writer.add_metadata(group, {"labels": listed + [name]}, fmt=fmt)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise OutputError(f"Could not write labels {name!r} into {path}: {e}. The image is "
                          "unchanged; check free space and permissions.") from None
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return target


def write_image(path, image, axes: str, version: str = "0.5", levels: int = 3) -> Path:
    """Write ``image`` as an OME-Zarr image with ``levels`` resolution levels (for tests and exports).

    ``axes`` names the image's axes (``"yx"``, ``"cyx"``, ``"zyx"``, ``"tczyx"``);
    ``version`` ``"0.4"`` (zarr v2) or ``"0.5"`` (zarr v3). Written beside
    ``path`` and renamed onto it when complete.
    """
    import zarr

    from .arrays import write_atomically

    lib = _lib()
    if version not in ("0.4", "0.5"):
        raise InputError(f"OME-NGFF version {version!r}: use '0.4' or '0.5'.")
    fmt = lib.format.format_from_version(version)

    def write(tmp):
        store = lib.io.parse_url(str(tmp), mode="w", fmt=fmt).store
        root = zarr.group(store=store, zarr_format=2 if version == "0.4" else 3)
        lib.writer.write_image(np.asarray(image), root, axes=axes, fmt=fmt,
                               scale_factors=tuple(2 ** i for i in range(1, levels)))

    out = Path(path)
    write_atomically(out, write)
    return out


__all__ = [
    "OmeImage",
    "OmeLabels",
    "choose_level",
    "is_ome_zarr",
    "read_image",
    "read_labels",
    "write_image",
    "write_labels",
]
