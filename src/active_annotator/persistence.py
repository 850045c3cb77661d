"""Saving and loading models in a safe, versioned format: every model file format lives here.

Pixel classifiers (``.aamodel``), object classifiers (``.aaobjects``), CNNs
(``.aacnn``, safetensors; torch is imported only when one is saved or loaded)
and annotation stores (``.aalabels``).

A pixel-classifier file (suffix ``.aamodel``) is a zip archive of ``.npy``
arrays as written by :func:`numpy.savez_compressed`:

* ``meta``: UTF-8 JSON bytes (uint8 array) with ``format``, ``schema_version``,
  the feature set, class values, channel count, training parameters;
* ``feature``, ``threshold``, ``left``, ``right``, ``value``, ``roots``:
  the forest's node arrays (see :class:`~active_annotator.forest.Forest`);
* ``importances``: impurity feature importances;
* ``stage2_feature`` ... ``stageN_roots`` (schema version 2, only when the
  classifier has ``stages`` = N > 1): the forests of autocontext stages 2..N,
  each on the image features plus the previous stage's context features.

Loading never unpickles (``numpy.load(..., allow_pickle=False)`` refuses
object arrays) and executes nothing; every shape and index is checked
(:meth:`Forest.validate`) before use, and sizes are checked against limits
before arrays are read.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import limits
from .errors import InputError, ModelFileError
from .features import FeatureSet
from .forest import Forest

MODEL_FORMAT = "napari-active-annotator.pixel-classifier"
SCHEMA_VERSION = 1
STAGES_SCHEMA_VERSION = 2  # written only for autocontext models (stages > 1); reads both
MODEL_SUFFIX = ".aamodel"
_ARRAYS = ("feature", "threshold", "left", "right", "value", "roots", "importances")


def _package_version() -> str:
    from . import __version__

    return __version__


def save_model(clf, path) -> Path:
    """Write a fitted :class:`PixelClassifier` to ``path`` (atomically).

    The suffix ``.aamodel`` is added when missing. Returns the path written.
    """
    clf._check_fitted()
    path = Path(path)
    if path.suffix != MODEL_SUFFIX:
        path = path.with_name(path.name + MODEL_SUFFIX)
    params = clf.get_params()
    params.pop("features")
    n_stages = clf.n_stages
    meta = {
        "format": MODEL_FORMAT,
        "schema_version": SCHEMA_VERSION if n_stages == 1 else STAGES_SCHEMA_VERSION,
        "package_version": _package_version(),
        "features": clf.feature_set.to_dict(),
        "classes": [int(c) for c in clf.classes_],
        "labels_dtype": np.dtype(clf.labels_dtype_).str,
        "n_channels": clf.n_channels_in_,
        "n_features": clf.n_features_in_,
        "feature_names": list(clf.feature_names_in_),
        "n_training_pixels": getattr(clf, "n_training_pixels_", None),
        "params": params,
    }
    if n_stages > 1 and getattr(clf, "context_sigmas_", None) is not None:
        meta["context_sigmas"] = [float(x) for x in clf.context_sigmas_]
    arrays = clf.forest_.arrays()
    arrays["importances"] = np.asarray(clf.feature_importances_, np.float64)
    for k, forest in enumerate(clf.forests_[1:], start=2):
        arrays.update({f"stage{k}_{n}": v for n, v in forest.arrays().items()})
    return _write_npz(path, meta, arrays)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    return _read_npz(path, ("meta",) + _ARRAYS, "pixel-classifier")


def _read_npz(path: Path, names, what: str) -> dict[str, np.ndarray]:
    """Read the named arrays of a model zip, refusing pickles and oversized files.

    The sizes the zip declares (all entries together) and each ``.npy``
    header's shape times item size are checked against
    :data:`limits.MODEL_BYTES` before any array is allocated.
    """
    if not path.is_file():
        raise ModelFileError(f"Model file {str(path)!r} does not exist.")
    budget = limits.get("MODEL_BYTES")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            expected = {f"{n}.npy" for n in names}
            missing = expected - set(infos)
            if missing:
                raise ModelFileError(
                    f"{str(path)!r} is not a complete {what} file: missing "
                    f"{sorted(missing)}. Was it written by napari-active-annotator?"
                )
            declared = sum(i.file_size for i in infos.values())
            if declared > budget:
                raise ModelFileError(
                    f"{str(path)!r} is implausibly large for a {what} file: it unpacks to "
                    f"{declared} bytes, more than the limit of {budget}. {limits.hint('MODEL_BYTES')}"
                )
            out, total = {}, 0
            for n in names:
                with zf.open(infos[f"{n}.npy"]) as fh:
                    arr, total = _read_npy_entry(path, n, fh, infos[f"{n}.npy"].file_size, total, budget)
                out[n] = arr
            return out
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError,
            NotImplementedError, RuntimeError) as e:  # zipfile: unsupported versions, encryption
        raise ModelFileError(
            f"{str(path)!r} is not a readable model file ({type(e).__name__}: {e}). "
            "It may be truncated, corrupt, or not a napari-active-annotator model "
            "(object arrays and pickles are refused)."
        ) from None


def _read_npy_entry(path: Path, name: str, fh, entry_size: int, total: int, budget: int):
    """One ``.npy`` array from an open zip entry; its header is checked before the data is read."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(fh)
    else:
        raise ModelFileError(f"{str(path)!r}: array {name!r} has an unsupported .npy version {version}.")
    if dtype.hasobject:
        raise ModelFileError(
            f"{str(path)!r}: array {name!r} holds Python objects; pickles are refused "
            "(a napari-active-annotator model holds plain numbers only)."
        )
    size = limits.nbytes(shape, dtype.itemsize)
    total += size
    if size > entry_size or total > budget:
        raise ModelFileError(
            f"{str(path)!r}: array {name!r} declares shape {shape} ({size} bytes), "
            + ("more than its zip entry holds: the file is corrupt." if size <= budget and size > entry_size
               else f"implausibly large (the limit is {budget} bytes for the whole file). "
               f"{limits.hint('MODEL_BYTES')}")
        )
    buf = np.empty(size, np.uint8)
    if fh.readinto(memoryview(buf)) != size:
        raise ModelFileError(f"{str(path)!r}: array {name!r} is truncated.")
    return buf.view(dtype).reshape(shape, order="F" if fortran else "C"), total


