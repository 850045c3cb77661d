"""The "Explain" tab of the Pixel, Signal and Object docks: SHAP plots, correlated groups, learning-curve regime.

A translator only: the dock says which model and which labelled samples to
explain (:class:`Explained`); the panel runs :mod:`active_annotator.explain`
in a napari generator worker (progress, and cancel between blocks of
samples), and shows the figures the core draws, the bars coloured like the
classes in the viewer. The Pixel dock's panel also offers "Suggest features"
(:func:`active_annotator.feature_suggestion.suggest_features`, in a worker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from active_annotator.errors import AnnotatorError, InputError

from ._dock import Runner
from ._messages import for_gui

ROW_PX = 22  # height of one feature row in the bar and beeswarm plots


@dataclass
class Explained:
    """What a dock hands the panel: the model, a worker-side ``samples()`` -> ``(X, y)``, and more.

    ``samples`` runs in the worker (features may take seconds); ``history``
    (an evaluation History, optional) gives the learning-curve line;
    ``class_colours``/``class_names`` map class values to RGBA and names.
    """

    model: object
    samples: object
    what: str = "labelled samples"
    history: object = None
    class_colours: dict = None
    class_names: dict = None


def _explain_job(explained):
    """Worker body: yields ``(done, total)``; returns (explanation, groups, diagnosis or None)."""
    from active_annotator import explain

    X, y = explained.samples()
    e = yield from explain.shap_value_stages(explained.model, X, y=y)
    groups = explain.correlated_groups(X, e.feature_names)
    diagnosis = None if explained.history is None else explain.diagnose(explained.history)
    return e, groups, diagnosis


def _pixel_source(dock):
    """The Pixel dock's model and labelled pixels."""
    if dock.classifier is None:
        raise InputError("There is no model yet: press Train first.")
    layer = dock.annotations_layer
    if layer is None:
        raise InputError("There are no annotations to explain the model on: paint labels first.")
    _, image, ca, *_ = dock.image_and_geometry()
    image, labels, clf = np.asarray(image), np.asarray(layer.data), dock.classifier

    def samples():
        from active_annotator import explain

        return explain.pixel_samples(clf, image, labels, ca)

    classes = [int(c) for c in clf.classes_]
    colours = dict(zip(classes, np.asarray(layer.colormap.map(np.asarray(classes)), float).reshape(-1, 4)))
    names = {int(k): str(v) for k, v in (layer.metadata.get("class_names") or {}).items()}
    return Explained(clf, samples, "labelled pixels", getattr(dock, "history", None), colours, names)


def _suggest_job(image, labels, features, channel_axis, n_channels):
    """Worker body (a generator, so Cancel can stop it before it starts): the suggestion as text."""
    from active_annotator.feature_suggestion import suggest_features

    yield (0, 1)
    found = suggest_features(image, labels, features, channel_axis=channel_axis)
    return found.report(n_channels)


def _pixel_suggestion(dock):
    """``(job, args)`` of "Suggest features" for the Pixel dock's image and strokes."""
    layer = dock.annotations_layer
    if layer is None:
        raise InputError("There are no annotations to rank features on: paint strokes of two classes first.")
    _, image, ca, *_ = dock.image_and_geometry()
    clf = dock.classifier
    features = getattr(clf, "feature_set", None) if clf is not None else None
    n_channels = int(getattr(clf, "n_channels_in_", 1) or 1) if clf is not None else 1
    return _suggest_job, (np.asarray(image), np.asarray(layer.data), features, ca, n_channels)


