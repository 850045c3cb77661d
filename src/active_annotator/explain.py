"""Explain a trained forest: SHAP values, correlated features, learning-curve regime.

SHAP values (SHapley Additive exPlanations) come from the ``shap`` library's
exact tree algorithm (TreeSHAP, ``feature_perturbation="tree_path_dependent"``).
Our models keep only the forest's node arrays (:class:`~active_annotator.forest.Forest`),
not scikit-learn's estimator, so the trees are handed to ``shap`` in its
documented custom-tree dictionary form. The one thing the arrays lack is the
number of training samples per node ("cover"); it is counted here by passing
the explained samples through the trees. Any cover whose children sum to their
parent keeps SHAP's additivity exact: base value + sum of SHAP values = the
forest's class probability.

Correlated features share credit: two nearly equal features ("Gaussian 2 px"
and "Gaussian 4 px") each get part of the SHAP value one of them alone would
get. :func:`correlated_groups` finds such groups by hierarchical clustering of
the correlation matrix, and :func:`group_shap` adds the SHAP values within
each group.

``shap`` is an optional dependency (extra ``[explain]``); it is imported only
when SHAP values are computed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .errors import Cancelled, InputError, LabelError, NotFittedError

#: default largest number of samples explained (a stratified sample of the labels)
MAX_SAMPLES = 3000


# -- feature names in the user's words -----------------------------------------
_FAMILY = {"gaussian": "Gaussian", "dog": "DoG", "log": "LoG", "envelope": "envelope"}


def readable_name(name: str, *, unit: str = "px", samples_per_unit: float = 1.0,
                  n_channels: int = 1) -> str:
    """A feature name as a person says it: ``"gaussian_s2.0_c0"`` -> ``"Gaussian 2 px"``.

    Parameters
    ----------
    name : str
        A name from ``FeatureSet.names`` or ``SignalFeatures.names``
        (``family_s<sigma>_c<channel>``); other names (object measurements)
        are returned unchanged.
    unit : str
        Unit of the scale: ``"px"`` for images, ``"s"`` for signals.
    samples_per_unit : float
        Sigmas are stored in samples; divided by this to get ``unit``
        (the sampling rate for signals).
    n_channels : int
        With one channel the channel is not named.
    """
    base, ch = name, None
    m = re.fullmatch(r"(.+)_c(\d+)", name)
    if m:
        base, ch = m.group(1), int(m.group(2))
    m = re.fullmatch(r"(gaussian|dog|log|envelope|hessian(\d+))_s([0-9.eE+-]+)", base)
    if m:
        fam = m.group(1)
        scale = float(m.group(3)) / samples_per_unit
        label = f"Hessian eigenvalue {int(m.group(2)) + 1}" if m.group(2) else _FAMILY[fam]
        text = f"{label} {scale:.3g} {unit}"
    elif re.fullmatch(r"deep(\d+)", base):
        text = f"deep feature {int(base[4:])}"
    elif base == "envelope":
        text = "envelope"
    elif base == "original":
        text = "original intensity"
    elif (m := re.fullmatch(r"stalta_([0-9.]+)s_([0-9.]+)s", base)):
        text = f"STA/LTA {m.group(1)} s / {m.group(2)} s"
    elif (m := re.fullmatch(r"band_([0-9.]+)Hz", base)):
        text = f"band amplitude {m.group(1)} Hz"
    else:
        return name
    if ch is not None and n_channels > 1:
        text += f", channel {ch}"
    return text


def model_feature_names(model) -> list[str]:
    """Readable names of a fitted pixel, signal or object classifier's features."""
    names = list(getattr(model, "feature_names_in_", []))
    n_ch = int(getattr(model, "n_channels_in_", 1) or 1)
    spec = getattr(model, "features_", None)
    rate = getattr(spec, "sampling_rate", None)
    if rate is not None:  # a signal model: sigmas in samples, scales in seconds
        return [readable_name(n, unit="s", samples_per_unit=float(rate), n_channels=n_ch) for n in names]
    if hasattr(model, "forest_") and hasattr(model, "feature_set"):
        return [readable_name(n, n_channels=n_ch) for n in names]
    return names


