"""The annotation loop on one image, shared by the napari dock and scripts.

An :class:`AnnotationSession` holds an image and its axes, the features of
that image (computed tile by tile on first use and kept, per plane of a
stack), the classifier, the current probabilities and the history of
training rounds. The Pixel classifier dock is a thin translator around it;
a script gets the same cached, visible-region-first path::

    >>> session = AnnotationSession(image)                     # (y, x) image
    >>> session.train(labels, PixelClassifier(n_estimators=32))
    >>> for stage in session.predict(region=(slice(0, 256), slice(0, 256))):
    ...     show(stage.region, stage.prediction)                # the region first, then all
    >>> session.validate()                                      # a round in session.history
    >>> session.suggest("clasp", n=10)                          # where to label next

Axes: the image is ``(*stack, *spatial)`` with an optional channel axis
anywhere; ``spatial_ndim`` (2 or 3) says how many trailing non-channel axes
the filters run over (leading ones are independent planes or volumes).
Labels are integer arrays of the non-channel shape, 0 = unlabelled;
probabilities are ``(K, *stack, *spatial)`` float32.

Thread safety: the feature cache may be used from several worker threads at
once (a replaced request still winding down next to its replacement).
Methods that take ``classifier=`` use that classifier, not the session's, so
a request frozen at its start predicts with its own model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .classifier import PixelClassifier, check_size, labelled_planes, labelled_rows, require_labels
from .errors import Cancelled, InputError, NotFittedError
from .evaluation import History, Validation, validate_fitted
from .features import FeatureCache, FeatureSet
from .uncertainty import entropy

# Features kept per image for interactive retraining (all planes together): beyond this
# the least recently used planes are dropped. 2048x2048 with the default 20 features: 335 MB.
FEATURE_CACHE_BYTES = 1 << 31

Progress = Callable[[str, int, int], None]  # (stage text, done, total)


def _never() -> bool:
    return False


def _check(should_stop) -> None:
    if should_stop():
        raise Cancelled("Cancelled.")


class _PlaneView:
    """One plane of an image ``(*stack, *spatial)`` (channel axis anywhere) as a lazy,
    channels-last array: slicing reads only what is asked (zarr, dask, numpy).

    Counts its reads: :class:`FeatureCache` reads the image once per feature tile it
    computes, so ``reads`` is the number of tiles computed for this plane.
    """

    def __init__(self, data, plane, channel_axis, spatial_ndim):
        self.data = data
        self.plane = tuple(int(i) for i in plane)
        nd = len(data.shape)
        self.ca = None if channel_axis is None else channel_axis % nd
        self.axes = [a for a in range(nd) if a != self.ca]  # non-channel axes in order
        spatial = tuple(data.shape[a] for a in self.axes[len(self.plane):])
        assert len(spatial) == spatial_ndim
        self.shape = spatial + (() if self.ca is None else (data.shape[self.ca],))
        self.ndim = len(self.shape)
        self.dtype = data.dtype
        self.reads = 0

    def __getitem__(self, index):
        index = tuple(index) if isinstance(index, tuple) else (index,)
        n_sp = len(self.axes) - len(self.plane)
        sp = index[:n_sp]
        ch = index[n_sp] if len(index) > n_sp else slice(None)
        full = [None] * len(self.data.shape)
        for a, v in zip(self.axes, self.plane + tuple(sp)):
            full[a] = v
        if self.ca is not None:
            full[self.ca] = ch
        full = [slice(None) if v is None else v for v in full]
        block = np.asarray(self.data[tuple(full)])
        self.reads += 1
        if self.ca is not None:
            # the channel axis's place among the axes left after integer indexing
            pos = sum(1 for a in range(self.ca) if not isinstance(full[a], (int, np.integer)))
            block = np.moveaxis(block, pos, -1)
        return block


class ImageFeatures:
    """Feature caches of one image for one feature set (a :class:`FeatureCache` per plane).

    ``plane(p)`` gives plane ``p``'s cache (``region(slices)``, ``at(mask)``), created on
    first use; whole planes beyond ``max_bytes`` are dropped, least recently used first.
    Safe to use from several threads.
    """

    def __init__(self, data, channel_axis, spec: FeatureSet, stack, spatial,
                 max_bytes: int = FEATURE_CACHE_BYTES):
        self.data, self.channel_axis, self.spec = data, channel_axis, spec
        self.requested = spec  # what was asked for; spec gains the deep basis
        self.stack, self.spatial = tuple(stack), tuple(spatial)
        self.max_bytes = max_bytes
        self.tile = 512 if spec.ndim == 2 else 128
        self._planes = {}  # plane -> (view, cache), least recently used first
        self._lock = threading.Lock()

    def prepared_spec(self) -> FeatureSet:
        """The feature set with the deep family's basis fitted on the first plane."""
        with self._lock:
            if "deep" in self.spec.families and self.spec.deep_basis is None:
                view = _PlaneView(self.data, (0,) * len(self.stack), self.channel_axis, self.spec.ndim)
                self.spec = self.spec.prepared(view, channel_axis=None if view.ca is None else -1)
            return self.spec

    def fits(self, data, channel_axis, spec: FeatureSet) -> bool:
        """True when this cache holds ``spec``'s features of ``data`` (same array object)."""
        same_spec = self.requested.without_basis() == spec.without_basis() and (
            spec.deep_basis is None or spec.deep_basis == self.spec.deep_basis)
        return data is self.data and channel_axis == self.channel_axis and same_spec

    def plane(self, p) -> FeatureCache:
        p = tuple(int(i) for i in p)
        self.prepared_spec()
        with self._lock:
            entry = self._planes.pop(p, None)
            if entry is None:
                view = _PlaneView(self.data, p, self.channel_axis, self.spec.ndim)
                cache = FeatureCache(view, self.spec, channel_axis=None if view.ca is None else -1,
                                     tile=self.tile, max_bytes=self.max_bytes)
                entry = (view, cache)
            self._planes[p] = entry
            while len(self._planes) > 1 and sum(c.nbytes for _, c in self._planes.values()) > self.max_bytes:
                self._planes.pop(next(iter(self._planes)))
        return entry[1]

    @property
    def tiles_computed(self) -> int:
        """Feature tiles computed so far (each reads the image once); a cache hit adds nothing."""
        with self._lock:
            return sum(v.reads for v, _ in self._planes.values())

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(c.nbytes for _, c in self._planes.values())

    def clear(self) -> None:
        with self._lock:
            self._planes.clear()