def _meta_bytes(path: Path, arr: np.ndarray) -> bytes:
    """The JSON bytes of a model file's ``meta`` array (1-D uint8, as written by save)."""
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ModelFileError(f"{str(path)!r}: metadata must be a 1-D uint8 array of JSON text, "
                             f"got {arr.dtype} of shape {arr.shape}.")
    return arr.tobytes()


def _check_int(v, lo, hi=None) -> bool:
    return (not isinstance(v, bool) and isinstance(v, int) and v >= lo and (hi is None or v <= hi))


def _sigma_list(v) -> bool:
    """1 to 16 positive numbers (no larger than 1024): context sigmas in a model file."""
    return (isinstance(v, list) and 1 <= len(v) <= 16
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1024 for x in v))


def _check_file_params(path: Path, params, allowed) -> dict:
    """Training parameters read from a file, checked as a constructor would check them.

    Unknown names are dropped (files of older versions); a known name with a
    value of the wrong type or range raises :class:`ModelFileError`.
    """
    from .classifier import MAX_STAGES, MAX_TILE, MIN_TILE

    if not isinstance(params, dict):
        raise ModelFileError(f"{str(path)!r}: metadata field 'params' must be an object, got {type(params).__name__}.")
    checks = {
        "n_estimators": (lambda v: _check_int(v, 1, 10000), "an integer from 1 to 10000"),
        "max_depth": (lambda v: v is None or _check_int(v, 1), "null or a positive integer"),
        "min_samples_leaf": (lambda v: _check_int(v, 1) or (isinstance(v, float) and 0 < v < 1),
                             "a positive integer or a fraction in (0, 1)"),
        "max_features": (lambda v: v is None or v in ("sqrt", "log2") or _check_int(v, 1)
                         or (isinstance(v, float) and 0 < v <= 1), '"sqrt", "log2", null, an integer or a fraction'),
        "class_weight": (lambda v: v in (None, "balanced", "balanced_subsample", "auto"),
                         'null, "balanced" or "auto"'),
        "random_state": (lambda v: v is None or _check_int(v, 0, 2**32 - 1), "null or an integer from 0 to 2**32-1"),
        "n_jobs": (lambda v: v is None or (_check_int(v, -64, 4096) and v != 0), "null or a non-zero integer"),
        "tile_shape": (lambda v: v is None or _check_int(v, MIN_TILE, MAX_TILE),
                       f"null or an integer from {MIN_TILE} to {MAX_TILE}"),
        "tile": (lambda v: _check_int(v, 1024, 1 << 30), "an integer from 1024 to 2**30"),
        "stages": (lambda v: _check_int(v, 1, MAX_STAGES), f"an integer from 1 to {MAX_STAGES}"),
        "context_sigmas": (lambda v: v is None or v == "auto" or _sigma_list(v), 'null, "auto" or a list of sigmas'),
        "max_samples": (lambda v: v is None or _check_int(v, 100), "null or an integer >= 100"),
    }
    out = {}
    for key, value in params.items():
        if key not in allowed:
            continue
        ok, what = checks.get(key, (lambda v: True, ""))
        if not ok(value):
            raise ModelFileError(
                f"{str(path)!r}: parameter {key} = {value!r} is invalid; it must be {what}. "
                "The file was edited or damaged: retrain and save the model again."
            )
        out[key] = value
    return out


