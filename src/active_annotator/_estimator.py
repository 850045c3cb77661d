"""The scikit-learn estimator contract, shared by every classifier of the package.

Every classifier (pixel, signal, object, CNN) is a
:class:`sklearn.base.BaseEstimator` and :class:`~sklearn.base.ClassifierMixin`:
``__init__`` stores each parameter unchanged under its own name, so
``get_params``, ``set_params`` and :func:`sklearn.base.clone` work, and
learned state ends with ``_``. The classifiers differ only in how they make
features.
"""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .errors import InputError


class Estimator(ClassifierMixin, BaseEstimator):
    """Base of the package's classifiers.

    Adds to scikit-learn's base: unknown names in :meth:`set_params` raise the
    package's :class:`InputError`; :meth:`score` counts labelled entries only
    (0 = not labelled, as everywhere in the package); :meth:`param_names`
    lists the parameters in signature order, the order :meth:`get_params`
    keeps (so reprs and model files read as before).
    """

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The ``__init__`` parameters, in signature order."""
        return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")

    def get_params(self, deep: bool = True) -> dict:
        """Parameters by name, in signature order (scikit-learn's sorts them by name)."""
        params = super().get_params(deep=deep)
        ordered = {k: params[k] for k in self.param_names()}
        ordered.update(params)  # nested ``name__param`` entries of deep=True
        return ordered

    def set_params(self, **params):
        names = self.param_names()
        unknown = [k for k in params if k.split("__", 1)[0] not in names]
        if unknown:
            raise InputError(f"Unknown parameter {unknown[0]!r}; valid: {list(names)}.")
        return super().set_params(**params)

    def _params_repr(self, skip=()) -> str:
        params = self.get_params(deep=False)
        return ", ".join(f"{k}={params[k]!r}" for k in self.param_names() if k not in skip)

    def score(self, X, y, sample_weight=None) -> float:
        """Fraction of labelled entries of ``y`` (non-zero) that :meth:`predict` gets right.

        ``X`` is what :meth:`predict` takes (an image, a signal, an object
        table); ``y`` has the shape of the prediction, 0 where not labelled.
        """
        y = np.asarray(y)
        pred = np.asarray(self.predict(X))
        if pred.shape != y.shape:
            raise InputError(f"y has shape {y.shape}; the prediction has shape {pred.shape}.")
        mask = y != 0
        if not mask.any():
            raise InputError("y has no labelled entries (all 0); nothing to score.")
        w = None if sample_weight is None else np.asarray(sample_weight)[mask]
        return float(np.average(pred[mask] == y[mask], weights=w))
