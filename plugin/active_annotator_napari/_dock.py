"""The base every dock is built on: viewer, layer pickers, status, errors, output layers, workers.

A dock is a translator between napari layers and one core call at a time.
:class:`Dock` gives it the parts that are the same everywhere:

* ``self.viewer`` and :meth:`Dock.layer_picker` (a magicgui ``ComboBox`` of the
  viewer's layers of one type, refreshed by the layer list's events, with a
  preferred and an avoided choice);
* ``self.body``: the layout the dock puts its controls in, inside a scroll
  area, so a dock never grows the window past the screen;
* a footer that is always visible: ``self.status`` (one wrapped line),
  ``self.progress_bar`` and ``self.cancel_button``;
* :meth:`Dock.set_status` and :meth:`Dock.fail` (the message in the dock,
  a napari notification, the ``failed`` signal);
* :meth:`Dock.put_layer` (update an output layer in place, or add it);
* :meth:`Dock.run`: one job in a napari worker with progress and cancel. A new
  run replaces the running one (never queued) and a result of a replaced or
  cancelled run is dropped.

Plus the small shared pieces: :data:`CHANNEL_CHOICES`, :func:`guess_axes` and
:func:`image_and_geometry` (an image layer's array, spatial shape, scale and
translate, validated).

No ``from __future__ import annotations``: napari injects the viewer only when
the constructor's annotation is the class itself.
"""

import inspect
import threading
import time
from dataclasses import dataclass, field

import napari
import numpy as np
from magicgui.widgets import ComboBox
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from active_annotator.errors import AnnotatorError, Cancelled, InputError
from active_annotator.features import thick_slices

from ._layers import is_probability_layer
from ._messages import for_gui

# (text shown, channel_axis passed to the core)
CHANNEL_CHOICES = (
    ("none (single channel)", None),
    ("last axis (RGB / channels last)", -1),
    ("first axis (channels first)", 0),
)
# (text shown, spatial mode); "2d" and "planes" both use 2-D filters, "planes" says
# that leading axes are independent planes rather than a mistake
SPATIAL_CHOICES = (
    ("2D image", "2d"),
    ("3D volume (3D filters)", "3d"),
    ("2D per plane (stack of images)", "planes"),
)
# A progress report repaints the dock (and, under Xvfb, the GL canvas): at most this often
REPORT_INTERVAL_S = 0.2


def choice_combo(choices, tooltip="") -> QComboBox:
    """A QComboBox of ``(text, value)`` pairs (read the value with :func:`choice_value`)."""
    combo = QComboBox()
    for text, _ in choices:
        combo.addItem(text)
    combo.setToolTip(tooltip)
    return combo


def choice_value(combo, choices):
    """The value of the chosen ``(text, value)`` pair."""
    return choices[max(0, combo.currentIndex())][1]


def set_choice(combo, choices, value) -> None:
    """Choose the pair whose value is ``value``."""
    combo.setCurrentIndex([v for _, v in choices].index(value))


def guess_axes(layer):
    """A first guess of ``(channel_axis, spatial mode)`` from an image layer; the user can change it.

    Spatial mode is ``"2d"``, ``"3d"`` or ``"planes"`` (2-D filters plane by plane).
    A first axis of at most 5 that is shorter than the others is taken for channels;
    a volume whose z spacing is at least 3x the in-plane one (:func:`features.thick_slices`)
    is filtered slice by slice.
    """
    if layer.rgb:
        return -1, ("2d" if layer.data.ndim == 3 else "planes")
    shape = layer.data.shape
    ndim = len(shape)
    if ndim <= 2:
        return None, "2d"
    few_channels = shape[0] <= 5 and shape[0] < min(shape[1:])
    # a volume of thick slices (layer.scale, e.g. 6.5 x 0.8 x 0.8 mm) gets per-slice filters
    volume = "planes" if thick_slices(tuple(layer.scale)[-3:]) else "3d"
    if ndim == 3:
        return (0, "2d") if few_channels else (None, volume)
    if ndim == 4:
        return (0, volume) if few_channels else (None, volume)
    return (0, "planes") if few_channels else (None, "planes")