def _check_classes(path: Path, classes: np.ndarray, labels_dtype: np.dtype) -> None:
    """Class values of a file must be positive and fit the labels' integer type."""
    info = np.iinfo(labels_dtype)
    if classes.size and (classes.min() < max(1, info.min) or classes.max() > info.max):
        raise ModelFileError(
            f"{str(path)!r}: class values {classes.min()}..{classes.max()} do not fit the labels "
            f"type {labels_dtype} ({max(1, info.min)}..{info.max}); the file is inconsistent. Retrain "
            "and save the model again."
        )


def load_model(path):
    """Load a pixel classifier saved by :func:`save_model`.

    Raises :class:`~active_annotator.errors.ModelFileError` for anything that
    is not a valid model file of a known schema version.
    """
    from .classifier import PixelClassifier

    path = Path(path)
    a = _read_arrays(path)
    try:
        meta = json.loads(_meta_bytes(path, a["meta"]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{str(path)!r}: metadata is not valid JSON ({e}).") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a pixel-classifier file (format field missing).")
    version = meta.get("schema_version")
    if version not in (SCHEMA_VERSION, STAGES_SCHEMA_VERSION) or isinstance(version, bool):
        raise ModelFileError(
            f"{str(path)!r} has schema version {version!r}; this version of "
            f"napari-active-annotator reads versions {SCHEMA_VERSION} and {STAGES_SCHEMA_VERSION}. "
            "Upgrade the package (pip install -U napari-active-annotator) or retrain."
        )
    try:
        fs = FeatureSet.from_dict(meta["features"])
        classes = np.asarray(meta["classes"], dtype=np.int64)
        n_ch = int(meta["n_channels"])
        n_feat = int(meta["n_features"])
        labels_dtype = np.dtype(str(meta["labels_dtype"]))
        params = meta.get("params", {})
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{str(path)!r}: metadata field invalid or missing ({e}).") from None
    if not np.issubdtype(labels_dtype, np.integer):
        raise ModelFileError(f"{str(path)!r}: labels dtype {labels_dtype} is not an integer type.")
    _check_classes(path, classes, labels_dtype)
    if n_ch < 1 or n_feat != fs.n_features(n_ch):
        raise ModelFileError(
            f"{str(path)!r}: {n_feat} features do not match the feature set "
            f"({fs.n_features(n_ch)} for {n_ch} channel(s))."
        )
    forest = Forest(
        feature=a["feature"], threshold=a["threshold"], left=a["left"], right=a["right"],
        value=a["value"], roots=a["roots"], n_features=n_feat,
    ).validate()
    if forest.n_classes != classes.size or np.unique(classes).size != classes.size:
        raise ModelFileError(f"{str(path)!r}: class list does not match the forest's outputs.")
    imp = a["importances"]
    if imp.dtype != np.float64 or imp.shape != (n_feat,):
        raise ModelFileError(f"{str(path)!r}: feature importances have the wrong shape.")
    allowed = set(PixelClassifier.param_names()) - {"features"}
    ctx = meta.get("context_sigmas")
    if ctx is not None and not _sigma_list(ctx):
        raise ModelFileError(f"{str(path)!r}: metadata field 'context_sigmas' = {ctx!r} is invalid; it "
                             "must be a list of 1 to 16 sigmas. Retrain and save the model again.")
    forests = [forest] + _read_stage_forests(path, params, version, n_feat, classes.size, fs, ctx)
    clf = PixelClassifier(features=fs, **_check_file_params(path, params, allowed))
    if ctx is not None:
        clf.context_sigmas_ = tuple(float(x) for x in ctx)
    clf.classes_ = classes.astype(labels_dtype)
    clf.n_channels_in_ = n_ch
    clf.n_features_in_ = n_feat
    clf.feature_names_in_ = fs.names(n_ch)
    clf.labels_dtype_ = labels_dtype
    clf.forest_ = forest
    clf.forests_ = forests
    clf.feature_importances_ = imp
    clf.n_training_pixels_ = meta.get("n_training_pixels")
    return clf


def _read_stage_forests(path: Path, params: dict, version, n_feat: int, n_classes: int,
                        fs: FeatureSet, context_sigmas=None) -> list:
    """Forests of autocontext stages 2..N, validated (empty for a one-stage model)."""
    from .classifier import MAX_STAGES, context_spec

    stages = params.get("stages", 1)
    if not isinstance(stages, int) or isinstance(stages, bool) or not 1 <= stages <= MAX_STAGES:
        raise ModelFileError(f"{str(path)!r}: 'stages' must be an integer from 1 to {MAX_STAGES}, "
                             f"got {stages!r}.")
    if stages > 1 and version != STAGES_SCHEMA_VERSION:
        raise ModelFileError(f"{str(path)!r}: an autocontext model (stages={stages}) needs schema "
                             f"version {STAGES_SCHEMA_VERSION}, the file says {version!r}.")
    names = tuple(f"stage{k}_{n}" for k in range(2, stages + 1)
                  for n in ("feature", "threshold", "left", "right", "value", "roots"))
    if not names:
        return []
    a = _read_npz(path, names, "pixel-classifier")
    n_stage = n_feat + context_spec(fs, context_sigmas).n_features(n_classes)
    out = []
    for k in range(2, stages + 1):
        g = {n: a[f"stage{k}_{n}"] for n in ("feature", "threshold", "left", "right", "value", "roots")}
        f = Forest(**g, n_features=n_stage).validate()
        if f.n_classes != n_classes:
            raise ModelFileError(f"{str(path)!r}: stage {k}'s forest has {f.n_classes} outputs, "
                                 f"the model {n_classes} classes.")
        out.append(f)
    return out


# --------------------------------------------------------------------------- object classifier

OBJECT_FORMAT = "napari-active-annotator.object-classifier"
OBJECT_SCHEMA_VERSION = 1
OBJECT_SUFFIX = ".aaobjects"
_OBJECT_ARRAYS = ("feature", "threshold", "left", "right", "value", "roots", "importances",
                  "permutation_importances", "permutation_importances_std", "fill_values")


def _write_npz(path: Path, meta: dict, arrays: dict) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)  # stale, or a planted link: remove the entry, never write through it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(
                fh, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8), **arrays
            )
        os.replace(tmp, path)  # readers see the old file or the new one, never half
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
    return path


