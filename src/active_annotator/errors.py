"""The package's own exceptions.

Every error a user can cause derives from :class:`AnnotatorError`, so a GUI
can catch one type and show its message. Each message says what is wrong and
how to fix it.
"""


class AnnotatorError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(AnnotatorError, ValueError):
    """An image, label array or parameter that cannot be used as given."""


class LabelError(InputError):
    """Labels that cannot train a classifier (wrong shape, dtype, too few classes)."""


class ModelFileError(AnnotatorError, ValueError):
    """A model or project file that is missing, truncated, corrupt or untrusted."""


class ModelMismatchError(AnnotatorError, ValueError):
    """A model that does not fit the image it is applied to (channels, dimensions)."""


class OutputError(AnnotatorError, OSError):
    """An output that cannot be written (full disk, read-only place, would overwrite the input)."""


class NotFittedError(AnnotatorError, RuntimeError):
    """A classifier used before ``fit`` was called."""


class Cancelled(AnnotatorError):
    """Raised inside long work when the caller asked it to stop."""
