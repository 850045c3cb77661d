"""napari-active-annotator core: pixel features, classifiers, active learning.

Qt-free: nothing here imports napari, Qt or magicgui.

>>> from active_annotator import FeatureSet, PixelClassifier
>>> clf = PixelClassifier(FeatureSet.default(ndim=2))  # then .fit(image, labels)
"""

__version__ = "0.1.0"

import importlib

# The names below are imported on first use (PEP 562), so that ``import active_annotator``
# and the command line start without scikit-learn, scipy and numba (measured: 1.9 s of
# imports, 1.4 s of it scikit-learn, before any command ran).
_EXPORTS = {
    "AnnotationSession": ".session",
    "AnnotatorError": ".errors",
    "Cancelled": ".errors",
    "FAMILIES": ".features",
    "FeatureSet": ".features",
    "InputError": ".errors",
    "LabelError": ".errors",
    "ModelFileError": ".errors",
    "ModelMismatchError": ".errors",
    "NotFittedError": ".errors",
    "PixelClassifier": ".classifier",
    "compute": ".features",
    "entropy": ".uncertainty",
    "least_confidence": ".uncertainty",
    "load_model": ".persistence",
    "margin": ".uncertainty",
    "save_model": ".persistence",
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "AnnotationSession",
    "AnnotatorError",
    "Cancelled",
    "FAMILIES",
    "FeatureSet",
    "InputError",
    "LabelError",
    "ModelFileError",
    "ModelMismatchError",
    "NotFittedError",
    "PixelClassifier",
    "compute",
    "entropy",
    "least_confidence",
    "load_model",
    "margin",
    "save_model",
]
