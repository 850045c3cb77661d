"""Segmented objects: measure them, explore them, classify them.

A person who already has a segmentation (an instance label image: 0 is
background, each object has its own positive id) sorts the objects into
classes in three steps, all available here without Qt:

1. :func:`measure` -- shape and intensity measurements per object, as a
   table (a dict of equal-length numpy columns, which napari's
   ``layer.features`` and :func:`pandas.DataFrame` both accept);
   :func:`to_csv` writes it out.
2. Exploration without labels -- :func:`embed` (PCA, t-SNE, UMAP),
   :func:`cluster` (k-means), :func:`correlation` and
   :func:`separating_measurements` (which measurements differ between the
   clusters). t-SNE, UMAP and k-means are *not* deterministic in general: they
   are seeded (``random_state``) so a run can be repeated, but another seed or
   one more object can change the picture. Use them to form a hypothesis.
3. :class:`ObjectClassifier` -- a random forest on the measurements, trained on
   the objects a person labelled, with impurity and permutation importance;
   saved with :func:`active_annotator.persistence.save_object_classifier` in
   the same safe format as the pixel classifier. :func:`suggest_objects`
   ranks the unlabelled objects to label next.

>>> from active_annotator import data, objects
>>> d = data.nuclei2d()
>>> table = objects.measure(d["objects"], d["image"])
>>> table["circularity"].shape  # one row per nucleus
(125,)
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._estimator import Estimator
from .errors import InputError, LabelError, NotFittedError
from .forest import Forest

#: Columns that name, locate or classify an object rather than describe its shape or
#: intensity (never used as features; the napari widget adds the last four).
LOCATION_COLUMNS = ("label", "index", "cluster", "class", "class_probability")

#: Measurements per dimensionality, in table order (intensity ones need an image).
SHAPE_MEASUREMENTS = {
    2: ("area", "perimeter", "circularity", "solidity", "extent", "major_axis_length",
        "minor_axis_length", "aspect_ratio", "elongation", "eccentricity"),
    3: ("volume", "surface_area", "sphericity", "solidity", "extent", "major_axis_length",
        "minor_axis_length", "aspect_ratio", "elongation"),
}
INTENSITY_MEASUREMENTS = ("intensity_mean", "intensity_std", "intensity_min", "intensity_max")

EMBEDDINGS = ("pca", "tsne", "umap")
STRATEGIES = ("hybrid", "uncertainty", "entropy", "margin", "least_confidence",
              "diversity", "cluster", "random")  # as active_annotator.sampling


# --------------------------------------------------------------------------- measure


def _check_objects(objects) -> np.ndarray:
    obj = np.asarray(objects)
    if obj.ndim not in (2, 3):
        raise InputError(
            f"Objects must be a 2D or 3D label image, got {obj.ndim} dimension(s) "
            f"(shape {obj.shape}). For a time series or channels, measure one frame at a time."
        )
    if not np.issubdtype(obj.dtype, np.integer):
        raise InputError(f"Objects must be an integer label image, got dtype {obj.dtype}.")
    if obj.size and obj.min() < 0:
        raise InputError("Object ids must be >= 0 (0 = background).")
    return obj


def _surface_and_solidity_3d(props, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Surface area (marching cubes on the padded object) and solidity per 3D object."""
    from skimage.measure import marching_cubes, mesh_surface_area

    surface = np.full(len(props), np.nan)
    solidity = np.full(len(props), np.nan)
    for i, p in enumerate(props):
        mask = np.pad(p.image, 1).astype(np.float32)
        try:
            verts, faces, _, _ = marching_cubes(mask, 0.5, spacing=spacing)
            surface[i] = mesh_surface_area(verts, faces)
        except (ValueError, RuntimeError):
            pass
        try:  # qhull fails on flat (one-slice) objects; leave those NaN
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                solidity[i] = float(p.solidity)
        except Exception:  # noqa: BLE001 -- scipy's QhullError is not importable everywhere
            pass
    return surface, solidity


