"""Larger-than-memory and distributed prediction (the ``predict`` command runs it: :mod:`.cli.scale`).

:func:`predict_dask` turns any dask array (a zarr volume, a stack of TIFFs)
into a lazy prediction by a forest or a CNN: each chunk is enlarged by the
classifier's ``halo`` (for a forest, the feature set's
:attr:`~active_annotator.features.FeatureSet.halo`) with ``dask.array.map_overlap``
(``boundary="none"``, so image edges are reflected exactly as in memory),
classes are computed for the chunk's own pixels only, and a forest's result
equals :meth:`PixelClassifier.predict` / ``predict_proba`` exactly (a CNN's up
to float rounding). Peak memory is a few chunks' features per worker, whatever
the volume size.

Axes follow :mod:`active_annotator.classifier`: ``(*stack, *spatial)`` plus an
optional channel axis; the ``spatial`` axes (the classifier's spatial
dimensions) get the halo, stack axes get no overlap.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

from .errors import InputError
from .io.arrays import check_output, open_array, write_atomically

_DEFAULT_CHUNK = {1: 1 << 20, 2: 1024, 3: 128}


# -- the dask graph --------------------------------------------------------------


def _merge_small(chunks: tuple[int, ...], minimum: int) -> tuple[int, ...]:
    """Merge chunks smaller than ``minimum`` into a neighbour (map_overlap needs depth <= chunk)."""
    out = list(chunks)
    i = 0
    while len(out) > 1 and i < len(out):
        if out[i] < minimum:
            j = i - 1 if i > 0 else i + 1
            out[min(i, j)] = out[i] + out[j]
            del out[max(i, j)]
            i = 0
        else:
            i += 1
    return tuple(out)


@functools.lru_cache(maxsize=4)
def _load_model(path: str, mtime_ns: int, size: int):
    """A model file loaded once per worker process (the key changes when the file does)."""
    from .classifier import PixelClassifier

    return PixelClassifier.load(path)


def _model_from(ref):
    if isinstance(ref, tuple):
        return _load_model(*ref)
    return ref


def _is_cnn(clf) -> bool:
    from .cnn import CNNClassifier  # imports without torch

    return isinstance(clf, CNNClassifier)


def _resolve_model(clf):
    """``(model, ref)``: the fitted model and what travels to the workers with each task.

    A forest model file travels as ``(path, mtime_ns, size)`` (each worker loads it
    once); a CNN file is loaded here and travels as the model.
    """
    from .classifier import PixelClassifier
    from .persistence import is_cnn_file, load_cnn

    if isinstance(clf, PixelClassifier) or _is_cnn(clf):
        return clf, clf
    if is_cnn_file(clf):
        clf = load_cnn(clf)
        return clf, clf
    path = Path(clf).resolve()
    st = path.stat()
    ref = (str(path), st.st_mtime_ns, st.st_size)
    return _load_model(*ref), ref


def _labels_dtype(clf) -> np.dtype:
    """The dtype of predicted class values: the labels' (forest) or the smallest that holds them (CNN)."""
    if _is_cnn(clf):
        return np.min_scalar_type(int(clf.classes_.max()))
    return np.dtype(clf.labels_dtype_)


def _predict_block(block, *, clf, n_stack: int, overlap: tuple[int, ...], proba: bool,
                   block_info=None):
    """Predict one overlapped chunk ``(*stack, *spatial+halo, C)``; return it without halo."""
    clf = _model_from(clf)
    info = block_info[0]
    loc, nchunks = info["chunk-location"], info["num-chunks"]
    # boundary="none": a chunk has context only on sides that have a neighbour
    inner = tuple(
        slice(d if loc[a] > 0 else 0, block.shape[a] - (d if loc[a] < nchunks[a] - 1 else 0))
        for a, d in enumerate(overlap[:-1])
    )
    if _is_cnn(clf):
        # the CNN tiles the chunk itself, stack axes included
        p = clf.predict_proba(np.asarray(block), channel_axis=-1)[(slice(None),) + inner]
        if proba:
            return np.moveaxis(p, 0, -1)
        return clf.classes_.astype(_labels_dtype(clf))[np.argmax(p, 0)]
    return _forest_block(clf, block, inner, n_stack, proba)


