"""The "Pixel classifier" dock: paint strokes, train, see the prediction, decide where to label next.

A translator between napari layers and an :class:`active_annotator.AnnotationSession`
(the loop itself lives in the core): it reads the chosen image and annotations
layers, runs the session's ``train`` and ``predict`` stages in a napari worker
(visible region first, then the rest), and writes the "prediction",
"probabilities" and "uncertainty" layers back on the main thread. The
Suggestions tab ranks on the same session's probabilities and cached features.
No numerical work lives here.

No ``from __future__ import annotations`` in this module: napari injects the
viewer only when the constructor's annotation is the class itself.
"""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import napari
import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from active_annotator import FAMILIES, AnnotationSession, FeatureSet, PixelClassifier
from active_annotator import load_model as _load_model_file
from active_annotator import save_model as _save_model_file
from active_annotator._jit_cache import start_warm_up
from active_annotator.classifier import MAX_STAGES
from active_annotator.errors import AnnotatorError, Cancelled, InputError
from active_annotator.evaluation import History
from active_annotator.session import Stage

from ._dock import CHANNEL_CHOICES, _FullHeightScroll, guess_axes, image_and_geometry
from ._layers import (
    FOREST_SOURCE,
    LayerChoiceMixin,
    cnn_dock_for,
    is_probability_layer,
    probability_layers,
    put_probability_layers,
)
from ._messages import for_gui

PREDICTION = "prediction"
PROBABILITY = "probability"  # one hidden layer per class: "probability 2 (nucleus)"
SOURCE = FOREST_SOURCE  # metadata "source" of the probability layers
UNCERTAINTY = "uncertainty"
ANNOTATIONS = "annotations"
PIXEL_MODEL = "pixel.aamodel"  # file names inside a project's models/ folder
CNN_MODEL = "cnn.aacnn"
OUTPUT_LAYERS = (PREDICTION, UNCERTAINTY)
NEW_ANNOTATIONS = f"(new '{ANNOTATIONS}' layer)"

# (text shown, key); "2d" and "planes" both use 2-D filters, "planes" says
# that leading axes are independent planes rather than a mistake
SPATIAL_CHOICES = (
    ("2D image", "2d"),
    ("3D volume (3D filters)", "3d"),
    ("2D per plane (stack of images)", "planes"),
)
FAMILY_TEXT = {
    "original": ("Original intensity", "The pixel value itself (per channel)."),
    "gaussian": ("Gaussian smoothing", "Local mean brightness at each scale."),
    "dog": ("Difference of Gaussians", "Band-pass: edges and blobs between consecutive scales."),
    "log": ("Laplacian of Gaussian", "Blob detector: bright or dark spots of about the scale's size."),
    "hessian": ("Hessian eigenvalues", "Local curvature: ridges, valleys, corners and texture."),
    "deep": ("Pretrained CNN (deep)", "Activations of an ImageNet-pretrained CNN (EfficientNet-Lite0), "
             "reduced to 32 per channel; slower. Needs: pip install \"napari-active-annotator[deep]\"."),
}
DEFAULT_SIGMAS = "1, 2, 4, 8"
# Live mode retrains this long after the last finished stroke (a burst trains once);
# features are cached, so a retrain is cheap and the delay can be short.
LIVE_DELAY_MS = 50
LIVE_TREES = 32  # Live mode: a fast preview forest; nuclei2d starter strokes: Jaccard 0.738 vs 0.734 with 100
# Progress in the status line at most this often (each update repaints the window)
REPORT_INTERVAL_S = 1.0
# A zarr/dask image larger than this many pixels is predicted on screen only (visible region);
# smaller ones get the whole image in a second stage like numpy images.
LAZY_FULL_MAX_PIXELS = 1 << 26


class _Scroll(_FullHeightScroll):
    MIN_HEIGHT = 150


@dataclass
class _Job:
    """One train-and-predict (or predict-only) request, frozen at request time."""

    kind: str  # "train" or "predict"
    session: AnnotationSession
    labels: object  # a private copy of the annotations (None for predict-only)
    classifier: PixelClassifier
    scale: tuple
    translate: tuple
    notify: bool = True
    stop: threading.Event = field(default_factory=threading.Event)
    worker: object = None
    visible: tuple = None  # slices over (*stack, *spatial): what is on screen
    full: bool = True  # predict the rest of the image after the visible region
    reported: float = field(default_factory=time.perf_counter)  # last status update (throttle)
    step: int = 1  # zoomed out: image pixels per screen pixel (power of 2); the preview samples them
    shown: threading.Event = field(default_factory=threading.Event)  # visible result on screen


@dataclass
class _Outcome:
    stage: object = None  # the session's Stage (None: nothing to show)
    classifier: PixelClassifier = None
    error: str = ""
    cancelled: bool = False
    seconds: float = 0.0
    validation: object = None  # evaluation.Validation of a training round
    complete: bool = True  # False when only the visible region was predicted


def _wait_shown(job):
    # the visible result is drawn on the main thread first: the full stage would compete
    # with it for the two cores (and the GIL) and delay what the user is looking at
    while not job.shown.wait(0.02):
        if job.stop.is_set():
            raise Cancelled("Cancelled.")


