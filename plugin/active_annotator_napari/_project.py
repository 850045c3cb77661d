"""Projects in napari: save, open, autosave after every stroke, restore after a crash.

:class:`ProjectBox` is the Pixel classifier dock's "Project" group (buttons and
status); :func:`save_project` / :func:`open_project` turn layers into a
project and back.

The core (:mod:`active_annotator.project`) does all file work; this module
connects a Labels layer's edit events to it. After each finished stroke (and
after undo/redo) a debounced timer compares the layer with what is already
on disk, and a ``thread_worker`` writes only the changed region; zarr
replaces each chunk atomically, so a crash loses at most the strokes made
since the last autosave.
"""

import time
from pathlib import Path

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import (
    QApplication,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
)

from active_annotator.errors import AnnotatorError
from active_annotator.project import Project, changed_region, safe_name

from ._layers import cnn_dock_for

AUTOSAVE_DELAY_MS = 1000


def _write_block(project: Project, name: str, region, block, shape, dtype):
    store = project.autosave_store(name)
    if not store.exists():
        store.create(shape, dtype)
    store.write_block(region, block)
    return region


class ProjectSession(QObject):
    """Keeps one image's annotations layer saved into a project.

    Signals
    -------
    autosaved(str): the image name, after a background write finished.
    autosave_failed(str): the error message; the labels in memory are untouched.
    """

    autosaved = Signal(str)
    autosave_failed = Signal(str)

    def __init__(self, project: Project, name: str, labels_layer, delay_ms: int = AUTOSAVE_DELAY_MS,
                 parent=None):
        super().__init__(parent)
        self.project = project
        self.name = safe_name(name)
        self.layer = labels_layer
        data = np.asarray(labels_layer.data)
        stored = project.load_annotations(self.name, prefer_autosave=True)
        # what is on disk now: the next autosave writes only what differs from it
        self._on_disk = stored if stored is not None and stored.shape == data.shape else np.zeros_like(data)
        self._worker = None
        self._again = False
        self._failed_once = False
        self._timer = QTimer(self)  # restarted by every edit: waits for a pause
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.flush)
        self._max_wait = QTimer(self)  # not restarted: someone painting non-stop is saved too
        self._max_wait.setSingleShot(True)
        self._max_wait.setInterval(3 * delay_ms)
        self._max_wait.timeout.connect(self.flush)
        for ev in (labels_layer.events.paint, labels_layer.events.data, labels_layer.events.set_data):
            ev.connect(self._on_edit)
        project.begin_session()

    def _on_edit(self, event=None):
        self._timer.start()
        if not self._max_wait.isActive():
            self._max_wait.start()

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def flush(self):
        """Start a background write of whatever changed since the last one."""
        self._timer.stop()
        self._max_wait.stop()
        if self._worker is not None:  # one write at a time; come back when it is done
            self._again = True
            return
        data = np.asarray(self.layer.data)
        if data.shape != self._on_disk.shape:
            self.autosave_failed.emit("The annotations layer changed shape; save the project again.")
            return
        region = changed_region(data, self._on_disk)
        if region is None:
            return
        block = np.array(data[region], copy=True)  # painting goes on while we write
        previous = self._on_disk[region].copy()
        self._on_disk[region] = block
        worker = create_worker(_write_block, self.project, self.name, region, block,
                               data.shape, data.dtype)
        self._worker = worker

        def done(_region):
            self._worker = None
            self._failed_once = False
            self.autosaved.emit(self.name)
            if self._again:
                self._again = False
                self.flush()

        def failed(exc):
            self._worker = None
            self._on_disk[region] = previous  # not on disk after all: retry next time
            msg = str(exc) if isinstance(exc, AnnotatorError) else f"{type(exc).__name__}: {exc}"
            if not self._failed_once:  # one notification, not one per stroke
                show_error(msg)
            self._failed_once = True
            self.autosave_failed.emit(msg)

        worker.returned.connect(done)
        worker.errored.connect(failed)
        worker.start()

    def save(self):
        """Explicit save (synchronous): annotations, autosave copy and project.json."""
        data = np.asarray(self.layer.data)
        self.project.save_annotations(self.name, data)
        self._on_disk = np.array(data, copy=True)
        self.project.save()

    def close(self):
        """Write everything and mark the session as closed cleanly."""
        self._timer.stop()
        self._max_wait.stop()
        for ev in (self.layer.events.paint, self.layer.events.data, self.layer.events.set_data):
            ev.disconnect(self._on_edit)
        self.save()
        self.project.end_session()


