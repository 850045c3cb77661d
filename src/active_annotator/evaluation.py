"""Model validation: label splits, metrics, and the history of rounds.

Axes: label arrays and predictions share the data's shape ``(*spatial)`` (or
``(*stack, *spatial)``); 0 in a label array means "not labelled" and is
ignored by every metric; classes are 1..K.

Labels are split **by connected component** (a stroke, or a filled object),
never by pixel: neighbouring pixels of one stroke are nearly identical, so a
pixel split would put copies of the training data in the validation set and
report an error far below the real one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi

from .errors import InputError


MIN_HELD_OUT_STROKES = 3  # per class, before a validation error is shown


class LabelSplit(NamedTuple):
    """Three label arrays of the input's shape; each labelled pixel is in exactly one."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_labels(labels, validation: float = 0.3, test: float = 0.0, seed: int | None = 0,
                 connectivity: int = 1, keep: LabelSplit | None = None) -> LabelSplit:
    """Split labels into train / validation / test by connected component.

    For each class, its connected components (``scipy.ndimage.label`` with the
    given ``connectivity``; 1 = faces only) are shuffled and given whole to
    the part furthest below its share of that class's pixels, training first.
    A class with a single component stays in training (a model needs it);
    a class with two or more components always keeps one in training.

    ``keep``: the split of an earlier round. A component that overlaps one of its
    parts stays in that part (a stroke made longer stays where it was), so the
    held-out strokes do not change from round to round and the learning curve
    measures the model, not a new draw of the validation set; only new strokes
    are shared out.

    Parameters
    ----------
    labels : int array ``(*spatial)``; 0 = unlabelled
    validation, test : float
        Target fractions of each class's labelled pixels (by whole components,
        so only approximately met).
    seed : int, optional
    connectivity : int
        1 to ``labels.ndim``, as in ``scipy.ndimage.generate_binary_structure``.

    Returns
    -------
    LabelSplit(train, validation, test), arrays like ``labels`` with 0 where
    a pixel belongs to another part.
    """
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"Labels must be integers (0 = unlabelled), got dtype {lab.dtype}.")
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise InputError(
            f"validation ({validation}) and test ({test}) must be fractions in [0, 1) "
            "that sum to less than 1."
        )
    rng = np.random.default_rng(seed)
    structure = ndi.generate_binary_structure(lab.ndim, connectivity)
    parts = [np.zeros_like(lab) for _ in range(3)]
    share = np.array([1 - validation - test, validation, test])
    for k in np.unique(lab[lab != 0]):
        comp, n = ndi.label(lab == k, structure=structure)
        sizes = np.bincount(comp.ravel())[1:]
        order = rng.permutation(n)
        got = np.zeros(3)
        dest = np.zeros(n + 1, int)  # component id -> part (0 train, 1 val, 2 test)
        total = sizes.sum()
        kept = np.full(n + 1, -1)
        if keep is not None:  # an earlier part wins: validation, then test, then training
            for part in (0, 2, 1):
                hit = np.unique(comp[(np.asarray(keep[part]) == k) & (comp > 0)])
                kept[hit] = part
        for c in order:
            if kept[c + 1] >= 0:
                dest[c + 1] = kept[c + 1]
                got[kept[c + 1]] += sizes[c]
        for c in order:
            if kept[c + 1] >= 0:
                continue
            if got[0] == 0:
                part = 0  # every class keeps at least one training component
            else:
                deficit = share * total - got
                deficit[share == 0] = -np.inf
                part = int(np.argmax(deficit))
            dest[c + 1] = part
            got[part] += sizes[c]
        if got[0] == 0:  # every stroke of the class was held out before: the largest trains
            dest[int(np.argmax(sizes)) + 1] = 0
        where = comp > 0
        assigned = dest[comp[where]]
        for p in range(3):
            sel = np.zeros_like(where)
            sel[where] = assigned == p
            parts[p][sel] = k
    return LabelSplit(*parts)


