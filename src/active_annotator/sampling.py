"""Ranking strategies: which candidates to label next, and why.

One entry point, :func:`suggest`, ranks candidates
(:mod:`active_annotator.candidates`) with one of :data:`STRATEGIES` and returns
an ordered list of :class:`Suggestion` (candidate, rank, score, reason):

``uncertainty`` (also ``entropy`` (default), ``margin``, ``least_confidence``)
    The most uncertain candidates first (per-candidate uncertainty from
    :func:`active_annotator.candidates.uncertainty`).
``diversity``
    Greedy k-center (core-set) on the candidates' descriptors: each pick is the
    candidate farthest, in feature space, from every candidate that already
    holds labels and every earlier pick.
``cluster``
    k-means on the descriptors (scikit-learn) into ``n`` clusters; the most
    uncertain candidate of each cluster, most uncertain cluster first.
``hybrid``
    Uncertainty weighted by distance to what is labelled and to what the
    batch already picked. Labels: every pixel's uncertainty is multiplied by
    ``1 - exp(-d / label_scale)``, ``d`` its distance to the nearest labelled
    pixel (``label_scale`` 1 px: a pixel touching a label keeps 63 %, three
    pixels away 95 %), before the per-candidate aggregation; farther away the
    retrained model's own uncertainty says what the labels taught. Picks: the
    candidate's score is multiplied by ``1 - exp(-d / scale)``, ``d`` the
    distance from its centre to the nearest earlier pick of the batch,
    ``scale`` the candidates' typical size, so a batch does not pile up along
    one uncertain boundary. (Wider label scales were measured and cost labels:
    ``docs/active_learning.md``.)
``power``
    Stochastic batch selection (Kirsch et al., TMLR 2023): candidates are
    drawn without replacement with probability proportional to
    ``uncertainty ** beta`` (Gumbel-top-k), so a batch spreads over the
    uncertain places instead of piling up on the few most uncertain ones,
    with no distance penalty to tune.
``clasp``
    Class-stratified power sampling (ClaSP PE, nnActive, Lueth et al. 2026):
    the picks go round the predicted classes, rarest first; each pick is a
    power draw among the candidates where that class is predicted (at least
    1 % of the candidate), so a rare class gets labels early. Needs ``proba``.
``typiclust``
    Cold start by typicality (TypiClust, Hacohen et al. 2022): k-means of the
    descriptors into (clusters holding labels + ``n``) clusters; from the
    largest clusters without labels, the most typical candidate (the densest:
    smallest mean distance to its nearest neighbours). Uses no model, so it is
    meant for the first rounds.
``random``
    Uniformly random order: the baseline.

Candidates that are fully labelled are skipped. Axes: ``uncertainty`` and
``labelled`` arrays have the shape of the data the candidates index (see
:attr:`Candidate.key`), e.g. ``(*spatial)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from . import candidates as cand
from .candidates import Candidate
from .errors import Cancelled, InputError
from .uncertainty import MEASURES
from .uncertainty import uncertainty as pixel_uncertainty

STRATEGIES = ("hybrid", "uncertainty", "entropy", "margin", "least_confidence",
              "power", "clasp", "diversity", "cluster", "typiclust", "random")

#: The strategy the widget and :func:`suggest` use unless told otherwise:
#: the winner of ``benchmarks/bench_active_learning.py`` (docs/active_learning.md).
#: Entropy met the suite's goals of median AULC above random on all 7 real
#: cases with no significant loss; ClaSP, hybrid and power each fell below
#: entropy on 3-4 of them (docs/active_learning.md, "The suite").
DEFAULT_STRATEGY = "entropy"

#: The exponent of ``power`` and ``clasp``: probability of a draw proportional
#: to ``uncertainty ** POWER_BETA`` (Kirsch et al. use 1 for power sampling).
POWER_BETA = 1.0


@dataclass(frozen=True)
class Suggestion:
    """One ranked candidate.

    Attributes
    ----------
    candidate : Candidate
    rank : int
        1 for the first place to label.
    score : float
        The strategy's score at the time of the pick (higher is better).
    reason : str
        Why it was picked, for people, e.g. ``"entropy 0.81, 120 px from
        nearest label"``.
    """

    candidate: Candidate
    rank: int
    score: float
    reason: str


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def suggest(
    candidates: Sequence[Candidate],
    uncertainty=None,
    labelled=None,
    strategy: str = DEFAULT_STRATEGY,
    n: int = 10,
    seed: int | None = None,
    *,
    proba=None,
    measure: str | None = None,
    aggregate: str = "top_mean",
    fraction: float = 0.1,
    distance_scale: float | None = None,
    avoid: str = "labels_and_picks",
    label_scale: float = 1.0,
    beta: float = POWER_BETA,
) -> list[Suggestion]:
    """Rank candidates and return the best ``n`` as suggestions.

    Parameters
    ----------
    candidates : list of Candidate
        ``diversity`` and ``cluster`` need descriptors
        (:func:`active_annotator.candidates.describe`).
    uncertainty : array, optional
        Either a per-pixel uncertainty map with the data's shape, or
        per-candidate scores ``(n_candidates,)`` (a 1-D array whose length is
        the number of candidates and whose shape differs from ``labelled``).
    labelled : int or bool array, the data's shape, optional
        The user's labels; non-zero = labelled.
    strategy : str
        One of :data:`STRATEGIES`; default :data:`DEFAULT_STRATEGY` (``"entropy"``).
    n : int
        Number of suggestions (fewer if fewer candidates are left).
    seed : int, optional
        For ``random``, k-means and tie-free repeatability.
    proba : float array ``(n_classes, *shape)``, optional
        Class probabilities; when given, the uncertainty map is computed from
        them with ``measure``.
    measure : {"entropy", "margin", "least_confidence"}, optional
        Defaults to the strategy's name when that is a measure, else entropy.
    aggregate, fraction :
        How pixel uncertainty becomes per-candidate uncertainty, see
        :func:`active_annotator.candidates.uncertainty`.
    distance_scale : float, optional
        ``hybrid``'s distance scale from the batch's picks, in pixels; default
        the median candidate extent.
    avoid : {"labels_and_picks", "picks"}
        What ``hybrid`` keeps its distance from: labelled pixels and earlier
        picks of the batch (default), or only the batch's picks (labels then
        act only through the retrained model's uncertainty).
    label_scale : float
        ``hybrid``'s distance scale from labelled pixels, per pixel (default
        1 px). For whole images of a collection, labelled images are avoided
        at ``distance_scale`` in descriptor space instead.
    beta : float
        Exponent of ``power`` and ``clasp`` draws (0: uniform, large: greedy).

    Returns
    -------
    list of Suggestion, best first, ranks 1..len.
    """
    if strategy not in STRATEGIES:
        raise InputError(f"Unknown strategy {strategy!r}; choose from {list(STRATEGIES)}.")
    if avoid not in ("labels_and_picks", "picks"):
        raise InputError(f"avoid must be 'labels_and_picks' or 'picks', got {avoid!r}.")
    n = int(n)
    if n < 1:
        raise InputError(f"n must be a positive number of suggestions, got {n}.")
    cands = list(candidates)
    if not cands:
        return []
    if measure is None:
        measure = strategy if strategy in MEASURES else "entropy"
    u_name = measure if proba is not None else "uncertainty"
    lab = None if labelled is None else np.asarray(labelled)

    scores = None
    if proba is not None:
        uncertainty = pixel_uncertainty(proba, measure)
    spatial = all(c.kind != "image" for c in cands)
    label_weighted = False
    dist_map = None  # hybrid: each pixel's distance to the nearest label, computed once
    if uncertainty is not None:
        u = np.asarray(uncertainty, dtype=np.float64)
        if u.ndim == 1 and u.shape[0] == len(cands) and (lab is None or lab.shape != u.shape):
            scores = u
        else:
            if lab is not None and lab.shape != u.shape:
                raise InputError(
                    f"labelled has shape {lab.shape} but the uncertainty map has {u.shape}; "
                    "both must have the data's shape."
                )
            if (strategy == "hybrid" and avoid == "labels_and_picks" and spatial
                    and lab is not None and np.any(lab)):
                if not label_scale > 0:
                    raise InputError(f"label_scale must be a positive distance in pixels, got {label_scale}.")
                dist_map = ndi.distance_transform_edt(lab == 0)
                u = u * -np.expm1(-dist_map / float(label_scale))  # 1 - exp(-d / label_scale)
                label_weighted = True
            scores = cand.uncertainty(cands, u, lab, aggregate=aggregate, fraction=fraction)
    elif strategy not in ("random", "diversity", "typiclust"):
        raise InputError(
            f"Strategy {strategy!r} needs uncertainty: pass an uncertainty map, "
            "per-candidate scores, or proba=classifier.predict_proba(image)."
        )

    if lab is not None:
        frac = cand.labelled_fraction(cands, lab)
    else:
        frac = np.zeros(len(cands))
    avail = np.flatnonzero(frac < 1.0)
    if avail.size == 0:
        return []
    n = min(n, avail.size)
    rng = np.random.default_rng(seed)

    if strategy == "random":
        picks = rng.permutation(avail)[:n]
        out = []
        for r, i in enumerate(picks, 1):
            s = float(scores[i]) if scores is not None else float("nan")
            extra = f", {u_name} {s:.2f}" if scores is not None else ""
            out.append(Suggestion(cands[i], r, s, f"random pick (baseline){extra}"))
        return out

    if strategy in ("uncertainty",) + tuple(MEASURES):
        order = avail[np.argsort(-scores[avail], kind="stable")][:n]
        return [
            Suggestion(cands[i], r, float(scores[i]), f"{u_name} {scores[i]:.2f}, {_ordinal(r)} most uncertain")
            for r, i in enumerate(order, 1)
        ]

    if strategy in ("power", "clasp"):
        if not (np.isfinite(beta) and beta >= 0):
            raise InputError(f"beta must be a non-negative number, got {beta}.")
        if strategy == "power":
            return _power(cands, avail, scores, n, rng, u_name, beta)
        if proba is None:
            raise InputError("Strategy 'clasp' stratifies by predicted class: pass proba=.")
        return _clasp(cands, avail, scores, n, rng, u_name, beta, predicted_class_fractions(cands, proba))
    if strategy == "typiclust":
        return _typiclust(cands, avail, frac, scores, n, seed, u_name)
    if strategy == "diversity":
        return _k_center(cands, avail, frac, scores, n, rng, u_name)
    if strategy == "cluster":
        return _cluster(cands, avail, scores, n, seed, u_name)
    return _hybrid(cands, avail, lab if avoid == "labels_and_picks" else None,
                   scores, n, distance_scale, u_name, spatial, label_weighted, frac, dist_map)


def predicted_class_fractions(candidates: Sequence[Candidate], proba) -> np.ndarray:
    """Fraction of each candidate's pixels predicted as each class, ``(n_candidates, n_classes)``.

    ``proba`` is ``(n_classes, *shape)`` over the data the candidates index.
    """
    p = np.asarray(proba)
    pred = np.argmax(p, axis=0)
    k = p.shape[0]
    out = np.zeros((len(candidates), k))
    for i, c in enumerate(candidates):
        v = c.pixels(pred)
        if v.size:
            out[i] = np.bincount(v.ravel(), minlength=k)[:k] / v.size
    return out


def _gumbel_keys(scores, rng, beta) -> np.ndarray:
    """Keys whose descending order is a draw without replacement with p ~ score**beta."""
    s = np.maximum(np.asarray(scores, np.float64), 0.0)
    with np.errstate(divide="ignore"):
        logs = np.where(s > 0, np.log(s), -1e300)
    return beta * logs + rng.gumbel(size=s.shape)


def _power(cands, avail, scores, n, rng, u_name, beta) -> list[Suggestion]:
    keys = _gumbel_keys(scores[avail], rng, beta)
    order = avail[np.argsort(-keys, kind="stable")][:n]
    return [Suggestion(cands[i], r, float(scores[i]),
                       f"{u_name} {scores[i]:.2f}, drawn with probability ~ {u_name}^{beta:g} (power sampling)")
            for r, i in enumerate(order, 1)]


def _clasp(cands, avail, scores, n, rng, u_name, beta, fractions) -> list[Suggestion]:
    present = fractions[avail] >= 0.01
    # rarest predicted class first (by predicted pixels over the pool)
    totals = fractions[avail].sum(axis=0)
    order_k = [int(k) for k in np.argsort(totals, kind="stable") if present[:, k].any()]
    keys = _gumbel_keys(scores[avail], rng, beta)
    taken = np.zeros(avail.size, bool)
    out = []
    ki = 0
    while len(out) < n and not taken.all():  # one pick per pass: an empty stratum falls back to the pool
        k = order_k[ki % len(order_k)] if order_k else None
        ki += 1
        pool = ~taken & (present[:, k] if k is not None else True)
        stratum = k is not None and pool.any()
        if not stratum:
            pool = ~taken
        j = int(np.argmax(np.where(pool, keys, -np.inf)))
        taken[j] = True
        i = int(avail[j])
        where = (f"class {k + 1} of the prediction ({fractions[i, k]:.0%} of it)" if stratum
                 else "no class left to stratify")
        out.append(Suggestion(cands[i], len(out) + 1, float(scores[i]),
                              f"{u_name} {scores[i]:.2f}, class-stratified power draw: {where}"))
    return out


def _typiclust(cands, avail, frac, scores, n, seed, u_name, n_neighbours: int = 20) -> list[Suggestion]:
    from sklearn.cluster import KMeans

    x = _standardise(cand.descriptors(cands))
    labelled = np.flatnonzero(frac > 0)
    k = int(min(len(x), labelled.size + n))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
    lab_clusters = set(km.labels_[labelled].tolist())
    is_avail = np.zeros(len(cands), bool)
    is_avail[avail] = True
    sizes = np.bincount(km.labels_, minlength=k)
    # largest clusters without labels first, then the rest by size
    order = sorted(range(k), key=lambda c: (c in lab_clusters, -sizes[c]))
    out = []
    for c in order:
        if len(out) == n:
            break
        members = np.flatnonzero((km.labels_ == c) & is_avail)
        if members.size == 0:
            continue
        xm = x[km.labels_ == c]
        d = np.linalg.norm(x[members][:, None, :] - xm[None], axis=2)
        m = min(n_neighbours, xm.shape[0] - 1)
        typ = 1.0 / (np.sort(d, axis=1)[:, 1:m + 1].mean(axis=1) + 1e-12) if m > 0 else np.ones(members.size)
        i = int(members[np.argmax(typ)])
        is_avail[i] = False
        extra = f", {u_name} {scores[i]:.2f}" if scores is not None else ""
        out.append(Suggestion(cands[i], len(out) + 1, float(typ.max()),
                              f"most typical of cluster of {sizes[c]} candidates"
                              f"{' without labels' if c not in lab_clusters else ''} (typicality){extra}"))
    if len(out) < n:  # fewer clusters than picks: the rest by typicality of the leftovers
        rest = np.flatnonzero(is_avail)[: n - len(out)]
        for i in rest:
            out.append(Suggestion(cands[i], len(out) + 1, 0.0, "remaining candidate (typicality)"))
    return out


def _k_center(cands, avail, frac, scores, n, rng, u_name) -> list[Suggestion]:
    x = _standardise(cand.descriptors(cands))
    covered = np.flatnonzero(frac > 0)
    min_d = np.full(len(cands), np.inf)
    for j in covered:
        min_d = np.minimum(min_d, np.linalg.norm(x - x[j], axis=1))
    is_avail = np.zeros(len(cands), bool)
    is_avail[avail] = True
    out = []
    for r in range(1, n + 1):
        if np.isinf(min_d[is_avail]).all():
            # nothing labelled yet: start from the most uncertain (or a random) candidate
            i = int(avail[np.argmax(scores[avail])]) if scores is not None else int(rng.choice(avail))
            d = float("inf")
            why = "first pick, nothing labelled yet"
        else:
            masked = np.where(is_avail, min_d, -np.inf)
            i = int(np.argmax(masked))
            d = float(min_d[i])
            why = f"feature distance {d:.2f} to nearest labelled or picked candidate (k-center)"
        if scores is not None:
            why += f", {u_name} {scores[i]:.2f}"
        out.append(Suggestion(cands[i], r, d, why))
        is_avail[i] = False
        min_d = np.minimum(min_d, np.linalg.norm(x - x[i], axis=1))
    return out


def _cluster(cands, avail, scores, n, seed, u_name) -> list[Suggestion]:
    from sklearn.cluster import KMeans

    x = _standardise(cand.descriptors(cands)[avail])
    k = min(n, len(np.unique(x, axis=0)))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    picks = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        best = members[np.argmax(scores[avail[members]])]
        picks.append((float(scores[avail[best]]), c, int(avail[best]), members.size))
    picks.sort(key=lambda t: -t[0])
    return [
        Suggestion(cands[i], r, s,
                   f"{u_name} {s:.2f}, most uncertain of cluster {_ordinal(r)} of {k} ({size} candidates)")
        for r, (s, c, i, size) in enumerate(picks, 1)
    ]


def _hybrid(cands, avail, lab, scores, n, distance_scale, u_name, spatial, label_weighted=False,
            frac=None, dist_map=None) -> list[Suggestion]:
    centres = np.array([c.centre for c in cands], dtype=np.float64)
    if spatial:
        if distance_scale is None:
            distance_scale = float(np.median([c.extent for c in cands])) or 1.0
        if lab is not None and np.any(lab):
            # distance of every pixel to the nearest labelled pixel, read at the centres
            if dist_map is None:
                dist_map = ndi.distance_transform_edt(lab == 0)
            idx = tuple(np.clip(np.rint(centres[:, a]).astype(int), 0, dist_map.shape[a] - 1)
                        for a in range(dist_map.ndim))
            d_label = dist_map[idx].astype(np.float64)
        else:
            d_label = np.full(len(cands), np.inf)
        pos = centres
        unit = "px"
    else:
        # whole images: distances in (standardised) descriptor space
        pos = _standardise(cand.descriptors(cands))
        d_label = np.full(len(cands), np.inf)
        labelled_imgs = [i for i, c in enumerate(cands) if lab is not None and np.any(c.pixels(lab))]
        for j in labelled_imgs:
            d_label = np.minimum(d_label, np.linalg.norm(pos - pos[j], axis=1))
        if distance_scale is None:
            nn = [np.sort(np.linalg.norm(pos - p, axis=1))[1] for p in pos] if len(pos) > 1 else [1.0]
            distance_scale = float(np.median(nn)) or 1.0
        unit = "(feature distance)"
    d_pick = np.full(len(cands), np.inf)
    pick_rank = np.zeros(len(cands), int)
    is_avail = np.zeros(len(cands), bool)
    is_avail[avail] = True
    out = []
    for r in range(1, n + 1):
        # with per-pixel label weighting the labels are already in ``scores``
        d = d_pick if label_weighted else np.minimum(d_label, d_pick)
        weight = 1.0 - np.exp(-d / distance_scale)
        total = np.where(is_avail, scores * weight, -np.inf)
        i = int(np.argmax(total))
        if np.isinf(d_label[i]) and np.isinf(d_pick[i]):
            where = "nothing labelled or picked yet"
        elif label_weighted and frac is not None and frac[i] > 0:
            where = "holds labels but is still uncertain"
        elif d_label[i] <= d_pick[i]:
            where = f"{d_label[i]:.0f} {unit} from nearest label"
        else:
            where = f"{d_pick[i]:.0f} {unit} from suggestion {pick_rank[i]}"
        out.append(Suggestion(cands[i], r, float(total[i]), f"{u_name} {scores[i]:.2f}, {where}"))
        is_avail[i] = False
        dp = np.linalg.norm(pos - pos[i], axis=1)
        closer = dp < d_pick
        pick_rank[closer] = r
        d_pick = np.minimum(d_pick, dp)
    return out


DESCRIPTOR_STRATEGIES = ("diversity", "cluster", "typiclust")


def image_patches(shape, size=32, spatial_ndim: int | None = None) -> list[Candidate]:
    """Patches over an image or a stack of images, as the pixel classifier sees them.

    Parameters
    ----------
    shape : tuple of int
        ``(*stack, *spatial)``: at most one stack axis (planes of a stack or
        frames of a time-lapse), ``spatial`` 2-D or 3-D.
    size : int or tuple of int
        Patch edge per spatial axis.
    spatial_ndim : int, optional
        Number of spatial axes (the feature set's ``ndim``); default all axes
        (up to 3).

    Returns
    -------
    list of Candidate: 2-D tiles (with ``stack_index`` for stacks) or 3-D blocks.
    """
    shape = tuple(int(n) for n in shape)
    nd = min(len(shape), 3) if spatial_ndim is None else int(spatial_ndim)
    stack, spatial = shape[:-nd], shape[-nd:]
    if len(stack) > 1:
        raise InputError(
            f"Suggestions work on one image, one volume or one stack of them; shape {shape} "
            f"has {len(stack)} stack axes before its {nd} spatial ones. Suggest on one "
            "time point or channel at a time.")
    if not stack:
        return cand.patches(spatial, size)
    out: list[Candidate] = []
    for i in range(stack[0]):
        out += cand.patches(spatial, size, stack_index=i, start_id=len(out))
    return out


def _describe_by_plane(cands, image, features, channel_axis, should_stop, feature_source=None):
    """Mean features per candidate, one plane (or volume) of features in memory at a time.

    ``feature_source(plane) -> cache`` (a session's feature caches): the features are
    read from it (``cache.region``) instead of being computed again.
    """
    from .features import compute

    if feature_source is None:
        img = np.asarray(image)
        if channel_axis is not None:
            img = np.moveaxis(img, channel_axis, -1)
    ca = -1 if channel_axis is not None else None
    planes = sorted({c.stack_index for c in cands}, key=lambda i: -1 if i is None else i)
    out = {}
    for p in planes:
        if should_stop is not None and should_stop():
            raise Cancelled("Ranking was cancelled.")
        if feature_source is not None:
            cache = feature_source(() if p is None else (p,))
            feats = cache.region(tuple(slice(0, n) for n in cache.shape))
        else:
            block = img if p is None else img[p]
            feats = compute(block, features, channel_axis=ca)
        mine = [c for c in cands if c.stack_index == p]
        flat = cand.describe([replace(c, stack_index=None) for c in mine], feats)
        for c, d in zip(mine, flat):
            out[c.id] = replace(c, descriptor=d.descriptor)
    return [out[c.id] for c in cands]


def suggest_for_image(
    proba,
    labels=None,
    strategy: str = DEFAULT_STRATEGY,
    n: int = 10,
    size=32,
    seed: int | None = None,
    *,
    spatial_ndim: int | None = None,
    image=None,
    features=None,
    channel_axis: int | None = None,
    should_stop=None,
    feature_source=None,
) -> list[Suggestion]:
    """Rank the patches of an image (or stack, or volume) from a classifier's probabilities.

    The one call a GUI or script needs after ``predict_proba``: builds the
    patches (:func:`image_patches`), gives them feature descriptors when the
    strategy needs them (``diversity``, ``cluster``), and ranks them with
    :func:`suggest`.

    Parameters
    ----------
    proba : float array ``(n_classes, *stack, *spatial)``
        :meth:`PixelClassifier.predict_proba` of the image.
    labels : int array ``(*stack, *spatial)``, optional
        The user's labels (0 = unlabelled).
    strategy, n, seed :
        As in :func:`suggest`; ``n`` suggestions at most.
    size : int or tuple of int
        Patch edge per spatial axis, in pixels.
    spatial_ndim : int, optional
        Spatial axes of the feature set (2: planes of a stack are separate
        images; 3: volumes); default all axes up to 3.
    image : array ``(*stack, *spatial)`` with an optional channel axis
        Needed only for ``diversity`` and ``cluster`` (descriptors are the mean
        ``features`` over each patch, computed one plane or volume at a time).
    features : FeatureSet, optional
        Default ``FeatureSet.default(spatial_ndim)``; pass the classifier's
        ``feature_set`` to describe patches with what it learns from.
    channel_axis : int or None
        Channel axis of ``image``.
    should_stop : callable() -> bool, optional
        Checked between planes; True stops with ``Cancelled``.
    feature_source : callable(plane index tuple) -> feature cache, optional
        Cached features of ``features`` per plane (``AnnotationSession`` passes its
        own): descriptor strategies read them instead of computing them again.

    Returns
    -------
    list of Suggestion, best first. Each candidate's ``centre`` and ``key``
    are in the coordinates of ``(*stack, *spatial)``.
    """
    p = np.asarray(proba)
    if p.ndim < 2:
        raise InputError(f"proba must be (n_classes, *spatial), got shape {p.shape}.")
    shape = p.shape[1:]
    if labels is not None and np.shape(labels) != shape:
        raise InputError(f"labels have shape {np.shape(labels)} but the probabilities cover {shape}.")
    nd = min(len(shape), 3) if spatial_ndim is None else int(spatial_ndim)
    cands = image_patches(shape, size, nd)
    if strategy in DESCRIPTOR_STRATEGIES:
        if image is None:
            raise InputError(f"Strategy {strategy!r} compares patches by their features: pass image=.")
        from .features import FeatureSet

        fs = features if features is not None else FeatureSet.default(ndim=nd)
        cands = _describe_by_plane(cands, image, fs, channel_axis, should_stop, feature_source)
    return suggest(cands, labelled=labels, strategy=strategy, n=n, seed=seed, proba=p)


__all__ = ["Suggestion", "suggest", "suggest_for_image", "image_patches", "predicted_class_fractions",
           "STRATEGIES", "DEFAULT_STRATEGY", "POWER_BETA"]
