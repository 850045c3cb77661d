"""Batch prediction: one saved model over a folder (or glob) of images, one output per input.

:func:`predict_batch` is what ``active-annotator predict --input FOLDER_OR_GLOB
--output DIR`` and the napari "Batch prediction" dock run. Each image goes
through the chunked dask path of :mod:`active_annotator.scale` (forest) or
:mod:`active_annotator.cnn` (CNN), so an image larger than memory is fine and
``scheduler=`` runs the chunks on a dask.distributed cluster.

Reruns skip finished images. An output counts as finished only when

* it was renamed into place whole (every output is written to a hidden
  ``.NAME.partial-PID`` first and renamed onto its name when complete, so a
  killed run never leaves a file under the final name), and
* the folder's manifest ``.active-annotator-batch.json`` (written atomically
  after each image) records it with the same model file (SHA-256), the same
  settings, the same input (size and modification time) and, for file
  outputs, the same output size.

Anything else (no manifest entry, another model, a changed input, a truncated
or replaced output) is predicted again. A manifest that cannot be read is
ignored (everything is redone), never trusted.

Outputs are written without following symbolic links: a link planted under an
output name is replaced by the new file, never written through.
"""

from __future__ import annotations

import dataclasses
import glob as _glob
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import limits
from .errors import AnnotatorError, Cancelled, InputError, OutputError

ProgressCallback = Callable[[int, int], None]
StopCallback = Callable[[], bool]

MANIFEST = ".active-annotator-batch.json"
MANIFEST_FORMAT = "napari-active-annotator.batch"
MANIFEST_VERSION = 1
#: input files a folder is searched for (OME-Zarr and other zarr stores are folders ending .zarr)
INPUT_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr")
#: ``"labels"``: into each OME-Zarr input, as its ``labels/<labels_name>`` group
OUTPUT_FORMATS = (".tif", ".zarr", "labels")
#: images up to this size (and TIFF outputs, no --chunks, no cluster) are predicted in one call,
#: without a dask graph; larger ones chunk by chunk with dask (as ``active-annotator predict``)
IN_MEMORY_BYTES = 64 << 20


@dataclasses.dataclass
class FileResult:
    """What happened to one input.

    ``status`` is ``"pending"``, ``"running"``, ``"done"``, ``"skipped"``
    (finished by an earlier run), ``"failed"`` (``message`` says why) or
    ``"cancelled"``.
    """

    input: Path
    output: Path
    status: str = "pending"
    seconds: float = 0.0
    message: str = ""


@dataclasses.dataclass
class BatchReport:
    """The result of :func:`predict_batch`: one :class:`FileResult` per input, in order."""

    files: list[FileResult]
    cancelled: bool = False

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("done", "skipped", "failed", "cancelled")
                 if self.count(s)]
        return f"{len(self.files)} images: " + (", ".join(parts) or "nothing to do")


# -- inputs and outputs ---------------------------------------------------------------


def _is_input(p: Path) -> bool:
    return not p.name.startswith(".") and p.suffix.lower() in INPUT_SUFFIXES


def find_inputs(spec, exclude=None) -> list[Path]:
    """The images named by ``spec``: a folder (its supported files, not recursive) or a glob.

    Folders are searched for ``.tif``, ``.tiff``, ``.npy`` and ``.zarr``
    (hidden names skipped); a glob (``"plates/*/img_*.tif"``, ``**`` for
    subfolders) is taken as given. Paths inside ``exclude`` (the output
    folder) are left out, so outputs written into the input folder are never
    read back as inputs. Sorted by name.
    """
    text = str(spec)
    p = Path(text)
    if p.is_dir() and p.suffix.lower() != ".zarr":
        found = [q for q in p.iterdir() if _is_input(q)]
    elif any(c in text for c in "*?["):
        found = [Path(q) for q in _glob.glob(text, recursive=True)]
        found = [q for q in found if not q.name.startswith(".")]
    elif p.exists():
        found = [p]
    else:
        raise InputError(f"{text!r} is neither a folder, an image nor a glob that matches files. "
                         "Give a folder of images or a pattern such as 'images/*.tif'.")
    if exclude is not None:
        ex = Path(exclude).resolve()
        found = [q for q in found if ex != q.resolve() and ex not in q.resolve().parents]
    found = sorted(found, key=lambda q: str(q))
    if not found:
        raise InputError(f"No images found in {text!r} (looked for {', '.join(INPUT_SUFFIXES)}).")
    return found


def _stem(p: Path) -> str:
    name = p.name
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return p.stem