@dataclass
class Metrics:
    """Scores of a prediction at labelled pixels.

    Attributes
    ----------
    classes : list of int
        Class values, the rows/columns of ``confusion``.
    confusion : int ndarray (K, K)
        Rows: true class, columns: predicted class.
    accuracy : float
    precision, recall, f1, jaccard : dict class -> float
    n_pixels : int
        Labelled pixels evaluated.
    """

    classes: list
    confusion: np.ndarray
    accuracy: float
    precision: dict
    recall: dict
    f1: dict
    jaccard: dict
    n_pixels: int

    @property
    def error(self) -> float:
        """1 - accuracy."""
        return 1.0 - self.accuracy

    @property
    def mean_jaccard(self) -> float:
        """Jaccard averaged over classes (macro)."""
        return float(np.mean(list(self.jaccard.values()))) if self.jaccard else float("nan")

    def to_dict(self) -> dict:
        return {
            "classes": [int(c) for c in self.classes],
            "confusion": self.confusion.tolist(),
            "accuracy": self.accuracy,
            "precision": {int(k): v for k, v in self.precision.items()},
            "recall": {int(k): v for k, v in self.recall.items()},
            "f1": {int(k): v for k, v in self.f1.items()},
            "jaccard": {int(k): v for k, v in self.jaccard.items()},
            "n_pixels": self.n_pixels,
        }

    def table(self) -> list[dict]:
        """One row per class (class, precision, recall, f1, jaccard, support) for a metrics table."""
        support = self.confusion.sum(axis=1)
        return [
            {"class": int(c), "precision": self.precision[c], "recall": self.recall[c],
             "f1": self.f1[c], "jaccard": self.jaccard[c], "support": int(s)}
            for c, s in zip(self.classes, support)
        ]


def metrics(truth, prediction, classes=None) -> Metrics:
    """Confusion matrix, accuracy and per-class precision, recall, F1, Jaccard.

    Parameters
    ----------
    truth : int array ``(*shape)``; 0 = not labelled (ignored)
    prediction : int array ``(*shape)`` of class values
    classes : sequence of int, optional
        Class values to report; default those in ``truth`` and ``prediction``
        at the labelled pixels.

    Returns
    -------
    Metrics (computed with ``sklearn.metrics``; a class with no true and no
    predicted pixels scores 0).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, jaccard_score, precision_recall_fscore_support

    t = np.asarray(truth)
    p = np.asarray(prediction)
    if t.shape != p.shape:
        raise InputError(f"truth has shape {t.shape} but the prediction has {p.shape}.")
    m = t != 0
    yt, yp = t[m].ravel(), p[m].ravel()
    if classes is None:
        classes = np.unique(np.concatenate([yt, yp]))
    classes = [int(c) for c in classes]
    if yt.size == 0:
        nan = {c: float("nan") for c in classes}
        return Metrics(classes, np.zeros((len(classes),) * 2, int), float("nan"), nan, dict(nan),
                       dict(nan), dict(nan), 0)
    cm = confusion_matrix(yt, yp, labels=classes)
    pr, rc, f1, _ = precision_recall_fscore_support(yt, yp, labels=classes, zero_division=0)
    jac = jaccard_score(yt, yp, labels=classes, average=None, zero_division=0)
    as_dict = lambda v: {c: float(x) for c, x in zip(classes, v)}  # noqa: E731
    return Metrics(classes, cm, float(accuracy_score(yt, yp)), as_dict(pr), as_dict(rc), as_dict(f1),
                   as_dict(jac), int(yt.size))


@dataclass
class History:
    """The rounds of an annotation session, for learning curves.

    Each round records labelled pixels per class and training / validation
    metrics. Add rounds with :meth:`record` (from a prediction and a label
    split) or :meth:`add` (precomputed metrics).
    """

    rounds: list = field(default_factory=list)

    def add(self, labels_per_class: dict, train: Metrics | None = None,
            validation: Metrics | None = None, **extra) -> dict:
        """Append a round; returns its flat row (also what :meth:`to_csv` writes)."""
        row = {"round": len(self.rounds) + 1,
               "labelled_pixels": int(sum(labels_per_class.values()))}
        for k, v in sorted(labels_per_class.items()):
            row[f"labels_class_{int(k)}"] = int(v)
        for name, m in (("train", train), ("validation", validation)):
            if m is None:
                continue
            row[f"{name}_pixels"] = m.n_pixels
            row[f"{name}_accuracy"] = m.accuracy
            row[f"{name}_error"] = m.error
            row[f"{name}_mean_jaccard"] = m.mean_jaccard
            for c in m.classes:
                row[f"{name}_jaccard_{c}"] = m.jaccard[c]
                row[f"{name}_f1_{c}"] = m.f1[c]
        row.update(extra)
        self.rounds.append(row)
        return row

    def record(self, prediction, labels, split: LabelSplit | None = None, **extra) -> dict:
        """Score ``prediction`` on the training and validation labels and append a round.

        Parameters
        ----------
        prediction : int array, the labels' shape (class values)
        labels : int array; all the user's labels (0 = unlabelled)
        split : LabelSplit, optional
            Default :func:`split_labels` ``(labels)``.
        """
        lab = np.asarray(labels)
        split = split_labels(lab) if split is None else split
        values, counts = np.unique(lab[lab != 0], return_counts=True)
        classes = [int(v) for v in values]
        return self.add(
            dict(zip(classes, counts.tolist())),
            metrics(split.train, prediction, classes),
            metrics(split.validation, prediction, classes),
            **extra,
        )

    def to_dict(self) -> dict:
        return {"rounds": [dict(r) for r in self.rounds]}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls([dict(r) for r in d.get("rounds", [])])

    def to_csv(self, path=None) -> str:
        """Write the rounds as CSV (one row per round); returns the text."""
        cols: list[str] = []
        for r in self.rounds:
            cols += [k for k in r if k not in cols]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in self.rounds:
            w.writerow(r)
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text

    def figure(self, fig=None):
        """Learning curve: training and validation error against labelled pixels.

        Returns a ``matplotlib.figure.Figure`` (no pyplot, so a Qt widget can
        embed it with ``FigureCanvasQTAgg(figure)``); pass ``fig`` to redraw
        into an existing one.
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5, 3.2), layout="constrained") if fig is None else fig
        fig.clear()
        ax = fig.add_subplot()
        x = [r["labelled_pixels"] for r in self.rounds]
        for name, style in (("train", "o-"), ("validation", "s-")):
            y = np.array([r.get(f"{name}_error", np.nan) for r in self.rounds], float)
            se = np.array([r.get(f"{name}_error_se", np.nan) for r in self.rounds], float)
            if name == "validation" and np.isfinite(se).any():  # ± one standard error (strokes)
                ax.errorbar(x, y, yerr=np.nan_to_num(se), fmt=style, label=f"{name} error ± s.e.", ms=4,
                            capsize=3)
            else:
                ax.plot(x, y, style, label=f"{name} error", ms=4)
        ax.set_xlabel("labelled pixels")
        ax.set_ylabel("error (1 - accuracy)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if self.rounds:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no rounds yet", ha="center", va="center", transform=ax.transAxes)
        return fig


