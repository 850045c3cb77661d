"""The "Batch prediction" dock: a saved model over a folder (or glob) of images.

Everything it does is :func:`active_annotator.batch.predict_batch` in a worker
thread: the dock gathers the paths, starts the worker, and shows its progress
(one step per image) and each file's status. Cancel stops the running image
at its next chunk; nothing of it is written. Rerunning skips the images a
previous run finished with the same model and settings.

The model is a file (``.aamodel`` forest or ``.aacnn`` CNN), or the open
*Pixel classifier* dock's current forest (found through napari's public
``viewer.window.dock_widgets``): that one is saved as
``pixel-classifier.aamodel`` in the output folder (in the worker) and
predicted from there, so the run can be repeated; saving is deterministic, so
a rerun with an unchanged forest still skips the finished images.
"""

import threading
from pathlib import Path

import napari
from napari.qt.threading import create_worker
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from active_annotator.errors import AnnotatorError

_STATUS_TEXT = {"pending": "waiting", "running": "running…", "done": "done", "skipped": "skipped (done before)",
                "failed": "failed", "cancelled": "cancelled"}


PIXEL_MODEL_FILE = "pixel-classifier.aamodel"


def _run(job, on_progress, on_file):
    """Worker body: the whole batch; expected failures come back as a message."""
    from active_annotator.batch import predict_batch

    try:
        if job.get("classifier") is not None:
            job["output"].mkdir(parents=True, exist_ok=True)
            job["model"] = job["classifier"].save(job["output"] / PIXEL_MODEL_FILE)
        return predict_batch(job["model"], job["inputs"], job["output"],
                             output_format=job["format"], proba=job["proba"], redo=job["redo"],
                             on_progress=on_progress, should_stop=job["stop"].is_set,
                             on_file=on_file)
    except (AnnotatorError, OSError) as e:
        return str(e)


class BatchPredictionWidget(QWidget):
    """Predict every image of a folder (or glob) with a saved model, one output file per image."""

    #: emitted (in the main thread) with the BatchReport, or the error message, when a run ends
    finished = Signal(object)
    _progress = Signal(int, int)
    _file = Signal(int, object)

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._job = None
        self._worker = None
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("model file (.aamodel or .aacnn)")
        self.input_edit = QLineEdit()
        self.input_edit.setPlaceholderText("folder, or a pattern such as /data/plate1/*.tif")
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("output folder")
        self.format_combo = QComboBox()
        self.format_combo.addItems([".tif", ".zarr"])
        self.format_combo.setToolTip(".zarr is written chunk by chunk (images larger than memory)")
        self.pixel_check = QCheckBox("Use the Pixel classifier dock's current model")
        self.pixel_check.setToolTip(f"saved as {PIXEL_MODEL_FILE} in the output folder, then predicted")
        self.pixel_check.toggled.connect(lambda on: self.model_edit.setEnabled(not on))
        self.proba_check = QCheckBox("Probabilities instead of classes")
        self.redo_check = QCheckBox("Redo finished images")
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("idle")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["image", "status"])
        self.table.horizontalHeader().setStretchLastSection(True)

        form = QFormLayout()
        form.addRow("Model", self._with_button(self.model_edit, "…", self._pick_model))
        form.addRow("Images", self._with_button(self.input_edit, "…", self._pick_input))
        form.addRow("Output folder", self._with_button(self.output_edit, "…", self._pick_output))
        form.addRow("Output type", self.format_combo)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pixel_check)
        layout.addLayout(form)
        layout.addWidget(self.proba_check)
        layout.addWidget(self.redo_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.table)

        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self._progress.connect(self._on_progress)
        self._file.connect(self._on_file)

    @staticmethod
    def _with_button(edit, text, slot):
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(edit)
        b = QPushButton(text)
        b.setMaximumWidth(30)
        b.clicked.connect(slot)
        h.addWidget(b)
        return row

    def _pick_model(self):
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "Models (*.aamodel *.aacnn)")
        if path:
            self.model_edit.setText(path)

    def _pick_input(self):
        path = QFileDialog.getExistingDirectory(self, "Folder of images")
        if path:
            self.input_edit.setText(path)

    def _pick_output(self):
        path = QFileDialog.getExistingDirectory(self, "Output folder")
        if path:
            self.output_edit.setText(path)

    def pixel_classifier_model(self):
        """The trained forest of an open Pixel classifier dock, or None."""
        from ._layers import pixel_dock_for

        dock = pixel_dock_for(self.viewer)
        return None if dock is None else dock.classifier

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def run(self, *_):
        """Start the batch in a worker (one at a time: Run is disabled while it runs)."""
        if self.busy:
            return
        model, inputs, output = (e.text().strip() for e in (self.model_edit, self.input_edit, self.output_edit))
        classifier = None
        if self.pixel_check.isChecked():
            classifier = self.pixel_classifier_model()
            if classifier is None:
                self._set_status("The Pixel classifier dock is not open or has no trained model: open it "
                                 "and press Train, or untick the box and choose a model file.", error=True)
                return
            model = "(Pixel classifier)"
        missing = [n for n, v in (("a model file", model), ("the images", inputs), ("an output folder", output))
                   if not v]
        if missing:
            self._set_status("Give " + " and ".join(missing) + ".", error=True)
            return
        self.table.setRowCount(0)
        self._job = {"model": Path(model), "classifier": classifier, "inputs": inputs, "output": Path(output),
                     "format": self.format_combo.currentText(), "proba": self.proba_check.isChecked(),
                     "redo": self.redo_check.isChecked(), "stop": threading.Event()}
        worker = create_worker(_run, self._job, self._progress.emit, self._file.emit)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        self._worker = worker
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setFormat("starting…")
        self._set_status("Predicting…")
        worker.start()

    def cancel(self, *_):
        """Stop at the next chunk of the running image; finished images stay."""
        if self._job is not None:
            self._job["stop"].set()
            self.cancel_button.setEnabled(False)
            self._set_status("Cancelling (stops at the running image's next chunk)…")

    def _on_progress(self, done, total):
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(f"image {done}/{total}")

    def _on_file(self, i, fr):
        while self.table.rowCount() <= i:
            self.table.insertRow(self.table.rowCount())
        self.table.setItem(i, 0, QTableWidgetItem(fr.input.name))
        text = _STATUS_TEXT.get(fr.status, fr.status)
        if fr.status == "done":
            text += f" ({fr.seconds:.2f} s)"
        item = QTableWidgetItem(text)
        if fr.message:
            item.setToolTip(fr.message)
        self.table.setItem(i, 1, item)

    def _idle(self):
        self._worker = None
        self._job = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_returned(self, result):
        self._idle()
        if isinstance(result, str):
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(0)
            self.progress_bar.setFormat("idle")
            self._set_status(result, error=True)
        else:
            text = result.summary()
            failed = [f for f in result.files if f.status == "failed"]
            if failed:
                text += f". First failure: {failed[0].input.name}: {failed[0].message}"
            if result.cancelled:
                text = "Cancelled: " + text
            self._set_status(text, error=bool(failed))
        self.finished.emit(result)

    def _on_errored(self, exc):
        # an unexpected bug (expected errors come back as messages); napari shows the traceback
        self._idle()
        self._set_status(f"Error: {type(exc).__name__}: {exc}", error=True)
        self.finished.emit(str(exc))

    def _set_status(self, text, error=False):
        self.status.setText(text)
        self.status.setStyleSheet("color: #e05050;" if error else "")