def output_paths(inputs, output_dir, output_format: str = ".tif",
                 labels_name: str = "prediction") -> list[Path]:
    """``output_dir/<input stem><output_format>`` for every input; clashing names are refused.

    With ``output_format="labels"``: ``<input>/labels/<labels_name>`` (OME-Zarr inputs).
    """
    if output_format not in OUTPUT_FORMATS:
        raise InputError(f"Unsupported output format {output_format!r}: use "
                         f"{' or '.join(OUTPUT_FORMATS)}.")
    if output_format == "labels":
        return [Path(p) / "labels" / labels_name for p in inputs]
    out_dir = Path(output_dir)
    inputs = [Path(p) for p in inputs]
    names = [_stem(p) for p in inputs]
    if len(set(names)) < len(names):
        # same names in different folders (plate wells "A/1/0", "B/2/0"): name by the path below
        # the inputs' common folder instead, e.g. "A_1_0"
        common = Path(os.path.commonpath([str(p.resolve()) for p in inputs]))
        names = ["_".join(p.resolve().relative_to(common).parent.parts + (_stem(p),)) for p in inputs]
    outs, seen = [], {}
    for p, name in zip(inputs, names):
        o = out_dir / (name + output_format)
        if o.name in seen:
            raise InputError(f"{seen[o.name]} and {p} would both be written to {o}: rename one, "
                             "or predict them into different output folders.")
        seen[o.name] = p
        outs.append(o)
    return outs


def _check_tiff_size(path: Path) -> None:
    """A TIFF is read whole: check what its header declares before allocating it."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            n = limits.nbytes(series.shape, np.dtype(series.dtype).itemsize)
    except (tifffile.TiffFileError, IndexError, ValueError) as e:
        raise InputError(f"{path} is not a readable TIFF ({e}).") from None
    if n > limits.get("ARRAY_BYTES"):
        raise InputError(f"{path} declares {n} bytes of pixels, more than the limit. Convert it to "
                         f".zarr to predict it chunk by chunk. {limits.hint('ARRAY_BYTES')}")


# -- the manifest -----------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _input_signature(p: Path) -> dict:
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _output_size(o: Path) -> int | None:
    """Size of a finished file output, None for a folder (zarr) output, -1 if missing or a link."""
    if o.is_symlink() or not o.exists():
        return -1
    return None if o.is_dir() else o.stat().st_size


def _read_manifest(out_dir: Path) -> dict:
    path = out_dir / MANIFEST
    if path.is_symlink() or not path.is_file() or path.stat().st_size > 64 << 20:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if (not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT
            or data.get("version") != MANIFEST_VERSION or not isinstance(data.get("done"), dict)):
        return {}
    return {k: v for k, v in data["done"].items() if isinstance(k, str) and isinstance(v, dict)}


def _write_manifest(out_dir: Path, done: dict) -> None:
    path = out_dir / MANIFEST
    tmp = out_dir / f".{MANIFEST}.{os.getpid()}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)  # stale, or a planted link: never write through it
    text = json.dumps({"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "done": done},
                      indent=1, sort_keys=True)
    # O_EXCL: fails rather than following anything created under that name meanwhile
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _entry_name(out: Path, out_dir: Path) -> str:
    """The manifest's key for an output: its name in the output folder, else its absolute path."""
    return out.name if out.parent == out_dir else str(out.resolve())


def _is_finished(entry, key: dict, inp: Path, out: Path) -> bool:
    if not isinstance(entry, dict) or entry.get("key") != key:
        return False
    try:
        if entry.get("input") != _input_signature(inp):
            return False
    except OSError:
        return False
    return entry.get("output_size", -2) == _output_size(out) != -1


# -- one image ----------------------------------------------------------------------------


def _cancel_callback(should_stop):
    """A dask callback that stops a local computation as soon as ``should_stop()`` is true
    (checked before and after every task, i.e. chunk)."""
    from dask.callbacks import Callback

    def check(*_):
        if should_stop is not None and should_stop():
            raise Cancelled("Batch prediction was cancelled.")

    return Callback(pretask=check, posttask=check)


def _compute(target, client, should_stop):
    """Compute a dask collection locally (threads) or on a cluster's ``client``, stopping when asked."""
    import dask

    if client is not None:
        from distributed import wait

        fut = client.compute(target)
        while True:
            try:
                wait(fut, timeout=0.2)
                break
            except TimeoutError:
                if should_stop is not None and should_stop():
                    fut.cancel()
                    raise Cancelled("Batch prediction was cancelled.") from None
        return fut.result()
    with _cancel_callback(should_stop):
        return dask.compute(target, scheduler="threads")[0]


def _predict_in_memory(model, image, channel_axis, proba, should_stop):
    """A small image in one call (no dask graph): the classifier's own tiling and cancel checks."""
    from .cnn import CNNClassifier

    clf = model if isinstance(model, CNNClassifier) else _forest(model)
    image = np.asarray(image)
    if proba:
        return clf.predict_proba(image, channel_axis=channel_axis, should_stop=should_stop)
    return clf.predict(image, channel_axis=channel_axis, should_stop=should_stop)