def save_object_classifier(clf, path, class_names: dict | None = None) -> Path:
    """Write a fitted :class:`~active_annotator.objects.ObjectClassifier` (atomically).

    Same safe format as :func:`save_model` (zip of ``.npy`` arrays + JSON
    ``meta``, format ``napari-active-annotator.object-classifier``); the suffix
    ``.aaobjects`` is added when missing. ``class_names`` (class value -> name)
    is stored for display. Returns the path written.
    """
    clf._check_fitted()
    path = Path(path)
    if path.suffix != OBJECT_SUFFIX:
        path = path.with_name(path.name + OBJECT_SUFFIX)
    meta = {
        "format": OBJECT_FORMAT,
        "schema_version": OBJECT_SCHEMA_VERSION,
        "package_version": _package_version(),
        "classes": [int(c) for c in clf.classes_],
        "class_names": {str(int(k)): str(v) for k, v in (class_names or {}).items()},
        "feature_names": list(clf.feature_names_in_),
        "n_training_objects": getattr(clf, "n_training_objects_", None),
        "params": clf.get_params(),
    }
    arrays = clf.forest_.arrays()
    arrays["importances"] = np.asarray(clf.feature_importances_, np.float64)
    arrays["permutation_importances"] = np.asarray(clf.permutation_importances_, np.float64)
    arrays["permutation_importances_std"] = np.asarray(clf.permutation_importances_std_, np.float64)
    arrays["fill_values"] = np.asarray(clf.fill_values_, np.float64)
    return _write_npz(path, meta, arrays)