def image_and_geometry(layer, channel_axis):
    """``(data, spatial shape, scale, translate)`` of an image layer with ``channel_axis`` taken out.

    Raises :class:`InputError` (in the words of the docks' controls) for no
    layer, a multiscale layer, an RGB layer without the last channel axis, or
    an image with no axis left after the channels. ``data`` is the layer's own
    array (numpy, zarr or dask: not copied).
    """
    if layer is None:
        raise InputError("There is no image layer: open an image (or File > Open Sample) first.")
    if layer.multiscale:
        raise InputError(f"'{layer.name}' is a multiscale image; open its full-resolution level "
                         "as a plain image.")
    if layer.rgb and channel_axis != -1:
        raise InputError(f"'{layer.name}' is an RGB image: choose channel axis "
                         "'last axis (RGB / channels last)'.")
    data = layer.data
    shape, scale, translate = list(data.shape), list(layer.scale), list(layer.translate)
    if channel_axis is not None:
        if len(shape) < 2:
            raise InputError(f"'{layer.name}' has shape {tuple(shape)}: no axis left after the channels.")
        del shape[channel_axis]
        if not layer.rgb:  # napari already leaves the RGB axis out of scale/translate
            del scale[channel_axis]
            del translate[channel_axis]
    return data, tuple(shape), tuple(scale), tuple(translate)


def check_spatial_mode(layer, shape, mode) -> None:
    """InputError naming the fix when ``shape`` (an image layer's non-channel shape) does not
    fit the spatial mode (``SPATIAL_CHOICES``): a 2-D image has 2 axes, the others at least 3."""
    n = len(shape)
    if mode == "2d" and n != 2:
        raise InputError(
            f"'{layer.name}' has {n} non-channel axes (shape {tuple(layer.data.shape)}). Choose "
            "'3D volume' or '2D per plane' under Spatial dims, or set the channel axis.")
    if mode in ("3d", "planes") and n < 3:
        raise InputError(
            f"'{layer.name}' has only {n} non-channel axes (shape {tuple(layer.data.shape)}): "
            "choose '2D image' under Spatial dims.")


class LayerPicker:
    """A magicgui ``ComboBox`` of the viewer's layers of one type, kept in step with the layer list.

    ``accept(layer)`` filters further; ``prefer`` names are chosen first when the
    current choice disappears (or there was none); ``avoid`` names are never
    preselected (a user can still pick them). ``none_text`` adds a first
    "no layer" entry whose value is None. ``self.value`` is the chosen layer;
    ``self.native`` the QComboBox.
    """

    def __init__(self, viewer, kind, *, accept=None, prefer=(), avoid=(), none_text=None, tooltip=""):
        self.viewer, self.kind = viewer, kind
        self._accept = accept or (lambda layer: True)
        self.prefer, self.none_text = tuple(prefer), none_text
        self._avoid = avoid if callable(avoid) else (lambda layer, names=tuple(avoid): layer.name in names)
        self.combo = ComboBox(choices=self._choices)
        # magicgui re-reads the choices when the widget gets a parent, choosing the first one:
        # re-read them here instead, with the preferences
        self.combo.native_parent_changed.disconnect(self.combo.reset_choices)
        self.combo.native_parent_changed.connect(self.refresh)
        self.native = self.combo.native
        self.native.setToolTip(tooltip)
        self._listeners = []
        self._notified = None  # the layer the listeners last heard of
        self._chosen = False  # magicgui fills in its first choice: not one a person made
        self.refresh()
        self._chosen = True

    def _choices(self, _widget=None):
        layers = [(ly.name, ly) for ly in self.viewer.layers
                  if isinstance(ly, self.kind) and self._accept(ly)]
        return ([(self.none_text, None)] if self.none_text is not None else []) + layers

    def layers(self) -> list:
        return [v for _, v in self._choices() if v is not None]

    def default(self):
        """The layer a fresh picker chooses: a preferred name, else the first one not avoided."""
        layers = self.layers()
        by_name = {ly.name: ly for ly in layers}
        for name in self.prefer:
            if name in by_name:
                return by_name[name]
        fallback = [ly for ly in layers if not self._avoid(ly)]
        return fallback[0] if fallback else None

    def on_change(self, callback) -> None:
        """Call ``callback()`` once each time the chosen layer changes: by the person, or
        because the layer list changed (magicgui refills the combo without a text signal)."""
        if not self._listeners:
            self.native.currentTextChanged.connect(self._notify)
        self._listeners.append(callback)

    def _notify(self, *_):
        if self.value is self._notified:
            return  # the same layer (a refill, a rename): nothing changed for the listeners
        self._notified = self.value
        for callback in self._listeners:
            callback()

    def refresh(self, *_):
        """Re-read the layer list; keep the current layer when it is still there."""
        current = self.value
        was_there = self._chosen and current is not None and current in self.layers()
        try:
            self.combo.reset_choices()
        except RuntimeError:  # its Qt widget was deleted; the viewer's event outlived it
            return
        if was_there:
            self.combo.value = current
        elif self.combo.choices:
            default = self.default()
            if default is None and self.none_text is None:
                self.native.setCurrentIndex(-1)  # nothing fits: no preselection
            else:
                self.combo.value = default
        self._notify()

    @property
    def value(self):
        """The chosen layer, or None."""
        if not self.combo.choices or self.native.currentIndex() < 0:
            return None
        return self.combo.value

    @value.setter
    def value(self, layer):
        self.combo.value = layer

    def select(self, name: str) -> None:
        self.native.setCurrentText(name)


