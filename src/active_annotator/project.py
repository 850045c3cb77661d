"""Project folders that never lose an annotation.

A project is a folder with the suffix ``.aaproject``::

    NAME.aaproject/
        project.json            schema version, images, settings, history, suggestions
        annotations/IMAGE.zarr  the saved labels of each image (zarr array)
        autosave/IMAGE.zarr     labels written in the background after each stroke
        models/                 classifier (.aamodel) and CNN files
        images/IMAGE.zarr       small images embedded in the project
        session.lock            present while a session has the project open

Why this is safe:

* zarr's local store writes every chunk to a temporary file and renames it
  into place, so a chunk on disk is always a complete old or new version;
  killing the process mid-write loses at most the strokes not yet written.
* ``project.json`` is written to a temporary file and renamed.
* A ``session.lock`` left behind means the last session did not close
  cleanly; :meth:`Project.crashed` reports it and the autosaved labels can be
  restored with :meth:`Project.restore_autosave`.
* Every path stored in ``project.json`` for files inside the project is
  checked to stay inside the project folder; sizes are checked before arrays
  are allocated. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import limits
from .errors import AnnotatorError, InputError, ModelFileError

PROJECT_FORMAT = "napari-active-annotator.project"
PROJECT_SCHEMA_VERSION = 1
PROJECT_SUFFIX = ".aaproject"
MAX_LABEL_VOXELS = 1 << 36  # 64 G voxels: refuse shapes no machine could hold
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}$")


class ProjectError(AnnotatorError):
    """A project folder that cannot be read or written (with what to do)."""


def safe_name(name: str) -> str:
    """A file-system-safe version of a layer name (letters, digits, ``_.-``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(name)).strip("._") or "image"
    return cleaned[:100]