@dataclass
class Stage:
    """One stage of :meth:`AnnotationSession.predict`: the model's output over a region.

    ``region`` is a tuple of slices over ``(*stack, *spatial)``; the arrays cover exactly
    that region. ``complete`` is True for the whole image.
    """

    region: tuple
    probabilities: np.ndarray  # (K, *region shape) float32
    prediction: np.ndarray  # (*region shape), the user's label values
    uncertainty: np.ndarray  # (*region shape) float32, normalised entropy in [0, 1]
    classifier: PixelClassifier
    complete: bool
    seconds: float  # since the predict call started


def _tiles(region, tile):
    """Tile-aligned pieces (slices) of a spatial region."""
    ranges = [range(s.start // tile * tile, s.stop, tile) for s in region]
    for starts in np.ndindex(*[len(r) for r in ranges]):
        yield tuple(slice(max(s.start, r[k]), min(s.stop, r[k] + tile))
                    for s, r, k in zip(region, ranges, starts))


def _upsample(proba, step, tile):
    """Each sampled pixel fills its ``step`` x ``step`` block, cropped to the tile."""
    for ax in range(1, proba.ndim):
        proba = np.repeat(proba, step, axis=ax)
    return proba[(slice(None),) + tuple(slice(0, a.stop - a.start) for a in tile)]


class AnnotationSession:
    """The annotation loop on one image: cached features, classifier, probabilities, rounds.

    Parameters
    ----------
    image : array ``(*stack, *spatial)`` with an optional channel axis (numpy, zarr, dask)
        Read lazily, tile by tile, as features are needed; never copied whole.
    channel_axis : int or None
    spatial_ndim : 2 or 3
        Filters run over the last ``spatial_ndim`` non-channel axes.
    history : evaluation.History, optional
        Rounds to continue (e.g. from a project); a new one by default.
    feature_cache_bytes : int
        Features kept for retraining; least recently used planes are dropped beyond it.

    Attributes
    ----------
    classifier : PixelClassifier or None (the last trained or assigned model)
    probabilities : float32 ``(K, *stack, *spatial)`` or None (the last complete prediction)
    history : evaluation.History
    """

    def __init__(self, image, channel_axis: int | None = None, spatial_ndim: int = 2, *,
                 history: History | None = None, feature_cache_bytes: int = FEATURE_CACHE_BYTES):
        shape = list(getattr(image, "shape", np.shape(image)))
        if not hasattr(image, "shape"):
            image = np.asarray(image)
        if spatial_ndim not in (2, 3):
            raise InputError(f"spatial_ndim must be 2 or 3, got {spatial_ndim!r}.")
        if channel_axis is not None:
            if not -len(shape) <= channel_axis < len(shape):
                raise InputError(f"channel_axis={channel_axis} does not exist in an image of shape "
                                 f"{tuple(shape)}.")
            del shape[channel_axis]
        if len(shape) < spatial_ndim:
            raise InputError(
                f"The image has {len(shape)} non-channel axes (shape {tuple(image.shape)}), fewer than "
                f"spatial_ndim={spatial_ndim}: pass spatial_ndim={len(shape)} or check channel_axis.")
        self.image = image
        self.channel_axis = channel_axis
        self.spatial_ndim = int(spatial_ndim)
        self.shape = tuple(int(n) for n in shape)  # (*stack, *spatial)
        self.stack = self.shape[:len(shape) - spatial_ndim]
        self.spatial = self.shape[len(shape) - spatial_ndim:]
        self.history = history if history is not None else History()
        self.feature_cache_bytes = int(feature_cache_bytes)
        self.classifier: PixelClassifier | None = None
        self.probabilities: np.ndarray | None = None
        self._features: ImageFeatures | None = None
        self._last_fit = None  # (classifier, X, y, labels, n_channels) for validate()
        self._fit_folds = None  # the fold map of the last autocontext fit (see _predict_into)
        self._split = None  # the last round's LabelSplit (validate keeps its held-out strokes)
        self._lock = threading.Lock()

    # -- features -------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return 1 if self.channel_axis is None else int(self.image.shape[self.channel_axis])

    def features(self, feature_set: FeatureSet) -> ImageFeatures:
        """The cache of this image's ``feature_set`` features; a new one when the set changed."""
        if feature_set.ndim != self.spatial_ndim:
            raise InputError(
                f"The feature set filters in {feature_set.ndim}-D but this session's image is "
                f"{self.spatial_ndim}-D (spatial_ndim): use FeatureSet(ndim={self.spatial_ndim}).")
        with self._lock:
            f = self._features
            if f is None or not f.fits(self.image, self.channel_axis, feature_set):
                f = self._features = ImageFeatures(self.image, self.channel_axis, feature_set,
                                                   self.stack, self.spatial, self.feature_cache_bytes)
            return f

    @property
    def tiles_computed(self) -> int:
        """Feature tiles computed for the current feature set so far (a cache hit adds none)."""
        f = self._features
        return 0 if f is None else f.tiles_computed

    @property
    def cached_features(self) -> ImageFeatures | None:
        """The feature cache in use, or None before the first train/predict."""
        return self._features

    def image_changed(self) -> None:
        """The image's pixels were changed in place: forget features and probabilities."""
        with self._lock:
            self._features = None
        self.probabilities = None

    # -- training -------------------------------------------------------------------
    def train(self, labels, classifier: PixelClassifier | None = None, *,
              should_stop: Callable[[], bool] | None = None,
              on_progress: Progress | None = None) -> PixelClassifier:
        """Fit ``classifier`` (default: a new ``PixelClassifier`` with default features)
        on the labelled pixels' cached features; it becomes the session's classifier.

        Only tiles holding labels are computed; a retrain with more strokes reuses them.
        """
        stop = should_stop or _never
        report = on_progress or (lambda *a: None)
        clf = classifier if classifier is not None else PixelClassifier(
            features=FeatureSet.default(ndim=self.spatial_ndim))
        labels = np.asarray(labels)
        if labels.shape != self.shape:
            raise InputError(
                f"The labels have shape {labels.shape} but the image's non-channel shape is "
                f"{self.shape}: choose the labels (annotations) made for this image, check the "
                "channel axis, or make new labels of the image's shape.")
        if clf.features is None:
            clf.features = FeatureSet.default(ndim=self.spatial_ndim)
        feats = self.features(clf.features)
        check_size(self.spatial, clf.feature_set)
        require_labels(labels)
        if "deep" in feats.spec.families:  # the classifier keeps the cache's deep basis
            clf.features = feats.prepared_spec()
        n_ch = self.n_channels
        if clf.n_stages > 1:
            clf.fit_sources(labels, feats.plane, n_ch, should_stop=stop,
                            on_progress=lambda d, t: report("Training the stages", d, t))
            fit = None  # autocontext: no quick twin on cached rows (see validate)
        else:
            X, y = labelled_rows(
                lambda p, mask: feats.plane(p).at(mask), labels,
                labelled_planes(labels, self.spatial_ndim), should_stop=stop,
                on_progress=lambda d, t: report("Training: features of labelled planes", d, t))
            clf.fit_features(X, y, n_channels=n_ch, labels_dtype=labels.dtype, should_stop=stop)
            fit = (clf, X, y, labels, n_ch)
        _check(stop)
        self._last_fit = fit
        # the fold map of this fit: predictions of this image use it (see _predict_into)
        self._fit_folds = getattr(clf, "training_folds_", None) if clf.n_stages > 1 else None
        self.classifier = clf
        self.probabilities = None  # they belonged to the previous model
        return clf

    def validate(self, *, record: bool = True, should_stop: Callable[[], bool] | None = None,
                 **extra) -> Validation | None:
        """Score the last training round on held-out strokes (a twin trained without them).

        Returns None for an autocontext classifier (stages > 1): its twin would need the
        whole multi-stage fit again. ``record``: append the round to :attr:`history`.
        """
        if self._last_fit is None:
            if self.classifier is None:
                raise NotFittedError("Nothing to validate: train the session first.")
            return None
        clf, X, y, labels, n_ch = self._last_fit
        # the held-out strokes of the last round stay held out: one validation set per session
        v = validate_fitted(clf, X, y, labels, n_ch, should_stop=should_stop, keep=self._split)
        self._split = v.split
        if record:
            v.record(self.history, **extra)
        return v

    # -- prediction -----------------------------------------------------------------
    def predict(self, region=None, *, classifier: PixelClassifier | None = None, step: int = 1,
                full: bool = True, should_stop: Callable[[], bool] | None = None,
                on_progress: Progress | None = None) -> Iterator[Stage]:
        """Predict ``region`` first, then (``full``) the rest of the image; a generator of stages.

        Parameters
        ----------
        region : tuple of slices over ``(*stack, *spatial)``, optional
            What the person looks at; default the first plane (or volume).
        classifier : default the session's classifier.
        step : int
            > 1: a preview of the region (2-D only) from every ``step``-th pixel, each
            filling its ``step`` x ``step`` block; the full stage is always exact.
        full : bool
            False: stop after the region (a huge lazy image).

        The last stage of a ``full`` prediction is complete (``region`` covers the image);
        its probabilities become :attr:`probabilities`. Generators are lazy: the whole
        image is not predicted until the second stage is asked for.
        """
        clf = classifier if classifier is not None else self.classifier
        if clf is None:
            raise NotFittedError("There is no model yet: train the session or assign a classifier.")
        clf.check_image(self.image.shape, self.channel_axis)
        stop = should_stop or _never
        report = on_progress or (lambda *a: None)
        feats = self.features(clf.feature_set)
        start = time.perf_counter()
        nst = len(self.stack)
        if region is None:
            region = tuple(slice(0, 1) for _ in self.stack) + tuple(slice(0, n) for n in self.spatial)
        region = tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, self.shape))
        step = int(step) if self.spatial_ndim == 2 else 1
        if step > 1:  # align the preview's blocks to multiples of step
            region = region[:nst] + tuple(slice(s.start // step * step, s.stop) for s in region[nst:])
        n_cls = len(clf.classes_)
        vshape = tuple(s.stop - s.start for s in region)
        vproba = np.empty((n_cls,) + vshape, np.float32)
        self._predict_into(clf, feats, region, vproba, tuple(slice(0, n) for n in vshape), stop, step=step,
                           progress=lambda d, t: report("Predicting the visible region", d, t))
        whole = tuple(slice(0, n) for n in self.shape)
        complete = region == whole and step == 1
        if complete:
            self.probabilities = vproba
        yield self._stage(clf, region, vproba, complete, start)
        if not full or complete:
            return
        _check(stop)
        proba = np.empty((n_cls,) + self.shape, np.float32)
        if step == 1:  # an exact region result is reused; a preview is not
            proba[(slice(None),) + region] = vproba
        self._predict_into(clf, feats, whole, proba, whole, stop, skip=region if step == 1 else None,
                           progress=lambda d, t: report("Predicting the rest", d, t))
        self.probabilities = proba
        yield self._stage(clf, whole, proba, True, start)

    def predict_all(self, **kwargs) -> np.ndarray:
        """Probabilities ``(K, *stack, *spatial)`` of the whole image (the last stage of predict)."""
        whole = tuple(slice(0, n) for n in self.shape)
        for stage in self.predict(whole, **kwargs):
            pass
        return stage.probabilities

    @staticmethod
    def _stage(clf, region, proba, complete, start) -> Stage:
        # the most likely class, in the user's label values (as predict() would give)
        prediction = clf.classes_[np.argmax(proba, axis=0)].astype(clf.labels_dtype_)
        return Stage(region, proba, prediction, entropy(proba), clf, complete, time.perf_counter() - start)

    def _predict_into(self, clf, feats, region, out, out_region, stop, skip=None, progress=None, step=1):
        """Probabilities of ``region`` into ``out[:, out_region]``, tile by tile from the cache.

        Tiles fully inside ``skip`` (same kind of slices) were predicted already. ``step`` > 1:
        only pixels at multiples of ``step`` are predicted and fill their blocks.
        """
        nst = len(self.stack)
        planes = list(np.ndindex(*[s.stop - s.start for s in region[:nst]])) if nst else [()]
        work = []
        for q in planes:
            p = tuple(i + s.start for i, s in zip(q, region[:nst]))
            for t in _tiles(region[nst:], feats.tile):
                if skip is not None and all(s.start <= i < s.stop for i, s in zip(p, skip[:nst])) and all(
                        k.start <= s.start and s.stop <= k.stop for s, k in zip(t, skip[nst:])):
                    continue
                work.append((p, t))
        sub = None
        for n, (p, t) in enumerate(work):
            _check(stop)
            if step > 1:
                sub = (slice(None),) + (slice(None, None, step),) * len(t)
            if clf.n_stages > 1:  # later stages read context around the tile from the cache
                # the session predicts the image it trained on: stage inputs at the
                # training pixels as in training (PixelClassifier.predict_proba, training_image)
                src = feats.plane(p)
                own = self._fit_folds is not None and getattr(clf, "training_folds_", None) is self._fit_folds
                proba = clf.predict_proba_source(
                    src, t, training_folds=clf.plane_training_folds(p, src.shape) if own else None)
                if step > 1:
                    proba = _upsample(proba[sub], step, t)
            elif step > 1:
                f = feats.plane(p).region(t)
                proba = _upsample(clf.predict_proba_features(np.ascontiguousarray(f[sub])), step, t)
            else:
                proba = clf.predict_proba_features(feats.plane(p).region(t))
            o = tuple(slice(i - s.start + r.start, i - s.start + r.start + 1)
                      for i, s, r in zip(p, region[:nst], out_region[:nst]))
            o += tuple(slice(a.start - s.start + r.start, a.stop - s.start + r.start)
                       for a, s, r in zip(t, region[nst:], out_region[nst:]))
            out[(slice(None),) + o] = proba.reshape(proba.shape[:1] + (1,) * nst + proba.shape[1:])
            if progress is not None:
                progress(n + 1, len(work))

    # -- what to label next -----------------------------------------------------------
    def uncertainty(self) -> np.ndarray:
        """Normalised entropy ``(*stack, *spatial)`` of the current probabilities."""
        return entropy(self._require_probabilities())

    def prediction(self) -> np.ndarray:
        """The most likely class per pixel, in the user's label values."""
        p = self._require_probabilities()
        return self.classifier.classes_[np.argmax(p, axis=0)].astype(self.classifier.labels_dtype_)

    def _require_probabilities(self) -> np.ndarray:
        if self.probabilities is None:
            raise NotFittedError("There is no prediction of this image yet: train, then predict.")
        return self.probabilities

    def suggest(self, strategy: str | None = None, n: int = 10, *, labels=None, size=None,
                seed: int | None = 0, should_stop: Callable[[], bool] | None = None,
                probabilities: np.ndarray | None = None, classifier: PixelClassifier | None = None):
        """Rank the image's patches by what a label there would teach (best first).

        Uses the session's own probabilities and, for descriptor strategies
        (``diversity``, ``cluster``, ...), the cached features of the classifier's
        feature set: nothing is recomputed or read back from a display.
        ``size`` is the patch edge (default :func:`candidates.default_patch_size`).
        ``probabilities`` and ``classifier`` (default the session's): a snapshot taken when
        the request was made, for a caller that may retrain meanwhile.
        """
        from .candidates import default_patch_size
        from .sampling import DEFAULT_STRATEGY, suggest_for_image

        proba = self._require_probabilities() if probabilities is None else probabilities
        clf = classifier if classifier is not None else self.classifier
        if labels is not None and np.shape(labels) != self.shape:
            raise InputError(f"The labels have shape {np.shape(labels)} but the image's non-channel "
                             f"shape is {self.shape}.")
        if size is None:
            size = default_patch_size(self.spatial)
        feats = self.features(clf.feature_set)
        return suggest_for_image(proba, labels, strategy=strategy or DEFAULT_STRATEGY, n=n, size=size,
                                 seed=seed, spatial_ndim=self.spatial_ndim, image=self.image,
                                 features=clf.feature_set, channel_axis=self.channel_axis,
                                 feature_source=feats.plane, should_stop=should_stop)


    # -- one round of the loop, as a viewer shows it ----------------------------------------
    def round(self, labels=None, classifier: PixelClassifier | None = None, region=None, *, step: int = 1,
              full: bool = True, should_stop: Callable[[], bool] | None = None,
              on_progress: Progress | None = None) -> Iterator:
        """One round of the annotation loop in the order a viewer shows it (a generator).

        With ``labels``, :meth:`train` ``classifier`` on them first (without, predict with
        ``classifier`` or the session's model). Yields the first :meth:`predict` stage
        (``region``: what is on screen; ``step``: its preview), then the round's
        :meth:`validate` result (None without labels or for autocontext; not recorded in
        :attr:`history`: the caller records it), then the rest of the image (``full``).
        A viewer draws the first stage before asking for more, so the rest does not
        compete with it for the cores.
        """
        if labels is not None:
            classifier = self.train(labels, classifier, should_stop=should_stop, on_progress=on_progress)
        stages = self.predict(region, classifier=classifier, step=step, full=full, should_stop=should_stop,
                              on_progress=on_progress)
        yield next(stages)
        yield None if labels is None else self.validate(record=False, should_stop=should_stop)
        yield from stages


__all__ = ["FEATURE_CACHE_BYTES", "AnnotationSession", "ImageFeatures", "Stage"]