def measure(objects, image=None, *, channel_axis: int | None = None,
            spacing=None) -> dict[str, np.ndarray]:
    """Shape and intensity measurements of every object.

    Parameters
    ----------
    objects : int array, shape ``(Y, X)`` or ``(Z, Y, X)``
        Instance labels: 0 is background, each object one positive id.
    image : array, optional
        Intensity image of the same spatial shape; with ``channel_axis`` it may
        have one channel axis (intensity columns then end in ``-0``, ``-1``...).
    channel_axis : int, optional
        Axis of ``image`` holding channels.
    spacing : sequence of float, optional
        Pixel size per spatial axis (as napari's layer ``scale``); areas,
        lengths and centroids are then in those units.

    Returns
    -------
    table : dict of str -> 1D numpy array
        One row per object, ordered by id. Columns: ``label``, ``centroid-0``..
        (location), then for 2D ``area, perimeter, circularity, solidity,
        extent, major_axis_length, minor_axis_length, aspect_ratio,
        elongation, eccentricity``; for 3D ``volume, surface_area, sphericity,
        solidity, extent, major/minor_axis_length, aspect_ratio, elongation``;
        and with an image ``intensity_mean, intensity_std, intensity_min,
        intensity_max``.

    Notes
    -----
    Values come from :func:`skimage.measure.regionprops_table` (so they equal
    scikit-image's), plus derived ones:
    ``circularity = 4 pi area / perimeter**2`` (1 for a disc; can exceed 1 for
    tiny objects, whose perimeter scikit-image underestimates);
    ``sphericity = pi**(1/3) (6 volume)**(2/3) / surface_area``;
    ``aspect_ratio = major / minor`` (NaN when the minor axis is 0: a line);
    ``elongation = 1 - minor / major`` (0 for a disc, towards 1 for a line).
    """
    from skimage.measure import regionprops, regionprops_table

    obj = _check_objects(objects)
    ndim = obj.ndim
    spacing = None if spacing is None else tuple(float(s) for s in spacing)
    if spacing is not None and len(spacing) != ndim:
        raise InputError(f"spacing has {len(spacing)} values; the objects have {ndim} axes.")
    intensity = None
    if image is not None:
        intensity = np.asarray(image)
        if channel_axis is not None:
            intensity = np.moveaxis(intensity, channel_axis, -1)
            spatial = intensity.shape[:-1]
        else:
            spatial = intensity.shape
        if spatial != obj.shape:
            raise InputError(
                f"The image's spatial shape {spatial} differs from the objects' {obj.shape}. "
                "Pick the image the objects were segmented from (or set channel_axis)."
            )
    if intensity is not None and not np.issubdtype(intensity.dtype, np.floating):
        intensity = intensity.astype(np.float64)  # skimage keeps integer dtype for min/max

    props = ["label", "centroid", "area", "extent", "axis_major_length", "axis_minor_length"]
    if ndim == 2:
        props += ["perimeter", "solidity", "eccentricity"]
    if intensity is not None:
        props += ["intensity_mean", "intensity_std", "intensity_min", "intensity_max"]
    t = regionprops_table(obj, intensity, properties=props, spacing=spacing)
    t = {k: np.asarray(v) for k, v in t.items()}

    table: dict[str, np.ndarray] = {"label": t["label"].astype(np.int64)}
    for k in sorted(c for c in t if c.startswith("centroid-")):
        table[k] = t[k].astype(np.float64)
    area = t["area"].astype(np.float64)
    major = t["axis_major_length"].astype(np.float64)
    minor = t["axis_minor_length"].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if ndim == 2:
            perimeter = t["perimeter"].astype(np.float64)
            table["area"] = area
            table["perimeter"] = perimeter
            table["circularity"] = np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, np.nan)
            table["solidity"] = t["solidity"].astype(np.float64)
        else:
            surface, solidity = _surface_and_solidity_3d(
                regionprops(obj, spacing=spacing), spacing or (1.0, 1.0, 1.0))
            table["volume"] = area
            table["surface_area"] = surface
            table["sphericity"] = np.where(
                surface > 0, np.pi ** (1 / 3) * (6 * area) ** (2 / 3) / surface, np.nan)
            table["solidity"] = solidity
        table["extent"] = t["extent"].astype(np.float64)
        table["major_axis_length"] = major
        table["minor_axis_length"] = minor
        table["aspect_ratio"] = np.where(minor > 0, major / minor, np.nan)
        table["elongation"] = np.where(major > 0, 1 - minor / major, 0.0)
    if ndim == 2:
        table["eccentricity"] = t["eccentricity"].astype(np.float64)
    for name in INTENSITY_MEASUREMENTS:
        for k in sorted(c for c in t if c == name or c.startswith(name + "-")):
            table[k] = t[k].astype(np.float64)
    return table


