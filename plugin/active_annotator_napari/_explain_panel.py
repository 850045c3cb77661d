"""The "Explain" tab of the pixel dock: SHAP plots, correlated groups, learning-curve regime.

A translator only: it reads the dock's model, image and annotations, runs
:mod:`active_annotator.explain` in a napari generator worker (progress, and
cancel between blocks of pixels), and shows the figures the core draws.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.qt.threading import thread_worker
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from active_annotator.errors import AnnotatorError, InputError


def _explain_job(clf, image, labels, channel_axis, history):
    """Worker body: yields ``(done, total)``; returns (explanation, groups, diagnosis)."""
    from active_annotator import explain

    X, y = explain.pixel_samples(clf, image, labels, channel_axis)
    e = yield from explain.shap_value_stages(clf, X, y=y)
    groups = explain.correlated_groups(X, e.feature_names)
    return e, groups, explain.diagnose(history)


class ExplainPanel(QWidget):
    """Explain button, cancel, a plot chooser and the plot, with one line of findings."""

    def __init__(self, classifier_widget):
        super().__init__()
        self._dock = classifier_widget
        self._worker = None
        self.result = None
        self.explain_button = QPushButton("Explain model")
        self.explain_button.setToolTip("SHAP values of the model on (a sample of) the labelled pixels.")
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
        lay.addWidget(self.plot_choice)
        lay.addWidget(self.status)
        lay.addWidget(self.canvas, 1)

    def start(self, *_):
        d = self._dock
        try:
            if d.classifier is None:
                raise InputError("There is no model yet: press Train first.")
            layer = d.annotations_layer
            if layer is None:
                raise InputError("There are no annotations to explain the model on: paint labels first.")
            _, image, ca, *_ = d._image_and_geometry()
            labels = np.asarray(layer.data)
        except AnnotatorError as e:
            self.status.setText(str(e))
            return
        self.cancel()
        worker = thread_worker(_explain_job, start_thread=False)(
            d.classifier, np.asarray(image), labels, ca, d.history)
        worker.yielded.connect(lambda p: self.status.setText(f"Explaining: {p[0]} / {p[1]} labelled pixels"))
        worker.returned.connect(lambda r, w=worker: self._done(w, r))
        worker.errored.connect(lambda e, w=worker: self._failed(w, e))
        worker.aborted.connect(lambda w=worker: self._stopped(w, "Explaining was cancelled."))
        self._worker = worker
        self.cancel_button.setEnabled(True)
        self.status.setText("Explaining: computing features at the labelled pixels ...")
        worker.start()

    def cancel(self, *_):
        if self._worker is not None:
            self._worker.quit()  # a generator worker stops at its next yield

    def _stopped(self, worker, text):
        if worker is self._worker:
            self._worker = None
            self.cancel_button.setEnabled(False)
            self.status.setText(text)

    def _failed(self, worker, err):
        self._stopped(worker, str(err) if isinstance(err, AnnotatorError) else f"Explaining failed: {err!r}")

    def _done(self, worker, result):
        if worker is not self._worker or result is None:  # a stale or cancelled run
            return
        self._stopped(worker, "")
        self.result = result
        e, groups, diagnosis = result
        self.plot_choice.blockSignals(True)
        self.plot_choice.clear()
        self.plot_choice.addItems(["mean |SHAP| per feature"]
                                  + [f"beeswarm: class {c}" for c in e.classes]
                                  + ["feature correlation (clustered)", "mean |SHAP| per correlated group"])
        self.plot_choice.blockSignals(False)
        self.status.setText(f"{groups.sentence(e.feature_names)}\nLearning curve: {diagnosis.text}")
        self._draw()

    def _draw(self, *_):
        if self.result is None:
            return
        from active_annotator import explain

        e, groups, _ = self.result
        k = self.plot_choice.currentIndex()
        if k <= 0:
            explain.bar_figure(e, fig=self.figure)
        elif k <= len(e.classes):
            explain.beeswarm_figure(e, k - 1, fig=self.figure)
        elif k == len(e.classes) + 1:
            explain.correlation_figure(groups, e.feature_names, fig=self.figure)
        else:
            explain.bar_figure(explain.group_shap(e, groups), fig=self.figure)
        self.canvas.draw_idle()