def _forest_block(clf, block, inner, n_stack: int, proba: bool):
    """A forest's prediction of the ``inner`` pixels of a chunk, plane by plane."""
    from .features import compute

    out_spatial = tuple(s.stop - s.start for s in inner[n_stack:])
    stack_shape = block.shape[:n_stack]
    n_cls = len(clf.classes_)
    if proba:
        out = np.empty(stack_shape + out_spatial + (n_cls,), np.float32)
    else:
        out = np.empty(stack_shape + out_spatial, clf.labels_dtype_)
    fs = clf.feature_set
    if clf.n_stages > 1:
        from .classifier import _ArraySource

        # the block is the plane for the stage chain: its halo is all the context it needs
        for p in np.ndindex(*stack_shape):
            prob = clf._chain(_ArraySource(np.asarray(block[p]), fs, threads=1),
                              inner[n_stack:], clf._stage_forests(), n_cls, threads=1)
            if proba:
                out[p] = np.moveaxis(prob, 0, -1)
            else:
                out[p] = clf.classes_[np.argmax(prob, axis=0)]
        return out
    for p in np.ndindex(*stack_shape):
        feats = compute(np.asarray(block[p]), fs, channel_axis=-1, threads=1)
        feats = feats[(slice(None),) + inner[n_stack:]]
        xt = feats.reshape(feats.shape[0], -1)
        if proba:
            prob = clf.forest_.predict_proba(xt, threads=1)
            out[p] = prob.astype(np.float32).reshape(out_spatial + (n_cls,))
        else:
            idx = clf.forest_.predict_index(xt, threads=1)
            out[p] = clf.classes_[idx].reshape(out_spatial)
    return out


def predict_dask(clf, image, channel_axis: int | None = None, proba: bool = False,
                 chunks=None):
    """Lazy prediction of a (larger than memory) image with dask, by a forest or a CNN.

    Parameters
    ----------
    clf : PixelClassifier, CNNClassifier or path
        A fitted classifier, or its model file (``.aamodel`` or ``.aacnn``). With
        a forest's path, each worker process loads the file once instead of
        receiving the model with every task: use it on clusters (the file must be
        readable by the workers). A CNN file is loaded here.
    image : dask array, zarr array or numpy array
        ``(*stack, *spatial)`` with an optional channel axis.
    channel_axis : int or None
    proba : bool
        False: class values ``(*stack, *spatial)`` (as ``predict``: the labels'
        dtype for a forest, the smallest that holds the classes for a CNN); True:
        probabilities ``(n_classes, *stack, *spatial)`` float32 (as ``predict_proba``).
    chunks : int or tuple, optional
        Chunk edge per non-channel axis for the computation. Default for a forest:
        the input's chunks (dask arrays) or 1024 px in 2-D, 128 in 3-D, one plane
        along stack axes, chunks smaller than the halo merged. Default for a CNN:
        the input's chunks (one chunk for numpy and zarr input), and chunks smaller
        than its halo are an error.

    Returns
    -------
    dask.array.Array
        Nothing is computed until you call ``.compute()``, ``.to_zarr()``, etc.
        Chunks overlap by ``clf.halo`` pixels along spatial axes. A forest's
        values equal the in-memory prediction exactly; a CNN's do up to float
        rounding when chunk edges are multiples of ``2**depth``.
    """
    import dask.array as da

    clf, ref = _resolve_model(clf)
    cnn = _is_cnn(clf)
    clf._check_fitted()
    stack, spatial = clf.check_image(np.shape(image), channel_axis)
    n_stack, ndim = len(stack), len(spatial)
    if not isinstance(image, da.Array):
        # the CNN tiles a chunk itself: numpy input stays one chunk
        image = da.from_array(image, chunks="auto" if chunks is None and not cnn else -1)
    x = image[..., np.newaxis] if channel_axis is None else da.moveaxis(image, channel_axis, -1)
    nd = x.ndim
    halo = clf.halo  # a forest's: all autocontext stages' context
    if chunks is not None:
        if np.isscalar(chunks):
            chunks = (1,) * n_stack + (int(chunks),) * ndim
        chunks = tuple(chunks)
        if len(chunks) != nd - 1:
            raise InputError(
                f"chunks={chunks} needs one entry per non-channel axis ({nd - 1})."
            )
        x = x.rechunk(chunks + (-1,))
    elif cnn:
        x = x.rechunk({nd - 1: -1})
    elif image.chunksize == image.shape and image.size > 0:
        x = x.rechunk((1,) * n_stack + (_DEFAULT_CHUNK[ndim],) * ndim + (-1,))
    else:
        # chunks much smaller than the halo would mostly compute context: enlarge those
        small = {a: min(x.shape[a], _DEFAULT_CHUNK[ndim]) for a in range(n_stack, nd - 1)
                 if max(x.chunks[a]) < 4 * halo}
        x = x.rechunk({nd - 1: -1, **small})
    if cnn:
        # merged chunks would lose the 2**depth multiples the CNN is exact for: say so instead
        small = [a for a in range(n_stack, nd - 1) if len(x.chunks[a]) > 1 and min(x.chunks[a]) < halo]
        if small:
            raise InputError(
                f"Chunks along axes {small} are smaller than the CNN's halo ({halo} px); use larger chunks."
            )
    else:
        new_chunks = tuple(
            c if a < n_stack or a == nd - 1 else _merge_small(c, halo)
            for a, c in enumerate(x.chunks)
        )
        if new_chunks != x.chunks:
            x = x.rechunk(new_chunks)
    depth = tuple(halo if n_stack <= a < nd - 1 else 0 for a in range(nd))
    kwargs = dict(clf=ref, n_stack=n_stack, overlap=depth, proba=proba)
    if proba:
        out = da.map_overlap(
            _predict_block, x, depth=depth, boundary="none", trim=False,
            chunks=x.chunks[:-1] + ((len(clf.classes_),),), dtype=np.float32,
            meta=np.empty((0,) * nd, np.float32), **kwargs,
        )
        return da.moveaxis(out, -1, 0)
    dtype = _labels_dtype(clf)
    return da.map_overlap(
        _predict_block, x, depth=depth, boundary="none", trim=False,
        chunks=x.chunks[:-1], drop_axis=nd - 1, dtype=dtype,
        meta=np.empty((0,) * (nd - 1), dtype), **kwargs,
    )