def measurement_names(table) -> list[str]:
    """The columns of ``table`` that describe objects (not ids or positions)."""
    return [c for c in _column_names(table)
            if c not in LOCATION_COLUMNS and not c.startswith(("centroid-", "bbox-"))
            and np.issubdtype(np.asarray(table[c]).dtype, np.number)]


def _column_names(table) -> list[str]:
    if hasattr(table, "columns"):  # pandas DataFrame (napari's layer.features)
        return [str(c) for c in table.columns]
    if isinstance(table, dict):
        return list(table)
    raise InputError(f"Expected a table (dict of columns or DataFrame), got {type(table).__name__}.")


def feature_matrix(table, columns=None) -> tuple[np.ndarray, list[str]]:
    """Measurements as a float64 matrix ``(n_objects, n_columns)`` and its column names.

    ``columns`` defaults to :func:`measurement_names`. Non-finite values stay
    NaN here; the functions below fill them with the column median.
    """
    if isinstance(table, np.ndarray):
        x = np.asarray(table, np.float64)
        if x.ndim != 2:
            raise InputError(f"A feature matrix must be 2D (objects, measurements), got {x.shape}.")
        names = list(columns) if columns is not None else [f"f{i}" for i in range(x.shape[1])]
        return x, names
    names = list(columns) if columns is not None else measurement_names(table)
    have = set(_column_names(table))
    missing = [c for c in names if c not in have]
    if missing:
        raise InputError(f"The table has no column(s) {missing}; measure the objects first.")
    if not names:
        raise InputError("The table has no measurement columns; run measure() first.")
    x = np.column_stack([np.asarray(table[c], np.float64) for c in names])
    x[~np.isfinite(x)] = np.nan
    return x, names


def _fill(x: np.ndarray, fill=None) -> tuple[np.ndarray, np.ndarray]:
    """Replace NaN by per-column values (medians of ``x`` unless given)."""
    x = np.array(x, np.float64)
    if fill is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column
            fill = np.nanmedian(x, axis=0) if len(x) else np.zeros(x.shape[1])
        fill = np.where(np.isfinite(fill), fill, 0.0)
    bad = ~np.isfinite(x)
    if bad.any():
        x[bad] = np.take(fill, np.nonzero(bad)[1])
    return x, np.asarray(fill, np.float64)


def standardize(x) -> np.ndarray:
    """NaN filled with medians, each column to zero mean and unit variance (constant -> 0)."""
    x, _ = _fill(np.asarray(x, np.float64))
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def to_csv(table, path) -> Path:
    """Write a measurement table to CSV (header row, one row per object). Returns the path."""
    path = Path(path)
    names = _column_names(table)
    cols = [np.asarray(table[c]) for c in names]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for row in zip(*cols):
            w.writerow([v.item() if hasattr(v, "item") else v for v in row])
    return path


# --------------------------------------------------------------------------- explore


