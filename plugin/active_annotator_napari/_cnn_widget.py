"""The "CNN fine-tuning" dock widget.

Reads the chosen image and annotations layers (and, for a warm start, the
pixel classifier's per-class "probability" layers), runs one core call
(:meth:`CNNClassifier.fit`, then ``predict_proba`` or
``mc_dropout_uncertainty``) in a napari worker thread, and writes the
"cnn prediction", "cnn probability <class>" and "cnn uncertainty" layers back on the
main thread. The core reports every batch and epoch through a callback; a
queued Qt signal carries those reports to the main thread, where the progress
bar and the loss curve are drawn. No numerical work lives here.

No ``from __future__ import annotations`` in this module: napari injects the
viewer only when the constructor's annotation is the class itself.
"""

import functools
import importlib.util
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import napari
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from active_annotator import entropy
from active_annotator.errors import AnnotatorError, Cancelled, InputError
from ._layers import (
    CNN_SOURCE,
    FOREST_SOURCE,
    LayerChoiceMixin,
    is_probability_layer,
    put_probability_layers,
    read_probabilities,
    register_cnn_dock,
)

CNN_PREDICTION = "cnn prediction"
CNN_PROBABILITY = "cnn probability"  # one hidden layer per class: "cnn probability 2 (nucleus)"
CNN_UNCERTAINTY = "cnn uncertainty"
OUTPUT_LAYERS = (CNN_PREDICTION, CNN_UNCERTAINTY)
# the pixel classifier's layers: never offered as inputs; its per-class probability layers
# ("probability 1 (background)", ...) are the warm-start source
FOREST_LAYERS = ("prediction", "uncertainty")
INSTALL_HINT = 'pip install "napari-active-annotator[cnn]"'

# (text shown, channel_axis passed to the core) -- as in the Pixel classifier widget
CHANNEL_CHOICES = (
    ("none (single channel)", None),
    ("last axis (RGB / channels last)", -1),
    ("first axis (channels first)", 0),
)
# (text shown, CNNConfig.dims)
DIMS_CHOICES = (
    ("2D image (leading axes: plane by plane)", 2),
    ("1D signal (channels × time)", 1),
)
DEVICE_CHOICES = (
    ("auto (GPU if present, else CPU)", "auto"),
    ("CPU", "cpu"),
    ("CUDA GPU", "cuda"),
)


def missing_torch_message() -> str:
    """Empty when torch and safetensors can be imported, else what to install (without importing torch)."""
    missing = [m for m in ("torch", "safetensors") if importlib.util.find_spec(m) is None]
    if not missing:
        return ""
    return f"The CNN needs PyTorch and safetensors ({', '.join(missing)} missing). Install with: {INSTALL_HINT}"


@dataclass(eq=False)  # identity: jobs are compared with "is" and kept in a set
class _Job:
    """One fine-tune (or predict-only) request with its inputs, frozen at request time."""

    kind: str  # "fit" or "predict"
    image: object
    labels: object
    channel_axis: object
    classifier: object
    scale: tuple
    translate: tuple
    warm_proba: object = None
    warm_classes: object = None
    mc_samples: int = 0  # 0: softmax entropy; n >= 2: Monte-Carlo dropout with n passes
    row: bool = False  # a 1-D record: napari shows labels and outputs as one row (1, T)
    stop: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False  # the user pressed Cancel (as opposed to being replaced)
    batches_after_stop: int = 0  # batches the core ran after the stop flag was set (must be <= 1)
    orphaned: bool = False  # its widget was closed: nothing left to update
    worker: object = None


@dataclass
class _Outcome:
    classifier: object = None
    prediction: np.ndarray = None
    probabilities: np.ndarray = None
    uncertainty: np.ndarray = None
    error: str = ""
    cancelled: bool = False
    fit_s: float = 0.0
    predict_s: float = 0.0


def _run_job(job: _Job, report):
    """Worker body: fit (fit jobs), predict probabilities, derive prediction and uncertainty.

    Expected failures come back as an :class:`_Outcome` with the core's message.
    """
    clf = job.classifier
    t0 = time.perf_counter()
    try:
        if job.kind == "fit":
            clf.fit(job.image, job.labels, channel_axis=job.channel_axis,
                    warm_start_proba=job.warm_proba, warm_start_classes=job.warm_classes,
                    on_progress=lambda info: report(job, info), should_stop=job.stop.is_set)
        t1 = time.perf_counter()

        def tick(done, total):
            report(job, {"event": "predict", "done": done, "total": total})

        if job.mc_samples:
            proba, uncertainty = clf.mc_dropout_uncertainty(
                job.image, n=job.mc_samples, channel_axis=job.channel_axis,
                on_progress=tick, should_stop=job.stop.is_set)
        else:
            proba = clf.predict_proba(job.image, channel_axis=job.channel_axis,
                                      on_progress=tick, should_stop=job.stop.is_set)
            uncertainty = entropy(proba)
        classes = clf.classes_
        prediction = classes.astype(np.min_scalar_type(int(classes.max())))[np.argmax(proba, axis=0)]
    except Cancelled:
        return _Outcome(cancelled=True)
    except AnnotatorError as e:  # includes MissingDependencyError with the install hint
        return _Outcome(error=str(e))
    return _Outcome(classifier=clf, prediction=prediction, probabilities=proba, uncertainty=uncertainty,
                    fit_s=t1 - t0, predict_s=time.perf_counter() - t1)


