"""Per-pixel uncertainty from class probabilities.

All functions take probabilities ``(n_classes, *spatial)`` (rows summing to 1,
as :meth:`PixelClassifier.predict_proba` returns) and give ``(*spatial)``
float32 in [0, 1], where 1 is most uncertain.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError


def _check(proba) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float32)
    if p.ndim < 2 or p.shape[0] < 2:
        raise InputError(
            f"Expected probabilities shaped (n_classes>=2, *spatial), got {p.shape}."
        )
    return p


def entropy(proba) -> np.ndarray:
    """Softmax entropy normalised by ``log(n_classes)``: 0 = certain, 1 = uniform."""
    p = _check(proba)
    h = np.zeros(p.shape[1:], np.float32)
    for pk in p:
        # 0 * log 0 = 0; clip avoids the warning and the NaN
        h -= pk * np.log(np.clip(pk, 1e-12, 1.0))
    h /= np.float32(np.log(p.shape[0]))
    return np.clip(h, 0.0, 1.0, out=h)


def margin(proba) -> np.ndarray:
    """One minus the gap between the two most likely classes."""
    p = _check(proba)
    top2 = np.partition(p, p.shape[0] - 2, axis=0)[-2:]
    return (1.0 - (top2[1] - top2[0])).astype(np.float32)


def least_confidence(proba) -> np.ndarray:
    """One minus the top probability, rescaled so a uniform prediction gives 1."""
    p = _check(proba)
    k = p.shape[0]
    return ((1.0 - p.max(axis=0)) * k / (k - 1)).astype(np.float32)


def mutual_information(tree_proba) -> np.ndarray:
    """Disagreement among an ensemble's members (BALD): ``H(mean p) - mean H(p_t)``.

    ``tree_proba`` is ``(n_members, n_classes, *spatial)``, e.g. every tree of
    the forest. High where the trees are individually confident but disagree
    (what more labels can resolve), low where they agree, also where all of
    them are unsure (ambiguous pixels). Normalised by ``log(n_classes)``.
    """
    t = np.asarray(tree_proba, dtype=np.float32)
    if t.ndim < 3 or t.shape[1] < 2:
        raise InputError(f"Expected member probabilities (n_members, n_classes>=2, *spatial), got {t.shape}.")
    mean_h = np.zeros(t.shape[2:], np.float32)
    for member in t:
        mean_h += entropy(member)
    mean_h /= np.float32(t.shape[0])
    return np.clip(entropy(t.mean(axis=0)) - mean_h, 0.0, 1.0)


MEASURES = {"entropy": entropy, "margin": margin, "least_confidence": least_confidence}


def uncertainty(proba, measure: str = "entropy") -> np.ndarray:
    """Dispatch to one of :data:`MEASURES` by name."""
    try:
        return MEASURES[measure](proba)
    except KeyError:
        raise InputError(f"Unknown uncertainty measure {measure!r}; choose from {list(MEASURES)}.") from None
