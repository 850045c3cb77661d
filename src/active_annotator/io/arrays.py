"""Array files: one reader and one writer for images, labels and predictions.

:func:`open_array` opens ``.zarr`` (lazily, as dask; a group with one array
is opened at that array), ``.tif``/``.tiff``, ``.npy`` (never unpickled) and
seismic records (miniSEED, SAC: ``(channels, time)``, needs the ``[signals]``
extra); :func:`read_array` is the same in memory. :func:`write_array` writes
``.tif``/``.npy`` atomically.

Every output of the package goes through :func:`write_atomically`: a hidden
``.NAME.partial-PID`` temporary renamed onto the target when complete, so a
killed run never leaves something that looks like a result;
:func:`check_output` refuses outputs that would overwrite their input.
:func:`guess_channel_axis` is napari's RGB(A) rule, shared by the command
line and batch prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, OutputError

#: napari's rule (``napari.layers.image._image_utils.guess_rgb``): the last axis has
#: 3 or 4 entries and the two axes before it are longer than this.
RGB_MIN_SIDE = 30


def guess_channel_axis(shape) -> int | None:
    """``-1`` when an image of ``shape`` looks like RGB(A), else None.

    RGB(A) means: at least 3 axes, the last of length 3 or 4, the two before it
    longer than :data:`RGB_MIN_SIDE` (napari's ``guess_rgb``).
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) >= 3 and shape[-1] in (3, 4) and all(n > RGB_MIN_SIDE for n in shape[-3:-1]):
        return -1
    return None


# -- reading and writing ----------------------------------------------------------


def is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (path / "zarr.json").exists() or (path / ".zarray").exists()


def is_signal_file(path) -> bool:
    """miniSEED, SAC and other seismic formats: read as ``(channels, time)`` signals."""
    from .signals import SEISMIC_SUFFIXES

    return Path(path).suffix.lower() in SEISMIC_SUFFIXES


def open_array(path, lazy: bool = True):
    """Open a ``.zarr`` (lazily, as dask), ``.tif``/``.tiff`` or ``.npy`` file, or a
    seismic record (miniSEED, SAC: ``(channels, time)``, needs the ``[signals]`` extra)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist.")
    if is_zarr(path):
        import zarr

        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Group):
            arrays = list(node.array_keys())
            if len(arrays) != 1:
                raise InputError(
                    f"{path} is a zarr group with arrays {arrays}; point at one array, "
                    f"e.g. {path / arrays[0]}" if arrays else f"{path} holds no zarr array."
                )
            node = node[arrays[0]]
        if lazy:
            import dask.array as da

            return da.from_zarr(node)
        return node[...]
    suffix = path.suffix.lower()
    if is_signal_file(path):
        from .signals import read_signal

        return read_signal(path).data  # (channels, time)
    if suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    if suffix == ".npy":
        try:
            return np.load(path, mmap_mode="r" if lazy else None, allow_pickle=False)
        except ValueError as e:  # object arrays (pickles), corrupt headers
            raise InputError(f"{path}: {e}") from None
    raise InputError(f"Unsupported file type {path.suffix!r}: use .zarr, .tif/.tiff or .npy.")




_MAX_OME_XML = 4 << 20  # an OME-XML header is kilobytes; refuse to parse absurd ones


def pixel_spacing(path) -> tuple | None:
    """The physical size of a pixel along each spatial axis, read from the file's
    metadata, or None when the file does not say.

    TIFF: ImageJ hyperstacks (``spacing`` for z, the X/YResolution tags in-plane) and
    OME-TIFF (``PhysicalSizeX/Y/Z``); OME-Zarr: level 0's ``scale`` (channel axis left
    out). Returned for the trailing spatial axes, e.g. ``(z, y, x)`` or ``(y, x)``; only
    ratios matter to :func:`active_annotator.features.thick_slices`, so units are not
    converted (a file mixing units along axes is rare and not handled).
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff") and path.is_file():
            return _tiff_spacing(path)
        from .ome_zarr import is_ome_zarr, read_image

        if is_ome_zarr(path):
            img = read_image(path)
            scale = [float(v) for i, v in enumerate(img.scales[0]) if i != img.channel_axis]
            return tuple(scale[-3:]) if all(v > 0 for v in scale) else None
    except (OSError, ValueError, KeyError, TypeError, IndexError, ZeroDivisionError, SyntaxError):
        # metadata we cannot read (SyntaxError: ElementTree's ParseError of broken OME-XML):
        # the caller's default (isotropic) applies
        return None
    return None