def _stop_jobs(jobs, *_):
    for job in list(jobs):
        job.orphaned = True
        job.stop.set()


class CNNWidget(LayerChoiceMixin, QWidget):
    """Fine-tune a small U-Net on the painted annotations and see its prediction.

    Signals
    -------
    trained : emitted after a fine-tuning run wrote the output layers.
    predicted : emitted after any run (fine-tune or predict) wrote the output layers.
    failed(str) : emitted with the message shown when a request fails.
    cancelled : emitted when a cancelled run has stopped (its results discarded).
    progressed(dict) : every batch/epoch report of the core (main thread).
    """

    trained = Signal()
    predicted = Signal()
    failed = Signal(str)
    cancelled = Signal()
    progressed = Signal(dict)
    _report_signal = Signal(object, object)

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.cnn = None  # the trained or loaded CNNClassifier
        self._job = None
        self._workers = set()
        self._running = set()  # jobs whose worker has not finished (also replaced/cancelled ones)
        # a closed dock must not leave training running in the background
        self.destroyed.connect(functools.partial(_stop_jobs, self._running))
        self.curve = self._empty_curve()

        self._build()
        self._report_signal.connect(self._on_report)
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        for layer in layers:
            layer.events.name.connect(self._refresh_layer_choices)
        self._refresh_layer_choices()
        self._show_torch_state()
        register_cnn_dock(self)  # so that the Pixel classifier's projects can hold the CNN

    # -- layout ------------------------------------------------------------------
    def _build(self):
        root = QVBoxLayout(self)

        data_box = QGroupBox("Data")
        form = QFormLayout(data_box)
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image to learn from and to predict.")
        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        form.addRow("Image", self.image_combo)
        self.annotations_combo = QComboBox()
        self.annotations_combo.setToolTip(
            "Labels layer with your strokes: 0 = unlabelled (ignored by the loss), 1, 2, ... = classes.\n"
            "The same strokes the Pixel classifier trains on. Fine-tuning only reads it.")
        form.addRow("Annotations", self.annotations_combo)
        self.channel_combo = QComboBox()
        for text, _ in CHANNEL_CHOICES:
            self.channel_combo.addItem(text)
        self.channel_combo.setToolTip("Which axis of the image holds colour channels, if any.")
        form.addRow("Channel axis", self.channel_combo)
        self.dims_combo = QComboBox()
        for text, _ in DIMS_CHOICES:
            self.dims_combo.addItem(text)
        self.dims_combo.setToolTip(
            "2D: a 2-D network; any leading axes (time, z) are separate planes.\n"
            "1D: a 1-D network along the last axis, e.g. a signal (channels × time) with channel axis 'first'.")
        form.addRow("Network", self.dims_combo)
        self.warm_check = QCheckBox("Warm start from the random forest")
        self.warm_check.setChecked(True)
        self.warm_check.setToolTip(
            "First teach the CNN to copy the Pixel classifier's probability layers over the\n"
            "whole image (distillation), then fine-tune on your strokes: with few strokes this gives\n"
            "a much better start. Uses the existing layer, so press Train in the Pixel classifier first;\n"
            "its classes must be the ones painted here. Without that layer the CNN starts from scratch\n"
            "only if you untick this box.")
        form.addRow(self.warm_check)
        root.addWidget(data_box)

        settings = QGroupBox("Training settings")
        grid = QGridLayout(settings)
        self.epochs_spin = self._spin(1, 1000, 20, "Fine-tuning epochs (upper bound: early stopping may end sooner).")
        self.warm_epochs_spin = self._spin(0, 1000, 8, "Epochs of distilling the forest before fine-tuning.")
        self.batches_spin = self._spin(1, 1000, 10, "Batches per epoch (sparse labels have no natural epoch).")
        self.batch_size_spin = self._spin(1, 512, 8, "Patches per batch.")
        self.patch_spin = self._spin(
            0, 2048, 0, "Patch edge in pixels, a multiple of 4 (0 = auto: 48 in 2D, 512 in 1D).\n"
            "Larger patches see more context, but train slower.")
        self.patch_spin.setSingleStep(16)
        self.patch_spin.setSpecialValueText("auto")
        self.lr_spin = self._dspin(0.00001, 1.0, 0.003, 5, 0.0005, "Adam learning rate.")
        self.dropout_spin = self._dspin(0.0, 0.9, 0.1, 2, 0.05,
                                        "Dropout in the bottleneck and decoder; also what MC dropout samples.")
        self.jitter_spin = self._dspin(0.0, 1.0, 0.1, 2, 0.05,
                                       "Random brightness gain 1 ± j and offset (on the normalised image).")
        self.patience_spin = self._spin(0, 1000, 8, "Stop when the validation loss has not improved for this many\n"
                                        "epochs (0 = never); the best epoch's weights are kept.")
        self.val_spin = self._dspin(0.0, 0.9, 0.25, 2, 0.05,
                                    "Share of each class's strokes held out (whole strokes) to compute the\n"
                                    "validation loss; a class with a single stroke keeps it for training.")
        self.seed_spin = self._spin(0, 2**31 - 1, 0, "Same seed, settings and strokes: the same network (on CPU).")
        self.threads_spin = self._spin(0, 256, 0, "torch CPU threads (0 = auto: all cores this process may use).\n"
                                       "On a busy machine 1 thread is often fastest.")
        self.threads_spin.setSpecialValueText("auto")
        self.flips_check = QCheckBox("Flips")
        self.flips_check.setChecked(True)
        self.flips_check.setToolTip("Random flips along every axis.")
        self.rot90_check = QCheckBox("90° rotations")
        self.rot90_check.setChecked(True)
        self.rot90_check.setToolTip("Random 90-degree rotations (2D).")
        self.device_combo = QComboBox()
        for text, _ in DEVICE_CHOICES:
            self.device_combo.addItem(text)
        self.device_combo.setToolTip("Where the network runs; the status line says which was used.")
        rows = (("Epochs", self.epochs_spin, "Warm-start epochs", self.warm_epochs_spin),
                ("Batches / epoch", self.batches_spin, "Batch size", self.batch_size_spin),
                ("Patch size", self.patch_spin, "Learning rate", self.lr_spin),
                ("Dropout", self.dropout_spin, "Intensity jitter", self.jitter_spin),
                ("Patience", self.patience_spin, "Validation share", self.val_spin),
                ("Seed", self.seed_spin, "Threads", self.threads_spin))
        for r, (t1, w1, t2, w2) in enumerate(rows):
            grid.addWidget(QLabel(t1), r, 0)
            grid.addWidget(w1, r, 1)
            grid.addWidget(QLabel(t2), r, 2)
            grid.addWidget(w2, r, 3)
        r = len(rows)
        grid.addWidget(QLabel("Augment"), r, 0)
        grid.addWidget(self.flips_check, r, 1)
        grid.addWidget(self.rot90_check, r, 2, 1, 2)
        grid.addWidget(QLabel("Device"), r + 1, 0)
        grid.addWidget(self.device_combo, r + 1, 1, 1, 3)
        self.mc_check = QCheckBox("MC dropout uncertainty, passes:")
        self.mc_check.setToolTip(
            "Uncertainty from Monte-Carlo dropout: predict n times with dropout on and measure how\n"
            "much the passes disagree (mutual information). Slower (n predictions). Unticked: the\n"
            "softmax entropy of one prediction.")
        self.mc_spin = self._spin(2, 100, 10, "Number of dropout passes.")
        grid.addWidget(self.mc_check, r + 2, 0, 1, 3)
        grid.addWidget(self.mc_spin, r + 2, 3)
        root.addWidget(settings)

        buttons = QGridLayout()
        self.fit_button = QPushButton("Fine-tune CNN")
        self.fit_button.setToolTip("Train the CNN on the annotations and predict the whole image.\n"
                                   "Pressing again while it runs restarts with the current strokes.")
        self.fit_button.clicked.connect(self.fine_tune)
        self.predict_button = QPushButton("Predict")
        self.predict_button.setToolTip("Apply the current (trained or loaded) CNN to the chosen image.")
        self.predict_button.clicked.connect(self.predict)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop training within one batch; layers stay as they were.")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button = QPushButton("Save CNN…")
        self.save_button.setToolTip("Save the network (.aacnn: safetensors weights + JSON settings, never unpickled).")
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button = QPushButton("Load CNN…")
        self.load_button.setToolTip("Load a saved .aacnn network and apply it to the chosen image.")
        self.load_button.clicked.connect(self._load_dialog)
        buttons.addWidget(self.fit_button, 0, 0, 1, 2)
        buttons.addWidget(self.predict_button, 0, 2)
        buttons.addWidget(self.cancel_button, 0, 3)
        buttons.addWidget(self.save_button, 1, 0, 1, 2)
        buttons.addWidget(self.load_button, 1, 2, 1, 2)
        root.addLayout(buttons)

        self.status = QLabel("Paint at least two classes, then press Fine-tune CNN.")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.status.setMinimumHeight(3 * self.status.fontMetrics().lineSpacing())  # never clipped by the plot
        root.addWidget(self.status)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("idle")
        root.addWidget(self.progress_bar)

        self.figure = Figure(figsize=(4, 2.4), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(190)
        self.canvas.setToolTip(
            "Loss per epoch. Warm start: how far the CNN is from the forest's probabilities.\n"
            "Training: cross-entropy on your strokes (with augmentation). Validation: on held-out\n"
            "strokes, never trained on; when it stops falling the CNN has learned what your strokes\n"
            "can teach (the best validation epoch's weights are kept).")
        root.addWidget(self.canvas, 1)
        self._draw_curve()

    @staticmethod
    def _spin(lo, hi, value, tip):
        box = QSpinBox()
        box.setRange(lo, hi)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    @staticmethod
    def _dspin(lo, hi, value, decimals, step, tip):
        box = QDoubleSpinBox()
        box.setDecimals(decimals)
        box.setRange(lo, hi)
        box.setSingleStep(step)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    def _show_torch_state(self):
        message = missing_torch_message()
        self.torch_missing = message
        if message:
            self.fit_button.setText(f"Needs PyTorch: {INSTALL_HINT}")
            self.fit_button.setToolTip(message)
            for b in (self.predict_button, self.save_button, self.load_button):
                b.setEnabled(False)
            self._set_status(message)

    # -- layer choices ---------------------------------------------------------------
    def _on_layers_changed(self, event=None):
        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self._refresh_layer_choices)
        self._refresh_layer_choices()

    def _refresh_layer_choices(self, event=None):
        skip = OUTPUT_LAYERS + FOREST_LAYERS
        images = [ly.name for ly in self.viewer.layers
                  if isinstance(ly, napari.layers.Image) and ly.name not in skip
                  and not is_probability_layer(ly)]
        labels = [ly.name for ly in self.viewer.layers
                  if isinstance(ly, napari.layers.Labels) and ly.name not in skip]
        self._set_items(self.image_combo, images, images[0] if images else None)
        default = "annotations" if "annotations" in labels else (labels[0] if labels else None)
        self._set_items(self.annotations_combo, labels, default)

    @property
    def image_layer(self):
        return self._layer(self.image_combo.currentText(), napari.layers.Image)

    @property
    def annotations_layer(self):
        return self._layer(self.annotations_combo.currentText(), napari.layers.Labels)

    def _on_image_changed(self, name):
        layer = self._layer(name, napari.layers.Image)
        if layer is None:
            return
        shape = layer.data.shape
        if "signal" in layer.metadata:  # the Signal reader's (channels, time) strip
            self.channel_combo.setCurrentIndex([c for _, c in CHANNEL_CHOICES].index(0))
            self.dims_combo.setCurrentIndex([d for _, d in DIMS_CHOICES].index(1))
            return
        if layer.rgb:
            ca = -1
        elif len(shape) >= 3 and shape[0] <= 5 and shape[0] < min(shape[1:]):
            ca = 0
        else:
            ca = None
        self.channel_combo.setCurrentIndex([c for _, c in CHANNEL_CHOICES].index(ca))

    @property
    def channel_axis(self):
        return CHANNEL_CHOICES[self.channel_combo.currentIndex()][1]

    @property
    def dims(self) -> int:
        return DIMS_CHOICES[self.dims_combo.currentIndex()][1]

    @property
    def device(self) -> str:
        return DEVICE_CHOICES[self.device_combo.currentIndex()][1]

    @property
    def n_threads(self):
        return self.threads_spin.value() or None

    # -- gathering inputs ----------------------------------------------------------
    def config(self):
        """The :class:`CNNConfig` the controls describe (validated: raises InputError with the reason)."""
        from active_annotator.cnn import CNNConfig

        return CNNConfig(
            dims=self.dims, dropout=self.dropout_spin.value(), epochs=self.epochs_spin.value(),
            batches_per_epoch=self.batches_spin.value(), batch_size=self.batch_size_spin.value(),
            patch_size=self.patch_spin.value() or None, learning_rate=self.lr_spin.value(),
            flips=self.flips_check.isChecked(), rot90=self.rot90_check.isChecked(),
            intensity_jitter=self.jitter_spin.value(), patience=self.patience_spin.value(),
            validation_fraction=self.val_spin.value(), warm_start_epochs=self.warm_epochs_spin.value(),
            seed=self.seed_spin.value(),
        ).validate()

    def _show_config(self, cfg):
        """Put a (loaded) network's settings into the controls."""
        self.dims_combo.setCurrentIndex([d for _, d in DIMS_CHOICES].index(cfg.dims)
                                        if cfg.dims in (1, 2) else 0)
        for spin, value in ((self.epochs_spin, cfg.epochs), (self.warm_epochs_spin, cfg.warm_start_epochs),
                            (self.batches_spin, cfg.batches_per_epoch), (self.batch_size_spin, cfg.batch_size),
                            (self.patch_spin, cfg.patch_size or 0), (self.lr_spin, cfg.learning_rate),
                            (self.dropout_spin, cfg.dropout), (self.jitter_spin, cfg.intensity_jitter),
                            (self.patience_spin, cfg.patience), (self.val_spin, cfg.validation_fraction),
                            (self.seed_spin, cfg.seed)):
            spin.setValue(value)
        self.flips_check.setChecked(bool(cfg.flips))
        self.rot90_check.setChecked(bool(cfg.rot90))

    def _image_and_geometry(self):
        layer = self.image_layer
        if layer is None:
            raise InputError("There is no image layer: open an image (or File > Open Sample) first.")
        if layer.multiscale:
            raise InputError(f"'{layer.name}' is a multiscale image; open its full-resolution level as a plain image.")
        ca = self.channel_axis
        if layer.rgb and ca != -1:
            raise InputError(f"'{layer.name}' is an RGB image: choose channel axis 'last axis (RGB / channels last)'.")
        image = layer.data
        shape, scale, translate = list(image.shape), list(layer.scale), list(layer.translate)
        if ca is not None:
            if len(shape) < 2:
                raise InputError(f"'{layer.name}' has shape {tuple(shape)}: no axis left after the channels.")
            del shape[ca]
            if not layer.rgb:  # napari already leaves the RGB axis out of scale/translate
                del scale[ca]
                del translate[ca]
        if len(shape) < self.dims:
            raise InputError(f"'{layer.name}' has {len(shape)} non-channel axes (shape {tuple(image.shape)}); "
                             f"a {self.dims}D network needs at least {self.dims}. Check Channel axis and Network.")
        return layer, np.asarray(image), ca, tuple(shape), tuple(scale), tuple(translate)

    def _warm_start(self, shape):
        """(proba, classes) from the forest's probabilities layer, or (None, None) when unticked."""
        if not self.warm_check.isChecked():
            return None, None
        proba, classes = read_probabilities(self.viewer, FOREST_SOURCE)
        if proba is None:
            raise InputError(
                "Warm start needs the Pixel classifier's probability layers ('probability 1', ...): press "
                "Train in the Pixel classifier widget first, or untick 'Warm start from the random forest'.")
        if len(shape) == 1 and proba.shape[1:] == (1,) + shape:  # a 1-D record's row
            proba = proba[:, 0]
        if proba.shape[1:] != shape:
            raise InputError(
                f"The Pixel classifier's probability layers have shape {proba.shape[1:]}, which does not match "
                f"the image's {shape}: they belong to another image. Train the Pixel classifier on this image "
                "first, or untick the warm start.")
        return proba, classes

    # -- actions ---------------------------------------------------------------------
    def fine_tune(self, *_):
        """Fine-tune a new CNN on the annotations and predict the image, in a worker thread.

        A request while another runs stops that one and starts this one.
        """
        if self.torch_missing:
            self._fail(self.torch_missing)
            return
        try:
            from active_annotator.cnn import CNNClassifier

            _, image, ca, shape, scale, translate = self._image_and_geometry()
            labels_layer = self.annotations_layer
            if labels_layer is None:
                raise InputError("There is no annotations (Labels) layer: paint strokes of at least two "
                                 "classes first (the Pixel classifier's New button makes one).")
            labels = np.array(labels_layer.data, copy=True)  # the user may paint on while we train
            row = len(shape) == 1
            if row and labels.shape == (1,) + shape:
                labels = labels[0]
                scale, translate = tuple(labels_layer.scale), tuple(labels_layer.translate)
            if labels.shape != shape:
                raise InputError(
                    f"Annotations '{labels_layer.name}' have shape {labels.shape} but the image's non-channel "
                    f"shape is {shape}. Choose the matching annotations layer or channel axis.")
            warm_proba, warm_classes = self._warm_start(shape)
            clf = CNNClassifier(self.config(), device=self.device, n_threads=self.n_threads)
        except AnnotatorError as e:
            self._fail(str(e))
            return
        self.curve = self._empty_curve()
        self._draw_curve()
        self._start(_Job("fit", image, labels, ca, clf, scale, translate, warm_proba=warm_proba,
                         warm_classes=warm_classes, mc_samples=self._mc_samples(), row=row))

    def predict(self, *_):
        """Apply the current CNN to the chosen image, in a worker thread."""
        if self.cnn is None:
            self._fail("There is no CNN yet: press Fine-tune CNN, or Load CNN.")
            return
        try:
            _, image, ca, shape, scale, translate = self._image_and_geometry()
            self.cnn.check_image(image.shape, ca)
        except AnnotatorError as e:
            self._fail(str(e))
            return
        row = len(shape) == 1
        if row:  # the outputs go where the labels row is, as in the Signal classifier's strip
            labels_layer = self.annotations_layer
            if labels_layer is not None and labels_layer.data.shape == (1,) + shape:
                scale, translate = tuple(labels_layer.scale), tuple(labels_layer.translate)
            else:
                scale, translate = (1.0,) + tuple(scale), (0.0,) + tuple(translate)
        self.cnn.n_threads = self.n_threads
        self._start(_Job("predict", image, None, ca, self.cnn, scale, translate, mc_samples=self._mc_samples(),
                         row=row))

    def _mc_samples(self):
        return self.mc_spin.value() if self.mc_check.isChecked() else 0

    def cancel(self, *_):
        """Stop the running job within one batch; `cancelled` is emitted once it has stopped."""
        job = self._job
        if job is None:
            return
        job.cancelled = True
        job.stop.set()
        self.cancel_button.setEnabled(False)
        self._set_status("Cancelling (stops before the next batch)…")

    @property
    def busy(self) -> bool:
        """True while any worker (also a cancelled one winding down) is running."""
        return bool(self._workers)

    def save_cnn(self, path):
        """Save the current CNN to ``path`` (suffix .aacnn added); return the path or None."""
        if self.cnn is None:
            self._fail("There is no CNN to save: press Fine-tune CNN first.")
            return None
        try:
            written = self.cnn.save(path)
        except (AnnotatorError, OSError) as e:
            self._fail(f"Could not save the CNN: {e}")
            return None
        self._set_status(f"Saved the CNN to {written}.")
        return Path(written)

    def load_cnn(self, path, predict=True):
        """Load a ``.aacnn`` network; if it fits the chosen image, predict it.

        A bad, foreign or mismatched file keeps the current CNN, settings and
        layers and shows the reason. Returns True when the CNN was loaded.
        """
        if self.torch_missing:
            self._fail(self.torch_missing)
            return False
        from active_annotator.cnn import load_cnn

        try:
            clf = load_cnn(path, device=self.device, n_threads=self.n_threads)
        except (AnnotatorError, OSError) as e:
            self._fail(f"Could not load the CNN: {e}")
            return False
        layer = self.image_layer
        fits = False
        if layer is not None:
            try:
                clf.check_image(layer.data.shape, self.channel_axis)
                fits = True
            except AnnotatorError as e:
                self._fail(f"The CNN in {Path(path).name} does not fit '{layer.name}': {e}")
                return False
        self.cnn = clf
        self._show_config(clf.config_)
        self.curve = self._empty_curve()
        h = getattr(clf, "history_", None) or {}
        for phase, epoch, tl, vl in zip(h.get("phase", []), h.get("epoch", []),
                                        h.get("train_loss", []), h.get("val_loss", [])):
            self._add_epoch({"phase": phase, "epoch": epoch, "train_loss": tl, "val_loss": vl})
        self._draw_curve()
        classes = ", ".join(str(c) for c in clf.classes_)
        if fits and predict:
            self._set_status(f"Loaded {Path(path).name} (classes {classes}); predicting '{layer.name}'…")
            self.predict()
        else:
            self._set_status(f"Loaded {Path(path).name} (classes {classes}); press Predict.")
        return True

    def _save_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save CNN", "network.aacnn", "CNN (*.aacnn)")
        if path:
            self.save_cnn(path)

    def _load_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load CNN", "", "CNN (*.aacnn)")
        if path:
            self.load_cnn(path)

    # -- workers -------------------------------------------------------------------------
    def _start(self, job):
        if self._job is not None:
            self._job.stop.set()  # replace, don't queue: the old run stops before its next batch
        self._job = job
        worker = create_worker(_run_job, job, self._report)
        job.worker = worker
        worker.returned.connect(lambda outcome, job=job: self._on_returned(job, outcome))
        worker.errored.connect(lambda exc, job=job: self._on_errored(job, exc))
        worker.finished.connect(lambda worker=worker, job=job: self._on_finished(worker, job))
        self._workers.add(worker)
        self._running.add(job)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # busy until the first report
        self.progress_bar.setFormat("starting…")
        verb = "Fine-tuning" if job.kind == "fit" else "Predicting"
        self._set_status(f"{verb} on {self._device_text(job.classifier)}…")
        worker.start()

    def _on_finished(self, worker, job):
        self._workers.discard(worker)
        self._running.discard(job)

    def _report(self, job, info):
        # worker thread: count batches run after a stop request, hand the report to the main thread
        if job.stop.is_set() and info.get("event") == "batch":
            job.batches_after_stop += 1
        try:
            self._report_signal.emit(job, info)
        except RuntimeError:  # widget already deleted
            pass

    def _on_report(self, job, info):
        if job.orphaned or job is not self._job or job.stop.is_set():
            return
        event = info.get("event")
        if event == "predict":
            self.progress_bar.setRange(0, int(info["total"]))
            self.progress_bar.setValue(int(info["done"]))
            what = "MC dropout passes" if job.mc_samples else "Predicting"
            self.progress_bar.setFormat(f"{what}: tile {info['done']}/{info['total']}")
            return
        phase = "Warm start" if info["phase"] == "warm_start" else "Fine-tune"
        total = info["epochs"] * info["batches"]
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue((info["epoch"] - 1) * info["batches"] + info["batch"])
        text = f"{phase} epoch {info['epoch']}/{info['epochs']} · loss {info['train_loss']:.3f}"
        if event == "epoch":
            if info.get("val_loss") is not None:
                text += f" · validation {info['val_loss']:.3f}"
            self._add_epoch(info)
            self._draw_curve()
        else:
            text += f" · batch {info['batch']}/{info['batches']}"
        self.progress_bar.setFormat(text)
        self.progressed.emit(dict(info))

    def _on_returned(self, job, outcome):
        if job.orphaned or job is not self._job:
            return  # replaced by a newer request
        self._job = None
        self.cancel_button.setEnabled(False)
        if outcome.cancelled or job.cancelled:
            self._idle_bar()
            self._set_status("Cancelled: the layers and the previous CNN are unchanged.")
            self.cancelled.emit()
            return
        if outcome.error:
            self._idle_bar()
            self._fail(outcome.error)
            return
        self._done_bar(job)
        clf = outcome.classifier
        self.cnn = clf
        self._write_outputs(job, outcome)
        device = self._device_text(clf)
        classes = ", ".join(str(c) for c in clf.classes_)
        unc = f"MC dropout ({job.mc_samples} passes)" if job.mc_samples else "softmax entropy"
        if job.kind == "fit":
            n_epochs = sum(1 for p in clf.history_["phase"] if p == "finetune")
            best = f", best validation at epoch {clf.best_epoch_}" if clf.best_epoch_ else ""
            warm = " after a warm start from the forest" if job.warm_proba is not None else ""
            self._set_status(
                f"Fine-tuned {n_epochs} epochs{warm} on {device} in {outcome.fit_s:.1f} s{best}. "
                f"Predicted classes {classes} in {outcome.predict_s:.1f} s; uncertainty: {unc}.")
        else:
            self._set_status(f"Predicted classes {classes} on {device} in {outcome.predict_s:.1f} s; "
                             f"uncertainty: {unc}.")
        self.predicted.emit()
        if job.kind == "fit":
            self.trained.emit()

    def _on_errored(self, job, exc):
        # an unexpected bug (expected errors come back as outcomes); napari shows the traceback
        if job is self._job and not job.orphaned:
            self._job = None
            self.cancel_button.setEnabled(False)
            self._idle_bar()
            self._set_status(f"Error: {type(exc).__name__}: {exc}")
            self.failed.emit(str(exc))

    def _done_bar(self, job):
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        c = self.curve
        if job.kind == "fit" and c["x"]:
            n_warm = c["phase"].count("warm_start")
            n_fine = len(c["x"]) - n_warm
            epochs = f"{n_warm} warm-start + {n_fine} fine-tuning epochs" if n_warm else f"{n_fine} epochs"
            text = f"Done: {epochs}, last training loss {c['train_loss'][-1]:.3f}"
            if np.isfinite(c["val_loss"][-1]):
                text += f", validation {c['val_loss'][-1]:.3f}"
            self.progress_bar.setFormat(text)
        else:
            self.progress_bar.setFormat("Done: prediction written")

    def _idle_bar(self):
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("idle")

    @staticmethod
    def _device_text(clf):
        device = getattr(clf, "device_", None)
        if device is not None:
            return str(device).upper() if str(device).startswith("cpu") else f"GPU ({device})"
        if clf.device == "auto":
            import torch

            return "GPU (cuda)" if torch.cuda.is_available() else "CPU"
        return "CPU" if clf.device == "cpu" else f"GPU ({clf.device})"

    # -- loss curve -------------------------------------------------------------------------
    @staticmethod
    def _empty_curve():
        return {"x": [], "phase": [], "train_loss": [], "val_loss": []}

    def _add_epoch(self, info):
        c = self.curve
        c["x"].append(len(c["x"]) + 1)
        c["phase"].append(info["phase"])
        c["train_loss"].append(float(info["train_loss"]))
        v = info.get("val_loss")
        c["val_loss"].append(np.nan if v is None else float(v))

    def _draw_curve(self):
        """Redraw the loss curve from ``self.curve`` (main thread only)."""
        fig = self.figure
        fig.clear()
        ax = fig.add_subplot(111)
        c = self.curve
        x = np.asarray(c["x"], float)
        phase = np.asarray(c["phase"], object)
        train = np.asarray(c["train_loss"], float)
        val = np.asarray(c["val_loss"], float)
        warm = phase == "warm_start"
        fine = ~warm
        self.warm_line, = ax.plot(x[warm], train[warm], "o-", ms=3, color="tab:gray",
                                  label="warm start (copy the forest)")
        self.train_line, = ax.plot(x[fine], train[fine], "o-", ms=3, color="tab:blue", label="training strokes")
        self.val_line, = ax.plot(x[fine], val[fine], "s-", ms=3, color="tab:orange", label="validation strokes")
        if warm.any() and fine.any():
            ax.axvline(x[fine][0] - 0.5, color="0.6", lw=0.8, ls=":")
        if fine.any() and np.isfinite(val[fine]).any():
            i = np.nanargmin(np.where(fine, val, np.nan))
            ax.plot([x[i]], [val[i]], "*", ms=11, color="tab:red", label="lowest validation loss")
        ax.set_xlabel("epoch (warm start, then fine-tuning)" if warm.any() else "epoch", fontsize=8)
        ax.set_ylabel("loss (cross-entropy)", fontsize=8)
        ax.set_title("CNN loss per epoch (lower is better)", fontsize=9)
        ax.tick_params(labelsize=7)
        if len(x):
            ax.legend(fontsize=7, loc="upper right")
        else:
            ax.text(0.5, 0.5, "Press Fine-tune CNN to see the loss fall here.", ha="center", va="center",
                    fontsize=8, transform=ax.transAxes, color="0.4")
        self.canvas.draw_idle()

    # -- output layers ---------------------------------------------------------------------
    def _write_outputs(self, job, outcome):
        scale, translate = job.scale, job.translate
        classes = [int(c) for c in outcome.classifier.classes_]
        if job.row:  # napari layers are at least 2-D: a 1-D record's outputs are one row
            outcome.prediction = outcome.prediction[None]
            outcome.probabilities = outcome.probabilities[:, None]
            outcome.uncertainty = outcome.uncertainty[None]
        self._put_layer(CNN_PREDICTION, "labels", outcome.prediction, scale, translate, opacity=0.4)
        annotations = self.annotations_layer
        names = {} if annotations is None else annotations.metadata.get("class_names", {})
        put_probability_layers(self.viewer, outcome.probabilities, classes, prefix=CNN_PROBABILITY,
                               source=CNN_SOURCE, scale=scale, translate=translate, class_names=names)
        self._put_layer(CNN_UNCERTAINTY, "image", outcome.uncertainty, scale, translate, colormap="magma",
                        contrast_limits=(0.0, 1.0), blending="additive", opacity=0.7)
        if annotations is not None:  # keep the strokes on top and selected, so painting goes on
            layers = self.viewer.layers
            layers.move(layers.index(annotations.name), len(layers))
            layers.selection.active = annotations

    def _put_layer(self, name, kind, data, scale, translate, **kwargs):
        """Update the output layer in place, or add it the first time."""
        layer_type = napari.layers.Labels if kind == "labels" else napari.layers.Image
        layer = self._layer(name, layer_type)
        if layer is not None and layer.data.ndim == data.ndim:
            layer.data = data
            layer.scale, layer.translate = scale, translate
            if "metadata" in kwargs:
                layer.metadata.update(kwargs["metadata"])
            return layer
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        add = self.viewer.add_labels if kind == "labels" else self.viewer.add_image
        return add(data, name=name, scale=scale, translate=translate, **kwargs)

    # -- messages --------------------------------------------------------------------------
    def _set_status(self, text):
        self.status.setText(text)

    def _fail(self, message, notify=True):
        self._set_status(f"Error: {message}")
        if notify:
            show_error(message)
        self.failed.emit(message)