def _forest(path):
    from .scale import _load_model

    p = Path(path).resolve()
    st = p.stat()
    return _load_model(str(p), st.st_mtime_ns, st.st_size)  # loaded once per batch (cached)


def _predict_one(model, inp: Path, out: Path, *, channel_axis, chunks, proba, client,
                 should_stop) -> None:
    import dask.array as da

    from .io.arrays import check_output, write_atomically
    from .scale import predict_dask

    into_labels = out.parent.name == "labels" and out.parent.parent == inp
    if into_labels:
        from .io import ome_zarr

        if not (inp.is_dir() and ome_zarr.is_ome_zarr(inp)):
            raise InputError(f"{inp} is not an OME-Zarr image: predictions go into an image's labels/ "
                             "group only for OME-Zarr inputs; choose .tif or .zarr outputs for the others.")
    else:
        check_output(inp, out)
    if inp.suffix.lower() in (".tif", ".tiff"):
        _check_tiff_size(inp)
    image, ome_channel_axis = _open_image(inp)
    if channel_axis is None and ome_channel_axis is not None:
        channel_axis = ome_channel_axis  # OME-Zarr names its channel axis
    elif channel_axis is None:  # per image, as the one-image command guesses it (RGB(A): last axis)
        from .io.arrays import guess_channel_axis

        channel_axis = guess_channel_axis(np.shape(image))
    nbytes = limits.nbytes(np.shape(image), np.dtype(image.dtype).itemsize)
    small = chunks is None and client is None and nbytes <= IN_MEMORY_BYTES
    if into_labels:
        if small:
            image = image.compute() if isinstance(image, da.Array) else image
            classes = _predict_in_memory(model, image, channel_axis, False, should_stop)
        else:
            if not isinstance(image, da.Array):
                image = da.from_array(image, chunks=-1)
            classes = predict_dask(model, image, channel_axis=channel_axis, proba=False, chunks=chunks)
            classes = _compute(classes, client, should_stop)
        ome_zarr.write_labels(inp, classes, name=out.name)
        return
    if out.suffix != ".zarr" and small:
        import tifffile

        image = image.compute() if isinstance(image, da.Array) else image
        write_atomically(out, lambda tmp: tifffile.imwrite(
            tmp, _predict_in_memory(model, image, channel_axis, proba, should_stop)))
        return
    if not isinstance(image, da.Array):
        image = da.from_array(image, chunks=-1)
    result = predict_dask(model, image, channel_axis=channel_axis, proba=proba, chunks=chunks)
    if out.suffix == ".zarr":
        regular = tuple(max(c) if len(c) < 2 else c[0] for c in result.chunks)
        if any(any(v > r for v in c[:-1]) or c[-1] > r for c, r in zip(result.chunks, regular)):
            result = result.rechunk(regular)

        def write(tmp):
            _compute(result.to_zarr(str(tmp), overwrite=True, compute=False), client, should_stop)
    else:
        import tifffile

        def write(tmp):
            tifffile.imwrite(tmp, _compute(result, client, should_stop))
    write_atomically(out, write)


def _open_image(path: Path):
    """``(array, channel_axis or None)``: the image (lazy where possible); OME-Zarr at level 0
    with the channel axis its metadata names."""
    from .io.arrays import open_array

    if path.is_dir():
        from .io import ome_zarr

        if ome_zarr.is_ome_zarr(path):  # also plate wells' images, e.g. plate.zarr/A/1/0
            img = ome_zarr.read_image(path, level=0)
            return img.data, img.channel_axis
    return open_array(path, lazy=True), None


def load_model(path):
    """A ``.aamodel`` forest (returned as its path, which dask workers load once) or a
    ``.aacnn`` CNN (returned loaded); raises :class:`ModelFileError` for anything else."""
    from .errors import ModelFileError
    from .persistence import is_cnn_file, load_cnn

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Model file {str(path)!r} does not exist. Train one with "
                             "'active-annotator train' or save it from the Pixel classifier dock.")
    if is_cnn_file(path):
        return load_cnn(path)
    from .classifier import PixelClassifier

    PixelClassifier.load(path)  # validates it now rather than once per image
    return path


# -- the batch ------------------------------------------------------------------------------