def umap_available() -> bool:
    """True when the optional ``umap-learn`` package can be imported."""
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def embed(x, method: str = "pca", *, n_components: int = 2, random_state: int | None = 0,
          perplexity: float = 30.0) -> np.ndarray:
    """Low-dimensional embedding of the standardised measurements.

    Parameters
    ----------
    x : array ``(n_objects, n_measurements)`` or a table
    method : ``"pca"`` (deterministic), ``"tsne"`` or ``"umap"`` (needs
        ``pip install umap-learn``); the latter two depend on ``random_state``.
    perplexity : t-SNE's neighbourhood size; lowered automatically for few objects.

    Returns
    -------
    float64 array ``(n_objects, n_components)``
    """
    if not isinstance(x, np.ndarray):
        x, _ = feature_matrix(x)
    z = standardize(x)
    n = z.shape[0]
    if method not in EMBEDDINGS:
        raise InputError(f"Unknown embedding {method!r}; choose one of {list(EMBEDDINGS)}.")
    if n < 3:
        raise InputError(f"An embedding needs at least 3 objects, got {n}.")
    k = min(n_components, z.shape[1], n)
    if method == "pca":
        from sklearn.decomposition import PCA

        out = PCA(n_components=k, random_state=random_state).fit_transform(z)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        out = TSNE(n_components=n_components, perplexity=min(perplexity, (n - 1) / 3),
                   init="pca", random_state=random_state).fit_transform(z)
    else:
        try:
            import umap
        except ImportError:
            raise InputError(
                "UMAP needs the optional package umap-learn: pip install umap-learn "
                "(or choose PCA or t-SNE)."
            ) from None
        out = umap.UMAP(n_components=n_components, n_neighbors=min(15, n - 1),
                        random_state=random_state).fit_transform(z)
    out = np.asarray(out, np.float64)
    if out.shape[1] < n_components:  # one measurement only: pad so callers can plot 2D
        out = np.column_stack([out, np.zeros((n, n_components - out.shape[1]))])
    return out


def cluster(x, n_clusters: int = 3, *, random_state: int | None = 0) -> np.ndarray:
    """k-means clusters of the standardised measurements, numbered 1..n_clusters.

    Clusters are computed in measurement space (not on a 2D embedding), so
    they do not depend on the embedding chosen. k-means depends on
    ``random_state``. Returns int64 ``(n_objects,)``.
    """
    from sklearn.cluster import KMeans

    if not isinstance(x, np.ndarray):
        x, _ = feature_matrix(x)
    z = standardize(x)
    if not 1 <= n_clusters <= len(z):
        raise InputError(f"Cannot make {n_clusters} clusters from {len(z)} objects.")
    km = KMeans(n_clusters=n_clusters, n_init=10, random_state=random_state).fit(z)
    return km.labels_.astype(np.int64) + 1


def correlation(x) -> np.ndarray:
    """Pearson correlation matrix of the measurements ``(n_measurements, n_measurements)``.

    Constant measurements correlate 0 with everything else (1 with themselves).
    """
    if not isinstance(x, np.ndarray):
        x, _ = feature_matrix(x)
    z = standardize(x)
    n = max(len(z), 1)
    c = (z.T @ z) / n
    np.fill_diagonal(c, 1.0)
    return np.clip(c, -1.0, 1.0)


def separating_measurements(x, groups, names=None, *, method: str = "anova",
                            random_state: int | None = 0) -> list[tuple[str, float]]:
    """Rank measurements by how well they separate ``groups`` (e.g. clusters, classes).

    ``method="anova"`` uses the ANOVA F statistic (between-group over
    within-group variance; deterministic); ``"mutual_info"`` the mutual
    information (nonlinear, seeded). Objects whose group is 0 are ignored.
    Returns ``[(name, score), ...]``, best first.
    """
    from sklearn.feature_selection import f_classif, mutual_info_classif

    if not isinstance(x, np.ndarray):
        x, names2 = feature_matrix(x, names)
        names = names2
    names = list(names) if names is not None else [f"f{i}" for i in range(x.shape[1])]
    g = np.asarray(groups)
    keep = g != 0
    z, _ = _fill(x[keep])
    if np.unique(g[keep]).size < 2:
        raise InputError("Need at least two groups (clusters or classes) to rank measurements.")
    if method == "anova":
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")  # constant columns give NaN F
            score, _ = f_classif(z, g[keep])
    elif method == "mutual_info":
        score = mutual_info_classif(z, g[keep], random_state=random_state)
    else:
        raise InputError(f"Unknown method {method!r}; choose 'anova' or 'mutual_info'.")
    score = np.where(np.isfinite(score), score, 0.0)
    order = np.argsort(-score, kind="stable")
    return [(names[i], float(score[i])) for i in order]


