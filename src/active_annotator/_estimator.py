"""The scikit-learn parameter contract, shared by the package's estimators."""

from __future__ import annotations

from .errors import InputError


class ParamsMixin:
    """``get_params``/``set_params`` over the names in ``_param_names``.

    As in scikit-learn, ``__init__`` stores each parameter unchanged under its
    own name, so ``sklearn.base.clone`` works.
    """

    _param_names: tuple[str, ...] = ()

    def get_params(self, deep: bool = False) -> dict:
        return {k: getattr(self, k) for k in self._param_names}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self._param_names:
                raise InputError(f"Unknown parameter {k!r}; valid: {list(self._param_names)}.")
            setattr(self, k, v)
        return self