class ExplainPanel(QWidget):
    """Explain button, cancel, a plot chooser and the plot, with one line of findings.

    ``source()`` (main thread) returns an :class:`Explained` or raises
    :class:`AnnotatorError` saying what to do first; default: the Pixel dock's.
    ``suggest_features`` adds the "Suggest features" button (pixel models).
    Signal ``cancelled``: a run was stopped with Cancel.
    """

    cancelled = Signal()

    def __init__(self, dock, source=None, suggest_features=None):
        super().__init__()
        self._dock = dock
        if source is None:  # the Pixel dock's panel, which also suggests features
            source = lambda: _pixel_source(dock)
            suggest_features = suggest_features or (lambda: _pixel_suggestion(dock))
        self._source = source
        self.runner = Runner(self, self)
        self._progress_text = str
        self._explained = None
        self.result = None
        self.explain_button = QPushButton("Explain model")
        self.explain_button.setToolTip("SHAP values of the model on (a sample of) the labelled data.")
        self.explain_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.plot_choice = QComboBox()
        self.plot_choice.currentIndexChanged.connect(self._draw)
        self.status = QLabel("Train a model, then press Explain model.")
        self.status.setWordWrap(True)
        self.figure = Figure(figsize=(5, 4), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(360)  # a beeswarm of 15 rows is unreadable when squashed
        row = QHBoxLayout()
        row.addWidget(self.explain_button)
        row.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        self._suggest = suggest_features
        self.suggest_button = self.suggest_text = None
        if suggest_features is not None:
            self.suggest_button = QPushButton("Suggest features")
            self.suggest_button.setToolTip("Rank feature families and scales on your strokes and propose a "
                                           "smaller set that scores as well (fits several small forests).")
            self.suggest_button.clicked.connect(self.start_suggest)
            self.suggest_text = QLabel("")
            self.suggest_text.setWordWrap(True)
            row.addWidget(self.suggest_button)
        lay.addWidget(self.plot_choice)
        lay.addWidget(self.status)
        if self.suggest_text is not None:
            lay.addWidget(self.suggest_text)
        lay.addWidget(self.canvas, 1)

    # -- workers: one at a time, newest wins, cancel between blocks (the dock base's Runner) ---
    def _run(self, job, args, on_done, busy_text, progress_text):
        def body(task):  # a generator, so Cancel stops it at its next block
            return (yield from job(*args))

        self._progress_text = progress_text
        self.runner.run(body, on_done, desc=busy_text)

    def show_running(self, desc):
        self.cancel_button.setEnabled(True)
        self.status.setText(desc)

    def show_progress(self, done, total, text):
        self.status.setText(self._progress_text((done, total)))

    def show_done(self):
        self.cancel_button.setEnabled(False)
        self.status.setText("")

    def show_idle(self):
        self.cancel_button.setEnabled(False)

    def set_status(self, text):
        self.status.setText(text)

    def fail(self, message, notify=False):  # in the panel's status line: nothing to pop up
        self.status.setText(for_gui(message))

    def start(self, *_):
        """Explain the dock's model on its labelled samples, in a worker."""
        try:
            explained = self._source()
        except AnnotatorError as e:
            self.status.setText(str(e))
            return
        self._explained = explained
        self._run(_explain_job, (explained,), self._show,
                  f"Explaining: computing features at the {explained.what}",
                  lambda p: f"Explaining: {p[0]} / {p[1]} {explained.what}")

    def start_suggest(self, *_):
        """Run the feature suggestion on the dock's strokes, in a worker; the result is text."""
        try:
            job, args = self._suggest()
        except AnnotatorError as e:
            self.status.setText(str(e))
            return
        self._run(job, args, lambda text: self.suggest_text.setText(text),
                  "Suggesting features: fitting a forest per candidate set", lambda p: "")

    def cancel(self, *_):
        self.runner.cancel()

    @property
    def busy(self) -> bool:
        return self.runner.busy

    # -- showing ---------------------------------------------------------------------------
    def _show(self, result):
        self.result = result
        e, groups, diagnosis = result
        self.plot_choice.blockSignals(True)
        self.plot_choice.clear()
        names = (self._explained.class_names or {}) if self._explained else {}
        self.plot_choice.addItems(["mean |SHAP| per feature"]
                                  + [f"beeswarm: class {c}" + (f" ({names[c]})" if c in names else "")
                                     for c in e.classes]
                                  + ["feature correlation (clustered)", "mean |SHAP| per correlated group"])
        self.plot_choice.blockSignals(False)
        lines = [groups.sentence(e.feature_names)]
        if diagnosis is not None:
            lines.append(f"Learning curve: {diagnosis.text}")
        self.status.setText("\n".join(lines))
        self._draw()

    def _draw(self, *_):
        if self.result is None:
            return
        from active_annotator import explain

        e, groups, _ = self.result
        k = self.plot_choice.currentIndex()
        rows = min(15, len(e.feature_names))
        # tall enough for every row, its tick label and the axis label below: never cut off
        self.canvas.setMinimumHeight(max(360, ROW_PX * rows + 150))
        if k <= 0:
            explain.bar_figure(e, fig=self.figure)
            self._colour_bars(e.classes)
        elif k <= len(e.classes):
            explain.beeswarm_figure(e, k - 1, fig=self.figure)
        elif k == len(e.classes) + 1:
            explain.correlation_figure(groups, e.feature_names, fig=self.figure)
        else:
            explain.bar_figure(explain.group_shap(e, groups), fig=self.figure)
            self._colour_bars(e.classes)
        for ax in self.figure.axes:
            ax.tick_params(labelsize=8)
            ax.xaxis.label.set_size(8)
        self.canvas.draw_idle()

    def _colour_bars(self, classes):
        """Bars in the classes' colours in the viewer, with a legend of class names."""
        ex = self._explained
        colours = (ex.class_colours or {}) if ex else {}
        names = (ex.class_names or {}) if ex else {}
        ax = self.figure.axes[0]
        handles = []
        for container, c in zip(ax.containers, classes):
            colour = colours.get(int(c)) if np.ndim(c) == 0 else None
            if colour is not None:
                for bar in container:
                    bar.set_facecolor(colour)
            handles.append(Patch(facecolor=colour if colour is not None else container[0].get_facecolor(),
                                 label=f"{c}: {names.get(int(c), f'class {c}')}"))
        ax.legend(handles=handles, title="class", loc="lower right", fontsize=8, title_fontsize=8)