def inside(root: Path, relative: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse paths that would leave it."""
    if not isinstance(relative, str) or not relative or os.path.isabs(relative) or "\\" in relative:
        raise ModelFileError(f"Project path {relative!r} must be a relative path inside the project.")
    root_r = root.resolve()
    p = (root_r / relative).resolve()
    if p != root_r and root_r not in p.parents:
        raise ModelFileError(
            f"Project path {relative!r} points outside the project folder; the file may "
            "have been tampered with. Refusing to follow it."
        )
    return p


# -- annotations ------------------------------------------------------------------


class AnnotationStore:
    """An integer label array in a zarr store on disk.

    Parameters
    ----------
    path : path of the ``.zarr`` folder
    """

    def __init__(self, path, root=None):
        self.path = Path(path)
        self.root = None if root is None else Path(root)  # the project folder, when in one

    def _check_writable(self) -> None:
        """Refuse to write through a symbolic link (see :func:`refuse_links`)."""
        refuse_links(self.root, self.path)

    @staticmethod
    def _chunks(shape) -> tuple[int, ...]:
        # ~1 MiB chunks of uint16 keep each autosave write small and local
        edge = {1: 1 << 19, 2: 512, 3: 64}.get(len(shape), 64)
        return tuple(min(int(n), edge if i >= len(shape) - 3 else 1) for i, n in enumerate(shape))

    def create(self, shape, dtype=np.uint16, attrs: dict | None = None, overwrite=False):
        """Create an empty (all 0) label array; returns self."""
        import zarr

        shape = tuple(int(n) for n in shape)
        if not shape or any(n < 1 for n in shape) or int(np.prod(shape, dtype=np.float64)) > MAX_LABEL_VOXELS:
            raise InputError(f"Cannot create annotations of shape {shape}.")
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.integer):
            raise InputError(f"Annotations must have an integer dtype, got {dtype}.")
        self._check_writable()
        try:
            arr = zarr.create_array(
                str(self.path), shape=shape, dtype=dtype, chunks=self._chunks(shape),
                fill_value=0, overwrite=overwrite,
            )
            arr.attrs.update(attrs or {})
        except OSError as e:
            raise ProjectError(_write_hint(self.path, e)) from None
        return self

    def exists(self) -> bool:
        return (self.path / "zarr.json").is_file()

    def _open(self, mode="r"):
        import zarr

        try:
            arr = zarr.open_array(str(self.path), mode=mode)
        except Exception as e:  # zarr raises several types for broken stores
            raise ModelFileError(
                f"The annotation store {str(self.path)!r} cannot be opened ({type(e).__name__}: {e})."
            ) from None
        if not np.issubdtype(arr.dtype, np.integer):
            raise ModelFileError(f"The annotation store {str(self.path)!r} is not an integer array.")
        size = limits.nbytes(arr.shape, arr.dtype.itemsize)
        if int(np.prod(arr.shape, dtype=np.float64)) > MAX_LABEL_VOXELS or size > limits.get("ARRAY_BYTES"):
            raise ModelFileError(
                f"The annotation store {str(self.path)!r} declares an implausible shape {arr.shape} "
                f"({size} bytes of {arr.dtype}); refusing to allocate it. {limits.hint('ARRAY_BYTES')}")
        return arr

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._open().shape)

    @property
    def attrs(self) -> dict:
        return dict(self._open().attrs)

    def read(self) -> np.ndarray:
        """The whole label array as numpy; corrupt chunks raise :class:`ModelFileError`."""
        arr = self._open()
        try:
            return np.asarray(arr[...])
        except Exception as e:  # numcodecs/zarr raise RuntimeError, ValueError, ... for bad chunks
            raise ModelFileError(
                f"The annotation store {str(self.path)!r} has corrupt chunks ({type(e).__name__}: {e}). "
                "Restore it from a backup, or delete that folder to continue without those labels "
                "(the other copy, annotations/ or autosave/, may still be intact)."
            ) from None

    def write(self, labels, region: tuple[slice, ...] | None = None) -> None:
        """Write ``labels`` (the full array) to disk, only ``region`` when given.

        Each chunk is replaced atomically by zarr. Raises :class:`ProjectError`
        (read-only store, full disk) without touching ``labels``.
        """
        labels = np.asarray(labels)
        if not self.exists():
            self.create(labels.shape, labels.dtype)
        self._check_writable()
        arr = self._open("r+")
        if tuple(arr.shape) != labels.shape:
            raise InputError(
                f"Labels of shape {labels.shape} do not fit the annotation store "
                f"{str(self.path)!r} of shape {tuple(arr.shape)}."
            )
        if region is None:
            region = tuple(slice(0, n) for n in labels.shape)
        try:
            arr[region] = labels[region].astype(arr.dtype, copy=False)
        except OSError as e:
            raise ProjectError(_write_hint(self.path, e)) from None


    def write_block(self, region: tuple[slice, ...], block) -> None:
        """Write ``block`` into ``region`` of an existing store (chunk-atomic)."""
        self._check_writable()
        arr = self._open("r+")
        block = np.asarray(block)
        try:
            arr[tuple(region)] = block.astype(arr.dtype, copy=False)
        except OSError as e:
            raise ProjectError(_write_hint(self.path, e)) from None


def changed_region(a: np.ndarray, b: np.ndarray):
    """Bounding box (tuple of slices) of the elements where ``a != b``, or None (autosave writes only it)."""
    diff = a != b
    if not diff.any():
        return None
    region = []
    for axis in range(diff.ndim):
        other = tuple(i for i in range(diff.ndim) if i != axis)
        hit = np.flatnonzero(diff.any(axis=other) if other else diff)
        region.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(region)


def refuse_links(root: Path | None, path: Path, contents: bool = True) -> None:
    """Raise :class:`ProjectError` if writing at ``path`` could follow a symbolic link.

    Checks every component from ``root`` (the project folder; the folder
    itself may be a link the user chose) down to ``path``, and everything
    inside ``path`` when it is a folder and ``contents`` (a zarr store). A shared project
    could otherwise redirect a write to any file the user can write.
    """
    path = Path(path)
    parts = [path]
    if root is not None:
        try:
            rel = path.relative_to(root)
        except ValueError:
            raise ProjectError(f"Refusing to write {str(path)!r}: it is outside the project "
                               f"{str(root)!r}.") from None
        parts = [root.joinpath(*rel.parts[:i + 1]) for i in range(len(rel.parts))]
    for p in parts:
        if p.is_symlink():
            raise ProjectError(_link_message(p))
    if contents and path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path):  # does not follow links
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                if p.is_symlink():
                    raise ProjectError(_link_message(p))


def _link_message(p: Path) -> str:
    return (f"{str(p)!r} is a symbolic link; napari-active-annotator never writes through links in "
            "a project folder (a shared project could redirect the write to another file). Delete the "
            "link (the file it points to is left alone) and try again.")


def write_file_nofollow(root: Path | None, path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically without following links.

    A temporary file is created with ``O_EXCL | O_NOFOLLOW`` next to ``path``
    and renamed onto it (a rename replaces a link, it never writes through one).
    """
    path = Path(path)
    if root is not None:
        refuse_links(root, path.parent, contents=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)  # a stale temporary (or a planted link): remove the entry itself
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _write_hint(path: Path, e: Exception) -> str:
    import errno

    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        why = "the disk is full"
    elif isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EROFS):
        why = "the location is read-only"
    else:
        why = f"{type(e).__name__}: {e}"
    return (
        f"Could not save annotations to {str(path)!r}: {why}. Your labels are still in "
        "memory; save the project to another folder (Save project as...)."
    )


