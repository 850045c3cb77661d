"""Projects in napari: save, open, autosave after every stroke, restore after a crash.

The core (:mod:`active_annotator.project`) does all file work; this module
connects a Labels layer's edit events to it. After each finished stroke (and
after undo/redo) a debounced timer compares the layer with what is already
on disk, and a ``thread_worker`` writes only the changed region; zarr
replaces each chunk atomically, so a crash loses at most the strokes made
since the last autosave.
"""

from pathlib import Path

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, QTimer, Signal

from active_annotator.errors import AnnotatorError
from active_annotator.project import Project, safe_name

AUTOSAVE_DELAY_MS = 1000


def _changed_region(a: np.ndarray, b: np.ndarray):
    """Bounding box (tuple of slices) of the elements where ``a != b``, or None."""
    diff = a != b
    if not diff.any():
        return None
    region = []
    for axis in range(diff.ndim):
        other = tuple(i for i in range(diff.ndim) if i != axis)
        hit = np.flatnonzero(diff.any(axis=other) if other else diff)
        region.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(region)


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
        region = _changed_region(data, self._on_disk)
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