def _tiff_spacing(path: Path) -> tuple | None:
    import xml.etree.ElementTree as ET  # expat >= 2.4.1 (bundled) refuses entity expansion bombs

    import tifffile

    with tifffile.TiffFile(path) as tif:
        if tif.is_ome and tif.ome_metadata and len(tif.ome_metadata) <= _MAX_OME_XML:
            for el in ET.fromstring(tif.ome_metadata).iter():
                if el.tag.endswith("Pixels"):
                    size = [el.get(f"PhysicalSize{a}") for a in "ZYX"]
                    got = [float(v) for v in size if v is not None]
                    if size[1] is not None and size[2] is not None:
                        return tuple(got)
                    return None
        if tif.is_imagej:
            page = tif.pages[0]
            yx = []
            for tag in ("YResolution", "XResolution"):
                t = page.tags.get(tag)
                if t is None:
                    return None
                num, den = t.value
                yx.append(den / num)
            z = (tif.imagej_metadata or {}).get("spacing")
            return ((float(z),) if z else ()) + tuple(yx)
    return None


def read_array(path) -> np.ndarray:
    """:func:`open_array` read into memory (a numpy array)."""
    return np.asarray(open_array(path, lazy=False))


def write_array(path, array: np.ndarray) -> Path:
    """Write ``.tif``/``.npy`` atomically (a hidden temporary renamed onto ``path``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        write_atomically(path, lambda tmp: tifffile.imwrite(tmp, array))
    elif suffix == ".npy":
        write_atomically(path, lambda tmp: np.save(tmp, array))
    else:
        raise InputError(f"Cannot write {path}: use .tif, .tiff or .npy.")
    return path


# -- atomic outputs ---------------------------------------------------------------

_PARTIAL = ".partial-"


def check_output(input_path, output_path, suffixes=(".zarr", ".tif", ".tiff")) -> None:
    """Refuse outputs that are, contain or lie inside the input, and unknown suffixes."""

    out = Path(output_path)
    src, dst = Path(input_path).resolve(), out.resolve()
    if src == dst or dst in src.parents or src in dst.parents:
        raise OutputError(
            f"The output {str(out)!r} is the input {str(input_path)!r} (or contains it, or lies "
            "inside it): writing it would destroy the input. Choose another output path."
        )
    if suffixes is not None and out.suffix.lower() not in suffixes:
        raise InputError(f"Unsupported output {out.suffix!r}: use {' or '.join(suffixes)}.")


def _partial_path(out: Path) -> Path:
    """The hidden temporary output next to ``out``; its name marks it as incomplete."""
    import os

    return out.with_name(f".{out.name}{_PARTIAL}{os.getpid()}{out.suffix}")


def _remove_stale_partials(out: Path) -> None:
    """Remove temporary outputs of runs of this target that were killed (their process is gone)."""
    import os
    import shutil

    for p in out.parent.glob(f".{out.name}{_PARTIAL}*"):
        pid = p.name[len(f".{out.name}{_PARTIAL}"):].split(".")[0]
        try:
            os.kill(int(pid), 0)
            continue  # still running
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)


def write_atomically(out: Path, write) -> None:
    """Run ``write(tmp)`` into a temporary next to ``out``, then rename it onto ``out``.

    Until the rename the old output (if any) is untouched; a killed run leaves
    only a hidden ``.NAME.partial-PID`` that never looks like a result (and is
    removed by the next run). Full disks and read-only places raise
    :class:`~active_annotator.errors.OutputError` and leave nothing behind.
    """
    import errno
    import os
    import shutil
    import uuid


    def remove(p):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            p.unlink()

    out = Path(os.path.abspath(out))  # dask.distributed workers may run elsewhere
    tmp = _partial_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(out)
        remove(tmp)
        write(tmp)
        if out.is_dir() and not out.is_symlink():
            # a folder cannot replace a folder in one rename: move the old one aside first
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except OSError as e:
        remove(tmp)
        # tifffile and numpy report short writes without an errno
        if e.errno == errno.ENOSPC or (e.errno is None and (" written" in str(e) or "free space" in str(e))):
            why = "the disk is full"
        elif isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EROFS):
            why = "the location is read-only"
        else:
            why = f"{type(e).__name__}: {e}"
        raise OutputError(
            f"Could not write the prediction {str(out)!r}: {why}. Nothing was written"
            + (" and the previous output there is unchanged." if os.path.lexists(out) else ".")
            + " Free space or choose another output path."
        ) from None
    except BaseException:
        remove(tmp)
        raise



__all__ = [
    "check_output", "guess_channel_axis", "is_signal_file", "is_zarr", "open_array", "pixel_spacing", "read_array",
    "write_array", "write_atomically",
]
