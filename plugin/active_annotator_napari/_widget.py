"""The "Pixel classifier" dock: paint strokes, train, see the prediction, decide where to label next.

A translator between napari layers and an :class:`active_annotator.AnnotationSession`
(the loop itself lives in the core): it reads the chosen image and annotations
layers, runs the session's ``train`` and ``predict`` stages through the dock
base's worker (visible region first, then the rest), and writes the
"prediction", "probabilities" and "uncertainty" layers back on the main thread.
The Suggestions tab ranks on the same session's probabilities and cached
features; the model controls live in :mod:`._pixel_controls`, the project box in
:mod:`._project`. No numerical work lives here.

No ``from __future__ import annotations`` in this module: napari injects the
viewer only when the constructor's annotation is the class itself.
"""

import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from active_annotator import AnnotationSession, FeatureSet, PixelClassifier
from active_annotator import load_model as _load_model_file
from active_annotator import save_model as _save_model_file
from active_annotator._jit_cache import start_warm_up
from active_annotator.errors import AnnotatorError, Cancelled

from ._dock import (
    CHANNEL_CHOICES,
    SPATIAL_CHOICES,
    Dock,
    _FullHeightScroll,
    check_spatial_mode,
    choice_combo,
    choice_value,
    guess_axes,
    set_choice,
)
from ._dock import image_and_geometry as _layer_geometry
from ._layers import FOREST_SOURCE
from ._outputs import OutputLayers, view_region, view_step
from ._pixel_controls import ModelControls
from ._project import ProjectBox

PREDICTION = "prediction"
PROBABILITY = "probability"  # one hidden layer per class ("probability 2 (nucleus)"), source FOREST_SOURCE
UNCERTAINTY = "uncertainty"
ANNOTATIONS = "annotations"
OUTPUT_LAYERS = (PREDICTION, UNCERTAINTY)
NEW_ANNOTATIONS = f"(new '{ANNOTATIONS}' layer)"

# Live mode retrains this long after the last finished stroke (a burst trains once);
# features are cached, so a retrain is cheap and the delay can be short.
LIVE_DELAY_MS = 50
# A zarr/dask image larger than this many pixels is predicted on screen only (visible region);
# smaller ones get the whole image in a second stage like numpy images.
LAZY_FULL_MAX_PIXELS = 1 << 26
MODEL_FILTER = "Pixel classifier (*.aamodel)"
IDLE_TEXT = "Paint at least two classes in the annotations layer, then press Train."


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
    visible: tuple = None  # slices over (*stack, *spatial): what is on screen
    full: bool = True  # predict the rest of the image after the visible region
    step: int = 1  # zoomed out: image pixels per screen pixel (power of 2); the preview samples them
    shown: threading.Event = field(default_factory=threading.Event)  # visible result on screen


@dataclass
class _Outcome:
    stage: object = None  # the session's Stage (None: nothing to show)
    classifier: PixelClassifier = None
    seconds: float = 0.0
    validation: object = None  # evaluation.Validation of a training round
    complete: bool = True  # False when only the visible region was predicted


def _run_job(job: _Job, task):
    """Worker body: the session's round (train, visible stage, validation, the rest); the
    visible stage is yielded for the dock to draw before the rest is computed.

    The core's errors (:class:`AnnotatorError`, :class:`Cancelled`) go to the dock base.
    """
    start, stop = time.perf_counter(), task.should_stop
    steps = job.session.round(job.labels, job.classifier, job.visible, step=job.step, full=job.full,
                              should_stop=stop, on_progress=lambda text, d, t: task.progress(d, t, f"{text} {d}/{t}"))
    last = next(steps)
    clf = last.classifier
    yield _Outcome(stage=last, classifier=clf, seconds=time.perf_counter() - start, complete=False)
    # the rest would compete with the drawing for the two cores (and the GIL)
    while not job.shown.wait(0.02):
        if stop():
            raise Cancelled("Cancelled.")
    validation = next(steps)
    for last in steps:
        pass
    seconds = time.perf_counter() - start
    if not last.complete:  # a huge lazy image: the visible region only
        return _Outcome(classifier=clf, seconds=seconds, validation=validation, complete=False)
    return _Outcome(stage=last, classifier=clf, seconds=seconds, validation=validation)