# -- the project ----------------------------------------------------------------


@dataclass
class ImageRef:
    """An image of the project: embedded (inside) or referenced by path (outside)."""

    name: str
    source: str  # path relative to the project (embedded) or absolute (external)
    embedded: bool
    channel_axis: int | None = None
    spatial_ndim: int = 2

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "embedded": self.embedded,
                "channel_axis": self.channel_axis, "spatial_ndim": self.spatial_ndim}

    @classmethod
    def from_dict(cls, d: dict) -> ImageRef:
        if not isinstance(d, dict):
            raise ModelFileError(f"Invalid image entry in project.json: {d!r} (expected an object).")
        try:
            ch = d.get("channel_axis")
            ref = cls(name=str(d["name"]), source=str(d["source"]), embedded=bool(d["embedded"]),
                      channel_axis=None if ch is None else int(ch),
                      spatial_ndim=int(d.get("spatial_ndim", 2)))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"Invalid image entry in project.json: {d!r} ({e}).") from None
        if not _NAME.match(safe_name(ref.name)) or ref.spatial_ndim not in (1, 2, 3):
            raise ModelFileError(f"Invalid image entry in project.json: {d!r}.")
        return ref


@dataclass
class Project:
    """A project folder; see the module docstring for its layout."""

    path: Path
    images: list[ImageRef] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    suggestions: dict = field(default_factory=dict)
    classes: dict = field(default_factory=dict)  # class value -> name

    EMBED_LIMIT = 64 << 20  # images up to 64 MiB are copied into the project

    # -- creation / opening -----------------------------------------------------
    @classmethod
    def create(cls, path, overwrite: bool = False) -> Project:
        path = Path(path)
        if path.suffix != PROJECT_SUFFIX:
            path = path.with_name(path.name + PROJECT_SUFFIX)
        if path.exists() and not overwrite and any(path.iterdir()):
            raise ProjectError(f"{str(path)!r} already exists; open it, or choose another name.")
        try:
            for sub in ("annotations", "autosave", "models", "images"):
                (path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ProjectError(f"Cannot create the project folder {str(path)!r}: {e}.") from None
        proj = cls(path=path)
        proj.save()
        return proj

    @classmethod
    def open(cls, path) -> Project:
        """Read ``project.json``; raise :class:`ModelFileError` if it is invalid."""
        path = Path(path)
        meta_path = path / "project.json"
        if not meta_path.is_file():
            raise ModelFileError(f"{str(path)!r} is not a project folder (no project.json).")
        if meta_path.stat().st_size > 64 << 20:
            raise ModelFileError(f"{str(meta_path)!r} is implausibly large; refusing to read it.")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelFileError(
                f"{str(meta_path)!r} is corrupt ({e}). The annotations in "
                f"{str(path / 'annotations')!r} can still be opened on their own."
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != PROJECT_FORMAT:
            raise ModelFileError(f"{str(meta_path)!r} is not a napari-active-annotator project.")
        version = meta.get("schema_version")
        if not isinstance(version, int) or version > PROJECT_SCHEMA_VERSION:
            raise ModelFileError(
                f"{str(path)!r} was written by a newer napari-active-annotator (project schema "
                f"{version!r}, this version reads up to {PROJECT_SCHEMA_VERSION}). Upgrade with "
                "pip install -U napari-active-annotator."
            )
        if not isinstance(meta.get("images", []), list):
            raise ModelFileError(f"{str(meta_path)!r}: 'images' must be a list.")
        try:
            images = [ImageRef.from_dict(d) for d in meta.get("images", [])]
            settings = dict(meta.get("settings", {}))
            history = list(meta.get("history", []))
            suggestions = dict(meta.get("suggestions", {}))
            classes = {str(k): str(v) for k, v in dict(meta.get("classes", {})).items()}
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{str(meta_path)!r} has an invalid field ({e}).") from None
        proj = cls(path=path, images=images, settings=settings, history=history,
                   suggestions=suggestions, classes=classes)
        for ref in images:
            if ref.embedded:
                inside(path, ref.source)
        proj._remove_stale_temporaries()
        return proj

    def external_images(self) -> list[tuple[str, str]]:
        """``(name, path)`` of images read from outside the project folder (not embedded)."""
        return [(r.name, r.source) for r in self.images if not r.embedded]

    def _remove_stale_temporaries(self) -> None:
        """Delete ``.NAME.PID.tmp`` files left by saves that were killed (their process is gone)."""
        for folder in (self.path, self.path / "models"):
            if folder.is_symlink() or not folder.is_dir():
                continue
            for tmp in folder.glob(".*.tmp"):
                try:
                    pid = int(tmp.name.rsplit(".", 2)[-2])
                    os.kill(pid, 0)
                    continue  # a save in progress
                except (ValueError, IndexError):
                    continue  # not one of ours
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue
                if tmp.is_file() or tmp.is_symlink():
                    try:
                        tmp.unlink()  # a link is removed itself, never its target
                    except OSError:
                        pass  # read-only project: harmless leftovers

    def to_dict(self) -> dict:
        return {
            "format": PROJECT_FORMAT,
            "schema_version": PROJECT_SCHEMA_VERSION,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "images": [r.to_dict() for r in self.images],
            "settings": self.settings,
            "history": self.history,
            "suggestions": self.suggestions,
            "classes": self.classes,
        }

    def save(self) -> None:
        """Write ``project.json`` atomically (temporary file, then rename)."""
        data = json.dumps(self.to_dict(), indent=1, default=_json_default).encode("utf-8")
        try:
            write_file_nofollow(self.path, self.path / "project.json", data)
        except OSError as e:
            raise ProjectError(_write_hint(self.path / "project.json", e)) from None

    # -- images ---------------------------------------------------------------
    def add_image(self, name: str, image=None, source_path=None, channel_axis=None,
                  spatial_ndim: int = 2) -> ImageRef:
        """Register an image: embed it when small, else reference ``source_path``."""
        import zarr

        key = safe_name(name)
        if any(r.name == key for r in self.images):
            self.images = [r for r in self.images if r.name != key]
        if image is not None and np.asarray(image).nbytes <= self.EMBED_LIMIT:
            rel = f"images/{key}.zarr"
            arr = np.asarray(image)
            inside(self.path, rel)
            refuse_links(self.path, self.path / rel)
            z = zarr.create_array(str(self.path / rel), shape=arr.shape, dtype=arr.dtype,
                                  overwrite=True)
            z[...] = arr
            ref = ImageRef(key, rel, True, channel_axis, spatial_ndim)
        elif source_path is not None:
            ref = ImageRef(key, str(Path(source_path).resolve()), False, channel_axis, spatial_ndim)
        else:
            raise InputError(
                f"Image {name!r} is larger than {self.EMBED_LIMIT >> 20} MiB: give the path of "
                "its file (source_path) so the project can refer to it instead of copying it."
            )
        self.images.append(ref)
        return ref

    def load_image(self, name: str):
        """The image array (numpy for embedded, lazily opened for external files)."""
        ref = self._ref(name)
        if ref.embedded:
            import zarr

            return _read_embedded(inside(self.path, ref.source), ref.name)
        src = Path(ref.source)
        if not src.exists():
            raise ProjectError(
                f"The image {ref.name!r} refers to {str(src)!r}, which no longer exists. "
                "Move the file back or open the image yourself and add it again."
            )
        if src.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            try:
                with tifffile.TiffFile(src) as tif:
                    series = tif.series[0]
                    size = limits.nbytes(series.shape, np.dtype(series.dtype).itemsize)
                    if size > limits.get("ARRAY_BYTES"):
                        raise ModelFileError(
                            f"The image {ref.name!r} ({str(src)!r}) declares shape {series.shape} "
                            f"({size} bytes), too large to read into memory. Convert it to zarr, "
                            f"or: {limits.hint('ARRAY_BYTES')}")
                    return series.asarray()
            except ModelFileError:
                raise
            except Exception as e:  # tifffile raises many types for broken files
                raise ModelFileError(f"The image {ref.name!r} ({str(src)!r}) is not a readable TIFF "
                                     f"({type(e).__name__}: {e}).") from None
        if src.suffix.lower() == ".npy":
            return np.load(src, allow_pickle=False, mmap_mode="r")
        import zarr

        return zarr.open_array(str(src), mode="r")

    def _ref(self, name: str) -> ImageRef:
        key = safe_name(name)
        for r in self.images:
            if r.name == key:
                return r
        raise InputError(f"The project has no image {name!r}; it has {[r.name for r in self.images]}.")

    # -- annotations -----------------------------------------------------------
    def annotations(self, name: str) -> AnnotationStore:
        return self._store(f"annotations/{safe_name(name)}.zarr")

    def autosave_store(self, name: str) -> AnnotationStore:
        return self._store(f"autosave/{safe_name(name)}.zarr")

    def _store(self, rel: str) -> AnnotationStore:
        inside(self.path, rel)  # refuses paths that resolve outside the project
        return AnnotationStore(self.path / rel, root=self.path)

    def save_annotations(self, name: str, labels, region=None) -> None:
        """The explicit save: annotations/NAME.zarr (and the autosave copy)."""
        self.annotations(name).write(labels, region)
        self.autosave_store(name).write(labels, region)

    def autosave(self, name: str, labels, region=None) -> None:
        """Background save after a stroke: autosave/NAME.zarr, chunk-atomic."""
        self.autosave_store(name).write(labels, region)

    def load_annotations(self, name: str, prefer_autosave: bool = False,
                         image_shape=None) -> np.ndarray | None:
        """The saved (or autosaved) labels of ``name``, None when there are none.

        With ``image_shape`` (the image's full shape, channel axis included)
        labels whose shape is not the image's non-channel shape are refused
        before they are read.
        """
        store = self.autosave_store(name) if prefer_autosave else self.annotations(name)
        if not store.exists():
            store = self.annotations(name) if prefer_autosave else self.autosave_store(name)
        if not store.exists():
            return None
        if image_shape is not None:
            self.check_annotation_shape(name, store, image_shape)
        return store.read()

    def check_annotation_shape(self, name: str, store: AnnotationStore, image_shape) -> None:
        """Refuse an annotation store whose shape is not the image's non-channel shape."""
        ref = self._ref(name)
        shape = tuple(int(n) for n in image_shape)
        if ref.channel_axis is not None and shape:
            ax = ref.channel_axis % len(shape)
            shape = shape[:ax] + shape[ax + 1:]
        if store.shape != shape:
            raise ModelFileError(
                f"The annotations {str(store.path)!r} have shape {store.shape}, but the image "
                f"{ref.name!r} has the non-channel shape {shape}; they belong to another image. "
                "Move that folder away to open the project without them."
            )

    def model_path(self, filename: str) -> Path:
        """Where a model file of the project lives; refuses links (models are written there)."""
        rel = f"models/{safe_name(filename)}"
        inside(self.path, rel)
        refuse_links(self.path, self.path / "models", contents=False)
        return self.path / rel

    # -- sessions and crash recovery ---------------------------------------------
    @property
    def _lock(self) -> Path:
        return self.path / "session.lock"

    def crashed(self) -> bool:
        """True when the last session did not close (its lock file is still there)."""
        return self._lock.exists()

    def begin_session(self) -> None:
        """Write ``session.lock``, never through a link (a planted link would redirect the write)."""
        data = json.dumps({"pid": os.getpid(), "started": time.time()}).encode()
        if self._lock.is_symlink():
            raise ProjectError(_link_message(self._lock))
        try:
            fd = os.open(self._lock, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except OSError as e:
            import errno

            if e.errno == errno.ELOOP:  # made a link between the check and the open
                raise ProjectError(_link_message(self._lock)) from None
            raise ProjectError(_write_hint(self._lock, e)) from None

    def check_links(self) -> None:
        """Raise :class:`ProjectError` if a session would write through a link in this project.

        Checks ``session.lock``, ``project.json``, the four sub-folders and every
        annotation store; call it before opening layers for editing.
        """
        for name in ("session.lock", "project.json"):
            if (self.path / name).is_symlink():
                raise ProjectError(_link_message(self.path / name))
        for sub in ("annotations", "autosave", "models", "images"):
            refuse_links(self.path, self.path / sub, contents=sub in ("annotations", "autosave"))

    def end_session(self) -> None:
        if os.path.lexists(self._lock):
            self._lock.unlink()  # removes a link itself, never its target

    def unsaved_autosaves(self) -> list[str]:
        """Images whose autosaved labels differ from the explicitly saved ones."""
        out = []
        for ref in self.images:
            auto = self.autosave_store(ref.name)
            if not auto.exists():
                continue
            saved = self.annotations(ref.name)
            if not saved.exists() or not np.array_equal(saved.read(), auto.read()):
                out.append(ref.name)
        return out

    def restore_autosave(self, name: str) -> np.ndarray:
        """Adopt the autosaved labels of ``name`` as the saved ones; return them."""
        labels = self.autosave_store(name).read()
        self.annotations(name).write(labels)
        return labels

    def remove(self) -> None:  # pragma: no cover - convenience for scripts
        shutil.rmtree(self.path)


def _read_embedded(path: Path, name: str) -> np.ndarray:
    """An embedded image store, its declared size checked before it is read."""
    import zarr

    try:
        arr = zarr.open_array(str(path), mode="r")
        shape, dtype = tuple(arr.shape), np.dtype(arr.dtype)
    except Exception as e:  # zarr raises several types for broken metadata
        raise ModelFileError(f"The embedded image {name!r} ({str(path)!r}) cannot be opened "
                             f"({type(e).__name__}: {e}).") from None
    size = limits.nbytes(shape, dtype.itemsize)
    if dtype.kind not in "biuf" or size > limits.get("ARRAY_BYTES"):
        raise ModelFileError(
            f"The embedded image {name!r} ({str(path)!r}) declares shape {shape} of {dtype} "
            f"({size} bytes); refusing to allocate it. {limits.hint('ARRAY_BYTES')}")
    try:
        return np.asarray(arr[...])
    except Exception as e:
        raise ModelFileError(f"The embedded image {name!r} ({str(path)!r}) has corrupt chunks "
                             f"({type(e).__name__}: {e}).") from None


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
