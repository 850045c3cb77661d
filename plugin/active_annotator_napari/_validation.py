"""The "Validation" panel of the pixel-classifier widget: learning curve and metrics.

Draws :meth:`active_annotator.evaluation.History.figure` (training versus
validation error against labelled pixels, one point per training round) in an
embedded matplotlib canvas, and the per-class precision, recall, F1 and
Jaccard of the latest round on the validation strokes. The numbers come from
:func:`active_annotator.evaluation.fit_and_validate`, which the training
worker calls; this panel only shows them.
"""

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from active_annotator.evaluation import MIN_HELD_OUT_STROKES, History

MAX_HEIGHT = 300
COLUMNS = ("class", "precision", "recall", "f1", "jaccard", "support")
HEADERS = ("Class", "Precision", "Recall", "F1", "Jaccard", "Pixels")


class ValidationPanel(QWidget):
    """Learning curve and per-class metrics on held-out strokes.

    Holds the learning curve (``history``: one round per training) of one image
    (``image``, a layer name): :meth:`follow` starts a new curve for another image.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.history = History()
        self.image = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        self.figure = Figure(figsize=(4, 2.2), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(130)
        self.canvas.setToolTip(
            "One point per training round. Validation: a model trained without about 30% of your "
            "strokes (whole strokes, the same ones every round), scored on them, ± one standard error "
            "over those strokes; shown once each class has 3 held-out strokes. Training: the same model "
            "on the strokes it saw. The model you see is trained on all strokes.")
        outer.addWidget(self.canvas, 1)

        self.summary = QLabel("Train to start the learning curve. Validation needs at least two "
                              "separate strokes of a class.")
        self.summary.setWordWrap(True)
        outer.addWidget(self.summary)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setToolTip("Scores of the latest round on the validation strokes, per class.")
        self.table.setMaximumHeight(110)
        outer.addWidget(self.table)
        # the dock's tabs get the room first; the curve keeps a readable height
        self.setMaximumHeight(MAX_HEIGHT)
        self._draw(None)

    def _draw(self, history):
        (history or History()).figure(self.figure)
        ax = self.figure.axes[0]
        ax.set_title("Learning curve", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
        if ax.get_legend() is not None:
            ax.legend(fontsize=7)
        self.canvas.draw()  # synchronous: an idle draw could outlive a closed widget

    def reset(self, why: str):
        """Empty curve and table, with ``why`` in the summary line (e.g. another image was chosen)."""
        self._draw(None)
        self.table.setRowCount(0)
        self.summary.setText(why)

    def follow(self, image):
        """The chosen image is ``image`` (a layer name): a new curve when it is another one."""
        if image and image != self.image:
            if self.history.rounds:
                self.history = History()
                self.reset(f"New learning curve for {image!r}: the previous one belonged to {self.image!r}.")
            self.image = image

    def restore(self, rounds, image):
        """Resume a saved curve (a project's ``history`` rounds) of ``image``."""
        self.history, self.image = History.from_dict({"rounds": rounds}), image
        self._draw(self.history)
        self.summary.setText(f"{len(self.history.rounds)} training rounds restored from the project.")

    def record(self, validation):
        """Add a training round's ``validation`` to the curve and show its table."""
        validation.record(self.history)
        self.show_round(self.history, validation)

    def show_round(self, history, validation):
        """Redraw the curve from ``history`` and fill the table from the round's ``validation``."""
        self._draw(history)
        m, held = validation.validation, validation.held_out_strokes
        if not validation.enough:
            have = ", ".join(f"class {c}: {held.get(c, 0)}" for c in validation.labels_per_class)
            self.summary.setText(
                f"Round {len(history.rounds)}: training error {validation.train.error:.3f}. Not enough "
                f"held-out strokes yet ({have}; {MIN_HELD_OUT_STROKES} per class needed): keep painting "
                "separate strokes; about every third is held out, and stays held out.")
            rows = []
        else:
            n = sum(held.values())
            self.summary.setText(
                f"Round {len(history.rounds)}: validation error {m.error:.3f} ± {validation.error_se:.3f} "
                f"on {m.n_pixels} held-out pixels in {n} strokes (training error {validation.train.error:.3f}).")
            rows = m.table()
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(COLUMNS):
                v = row[key]
                text = str(v) if key in ("class", "support") else ("–" if np.isnan(v) else f"{v:.3f}")
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(r, c, item)