def _run_job(job: _Job, report):
    """Worker body: the session's train (train jobs), the visible stage (yielded: the dock
    shows it), the round's validation, then the whole image.

    Yields a stage name at each of the progress bar's four steps. Expected failures come
    back as an :class:`_Outcome` with the core's message rather than as exceptions.
    """
    start = time.perf_counter()
    session, clf, stop = job.session, job.classifier, job.stop.is_set
    progress = lambda text, done, total: report(job, text, done, total)
    validation = None
    try:
        if job.kind == "train":
            session.train(job.labels, clf, should_stop=stop, on_progress=progress)
        yield "predicting"
        stages = session.predict(job.visible, classifier=clf, step=job.step, full=job.full,
                                 should_stop=stop, on_progress=progress)
        last = next(stages)
        yield _Outcome(stage=last, classifier=clf, seconds=time.perf_counter() - start, complete=False)
        _wait_shown(job)
        if job.kind == "train":
            validation = session.validate(record=False, should_stop=stop)
        yield "full"
        for last in stages:
            pass
        yield "done"
    except Cancelled:
        return _Outcome(cancelled=True)
    except AnnotatorError as e:
        return _Outcome(error=str(e))
    seconds = time.perf_counter() - start
    if not last.complete:  # a huge lazy image: the visible region only
        return _Outcome(classifier=clf, seconds=seconds, validation=validation, complete=False)
    return _Outcome(stage=last, classifier=clf, seconds=seconds, validation=validation)