def save_project(path, image_layer, labels_layer, settings=None, classes=None,
                 channel_axis=None, spatial_ndim=2, delay_ms=AUTOSAVE_DELAY_MS,
                 history=None, suggestions=None) -> ProjectSession:
    """Create (or overwrite) a project from two layers and start autosaving into it."""
    path = Path(path)
    project = Project.open(path) if (path / "project.json").exists() else Project.create(path)
    source = getattr(image_layer, "source", None)
    src_path = getattr(source, "path", None)
    project.add_image(image_layer.name, image=np.asarray(image_layer.data)
                      if np.asarray(image_layer.data).nbytes <= Project.EMBED_LIMIT else None,
                      source_path=src_path, channel_axis=channel_axis, spatial_ndim=spatial_ndim)
    project.settings = dict(settings or {})
    project.classes = {str(k): str(v) for k, v in (classes or {}).items()}
    project.history = list((history or {}).get("rounds", []))
    project.suggestions = dict(suggestions or {})
    session = ProjectSession(project, image_layer.name, labels_layer, delay_ms=delay_ms)
    session.save()
    return session


def open_project(viewer, path, restore=None, delay_ms=AUTOSAVE_DELAY_MS) -> list:
    """Open a project's images and annotations as layers; return their sessions.

    If the last session crashed and autosaved labels differ from the saved
    ones, ``restore`` decides (None: ask with a dialog).
    """
    project = Project.open(path)
    project.check_links()  # before any layer is added: the session will write here
    pending = project.unsaved_autosaves() if project.crashed() else []
    if pending and restore is None:
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            None, "Restore annotations?",
            f"The last session of {project.path.name} did not close cleanly. Autosaved "
            f"annotations newer than the last save exist for: {', '.join(pending)}.\n\n"
            "Restore them?")
        restore = answer == QMessageBox.StandardButton.Yes
    sessions = []
    for ref in project.images:
        image = project.load_image(ref.name)
        viewer.add_image(image, name=ref.name, rgb=ref.channel_axis == -1 and image.shape[-1] in (3, 4))
        if ref.name in pending and restore:
            project.check_annotation_shape(ref.name, project.autosave_store(ref.name), image.shape)
            labels = project.restore_autosave(ref.name)
        else:
            labels = project.load_annotations(ref.name, image_shape=image.shape)
        if labels is None:
            shape = tuple(n for i, n in enumerate(image.shape)
                          if ref.channel_axis is None or i != ref.channel_axis % image.ndim)
            labels = np.zeros(shape, np.uint8)
        name = "annotations" if len(project.images) == 1 else f"annotations [{ref.name}]"
        layer = viewer.add_labels(labels, name=name)
        sessions.append(ProjectSession(project, ref.name, layer, delay_ms=delay_ms))
    if pending and restore:
        show_info(f"Restored autosaved annotations of {', '.join(pending)}.")
    external = project.external_images()
    if external:
        show_info("Read from outside the project folder (not embedded; moving it breaks the project): "
                  + "; ".join(f"{name}: {src}" for name, src in external))
    return sessions


PIXEL_MODEL = "pixel.aamodel"  # file names inside a project's models/ folder
CNN_MODEL = "cnn.aacnn"