def load_object_classifier(path):
    """Load an object classifier saved by :func:`save_object_classifier`.

    Every array is checked (:meth:`Forest.validate`, shapes, dtypes) before
    use; raises :class:`~active_annotator.errors.ModelFileError` otherwise.
    The stored class names are in ``clf.class_names_`` (dict value -> name).
    """
    from .objects import ObjectClassifier

    path = Path(path)
    a = _read_npz(path, ("meta",) + _OBJECT_ARRAYS, "object-classifier")
    try:
        meta = json.loads(_meta_bytes(path, a["meta"]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{str(path)!r}: metadata is not valid JSON ({e}).") from None
    if not isinstance(meta, dict) or meta.get("format") != OBJECT_FORMAT:
        raise ModelFileError(
            f"{str(path)!r} is not an object-classifier file (format field missing or "
            "different); a pixel classifier (.aamodel) loads with load_model."
        )
    version = meta.get("schema_version")
    if version != OBJECT_SCHEMA_VERSION:
        raise ModelFileError(
            f"{str(path)!r} has schema version {version!r}; this version of "
            f"napari-active-annotator reads version {OBJECT_SCHEMA_VERSION}. "
            "Upgrade the package (pip install -U napari-active-annotator) or retrain."
        )
    try:
        classes = np.asarray([int(c) for c in meta["classes"]], dtype=np.int64)
        names = [str(n) for n in meta["feature_names"]]
        params = meta.get("params", {})
        class_names = {int(k): str(v) for k, v in dict(meta.get("class_names", {})).items()}
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{str(path)!r}: metadata field invalid or missing ({e}).") from None
    n_feat = len(names)
    if n_feat < 1 or len(set(names)) != n_feat:
        raise ModelFileError(f"{str(path)!r}: measurement names are missing or repeated.")
    forest = Forest(
        feature=a["feature"], threshold=a["threshold"], left=a["left"], right=a["right"],
        value=a["value"], roots=a["roots"], n_features=n_feat,
    ).validate()
    if forest.n_classes != classes.size or np.unique(classes).size != classes.size:
        raise ModelFileError(f"{str(path)!r}: class list does not match the forest's outputs.")
    for key in _OBJECT_ARRAYS[6:]:
        arr = a[key]
        if arr.dtype != np.float64 or arr.shape != (n_feat,):
            raise ModelFileError(f"{str(path)!r}: array '{key}' has the wrong shape or type.")
    if not np.all(np.isfinite(a["fill_values"])):
        raise ModelFileError(f"{str(path)!r}: fill values must be finite.")
    if classes.size and classes.min() < 1:
        raise ModelFileError(f"{str(path)!r}: class values must be positive, got {classes.min()}.")
    clf = ObjectClassifier(**_check_file_params(path, params, ObjectClassifier.param_names()))
    clf.forest_ = forest
    clf.classes_ = classes
    clf.feature_names_in_ = names
    clf.n_features_in_ = n_feat
    clf.fill_values_ = a["fill_values"]
    clf.feature_importances_ = a["importances"]
    clf.permutation_importances_ = a["permutation_importances"]
    clf.permutation_importances_std_ = a["permutation_importances_std"]
    clf.n_training_objects_ = meta.get("n_training_objects")
    clf.class_names_ = class_names
    return clf


# -- CNN (.aacnn) -------------------------------------------------------------------
# One safetensors file: the tensors are the network's state dict; the header's string
# metadata holds format, schema_version, package_version, config (JSON of CNNConfig,
# including classes and normalisation), history and best_epoch. torch and the cnn
# module are imported inside the functions, so this module imports without torch.

CNN_FORMAT = "napari-active-annotator.cnn"
CNN_SCHEMA_VERSION = 1
CNN_SUFFIX = ".aacnn"
_MAX_HEADER = 16 << 20  # a real header is a few kB; refuse absurd ones before parsing


def save_cnn(clf, path) -> Path:
    """Write a fitted :class:`~active_annotator.cnn.CNNClassifier`'s weights and config to a
    ``.aacnn`` safetensors file (atomically); the suffix is added when missing. Returns the path."""
    from .cnn import _require_torch

    _require_torch()
    from safetensors.torch import save_file

    clf._check_fitted()
    path = Path(path)
    if path.suffix != CNN_SUFFIX:
        path = path.with_name(path.name + CNN_SUFFIX)
    state = {k: v.detach().cpu().contiguous() for k, v in clf.net_.state_dict().items()}
    meta = {
        "format": CNN_FORMAT,
        "schema_version": str(CNN_SCHEMA_VERSION),
        "package_version": _package_version(),
        "config": json.dumps(clf.config_.to_dict()),
        "history": json.dumps(clf.history_),
        "best_epoch": json.dumps(clf.best_epoch_),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)  # stale, or a planted link: never write through it
    try:
        save_file(state, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def is_cnn_file(path) -> bool:
    """True if ``path`` looks like a CNN model file (suffix or safetensors header with our format)."""
    path = Path(path)
    if path.suffix == CNN_SUFFIX:
        return True
    try:
        meta = _read_header(path).get("__metadata__", {})
        return isinstance(meta, dict) and meta.get("format") == CNN_FORMAT
    except (ModelFileError, OSError):
        return False


def _foreign_message(path: Path, head: bytes) -> str:
    """Why a pickle or zip file is not loaded, naming what it probably is."""
    if head[:2] == b"PK":
        import zipfile

        try:
            names = zipfile.ZipFile(path).namelist()
        except (zipfile.BadZipFile, OSError):
            names = []
        if "meta.npy" in names and not any(n.endswith(".pkl") for n in names):
            return (f"{path} is a random-forest model file (.aamodel), not a CNN model file; "
                    "use PixelClassifier.load or 'active-annotator predict' for it.")
    return (f"{path} is a pickle or torch.save archive, not a CNN model file; such files can "
            "run code when loaded and are refused. Save models with CNNClassifier.save.")


def _read_header(path: Path) -> dict:
    """The safetensors JSON header, checked before any tensor is read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head[:1] == b"\x80" or head[:2] == b"PK":
                raise ModelFileError(_foreign_message(path, head))
            if len(head) < 8:
                raise ModelFileError(f"{path} is truncated: too short to be a CNN model file.")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or n > path.stat().st_size - 8:
                raise ModelFileError(f"{path} is not a CNN model file (bad header length {n}).")
            raw = fh.read(n)
        header = json.loads(raw.decode("utf-8"))
    except ModelFileError:
        raise
    except FileNotFoundError:
        raise ModelFileError(f"No CNN model file at {path}.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a folder, not a CNN model file (.aacnn); choose the file inside it.") from None
    except OSError as e:
        raise ModelFileError(f"Cannot read the CNN model file {path} ({type(e).__name__}: {e}).") from None
    except (UnicodeDecodeError, json.JSONDecodeError, struct.error) as e:
        raise ModelFileError(f"{path} is not a CNN model file (unreadable header: {e}).") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} is not a CNN model file (header is not a JSON object).")
    return header


_SAFETENSORS_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                         "I8": 1, "U8": 1, "BOOL": 1}


def _check_cnn_sizes(path: Path, header: dict, cfg, torch, cnn_net) -> None:
    """Check the declared tensors and the config's network size before anything is built.

    The network is first built on torch's ``meta`` device (shapes only, no
    memory), so its parameter count and every tensor shape can be compared
    with the file's header before real weights are allocated or read.
    """
    if cfg.n_classes > limits.get("CLASSES"):
        raise ModelFileError(f"{path}: {cfg.n_classes} classes, more than the limit of "
                             f"{limits.get('CLASSES')}. {limits.hint('CLASSES')}")
    declared = 0
    shapes = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            shape = tuple(int(n) for n in entry["shape"])
            itemsize = _SAFETENSORS_ITEMSIZE[entry["dtype"]]
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{path}: the header entry of tensor {key!r} is invalid.") from None
        if any(n < 0 for n in shape):
            raise ModelFileError(f"{path}: tensor {key!r} has a negative shape {shape}.")
        shapes[key] = (shape, entry["dtype"])
        declared += limits.nbytes(shape, itemsize)
    budget = limits.get("MODEL_BYTES")
    if declared > budget:
        raise ModelFileError(f"{path} declares {declared} bytes of weights, more than the limit of "
                             f"{budget}. {limits.hint('MODEL_BYTES')}")
    with torch.device("meta"):
        skeleton = cnn_net.build_net(cfg.dims, cfg.in_channels, cfg.n_classes, cfg.widths, cfg.dropout)
    n_params = sum(p.numel() for p in skeleton.parameters())
    if n_params > limits.get("CNN_PARAMETERS"):
        raise ModelFileError(
            f"{path}: its config declares a network of {n_params} parameters, more than the limit of "
            f"{limits.get('CNN_PARAMETERS')}. {limits.hint('CNN_PARAMETERS')}")
    names = {"float32": "F32", "float64": "F64", "int64": "I64", "float16": "F16", "bfloat16": "BF16"}
    for key, t in skeleton.state_dict().items():
        want = (tuple(t.shape), names.get(str(t.dtype).replace("torch.", ""), str(t.dtype)))
        if key not in shapes:
            raise ModelFileError(f"{path}: the weights do not match the config (missing {key!r}).")
        if shapes[key] != want:
            raise ModelFileError(f"{path}: weight {key} has shape {shapes[key][0]} {shapes[key][1]}, the "
                                 f"config needs {want[0]} {want[1]}.")
    extra = sorted(set(shapes) - set(skeleton.state_dict()))
    if extra:
        raise ModelFileError(f"{path}: the weights do not match the config (unexpected {extra[:5]}).")


def load_cnn(path, device: str = "auto", n_threads: int | None = None):
    """Load a ``.aacnn`` file written by :func:`save_cnn` (:meth:`CNNClassifier.save`).

    Raises :class:`ModelFileError` for a missing, truncated, corrupt, foreign
    (pickle, torch.save) or newer-schema file, and for weights that do not
    match the config.
    """
    from .cnn import CNNClassifier, CNNConfig, _require_torch, _resolve_device

    torch = _require_torch()
    from safetensors import safe_open

    from . import cnn_net

    path = Path(path)
    header = _read_header(path)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path} is not a napari-active-annotator CNN file (its metadata is a "
                             f"{type(meta).__name__}, not an object).")
    if meta.get("format") != CNN_FORMAT:
        raise ModelFileError(
            f"{path} is not a napari-active-annotator CNN file (format {meta.get('format')!r}, "
            f"expected {CNN_FORMAT!r})."
        )
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise ModelFileError(f"{path} has no valid schema_version.") from None
    if version > CNN_SCHEMA_VERSION:
        raise ModelFileError(
            f"{path} uses CNN file schema {version}; this version reads up to {CNN_SCHEMA_VERSION}. "
            "Upgrade napari-active-annotator."
        )
    try:
        cfg = CNNConfig.from_dict(json.loads(meta["config"]))
        history = json.loads(meta.get("history", "{}"))
        best_epoch = json.loads(meta.get("best_epoch", "null"))
    except (KeyError, TypeError, json.JSONDecodeError, InputError) as e:
        raise ModelFileError(f"{path} has an invalid CNN config: {e}") from None
    if cfg.classes is None or cfg.in_channels is None or cfg.norm_mean is None or cfg.norm_std is None:
        raise ModelFileError(f"{path} holds an untrained CNN config (no classes/channels/normalisation).")
    _check_cnn_sizes(path, header, cfg, torch, cnn_net)
    net = cnn_net.build_net(cfg.dims, cfg.in_channels, cfg.n_classes, cfg.widths, cfg.dropout)
    expected = net.state_dict()
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            keys = set(f.keys())
            if keys != set(expected):
                missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
                raise ModelFileError(
                    f"{path}: the weights do not match the config (missing {missing[:5]}, unexpected {extra[:5]})."
                )
            state = {k: f.get_tensor(k) for k in keys}
    except ModelFileError:
        raise
    except Exception as e:  # safetensors raises its own error types for corrupt data
        raise ModelFileError(f"{path} is corrupt or not a CNN model file: {e}") from None
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape) or v.dtype != expected[k].dtype:
            raise ModelFileError(
                f"{path}: weight {k} has shape {tuple(v.shape)} {v.dtype}, the config needs "
                f"{tuple(expected[k].shape)} {expected[k].dtype}."
            )
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ModelFileError(f"{path}: weight {k} holds NaN or infinite values.")
    net.load_state_dict(state, strict=True)
    clf = CNNClassifier.from_config(cfg, device=device, n_threads=n_threads)
    clf.config_ = cfg
    clf.classes_ = np.asarray(cfg.classes, dtype=np.int64)
    clf.device_ = _resolve_device(device)
    clf.net_ = net.to(clf.device_).eval()
    clf.history_ = history
    clf.best_epoch_ = best_epoch
    return clf



# -- annotation stores (.aalabels) ---------------------------------------------------

LABELS_FORMAT = "napari-active-annotator.labels"
LABELS_VERSION = 1
LABELS_SUFFIX = ".aalabels"
LABELS_ARRAY = "annotations"
MAX_LABEL_VOXELS = 1 << 36


def is_annotation_store(path) -> bool:
    """True when ``path`` is an ``.aalabels`` folder written by this package."""
    path = Path(path)
    if path.suffix != LABELS_SUFFIX or not path.is_dir():
        return False
    try:
        import zarr

        return zarr.open_group(str(path), mode="r").attrs.get("format") == LABELS_FORMAT
    except Exception:  # unreadable is not ours; another reader may take it
        return False


def read_annotation_store(path) -> tuple[np.ndarray, dict]:
    """Read an ``.aalabels`` store: ``(labels, attrs)``.

    ``attrs`` holds ``name``, ``class_names`` ({int: str}) and, when stored,
    ``scale`` and ``translate``. Raises :class:`ModelFileError` for anything
    that is not a complete store of a known version.
    """
    import zarr

    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
    except Exception as e:  # zarr raises many types for broken metadata
        raise ModelFileError(f"{str(path)!r} is not a readable annotations store ({type(e).__name__}: {e}).") from None
    if attrs.get("format") != LABELS_FORMAT:
        raise ModelFileError(
            f"{str(path)!r} is not an annotations store (attribute 'format' is {attrs.get('format')!r})."
        )
    try:
        version = int(attrs.get("version", 0))
    except (TypeError, ValueError):
        raise ModelFileError(f"{str(path)!r}: invalid version {attrs.get('version')!r}.") from None
    if version > LABELS_VERSION:
        raise ModelFileError(
            f"{str(path)!r} was written by a newer napari-active-annotator (store version {version}, "
            f"this one reads up to {LABELS_VERSION}); upgrade with pip install -U napari-active-annotator."
        )
    try:
        arr = group[LABELS_ARRAY]
        shape, dtype = tuple(arr.shape), np.dtype(arr.dtype)
    except Exception:
        raise ModelFileError(f"{str(path)!r} has no '{LABELS_ARRAY}' array; the store is incomplete.") from None
    if not np.issubdtype(dtype, np.integer):
        raise ModelFileError(f"{str(path)!r}: annotations must be integers, the store holds {dtype}.")
    if (int(np.prod(shape, dtype=np.float64)) > MAX_LABEL_VOXELS
            or limits.nbytes(shape, dtype.itemsize) > limits.get("ARRAY_BYTES")):
        raise ModelFileError(f"{str(path)!r} declares an implausible shape {shape}; refusing to allocate it. "
                             f"{limits.hint('ARRAY_BYTES')}")
    try:
        labels = np.asarray(arr[...])
    except Exception as e:
        raise ModelFileError(f"{str(path)!r}: annotation chunks are corrupt ({type(e).__name__}: {e}).") from None
    out = {"name": str(attrs.get("name") or path.stem)}
    try:
        out["class_names"] = {int(k): str(v) for k, v in dict(attrs.get("class_names") or {}).items()}
        for key in ("scale", "translate"):
            if attrs.get(key) is not None and len(attrs[key]) == labels.ndim:
                out[key] = [float(v) for v in attrs[key]]
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{str(path)!r}: invalid attributes ({e}).") from None
    return labels, out


def write_annotation_store(path, labels, name: str | None = None, class_names: dict | None = None,
                           scale=None, translate=None) -> Path:
    """Write labels to an ``.aalabels`` store (suffix added); return the path.

    The store is built in a hidden temporary folder and renamed into place;
    an existing store is replaced only after the new one is complete.
    """
    import shutil
    import tempfile

    import zarr

    target = Path(path)
    if target.suffix != LABELS_SUFFIX:
        target = target.with_name(target.name + LABELS_SUFFIX)
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"Annotations must be an integer array, got dtype {labels.dtype}.")
    attrs = {
        "format": LABELS_FORMAT,
        "version": LABELS_VERSION,
        "name": str(name or target.stem),
        "class_names": {str(int(k)): str(v) for k, v in (class_names or {}).items()},
    }
    for key, value in (("scale", scale), ("translate", translate)):
        if value is not None:
            attrs[key] = [float(v) for v in value]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        chunks = tuple(min(n, 256) for n in labels.shape) or None
        array = group.create_array(LABELS_ARRAY, shape=labels.shape, dtype=labels.dtype,
                                   chunks=chunks, fill_value=0)
        array[...] = labels
        group.attrs.update(attrs)
        if target.exists():
            # a folder cannot be replaced by one rename: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "store")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
