"""One size budget for every file this package reads.

Model and project files come from other people; a few bytes of header can
declare terabytes. Every loader checks what a file *declares* (zip central
directory, ``.npy`` headers, safetensors headers, zarr metadata, trace start
and end times) against these limits before it allocates anything.

Each limit is a named default that a user who really has bigger data can
raise with an environment variable ``ACTIVE_ANNOTATOR_MAX_<NAME>``, e.g.::

    ACTIVE_ANNOTATOR_MAX_ARRAY_BYTES=64G napari

Values accept a plain integer or a suffix K, M, G, T (powers of 1024).
See docs/bad_inputs.md for what the user sees when a limit is hit.
"""

from __future__ import annotations

import os

from .errors import InputError

#: Total uncompressed bytes of all arrays of one model file (.aamodel,
#: .aaobjects, .aasignal), as declared by the zip and the .npy headers.
MODEL_BYTES = 1 << 30
#: Bytes of one array read whole into memory: embedded project images,
#: annotations, signals after gap merging.
ARRAY_BYTES = 4 << 30
#: Classes of a model file (a forest's outputs, a CNN's classes).
CLASSES = 1000
#: Parameters of a CNN declared by its config (64 M float32 = 256 MiB).
CNN_PARAMETERS = 64 << 20
#: Samples per second of a signal (a CSV time column, a seismic trace).
SAMPLING_RATE = 10_000_000

_DEFAULTS = {"MODEL_BYTES": MODEL_BYTES, "ARRAY_BYTES": ARRAY_BYTES, "CLASSES": CLASSES,
             "CNN_PARAMETERS": CNN_PARAMETERS, "SAMPLING_RATE": SAMPLING_RATE}
_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def env_name(name: str) -> str:
    """The environment variable that overrides limit ``name``."""
    return f"ACTIVE_ANNOTATOR_MAX_{name}"


def get(name: str) -> int:
    """The limit ``name`` (one of the module constants), with its override applied."""
    default = _DEFAULTS[name]
    text = os.environ.get(env_name(name), "").strip()
    if not text:
        return default
    mult = _SUFFIX.get(text[-1].upper(), 1)
    digits = text[:-1] if text[-1].upper() in _SUFFIX else text
    try:
        value = int(float(digits) * mult)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(
            f"{env_name(name)}={text!r} is not a positive size; use e.g. 8G or 1000000, "
            "or unset it to use the default."
        )
    return value


def hint(name: str) -> str:
    """The sentence that tells a user how to raise limit ``name``."""
    return (f"If the file is genuine, raise the limit with the environment variable "
            f"{env_name(name)} (now {get(name)}).")


def nbytes(shape, itemsize: int) -> int:
    """Bytes of an array of ``shape`` (Python integers: no overflow)."""
    n = int(itemsize)
    for s in shape:
        n *= int(s)
    return n