class _FullHeightScroll(QScrollArea):
    """A scroll area that asks for its content's whole height when there is room
    (QScrollArea caps its size hint) and scrolls when there is not."""

    MIN_HEIGHT = 60  # four docks stacked on an 800-px screen still fit

    def __init__(self):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def sizeHint(self):
        hint = super().sizeHint()
        if self.widget() is not None:
            hint.setHeight(self.widget().sizeHint().height() + 2 * self.frameWidth())
            hint.setWidth(self.widget().sizeHint().width() + self.verticalScrollBar().sizeHint().width())
        return hint

    def minimumSizeHint(self):
        hint = super().minimumSizeHint()
        hint.setHeight(min(hint.height(), self.MIN_HEIGHT))
        if self.widget() is not None:
            hint.setWidth(self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width())
        return hint


class _ViewportLayout(QVBoxLayout):
    """A scroll area's page layout sized to the viewport (and its minimum), not to its
    content's preferred height: QScrollArea sizes a page whose layout has height-for-width
    (word-wrapped labels) to its preferred height, which hides what is below a tall tab."""

    def hasHeightForWidth(self):
        return False


@dataclass(eq=False)
class Task:
    """What a job running in a worker gets: a stop flag, progress and reports to the dock.

    ``should_stop()`` is what the core's ``should_stop=`` arguments take;
    ``progress(done, total, text)`` moves the dock's progress bar;
    ``report(info)`` hands ``info`` to the run's ``on_report`` on the main thread.
    Both are dropped once the run is replaced or cancelled.
    """

    stop: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    worker: object = None
    notify: bool = True  # an error pops up a notification (Live mode's retraining: status line only)
    interval: float = REPORT_INTERVAL_S  # seconds between progress reports
    _runner: object = None
    # the first report too waits ``interval``: a job that ends sooner never repaints midway
    _last: float = field(default_factory=time.perf_counter)

    def should_stop(self) -> bool:
        return self.stop.is_set()

    def progress(self, done, total, text=""):
        now = time.perf_counter()
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        self._send(("progress", (int(done), int(total), text)))

    def report(self, info):
        self._send(("report", info))

    def _send(self, message):
        if self.stop.is_set():
            return  # replaced, cancelled or its dock closed: nobody is listening
        try:
            # looked up at each call: on a deleted runner this raises, a stored emit would crash
            self._runner._delivered.emit(self, message)
        except RuntimeError:  # the runner (its dock or panel) was deleted
            pass