class PixelClassifierWidget(Dock):
    """Paint a few pixels per class, train a random forest, see its prediction.

    Signals (besides the base's ``failed`` and ``cancelled``)
    -------
    visible_updated : emitted after the visible region's prediction was written to the
        output layers (first stage of every train/predict; the whole image follows).
    predicted : emitted after the output layers were written (train or predict).
    trained : emitted after a training job wrote the output layers.
    """

    visible_updated = Signal()
    trained = Signal()
    predicted = Signal()
    # Live mode is latency-critical: each status/progress repaint also composes the GL canvas
    # (in software under Xvfb: measured to double the time to the visible result on 2 cores)
    report_interval_s = 1.0
    busy_animation = False
    page_follows_content = False  # the tabs scroll, the learning curve below them stays in view

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__(napari_viewer, idle_text=IDLE_TEXT)
        self.classifier = None
        self.session = None  # the AnnotationSession of the image last used (see _session_for)
        self.timings = {}  # seconds of the last visible-region update: worker, layer writes
        self._job = None
        start_warm_up()  # on a fresh install the kernels compile while the person paints
        self._build()
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_DELAY_MS)
        self._live_timer.timeout.connect(self._live_retrain)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._on_image_changed()  # the picker chose its first image before the guess was connected
        self._watch_annotations()

    # -- layout ------------------------------------------------------------------
    def _build(self):
        data_box = QGroupBox("Data")
        form = QFormLayout(data_box)
        self.new_annotations_button = self.button(
            "New", self.new_annotations, f"Add an empty '{ANNOTATIONS}' Labels layer matching the image and select it.")
        self.add_data_pickers(
            form, skip=OUTPUT_LAYERS, image_tip="The image to classify.", new_button=self.new_annotations_button,
            annotations_tip="Labels layer with your strokes: 0 = unlabelled, 1, 2, ... = classes.\n"
                            "Training only reads it, never changes it.",
            avoid=lambda ly: True, none_text=NEW_ANNOTATIONS)  # no 'annotations' layer: make one
        self.image_picker.on_change(self._on_image_changed)
        self.annotations_picker.on_change(self._watch_annotations)
        self.channel_combo = choice_combo(CHANNEL_CHOICES, "Which axis of the image holds colour channels, if any.\n"
                                          "Guessed from the layer (RGB flag, a short first axis); check it.")
        form.addRow("Channel axis", self.channel_combo)
        self.spatial_combo = choice_combo(
            SPATIAL_CHOICES, "2D image: one 2-D image.\n"
            "3D volume: filters run in 3-D (z, y, x); any leading axes are separate volumes.\n"
            "2D per plane: every 2-D plane of a stack (time, z) is filtered on its own.")
        form.addRow("Spatial dims", self.spatial_combo)

        self.controls = ModelControls()
        c = self.controls
        self.family_checks, self.sigmas_edit = c.family_checks, c.sigmas_edit
        self.trees_spin, self.depth_spin, self.stages_spin = c.trees_spin, c.depth_spin, c.stages_spin
        self.live_trees_spin = c.live_trees_spin

        self.train_button = self.button("Train", self.train, "Train on the annotations and predict the whole "
                                         "image.\nPressing again while it runs restarts with the current strokes.")
        self.predict_button = self.button("Predict", self.predict,
                                           "Apply the current (trained or loaded) model to the chosen image.")
        self.cancel_button.setToolTip("Stop the running training or prediction; the layers stay as they were.")
        self.live_check = self.check_box("Live", "Retrain (with the preview forest, see 'Trees in Live mode') "
                                         "right after each finished brush stroke.", toggled=self._on_live_toggled)
        # the uncertainty layer starts hidden so the image stays in view while painting
        self.uncertainty_check = self.check_box("Uncertainty", "Show the 'uncertainty' layer over the image: bright "
                                                "where the model is unsure, i.e. where a label teaches it most.")
        self.outputs = OutputLayers(self, prediction=PREDICTION, uncertainty=UNCERTAINTY, probability=PROBABILITY,
                                    source=FOREST_SOURCE, uncertainty_check=self.uncertainty_check)
        self.save_button = self.path_button("Save model…", self.save_model, "Save the trained classifier (.aamodel: "
                                            "safe, never unpickled).", "Save pixel classifier", MODEL_FILTER,
                                            save_as="classifier.aamodel")
        self.load_button = self.path_button("Load model…", self.load_model, "Load a saved classifier and apply it "
                                            "to the chosen image.", "Load pixel classifier", MODEL_FILTER)
        models = QHBoxLayout()
        models.addWidget(self.save_button)
        models.addWidget(self.load_button)
        self.project_box = ProjectBox(self)
        self.project_status = self.project_box.status
        self.save_project_button, self.open_project_button = self.project_box.save_button, self.project_box.open_button

        page = QWidget()
        column = QVBoxLayout(page)
        column.addWidget(data_box)
        column.addWidget(self.controls)
        column.addLayout(models)
        column.addWidget(self.project_box)
        column.addStretch(1)

        from ._explain_panel import ExplainPanel
        from ._suggestions import SuggestionsPanel
        from ._validation import ValidationPanel

        self.suggestions_panel = SuggestionsPanel(self.viewer, self)
        self.explain_panel = ExplainPanel(self)
        self.validation_panel = ValidationPanel()
        self.panels = QTabWidget()
        for tab, name in ((page, "Train"), (self.suggestions_panel, "Suggestions"), (self.explain_panel, "Explain")):
            scroll = _FullHeightScroll()  # on a short screen a tab scrolls: the learning curve stays in view
            scroll.MIN_HEIGHT = 150
            scroll.setWidget(tab)
            self.panels.addTab(scroll, name)
        # Train / Predict / Live sit under the tabs, visible on all of them: after labelling a
        # suggestion, retrain without switching tabs; the learning curve stays in view too
        actions = QHBoxLayout()
        for w, stretch in ((self.train_button, 1), (self.predict_button, 1), (self.live_check, 0),
                           (self.uncertainty_check, 0)):
            actions.addWidget(w, stretch)
        self.body.addWidget(self.panels, 3)
        self.body.addLayout(actions)
        self.body.addWidget(self.validation_panel, 1)

    # -- layers and axes -------------------------------------------------------------
    def _on_image_changed(self, *_):
        layer = self.image_layer  # called once per chosen layer: the axes a person set are kept
        self.watch("image", layer, "data", self._on_image_data)
        if layer is not None:
            self.set_axes(*guess_axes(layer))
        self.validation_panel.follow(None if layer is None else layer.name)  # a curve per image

    def _on_image_data(self, event=None):
        if self.session is not None:  # the image's pixels were replaced: features of the old ones are void
            self.session.image_changed()

    def _on_layer_removed(self, event=None):
        if self.session is not None and not any(ly.data is self.session.image for ly in self.viewer.layers):
            self.session = None  # its image was removed: free the cached features

    def set_axes(self, channel_axis, spatial):
        """Choose the channel axis (None, -1 or 0) and spatial mode ("2d", "3d", "planes")."""
        set_choice(self.channel_combo, CHANNEL_CHOICES, channel_axis)
        set_choice(self.spatial_combo, SPATIAL_CHOICES, spatial)

    @property
    def channel_axis(self):
        return choice_value(self.channel_combo, CHANNEL_CHOICES)

    @property
    def spatial_mode(self):
        return choice_value(self.spatial_combo, SPATIAL_CHOICES)

    @property
    def spatial_ndim(self) -> int:
        return 3 if self.spatial_mode == "3d" else 2

    def feature_set(self) -> FeatureSet:
        """The FeatureSet the controls describe; raises InputError with a fix if they are invalid."""
        return self.controls.feature_set(self.spatial_ndim)

    def image_and_geometry(self):
        """``(layer, data, channel_axis, shape, scale, translate)`` of the chosen image, checked
        against the Spatial dims choice (InputError naming the fix)."""
        layer, ca = self.image_layer, self.channel_axis
        image, shape, scale, translate = _layer_geometry(layer, ca)
        check_spatial_mode(layer, shape, self.spatial_mode)
        return layer, image, ca, shape, scale, translate

    def _session_for(self, image, ca, shape) -> AnnotationSession:
        """The session of this image; a new one when the data or its axes changed.

        The session keeps the features of the classifier's feature set (a new set, a new
        cache); the learning curve (``history``) belongs to the image layer's name.
        """
        s, nd = self.session, self.spatial_ndim
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
        """Slices over the image's non-channel axes ``(*stack, *spatial)`` of what is on screen."""
        return view_region(self.viewer, layer, shape, ca, spatial_ndim)

    def _make_job(self, kind, labels, classifier, notify=True):
        layer, image, ca, shape, scale, translate = self.image_and_geometry()
        job = _Job(kind, self._session_for(image, ca, shape), labels, classifier, scale, translate, notify=notify)
        job.visible = self.visible_region(layer, shape, ca, job.session.spatial_ndim)
        job.full = isinstance(image, np.ndarray) or int(np.prod(shape)) <= LAZY_FULL_MAX_PIXELS
        job.step = view_step(self.viewer, layer) if job.full else 1  # lazy visible-only: exact
        return job

    def new_annotations(self):
        """Add an empty "annotations" Labels layer with the image's non-channel shape."""
        try:
            image_layer, _, _, shape, scale, translate = self.image_and_geometry()
        except AnnotatorError as e:
            self.fail(str(e))
            return None
        name = ANNOTATIONS if ANNOTATIONS not in self.viewer.layers else f"{ANNOTATIONS} [{image_layer.name}]"
        layer = self.viewer.add_labels(np.zeros(shape, np.uint8), name=name, scale=scale, translate=translate)
        self.annotations_picker.select(layer.name)
        layer.mode = "paint"
        self.set_status(f"Added '{layer.name}': paint class 1 (e.g. background) and class 2 "
                        "(e.g. objects), then press Train.")
        return layer

    # -- actions ---------------------------------------------------------------------
    def train(self, *_, notify=True, live=False):
        """Train on the annotations and predict the image, in a worker thread.

        A request while another job runs cancels that job and starts this one.
        ``live`` (Live mode's retraining): at most "Trees in Live mode" trees.
        """
        try:
            self.image_and_geometry()  # an image to train on, or the error that says what to do
            clf = self.controls.classifier(self.spatial_ndim, live=live)
            labels_layer = self.annotations_layer or self.new_annotations()
            if labels_layer is None:
                return
            labels = np.array(labels_layer.data, copy=True)  # the user may paint on while we train
            job = self._make_job("train", labels, clf, notify=notify)  # the session checks the shape
        except AnnotatorError as e:
            self.fail(str(e), notify=notify)
            return
        self._start(job, "Training")

    def predict(self, *_):
        """Apply the current model to the chosen image, in a worker thread."""
        if self.classifier is None:
            self.fail("There is no model yet: press Train, or Load model.")
            return
        try:
            job = self._make_job("predict", None, self.classifier)  # the session checks the model fits
        except AnnotatorError as e:
            self.fail(str(e))
            return
        self._start(job, "Predicting")

    def _start(self, job, desc):
        self._job = job
        self.run(partial(_run_job, job), partial(self._on_done, job), desc=desc, notify=job.notify,
                 on_yielded=partial(self._on_visible, job))

    def save_model(self, path):
        """Save the current classifier to ``path`` (suffix .aamodel added); return the path or None."""
        if self.classifier is None:
            self.fail("There is no trained model to save: press Train first.")
            return None
        try:
            written = _save_model_file(self.classifier, path)
        except (AnnotatorError, OSError) as e:
            self.fail(f"Could not save the model: {e}")
            return None
        self.set_status(f"Saved the model to {written}.")
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
            self.fail(f"Could not load the model: {e}")
            return False
        layer = self.image_layer
        if layer is not None:
            try:
                clf.check_image(layer.data.shape, self.channel_axis)
            except AnnotatorError as e:
                self.fail(f"The model in {Path(path).name} does not fit '{layer.name}': {e}")
                return False
        self.classifier = clf
        self.controls.show_classifier(clf)
        if layer is None:
            self.set_status(f"Loaded {Path(path).name}; open an image and press Predict.")
            return True
        mode = "3d" if clf.feature_set.ndim == 3 else "planes" if self.spatial_mode == "3d" else self.spatial_mode
        set_choice(self.spatial_combo, SPATIAL_CHOICES, mode)
        self.set_status(f"Loaded {Path(path).name}; predicting '{layer.name}'…")
        self.predict()
        return True

    # -- projects (the box does the work: _project.ProjectBox) ------------------------------
    def settings(self) -> dict:
        """The dock's settings as a project stores them."""
        return {"channel_axis": self.channel_axis, "spatial_mode": self.spatial_mode,
                **self.controls.settings(self.spatial_ndim)}

    def apply_settings(self, settings: dict) -> None:
        if "channel_axis" in settings:
            self.set_axes(settings.get("channel_axis"), settings.get("spatial_mode", "2d"))
        self.controls.apply(settings)

    @property
    def history(self):
        """The learning curve of the chosen image (``evaluation.History``)."""
        return self.validation_panel.history

    def save_project(self, path):
        """Save into a project folder and autosave every stroke there; the ProjectSession or None."""
        return self.project_box.save(path)

    def open_project(self, path, restore=None):
        """Open a project (``restore``: the crash-recovery answer; None asks); its session or None."""
        return self.project_box.open(path, restore=restore)

    # -- live mode ---------------------------------------------------------------------
    def _watch_annotations(self, *_):
        self.watch("annotations", self.annotations_layer, "paint", self._on_paint)

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

    # -- results (main thread) ----------------------------------------------------------------
    def _on_visible(self, job, value):
        try:
            self.classifier = value.classifier
            t = time.perf_counter()
            self.outputs.write_region(value.stage, [int(c) for c in value.classifier.classes_], job.session.shape,
                                      job.scale, job.translate, self.annotations_layer)
            self.timings = {"worker_s": value.seconds, "write_s": time.perf_counter() - t}
            classes = ", ".join(str(c) for c in value.classifier.classes_)
            self.set_status(f"Classes {classes}: visible region predicted in {value.seconds:.1f} s; "
                            "the rest of the image follows…")
            self.visible_updated.emit()
        finally:
            job.shown.set()  # the worker goes on with the rest

    def _on_done(self, job, outcome):
        self._job = None
        self.classifier = job.session.classifier = outcome.classifier
        if outcome.stage is not None:
            job.session.probabilities = outcome.stage.probabilities
            t = time.perf_counter()
            self.outputs.write(outcome.stage, [int(c) for c in outcome.classifier.classes_], job.scale,
                               job.translate, self.annotations_layer)
            self.timings.update(full_write_s=time.perf_counter() - t, full_worker_s=outcome.seconds)
        if outcome.validation is not None:
            self.validation_panel.record(outcome.validation)
        clf = outcome.classifier
        classes = ", ".join(str(c) for c in clf.classes_)
        what = (f"Trained on {clf.n_training_pixels_} labelled pixels (classes {classes})"
                if job.kind == "train" else f"Predicted classes {classes}")
        where = "" if outcome.complete else " (visible region only: the image is large and lazy)"
        preview = ""
        if job.kind == "train" and clf.n_estimators < self.trees_spin.value():
            preview = (f" Live preview with {clf.n_estimators} of {self.trees_spin.value()} trees: "
                       "press Train for the full forest.")
        self.set_status(f"{what} in {outcome.seconds:.1f} s{where}. Paint where the prediction "
                        f"is wrong or uncertain and train again.{preview}")
        self.predicted.emit()
        if job.kind == "train":
            self.trained.emit()