# -- sampling -------------------------------------------------------------------
def stratified_indices(y, max_samples: int = MAX_SAMPLES, seed: int = 0) -> np.ndarray:
    """Indices of at most ``max_samples`` entries of ``y``, every class kept in proportion.

    Each class gets its share of ``max_samples`` (at least one sample, and all
    of a class smaller than its share). Sorted, so rows keep their order.
    """
    y = np.asarray(y).ravel()
    if max_samples < 1:
        raise InputError(f"max_samples must be at least 1, got {max_samples}.")
    if y.size <= max_samples:
        return np.arange(y.size)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = np.maximum(1, np.floor(counts / y.size * max_samples).astype(int))
    out = []
    for c, n in zip(classes, np.minimum(share, counts)):
        idx = np.flatnonzero(y == c)
        out.append(rng.choice(idx, size=int(n), replace=False))
    return np.sort(np.concatenate(out))


def pixel_samples(model, image, labels, channel_axis: int | None = None,
                  max_samples: int = MAX_SAMPLES, seed: int = 0):
    """Features and classes of a stratified sample of the labelled pixels.

    Parameters
    ----------
    model : fitted :class:`~active_annotator.classifier.PixelClassifier`
    image : array ``(*stack, *spatial)`` with an optional channel axis
    labels : int array ``(*stack, *spatial)``; 0 = unlabelled
    channel_axis : int or None

    Returns
    -------
    X : float32 ``(n, n_features)``, y : ``(n,)`` class values
    """
    from .classifier import _channels_last_view, check_labels
    from .features import compute_at

    if not hasattr(model, "forest_"):
        raise NotFittedError("The model is not trained yet: train it (fit) before explaining it.")
    stack, spatial = model.check_image(np.shape(image), channel_axis)
    labels = check_labels(labels, stack + spatial)
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    if where.size == 0:
        raise LabelError("There are no labels: paint (or load) labels of at least two classes to explain the model on.")
    keep = where[stratified_indices(flat[where], max_samples, seed)]
    mask = np.zeros(flat.shape, bool)
    mask[keep] = True
    mask = mask.reshape(labels.shape)
    img = _channels_last_view(np.asarray(image), channel_axis)
    fs = model.feature_set
    Xs, ys = [], []
    for p in (list(np.ndindex(*stack)) if stack else [()]):
        if mask[p].any():
            Xs.append(compute_at(img[p], fs, mask[p], channel_axis=-1))
            ys.append(labels[p][mask[p]])
    return np.concatenate(Xs), np.concatenate(ys)


# -- SHAP -----------------------------------------------------------------------
def _node_counts(forest, X: np.ndarray) -> np.ndarray:
    """How many rows of ``X`` ``(n, n_features)`` pass through each node of ``forest``."""
    counts = np.zeros(forest.feature.shape[0], np.float64)
    for root in forest.roots:
        rows = np.arange(X.shape[0])
        node = np.full(X.shape[0], root, np.int64)
        while node.size:
            np.add.at(counts, node, 1.0)
            inner = forest.left[node] >= 0
            rows, node = rows[inner], node[inner]
            # float32 features against float64 thresholds, as scikit-learn decides
            go_left = X[rows, forest.feature[node]].astype(np.float64) <= forest.threshold[node]
            node = np.where(go_left, forest.left[node], forest.right[node]).astype(np.int64)
    return counts


