"""Random-forest pixel classifier with the scikit-learn estimator contract.

Axes: an image is ``(*stack, *spatial)`` plus an optional channel axis given by
``channel_axis``. ``spatial`` has ``features.ndim`` axes (1, 2 or 3); any
leading axes beyond that are *stack* axes, processed plane by plane (e.g. a
time-lapse of 2-D images, or a volume the user wants treated as 2-D slices).
Labels have the shape ``(*stack, *spatial)``: 0 means unlabelled, any other
integer is a class, kept as given.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._estimator import Estimator
from .errors import (
    Cancelled,
    InputError,
    LabelError,
    ModelMismatchError,
    NotFittedError,
)
from .features import FeatureSet, compute, compute_at, padded, tile_slices
from .forest import Forest

ProgressCallback = Callable[[int, int], None]
StopCallback = Callable[[], bool]


def split_axes(image_shape, spatial_ndim: int, channel_axis: int | None):
    """Return ``(stack_shape, spatial_shape, n_channels)`` for an image shape.

    Raises :class:`InputError` if the image has fewer non-channel axes than
    ``spatial_ndim``.
    """
    shape = list(image_shape)
    n_ch = 1
    if channel_axis is not None:
        if not -len(shape) <= channel_axis < len(shape):
            raise InputError(
                f"channel_axis={channel_axis} is out of range for an image of shape "
                f"{tuple(image_shape)}."
            )
        n_ch = shape.pop(channel_axis)
    if len(shape) < spatial_ndim:
        raise InputError(
            f"The feature set is {spatial_ndim}-D but the image has only {len(shape)} "
            f"non-channel axes (shape {tuple(image_shape)}, channel_axis={channel_axis}). "
            f"Use FeatureSet.default(ndim={len(shape)}) or check channel_axis."
        )
    n_stack = len(shape) - spatial_ndim
    return tuple(shape[:n_stack]), tuple(shape[n_stack:]), n_ch


def check_size(spatial, fs: FeatureSet) -> None:
    """Refuse images smaller than the largest scale (features would be meaningless)."""
    if any(n == 0 for n in spatial):
        raise InputError(f"The image is empty (spatial shape {tuple(spatial)}).")
    smallest = min(spatial)
    big = [s for s in fs.sigmas if s > smallest] if fs.families != ("original",) else []
    if big:
        ok = [s for s in fs.sigmas if s <= smallest]
        raise InputError(
            f"The image is only {smallest} pixel(s) along its shortest spatial axis "
            f"(shape {tuple(spatial)}), smaller than sigma {big[0]:g}. "
            + (f"Use sigmas up to {ok[-1]:g} for an image this small, e.g. "
               f"FeatureSet(sigmas={tuple(ok)})." if ok else
               "Use a larger image, or FeatureSet(families=('original',)) without filters.")
        )


def _channels_last_view(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """``(*stack, *spatial, C)`` view (C=1 added when there is no channel axis)."""
    if channel_axis is None:
        return image[..., np.newaxis]
    return np.moveaxis(image, channel_axis, -1)


MIN_TILE = 16  # smaller tiles spend almost all their time on the halo (1 px: 173 s for 256x256)
MAX_TILE = 1 << 22


def _check_tile_shape(tile_shape) -> None:
    if tile_shape is None:
        return
    if (isinstance(tile_shape, bool) or not isinstance(tile_shape, (int, np.integer))
            or not MIN_TILE <= tile_shape <= MAX_TILE):
        raise InputError(
            f"tile_shape must be None (automatic) or an integer from {MIN_TILE} to {MAX_TILE} "
            f"pixels, got {tile_shape!r}."
        )


MAX_CLASS_VALUE = 2**31 - 1
MAX_CLASSES = 1000


def check_labels(labels, expected_shape) -> np.ndarray:
    """Validate a label array; return it as a numpy array.

    Raises :class:`LabelError` with the fix when the shape, dtype or values are wrong.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise LabelError(
            f"Labels must be integers (0 = unlabelled, 1..K = classes), got dtype "
            f"{labels.dtype}. Convert with labels.astype(numpy.uint8)."
        )
    if labels.shape != tuple(expected_shape):
        raise LabelError(
            f"Labels have shape {labels.shape} but the image's non-channel shape is "
            f"{tuple(expected_shape)}. Paint the labels on this image, or set "
            "channel_axis if the image has channels."
        )
    if labels.size and labels.min() < 0:
        raise LabelError(
            f"Labels contain negative values (min {labels.min()}); use 0 for "
            "unlabelled and positive integers for classes."
        )
    if labels.size and int(labels.max()) > MAX_CLASS_VALUE:
        raise LabelError(
            f"Label value {int(labels.max())} is larger than {MAX_CLASS_VALUE}; classes are "
            "small positive integers. Renumber them 1..K, e.g. "
            "numpy.unique(labels, return_inverse=True)."
        )
    return labels


NO_LABELS_MESSAGE = ("There are no labels yet: paint at least two classes (values 1, 2, ...) "
                     "before training.")


def require_labels(labels) -> None:
    """Raise :class:`LabelError` when ``labels`` has no labelled pixel (all 0)."""
    if not np.any(labels):
        raise LabelError(NO_LABELS_MESSAGE)


def labelled_planes(labels: np.ndarray, spatial_ndim: int) -> list[tuple]:
    """Indices over the stack axes of ``labels`` ``(*stack, *spatial)`` of the planes
    holding at least one label (``[()]`` without stack axes, if labelled)."""
    stack = labels.shape[:labels.ndim - spatial_ndim]
    return [p for p in (np.ndindex(*stack) if stack else [()]) if np.any(labels[p])]


def labelled_rows(rows_at, labels: np.ndarray, planes, *,
                  should_stop: StopCallback | None = None,
                  on_progress: ProgressCallback | None = None):
    """Feature rows and class values of the labelled pixels, plane by plane.

    Parameters
    ----------
    rows_at : callable(plane, mask) -> (n, n_features)
        The features of one plane at ``mask``'s pixels (``mask`` is the plane's
        ``labels > 0``), row by row in C order of the mask.
    labels : integer array ``(*stack, *spatial)``; 0 = unlabelled
    planes : list of index tuples over the stack axes, from :func:`labelled_planes`
    should_stop, on_progress : optional; checked and told once per plane

    Returns
    -------
    X : (n_labelled, n_features) as ``rows_at`` gives them; y : (n_labelled,) in
    ``labels``' dtype
    """
    if not planes:
        raise LabelError(NO_LABELS_MESSAGE)
    Xs, ys = [], []
    for i, p in enumerate(planes):
        if should_stop is not None and should_stop():
            raise Cancelled("Training was cancelled.")
        lab = labels[p]
        mask = lab > 0
        Xs.append(rows_at(p, mask))
        ys.append(lab[mask])
        if on_progress:
            on_progress(i + 1, len(planes))
    return np.concatenate(Xs), np.concatenate(ys)