class PixelClassifierWidget(LayerChoiceMixin, QWidget):
    """Paint a few pixels per class, train a random forest, see its prediction.

    Signals
    -------
    visible_updated : emitted after the visible region's prediction was written to the
        output layers (first stage of every train/predict; the whole image follows).
    predicted : emitted after the output layers were written (train or predict).
    trained : emitted after a training job wrote the output layers.
    failed(str) : emitted with the message shown when a request fails.
    cancelled : emitted when the running job is cancelled.
    """

    visible_updated = Signal()
    trained = Signal()
    predicted = Signal()
    failed = Signal(str)
    cancelled = Signal()
    _progress = Signal(object, str, int, int)

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.classifier = None
        self._job = None
        self._workers = set()
        self._watched_annotations = None
        self._watched_uncertainty = None  # the uncertainty layer whose eye follows the checkbox
        self.history = History()  # one row per training round, for the learning curve
        self._history_image = None  # the image layer the history belongs to
        self.project_session = None
        self.session = None  # the AnnotationSession of the image last used (see _session_for)
        self.timings = {}  # seconds of the last visible-region update: worker, layer writes
        # on a fresh install the kernels compile while the person paints, not at Train
        start_warm_up()

        self._build()
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_DELAY_MS)
        self._live_timer.timeout.connect(self._live_retrain)
        self._progress.connect(self._on_progress)

        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        for layer in layers:
            layer.events.name.connect(self._refresh_layer_choices)
            layer.events.data.connect(self._on_layer_data)
        self._refresh_layer_choices()

    # -- layout ------------------------------------------------------------------
    def _build(self):
        # the whole dock scrolls on a short screen (issue 16.7): four docks fit 1280x800
        body = QWidget()
        root = QVBoxLayout(body)
        frame = QVBoxLayout(self)
        frame.setContentsMargins(0, 0, 0, 0)
        self._body_scroll = _Scroll()
        self._body_scroll.setWidget(body)
        frame.addWidget(self._body_scroll)
        train_page = QWidget()  # the training controls: first tab (see _add_active_learning_panels)
        outer = QVBoxLayout(train_page)

        data_box = QGroupBox("Data")
        form = QFormLayout(data_box)
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image to classify.")
        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        form.addRow("Image", self.image_combo)

        self.annotations_combo = QComboBox()
        self.annotations_combo.setToolTip(
            "Labels layer with your strokes: 0 = unlabelled, 1, 2, ... = classes.\n"
            "Training only reads it, never changes it.")
        self.annotations_combo.currentTextChanged.connect(self._watch_annotations)
        self.new_annotations_button = QPushButton("New")
        self.new_annotations_button.setToolTip(
            f"Add an empty '{ANNOTATIONS}' Labels layer matching the image and select it.")
        self.new_annotations_button.clicked.connect(self.new_annotations)
        row = QHBoxLayout()
        row.addWidget(self.annotations_combo, 1)
        row.addWidget(self.new_annotations_button)
        form.addRow("Annotations", row)

        self.channel_combo = QComboBox()
        for text, _ in CHANNEL_CHOICES:
            self.channel_combo.addItem(text)
        self.channel_combo.setToolTip(
            "Which axis of the image holds colour channels, if any.\n"
            "Guessed from the layer (RGB flag, a short first axis); check it.")
        form.addRow("Channel axis", self.channel_combo)

        self.spatial_combo = QComboBox()
        for text, _ in SPATIAL_CHOICES:
            self.spatial_combo.addItem(text)
        self.spatial_combo.setToolTip(
            "2D image: one 2-D image.\n"
            "3D volume: filters run in 3-D (z, y, x); any leading axes are separate volumes.\n"
            "2D per plane: every 2-D plane of a stack (time, z) is filtered on its own.")
        form.addRow("Spatial dims", self.spatial_combo)
        outer.addWidget(data_box)

        feat_box = QGroupBox("Features")
        grid = QGridLayout(feat_box)
        self.family_checks = {}
        for i, fam in enumerate(FAMILIES):
            text, tip = FAMILY_TEXT.get(fam, (fam, ""))
            box = QCheckBox(text)
            box.setChecked(fam != "deep")  # opt-in: slower, needs the [deep] extra
            box.setToolTip(tip)
            self.family_checks[fam] = box
            grid.addWidget(box, i // 2, i % 2)
        row = (len(FAMILIES) + 1) // 2
        grid.addWidget(QLabel("Scales (sigmas, px)"), row, 0)
        self.sigmas_edit = QLineEdit(DEFAULT_SIGMAS)
        self.sigmas_edit.setToolTip(
            "Gaussian widths in pixels, increasing, separated by commas.\n"
            "Cover the size of the structures you label: a nucleus 20 px wide wants up to 8.")
        grid.addWidget(self.sigmas_edit, row, 1)
        outer.addWidget(feat_box)

        forest_box = QGroupBox("Random forest")
        form = QFormLayout(forest_box)
        self.trees_spin = QSpinBox()
        self.trees_spin.setRange(1, 2000)
        self.trees_spin.setValue(100)
        self.trees_spin.setToolTip("More trees: smoother probabilities, slower training and prediction.")
        form.addRow("Number of trees", self.trees_spin)
        self.depth_spin = QSpinBox()
        self.depth_spin.setRange(0, 200)
        self.depth_spin.setValue(0)
        self.depth_spin.setSpecialValueText("unlimited")
        self.depth_spin.setToolTip("Maximum depth of each tree; 0 = grow until leaves are pure.")
        form.addRow("Max depth", self.depth_spin)
        self.stages_spin = QSpinBox()
        self.stages_spin.setRange(1, MAX_STAGES)
        self.stages_spin.setValue(1)
        self.stages_spin.setToolTip(
            "Autocontext: each further stage is a forest that also sees the previous stage's "
            "smoothed probabilities (slower; often better on textured or low-contrast images).")
        form.addRow("Stages", self.stages_spin)
        self.live_trees_spin = QSpinBox()
        self.live_trees_spin.setRange(1, 2000)
        self.live_trees_spin.setValue(LIVE_TREES)
        self.live_trees_spin.setToolTip(
            "Live mode retrains after every stroke with at most this many trees: a fast preview. "
            "Train (the button) always uses 'Number of trees'.")
        form.addRow("Trees in Live mode", self.live_trees_spin)
        outer.addWidget(forest_box)

        buttons = QGridLayout()
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip(
            "Train on the annotations and predict the whole image.\n"
            "Pressing again while it runs restarts with the current strokes.")
        self.train_button.clicked.connect(self.train)
        self.predict_button = QPushButton("Predict")
        self.predict_button.setToolTip("Apply the current (trained or loaded) model to the chosen image.")
        self.predict_button.clicked.connect(self.predict)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running training or prediction.")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.live_check = QCheckBox("Live")
        self.live_check.setToolTip("Retrain (with the preview forest, see 'Trees in Live mode') right after "
                                   "each finished brush stroke.")
        self.live_check.toggled.connect(self._on_live_toggled)
        # the uncertainty layer starts hidden so the image stays in view while painting
        self.uncertainty_check = QCheckBox("Uncertainty")
        self.uncertainty_check.setToolTip("Show the 'uncertainty' layer over the image: bright where "
                                          "the model is unsure, i.e. where a label teaches it most.")
        self.uncertainty_check.toggled.connect(self._on_uncertainty_toggled)
        # Train / Predict / Cancel / Live sit under the tabs, visible on both (see
        # _add_active_learning_panels): after labelling a suggestion, retrain without switching tabs
        self._actions = QHBoxLayout()
        for w in (self.train_button, self.predict_button, self.cancel_button):
            self._actions.addWidget(w, 1)
        self._actions.addWidget(self.live_check)
        self._actions.addWidget(self.uncertainty_check)
        self.save_button = QPushButton("Save model…")
        self.save_button.setToolTip("Save the trained classifier (.aamodel: safe, never unpickled).")
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button = QPushButton("Load model…")
        self.load_button.setToolTip("Load a saved classifier and apply it to the chosen image.")
        self.load_button.clicked.connect(self._load_dialog)
        buttons.addWidget(self.save_button, 0, 0)
        buttons.addWidget(self.load_button, 0, 1)
        outer.addLayout(buttons)

        project_box = QGroupBox("Project")
        prow = QGridLayout(project_box)
        self.save_project_button = QPushButton("Save project…")
        self.save_project_button.setToolTip(
            "Save image, annotations, model and settings in a .aaproject folder.\n"
            "From then on every stroke is autosaved there within a few seconds.")
        self.save_project_button.clicked.connect(self._save_project_dialog)
        self.open_project_button = QPushButton("Open project…")
        self.open_project_button.setToolTip(
            "Open a .aaproject folder; after a crash it offers to restore autosaved strokes.")
        self.open_project_button.clicked.connect(self._open_project_dialog)
        self.project_status = QLabel("Not saved in a project: strokes are not autosaved.")
        self.project_status.setWordWrap(True)
        prow.addWidget(self.save_project_button, 0, 0)
        prow.addWidget(self.open_project_button, 0, 1)
        prow.addWidget(self.project_status, 1, 0, 1, 2)
        outer.addWidget(project_box)

        self.status = QLabel("Paint at least two classes in the annotations layer, then press Train.")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        outer.addStretch(1)
        self._add_active_learning_panels(root, train_page)

    def _add_active_learning_panels(self, root, train_page):
        """Tabs "Train" | "Suggestions" (where to label next), then the status, then the
        learning curve and metrics, which stay visible on both tabs."""
        from ._suggestions import SuggestionsPanel
        from ._validation import ValidationPanel

        self.suggestions_panel = SuggestionsPanel(self.viewer, self)
        self.validation_panel = ValidationPanel()
        self.panels = QTabWidget()
        # on a short screen the controls scroll instead of being squashed (clipped text)
        scroll = _Scroll()
        scroll.setWidget(train_page)
        self.panels.addTab(scroll, "Train")
        self.panels.addTab(self.suggestions_panel, "Suggestions")
        from ._explain_panel import ExplainPanel

        self.explain_panel = ExplainPanel(self)
        self.panels.addTab(self.explain_panel, "Explain")
        # the controls get the room first (they scroll when the screen is short); the plot
        # keeps at least its minimum height
        root.addWidget(self.panels, 3)
        root.addLayout(self._actions)
        root.addWidget(self.status)
        root.addWidget(self.validation_panel, 1)

    # -- layer choices -------------------------------------------------------------
    def _on_layers_changed(self, event=None):
        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self._refresh_layer_choices)
            event.value.events.data.connect(self._on_layer_data)
        if self.session is not None and not any(ly.data is self.session.image for ly in self.viewer.layers):
            self.session = None  # its image was removed: free the cached features
        self._refresh_layer_choices()

    def _refresh_layer_choices(self, event=None):
        images = [ly.name for ly in self.viewer.layers
                  if isinstance(ly, napari.layers.Image) and ly.name not in OUTPUT_LAYERS
                  and not is_probability_layer(ly)]
        labels = [ly.name for ly in self.viewer.layers
                  if isinstance(ly, napari.layers.Labels) and ly.name not in OUTPUT_LAYERS]
        self._set_items(self.image_combo, images, default=images[0] if images else None)
        default = ANNOTATIONS if ANNOTATIONS in labels else NEW_ANNOTATIONS
        self._set_items(self.annotations_combo, [NEW_ANNOTATIONS] + labels, default=default)

    @property
    def image_layer(self):
        """The chosen image layer, or None."""
        return self._layer(self.image_combo.currentText(), napari.layers.Image)

    @property
    def annotations_layer(self):
        """The chosen annotations layer, or None when a new one is to be created."""
        return self._layer(self.annotations_combo.currentText(), napari.layers.Labels)

    def _on_image_changed(self, name):
        layer = self._layer(name, napari.layers.Image)
        if layer is not None:
            channel_axis, spatial = guess_axes(layer)
            self.set_axes(channel_axis, spatial)
        # the learning curve belongs to one image: start a new one for another image
        if name and name != self._history_image:
            if self.history.rounds:
                self.history = History()
                self.validation_panel.reset(f"New learning curve for {name!r}: the previous one "
                                            f"belonged to {self._history_image!r}.")
            self._history_image = name

    def set_axes(self, channel_axis, spatial):
        """Choose the channel axis (None, -1 or 0) and spatial mode ("2d", "3d", "planes")."""
        self.channel_combo.setCurrentIndex([c for _, c in CHANNEL_CHOICES].index(channel_axis))
        self.spatial_combo.setCurrentIndex([s for _, s in SPATIAL_CHOICES].index(spatial))

    @property
    def channel_axis(self):
        return CHANNEL_CHOICES[self.channel_combo.currentIndex()][1]

    @property
    def spatial_mode(self):
        return SPATIAL_CHOICES[self.spatial_combo.currentIndex()][1]

    # -- gathering inputs ----------------------------------------------------------
    def feature_set(self) -> FeatureSet:
        """The FeatureSet the controls describe; raises InputError with a fix if they are invalid."""
        text = self.sigmas_edit.text().replace(";", ",")
        try:
            sigmas = tuple(float(s) for s in text.replace(" ", ",").split(",") if s.strip())
        except ValueError:
            raise InputError(
                f"Scales must be numbers separated by commas, e.g. {DEFAULT_SIGMAS!r}; got {text!r}."
            ) from None
        families = tuple(f for f, box in self.family_checks.items() if box.isChecked())
        ndim = 3 if self.spatial_mode == "3d" else 2
        return FeatureSet(sigmas=sigmas, families=families, ndim=ndim)

    def _image_and_geometry(self):
        layer = self.image_layer
        image, shape, scale, translate = image_and_geometry(layer, self.channel_axis)
        ca = self.channel_axis
        n = len(shape)
        mode = self.spatial_mode
        if mode == "2d" and n != 2:
            raise InputError(
                f"'{layer.name}' has {n} non-channel axes (shape {tuple(image.shape)}). Choose "
                "'3D volume' or '2D per plane' under Spatial dims, or set the channel axis.")
        if mode in ("3d", "planes") and n < 3:
            raise InputError(
                f"'{layer.name}' has only {n} non-channel axes (shape {tuple(image.shape)}): "
                "choose '2D image' under Spatial dims.")
        return layer, image, ca, tuple(shape), tuple(scale), tuple(translate)

    def _on_layer_data(self, event=None):
        # an image's pixels were replaced: features of the old pixels are void
        src = getattr(event, "source", None)
        if (self.session is not None and isinstance(src, napari.layers.Image)
                and src.name not in OUTPUT_LAYERS and not is_probability_layer(src)):
            self.session.image_changed()

    def _session_for(self, image, ca, shape) -> AnnotationSession:
        """The session of this image; a new one when the data or its axes changed.

        The session keeps the features of the classifier's feature set (a new set, a new
        cache); the learning curve (``history``) belongs to the image layer's name.
        """
        nd = 3 if self.spatial_mode == "3d" else 2
        s = self.session
        if (s is None or s.image is not image or s.channel_axis != ca or s.spatial_ndim != nd
                or s.shape != tuple(shape)):
            s = self.session = AnnotationSession(image, ca, nd, history=self.history)
        s.history = self.history
        return s

    @property
    def feature_tiles_computed(self) -> int:
        """Feature tiles computed for the current image so far (a cache hit adds none)."""
        return 0 if self.session is None else self.session.tiles_computed

    def visible_region(self, layer, shape, ca, spatial_ndim):
        """Slices over the image's non-channel axes ``(*stack, *spatial)`` of what is on screen.

        From the public viewer API: camera center and zoom, canvas size and the dims
        point; stack axes get the current plane. Falls back to the whole current plane
        (or volume) in a 3-D view or when the displayed axes are not the spatial ones.
        """
        nst = len(shape) - spatial_ndim
        try:
            point = np.asarray(layer.world_to_data(self.viewer.dims.point), float)
            if ca is not None and not layer.rgb:
                point = np.delete(point, ca)
            region = [slice(int(np.clip(round(point[i]), 0, n - 1)),
                            int(np.clip(round(point[i]), 0, n - 1)) + 1) for i, n in enumerate(shape)]
            region[nst:] = [slice(0, n) for n in shape[nst:]]
            if spatial_ndim == 3 and self.viewer.dims.ndisplay == 2:
                z = int(np.clip(round(point[nst]), 0, shape[nst] - 1))
                region[nst] = slice(z, z + 1)
            if self.viewer.dims.ndisplay != 2:
                return tuple(region)
            displayed = list(self.viewer.dims.displayed)
            lay_axes = list(range(layer.ndim))
            world_axes = [self.viewer.dims.ndim - layer.ndim + a for a in lay_axes]
            if displayed != world_axes[-2:]:
                return tuple(region)
            cam = self.viewer.scene.camera
            center = np.asarray(cam.center, float)[-2:]
            half = np.asarray(self.viewer.canvas.size, float)[:2] / (2.0 * cam.zoom)
            corners = []
            for dy in (-1, 1):
                for dx in (-1, 1):
                    w = np.asarray(self.viewer.dims.point, float).copy()
                    w[displayed[0]] = center[0] + dy * half[0]
                    w[displayed[1]] = center[1] + dx * half[1]
                    c = np.asarray(layer.world_to_data(w), float)
                    if ca is not None and not layer.rgb:
                        c = np.delete(c, ca)
                    corners.append(c[-2:])
            corners = np.array(corners)
            lo, hi = np.floor(corners.min(0)), np.ceil(corners.max(0)) + 1
            for k, i in enumerate((len(shape) - 2, len(shape) - 1)):
                a, b = int(np.clip(lo[k], 0, shape[i])), int(np.clip(hi[k], 0, shape[i]))
                if b > a:
                    region[i] = slice(a, b)
            return tuple(region)
        except Exception:  # noqa: BLE001 - a view we do not understand: the current plane
            return tuple([slice(0, 1)] * nst + [slice(0, n) for n in shape[nst:]])

    def _prepare(self, job, layer, shape):
        """Attach the visible region and the preview step to a job (main thread)."""
        image = job.session.image
        job.visible = self.visible_region(layer, shape, job.session.channel_axis, job.session.spatial_ndim)
        job.full = isinstance(image, np.ndarray) or int(np.prod(shape)) <= LAZY_FULL_MAX_PIXELS
        job.step = self._screen_step(layer) if job.full else 1  # lazy visible-only: exact
        return job

    def _screen_step(self, layer):
        """Image pixels per screen pixel when zoomed out (a power of 2, at most 16; else 1)."""
        try:
            if self.viewer.dims.ndisplay != 2:
                return 1
            per_screen = 1.0 / (self.viewer.scene.camera.zoom * min(abs(float(v)) for v in layer.scale[-2:]))
        except Exception:  # noqa: BLE001 - no camera we understand: exact
            return 1
        step = 1
        while step * 2 <= min(per_screen, 16):
            step *= 2
        return step

    def _make_classifier(self, live=False) -> PixelClassifier:
        depth = self.depth_spin.value()
        trees = self.trees_spin.value()
        if live:
            trees = min(trees, self.live_trees_spin.value())
        return PixelClassifier(features=self.feature_set(), n_estimators=trees, max_depth=depth or None,
                               stages=self.stages_spin.value())

    def new_annotations(self):
        """Add an empty "annotations" Labels layer with the image's non-channel shape."""
        try:
            image_layer, _, _, shape, scale, translate = self._image_and_geometry()
        except AnnotatorError as e:
            self._fail(str(e))
            return None
        name = ANNOTATIONS if ANNOTATIONS not in self.viewer.layers else f"{ANNOTATIONS} [{image_layer.name}]"
        layer = self.viewer.add_labels(np.zeros(shape, np.uint8), name=name, scale=scale,
                                       translate=translate)
        self.annotations_combo.setCurrentText(layer.name)
        layer.mode = "paint"
        self._set_status(f"Added '{layer.name}': paint class 1 (e.g. background) and class 2 "
                         "(e.g. objects), then press Train.")
        return layer

    # -- actions ---------------------------------------------------------------------
    def train(self, *_, notify=True, live=False):
        """Train on the annotations and predict the image, in a worker thread.

        A request while another job runs cancels that job and starts this one.
        ``live`` (Live mode's retraining): at most "Trees in Live mode" trees.
        """
        try:
            layer, image, ca, shape, scale, translate = self._image_and_geometry()
            clf = self._make_classifier(live=live)
            labels_layer = self.annotations_layer
            if labels_layer is None:
                labels_layer = self.new_annotations()
                if labels_layer is None:
                    return
            labels = np.array(labels_layer.data, copy=True)  # the user may paint on while we train
            if labels.shape != shape:
                raise InputError(
                    f"Annotations '{labels_layer.name}' have shape {labels.shape} but the image's "
                    f"non-channel shape is {shape}. Choose the matching annotations layer or channel "
                    "axis, or press New to make one.")
        except AnnotatorError as e:
            self._fail(str(e), notify=notify)
            return
        job = _Job("train", self._session_for(image, ca, shape), labels, clf, scale, translate, notify=notify)
        self._start(self._prepare(job, layer, shape))

    def predict(self, *_):
        """Apply the current model to the chosen image, in a worker thread."""
        if self.classifier is None:
            self._fail("There is no model yet: press Train, or Load model.")
            return
        try:
            layer, image, ca, shape, scale, translate = self._image_and_geometry()
            self.classifier.check_image(image.shape, ca)
        except AnnotatorError as e:
            self._fail(str(e))
            return
        job = _Job("predict", self._session_for(image, ca, shape), None, self.classifier, scale, translate)
        self._start(self._prepare(job, layer, shape))

    def cancel(self, *_):
        """Stop the running job; its results are discarded and the layers stay as they were."""
        job = self._job
        if job is None:
            return
        self._stop(job)
        self._job = None
        self.cancel_button.setEnabled(False)
        self._set_status("Cancelled.")
        self.cancelled.emit()

    @property
    def busy(self) -> bool:
        """True while any worker (also a cancelled one winding down) is running."""
        return bool(self._workers)

    def save_model(self, path):
        """Save the current classifier to ``path`` (suffix .aamodel added); return the path or None."""
        if self.classifier is None:
            self._fail("There is no trained model to save: press Train first.")
            return None
        try:
            written = _save_model_file(self.classifier, path)
        except (AnnotatorError, OSError) as e:
            self._fail(f"Could not save the model: {e}")
            return None
        self._set_status(f"Saved the model to {written}.")
        return Path(written)

    def load_model(self, path):
        """Load a classifier from ``path``, check it fits the chosen image, and predict.

        On a bad file or a model that does not fit the image, the current
        model, controls and layers are kept and the reason is shown.
        Returns True when the model was loaded.
        """
        try:
            clf = _load_model_file(path)
        except (AnnotatorError, OSError) as e:
            self._fail(f"Could not load the model: {e}")
            return False
        layer = self.image_layer
        if layer is not None:
            mode = self.spatial_mode
            if clf.feature_set.ndim == 3:
                mode = "3d"
            elif mode == "3d":
                mode = "planes"
            try:
                clf.check_image(layer.data.shape, self.channel_axis)
            except AnnotatorError as e:
                self._fail(f"The model in {Path(path).name} does not fit '{layer.name}': {e}")
                return False
        self.classifier = clf
        self._show_settings(clf)
        if layer is not None:
            self.spatial_combo.setCurrentIndex([s for _, s in SPATIAL_CHOICES].index(mode))
            self._set_status(f"Loaded {Path(path).name}; predicting '{layer.name}'…")
            self.predict()
        else:
            self._set_status(f"Loaded {Path(path).name}; open an image and press Predict.")
        return True

    def _show_settings(self, clf):
        fs = clf.feature_set
        for fam, box in self.family_checks.items():
            box.setChecked(fam in fs.families)
        self.sigmas_edit.setText(", ".join(f"{s:g}" for s in fs.sigmas))
        self.trees_spin.setValue(int(clf.n_estimators))
        self.depth_spin.setValue(int(clf.max_depth or 0))
        self.stages_spin.setValue(int(clf.n_stages))

    def _save_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save pixel classifier", "classifier.aamodel",
                                              "Pixel classifier (*.aamodel)")
        if path:
            self.save_model(path)

    def _load_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load pixel classifier", "",
                                              "Pixel classifier (*.aamodel)")
        if path:
            self.load_model(path)

    # -- projects ------------------------------------------------------------------------
    def _settings(self) -> dict:
        settings = {"channel_axis": self.channel_axis, "spatial_mode": self.spatial_mode,
                    "n_estimators": self.trees_spin.value(), "max_depth": self.depth_spin.value(),
                    "live_trees": self.live_trees_spin.value()}
        try:
            settings["features"] = self.feature_set().to_dict()
        except AnnotatorError:
            pass  # invalid sigmas typed: keep the rest
        return settings

    def save_project(self, path):
        """Save into a project folder and autosave every stroke there from now on.

        Returns the :class:`~active_annotator_napari._project.ProjectSession` or None.
        """
        from ._project import save_project

        layer = self.image_layer
        if layer is None:
            self._fail("Open an image before saving a project.")
            return None
        labels_layer = self.annotations_layer or self.new_annotations()
        if labels_layer is None:
            return None
        mode = self.spatial_mode
        try:
            if self.project_session is not None:
                self.project_session.close()
            session = save_project(path, layer, labels_layer, settings=self._settings(),
                                   channel_axis=self.channel_axis,
                                   spatial_ndim=3 if mode == "3d" else 2,
                                   history=self.history.to_dict(),
                                   suggestions=self.suggestions_panel.state())
            saved = []
            if self.classifier is not None:
                self.classifier.save(session.project.model_path(PIXEL_MODEL))
                saved.append("forest")
            cnn_dock = cnn_dock_for(self.viewer)
            if cnn_dock is not None and cnn_dock.cnn is not None:
                cnn_dock.cnn.save(session.project.model_path(CNN_MODEL))
                saved.append("CNN")
        except (AnnotatorError, OSError) as e:
            self._fail(f"Could not save the project: {e}")
            return None
        self._attach_session(session)
        models = f" with the {' and '.join(saved)}" if saved else ""
        self.project_status.setText(f"Project {session.project.path.name}: saved{models}; strokes autosave.")
        return session

    def open_project(self, path, restore=None):
        """Open a project's image and annotations as layers and resume autosaving.

        ``restore`` answers the crash-recovery question (None: ask in a dialog).
        """
        from ._project import open_project

        try:
            sessions = open_project(self.viewer, path, restore=restore)
        except (AnnotatorError, OSError) as e:
            self._fail(f"Could not open the project: {e}")
            return None
        if not sessions:
            self._fail("The project has no images.")
            return None
        session = sessions[0]
        for extra in sessions[1:]:
            extra.setParent(self)  # keep them alive: they autosave their layers
        project = session.project
        self.image_combo.setCurrentText(session.name)
        self.annotations_combo.setCurrentText(session.layer.name)
        settings = project.settings
        if "channel_axis" in settings:
            self.set_axes(settings.get("channel_axis"), settings.get("spatial_mode", "2d"))
        if "features" in settings:
            try:
                fs = FeatureSet.from_dict(settings["features"])
                for fam, box in self.family_checks.items():
                    box.setChecked(fam in fs.families)
                self.sigmas_edit.setText(", ".join(f"{s:g}" for s in fs.sigmas))
            except AnnotatorError:
                pass
        self.trees_spin.setValue(int(settings.get("n_estimators", self.trees_spin.value())))
        self.depth_spin.setValue(int(settings.get("max_depth", self.depth_spin.value())))
        self.live_trees_spin.setValue(int(settings.get("live_trees", self.live_trees_spin.value())))
        self._attach_session(session)
        if project.history:
            self.history = History.from_dict({"rounds": project.history})
            self._history_image = session.name
            self.validation_panel.show_history(self.history)
        self.suggestions_panel.restore(project.suggestions)
        model = project.model_path(PIXEL_MODEL)
        if model.exists():
            self.load_model(model)
        note = ""
        cnn_path = project.model_path(CNN_MODEL)
        if cnn_path.exists():
            cnn_dock = cnn_dock_for(self.viewer)
            if cnn_dock is not None:
                cnn_dock.load_cnn(cnn_path)
                note = " The CNN dock loaded the project's CNN."
            else:
                note = (f" The project holds a CNN: open Plugins > CNN fine-tuning and press Load CNN… "
                        f"({cnn_path}).")
        self.project_status.setText(f"Project {project.path.name}: opened; strokes autosave.{note}")
        return session

    def _attach_session(self, session):
        self.project_session = session
        session.setParent(self)
        session.autosaved.connect(
            lambda name: self.project_status.setText(
                f"Project {session.project.path.name}: autosaved at {time.strftime('%H:%M:%S')}."))
        session.autosave_failed.connect(
            lambda msg: self.project_status.setText(f"Autosave failed: {msg}"))
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:  # a clean exit removes the crash marker
            app.aboutToQuit.connect(session.close)

    def _save_project_dialog(self):
        path = QFileDialog.getExistingDirectory(self, "Folder for the new project")
        if path:
            name = (self.image_layer.name if self.image_layer is not None else "project")
            self.save_project(Path(path) / name)

    def _open_project_dialog(self):
        path = QFileDialog.getExistingDirectory(self, "Open project (.aaproject folder)")
        if path:
            self.open_project(path)

    # -- live mode ---------------------------------------------------------------------
    def _watch_annotations(self, *_):
        old = self._watched_annotations
        if old is not None:
            try:
                old.events.paint.disconnect(self._on_paint)
            except (RuntimeError, ValueError, TypeError):
                pass
        layer = self.annotations_layer
        self._watched_annotations = layer
        if layer is not None:
            layer.events.paint.connect(self._on_paint)

    def _on_paint(self, event=None):
        if self.live_check.isChecked():
            self._live_timer.start()  # restarts: a burst of strokes trains once

    def _on_live_toggled(self, on):
        if on:
            self._live_timer.start()
        else:
            self._live_timer.stop()

    def _live_retrain(self):
        # no pop-up while the user is still painting the first classes; a small, fast forest
        self.train(notify=False, live=True)

    # -- workers -------------------------------------------------------------------------
    def _start(self, job):
        if self._job is not None:
            self._stop(self._job)  # replace, don't queue
        self._job = job
        verb = "Training" if job.kind == "train" else "Predicting"
        worker = create_worker(_run_job, job, self._report,
                               _progress={"total": 4, "desc": f"Pixel classifier: {verb.lower()}"})
        job.worker = worker
        worker.yielded.connect(lambda value, job=job: self._on_yielded(job, value))
        worker.returned.connect(lambda outcome, job=job: self._on_returned(job, outcome))
        worker.errored.connect(lambda exc, job=job: self._on_errored(job, exc))
        # napari's activity dock can also stop the worker (worker.quit)
        worker.aborted.connect(lambda job=job: self._on_aborted(job))
        worker.finished.connect(lambda worker=worker: self._on_finished(worker))
        self._workers.add(worker)
        self.cancel_button.setEnabled(True)
        self._set_status(f"{verb}…")
        worker.start()

    @staticmethod
    def _stop(job):
        job.stop.set()  # the core checks this between planes and tiles
        if job.worker is not None:
            job.worker.quit()  # and the generator stops at its next yield

    def _report(self, job, stage, done, total):
        # called in the worker thread: a queued signal hands it to the main thread.
        # At most one status update per REPORT_INTERVAL_S: each one relayouts and repaints
        # the window, which redraws the GL canvas too (in software under Xvfb: measured to
        # double the time to the visible result on 2 cores)
        now = time.perf_counter()
        if now - job.reported < REPORT_INTERVAL_S:
            return
        job.reported = now
        try:
            self._progress.emit(job, stage, done, total)
        except RuntimeError:  # widget already deleted
            pass

    def _on_progress(self, job, stage, done, total):
        if job is self._job:
            self._set_status(f"{stage} {done}/{total}…")

    def _on_returned(self, job, outcome):
        if job is not self._job:
            return  # stale: cancelled or replaced
        self._job = None
        self.cancel_button.setEnabled(False)
        if outcome.cancelled:
            self._set_status("Cancelled.")
            self.cancelled.emit()
            return
        if outcome.error:
            self._fail(outcome.error, notify=job.notify)
            return
        self.classifier = job.session.classifier = outcome.classifier
        if outcome.stage is not None:
            job.session.probabilities = outcome.stage.probabilities
            t = time.perf_counter()
            self._write_outputs(job, outcome.classifier, outcome.stage)
            self.timings["full_write_s"] = time.perf_counter() - t
            self.timings["full_worker_s"] = outcome.seconds
        if outcome.validation is not None:
            outcome.validation.record(self.history)
            self.validation_panel.show_round(self.history, outcome.validation)
        clf = outcome.classifier
        classes = ", ".join(str(c) for c in clf.classes_)
        what = (f"Trained on {clf.n_training_pixels_} labelled pixels (classes {classes})"
                if job.kind == "train" else f"Predicted classes {classes}")
        where = "" if outcome.complete else " (visible region only: the image is large and lazy)"
        preview = ""
        if job.kind == "train" and clf.n_estimators < self.trees_spin.value():
            preview = (f" Live preview with {clf.n_estimators} of {self.trees_spin.value()} trees: "
                       "press Train for the full forest.")
        self._set_status(f"{what} in {outcome.seconds:.1f} s{where}. Paint where the prediction "
                         f"is wrong or uncertain and train again.{preview}")
        self.predicted.emit()
        if job.kind == "train":
            self.trained.emit()

    def _on_yielded(self, job, value):
        if not isinstance(value, _Outcome):
            return  # a stage name: the progress bar advanced
        try:
            if job is not self._job:
                return  # stale: cancelled or replaced
            self.classifier = value.classifier
            t = time.perf_counter()
            self._write_region(job, value.classifier, value.stage)
            self.timings = {"worker_s": value.seconds, "write_s": time.perf_counter() - t}
            classes = ", ".join(str(c) for c in value.classifier.classes_)
            self._set_status(f"Classes {classes}: visible region predicted in {value.seconds:.1f} s; "
                             "the rest of the image follows…")
            self.visible_updated.emit()
        finally:
            job.shown.set()  # the worker goes on with the rest

    def _on_aborted(self, job):
        if job is self._job:
            self.cancel()

    def _on_errored(self, job, exc):
        # an unexpected bug (expected errors come back as outcomes); napari already
        # shows the traceback as a notification
        if job is self._job:
            self._job = None
            self.cancel_button.setEnabled(False)
            self._set_status(f"Error: {type(exc).__name__}: {exc}")
            self.failed.emit(str(exc))

    def _on_finished(self, worker):
        self._workers.discard(worker)

    # -- output layers ---------------------------------------------------------------------
    def _write_outputs(self, job, classifier, stage):
        scale, translate = job.scale, job.translate
        keep_active = self.viewer.layers.selection.active
        classes = [int(c) for c in classifier.classes_]
        self._put_layer(PREDICTION, "labels", stage.prediction, scale, translate,
                        opacity=0.35)
        annotations = self.annotations_layer
        names = {} if annotations is None else annotations.metadata.get("class_names", {})
        put_probability_layers(self.viewer, stage.probabilities, classes, prefix=PROBABILITY, source=SOURCE,
                               scale=scale, translate=translate, class_names=names)
        uncertainty = self._put_layer(UNCERTAINTY, "image", stage.uncertainty, scale, translate,
                                      colormap="magma", contrast_limits=(0.0, 1.0),
                                      blending="additive", opacity=0.7,
                                      visible=self.uncertainty_check.isChecked())
        if uncertainty is not self._watched_uncertainty:
            self._watched_uncertainty = uncertainty
            uncertainty.events.visible.connect(self._on_uncertainty_layer_visible)
        # keep the annotations on top and selected so painting can go on
        if annotations is not None:
            layers = self.viewer.layers
            layers.move(layers.index(annotations.name), len(layers))
            self.viewer.layers.selection.active = annotations
        elif keep_active is not None:
            self.viewer.layers.selection.active = keep_active

    def _on_uncertainty_toggled(self, checked):
        layer = self._layer(UNCERTAINTY, napari.layers.Image)
        if layer is not None and layer.visible != checked:
            layer.visible = checked

    def _on_uncertainty_layer_visible(self, event=None):
        # the layer list's eye and the checkbox are the same switch
        layer = self._layer(UNCERTAINTY, napari.layers.Image)
        if layer is not None and layer.visible != self.uncertainty_check.isChecked():
            self.uncertainty_check.setChecked(layer.visible)

    def _write_region(self, job, classifier, part):
        """Write a visible-region stage into the output layers, in place when their shapes
        fit (the rest keeps the previous prediction until the full stage replaces it)."""
        shape = job.session.shape
        classes = [int(c) for c in classifier.classes_]
        pred, unc = (self._layer(PREDICTION, napari.layers.Labels),
                     self._layer(UNCERTAINTY, napari.layers.Image))
        prob = probability_layers(self.viewer, SOURCE)
        region = part.region
        fits = (pred is not None and unc is not None and sorted(prob) == classes
                and isinstance(pred.data, np.ndarray) and pred.data.shape == shape
                and pred.data.dtype == part.prediction.dtype
                and all(isinstance(ly.data, np.ndarray) and ly.data.shape == shape for ly in prob.values())
                and isinstance(unc.data, np.ndarray) and unc.data.shape == shape)
        if not fits:  # first result, or another shape: layers of the whole image, zero outside
            self._write_outputs(job, classifier, Stage(
                region, np.zeros((len(classes),) + shape, np.float32), np.zeros(shape, part.prediction.dtype),
                np.zeros(shape, np.float32), classifier, False, part.seconds))
            pred, unc = (self._layer(PREDICTION, napari.layers.Labels),
                         self._layer(UNCERTAINTY, napari.layers.Image))
            prob = probability_layers(self.viewer, SOURCE)
        pred.data[region] = part.prediction
        for k, c in enumerate(classes):
            prob[c].data[region] = part.probabilities[k]
        unc.data[region] = part.uncertainty
        for layer in (pred, unc, *prob.values()):
            layer.refresh()

    def _put_layer(self, name, kind, data, scale, translate, **kwargs):
        """Update the output layer's data in place, or add it the first time."""
        layer_type = napari.layers.Labels if kind == "labels" else napari.layers.Image
        layer = self._layer(name, layer_type)
        if layer is not None and layer.data.ndim == data.ndim:
            layer.data = data
            layer.scale, layer.translate = scale, translate
            if "metadata" in kwargs:
                layer.metadata.update(kwargs["metadata"])
            return layer
        if name in self.viewer.layers:  # wrong type or dimensionality: replace it
            self.viewer.layers.remove(name)
        add = self.viewer.add_labels if kind == "labels" else self.viewer.add_image
        return add(data, name=name, scale=scale, translate=translate, **kwargs)

    # -- messages --------------------------------------------------------------------------
    def _set_status(self, text):
        self.status.setText(text)

    def _fail(self, message, notify=True):
        message = for_gui(message)
        self._set_status(f"Error: {message}")
        if notify:
            show_error(message)
        self.failed.emit(message)