def _shap_model(forest, X: np.ndarray) -> dict:
    """The forest in ``shap``'s custom-tree dictionary form, covers counted on ``X``.

    A node that no row of ``X`` reaches would get cover 0 (and TreeSHAP would
    divide by it); every leaf gets a tiny extra weight, added up to its
    ancestors, so children still sum to their parent.
    """
    counts = _node_counts(forest, X)
    ends = np.append(forest.roots[1:], forest.feature.shape[0])
    trees = []
    scale = 1.0 / forest.n_trees
    for r, e in zip(forest.roots, ends):
        r, e = int(r), int(e)
        left = forest.left[r:e].astype(np.int64)
        right = forest.right[r:e].astype(np.int64)
        leaf = left < 0
        left = np.where(leaf, -1, left - r)
        right = np.where(leaf, -1, right - r)
        cover = counts[r:e] + np.where(leaf, 1e-6, 0.0)
        for i in range(e - r - 1, -1, -1):  # children have larger indices than parents
            if not leaf[i]:
                cover[i] = cover[left[i]] + cover[right[i]]
        trees.append({
            "children_left": left.astype(np.int32),
            "children_right": right.astype(np.int32),
            "children_default": left.astype(np.int32),
            "features": np.where(leaf, -2, forest.feature[r:e]).astype(np.int32),
            "thresholds": forest.threshold[r:e].astype(np.float64),
            "values": forest.value[r:e] * scale,
            "node_sample_weight": cover,
        })
    return {"trees": trees, "tree_output": "raw_value", "objective": "squared_error",
            "base_offset": 0.0, "input_dtype": np.float64, "internal_dtype": np.float64}


@dataclass
class Explanation:
    """SHAP values of a forest on some samples.

    Attributes
    ----------
    values : float64 ``(n_samples, n_features, n_classes)``
        Contribution of each feature to each class probability.
    base_values : float64 ``(n_classes,)``
        Expected class probability (over the samples' covers); for every
        sample ``base_values + values.sum(axis=1)`` is its predicted probability.
    data : float ``(n_samples, n_features)``
        The explained feature values.
    feature_names : list of str
        In the user's words (family, scale, channel).
    classes : list
        Class values, the last axis of ``values``.
    y : ``(n_samples,)`` or None
        The samples' labelled classes, when known.
    """

    values: np.ndarray
    base_values: np.ndarray
    data: np.ndarray
    feature_names: list
    classes: list
    y: np.ndarray | None = None
    notes: list = field(default_factory=list)

    def mean_abs(self) -> np.ndarray:
        """Mean |SHAP| per feature and class, ``(n_features, n_classes)``."""
        return np.abs(self.values).mean(axis=0)

    def ranking(self) -> list[tuple[str, float]]:
        """Features by mean |SHAP| summed over classes, largest first."""
        score = self.mean_abs().sum(axis=1)
        return [(self.feature_names[i], float(score[i])) for i in np.argsort(-score, kind="stable")]

    def to_csv(self) -> str:
        """Mean |SHAP| per feature (rows) and class (columns), as CSV text."""
        m = self.mean_abs()
        lines = ["feature," + ",".join(f"class_{c}" for c in self.classes) + ",total"]
        for name, _ in self.ranking():
            i = self.feature_names.index(name)
            q = name.replace('"', "'")
            lines.append(f'"{q}",' + ",".join(f"{v:.6g}" for v in m[i]) + f",{m[i].sum():.6g}")
        return "\n".join(lines) + "\n"


def _forest_of(model):
    from .forest import Forest

    if isinstance(model, Forest):
        return model, None
    if not hasattr(model, "forest_"):
        raise NotFittedError("The model is not trained yet: train it (fit) before explaining it.")
    forests = getattr(model, "forests_", None)
    return (forests[0] if forests else model.forest_), getattr(model, "classes_", None)


def shap_value_stages(model, X, *, feature_names=None, y=None, max_samples: int = MAX_SAMPLES,
                      seed: int = 0):
    """:func:`shap_values` as a generator: yields ``(done, total)`` rows, returns the Explanation.

    For a worker that reports progress and can stop between blocks
    (``e = yield from shap_value_stages(...)``).
    """
    return _shap_stages(model, X, feature_names, y, max_samples, seed)