@dataclass
class Validation:
    """Scores of one training round (see :func:`fit_and_validate`).

    Attributes
    ----------
    split : LabelSplit
    labels_per_class : dict class -> labelled pixels (all labels)
    train : Metrics
        The held-out model on the labels it was trained on (training error).
    validation : Metrics
        The held-out model on the validation labels; ``n_pixels`` 0 (NaN
        scores) when no class has a second stroke to hold out.
    """

    split: LabelSplit
    labels_per_class: dict
    train: Metrics
    validation: Metrics
    held_out_strokes: dict = field(default_factory=dict)  # class -> held-out strokes (components)
    error_se: float = float("nan")  # standard error of validation.error, strokes as clusters

    @property
    def enough(self) -> bool:
        """Every class has at least :data:`MIN_HELD_OUT_STROKES` held-out strokes: only then
        is the validation error worth showing (two strokes score 1.000 more often than not)."""
        return bool(self.labels_per_class) and all(
            self.held_out_strokes.get(c, 0) >= MIN_HELD_OUT_STROKES for c in self.labels_per_class)

    def record(self, history: History, **extra) -> dict:
        """Append this round to ``history``; returns the row. A round without enough held-out
        strokes records its training scores only."""
        extra = {"validation_strokes": int(sum(self.held_out_strokes.values())), **extra}
        if not self.enough:
            return history.add(self.labels_per_class, self.train, None, **extra)
        return history.add(self.labels_per_class, self.train, self.validation,
                           validation_error_se=self.error_se, **extra)