@dataclass(frozen=True)
class Exploration:
    """What :func:`explore` found: one row per object in ``embedding`` and ``clusters``."""

    method: str
    embedding: np.ndarray  # (n_objects, 2)
    clusters: np.ndarray  # (n_objects,) 1..n_clusters
    names: list  # measurement names, order of ``correlation``
    correlation: np.ndarray  # (n_measurements, n_measurements)
    separating: list  # [(name, ANOVA F), ...] best first: what differs between clusters


def explore(table, method: str = "pca", n_clusters: int = 3, *, random_state: int | None = 0,
            columns=None) -> Exploration:
    """Embedding, k-means clusters, correlation and the measurements that separate the clusters.

    One call for the exploration step (the napari widget runs exactly this).
    See :func:`embed`, :func:`cluster`, :func:`correlation` and
    :func:`separating_measurements`; t-SNE, UMAP and k-means depend on
    ``random_state``.
    """
    x, names = feature_matrix(table, columns)
    emb = embed(x, method, random_state=random_state)
    groups = cluster(x, n_clusters, random_state=random_state)
    sep = (separating_measurements(x, groups, names) if np.unique(groups).size > 1
           else [(n, 0.0) for n in names])
    return Exploration(method, emb, groups, names, correlation(x), sep)


# --------------------------------------------------------------------------- label images


def object_classes(objects, ids, values) -> np.ndarray:
    """A label image where every object is painted with its value (0 stays 0).

    ``ids`` and ``values`` are per-object (e.g. ``table["label"]`` and a
    classifier's predictions); objects not listed become 0.
    """
    from skimage.util import map_array

    obj = np.asarray(objects)
    values = np.asarray(values)
    out_dtype = np.uint8 if values.size == 0 or values.max() < 256 else np.uint32
    return map_array(obj, np.asarray(ids, obj.dtype), values.astype(out_dtype)).astype(out_dtype)


def object_annotations(objects, annotations, ids=None) -> np.ndarray:
    """The class each object was given in a painted annotation image.

    An object's class is the most frequent non-zero annotation inside it
    (0 if none), so a person can click whole objects or just dab a brush on
    them. Returns int64 ``(len(ids),)``; ``ids`` defaults to all object ids in
    increasing order (the row order of :func:`measure`).
    """
    obj = _check_objects(objects)
    ann = np.asarray(annotations)
    if ann.shape != obj.shape:
        raise LabelError(f"Annotations shape {ann.shape} differs from the objects' {obj.shape}.")
    if ids is None:
        ids = np.unique(obj[obj > 0])
    ids = np.asarray(ids, np.int64)
    out = np.zeros(ids.shape, np.int64)
    m = (obj > 0) & (ann > 0)
    if not m.any():
        return out
    o = obj[m].astype(np.int64)
    a = ann[m].astype(np.int64)
    pairs, counts = np.unique(np.stack([o, a]), axis=1, return_counts=True)
    # keep the most frequent class per object: sort by count then take the last per object
    order = np.lexsort((counts, pairs[0]))
    pairs = pairs[:, order]
    last = np.r_[pairs[0, 1:] != pairs[0, :-1], True]
    best = dict(zip(pairs[0, last].tolist(), pairs[1, last].tolist()))
    for i, oid in enumerate(ids.tolist()):
        out[i] = best.get(oid, 0)
    return out


# --------------------------------------------------------------------------- classify


