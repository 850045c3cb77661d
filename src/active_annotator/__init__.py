"""napari-active-annotator core: pixel features, classifiers, active learning.

Qt-free: nothing here imports napari, Qt or magicgui.

>>> from active_annotator import FeatureSet, PixelClassifier
>>> clf = PixelClassifier(FeatureSet.default(ndim=2))  # then .fit(image, labels)
"""

__version__ = "0.1.0"

from . import _jit_cache

with _jit_cache.kernels_cached_in_user_dir():  # compiled kernels go to the user cache, not site-packages
    from .classifier import PixelClassifier
    from .errors import (
        AnnotatorError,
        Cancelled,
        InputError,
        LabelError,
        ModelFileError,
        ModelMismatchError,
        NotFittedError,
    )
    from .features import FAMILIES, FeatureSet, compute
    from .persistence import load_model, save_model
    from .session import AnnotationSession
    from .uncertainty import entropy, least_confidence, margin


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
