"""Where numba keeps the compiled kernels of this package.

numba's default (``cache=True`` without ``NUMBA_CACHE_DIR``) writes next to the
source, into ``site-packages/active_annotator/__pycache__``. pip does not know
those files: uninstalling the package leaves the folder behind, and a later
editable install then imports ``active_annotator`` as an empty namespace
package. So the kernels go to the user cache directory instead
(``~/.cache/active-annotator/numba`` on Linux), and only while this package's
modules are imported: numba picks a function's cache folder when the
function is decorated, so other libraries' kernels keep numba's own rules.
``NUMBA_CACHE_DIR``, when set, wins.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import threading
from pathlib import Path

APP = "active-annotator"


def user_cache_dir() -> Path:
    """The per-user cache folder of the package (platformdirs' ``user_cache_dir``)."""
    from platformdirs import user_cache_dir as _user_cache_dir

    return Path(_user_cache_dir(APP, appauthor=False))


@functools.cache  # probed once per process: every kernel decorator asks (see njit)
def numba_cache_dir() -> Path:
    """The folder for compiled kernels: writable, outside the installed package."""
    user = getattr(os, "getuid", lambda: "user")()
    for folder in (user_cache_dir() / "numba", Path(tempfile.gettempdir()) / f"{APP}-{user}" / "numba"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError:
            continue
        return folder
    return user_cache_dir() / "numba"  # numba then simply does not cache


@contextlib.contextmanager
def kernels_cached_in_user_dir():
    """Decorate this package's numba kernels with the cache in the user folder.

    Sets ``numba.config.CACHE_DIR`` for the duration of the block (the
    package's imports) and restores it afterwards.
    """
    try:
        from numba.core import config
    except ImportError:  # pragma: no cover - numba is a dependency
        yield
        return
    if os.environ.get("NUMBA_CACHE_DIR"):
        yield
        return
    before = config.CACHE_DIR
    config.CACHE_DIR = str(numba_cache_dir())
    try:
        yield
    finally:
        config.CACHE_DIR = before


def njit(**options):
    """``numba.njit(**options)`` applied with the cache in the user folder (see the module
    docstring): the kernel modules decorate with this, so the cache folder is right however
    they are first imported (the package's ``__init__`` imports nothing eagerly)."""
    import numba

    def decorate(func):
        with kernels_cached_in_user_dir():
            return numba.njit(**options)(func)

    return decorate


_warm_up_lock = threading.Lock()
_warm_up_thread: threading.Thread | None = None


def warm_up(ndims=(2, 3)) -> None:
    """Compile (or load from the user cache) the feature and forest kernels.

    Runs the default features of ``ndims``-D images and a two-tree forest on
    tiny data, so that a later Train on real data finds every kernel ready. On
    a fresh install that is the whole compilation time of the first Train.
    """
    import numpy as np

    from .classifier import PixelClassifier
    from .features import FeatureSet, compute

    rng = np.random.default_rng(0)
    for ndim in ndims:
        image = rng.random((12,) * ndim).astype(np.float32)
        spec = FeatureSet.default(ndim=ndim)
        compute(image, spec)
        labels = np.zeros(image.shape, np.uint8)
        labels.flat[:5], labels.flat[-5:] = 1, 2
        clf = PixelClassifier(FeatureSet(sigmas=(1.0,)), n_estimators=2, n_jobs=1)
        clf.fit(image, labels).predict_proba(image)


def start_warm_up(ndims=(2, 3)) -> threading.Thread:
    """Run :func:`warm_up` once per process in a background thread; returns the thread.

    A GUI calls this when it opens, so the kernels compile while the person
    looks at the image and paints the first strokes. Python waits for the
    thread at exit, so the interpreter never shuts down in the middle of
    compiling.
    """
    global _warm_up_thread
    with _warm_up_lock:
        if _warm_up_thread is None:
            _warm_up_thread = threading.Thread(target=_warm_up_quietly, args=(tuple(ndims),),
                                               name="active-annotator-warm-up")
            _warm_up_thread.start()
        return _warm_up_thread


def _warm_up_quietly(ndims) -> None:
    try:
        warm_up(ndims)
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first Train compiles
        pass