def shap_values(model, X, *, feature_names=None, y=None, max_samples: int = MAX_SAMPLES,
                seed: int = 0, on_progress=None, should_stop=None) -> Explanation:
    """Exact TreeSHAP values of a forest on feature rows ``X``.

    Parameters
    ----------
    model : fitted PixelClassifier, SignalClassifier, ObjectClassifier or a Forest
        For an autocontext model the first stage (image features only) is
        explained; the note in the result says so.
    X : float array ``(n_samples, n_features)``
        Feature rows, e.g. from :func:`pixel_samples` or ``model.training_data``.
    feature_names : list of str, optional
        Default: :func:`model_feature_names` of the model.
    y : ``(n_samples,)``, optional
        Labelled classes; used to draw a stratified sample when ``X`` has
        more than ``max_samples`` rows (else a uniform one).
    max_samples, seed : int
    on_progress : callable(done, total), optional
    should_stop : callable() -> bool, optional; checked between blocks of
        rows, then :class:`~active_annotator.errors.Cancelled` is raised.

    Returns
    -------
    Explanation
    """
    stages = _shap_stages(model, X, feature_names, y, max_samples, seed)
    while True:
        if should_stop is not None and should_stop():
            stages.close()
            raise Cancelled("Explaining was cancelled.")
        try:
            done, total = next(stages)
        except StopIteration as fin:
            return fin.value
        if on_progress is not None and done:
            on_progress(done, total)


def _shap_stages(model, X, feature_names, y, max_samples, seed):
    forest, classes = _forest_of(model)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != forest.n_features:
        raise InputError(
            f"X has shape {X.shape}; the model needs rows of {forest.n_features} features "
            "(n_samples, n_features). Compute them with the model's own feature set."
        )
    if X.shape[0] == 0:
        raise InputError("There are no samples to explain: give at least one labelled sample.")
    if not np.all(np.isfinite(X)):
        raise InputError("X holds NaN or infinite values; TreeSHAP needs finite features.")
    keep = stratified_indices(y if y is not None else np.zeros(X.shape[0]), max_samples, seed)
    X = X[keep]
    y = None if y is None else np.asarray(y).ravel()[keep]
    try:
        import shap
    except ImportError:
        raise InputError(
            "Explaining a model needs the 'shap' package: pip install 'napari-active-annotator[explain]'."
        ) from None
    explainer = shap.TreeExplainer(_shap_model(forest, X), feature_perturbation="tree_path_dependent")
    Xd = X.astype(np.float64)
    blocks = []
    step = 256  # blocks of rows: progress and cancel between them (shap's C code holds the GIL)
    yield (0, Xd.shape[0])
    for lo in range(0, Xd.shape[0], step):
        v = np.asarray(explainer.shap_values(Xd[lo:lo + step], check_additivity=False), np.float64)
        blocks.append(v[:, :, None] if v.ndim == 2 else v)  # one output: add the class axis
        yield (min(lo + step, Xd.shape[0]), Xd.shape[0])
    vals = np.concatenate(blocks)
    base = np.atleast_1d(np.asarray(explainer.expected_value, np.float64))
    if feature_names is None:
        feature_names = model_feature_names(model) if not hasattr(model, "roots") else []
    feature_names = list(feature_names) or [f"feature {i}" for i in range(forest.n_features)]
    if len(feature_names) != forest.n_features:
        raise InputError(f"{len(feature_names)} feature names for {forest.n_features} features.")
    notes = []
    if getattr(model, "forests_", None) and len(model.forests_) > 1:
        notes.append("autocontext model: the first stage (image features only) is explained")
    classes = ([c.item() if hasattr(c, "item") else c for c in classes] if classes is not None
               else list(range(forest.n_classes)))
    return Explanation(vals, base, X, feature_names, classes, y, notes)


def predicted_probabilities(model, X) -> np.ndarray:
    """The explained forest's class probabilities ``(n_samples, n_classes)`` for rows ``X``."""
    forest, _ = _forest_of(model)
    return forest.predict_proba(np.ascontiguousarray(np.asarray(X, np.float32).T))


# -- correlated features -------------------------------------------------------
@dataclass
class FeatureGroups:
    """Features clustered by correlation.

    Attributes
    ----------
    correlation : float64 ``(n_features, n_features)``
        Pearson correlation of the features (0 for a constant feature).
    order : int ``(n_features,)``
        Feature indices in dendrogram order (correlated features adjacent).
    labels : int ``(n_features,)``
        Group of each feature, 0..n_groups-1.
    names : list of str
        One name per group ("Gaussian 2 px + Gaussian 4 px").
    members : list of list of int
    """

    correlation: np.ndarray
    order: np.ndarray
    labels: np.ndarray
    names: list
    members: list

    def sentence(self, feature_names) -> str:
        """One sentence on the groups of more than one feature, for under a plot."""
        big = [m for m in self.members if len(m) > 1]
        if not big:
            return "No two features are strongly correlated; each one's SHAP value stands on its own."
        m = max(big, key=len)
        few = ", ".join(feature_names[i] for i in m[:3]) + (" ..." if len(m) > 3 else "")
        return (f"{len(big)} group(s) of correlated features, e.g. {few}: they share credit, so each "
                "looks less important than the group is; compare groups, not single features.")