def fit_and_validate(classifier, image, labels, channel_axis: int | None = None,
                     validation: float = 0.3, seed: int | None = 0,
                     on_progress=None, should_stop=None) -> Validation:
    """Train ``classifier`` on all labels, and score a twin trained without the validation strokes.

    The model a person uses should learn from every stroke, but an honest
    error needs strokes the model never saw. So the labels are split by
    connected component (:func:`split_labels`); a copy of the classifier
    (same parameters) is trained on the training part and scored on both
    parts; then ``classifier`` itself is trained on all labels. The features
    at labelled pixels are computed once and shared by both fits.

    Parameters
    ----------
    classifier : PixelClassifier
        Fitted in place on all labels (as ``fit`` would).
    image : array ``(*stack, *spatial)`` with an optional channel axis
    labels : int array ``(*stack, *spatial)``; 0 = unlabelled
    channel_axis : int or None
    validation : float
        Target fraction of each class's labelled pixels held out.
    seed : int, optional
        Seed of the split.
    on_progress, should_stop : as in :meth:`PixelClassifier.fit`

    Returns
    -------
    Validation
    """
    lab = np.asarray(labels)
    X, y, n_ch = classifier.training_data(image, lab, channel_axis, on_progress, should_stop)
    classifier.fit_features(X, y, n_channels=n_ch, labels_dtype=lab.dtype, should_stop=should_stop)
    return validate_fitted(classifier, X, y, lab, n_ch, validation=validation, seed=seed,
                           should_stop=should_stop)


def validate_fitted(classifier, X, y, labels, n_channels: int, validation: float = 0.3,
                    seed: int | None = 0, should_stop=None, keep: LabelSplit | None = None) -> Validation:
    """Score a classifier already trained on all labels, on features already computed.

    A twin with the same parameters is trained without the validation
    strokes (:func:`split_labels`) and scored on both parts, so interactive
    callers that cache features (the napari widget) validate without
    recomputing them.

    Parameters
    ----------
    classifier : PixelClassifier, fitted on ``X, y``
    X : float32 (n_labelled, n_features), rows in C order of ``labels != 0``
    y : (n_labelled,) class values
    labels : int array, the labels ``X`` and ``y`` came from
    n_channels : int
    keep : LabelSplit, optional
        The previous round's split: its held-out strokes stay held out (:func:`split_labels`).
    """
    lab = np.asarray(labels)
    split = split_labels(lab, validation=validation, seed=seed, keep=keep)
    # rows follow the labelled pixels in C order, as boolean indexing does
    held_out = split.validation[lab != 0] != 0
    values, counts = np.unique(y, return_counts=True)
    classes = [int(v) for v in values]
    if held_out.any():
        twin = type(classifier)(**classifier.get_params())
        twin.fit_features(X[~held_out], y[~held_out], n_channels=n_channels,
                          labels_dtype=lab.dtype, should_stop=should_stop)
    else:
        twin = classifier

    def predict(rows):
        proba = twin.predict_proba_features(np.ascontiguousarray(X[rows].T))
        return twin.classes_[np.argmax(proba, axis=0)]

    train_m = metrics(y[~held_out], predict(~held_out), classes)
    predicted = predict(held_out) if held_out.any() else y[held_out]
    val_m = metrics(y[held_out], predicted, classes)
    strokes, se = _stroke_error(split.validation, predicted, y[held_out])
    return Validation(split, dict(zip(classes, counts.tolist())), train_m, val_m, strokes, se)


def _stroke_error(held, predicted, truth):
    """``({class: held-out strokes}, standard error of the error rate)``: the pixels of a stroke
    are not independent, so the error's spread is estimated with strokes as clusters (the
    ratio estimator's standard error, sqrt(m/(m-1) * sum((w_i - e n_i)^2)) / sum(n_i))."""
    vals = held[held != 0]  # C order, like the rows of predicted/truth
    comp = np.zeros(held.shape, np.int64)
    n_comp, per_class = 0, {}
    for k in np.unique(vals):
        c, n = ndi.label(held == k)
        comp[c > 0] = c[c > 0] + n_comp
        n_comp += n
        per_class[int(k)] = int(n)
    if n_comp < 2:
        return per_class, float("nan")
    ids = comp[held != 0]
    wrong = np.bincount(ids, weights=(predicted != truth).astype(float), minlength=n_comp + 1)[1:]
    size = np.bincount(ids, minlength=n_comp + 1)[1:].astype(float)
    e = wrong.sum() / size.sum()
    se = np.sqrt(n_comp / (n_comp - 1) * np.sum((wrong - e * size) ** 2)) / size.sum()
    return per_class, float(se)


__all__ = ["MIN_HELD_OUT_STROKES", "LabelSplit", "split_labels", "Metrics", "metrics", "History", "Validation",
           "fit_and_validate", "validate_fitted"]