class Runner(QObject):
    """One job at a time in a napari worker, for a dock or a panel (``view``).

    :meth:`run` replaces the running job (never queued) and drops results of replaced
    or cancelled runs. ``view`` shows the state: ``show_running(desc)``,
    ``show_progress(done, total, text)``, ``show_done()``, ``show_idle()``,
    ``set_status(text)``, ``fail(message, notify=)`` and a ``cancelled`` signal.
    A closed ``parent`` stops its jobs.
    """

    _delivered = Signal(object, object)  # (task, message) from a worker thread

    def __init__(self, parent, view, interval=REPORT_INTERVAL_S):
        super().__init__(parent)
        self.view, self.interval = view, interval
        self._task = None  # the latest run; older ones are stale
        self._workers = set()
        self._live = set()  # tasks whose worker has not finished (also replaced or cancelled ones)
        self._report_handler = None
        self._delivered.connect(self._on_delivered)
        # a closed dock must not leave work running in the background
        parent.destroyed.connect(lambda *_, live=self._live: [t.stop.set() for t in list(live)])

    def run(self, job, on_done, *, desc, on_report=None, on_error=None, on_yielded=None, notify=True) -> Task:
        """Run ``job(task)`` in a napari worker; on the main thread call ``on_done(result)``.

        ``job`` may be a generator function: a yielded ``(done, total)`` moves the
        progress bar, anything else goes to ``on_yielded``; cancel stops it at its
        next yield. A running job is stopped (its ``task.should_stop()`` turns
        true) and its result dropped: the newest request wins, none is queued.
        An :class:`AnnotatorError` raised by the job is shown with ``view.fail``
        (or given to ``on_error``; ``notify=False``: in the status line only, no pop-up);
        :class:`Cancelled` ends quietly.
        """
        self._stop_task()
        task = Task(_runner=self, notify=notify, interval=self.interval)
        self._task, self._report_handler = task, on_report
        worker = create_worker(job, task, _progress={"total": 0, "desc": desc}, _start_thread=False,
                               _connect={"errored": lambda exc, t=task: self._on_errored(t, exc, on_error)})
        task.worker = worker
        worker.returned.connect(lambda result, t=task: self._on_returned(t, result, on_done))
        if inspect.isgeneratorfunction(job):
            worker.yielded.connect(lambda value, t=task: self._on_yielded(t, value, on_yielded))
            # napari's activity dock can stop a generator worker too
            worker.aborted.connect(lambda t=task: self._on_aborted(t))
        worker.finished.connect(lambda w=worker, t=task: (self._workers.discard(w), self._live.discard(t)))
        self._workers.add(worker)
        self._live.add(task)
        self.view.show_running(desc)
        worker.start()
        return task

    @property
    def busy(self) -> bool:
        return bool(self._workers)

    @property
    def running(self) -> bool:
        return self._task is not None

    def cancel(self, *_):
        if self._task is None:
            return
        self._task.cancelled = True
        self._stop_task()
        self._task = None
        self.view.show_idle()
        self.view.set_status("Cancelled: nothing changed.")
        self.view.cancelled.emit()

    def _stop_task(self):
        task = self._task
        if task is not None:
            task.stop.set()
            if hasattr(task.worker, "quit"):
                task.worker.quit()

    def _current(self, task) -> bool:
        return task is self._task and not task.stop.is_set()

    def _on_delivered(self, task, message):
        if not self._current(task):
            return
        kind, value = message
        if kind == "progress":
            self.view.show_progress(*value)
        elif self._report_handler is not None:
            self._report_handler(value)

    def _on_yielded(self, task, value, on_yielded):
        if not self._current(task):
            return
        if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
            self.view.show_progress(int(value[0]), int(value[1]), "")
        elif on_yielded is not None:
            on_yielded(value)

    def _on_returned(self, task, result, on_done):
        if not self._current(task):
            return  # replaced or cancelled: drop it
        self._task = None
        self.view.show_done()
        on_done(result)

    def _on_aborted(self, task):
        if task is self._task:
            self.cancel()

    def _on_errored(self, task, exc, on_error):
        if not self._current(task):
            return
        self._task = None
        self.view.show_idle()
        if isinstance(exc, Cancelled):
            self.view.set_status("Cancelled: nothing changed.")
            self.view.cancelled.emit()
        elif on_error is not None:
            on_error(exc)
        elif isinstance(exc, AnnotatorError):
            self.view.fail(str(exc), notify=task.notify)
        else:  # a bug: say what it was; the type helps a bug report
            self.view.fail(f"{type(exc).__name__}: {exc}")