MAX_STAGES = 5
N_FOLDS = 3
"""Folds of the out-of-fold stage probabilities that later autocontext stages train on."""
CLASS_WEIGHTS = (None, "balanced", "auto")
AUTO_CLASS_WEIGHTS = (None, "balanced")
"""The weightings ``class_weight="auto"`` chooses from, by out-of-fold score (ties: the first)."""


def _row_folds(y: np.ndarray, n_folds: int = N_FOLDS) -> np.ndarray:
    """Folds of training rows without their pixel positions: within each class,
    contiguous runs of rows (slabs along the first axis for rows in C order)."""
    folds = np.empty(y.size, np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        folds[idx] = np.arange(idx.size) * n_folds // max(idx.size, 1)
    return folds


def _macro_jaccard(y, pred, classes) -> float:
    """Mean over ``classes`` of |pred == c and y == c| / |pred == c or y == c|."""
    return float(np.mean([((pred == c) & (y == c)).sum() / max(1, ((pred == c) | (y == c)).sum())
                          for c in classes]))


def context_spec(fs: FeatureSet, sigmas=None) -> FeatureSet:
    """Filters applied to one stage's probabilities for the next autocontext stage.

    The probabilities themselves plus their Gaussian smoothing at ``sigmas``,
    by default the feature set's scales (:data:`~active_annotator.features.DEFAULT_SIGMAS`
    when it has none).
    """
    from .features import DEFAULT_SIGMAS

    return FeatureSet(sigmas=tuple(float(x) for x in (sigmas or fs.sigmas or DEFAULT_SIGMAS)),
                      families=("original", "gaussian"), ndim=fs.ndim, truncate=fs.truncate)


MAX_CONTEXT_OCTAVES = 2
"""At most this many doublings of the largest feature sigma that ``context_sigmas="auto"`` adds
(each doubles the context halo a prediction reads)."""


def object_radius(labels, ndim: int) -> float:
    """Typical radius in pixels of the labelled objects of the rarest class.

    The class with the fewest labelled pixels; its connected regions in each
    ``ndim``-D plane of ``labels`` (8-/26-connected); the size of the region
    that the median pixel of that class lies in (pixel-weighted median); the
    radius of a disc (ball, half a segment) of that size. Thin strokes give a
    small radius, painted regions their own.
    """
    from math import gamma, pi

    from scipy import ndimage

    labels = np.asarray(labels)
    vals, counts = np.unique(labels[labels > 0], return_counts=True)
    if vals.size == 0:
        return 0.0
    c = vals[np.argmin(counts)]
    stack = labels.shape[:labels.ndim - ndim]
    sizes = []
    for p in (np.ndindex(*stack) if stack else [()]):
        comp, n = ndimage.label(labels[p] == c, structure=np.ones((3,) * ndim, bool))
        if n:
            sizes.append(np.bincount(comp.ravel())[1:])
    s = np.sort(np.concatenate(sizes))
    cum = np.cumsum(s)
    median = float(s[np.searchsorted(cum, cum[-1] / 2)])
    unit = pi ** (ndim / 2) / gamma(ndim / 2 + 1)  # volume of the unit ball
    return (median / unit) ** (1 / ndim)


def auto_context_sigmas(labels, fs: FeatureSet) -> tuple:
    """``context_sigmas="auto"``: the feature set's sigmas, plus doublings of the largest
    (at most :data:`MAX_CONTEXT_OCTAVES`) that are no larger than :func:`object_radius`, so
    the next stage sees the probabilities across the objects the labels paint."""
    from .features import DEFAULT_SIGMAS

    out = [float(x) for x in (fs.sigmas or DEFAULT_SIGMAS)]
    r = object_radius(labels, fs.ndim)
    top = max(out)
    for _ in range(MAX_CONTEXT_OCTAVES):
        if 2 * top > r:
            break
        top *= 2
        out.append(top)
    return tuple(out)


class _ArraySource:
    """Exact features of any region of one in-memory plane ``(*spatial, C)``.

    Each region is filtered with the feature set's halo of context, so the
    values equal :func:`compute` on the whole plane (as :class:`FeatureCache` does).
    """

    def __init__(self, plane, fs: FeatureSet, threads: int | None = None):
        self.plane, self.fs, self.threads = plane, fs, threads
        self.shape = tuple(plane.shape[:-1])

    def region(self, region):
        outer, inner = padded(region, self.shape, self.fs.halo)
        f = compute(np.asarray(self.plane[outer]), self.fs, channel_axis=-1, threads=self.threads)
        return f[(slice(None),) + inner]

    def at(self, mask):
        return compute_at(self.plane, self.fs, mask, channel_axis=-1, threads=self.threads)


class _FeatureArraySource:
    """A precomputed feature stack ``(n_features, *spatial)`` treated as the whole image."""

    def __init__(self, feats):
        self.feats = feats
        self.shape = tuple(feats.shape[1:])

    def region(self, region):
        return self.feats[(slice(None),) + tuple(region)]


def _fold_ids(labels: np.ndarray, n_folds: int = N_FOLDS) -> np.ndarray:
    """Fold (0..n_folds-1) of every labelled pixel, in C order of ``labels != 0``.

    Stratified by class, so every fold's complement holds every class. Within
    a class, connected strokes stay in one fold (balanced by size), so a
    stroke's out-of-fold probabilities come from forests that saw none of it;
    a class with fewer strokes than folds, or whose strokes cannot be shared
    out evenly (one dense region), is cut into slabs along the axis where its
    pixels spread most.
    """
    from scipy import ndimage

    mask = labels != 0
    values = labels[mask]
    folds = np.empty(values.size, np.int64)
    coords = np.nonzero(mask)
    structure = np.ones((3,) * labels.ndim, bool)
    for c in np.unique(values):
        sel = values == c
        comp, n = ndimage.label(labels == c, structure=structure)
        comp = comp[mask][sel]
        if n >= n_folds:
            sizes = np.bincount(comp, minlength=n + 1)[1:]
            fold_of = np.empty(n + 1, np.int64)
            load = np.zeros(n_folds)
            for k in np.argsort(-sizes, kind="stable"):
                f = int(np.argmin(load))
                fold_of[k + 1] = f
                load[f] += sizes[k]
            if load.max() <= 2 * load.sum() / n_folds:
                folds[sel] = fold_of[comp]
                continue
            # one stroke dominates (e.g. a dense background): balanced slabs instead
        pts = [x[sel] for x in coords]
        axis = int(np.argmax([int(x.max() - x.min()) for x in pts]))
        x = pts[axis]
        edges = np.quantile(x, np.linspace(0, 1, n_folds + 1)[1:-1])
        folds[sel] = np.searchsorted(edges, x, side="right")
    return folds


#: Default :attr:`PixelClassifier.max_samples`.
DEFAULT_MAX_SAMPLES = 40000


def class_sample_sizes(counts, max_samples: int) -> np.ndarray:
    """Rows per class that one tree of a :class:`_SubsampledForest` bootstraps.

    In proportion to the class sizes (``max_samples / n`` of each), but no
    class gets fewer than ``min(n_c, max_samples // (2 K))``: a rare class is
    drawn whole instead of shrinking with the rest.
    """
    counts = np.asarray(counts, np.int64)
    frac = max_samples / counts.sum()
    floor = max_samples // (2 * counts.size)
    return np.minimum(counts, np.maximum(np.rint(frac * counts).astype(np.int64), floor))


class _SubsampledForest:
    """A random forest whose trees each bootstrap a class-aware subsample of the rows.

    scikit-learn's ``max_samples`` subsamples all rows alike, so a rare class
    loses its few rows with the rest (micronuclei: held-out Jaccard 0.512 ->
    0.491 at 34k of 131k rows per tree). Here each tree draws
    :func:`class_sample_sizes` rows of each class (with replacement), weighted
    by ``n_c / m_c`` so the leaves' class proportions are those of all the
    labels. Each tree is scikit-learn's ``DecisionTreeClassifier`` (random
    feature subsets as in its forest), fitted in threads (the tree builder
    releases the GIL). Offers what :class:`PixelClassifier` reads from a
    fitted forest: ``estimators_``, ``classes_``, ``n_features_in_``,
    ``feature_importances_``, ``predict``.
    """

    def __init__(self, n_estimators, max_samples, *, max_depth, min_samples_leaf, max_features,
                 class_weight, random_state, n_jobs):
        self.n_estimators, self.max_samples = int(n_estimators), int(max_samples)
        self.max_depth, self.min_samples_leaf = max_depth, min_samples_leaf
        self.max_features, self.class_weight = max_features, class_weight
        self.random_state, self.n_jobs = random_state, n_jobs

    def fit(self, X, y):
        from joblib import Parallel, delayed
        from sklearn.tree import DecisionTreeClassifier

        X = np.ascontiguousarray(X, np.float32)
        self.classes_, yi = np.unique(y, return_inverse=True)
        groups = [np.flatnonzero(yi == k) for k in range(self.classes_.size)]
        cw = np.ones(self.classes_.size)
        if self.class_weight == "balanced":  # as scikit-learn: n / (K * n_c) on all the labels
            cw = len(y) / (self.classes_.size * np.array([g.size for g in groups], float))
        elif isinstance(self.class_weight, dict):
            cw = np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])
        seeds = np.random.SeedSequence(self.random_state).spawn(self.n_estimators)
        sizes = class_sample_sizes([g.size for g in groups], self.max_samples)
        # each drawn row stands for n_c / m_c rows of its class (times the class weight)
        per_row = cw * np.array([g.size for g in groups], float) / sizes

        def one(seed):
            rng = np.random.default_rng(seed)
            idx = np.concatenate([g[rng.integers(0, g.size, int(m))] for g, m in zip(groups, sizes)])
            # a bootstrap's repeats as weights, as scikit-learn's forest does (each row once)
            rows, times = np.unique(idx, return_counts=True)
            tree = DecisionTreeClassifier(max_depth=self.max_depth,
                                          min_samples_leaf=self.min_samples_leaf,
                                          max_features=self.max_features,
                                          random_state=int(rng.integers(2**31 - 1)))
            return tree.fit(X[rows], yi[rows], sample_weight=times * per_row[yi[rows]])

        n_jobs = None if self.n_jobs in (None, -1) else int(self.n_jobs)
        self.estimators_ = Parallel(n_jobs=n_jobs or -1, prefer="threads")(
            delayed(one)(sd) for sd in seeds)
        self.n_features_in_ = X.shape[1]
        return self

    @property
    def feature_importances_(self) -> np.ndarray:
        imp = np.mean([t.tree_.compute_feature_importances(normalize=False)
                       for t in self.estimators_], axis=0)
        total = imp.sum()
        return imp / total if total > 0 else imp

    def predict_proba(self, X) -> np.ndarray:
        X = np.ascontiguousarray(X, np.float32)
        p = np.zeros((X.shape[0], self.classes_.size))
        for t in self.estimators_:
            p += t.predict_proba(X)
        return p / len(self.estimators_)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class PixelClassifier(Estimator):
    """Random forest on multiscale filter features, one prediction per pixel.

    Parameters
    ----------
    features : FeatureSet, optional
        Which features; default ``FeatureSet.default(ndim=2)``.
    n_estimators : int
        Number of trees.
    max_depth : int or None
        Maximum tree depth; None grows trees until leaves are pure.
    min_samples_leaf : int
        Minimum labelled pixels per leaf.
    max_features : {"sqrt", "log2"}, int, float or None
        Features considered per split, as in scikit-learn.
    class_weight : {None, "balanced", "auto"}
        "balanced" weights classes inversely to their labelled pixel counts.
        "auto" chooses between None and "balanced" from the labels: the one
        whose out-of-fold macro Jaccard at the labelled pixels (folds of whole
        strokes, as for autocontext) is higher, ties to None. With ``stages``
        >= 2 the score is that of a second-stage forest on the out-of-fold
        context, so the choice sees what autocontext makes of each weighting;
        it costs the first stage's fold forests once more. Balanced weights
        help a rare class that is a region and can lose a rare class of tiny
        objects; no fixed choice does both. The choice is
        :attr:`class_weight_`.
    random_state : int or None
        Seed for repeatable forests.
    n_jobs : int
        Threads for training (-1: all cores).
    tile_shape : int or None
        Prediction tile edge in pixels per axis (memory is bounded by the
        tile); default 262144 in 1-D, 512 in 2-D, 96 in 3-D.
    stages : int
        Autocontext stages (1 to 5). Stage k+1 is a forest on the image
        features plus the class probabilities of stage k and their Gaussian
        smoothing at the feature scales (:func:`context_spec`); at the labelled
        pixels it trains on out-of-fold probabilities (:data:`N_FOLDS` folds of
        whole strokes), so it learns how stage k errs on pixels it has not
        memorised. 1 is a single forest. Each stage adds :func:`context_spec`'s
        halo to :attr:`halo`. Stages before the last have half of
        ``n_estimators`` trees (their output is only the next stage's input).
    context_sigmas : None, "auto" or tuple of float
        Sigmas of the smoothed probabilities a stage passes to the next
        (with ``stages`` >= 2). None: the feature set's sigmas. "auto": those
        plus doublings of the largest up to the typical radius of the rarest
        class's labelled regions (:func:`auto_context_sigmas`; at most x4), so
        large painted objects get context across them while thin strokes and
        small objects keep the feature scales. The sigmas used are
        :attr:`context_sigmas_` (saved with the model).
    max_samples : int or None
        With more labelled pixels than this, each tree trains on a bootstrap
        sample of about this many, drawn per class in proportion to the class
        sizes, a rare class whole (at least ``max_samples / (2 K)`` of each
        class; :func:`class_sample_sizes`), weighted so the classes keep their
        proportions. Only dense labels reach the default 40,000; below it the
        forest is scikit-learn's ``RandomForestClassifier`` on all pixels, as
        before. 131k labels, 100 trees, two cores: 22 s -> 8 s at the same
        held-out quality (``benchmarks/bench_fit.py``, docs/benchmarks.md).
        None: every tree bootstraps all labelled pixels.

    Attributes
    ----------
    classes_ : ndarray
        Class values seen in the labels, sorted; the rows of ``predict_proba``.
    n_channels_in_ : int
    n_features_in_ : int
    feature_names_in_ : list of str
    forest_ : Forest
        The first stage's forest (on the image features).
    forests_ : list of Forest
        One forest per stage; ``forests_[0] is forest_``.
    context_sigmas_ : tuple of float
        After an autocontext fit: the context smoothing sigmas in use.
    class_weight_ : None or "balanced"
        The weighting the forests were trained with (``class_weight``, or
        what "auto" chose; not stored in model files).
    class_weight_scores_ : dict
        After a ``class_weight="auto"`` fit: out-of-fold macro Jaccard per
        candidate weighting (None is the key ``"none"``).
    training_probabilities_ : list of ndarray (n_training_pixels, n_classes)
        After an autocontext fit (not stored in model files): the out-of-fold
        probabilities of stage k at the labelled pixels that stage k+1 trained on.
    fold_models_ : list (per fold) of lists (per stage before the last) of (Forest or None, columns)
        After an autocontext fit (not stored in model files): the small forests
        that made those out-of-fold probabilities.
    training_folds_ : uint8 array, the labels' shape
        After an autocontext fit (not stored): fold + 1 of every training
        pixel, 0 elsewhere (``predict_proba(..., training_image=True)``).
    feature_importances_ : ndarray (n_features_in_,)

    Examples
    --------
    >>> clf = PixelClassifier(FeatureSet.default(ndim=2)).fit(image, labels)  # doctest: +SKIP
    >>> proba = clf.predict_proba(image)          # (n_classes, *spatial), float32
    >>> segmentation = clf.predict(image)         # class values as painted
    """

    def __init__(
        self,
        features: FeatureSet | None = None,
        n_estimators: int = 100,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        max_features="sqrt",
        class_weight: str | None = None,
        random_state: int | None = 0,
        n_jobs: int = -1,
        tile_shape: int | None = None,
        stages: int = 1,
        context_sigmas=None,
        max_samples: int | None = DEFAULT_MAX_SAMPLES,
    ):
        self.features = features
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.tile_shape = tile_shape
        self.stages = stages
        self.context_sigmas = context_sigmas
        self.max_samples = max_samples

    def __repr__(self) -> str:
        return f"PixelClassifier(features={self.feature_set!r}, {self._params_repr(skip=('features',))})"

    @property
    def feature_set(self) -> FeatureSet:
        """The features in use: ``features`` (default ``FeatureSet.default(ndim=2)``), with the
        ``deep`` family's basis once :meth:`fit` has fitted it on the training image."""
        if getattr(self, "features_", None) is not None:
            return self.features_
        return self.features if self.features is not None else FeatureSet.default(ndim=2)

    def _prepare_features(self, img, labels, stack) -> FeatureSet:
        """Fit the deep family's basis on the first labelled plane ``img`` ``(*stack, *spatial, C)``."""
        fs = self.features if self.features is not None else FeatureSet.default(ndim=2)
        if "deep" in fs.families and fs.deep_basis is None:
            planes = list(np.ndindex(*stack)) if stack else [()]
            p = next((q for q in planes if np.any(labels[q])), planes[0])
            fs = fs.prepared(np.asarray(img[p]), channel_axis=-1)
        self.features_ = fs
        return fs

    def _check_fitted(self):
        if not hasattr(self, "forest_"):
            raise NotFittedError("This PixelClassifier is not trained yet; call fit(image, labels) first.")

    def _check_params(self):
        if not (isinstance(self.n_estimators, (int, np.integer)) and 1 <= self.n_estimators <= 10000):
            raise InputError(f"n_estimators must be an integer from 1 to 10000, got {self.n_estimators!r}.")
        if self.max_depth is not None and not (isinstance(self.max_depth, (int, np.integer)) and self.max_depth >= 1):
            raise InputError(f"max_depth must be None or a positive integer, got {self.max_depth!r}.")
        if not (isinstance(self.stages, (int, np.integer)) and not isinstance(self.stages, bool)
                and 1 <= self.stages <= MAX_STAGES):
            raise InputError(f"stages must be an integer from 1 to {MAX_STAGES}, got {self.stages!r}.")
        if not (self.class_weight is None or isinstance(self.class_weight, dict)
                or self.class_weight in CLASS_WEIGHTS):
            raise InputError(f'class_weight must be None, "balanced" or "auto", got {self.class_weight!r}.')
        cs = self.context_sigmas
        if not (cs is None or (isinstance(cs, str) and cs == "auto") or (
                isinstance(cs, (tuple, list)) and 1 <= len(cs) <= 16
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1024
                        for x in cs))):
            raise InputError(f'context_sigmas must be None, "auto" or 1 to 16 sigmas in (0, 1024], got {cs!r}.')
        _check_tile_shape(self.tile_shape)
        m = getattr(self, "max_samples", None)
        if not (m is None or (isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 100)):
            raise InputError(f"max_samples must be None or an integer >= 100, got {m!r}.")

    @property
    def n_stages(self) -> int:
        """Autocontext stages (1: a single forest)."""
        return int(self.stages)

    @property
    def halo(self) -> int:
        """Pixels of context each side that a prediction reads (all stages together).

        Predicting a crop enlarged by ``halo`` on every side gives the
        whole-image prediction inside the crop.
        """
        fs = self.feature_set
        return fs.halo + (self.n_stages - 1) * self._context_spec().halo

    def n_context_features(self, n_classes: int | None = None) -> int:
        """Features a stage adds for the next one: per class, the probability and its smoothings."""
        k = len(self.classes_) if n_classes is None else int(n_classes)
        return self._context_spec().n_features(k)

    def _context_spec(self) -> FeatureSet:
        """:func:`context_spec` with this model's context sigmas (fitted, else the parameter)."""
        cs = getattr(self, "context_sigmas_", None)
        if cs is None and isinstance(self.context_sigmas, (tuple, list)):
            cs = self.context_sigmas
        return context_spec(self.feature_set, cs)

    # -- training --------------------------------------------------------------
    def training_data(self, image, labels, channel_axis: int | None = None,
                      on_progress: ProgressCallback | None = None,
                      should_stop: StopCallback | None = None):
        """Features and class values at the labelled pixels.

        Returns
        -------
        X : float32 (n_labelled, n_features), y : (n_labelled,) label values,
        n_channels : int
        """
        fs = self.features if self.features is not None else FeatureSet.default(ndim=2)
        image = np.asarray(image)
        stack, spatial, n_ch = split_axes(image.shape, fs.ndim, channel_axis)
        check_size(spatial, fs)
        labels = check_labels(labels, stack + spatial)
        require_labels(labels)
        img = _channels_last_view(image, channel_axis)
        fs = self._prepare_features(img, labels, stack)
        X, y = labelled_rows(lambda p, mask: compute_at(img[p], fs, mask, channel_axis=-1), labels,
                             labelled_planes(labels, fs.ndim), should_stop=should_stop,
                             on_progress=on_progress)
        return X, y, n_ch

    def fit(self, image, labels, channel_axis: int | None = None,
            on_progress: ProgressCallback | None = None,
            should_stop: StopCallback | None = None) -> PixelClassifier:
        """Train on the labelled pixels of ``image``.

        Parameters
        ----------
        image : array ``(*stack, *spatial)`` with an optional channel axis
        labels : integer array ``(*stack, *spatial)``; 0 = unlabelled
        channel_axis : int or None
        on_progress : callable(done, total), optional
        should_stop : callable() -> bool, optional; when it returns True the
            work stops with :class:`~active_annotator.errors.Cancelled`.

        Returns
        -------
        self
        """
        self._check_params()
        if self.n_stages > 1:
            fs = self.features if self.features is not None else FeatureSet.default(ndim=2)
            image = np.asarray(image)
            stack, spatial, n_ch = split_axes(image.shape, fs.ndim, channel_axis)
            check_size(spatial, fs)
            labels = check_labels(labels, stack + spatial)
            img = _channels_last_view(image, channel_axis)
            fs = self._prepare_features(img, labels, stack)
            threads = None if self.n_jobs in (None, -1) else max(1, int(self.n_jobs))
            return self.fit_sources(labels, lambda p: _ArraySource(img[p], fs, threads), n_ch,
                                    on_progress=on_progress, should_stop=should_stop)
        X, y, n_ch = self.training_data(image, labels, channel_axis, on_progress, should_stop)
        folds = _fold_ids(check_labels(labels, np.shape(labels))) if self.class_weight == "auto" else None
        return self.fit_features(X, y, n_channels=n_ch, labels_dtype=np.asarray(labels).dtype,
                                 should_stop=should_stop, _folds=folds)

    def fit_sources(self, labels, source, n_channels: int,
                    on_progress: ProgressCallback | None = None,
                    should_stop: StopCallback | None = None) -> PixelClassifier:
        """Train all stages from per-plane feature sources (e.g. :class:`FeatureCache`).

        Parameters
        ----------
        labels : integer array ``(*stack, *spatial)``; 0 = unlabelled
        source : callable(plane index tuple) -> object with ``shape`` (spatial),
            ``region(slices) -> (n_features, *region)`` and ``at(mask) -> (n, n_features)``
            giving this classifier's image features of one plane exactly (as
            :class:`~active_annotator.features.FeatureCache` does).
        n_channels : int

        Returns
        -------
        self
        """
        self._check_params()
        labels = np.asarray(labels)
        fs = self.feature_set
        require_labels(labels)
        planes = labelled_planes(labels, fs.ndim)
        auto = self.class_weight == "auto" and self.n_stages > 1
        total = len(planes) * (self.n_stages + (len(AUTO_CLASS_WEIGHTS) - 1 if auto else 0))
        done = 0

        def tick():
            nonlocal done
            done += 1
            if on_progress:
                on_progress(done, total)

        X1, y = labelled_rows(lambda p, mask: source(p).at(mask), labels, planes,
                              should_stop=should_stop, on_progress=lambda _d, _n: tick())
        self.context_sigmas_ = (auto_context_sigmas(labels, fs) if self.context_sigmas == "auto"
                                else context_spec(fs, self.context_sigmas or None).sigmas)
        folds = _fold_ids(labels)
        n_folds = int(folds.max()) + 1
        classes = np.unique(y)
        first = None  # stage 1's fold models and context, when "auto" has already made them
        if auto and 2 <= classes.size <= MAX_CLASSES:
            scores, made = {}, {}
            for cw in AUTO_CLASS_WEIGHTS:
                self.class_weight_ = cw
                fm = [[] for _ in range(n_folds)]
                C = self._fold_context(1, X1, X1, y, folds, classes, fm, labels, planes, source,
                                       should_stop, tick)
                scores[cw] = self._oof_score(np.concatenate([X1, C], axis=1), y, folds, classes)
                made[cw] = (fm, C)
            best = max(AUTO_CLASS_WEIGHTS, key=lambda c: (scores[c], -AUTO_CLASS_WEIGHTS.index(c)))
            self.class_weight_scores_ = {("none" if c is None else c): v for c, v in scores.items()}
            self.class_weight_ = best
            first = made[best]
        self.fit_features(X1, y, n_channels=n_channels, labels_dtype=labels.dtype,
                          should_stop=should_stop, _stage=True, _folds=folds,
                          _chosen=first is not None)
        forests = [(self.forest_, None)]
        fold_models: list[list] = [[] for _ in range(n_folds)]
        X = X1
        oof = []
        for stage in range(1, self.n_stages):
            if stage == 1 and first is not None:
                fold_models, C = first
            else:
                C = self._fold_context(stage, X, X1, y, folds, classes, fold_models, labels,
                                       planes, source, should_stop, tick)
            X = np.concatenate([X1, C], axis=1)
            # the raw (unsmoothed) out-of-fold probabilities: the first K context columns per class
            per = self._context_spec().n_features(1)
            oof.append(np.ascontiguousarray(C[:, ::per]))
            self._stop(should_stop, "Training")
            last = stage == self.n_stages - 1
            trees = int(self.n_estimators) if last else self._inner_trees()
            forests.append((Forest.from_sklearn(self._train_forest(X, y, trees)), None))
        self.forests_ = [f for f, _ in forests]
        self.training_probabilities_ = oof
        self.fold_models_ = fold_models
        fmap = np.zeros(labels.shape, np.uint8)
        fmap[labels != 0] = folds + 1
        self.training_folds_ = fmap
        return self

    def _fold_context(self, stage, X, X1, y, folds, classes, fold_models, labels, planes, source,
                      should_stop, tick):
        """Out-of-fold context features of stage ``stage`` at the labelled pixels.

        Trains one small forest per fold on the other folds' rows of ``X``
        (appended to ``fold_models``) and runs each fold's chain of stages on
        its own pixels (``tick()`` after each plane). Returns ``(n_labelled, context_spec(...).n_features(K))``.
        """
        K = len(classes)
        n_folds = len(fold_models)
        small = max(10, int(self.n_estimators) // 4)  # fold forests only give training inputs
        for f in range(n_folds):
            self._stop(should_stop, "Training")
            keep = folds != f
            present = np.unique(y[keep])
            if present.size < 2:  # the other folds hold one class: it is all they can say
                fold_models[f].append((None, np.searchsorted(classes, present)))
                continue
            rf = self._train_forest(X[keep], y[keep], small)
            cols = np.searchsorted(classes, rf.classes_)
            fold_models[f].append((Forest.from_sklearn(rf), cols))
        return self._context_at_labels(stage, X1.shape[0], folds, lambda f: fold_models[f], K,
                                       labels, planes, source, should_stop, tick)

    def _context_at_labels(self, stage, n_rows, folds, chain_of, K, labels, planes, source,
                           should_stop, tick):
        """Context features ``(n_rows, n_context)`` at the labelled pixels: the rows of fold
        ``f`` (``folds``) from the chain of stages ``chain_of(f)``, run on each tile once."""
        fs = self.feature_set
        C = np.empty((n_rows, self._context_spec().n_features(K)), np.float32)
        row0 = 0
        h = self._context_spec().halo
        for p in planes:
            src = source(p)
            mask = labels[p] > 0
            n_p = int(mask.sum())
            fold_plane = np.zeros(mask.shape, np.int64)
            fold_plane[mask] = folds[row0:row0 + n_p] + 1
            order = np.zeros(mask.shape, np.int64)
            order[mask] = np.arange(row0, row0 + n_p)
            for t in tile_slices(mask.shape, self._tile(fs.ndim)):
                m = mask[t]
                if not m.any():
                    continue
                # image features once per tile, shared by the folds' chains
                feats = src.region(padded(t, mask.shape, stage * h)[0])
                for f in np.unique(fold_plane[t][m]) - 1:
                    self._stop(should_stop, "Training")
                    mf = fold_plane[t] == f + 1
                    ctx = self._chain(src, t, chain_of(f), K, want="context", mask=mf,
                                      feats=feats)
                    C[order[t][mf]] = ctx[:, mf].T
            row0 += n_p
            tick()
        return C

    def _oof_score(self, X, y, folds, classes) -> float:
        """Out-of-fold macro Jaccard over ``classes`` of small forests on ``X`` (``class_weight_``)."""
        pred = np.empty_like(y)
        small = max(10, int(self.n_estimators) // 4)
        for f in range(int(folds.max()) + 1):
            keep = folds != f
            present = np.unique(y[keep])
            if present.size < 2:
                pred[~keep] = present[0]
                continue
            pred[~keep] = self._train_forest(X[keep], y[keep], small).predict(X[~keep])
        return _macro_jaccard(y, pred, classes)

    def _choose_class_weight(self, X, y, folds) -> None:
        """``class_weight="auto"`` for one stage: the candidate with the best out-of-fold score."""
        classes = np.unique(y)
        folds = _row_folds(y) if folds is None or len(folds) != len(y) else folds
        scores = {}
        for cw in AUTO_CLASS_WEIGHTS:
            self.class_weight_ = cw
            scores[cw] = self._oof_score(X, y, folds, classes)
        self.class_weight_scores_ = {("none" if c is None else c): v for c, v in scores.items()}
        self.class_weight_ = max(AUTO_CLASS_WEIGHTS,
                                 key=lambda c: (scores[c], -AUTO_CLASS_WEIGHTS.index(c)))

    def _inner_trees(self) -> int:
        """Trees of an autocontext model's stages before the last."""
        return max(10, int(self.n_estimators) // 2)

    @staticmethod
    def _stop(should_stop, what):
        if should_stop is not None and should_stop():
            raise Cancelled(f"{what} was cancelled.")

    def _train_forest(self, X, y, n_estimators):
        from sklearn.ensemble import RandomForestClassifier

        class_weight = (getattr(self, "class_weight_", None) if self.class_weight == "auto"
                        else self.class_weight)
        cap = getattr(self, "max_samples", None)
        if cap is not None and len(y) > cap:
            return _SubsampledForest(int(n_estimators), cap, max_depth=self.max_depth,
                                 min_samples_leaf=self.min_samples_leaf,
                                 max_features=self.max_features, class_weight=class_weight,
                                 random_state=self.random_state, n_jobs=self.n_jobs).fit(X, y)
        rf = RandomForestClassifier(
            n_estimators=int(n_estimators),
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            class_weight=class_weight,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )
        return rf.fit(X, y)

    def _chain(self, source, tile, forests, n_classes, want="proba", threads=None, mask=None,
               feats=None, training_folds=None):
        """Run stages ``forests`` on one tile of a plane; exact whatever the tile.

        ``source`` gives the plane's image features of any region; ``tile`` is
        a tuple of slices in it. Each stage's probabilities are computed on the
        tile enlarged by the context halo of the stages still to come, so
        every smoothing sees the same neighbourhood as on the whole plane
        (regions are clipped at the plane's edges, where filters reflect).

        Returns the last stage's probabilities ``(K, *tile)`` float32
        (``want="proba"``) or their context features
        ``(context_spec(...).n_features(K), *tile)`` (``want="context"``).

        ``mask`` (bool, the tile's shape): only these outputs are needed; each
        forest then runs only on the pixels whose values can reach them (the
        mask dilated by the context still to come); the others stay 0 and are
        never read. ``feats``: the image features of the enlarged region, if
        the caller has them already.

        ``training_folds`` (uint8, the plane's shape; this model's own stages
        only): the fold + 1 of each pixel this model was trained on, 0
        elsewhere (:attr:`training_folds_` of the plane). There every stage
        before the last gives the next one its fold forest's (out-of-fold)
        probabilities, as in training, instead of the full forest's memorised
        ones (see :meth:`predict_proba`, ``training_image``).
        """
        from scipy import ndimage

        shape = source.shape
        cspec = self._context_spec()
        h = cspec.halo
        extra = len(forests) - 1 + (want == "context")
        cur, _ = padded(tile, shape, extra * h)
        F = source.region(cur) if feats is None else feats
        needed = None
        if mask is not None:
            needed = np.zeros(F.shape[1:], bool)
            needed[tuple(slice(a.start - c.start, a.stop - c.start) for a, c in zip(tile, cur))] = mask
        P = None
        for j, (forest, cols) in enumerate(forests):
            if j == 0:
                X = F
            else:
                nxt, _ = padded(tile, shape, (extra - j) * h)
                rel = tuple(slice(a.start - c.start, a.stop - c.start) for a, c in zip(nxt, cur))
                ctx = compute(P, cspec, channel_axis=0, threads=threads)[(slice(None),) + rel]
                F = F[(slice(None),) + rel]
                X = np.concatenate([F, ctx], axis=0)
                if needed is not None:
                    needed = needed[rel]
                cur = nxt
            rshape = X.shape[1:]
            P = np.zeros((n_classes,) + rshape, np.float32)
            if forest is None:
                P[cols] = 1
                continue
            reach = None
            if needed is not None:
                r = (extra - j) * h  # context filterings still to come read this far
                reach = ndimage.maximum_filter(needed, size=2 * r + 1, mode="constant") if r else needed
            if reach is None:
                prob = forest.predict_proba(X.reshape(X.shape[0], -1), threads=threads)
                p = prob.T.reshape((-1,) + rshape)
                if cols is None:
                    P[...] = p
                else:
                    P[cols] = p
            else:
                prob = forest.predict_proba(np.ascontiguousarray(X[:, reach]), threads=threads)
                if cols is None:
                    P[:, reach] = prob.T
                else:
                    vals = np.zeros((n_classes, prob.shape[0]), np.float32)
                    vals[cols] = prob.T
                    P[:, reach] = vals
            if training_folds is not None and j < len(forests) - 1:
                self._cross_fit(P, X, j, training_folds[cur], reach, n_classes, threads)
        if want == "context":
            inner = tuple(slice(a.start - c.start, a.stop - c.start) for a, c in zip(tile, cur))
            return compute(P, cspec, channel_axis=0, threads=threads)[(slice(None),) + inner]
        return P

    def _cross_fit(self, P, X, stage, folds, reach, n_classes, threads):
        """Stage ``stage``'s probabilities ``P`` at the training pixels (``folds`` > 0) from
        the fold forests that did not see them: the inputs the next stage was trained on."""
        for f in np.unique(folds[folds > 0]) - 1:
            m = folds == f + 1
            if reach is not None:
                m &= reach
            if not m.any():
                continue
            forest, cols = self.fold_models_[f][stage]
            vals = np.zeros((n_classes, int(m.sum())), np.float32)
            if forest is None:  # that fold's complement held one class
                vals[cols] = 1
            else:
                vals[cols] = forest.predict_proba(np.ascontiguousarray(X[:, m]), threads=threads).T
            P[:, m] = vals

    def plane_training_folds(self, plane, shape):
        """The fold map of one plane of the training image (``None`` when it cannot be used:
        one stage, a loaded model, or an image of another shape)."""
        fmap = getattr(self, "training_folds_", None)
        plane, nst = tuple(plane), len(plane)
        if (self.n_stages == 1 or fmap is None or fmap.ndim != nst + len(shape)
                or fmap.shape[nst:] != tuple(shape)
                or any(i >= n for i, n in zip(plane, fmap.shape))):
            return None
        return fmap[plane]

    def predict_proba_source(self, source, region=None, threads=None,
                             training_folds=None) -> np.ndarray:
        """Probabilities ``(K, *region)`` float32 of one plane's region from a feature source.

        ``source`` is as in :meth:`fit_sources` (e.g. a :class:`FeatureCache` of
        the plane); the features it gives outside ``region`` (up to
        :attr:`halo`) are used as context, so the result equals the
        whole-plane prediction inside ``region``.
        """
        self._check_fitted()
        if region is None:
            region = tuple(slice(0, n) for n in source.shape)
        region = tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, source.shape))
        if self.n_stages == 1:
            return self.predict_proba_features(source.region(region))
        forests, K = self._stage_forests(), len(self.classes_)
        P = self._chain(source, region, forests, K, threads=threads)
        own = None if training_folds is None else training_folds[region] > 0
        if own is not None and own.any():
            # the training pixels: the chain with out-of-fold stage inputs, as in training
            cross = self._chain(source, region, forests, K, threads=threads, mask=own,
                                training_folds=training_folds)
            P[:, own] = cross[:, own]
        return P

    def _stage_forests(self):
        return [(f, None) for f in getattr(self, "forests_", [self.forest_])]

    def fit_features(self, X, y, n_channels: int = 1, labels_dtype=np.uint8,
                     should_stop: StopCallback | None = None, _stage: bool = False,
                     _folds=None, _chosen: bool = False) -> PixelClassifier:
        """Train on precomputed features ``X`` (n, n_features) and class values ``y``.

        Only for ``stages=1``: later autocontext stages need the features of
        the pixels around the labels (use :meth:`fit` or :meth:`fit_sources`).
        With ``class_weight="auto"`` the folds of its choice are runs of rows
        per class (slabs along the first axis for rows in C order of the labels).
        """
        self._check_params()
        if self.n_stages > 1 and not _stage:
            raise InputError(
                f"This classifier has stages={self.stages}: autocontext needs the image around "
                "the labels, not only features at labelled pixels. Use fit(image, labels) or "
                "fit_sources(labels, feature_caches, n_channels), or set stages=1."
            )
        classes = np.unique(y)
        if classes.size < 2:
            raise LabelError(
                f"Only one class is labelled (value {classes[0] if classes.size else 'none'}); "
                "paint at least two classes, e.g. 1 = background and 2 = object."
            )
        if classes.size > MAX_CLASSES:
            raise LabelError(
                f"{classes.size} different label values were painted; at most {MAX_CLASSES} "
                "classes are supported. Were instance labels (one value per object) given "
                "instead of class labels?"
            )
        fs = self.feature_set
        if X.shape[1] != fs.n_features(n_channels):
            raise InputError(f"X has {X.shape[1]} features, the feature set makes {fs.n_features(n_channels)}.")
        if should_stop is not None and should_stop():
            raise Cancelled("Training was cancelled.")
        if not _stage:  # a one-stage fit: no fold forests (predict_proba, training_image)
            for name in ("fold_models_", "training_folds_", "training_probabilities_"):
                self.__dict__.pop(name, None)
        if self.class_weight != "auto":
            self.class_weight_ = self.class_weight
            self.__dict__.pop("class_weight_scores_", None)
        elif not _chosen:  # (fit_sources chooses for several stages itself)
            self._choose_class_weight(X, y, _folds)
        # in an autocontext model the stages before the last only give the next one inputs:
        # half the trees (their probabilities are smoothed anyway), half their prediction time
        rf = self._train_forest(X, y, self._inner_trees() if _stage else self.n_estimators)
        self.classes_ = rf.classes_
        self.n_channels_in_ = int(n_channels)
        self.n_features_in_ = int(X.shape[1])
        self.feature_names_in_ = fs.names(n_channels)
        self.labels_dtype_ = np.dtype(labels_dtype)
        self.forest_ = Forest.from_sklearn(rf)
        self.forests_ = [self.forest_]
        self.feature_importances_ = rf.feature_importances_.astype(np.float64)
        self.n_training_pixels_ = int(X.shape[0])
        return self

    # -- prediction --------------------------------------------------------------
    def _tile(self, ndim: int) -> tuple[int, ...]:
        _check_tile_shape(self.tile_shape)
        if self.tile_shape:
            return (int(self.tile_shape),) * ndim
        if self.n_stages > 1:  # larger tiles: less of the stages' longer halo is computed twice
            return {1: (1 << 18,), 2: (1024, 1024), 3: (128, 128, 128)}[ndim]
        return {1: (1 << 18,), 2: (512, 512), 3: (96, 96, 96)}[ndim]

    def check_image(self, image_shape, channel_axis):
        """Raise :class:`ModelMismatchError` if an image does not fit the trained model."""
        self._check_fitted()
        fs = self.feature_set
        try:
            stack, spatial, n_ch = split_axes(image_shape, fs.ndim, channel_axis)
        except InputError as e:
            raise ModelMismatchError(str(e)) from None
        check_size(spatial, fs)
        if n_ch != self.n_channels_in_:
            raise ModelMismatchError(
                f"The model was trained on images with {self.n_channels_in_} channel(s), "
                f"but this image has {n_ch} (shape {tuple(image_shape)}, channel_axis="
                f"{channel_axis}). Use an image with the same channels, or retrain."
            )
        return stack, spatial

    def predict_proba_features(self, feats: np.ndarray) -> np.ndarray:
        """Probabilities ``(n_classes, *spatial)`` float32 from a precomputed feature stack.

        With several autocontext stages the stack is taken as the whole image
        (later stages smooth probabilities within it, reflecting at its
        edges); for a part of a larger image use :meth:`predict_proba_source`.
        """
        self._check_fitted()
        if self.n_stages > 1:
            src = _FeatureArraySource(feats)
            return self._chain(src, tuple(slice(0, n) for n in src.shape), self._stage_forests(),
                               len(self.classes_))
        f = feats.reshape(feats.shape[0], -1)
        p = self.forest_.predict_proba(f)
        return np.ascontiguousarray(p.T.astype(np.float32)).reshape((-1,) + feats.shape[1:])

    def predict_proba(self, image, channel_axis: int | None = None,
                      on_progress: ProgressCallback | None = None,
                      should_stop: StopCallback | None = None,
                      region: tuple[slice, ...] | None = None,
                      training_image: bool = False) -> np.ndarray:
        """Class probabilities for every pixel.

        Parameters
        ----------
        image : array ``(*stack, *spatial)`` with an optional channel axis
        channel_axis : int or None
        on_progress, should_stop : see :meth:`fit`
        region : tuple of slices over ``(*stack, *spatial)``, optional
            Predict only this region (e.g. what is on screen); the result then
            has the region's shape. Context outside it is still used.
        training_image : bool
            ``image`` is the image this model was just fitted on (autocontext
            only; ignored otherwise). The second stage was trained on
            out-of-fold first-stage probabilities at the labelled pixels; the
            full first-stage forest has memorised those pixels, and its
            near-certain probabilities there are inputs the second stage never
            saw (with dense labels it then contradicts the labels where they
            were painted). With ``training_image=True`` the output at each
            training pixel comes from the chain whose stage inputs at the
            training pixels are the fold forests' (out-of-fold), as in
            training; every other pixel is predicted as without it. Needs the
            fold forests of :meth:`fit` (``fold_models_``); a model loaded from
            a file predicts every image as a new one. The annotation session
            does this for the image it trains on.

        Returns
        -------
        proba : float32 ``(n_classes, *stack, *spatial)``, rows in ``classes_`` order.
        """
        return self._predict(image, channel_axis, on_progress, should_stop, region, proba=True,
                             training_image=training_image)

    def predict(self, image, channel_axis: int | None = None,
                on_progress: ProgressCallback | None = None,
                should_stop: StopCallback | None = None,
                region: tuple[slice, ...] | None = None,
                training_image: bool = False) -> np.ndarray:
        """Class value of every pixel, ``(*stack, *spatial)``, in the labels' dtype
        (``training_image``: see :meth:`predict_proba`)."""
        return self._predict(image, channel_axis, on_progress, should_stop, region, proba=False,
                             training_image=training_image)

    def _predict(self, image, channel_axis, on_progress, should_stop, region, proba,
                 training_image=False):
        image = np.asarray(image) if not hasattr(image, "__array_function__") else image
        stack, spatial = self.check_image(image.shape, channel_axis)
        fs = self.feature_set
        full = stack + spatial
        if region is None:
            region = tuple(slice(0, n) for n in full)
        region = tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, full))
        if len(region) != len(full) or any(s.stop <= s.start for s in region):
            raise InputError(f"region {region} does not select pixels of an image of shape {full}.")
        out_shape = tuple(s.stop - s.start for s in region)
        n_cls = len(self.classes_)
        if proba:
            out = np.empty((n_cls,) + out_shape, np.float32)
        else:
            out = np.empty(out_shape, self.labels_dtype_)
        img = _channels_last_view(image, channel_axis)
        nst = len(stack)
        planes = list(np.ndindex(*[s.stop - s.start for s in region[:nst]])) if nst else [()]
        sp_region = region[nst:]
        tiles = [
            tuple(slice(s.start + r.start, s.stop + r.start) for s, r in zip(t, sp_region))
            for t in tile_slices(out_shape[nst:], self._tile(fs.ndim))
        ]
        total = len(planes) * len(tiles)
        done = 0
        for p in planes:
            p_img = tuple(i + r.start for i, r in zip(p, region[:nst]))
            plane = img[p_img]
            for t in tiles:
                if should_stop is not None and should_stop():
                    raise Cancelled("Prediction was cancelled.")
                if self.n_stages > 1:
                    o = tuple(slice(s.start - r.start, s.stop - r.start) for s, r in zip(t, sp_region))
                    folds = self.plane_training_folds(p_img, spatial) if training_image else None
                    prob = self.predict_proba_source(_ArraySource(plane, fs), t,
                                                     training_folds=folds)
                    if proba:
                        out[(slice(None),) + p + o] = prob
                    else:
                        out[p + o] = self.classes_[np.argmax(prob, axis=0)]
                    done += 1
                    if on_progress:
                        on_progress(done, total)
                    continue
                outer, inner = padded(t, spatial, fs.halo)
                block = np.asarray(plane[outer])
                feats = compute(block, fs, channel_axis=-1)
                feats = feats[(slice(None),) + inner]
                f2 = feats.reshape(feats.shape[0], -1)
                o = tuple(slice(s.start - r.start, s.stop - r.start) for s, r in zip(t, sp_region))
                tshape = feats.shape[1:]
                if proba:
                    prob = self.forest_.predict_proba(f2)  # (n, K) float64
                    out[(slice(None),) + p + o] = prob.T.reshape((n_cls,) + tshape)
                else:
                    # equals argmax(predict_proba) exactly, ~1.75x faster (early exit)
                    idx = self.forest_.predict_index(f2)
                    out[p + o] = self.classes_[idx].reshape(tshape)
                done += 1
                if on_progress:
                    on_progress(done, total)
        return out

    # -- persistence -----------------------------------------------------------
    def save(self, path):
        """Save to a safe, versioned model file (see :mod:`active_annotator.persistence`).

        Returns the path written (``.aamodel`` is appended when missing).
        """
        from .persistence import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path) -> PixelClassifier:
        """Load a model file written by :meth:`save`; never unpickles."""
        from .persistence import load_model

        return load_model(path)

    def feature_importances(self) -> dict[str, float]:
        """Impurity-based importance of each named feature, largest first."""
        self._check_fitted()
        order = np.argsort(self.feature_importances_)[::-1]
        return {self.feature_names_in_[i]: float(self.feature_importances_[i]) for i in order}


__all__ = ["PixelClassifier", "check_labels", "check_size", "context_spec", "split_axes"]
