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
import os
import tempfile
from pathlib import Path

APP = "active-annotator"


def user_cache_dir() -> Path:
    """The per-user cache folder of the package (platformdirs' ``user_cache_dir``)."""
    from platformdirs import user_cache_dir as _user_cache_dir

    return Path(_user_cache_dir(APP, appauthor=False))


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
