"""The "CNN fine-tuning" dock: fine-tune a small U-Net on the painted strokes and show its prediction.

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

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import napari
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
)

from active_annotator import entropy
from active_annotator.errors import AnnotatorError, InputError

from ._dock import (
    CHANNEL_CHOICES,
    Dock,
    choice_combo,
    choice_value,
    guess_axes,
    image_and_geometry,
    set_choice,
)
from ._layers import (
    CNN_SOURCE,
    pixel_dock_for,
    put_probability_layers,
)

CNN_PREDICTION = "cnn prediction"
CNN_PROBABILITY = "cnn probability"  # one hidden layer per class: "cnn probability 2 (nucleus)"
CNN_UNCERTAINTY = "cnn uncertainty"
OUTPUT_LAYERS = (CNN_PREDICTION, CNN_UNCERTAINTY)
# the pixel classifier's layers: never offered as inputs; its per-class probability layers
# ("probability 1 (background)", ...) are the warm-start source
FOREST_LAYERS = ("prediction", "uncertainty")
INSTALL_HINT = 'pip install "napari-active-annotator[cnn]"'
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


@dataclass(eq=False)  # identity: jobs are compared with "is"
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
    warm_note: str = ""  # why there is no warm start although it was asked for
    mc_samples: int = 0  # 0: softmax entropy; n >= 2: Monte-Carlo dropout with n passes
    row: bool = False  # a 1-D record: napari shows labels and outputs as one row (1, T)
    batches_after_stop: int = 0  # batches the core ran after the stop flag was set (must be <= 1)
    task: object = None  # the dock's Task once running

    @property
    def stop(self):
        return self.task.stop


@dataclass
class _Outcome:
    classifier: object = None
    prediction: np.ndarray = None
    probabilities: np.ndarray = None
    uncertainty: np.ndarray = None
    fit_s: float = 0.0
    predict_s: float = 0.0


def _run_job(job: _Job, task):
    """Worker body: fit (fit jobs), predict probabilities, derive prediction and uncertainty."""
    clf = job.classifier

    def report(info):
        if task.should_stop() and info.get("event") == "batch":
            job.batches_after_stop += 1
        task.report(info)

    t0 = time.perf_counter()
    if job.kind == "fit":
        clf.fit(job.image, job.labels, channel_axis=job.channel_axis,
                warm_start_proba=job.warm_proba, warm_start_classes=job.warm_classes,
                on_progress=report, should_stop=task.should_stop)
    t1 = time.perf_counter()

    def tick(done, total):
        report({"event": "predict", "done": done, "total": total})

    if job.mc_samples:
        proba, uncertainty = clf.mc_dropout_uncertainty(
            job.image, n=job.mc_samples, channel_axis=job.channel_axis,
            on_progress=tick, should_stop=task.should_stop)
    else:
        proba = clf.predict_proba(job.image, channel_axis=job.channel_axis,
                                  on_progress=tick, should_stop=task.should_stop)
        uncertainty = entropy(proba)
    classes = clf.classes_
    prediction = classes.astype(np.min_scalar_type(int(classes.max())))[np.argmax(proba, axis=0)]
    return _Outcome(classifier=clf, prediction=prediction, probabilities=proba, uncertainty=uncertainty,
                    fit_s=t1 - t0, predict_s=time.perf_counter() - t1)


class CNNWidget(Dock):
    """Fine-tune a small U-Net on the painted annotations and see its prediction.

    Signals (besides the base's ``failed`` and ``cancelled``)
    -------
    trained : emitted after a fine-tuning run wrote the output layers.
    predicted : emitted after any run (fine-tune or predict) wrote the output layers.
    progressed(dict) : every batch/epoch report of the core (main thread).
    """

    trained = Signal()
    predicted = Signal()
    progressed = Signal(dict)

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__(napari_viewer)
        self.cnn = None  # the trained or loaded CNNClassifier
        self._job = None
        self.curve = self._empty_curve()
        self._build()
        self._on_image_changed()  # the picker chose its first image before the guess was connected
        self._show_torch_state()
        if not self.torch_missing:
            self.set_status(self._ready_text())

    # -- layout ------------------------------------------------------------------
    def _build(self):
        root = self.body

        data_box = QGroupBox("Data")
        form = QFormLayout(data_box)
        self.add_data_pickers(
            form, skip=OUTPUT_LAYERS + FOREST_LAYERS, image_tip="The image to learn from and to predict.",
            annotations_tip="Labels layer with your strokes: 0 = unlabelled (ignored by the loss), 1, 2, ... = "
                            "classes.\nThe same strokes the Pixel classifier trains on. Fine-tuning only reads it.")
        self.image_picker.on_change(self._on_image_changed)
        self.annotations_combo.currentTextChanged.connect(lambda *_: self._show_ready())
        self.channel_combo = choice_combo(CHANNEL_CHOICES, "Which axis of the image holds colour channels, if any.")
        form.addRow("Channel axis", self.channel_combo)
        self.dims_combo = choice_combo(
            DIMS_CHOICES, "2D: a 2-D network; any leading axes (time, z) are separate planes.\n"
            "1D: a 1-D network along the last axis, e.g. a signal (channels × time) with channel axis 'first'.")
        form.addRow("Network", self.dims_combo)
        self.warm_check = QCheckBox("Warm start from the random forest")
        self.warm_check.setChecked(True)
        self.warm_check.setToolTip(
            "First teach the CNN to copy the Pixel classifier's probability layers over the\n"
            "whole image (distillation), then fine-tune on your strokes: with few strokes this gives\n"
            "a much better start. Uses the Pixel classifier's probabilities, so press Train there first;\n"
            "its classes must be the ones painted here. Until then the CNN starts from scratch (the\n"
            "status line says so).")
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
        self.device_combo = choice_combo(DEVICE_CHOICES, "Where the network runs; the status line says which was used.")
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
        self.cancel_button.setToolTip("Stop training within one batch; layers stay as they were.")
        self.save_button = QPushButton("Save CNN…")
        self.save_button.setToolTip("Save the network (.aacnn: safetensors weights + JSON settings, never unpickled).")
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button = QPushButton("Load CNN…")
        self.load_button.setToolTip("Load a saved .aacnn network and apply it to the chosen image.")
        self.load_button.clicked.connect(self._load_dialog)
        buttons.addWidget(self.fit_button, 0, 0, 1, 2)
        buttons.addWidget(self.predict_button, 0, 2, 1, 2)
        buttons.addWidget(self.save_button, 1, 0, 1, 2)
        buttons.addWidget(self.load_button, 1, 2, 1, 2)
        root.addLayout(buttons)

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
            self.set_status(message)

    # -- layer choices ---------------------------------------------------------------
    def _on_image_changed(self, *_):
        layer = self.image_layer
        if layer is None:
            return
        if "signal" in layer.metadata:  # the Signal reader's (channels, time) strip
            set_choice(self.channel_combo, CHANNEL_CHOICES, 0)
            set_choice(self.dims_combo, DIMS_CHOICES, 1)
            return
        set_choice(self.channel_combo, CHANNEL_CHOICES, guess_axes(layer)[0])

    def _ready_text(self) -> str:
        """What to do next, from the annotations there are (the sample's starter strokes count)."""
        layer = self.annotations_layer
        if layer is None:
            return "Paint strokes of at least two classes in a Labels layer, then press Fine-tune CNN."
        data = layer.data
        if not isinstance(data, np.ndarray) or data.size > 50_000_000:
            return f"Press Fine-tune CNN to train on the strokes in '{layer.name}'."
        counts = np.bincount(data.ravel().astype(np.intp, copy=False)) if data.size else np.zeros(1, int)
        classes = [int(c) for c in np.flatnonzero(counts[1:]) + 1]
        if len(classes) >= 2:
            return (f"'{layer.name}' has strokes of classes {', '.join(map(str, classes))} "
                    f"({int(counts[1:].sum())} labelled pixels): press Fine-tune CNN.")
        return (f"'{layer.name}' has strokes of {len(classes)} class(es): paint at least two classes, "
                "then press Fine-tune CNN.")

    def _show_ready(self):
        if not self.running and not self.torch_missing and self.cnn is None:
            self.set_status(self._ready_text())

    @property
    def channel_axis(self):
        return choice_value(self.channel_combo, CHANNEL_CHOICES)

    @property
    def dims(self) -> int:
        return choice_value(self.dims_combo, DIMS_CHOICES)

    @property
    def device(self) -> str:
        return choice_value(self.device_combo, DEVICE_CHOICES)

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
        set_choice(self.dims_combo, DIMS_CHOICES, cfg.dims if cfg.dims in (1, 2) else 2)
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
        ca = self.channel_axis
        image, shape, scale, translate = image_and_geometry(layer, ca)
        if len(shape) < self.dims:
            raise InputError(f"'{layer.name}' has {len(shape)} non-channel axes (shape {tuple(image.shape)}); "
                             f"a {self.dims}D network needs at least {self.dims}. Check Channel axis and Network.")
        return layer, np.asarray(image), ca, shape, scale, translate

    def _warm_start(self, shape):
        """``(proba, classes, note)``: the forest's probabilities, or None and why there are none.

        Ticked but not usable yet (no Pixel classifier trained, or trained on
        another image) is not an error: the CNN starts from scratch and the note says why.
        """
        if not self.warm_check.isChecked():
            return None, None, ""
        # the Pixel classifier dock's session holds the forest's probabilities (not read back from layers)
        pixel = pixel_dock_for(self.viewer)
        session = None if pixel is None else pixel.session
        proba = None if session is None else session.probabilities
        if proba is not None and session.image is not self.image_layer.data:
            return None, None, ("no warm start: the Pixel classifier was trained on another image "
                                f"(train it on '{self.image_layer.name}' to warm-start from it)")
        classes = None if proba is None else [int(c) for c in session.classifier.classes_]
        if proba is None:
            return None, None, ("no warm start: the Pixel classifier has not been trained yet (press Train "
                                "there first to warm-start from it)")
        if len(shape) == 1 and proba.shape[1:] == (1,) + shape:  # a 1-D record's row
            proba = proba[:, 0]
        if proba.shape[1:] != shape:
            return None, None, (f"no warm start: the Pixel classifier's probabilities have shape "
                                f"{proba.shape[1:]}, not the image's {shape} (they belong to another image)")
        return proba, classes, ""

    # -- actions ---------------------------------------------------------------------
    def fine_tune(self, *_):
        """Fine-tune a new CNN on the annotations and predict the image, in a worker thread.

        A request while another runs stops that one and starts this one.
        """
        if self.torch_missing:
            self.fail(self.torch_missing)
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
            warm_proba, warm_classes, warm_note = self._warm_start(shape)
            clf = CNNClassifier.from_config(self.config(), device=self.device, n_threads=self.n_threads)
        except AnnotatorError as e:
            self.fail(str(e))
            return
        self.curve = self._empty_curve()
        self._draw_curve()
        self._start(_Job("fit", image, labels, ca, clf, scale, translate, warm_proba=warm_proba,
                         warm_classes=warm_classes, warm_note=warm_note, mc_samples=self._mc_samples(),
                         row=row))

    def predict(self, *_):
        """Apply the current CNN to the chosen image, in a worker thread."""
        if self.cnn is None:
            self.fail("There is no CNN yet: press Fine-tune CNN, or Load CNN.")
            return
        try:
            _, image, ca, shape, scale, translate = self._image_and_geometry()
            self.cnn.check_image(image.shape, ca)
        except AnnotatorError as e:
            self.fail(str(e))
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

    def save_cnn(self, path):
        """Save the current CNN to ``path`` (suffix .aacnn added); return the path or None."""
        if self.cnn is None:
            self.fail("There is no CNN to save: press Fine-tune CNN first.")
            return None
        try:
            written = self.cnn.save(path)
        except (AnnotatorError, OSError) as e:
            self.fail(f"Could not save the CNN: {e}")
            return None
        self.set_status(f"Saved the CNN to {written}.")
        return Path(written)

    def load_cnn(self, path, predict=True):
        """Load a ``.aacnn`` network; if it fits the chosen image, predict it.

        A bad, foreign or mismatched file keeps the current CNN, settings and
        layers and shows the reason. Returns True when the CNN was loaded.
        """
        if self.torch_missing:
            self.fail(self.torch_missing)
            return False
        from active_annotator.cnn import load_cnn

        try:
            clf = load_cnn(path, device=self.device, n_threads=self.n_threads)
        except (AnnotatorError, OSError) as e:
            self.fail(f"Could not load the CNN: {e}")
            return False
        layer = self.image_layer
        fits = False
        if layer is not None:
            try:
                clf.check_image(layer.data.shape, self.channel_axis)
                fits = True
            except AnnotatorError as e:
                self.fail(f"The CNN in {Path(path).name} does not fit '{layer.name}': {e}")
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
            self.set_status(f"Loaded {Path(path).name} (classes {classes}); predicting '{layer.name}'…")
            self.predict()
        else:
            self.set_status(f"Loaded {Path(path).name} (classes {classes}); press Predict.")
        return True

    def _save_dialog(self):
        path = self.ask_path("Save CNN", "CNN (*.aacnn)", save_as="network.aacnn")
        if path:
            self.save_cnn(path)

    def _load_dialog(self):
        path = self.ask_path("Load CNN", "CNN (*.aacnn)")
        if path:
            self.load_cnn(path)

    # -- workers -------------------------------------------------------------------------
    def _start(self, job):
        verb = "Fine-tuning" if job.kind == "fit" else "Predicting"
        self._job = job
        job.task = self.run(lambda task: _run_job(job, task), lambda outcome: self._on_returned(job, outcome),
                            desc=f"{verb} on {self._device_text(job.classifier)}",
                            on_report=lambda info: self._on_report(job, info))

    def _on_report(self, job, info):
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
        self._job = None
        self._done_bar(job)
        clf = outcome.classifier
        self.cnn = clf
        self._write_outputs(job, outcome)
        device = self._device_text(clf)
        classes = ", ".join(str(c) for c in clf.classes_)
        unc = f"MC dropout ({job.mc_samples} passes)" if job.mc_samples else "softmax entropy"
        if job.kind == "fit":
            n_epochs = sum(1 for p in clf.history_["phase"] if p == "finetune")
            best = f", kept the weights of epoch {clf.best_epoch_} (lowest validation loss, ★)" if clf.best_epoch_ else ""
            warm = " after a warm start from the forest" if job.warm_proba is not None else ""
            note = f" ({job.warm_note})" if job.warm_note else ""
            self._draw_curve(best_epoch=clf.best_epoch_)
            self.set_status(
                f"Fine-tuned {n_epochs} epochs{warm}{note} on {device} in {outcome.fit_s:.1f} s{best}. "
                f"Predicted classes {classes} in {outcome.predict_s:.1f} s; uncertainty: {unc}.")
        else:
            self.set_status(f"Predicted classes {classes} on {device} in {outcome.predict_s:.1f} s; "
                            f"uncertainty: {unc}.")
        self.predicted.emit()
        if job.kind == "fit":
            self.trained.emit()

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
        """One point per epoch; fine-tuning epoch k is at x = k (the core's numbering), the
        warm-start epochs before it at x <= 0, so the status line and the plot name the same epoch."""
        c = self.curve
        warm = info["phase"] == "warm_start"
        c["x"].append(info["epoch"] - info["epochs"] if warm else info["epoch"])
        c["phase"].append(info["phase"])
        c["train_loss"].append(float(info["train_loss"]))
        v = info.get("val_loss")
        c["val_loss"].append(np.nan if v is None else float(v))

    def _draw_curve(self, best_epoch=None):
        """Redraw the loss curve from ``self.curve`` (main thread only).

        The star marks ``best_epoch`` (the epoch whose weights the core kept) once
        training is done, the lowest validation loss so far while it runs.
        """
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
            ax.axvline(0.5, color="0.6", lw=0.8, ls=":")
        self.best_marker = None
        if fine.any() and np.isfinite(val[fine]).any():
            kept = np.flatnonzero(fine & (x == best_epoch)) if best_epoch else []
            i = kept[0] if len(kept) else np.nanargmin(np.where(fine, val, np.nan))
            self.best_marker, = ax.plot([x[i]], [val[i]], "*", ms=11, color="tab:red",
                                        label=f"lowest validation loss (epoch {int(x[i])})")
        ax.set_xlabel("epoch (warm start ≤ 0, then fine-tuning)" if warm.any() else "epoch", fontsize=8)
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
        self.put_layer(CNN_PREDICTION, "labels", outcome.prediction, scale, translate, opacity=0.4)
        annotations = self.annotations_layer
        names = {} if annotations is None else annotations.metadata.get("class_names", {})
        put_probability_layers(self.viewer, outcome.probabilities, classes, prefix=CNN_PROBABILITY,
                               source=CNN_SOURCE, scale=scale, translate=translate, class_names=names)
        self.put_layer(CNN_UNCERTAINTY, "image", outcome.uncertainty, scale, translate, colormap="magma",
                       contrast_limits=(0.0, 1.0), blending="additive", opacity=0.7)
        if annotations is not None:  # keep the strokes on top and selected, so painting goes on
            layers = self.viewer.layers
            layers.move(layers.index(annotations.name), len(layers))
            layers.selection.active = annotations