class ObjectClassifier(Estimator):
    """Random forest on object measurements, with impurity and permutation importance.

    Follows the scikit-learn estimator contract: ``__init__`` stores
    parameters, :meth:`fit` learns and returns ``self``; learned state ends
    with ``_``. Prediction runs on the array forest (:class:`Forest`), so a
    saved and reloaded classifier predicts exactly the same.

    >>> clf = ObjectClassifier().fit(table, y)      # y: class per object, 0 = unlabelled
    >>> classes = clf.predict(table)
    """

    def __init__(self, n_estimators: int = 200, max_depth: int | None = None,
                 min_samples_leaf: int = 1, class_weight: str | None = "balanced",
                 random_state: int | None = 0, n_jobs: int | None = None):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __repr__(self) -> str:
        return f"ObjectClassifier({self._params_repr()})"

    def _check_fitted(self):
        if not hasattr(self, "forest_"):
            raise NotFittedError("This ObjectClassifier is not trained yet: call fit() first.")

    def fit(self, table, y, *, columns=None, permutation_repeats: int = 10) -> ObjectClassifier:
        """Train on the objects whose class in ``y`` is not 0.

        Parameters
        ----------
        table : dict of columns, DataFrame, or array ``(n_objects, n_measurements)``
        y : int array ``(n_objects,)``: class per object, 0 = not labelled
        columns : measurements to use (default: all of :func:`measurement_names`)
        permutation_repeats : shuffles per measurement for permutation importance
            (0 skips it, leaving NaN)

        Notes
        -----
        Permutation importance here is the fraction of *all* objects in
        ``table`` whose predicted class changes when one measurement is
        shuffled across objects (mean and std over ``permutation_repeats``
        seeded shuffles). It needs no held-out labels, which a person who
        labelled eight objects does not have, and says how much the
        classification of this data set relies on each measurement. Impurity
        importance (``feature_importances_``) comes from the forest's splits.
        """
        from sklearn.ensemble import RandomForestClassifier

        x, names = feature_matrix(table, columns)
        y = np.asarray(y)
        if y.shape != (x.shape[0],):
            raise LabelError(f"y has shape {y.shape}; expected one class per object ({x.shape[0]},).")
        if not np.issubdtype(y.dtype, np.integer):
            raise LabelError(f"Object classes must be integers (0 = unlabelled), got {y.dtype}.")
        labelled = y != 0
        classes = np.unique(y[labelled])
        if classes.size < 2:
            raise LabelError(
                f"Label objects of at least two classes before training "
                f"(labelled so far: {int(labelled.sum())} object(s), "
                f"class(es) {classes.tolist()})."
            )
        x, fill = _fill(x)
        xl, yl = x[labelled].astype(np.float32), y[labelled]
        rf = RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, class_weight=self.class_weight,
            random_state=self.random_state, n_jobs=self.n_jobs,
        ).fit(xl, yl)
        self.forest_ = Forest.from_sklearn(rf).validate()
        self.classes_ = rf.classes_.astype(np.int64)
        self.feature_names_in_ = list(names)
        self.n_features_in_ = len(names)
        self.fill_values_ = fill
        self.feature_importances_ = np.asarray(rf.feature_importances_, np.float64)
        self.permutation_importances_, self.permutation_importances_std_ = (
            self._permutation_importance(x, permutation_repeats))
        self.n_training_objects_ = int(labelled.sum())
        return self

    def _permutation_importance(self, x, repeats) -> tuple[np.ndarray, np.ndarray]:
        n_feat = x.shape[1]
        if repeats <= 0:
            return np.full(n_feat, np.nan), np.full(n_feat, np.nan)
        xt = np.ascontiguousarray(x.T, np.float32)
        base = np.argmax(self.forest_.predict_proba(xt), axis=1)
        rng = np.random.default_rng(self.random_state)
        changed = np.zeros((n_feat, repeats))
        for j in range(n_feat):
            original = xt[j].copy()
            for r in range(repeats):
                xt[j] = rng.permutation(original)
                changed[j, r] = np.mean(np.argmax(self.forest_.predict_proba(xt), axis=1) != base)
            xt[j] = original
        return changed.mean(axis=1), changed.std(axis=1)

    def _matrix(self, table) -> np.ndarray:
        self._check_fitted()
        x, _ = feature_matrix(table, self.feature_names_in_)
        if x.shape[1] != self.n_features_in_:
            raise InputError(f"Expected {self.n_features_in_} measurements, got {x.shape[1]}.")
        x, _ = _fill(x, self.fill_values_)
        return x

    def predict_proba(self, table) -> np.ndarray:
        """Class probabilities ``(n_objects, n_classes)``; columns follow ``classes_``."""
        x = self._matrix(table)
        return self.forest_.predict_proba(x.T.astype(np.float32))

    def predict(self, table) -> np.ndarray:
        """Most likely class per object (values of ``classes_``)."""
        proba = self.predict_proba(table)  # raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(proba, axis=1)]

    def importances(self) -> list[dict]:
        """Per measurement: impurity and permutation importance, most important first."""
        self._check_fitted()
        rows = [
            {"measurement": n, "impurity": float(a), "permutation": float(b),
             "permutation_std": float(s)}
            for n, a, b, s in zip(self.feature_names_in_, self.feature_importances_,
                                  self.permutation_importances_, self.permutation_importances_std_)
        ]
        return sorted(rows, key=lambda r: -r["impurity"])

    def save(self, path, class_names: dict | None = None) -> Path:
        """Write to an ``.aaobjects`` file (safe format, see :mod:`persistence`)."""
        from .persistence import save_object_classifier

        return save_object_classifier(self, path, class_names=class_names)

    @classmethod
    def load(cls, path) -> ObjectClassifier:
        from .persistence import load_object_classifier

        return load_object_classifier(path)