class Dock(QWidget):
    """Base of the plugin's docks: see the module docstring for what it owns.

    Signals
    -------
    failed(str) : emitted with the message shown when a request fails.
    cancelled : emitted when the user cancelled a run (its result is dropped).
    """

    failed = Signal(str)
    cancelled = Signal()
    # a dock whose runs are latency-critical reports less often and shows no animated busy bar
    report_interval_s = REPORT_INTERVAL_S
    busy_animation = True
    # True: the body is as tall as its content (scrolls when the dock is shorter); False: it
    # fills the dock and its own scrolling parts (tabs) shrink, down to their minimum
    page_follows_content = True

    def __init__(self, napari_viewer, idle_text=""):
        super().__init__()
        self.viewer = napari_viewer
        self.runner = Runner(self, self, interval=self.report_interval_s)
        self._pickers = []
        self._watched = {}  # key -> (layer, event name, callback): see watch()

        outer = QVBoxLayout(self)
        outer.setContentsMargins(2, 2, 2, 2)
        outer.setSpacing(2)
        self.scroll = _FullHeightScroll()
        page = QWidget()
        self.body = QVBoxLayout(page) if self.page_follows_content else _ViewportLayout(page)
        self.body.setContentsMargins(4, 4, 4, 4)
        self.scroll.setWidget(page)
        outer.addWidget(self.scroll, 1)

        self.status = QLabel(idle_text)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        # at least two lines, more when there is room; the whole text is also the tooltip
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing())
        outer.addWidget(self.status)
        row = QHBoxLayout()
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running step; its result is dropped and the layers stay as they were.")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.progress_bar, 1)
        row.addWidget(self.cancel_button)
        outer.addLayout(row)
        self.show_idle()

        layers = self.viewer.layers
        for emitter in (layers.events.inserted, layers.events.removed, layers.events.moved):
            emitter.connect(self._dock_layer_list)
        for layer in layers:
            layer.events.name.connect(self.refresh_pickers)
        self.destroyed.connect(_unhook(layers, self._dock_layer_list, self.refresh_pickers))

    # -- layer pickers ---------------------------------------------------------------
    def layer_picker(self, kind, **kwargs) -> LayerPicker:
        """A :class:`LayerPicker` of layers of ``kind`` (e.g. ``napari.layers.Image``), kept current."""
        picker = LayerPicker(self.viewer, kind, **kwargs)
        self._pickers.append(picker)
        return picker

    def _dock_layer_list(self, event=None):
        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self.refresh_pickers)
        self.refresh_pickers()

    def refresh_pickers(self, *_):
        for picker in self._pickers:
            picker.refresh()

    def add_data_pickers(self, form, *, skip=(), image_tip, annotations_tip, new_button=None, **annotations):
        """Rows "Image" and "Annotations" in ``form``: ``self.image_picker`` (image layers, not
        ``skip`` nor probability layers) and ``self.annotations_picker`` (Labels, "annotations"
        preferred; ``annotations``: more :class:`LayerPicker` options), their QComboBoxes
        ``image_combo`` and ``annotations_combo``; ``new_button`` beside the annotations."""
        self.image_picker = self.layer_picker(
            napari.layers.Image, accept=lambda ly: ly.name not in skip and not is_probability_layer(ly),
            tooltip=image_tip)
        self.image_combo = self.image_picker.native
        form.addRow("Image", self.image_combo)
        self.annotations_picker = self.layer_picker(
            napari.layers.Labels, accept=lambda ly: ly.name not in skip, prefer=("annotations",),
            tooltip=annotations_tip, **annotations)
        self.annotations_combo = self.annotations_picker.native
        row = QHBoxLayout()
        row.addWidget(self.annotations_combo, 1)
        if new_button is not None:
            row.addWidget(new_button)
        form.addRow("Annotations", row)

    @property
    def image_layer(self):
        """The chosen image layer (of :meth:`add_data_pickers`), or None."""
        return self.image_picker.value

    @property
    def annotations_layer(self):
        """The chosen annotations layer (of :meth:`add_data_pickers`), or None."""
        return self.annotations_picker.value

    def watch(self, key, layer, event, callback) -> None:
        """Connect ``callback`` to ``layer.events.<event>``; the previous layer watched under
        ``key`` is disconnected (one watched layer per key)."""
        old = self._watched.get(key)
        if old is not None and old[0] is layer:
            return
        if old is not None:
            try:
                getattr(old[0].events, old[1]).disconnect(old[2])
            except (RuntimeError, ValueError, TypeError):  # the layer was deleted
                pass
        self._watched.pop(key, None)
        if layer is not None:
            getattr(layer.events, event).connect(callback)
            self._watched[key] = (layer, event, callback)

    @staticmethod
    def button(text, slot, tip) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def own_layer(self, name, kind):
        """The layer called ``name`` if it is of type ``kind``, else None."""
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], kind):
            return self.viewer.layers[name]
        return None

    def ask_path(self, caption, name_filter, save_as=None):
        """A file dialog: the path to save to (``save_as``: the proposed name) or to open; None if cancelled."""
        if save_as is not None:
            path, _ = QFileDialog.getSaveFileName(self, caption, save_as, name_filter)
        else:
            path, _ = QFileDialog.getOpenFileName(self, caption, "", name_filter)
        return path or None

    @staticmethod
    def check_box(text, tip, checked=False, toggled=None) -> QCheckBox:
        box = QCheckBox(text)
        box.setChecked(checked)
        box.setToolTip(tip)
        if toggled is not None:
            box.toggled.connect(toggled)
        return box

    def path_button(self, text, action, tip, caption, name_filter, save_as=None) -> QPushButton:
        """A button that asks for a path (see :meth:`ask_path`) and calls ``action(path)``."""
        def clicked(*_):
            path = self.ask_path(caption, name_filter, save_as=save_as)
            if path:
                action(path)

        return self.button(text, clicked, tip)

    # -- messages ------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)

    def fail(self, message: str, notify: bool = True) -> None:
        """Show ``message`` (the core's text with GUI remedies) in the dock, notify, emit ``failed``."""
        message = for_gui(str(message))
        self.set_status(f"Error: {message}")
        if notify:
            show_error(message)
        self.failed.emit(message)

    # -- output layers -----------------------------------------------------------------
    def put_layer(self, name, kind, data, scale=None, translate=None, **kwargs):
        """Update the output layer ``name`` in place, or add it (``kind``: "labels", "image", "shapes")."""
        types = {"labels": napari.layers.Labels, "image": napari.layers.Image, "shapes": napari.layers.Shapes}
        layer = self.own_layer(name, types[kind])
        geometry = {k: v for k, v in (("scale", scale), ("translate", translate)) if v is not None}
        if layer is not None and kind != "shapes" and layer.data.ndim == np.ndim(data):
            layer.data = data
            for k, v in geometry.items():
                setattr(layer, k, v)
            if "metadata" in kwargs:
                layer.metadata.update(kwargs["metadata"])
            return layer
        if name in self.viewer.layers:  # wrong type or dimensionality: replace it
            self.viewer.layers.remove(name)
        add = {"labels": self.viewer.add_labels, "image": self.viewer.add_image,
               "shapes": self.viewer.add_shapes}[kind]
        return add(data, name=name, **geometry, **kwargs)

    # -- workers (the runner does the work: Runner) ---------------------------------------
    def run(self, job, on_done, *, desc, on_report=None, on_error=None, on_yielded=None, notify=True) -> Task:
        """Run ``job(task)`` in a napari worker, ``on_done(result)`` on the main thread: see :meth:`Runner.run`."""
        return self.runner.run(job, on_done, desc=desc, on_report=on_report, on_error=on_error,
                               on_yielded=on_yielded, notify=notify)

    @property
    def busy(self) -> bool:
        """True while any worker (also a replaced or cancelled one winding down) runs."""
        return self.runner.busy

    @property
    def running(self) -> bool:
        """True while the latest run has not delivered (stale ones do not count)."""
        return self.runner.running

    def cancel(self, *_):
        """Stop the running job; its result is dropped and ``cancelled`` emitted."""
        self.runner.cancel()

    # -- what the runner shows ----------------------------------------------------------
    def show_running(self, desc):
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0 if self.busy_animation else 1)  # busy until the first report
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat(f"{desc}…")
        self.set_status(f"{desc}…")

    def show_progress(self, done, total, text):
        self.progress_bar.setRange(0, max(1, total))
        self.progress_bar.setValue(min(done, total))
        self.progress_bar.setFormat(text or f"{done}/{total}")

    def show_done(self):
        self.cancel_button.setEnabled(False)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        self.progress_bar.setFormat("done")

    def show_idle(self):
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("idle")
        self.cancel_button.setEnabled(False)


def _unhook(layers, on_list, on_name):
    """A callable that disconnects a closed dock from the layer list (holds no Qt object)."""

    def disconnect(*_):
        for emitter in (layers.events.inserted, layers.events.removed, layers.events.moved):
            emitter.disconnect(on_list)
        for layer in layers:
            layer.events.name.disconnect(on_name)

    return disconnect