def correlated_groups(X, feature_names, threshold: float = 0.9) -> FeatureGroups:
    """Cluster features whose |correlation| is at least about ``threshold``.

    Average-linkage hierarchical clustering (scipy) on the distance
    ``1 - |r|``, cut at ``1 - threshold``.

    Parameters
    ----------
    X : float array ``(n_samples, n_features)``
    feature_names : list of str
    threshold : float in (0, 1]
    """
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
    from scipy.spatial.distance import squareform

    X = np.asarray(X, np.float64)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise InputError(f"X has shape {X.shape} but {len(feature_names)} feature names were given.")
    if not 0 < threshold <= 1:
        raise InputError(f"threshold must be in (0, 1], got {threshold}.")
    n = X.shape[1]
    std = X.std(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(X, rowvar=False) if X.shape[0] > 1 else np.eye(n)
    r = np.atleast_2d(np.nan_to_num(r, nan=0.0))
    r[std == 0, :] = 0.0
    r[:, std == 0] = 0.0
    np.fill_diagonal(r, 1.0)
    if n == 1:
        return FeatureGroups(r, np.zeros(1, int), np.zeros(1, int), [feature_names[0]], [[0]])
    d = np.clip(1.0 - np.abs(r), 0.0, None)
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    z = linkage(squareform(d, checks=False), method="average")
    order = leaves_list(z)
    raw = fcluster(z, t=1.0 - threshold, criterion="distance")
    # number groups in dendrogram order
    first = {}
    for i in order:
        first.setdefault(raw[i], len(first))
    labels = np.array([first[g] for g in raw])
    members = [[int(i) for i in order if labels[i] == g] for g in range(len(first))]
    names = [" + ".join(feature_names[i] for i in m[:2]) + (f" (+{len(m) - 2})" if len(m) > 2 else "")
             for m in members]
    return FeatureGroups(r, order, labels, names, members)


def group_shap(explanation: Explanation, groups: FeatureGroups) -> Explanation:
    """SHAP values summed within each correlated group (still additive).

    ``data`` of the result holds each group's mean feature value (a colour
    for the beeswarm plot, not a model input).
    """
    vals = np.stack([explanation.values[:, m, :].sum(axis=1) for m in groups.members], axis=1)
    data = np.stack([explanation.data[:, m].mean(axis=1) for m in groups.members], axis=1)
    return Explanation(vals, explanation.base_values, data, list(groups.names),
                       explanation.classes, explanation.y,
                       explanation.notes + ["SHAP values summed over correlated groups"])


# -- learning-curve diagnosis --------------------------------------------------
@dataclass
class Diagnosis:
    """Which regime a learning curve is in (see :func:`diagnose`).

    Attributes
    ----------
    regime : str
        ``"still improving"``, ``"too simple (high bias)"``,
        ``"large gap (high variance)"``, ``"flat"`` or ``"too few rounds"``.
    text : str
        One line for under the curve: the regime, its evidence, what to do.
    """

    regime: str
    text: str
    evidence: dict = field(default_factory=dict)


def diagnose(history, *, high_error: float = 0.10, gap: float = 0.08, improving: float = 0.01,
             window: int = 3) -> Diagnosis:
    """Say what the learning curve of a :class:`~active_annotator.evaluation.History` means.

    Uses the rounds' ``train_error`` and ``validation_error`` (1 - accuracy)
    against ``labelled_pixels``. In order:

    * too simple: the training error itself is at least ``high_error`` and
      validation is close to it (the model cannot even fit its labels);
    * still improving: the validation error fell by at least ``improving``
      over the last ``window`` rounds (label more);
    * large gap: validation error exceeds training error by at least ``gap``;
    * flat: none of these: more labels of the same kind no longer help.
    """
    rounds = getattr(history, "rounds", history)
    pts = [(r["labelled_pixels"], r["train_error"], r["validation_error"]) for r in rounds
           if r.get("train_error") is not None and r.get("validation_error") is not None
           and np.isfinite(r["train_error"]) and np.isfinite(r["validation_error"])]
    if len(pts) < 2:
        return Diagnosis("too few rounds",
                         f"{len(pts)} round(s) with validation labels: train a few more rounds "
                         "(with held-out labels) before reading the curve.")
    n, t, v = (np.array(c, np.float64) for c in zip(*pts))
    w = min(window, len(pts) - 1)
    drop = float(v[-1 - w] - v[-1])
    g = float(v[-1] - t[-1])
    ev = {"train_error": float(t[-1]), "validation_error": float(v[-1]), "gap": g,
          "validation_drop": drop, "labelled_pixels": int(n[-1]), "rounds": len(pts)}
    if t[-1] >= high_error and g < gap:
        return Diagnosis("too simple (high bias)",
                         f"Too simple (high bias): training error {t[-1]:.1%} and validation error "
                         f"{v[-1]:.1%} are both high; add feature families or scales, autocontext "
                         "stages or deep features rather than more labels.", ev)
    if drop >= improving:
        return Diagnosis("still improving",
                         f"Still improving: validation error fell {v[-1 - w]:.1%} -> {v[-1]:.1%} over "
                         f"the last {w} round(s) ({int(n[-1 - w])} -> {int(n[-1])} labelled pixels); "
                         "label more, starting at the suggested most uncertain places.", ev)
    if g >= gap:
        return Diagnosis("large gap (high variance)",
                         f"Large gap (high variance): validation error {v[-1]:.1%} vs training "
                         f"{t[-1]:.1%}; label more varied places (diversity strategy) or use fewer "
                         "features / larger min_samples_leaf.", ev)
    return Diagnosis("flat",
                     f"Flat: validation error {v[-1]:.1%} changed {drop:+.1%} over the last {w} "
                     "round(s); more labels of this kind no longer help: stop, or change strategy "
                     "or features.", ev)


# -- plots (matplotlib Figures, no pyplot state) ---------------------------------
def _top(explanation: Explanation, score, max_features):
    return np.argsort(-score, kind="stable")[:max_features]


def beeswarm_figure(explanation: Explanation, class_index: int = 0, max_features: int = 15, fig=None):
    """Beeswarm (summary) plot of one class: a dot per sample and feature.

    x: the SHAP value (effect on the class probability), rows: features by
    mean |SHAP| (largest on top), colour: the feature's value (rank within
    the samples, low blue to high red). Returns a ``matplotlib.figure.Figure``.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    e = explanation
    if not 0 <= class_index < len(e.classes):
        raise InputError(f"class_index {class_index} is out of range for {len(e.classes)} classes.")
    vals = e.values[:, :, class_index]
    idx = _top(e, np.abs(vals).mean(axis=0), max_features)
    fig = Figure(figsize=(7, 0.35 * len(idx) + 1.6), layout="constrained") if fig is None else fig
    fig.clear()
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    cmap = colormaps["coolwarm"]
    for row, i in enumerate(idx):
        x = vals[:, i]
        # colour by rank, so a few extreme values do not wash the scale out
        c = np.argsort(np.argsort(e.data[:, i], kind="stable"), kind="stable") / max(1, len(x) - 1)
        # vertical spread proportional to how many dots share an x bin (a beeswarm's outline)
        hist, edges = np.histogram(x, bins=50)
        dens = hist[np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 49)] / max(1, hist.max())
        yv = len(idx) - 1 - row + rng.uniform(-0.4, 0.4, x.size) * dens
        ax.scatter(x, yv, c=cmap(c), s=6, alpha=0.7, linewidths=0, rasterized=True)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(range(len(idx)), [e.feature_names[i] for i in idx][::-1])
    ax.set_xlabel(f"SHAP value (effect on the probability of class {e.classes[class_index]})")
    ax.set_title(f"Class {e.classes[class_index]}: what pushes a pixel towards it", fontsize=10)
    cb = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=ax, aspect=30, pad=0.01)
    cb.set_ticks([0, 1], labels=["low", "high"])
    cb.set_label("feature value")
    return fig


def bar_figure(explanation: Explanation, max_features: int = 15, fig=None):
    """Bar plot of mean |SHAP| per feature, stacked by class. Returns a Figure."""
    from matplotlib.figure import Figure

    e = explanation
    m = e.mean_abs()
    idx = _top(e, m.sum(axis=1), max_features)[::-1]
    fig = Figure(figsize=(7, 0.35 * len(idx) + 1.4), layout="constrained") if fig is None else fig
    fig.clear()
    ax = fig.add_subplot()
    left = np.zeros(len(idx))
    for k, c in enumerate(e.classes):
        ax.barh(range(len(idx)), m[idx, k], left=left, label=f"class {c}")
        left += m[idx, k]
    ax.set_yticks(range(len(idx)), [e.feature_names[i] for i in idx])
    ax.set_xlabel("mean |SHAP value| (average effect on the class probabilities)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def correlation_figure(groups: FeatureGroups, feature_names, fig=None):
    """Heatmap of the feature correlation, clustered so correlated groups sit together."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    o = groups.order
    n = len(o)
    size = min(12, 2.5 + 0.3 * n)
    fig = Figure(figsize=(size + 1, size), layout="constrained") if fig is None else fig
    fig.clear()
    ax = fig.add_subplot()
    im = ax.imshow(groups.correlation[np.ix_(o, o)], cmap="RdBu_r", vmin=-1, vmax=1)
    names = [feature_names[i] for i in o]
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    # outline each group of more than one feature
    pos = {int(i): k for k, i in enumerate(o)}
    for m in groups.members:
        if len(m) > 1:
            p = sorted(pos[i] for i in m)
            ax.add_patch(Rectangle(
                (p[0] - 0.5, p[0] - 0.5), len(p), len(p), fill=False, ec="k", lw=1.5))
    fig.colorbar(im, ax=ax, label="correlation", shrink=0.8)
    ax.set_title("Feature correlation (boxes: correlated groups)", fontsize=10)
    return fig


# -- report files ----------------------------------------------------------------
def write_report(explanation: Explanation, output_dir, *, groups: FeatureGroups | None = None,
                 max_features: int = 15) -> list:
    """Save the plots (PNG) and mean |SHAP| tables (CSV) into ``output_dir``; returns the paths.

    Each file is written to a temporary name and renamed, so a reader never
    sees half a file; a symlinked directory or file is refused.
    """
    import os
    from pathlib import Path

    from .errors import OutputError

    out = Path(output_dir)
    if out.is_symlink():
        raise OutputError(f"{str(out)!r} is a symbolic link; give a real directory for the output.")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{str(out)!r} exists and is not a directory; choose a directory for the output.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"Cannot create the output directory {str(out)!r} ({e.strerror}).") from None
    written = []

    def put(name, write):
        dst = out / name
        if dst.is_symlink():
            raise OutputError(f"{str(dst)!r} is a symbolic link; refusing to write through it.")
        tmp = out / f".{name}.partial"
        try:
            write(tmp)
            os.replace(tmp, dst)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"Cannot write {str(dst)!r} ({e.strerror}).") from None
        written.append(dst)

    def fig_writer(fig):
        return lambda p: fig.savefig(p, dpi=110, format="png")

    e = explanation
    put("shap_bar.png", fig_writer(bar_figure(e, max_features)))
    for k, c in enumerate(e.classes):
        put(f"shap_beeswarm_class_{c}.png", fig_writer(beeswarm_figure(e, k, max_features)))
    put("shap_mean_abs.csv", lambda p: p.write_text(e.to_csv()))
    if groups is not None:
        put("correlation.png", fig_writer(correlation_figure(groups, e.feature_names)))
        put("shap_groups_mean_abs.csv", lambda p: p.write_text(group_shap(e, groups).to_csv()))
    return written