# -- files -------------------------------------------------------------------------


def _progress_compute(target, scheduler: str | None):
    """Compute ``target`` (a dask collection or delayed) with a terminal progress bar."""
    import dask

    if scheduler:
        from distributed import Client, progress

        with Client(scheduler) as client:
            fut = client.compute(target)
            progress(fut)
            print(file=sys.stderr)
            return fut.result()
    from dask.diagnostics import ProgressBar

    with ProgressBar(out=sys.stderr):
        return dask.compute(target, scheduler="threads")[0]


def predict_file(model, input_path, output_path, *, channel_axis=None, chunks=None,
                 scheduler: str | None = None, proba: bool = False) -> Path:
    """Predict ``input_path`` with a model file and write ``output_path`` (.zarr or .tif).

    ``model`` is a forest (``.aamodel``) or a fine-tuned CNN (``.aacnn``).

    A zarr output is written chunk by chunk, so neither input nor output needs to fit
    in memory; a TIFF output is assembled in memory. Either is written to a hidden
    temporary next to ``output_path`` and renamed onto it when complete: an existing
    output stays intact until then, and an output that is the input is refused.
    """
    import dask.array as da

    check_output(input_path, output_path)
    image = open_array(input_path, lazy=True)
    if not isinstance(image, da.Array):
        image = da.from_array(image, chunks=-1)
    # a forest's path travels to the workers instead of the model's arrays (see predict_dask)
    result = predict_dask(model, image, channel_axis=channel_axis, proba=proba, chunks=chunks)
    out = Path(output_path)
    if out.suffix == ".zarr":
        # zarr needs regular chunks; merging a small last chunk (see predict_dask) breaks that
        regular = tuple(max(c) if len(c) < 2 else c[0] for c in result.chunks)
        if any(any(v > r for v in c[:-1]) or c[-1] > r for c, r in zip(result.chunks, regular)):
            result = result.rechunk(regular)

        def write(tmp):
            _progress_compute(result.to_zarr(str(tmp), overwrite=True, compute=False), scheduler)
    else:
        import tifffile

        def write(tmp):
            tifffile.imwrite(tmp, _progress_compute(result, scheduler))
    write_atomically(out, write)
    return out


__all__ = ["predict_dask", "predict_file"]