# --------------------------------------------------------------------------- suggest


@dataclass(frozen=True)
class ObjectSuggestion:
    """An object worth labelling next: its row in the table, its id, score and why."""

    index: int
    label: int
    score: float
    reason: str


def suggest_objects(table, *, proba=None, labelled=None, n: int = 10, strategy: str = "hybrid",
                    measure: str = "entropy",
                    random_state: int | None = 0) -> list[ObjectSuggestion]:
    """Rank the unlabelled objects by how much labelling them would teach the classifier.

    Uses the package's active-learning ranking (:func:`active_annotator.sampling.suggest`)
    with each object as one candidate described by its standardised
    measurements, so distances (diversity, clusters, hybrid) are in
    measurement space, not in pixels.

    Parameters
    ----------
    table : measurement table of all objects (or a matrix ``(n_objects, n_measurements)``)
    proba : ``(n_objects, n_classes)`` from :meth:`ObjectClassifier.predict_proba`.
        Without it only label-free ranking is possible: every strategy except
        ``random`` falls back to ``diversity``.
    labelled : bool or class array ``(n_objects,)``; labelled objects are never suggested
    strategy : one of :data:`STRATEGIES`: ``uncertainty`` (or a measure name),
        ``diversity`` (k-center greedy on the measurements), ``cluster``
        (k-means, the most uncertain object of each cluster), ``hybrid``
        (uncertainty weighted by the distance to labelled objects and earlier
        picks), ``random``.
    measure : ``entropy``, ``margin`` or ``least_confidence`` (uncertainty of
        the probabilities; all in [0, 1], 1 = most uncertain)

    Returns
    -------
    list of :class:`ObjectSuggestion`, best first.
    """
    from . import sampling
    from .candidates import Candidate

    if strategy not in STRATEGIES:
        raise InputError(f"Unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}.")
    if isinstance(table, np.ndarray):
        x, _ = feature_matrix(table)
        ids = np.arange(1, len(x) + 1)
    else:
        x, _ = feature_matrix(table)
        ids = np.asarray(table["label"], np.int64)
    nobj = len(x)
    lab = (np.zeros(nobj, np.uint8) if labelled is None
           else (np.asarray(labelled) != 0).astype(np.uint8))
    if lab.shape != (nobj,):
        raise InputError(f"labelled has shape {lab.shape}; expected one entry per object ({nobj},).")
    z = standardize(x)
    # each object is one item of a collection (stack index = row), compared by
    # its measurements: sampling's descriptor-space branch
    cands = [Candidate(i, "image", (), (float(i),), stack_index=i, descriptor=z[i])
             for i in range(nobj)]
    fallback = ""
    if proba is None and strategy != "random":
        fallback = "" if strategy == "diversity" else "no classifier yet: "
        strategy = "diversity"
    p = None if proba is None else np.asarray(proba, np.float64).T  # (K, n_objects)
    if p is not None and p.shape[1] != nobj:
        raise InputError(f"proba has {p.shape[1]} rows; expected one per object ({nobj}).")
    picks = sampling.suggest(cands, labelled=lab, strategy=strategy, n=n, seed=random_state,
                             proba=p, measure=None if p is None else
                             strategy if strategy in ("entropy", "margin", "least_confidence")
                             else measure)
    out = []
    for s in picks:
        i = int(s.candidate.stack_index)
        reason = (fallback + s.reason).replace("candidate", "object")
        out.append(ObjectSuggestion(i, int(ids[i]), float(s.score), reason))
    return out