def predict_batch(model, inputs, output_dir, *, output_format: str = ".tif", labels_name: str = "prediction",
                  channel_axis: int | None = None, chunks=None, proba: bool = False,
                  scheduler: str | None = None, redo: bool = False,
                  on_progress: ProgressCallback | None = None,
                  should_stop: StopCallback | None = None,
                  on_file: Callable[[int, FileResult], None] | None = None) -> BatchReport:
    """Predict every image of ``inputs`` with one model; one output per input in ``output_dir``.

    Parameters
    ----------
    model : path
        A forest ``.aamodel`` or CNN ``.aacnn`` file.
    inputs : folder, glob or list of paths
        See :func:`find_inputs`. ``.tif``/``.tiff``/``.npy``/``.zarr`` (OME-Zarr at level 0).
    output_dir : path
        Created if missing; gets ``<stem>.tif`` (or ``.zarr``) per input and the manifest.
    output_format : ".tif", ".zarr" or "labels"
        ``.zarr`` is written chunk by chunk (for images larger than memory).
        ``"labels"``: the classes go into each (OME-Zarr) input as its
        ``labels/<labels_name>`` group (see
        :func:`active_annotator.io.ome_zarr.write_labels`); ``output_dir``
        then holds only the manifest.
    channel_axis, chunks, proba, scheduler
        As :func:`active_annotator.scale.predict_file`.
    redo : bool
        Predict every image again, ignoring the manifest.
    on_progress : callable(done, total), optional
        Called after each image with the number of images finished (done,
        skipped or failed) so far.
    should_stop : callable() -> bool, optional
        Checked before and after every chunk of every image: the image being
        predicted stops at its next chunk, nothing of it is written, and the
        remaining images are marked ``"cancelled"``.
    on_file : callable(index, FileResult), optional
        Called whenever an image changes status (for a per-file list).

    Returns
    -------
    BatchReport
        Failed images (unreadable, wrong channels) do not stop the batch; their
        ``message`` says why.
    """
    out_dir = Path(output_dir)
    if out_dir.is_symlink():
        raise OutputError(f"The output folder {str(out_dir)!r} is a symbolic link; give the real "
                          "folder (outputs are never written through links).")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"The output {str(out_dir)!r} is a file; batch prediction needs a folder.")
    if isinstance(inputs, (list, tuple)):
        paths = [Path(p) for p in inputs]
        if not paths:
            raise InputError("No images to predict.")
    else:
        paths = find_inputs(inputs, exclude=out_dir)
    if output_format == "labels" and proba:
        raise InputError("Probabilities cannot be a labels group (labels are classes): drop "
                         "probabilities, or write .tif/.zarr outputs.")
    outs = output_paths(paths, out_dir, output_format, labels_name)
    loaded = load_model(model)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"Cannot create the output folder {str(out_dir)!r}: {e}.") from None
    key = {"model_sha256": _sha256(Path(model)), "proba": bool(proba),
           "channel_axis": channel_axis, "format": output_format,
           **({"labels_name": labels_name} if output_format == "labels" else {})}
    done = {} if redo else _read_manifest(out_dir)
    report = BatchReport([FileResult(p, o) for p, o in zip(paths, outs)])
    total = len(paths)
    n_finished = 0

    def tell(i):
        if on_file is not None:
            on_file(i, report.files[i])

    client = None
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout=10)  # one connection for the whole batch
        except OSError as e:
            raise InputError(f"Cannot reach the dask scheduler at {scheduler!r} ({e}). Check the "
                             "address (tcp://HOST:8786) and that the scheduler runs.") from None
    try:
        for i, fr in enumerate(report.files):
            if should_stop is not None and should_stop():
                report.cancelled = True
            if report.cancelled:
                fr.status = "cancelled"
                tell(i)
                continue
            entry = _entry_name(fr.output, out_dir)
            if _is_finished(done.get(entry), key, fr.input, fr.output):
                fr.status = "skipped"
            else:
                fr.status = "running"
                tell(i)
                t0 = time.perf_counter()
                try:
                    _predict_one(loaded, fr.input, fr.output, channel_axis=channel_axis,
                                 chunks=chunks, proba=proba, client=client, should_stop=should_stop)
                except Cancelled:
                    fr.status, fr.message = "cancelled", "cancelled while running; nothing written"
                    report.cancelled = True
                    tell(i)
                    continue
                except (AnnotatorError, OSError, ValueError) as e:
                    # one unreadable image does not stop the other 99; the report names it
                    fr.status, fr.message = "failed", str(e) if isinstance(e, AnnotatorError) else \
                        f"{fr.input}: {type(e).__name__}: {e}"
                else:
                    fr.status = "done"
                    done[entry] = {"key": key, "input": _input_signature(fr.input),
                                   "output_size": _output_size(fr.output)}
                    _write_manifest(out_dir, done)
                fr.seconds = time.perf_counter() - t0
            n_finished += 1
            tell(i)
            if on_progress is not None:
                on_progress(n_finished, total)
    finally:
        if client is not None:
            client.close()
    return report


__all__ = [
    "MANIFEST",
    "BatchReport",
    "FileResult",
    "find_inputs",
    "load_model",
    "output_paths",
    "predict_batch",
]