class ProjectBox(QGroupBox):
    """The Pixel classifier dock's "Project" group: save, open, autosave status.

    A project holds the image, its annotations (autosaved), the Pixel dock's
    settings, learning curve and suggestions, the forest of its session and
    the CNN dock's network. ``dock`` is the Pixel classifier dock; this box
    reads it and restores it, and holds the :class:`ProjectSession`.
    """

    def __init__(self, dock):
        super().__init__("Project")
        self.dock = dock
        self.session = None
        grid = QGridLayout(self)
        self.save_button = QPushButton("Save project…")
        self.save_button.setToolTip(
            "Save image, annotations, model and settings in a .aaproject folder.\n"
            "From then on every stroke is autosaved there within a few seconds.")
        self.save_button.clicked.connect(self._save_dialog)
        self.open_button = QPushButton("Open project…")
        self.open_button.setToolTip("Open a .aaproject folder; after a crash it offers to restore autosaved strokes.")
        self.open_button.clicked.connect(self._open_dialog)
        self.status = QLabel("Not saved in a project: strokes are not autosaved.")
        self.status.setWordWrap(True)
        grid.addWidget(self.save_button, 0, 0)
        grid.addWidget(self.open_button, 0, 1)
        grid.addWidget(self.status, 1, 0, 1, 2)

    def save(self, path):
        """Save into a project folder and autosave every stroke there from now on; the session or None."""
        dock = self.dock
        layer = dock.image_layer
        if layer is None:
            dock.fail("Open an image before saving a project.")
            return None
        labels_layer = dock.annotations_layer or dock.new_annotations()
        if labels_layer is None:
            return None
        try:
            if self.session is not None:
                self.session.close()
            session = save_project(path, layer, labels_layer, settings=dock.settings(),
                                   channel_axis=dock.channel_axis,
                                   spatial_ndim=3 if dock.spatial_mode == "3d" else 2,
                                   history=dock.history.to_dict(), suggestions=dock.suggestions_panel.state())
            saved = []
            if dock.classifier is not None:
                dock.classifier.save(session.project.model_path(PIXEL_MODEL))
                saved.append("forest")
            cnn_dock = cnn_dock_for(dock.viewer)
            if cnn_dock is not None and cnn_dock.cnn is not None:
                cnn_dock.cnn.save(session.project.model_path(CNN_MODEL))
                saved.append("CNN")
        except (AnnotatorError, OSError) as e:
            dock.fail(f"Could not save the project: {e}")
            return None
        self._attach(session)
        models = f" with the {' and '.join(saved)}" if saved else ""
        self.status.setText(f"Project {session.project.path.name}: saved{models}; strokes autosave.")
        return session

    def open(self, path, restore=None):
        """Open a project's images and annotations as layers, restore the dock, resume autosaving.

        ``restore`` answers the crash-recovery question (None: ask in a dialog).
        """
        dock = self.dock
        try:
            sessions = open_project(dock.viewer, path, restore=restore)
        except (AnnotatorError, OSError) as e:
            dock.fail(f"Could not open the project: {e}")
            return None
        if not sessions:
            dock.fail("The project has no images.")
            return None
        session, project = sessions[0], sessions[0].project
        for extra in sessions[1:]:
            extra.setParent(self)  # keep them alive: they autosave their layers
        dock.image_picker.select(session.name)
        dock.annotations_picker.select(session.layer.name)
        dock.apply_settings(project.settings)
        self._attach(session)
        if project.history:
            dock.validation_panel.restore(project.history, session.name)
        dock.suggestions_panel.restore(project.suggestions)
        model = project.model_path(PIXEL_MODEL)
        if model.exists():
            dock.load_model(model)
        note = ""
        cnn_path = project.model_path(CNN_MODEL)
        if cnn_path.exists():
            cnn_dock = cnn_dock_for(dock.viewer)
            if cnn_dock is not None:
                cnn_dock.load_cnn(cnn_path)
                note = " The CNN dock loaded the project's CNN."
            else:
                note = f" The project holds a CNN: open Plugins > CNN fine-tuning and press Load CNN… ({cnn_path})."
        self.status.setText(f"Project {project.path.name}: opened; strokes autosave.{note}")
        return session

    def _attach(self, session):
        self.session = session
        session.setParent(self)
        session.autosaved.connect(lambda name: self.status.setText(
            f"Project {session.project.path.name}: autosaved at {time.strftime('%H:%M:%S')}."))
        session.autosave_failed.connect(lambda msg: self.status.setText(f"Autosave failed: {msg}"))
        app = QApplication.instance()
        if app is not None:  # a clean exit removes the crash marker
            app.aboutToQuit.connect(session.close)

    def _save_dialog(self):
        path = QFileDialog.getExistingDirectory(self, "Folder for the new project")
        if path:
            layer = self.dock.image_layer
            self.save(Path(path) / (layer.name if layer is not None else "project"))

    def _open_dialog(self):
        path = QFileDialog.getExistingDirectory(self, "Open project (.aaproject folder)")
        if path:
            self.open(path)
