"""Which features matter: rank feature families and scales on the user's labels,
and propose a smaller :class:`FeatureSet` that validates as well (as ilastik's
"Suggest features" does).

How: the features at the labelled pixels are computed once for the full set;
the strokes are split into train and validation parts by connected component
(:func:`active_annotator.evaluation.split_labels`, so validation pixels have
no training neighbour from the same stroke). A forest on the training part
ranks every family and every scale by summed impurity importance. Candidate
sets (the top 1..F families by importance, times every contiguous range of
scales, smallest first) are then scored on the validation part by the mean
Jaccard over the classes, reusing the columns already computed (a candidate's
features are a subset of the full set's, by name); the smallest candidate
within ``tolerance`` of the full set's score (and within
``confidence_tolerance`` of its mean probability of the true class) is proposed.

Axes follow :mod:`active_annotator.classifier`: an image ``(*stack, *spatial)``
with an optional channel axis, labels ``(*stack, *spatial)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .errors import LabelError
from .features import FeatureSet


@dataclass
class FeatureSuggestion:
    """The outcome of :func:`suggest_features`.

    Attributes
    ----------
    families : dict family -> importance (summed over its features), largest first
    scales : dict sigma -> importance (summed over the features at that scale), largest first
    full : FeatureSet, full_score : float
        The set that was examined and its validation score (mean Jaccard).
    proposed : FeatureSet, proposed_score : float
        The smallest candidate within the tolerance of ``full_score``.
    candidates : list of (FeatureSet, n_features, score), in the order tried
    n_validation_pixels : int
    """

    families: dict
    scales: dict
    full: FeatureSet
    full_score: float
    proposed: FeatureSet
    proposed_score: float
    candidates: list
    n_validation_pixels: int

    def report(self, n_channels: int = 1) -> str:
        """A few lines for a person: the ranking and the proposal."""
        fam = ", ".join(f"{k} {v:.2f}" for k, v in self.families.items())
        sc = ", ".join(f"{k:g} {v:.2f}" for k, v in self.scales.items())
        return (
            f"importance by family: {fam}\n"
            f"importance by scale (sigma): {sc}\n"
            f"full set: {self.full.n_features(n_channels)} features, validation mean Jaccard "
            f"{self.full_score:.3f}\n"
            f"proposed: families {list(self.proposed.families)}, sigmas {list(self.proposed.sigmas)}: "
            f"{self.proposed.n_features(n_channels)} features, validation mean Jaccard "
            f"{self.proposed_score:.3f} ({self.n_validation_pixels} validation pixels)"
        )


def _family_of(name: str) -> tuple[str, float | None]:
    """``(family, sigma or None)`` of a feature name such as ``hessian1_s2.0_c0``."""
    base = name.rsplit("_c", 1)[0]
    if base == "original":
        return "original", None
    if base.startswith("deep"):
        return "deep", None
    fam, _, s = base.partition("_s")
    fam = "hessian" if fam.startswith("hessian") else fam
    return fam, float(s)


def _score(clf, X, y, train, val, classes) -> tuple[float, float]:
    """(mean Jaccard, mean probability of the true class) on the validation rows."""
    from .evaluation import metrics

    clf.fit_features(np.ascontiguousarray(X[train]), y[train])
    proba = clf.predict_proba_features(np.ascontiguousarray(X[val].T))
    pred = clf.classes_[np.argmax(proba, axis=0)]
    jac = float(np.nanmean(list(metrics(y[val], pred, classes).jaccard.values())))
    col = np.searchsorted(clf.classes_, y[val])
    known = clf.classes_[np.minimum(col, len(clf.classes_) - 1)] == y[val]
    p_true = np.where(known, proba[np.minimum(col, len(clf.classes_) - 1), np.arange(col.size)], 0)
    return jac, float(p_true.mean())


def suggest_features(image, labels, features: FeatureSet | None = None,
                     channel_axis: int | None = None, n_estimators: int = 50,
                     validation: float = 0.3, tolerance: float = 0.005,
                     confidence_tolerance: float = 0.02, seed: int | None = 0,
                     n_jobs: int = -1) -> FeatureSuggestion:
    """Rank families and scales on these labels and propose a smaller feature set.

    Parameters
    ----------
    image : array ``(*stack, *spatial)`` with an optional channel axis
    labels : integer array ``(*stack, *spatial)``; 0 = unlabelled; at least
        two classes, with strokes enough to hold some out
    features : FeatureSet, optional
        The set to examine (default ``FeatureSet.default`` for the image's
        spatial dimensions, at most 3).
    channel_axis : int or None
    n_estimators : int
        Trees of each forest fitted (one per candidate tried).
    validation : float
        Target fraction of each class's strokes held out.
    tolerance : float
        The proposal's mean Jaccard may be this much below the full set's.
    confidence_tolerance : float
        ... and its mean probability of the true class this much below (the
        Jaccard alone cannot tell sets apart once both are perfect).

    Returns
    -------
    FeatureSuggestion
    """
    from .classifier import PixelClassifier
    from .evaluation import split_labels

    lab = np.asarray(labels)
    if features is None:
        nd = max(1, min(3, np.ndim(image) - (channel_axis is not None)))
        features = FeatureSet.default(ndim=nd)
    clf = PixelClassifier(features, n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
    X, y, n_ch = clf.training_data(image, lab, channel_axis)
    full = clf.feature_set  # with a fitted deep basis, if any
    split = split_labels(lab, validation=validation, seed=seed)
    val = split.validation[lab != 0] != 0
    train = ~val
    if not val.any() or np.unique(y[train]).size < 2:
        raise LabelError(
            "Too few strokes to hold some out for validation: paint a few separate strokes per "
            "class (at least two classes) before asking which features matter."
        )
    classes = [int(c) for c in np.unique(y)]
    names = full.names(n_ch)
    column = {n: i for i, n in enumerate(names)}
    full_score, full_conf = _score(clf, X, y, train, val, classes)
    imp = clf.feature_importances_
    fam_imp: dict[str, float] = {}
    scale_imp: dict[float, float] = {}
    for n, v in zip(names, imp):
        fam, s = _family_of(n)
        fam_imp[fam] = fam_imp.get(fam, 0.0) + float(v)
        if s is not None:
            scale_imp[s] = scale_imp.get(s, 0.0) + float(v)
    fam_rank = sorted(fam_imp, key=lambda k: -fam_imp[k])
    scale_rank = sorted(scale_imp, key=lambda k: -scale_imp[k])
    sig = list(full.sigmas)
    ranges = [tuple(sig[i:j]) for i in range(len(sig)) for j in range(i + 1, len(sig) + 1)] or [()]
    cands, seen = [], set()
    for k in range(1, len(fam_rank) + 1):
        fams = tuple(fam_rank[:k])
        filtered = bool(set(fams) - {"original", "deep"})  # families that have scales
        for r in (ranges if filtered else [()]):
            spec = replace(full, families=fams, sigmas=r)
            key = tuple(spec.names(n_ch))  # e.g. DoG with one scale adds nothing: same set
            if key not in seen:
                seen.add(key)
                cands.append(spec)
    cands.sort(key=lambda s: (s.n_features(n_ch), -sum(fam_imp.get(f, 0) for f in s.families)))
    tried = []
    proposed, proposed_score = full, full_score
    for spec in cands:
        cols = [column.get(n) for n in spec.names(n_ch)]
        if any(c is None for c in cols) or len(cols) >= len(names):
            continue
        twin = PixelClassifier(spec, n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
        score, conf = _score(twin, X[:, cols], y, train, val, classes)
        tried.append((spec, len(cols), score))
        # the Jaccard saturates on easy strokes; the confidence in the right class does not
        if score >= full_score - tolerance and conf >= full_conf - confidence_tolerance:
            proposed, proposed_score = spec, score
            break
    return FeatureSuggestion(
        families={k: fam_imp[k] for k in fam_rank}, scales={k: scale_imp[k] for k in scale_rank},
        full=full, full_score=full_score, proposed=proposed, proposed_score=proposed_score,
        candidates=tried, n_validation_pixels=int(val.sum()),
    )


__all__ = ["FeatureSuggestion", "suggest_features"]
