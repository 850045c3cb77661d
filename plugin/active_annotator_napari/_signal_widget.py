"""The "Signal classifier" dock: label spans of a seismogram, classify every sample, walk the suggestions.

A docked waveform view (matplotlib) draws each channel as a line, stacked,
time in seconds, with the labels as coloured spans behind the traces, the
prediction as a coloured band under them and the per-sample uncertainty as a
curve below. Long records stay smooth: the view draws the min/max envelope
(:class:`._drawing.MinMaxPyramid`) of the samples on screen, a few thousand
vertices whatever the zoom. On napari's canvas the reader draws the same
waveforms as path shapes.

Mouse in the waveform view: left-drag marks a span with the chosen class
(class 0 erases), wheel zooms time around the cursor, right-drag pans. The
labels also live in a napari Labels layer (``"<record> labels"``), one row of
the strip on the canvas, where napari's brush paints them too.

Training (:class:`active_annotator.signals.SignalClassifier`) and ranking
(:func:`active_annotator.signals.suggest_windows`) run in the dock base's
worker; Next moves the view (and the napari camera) to the next suggested window.

No ``from __future__ import annotations``: napari injects the viewer only when
the constructor's annotation is the class itself.
"""

import time

import napari
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.widgets import SpanSelector
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from active_annotator.errors import InputError
from active_annotator.sampling import DEFAULT_STRATEGY, STRATEGIES
from active_annotator.signals import (
    SignalClassifier,
    SignalFeatures,
    SignalRecord,
    default_bands,
    invariant_signal_features,
    suggest_windows,
)
from active_annotator.uncertainty import entropy

from ._dock import Dock
from ._drawing import MinMaxPyramid
from ._explain_panel import Explained, ExplainPanel
from ._messages import for_signal_gui
from ._signal_reader import (
    CLASS_NAMES,
    LABELS_SUFFIX,
    PREDICTION_SUFFIX,
    UNCERTAINTY_SUFFIX,
    layer_data,
    multiscale_levels,
    row_geometry,
    signal_data,
)

RANK_FONT_SIZE = 10
RANK_LABEL_WIDTH_PX = 26  # a two-digit rank at RANK_FONT_SIZE with its box, plus a gap


def _colors(layer, values):
    """RGBA of class values as napari's Labels layer draws them."""
    values = np.asarray(values, dtype=np.int64)
    if layer is None:
        import matplotlib

        cmap = matplotlib.colormaps["tab10"]
        return np.array([cmap((v - 1) % 10) if v else (0, 0, 0, 0) for v in values], float)
    return np.asarray(layer.colormap.map(values), float).reshape(len(values), 4)


class SignalPlot(QWidget):
    """Waveform view of a record: traces, label spans, prediction band, uncertainty curve.

    Signals
    -------
    span_selected(t0, t1) : a span dragged with the left button, seconds since start.
    view_changed(t0, t1) : the visible time range changed.
    """

    span_selected = Signal(float, float)
    view_changed = Signal(float, float)

    def __init__(self, parent=None):
        super().__init__(parent)
        # fixed margins: a layout engine would re-measure every tick label on each pan step
        self.figure = Figure(figsize=(9, 4.8))
        self.figure.subplots_adjust(left=0.09, right=0.84, top=0.88, bottom=0.11, hspace=0.08)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(320)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)
        gs = self.figure.add_gridspec(2, 1, height_ratios=(4, 1))
        self.ax = self.figure.add_subplot(gs[0])
        self.ax_u = self.figure.add_subplot(gs[1], sharex=self.ax)
        self.record = None
        self.pyramid = None
        self.labels = None
        self.prediction = None
        self.uncertainty = None
        self.u_pyramid = None
        self.colors = {}
        self.class_names = {}
        self.suggestions = []  # (t0, t1) seconds
        self._labels_version = 0
        self.current = -1
        self.view = (0.0, 1.0)
        self._lines = []
        self._artists = []
        self._pan = None
        self.selector = SpanSelector(self.ax, self._on_span, "horizontal", useblit=True, button=1,
                                     props={"alpha": 0.3, "facecolor": "tab:orange"}, minspan=0.0)
        self.canvas.mpl_connect("scroll_event", self._on_scroll)
        self.canvas.mpl_connect("button_press_event", self._on_press)
        self.canvas.mpl_connect("motion_notify_event", self._on_motion)
        self.canvas.mpl_connect("button_release_event", self._on_release)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(15)
        self._timer.timeout.connect(self.redraw)

    # -- content ---------------------------------------------------------------------
    def set_record(self, record: SignalRecord):
        self.record = record
        self.pyramid = MinMaxPyramid(record.data)
        self.labels = self.prediction = self.uncertainty = self.u_pyramid = None
        self.suggestions, self.current = [], -1
        self.view = (0.0, record.duration)
        self.schedule()

    def set_labels(self, labels, colors=None, class_names=None):
        self.labels = None if labels is None else np.asarray(labels).reshape(-1)
        self._labels_version += 1  # labels change in place when painted
        if colors is not None:
            self.colors = colors
        if class_names is not None:
            self.class_names = class_names
        self.schedule()

    def _present(self) -> set:
        """Classes in the labels or the prediction (counted once per change, not per frame)."""
        key = (id(self.labels), id(self.prediction), self._labels_version)
        if getattr(self, "_present_key", None) != key:
            found = set()
            for arr in (self.labels, self.prediction):
                if arr is not None and arr.size:
                    found |= {int(c) for c in np.flatnonzero(np.bincount(arr.astype(np.intp, copy=False)))}
            self._present_key, self._present_set = key, found - {0}
        return self._present_set

    def set_prediction(self, prediction, uncertainty):
        self.prediction = None if prediction is None else np.asarray(prediction).reshape(-1)
        self.uncertainty = None if uncertainty is None else np.asarray(uncertainty).reshape(-1)
        self.u_pyramid = None if uncertainty is None else MinMaxPyramid(self.uncertainty)
        self.schedule()

    def set_suggestions(self, windows, current=-1):
        self.suggestions, self.current = list(windows), current
        self.schedule()

    def set_view(self, t0, t1):
        if self.record is None:
            return
        d = self.record.duration
        width = min(max(t1 - t0, 20.0 / self.record.sampling_rate), d)
        t0 = min(max(t0, 0.0), d - width)
        self.view = (t0, t0 + width)
        self.schedule()
        self.view_changed.emit(*self.view)

    def schedule(self):
        self._timer.start()  # coalesce bursts of wheel events into one draw

    # -- drawing ---------------------------------------------------------------------------
    def _band(self, values, s0, s1, nb, reduce_max):
        """RGBA image ``(1, nb, 4)`` of class values over samples ``[s0, s1)``.

        With ``reduce_max`` a column shows the highest class value among its
        samples, so a 5 s event stays visible in a day-long view.
        """
        seg = values[s0:s1]
        nb = max(1, min(nb, seg.size))
        edges = np.linspace(0, seg.size, nb + 1).astype(np.int64)[:-1]
        v = np.maximum.reduceat(seg, edges) if reduce_max else seg[np.minimum(edges + (seg.size // nb) // 2, seg.size - 1)]
        classes = np.unique(v)
        rgba = np.zeros((nb, 4))
        for c in classes[classes > 0]:
            rgba[v == c] = self.colors.get(int(c), (0.5, 0.5, 0.5, 1.0))
        rgba[v == 0, 3] = 0
        return rgba[np.newaxis]

    def redraw(self):
        ax, ax_u = self.ax, self.ax_u
        for a in self._artists:
            a.remove()
        self._artists = []
        if self.record is None:
            self.canvas.draw_idle()
            return
        rec = self.record
        sr = rec.sampling_rate
        t0, t1 = self.view
        s0, s1 = int(np.floor(t0 * sr)), int(np.ceil(t1 * sr)) + 1
        s0, s1 = max(0, s0), min(rec.n_samples, s1)
        n_px = max(200, int(self.canvas.width() * 1.5))
        idx, vals = self.pyramid.view(s0, s1, n_px)
        tt = idx / sr
        C = rec.n_channels
        while len(self._lines) < C:
            (ln,) = ax.plot([], [], color="k", lw=0.6, zorder=3)
            self._lines.append(ln)
        # zoomed out, the pyramid gives (min, max) pairs per block: a filled band
        # rasterises far faster than a zigzag line through them and looks the same
        envelope = idx.size > 1 and idx[0] == idx[1]
        for i in range(C):
            v = vals[i].astype(np.float64)
            if v.size:
                centre = float(np.median(v))
                amp = float(np.max(np.abs(v - centre))) or 1.0
                y = -2.0 * i + 0.9 * (v - centre) / amp
            else:
                y = v
            if envelope:
                self._lines[i].set_data([], [])
                self._artists.append(ax.fill_between(tt[0::2], y[0::2], y[1::2], color="k", lw=0.6,
                                                     edgecolor="k", zorder=3))
            else:
                self._lines[i].set_data(tt, y)
        bottom = -2.0 * (C - 1) - 1.0
        nb = min(n_px, 4000)
        if self.labels is not None:
            img = self._band(self.labels, s0, s1, nb, True)
            img[..., 3] *= 0.35
            self._artists.append(ax.imshow(img, extent=(s0 / sr, s1 / sr, bottom, 1.0), aspect="auto",
                                           interpolation="nearest", zorder=1))
        pred_y = (bottom - 0.9, bottom - 0.15)
        if self.prediction is not None:
            img = self._band(self.prediction, s0, s1, nb, True)  # short events stay visible zoomed out
            self._artists.append(ax.imshow(img, extent=(s0 / sr, s1 / sr, *pred_y), aspect="auto",
                                           interpolation="nearest", zorder=1))
        ax.set_ylim(pred_y[0] - 0.1, 1.55)  # room for the rank numbers above the traces
        ax.set_yticks([-2.0 * i for i in range(C)] + [sum(pred_y) / 2],
                      [c.split(".")[-1] or c for c in rec.channels] + ["prediction"])
        ax.set_xlim(t0, t1)
        # the current suggestion is boxed on both axes; the others are marked by rank on top,
        # best first: a rank whose label would touch one already drawn is left out (its bar stays)
        self.rank_labels = []
        label_w = (t1 - t0) * RANK_LABEL_WIDTH_PX / max(1.0, self.ax.get_window_extent().width)
        taken = []
        order = sorted(range(len(self.suggestions)), key=lambda k: (k != self.current, k))
        for k in order:
            w0, w1 = self.suggestions[k]
            if w1 < t0 or w0 > t1:
                continue
            if k == self.current:
                for a, (y0, h) in ((ax, (pred_y[0] - 0.05, 1.15 - pred_y[0])), (ax_u, (0.0, 1.05))):
                    self._artists.append(a.add_patch(Rectangle((w0, y0), w1 - w0, h, fill=False, zorder=4,
                                                               edgecolor="tab:red", lw=2.0)))
            else:
                (ln,) = ax.plot([w0, w1], [1.07, 1.07], color="tab:orange", lw=3, solid_capstyle="butt",
                                zorder=4)
                self._artists.append(ln)
            centre = min(max((w0 + w1) / 2, t0 + label_w / 2), t1 - label_w / 2)  # never clipped at an edge
            if any(abs(centre - c) < label_w for c in taken):
                continue
            taken.append(centre)
            text = ax.text(centre, 1.1, f"{k + 1}", ha="center", va="bottom", fontsize=RANK_FONT_SIZE,
                           fontweight="bold", color="tab:red" if k == self.current else "#b35900", zorder=5,
                           bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                                 "alpha": 0.85})
            self._artists.append(text)
            self.rank_labels.append(text)
        if self.u_pyramid is not None:
            ui, uv = self.u_pyramid.view(s0, s1, n_px)
            if ui.size > 1 and ui[0] == ui[1]:
                art = ax_u.fill_between(ui[0::2] / sr, uv[0, 0::2], uv[0, 1::2], color="tab:purple", lw=0.8,
                                        edgecolor="tab:purple")
            else:
                (art,) = ax_u.plot(ui / sr, uv[0], color="tab:purple", lw=0.8)
            self._artists.append(art)
        ax_u.set_ylim(0, 1.05)
        ax_u.set_ylabel("uncertainty")
        start = "" if rec.starttime is None else f" since {rec.starttime:%Y-%m-%d %H:%M:%S.%f}"[:-4] + " UTC"
        ax_u.set_xlabel(f"time (s){start}")
        ax.tick_params(labelbottom=False)
        ax.set_title(f"{rec.name}  ·  {rec.sampling_rate:g} Hz  ·  {C} channel(s)  ·  "
                     "shading: your labels · band: prediction · numbers: suggested windows\n"
                     "drag: label a span · wheel: zoom · right-drag: pan", fontsize=9, loc="left")
        shown = sorted(set(self.class_names) | set(self.colors))
        present = self._present()
        handles = [Patch(color=self.colors.get(c, (0.5, 0.5, 0.5, 1)), label=f"{c}: {self.class_names.get(c, f'class {c}')}")
                   for c in shown if c in present or c in self.class_names]
        if handles:
            self._artists.append(ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False))
        self.canvas.draw_idle()

    # -- mouse -----------------------------------------------------------------------------
    def _on_span(self, x0, x1):
        if x1 > x0:
            self.span_selected.emit(float(x0), float(x1))

    def _on_scroll(self, event):
        if event.xdata is None or self.record is None:
            return
        t0, t1 = self.view
        f = 0.8 if event.button == "up" else 1.25
        x = event.xdata
        self.set_view(x - (x - t0) * f, x + (t1 - x) * f)

    def _on_press(self, event):
        if event.button == 3 and event.inaxes is not None:
            self._pan = (event.x, self.view)

    def _on_motion(self, event):
        if self._pan is None or self.record is None:
            return
        x_px, (t0, t1) = self._pan
        bbox = self.ax.get_window_extent()
        dt = (event.x - x_px) / max(1.0, bbox.width) * (t1 - t0)
        self.set_view(t0 - dt, t1 - dt)

    def _on_release(self, event):
        self._pan = None


def _train_job(task, data, labels, spec, n_trees):
    """Worker body: fit, predict every sample, uncertainty."""
    started = time.perf_counter()
    clf = SignalClassifier(spec, n_estimators=n_trees, n_jobs=-1)
    clf.fit(data, labels, should_stop=task.should_stop)
    proba = clf.predict_proba(data, should_stop=task.should_stop)
    pred = clf.classes_[np.argmax(proba, axis=0)].astype(np.uint8)
    return {"classifier": clf, "proba": proba, "prediction": pred, "uncertainty": entropy(proba),
            "seconds": time.perf_counter() - started}


def _rank_job(task, record, classifier, uncertainty, labels, width, strategy, proba):
    """Worker body: rank windows (the window descriptors of diversity/cluster need a prediction)."""
    feats = classifier.predict_proba(record) if strategy in ("diversity", "cluster") and classifier else None
    return suggest_windows(uncertainty, labels, width=width, strategy=strategy, n=10, features=feats,
                           proba=proba if strategy == "clasp" else None)


class SignalClassifierWidget(Dock):
    """Label spans of a signal, train, see predictions and uncertainty, walk the suggestions.

    Signals
    -------
    trained : emitted after the prediction and uncertainty layers were written.
    suggested : emitted after suggestions were computed.
    (and the base's failed(str), cancelled)
    """

    trained = Signal()
    suggested = Signal()

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__(napari_viewer, idle_text="Open a signal (File > Open, or File > Open Sample > Seismogram).")
        self.classifier = None
        self.suggestions = []
        self.current = -1
        self._watched = None
        self._build()
        self._on_signal_changed(self.signal_combo.currentText())

    def fail(self, message, notify=True):
        rec = self.record
        super().fail(message if rec is None else for_signal_gui(str(message), rec.sampling_rate), notify)

    def _build(self):
        lay = self.body
        form = QFormLayout()
        self.signal_picker = self.layer_picker(napari.layers.Image, accept=lambda ly: "signal" in ly.metadata,
                                               tooltip="A record opened with the Signal reader.")
        self.signal_combo = self.signal_picker.native
        self.signal_combo.currentTextChanged.connect(self._on_signal_changed)
        form.addRow("Signal", self.signal_combo)
        self.class_combo = QComboBox()
        form.addRow("Drag marks", self.class_combo)
        add_row = QHBoxLayout()
        self.class_name_edit = QLineEdit()
        self.class_name_edit.setPlaceholderText("e.g. tourists jumping on the sensor")
        self.add_class_button = QPushButton("Add class")
        self.add_class_button.clicked.connect(lambda *_: self.add_class(self.class_name_edit.text()))
        add_row.addWidget(self.class_name_edit)
        add_row.addWidget(self.add_class_button)
        form.addRow("New class", add_row)
        feats = QHBoxLayout()
        self.envelope_box = QCheckBox("envelope")
        self.envelope_box.setChecked(True)
        self.envelope_box.setToolTip("Hilbert envelope, raw and smoothed at each scale.")
        self.stalta_box = QCheckBox("STA/LTA")
        self.stalta_box.setChecked(True)
        self.sta_spin = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=600.0, value=1.0, suffix=" s")
        self.lta_spin = QDoubleSpinBox(decimals=1, minimum=0.1, maximum=3600.0, value=10.0, suffix=" s")
        self.bands_box = QCheckBox("band energies")
        self.bands_box.setChecked(True)
        self.bands_box.setToolTip("Amplitude in octave frequency bands from 0.5 Hz to 0.4 x the "
                                  "sampling rate (a spectrogram, sample by sample).")
        for w in (self.envelope_box, self.stalta_box, self.sta_spin, QLabel("/"), self.lta_spin,
                  self.bands_box):
            feats.addWidget(w)
        form.addRow("Extra features", feats)
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(["waveform filters (shape, amplitude)",
                                  "amplitude-free (events of any size)"])
        self.kind_combo.setToolTip(
            "Waveform filters: Gaussian/DoG/LoG/Hessian at the scales, plus the extra features.\n"
            "Amplitude-free: the sample plus STA/LTA ratios, broadband and per octave band; finds "
            "events weaker or stronger than the ones you labelled (uses the STA/LTA windows).")
        self.kind_combo.currentIndexChanged.connect(self._on_kind_changed)
        form.addRow("Features", self.kind_combo)
        self.scales_edit = QComboBox()
        self.scales_edit.setEditable(True)
        self.scales_edit.addItems(["0.05, 0.2, 0.8, 3.2", "0.02, 0.1, 0.5, 2.5", "0.1, 0.5, 2, 8"])
        self.scales_edit.setToolTip("Gaussian, DoG, LoG and Hessian scales in seconds.")
        form.addRow("Scales (s)", self.scales_edit)
        self.trees_spin = QSpinBox(minimum=5, maximum=1000, value=50)
        form.addRow("Trees", self.trees_spin)
        lay.addLayout(form)
        self.train_button = QPushButton("Train && predict")
        self.train_button.clicked.connect(self.train)
        lay.addWidget(self.train_button)
        srow = QHBoxLayout()
        self.strategy_combo = QComboBox()
        self.strategy_combo.addItems(list(STRATEGIES))
        self.strategy_combo.setCurrentText(DEFAULT_STRATEGY)
        self.window_spin = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=86400.0, value=2.0, suffix=" s")
        self.window_spin.setToolTip("Length of a suggested window.")
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.clicked.connect(self.suggest)
        self.next_button = QPushButton("Next ▶")
        self.next_button.clicked.connect(self.next_suggestion)
        self.whole_button = QPushButton("Whole record")
        self.whole_button.clicked.connect(self.show_all)
        for w in (self.strategy_combo, self.window_spin, self.suggest_button, self.next_button, self.whole_button):
            srow.addWidget(w)
        lay.addLayout(srow)
        self.plot = SignalPlot(self)
        self.plot.span_selected.connect(self.label_span)
        self.plot.view_changed.connect(self._follow_view)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.plot, "Waveforms")
        self.explain_panel = ExplainPanel(self, source=self._explained)
        self.tabs.addTab(self.explain_panel, "Explain")
        lay.addWidget(self.tabs, stretch=1)

    # -- layers -----------------------------------------------------------------------------
    @property
    def signal_layer(self):
        return self.signal_picker.value

    @property
    def record(self) -> SignalRecord | None:
        layer = self.signal_layer
        if layer is None:
            return None
        return SignalRecord.from_metadata(np.asarray(signal_data(layer)), layer.metadata["signal"])

    def _named(self, suffix, kind):
        layer = self.signal_layer
        name = None if layer is None else layer.name + suffix
        if name and name in self.viewer.layers and isinstance(self.viewer.layers[name], kind):
            return self.viewer.layers[name]
        return None

    @property
    def labels_layer(self):
        """The Labels layer ``"<record> labels"``, added when missing."""
        layer = self._named(LABELS_SUFFIX, napari.layers.Labels)
        if layer is None and self.signal_layer is not None:
            data, kwargs, _ = next(t for t in layer_data(self.record) if t[2] == "labels")
            layer = self.viewer.add_labels(data, **kwargs)
        return layer

    @property
    def prediction_layer(self):
        return self._named(PREDICTION_SUFFIX, napari.layers.Labels)

    @property
    def uncertainty_layer(self):
        return self._named(UNCERTAINTY_SUFFIX, napari.layers.Image)

    def add_class(self, name: str) -> int:
        """Add a class called ``name`` (the next free value) and choose it for dragging."""
        labels = self.labels_layer
        name = name.strip()
        if labels is None or not name:
            return 0
        names = self._class_names(labels)
        value = max(names) + 1
        stored = dict(labels.metadata.get("class_names", {}))
        stored[value] = name
        labels.metadata["class_names"] = stored
        self._fill_class_combo(labels)
        self.class_combo.setCurrentIndex(self.class_combo.findData(value))
        self.class_name_edit.clear()
        self._update_labels()
        return value

    def _fill_class_combo(self, labels):
        names = self._class_names(labels)
        self.class_combo.clear()
        for k in sorted(names):
            self.class_combo.addItem(f"{k}: {names[k]}", k)
        self.class_combo.addItem("0: erase", 0)

    def _class_names(self, layer):
        names = dict(CLASS_NAMES)
        if layer is not None:
            names.update({int(k): str(v) for k, v in layer.metadata.get("class_names", {}).items()})
        return names

    def _on_signal_changed(self, name):
        rec = self.record
        if rec is None:
            self.plot.record = None
            self.plot.schedule()
            return
        labels = self.labels_layer
        self._fill_class_combo(labels)
        self.plot.set_record(rec)
        self._watch(labels)
        self._update_labels()
        pred, unc = self.prediction_layer, self.uncertainty_layer
        if pred is not None and unc is not None and pred.data.shape[-1] == rec.n_samples:
            self.plot.set_prediction(pred.data[0], signal_data(unc)[0])
        self.suggestions, self.current = [], -1
        self.set_status(f"{rec.name}: {rec.n_channels} channel(s), {rec.duration:g} s at "
                         f"{rec.sampling_rate:g} Hz. Drag across the waveform to mark spans of two or more "
                         "classes, then Train.")

    def _watch(self, labels):
        if self._watched is not None:
            for ev in (self._watched.events.paint, self._watched.events.data):
                try:
                    ev.disconnect(self._update_labels)
                except (TypeError, ValueError, RuntimeError):
                    pass
        self._watched = labels
        if labels is not None:
            labels.events.paint.connect(self._update_labels)
            labels.events.data.connect(self._update_labels)

    def _update_labels(self, event=None):
        labels = self._watched
        if labels is None:
            return
        classes = sorted(set(self._class_names(labels)) | {int(c) for c in np.unique(labels.data) if c})
        colors = dict(zip(classes, _colors(labels, classes)))
        self.plot.set_labels(labels.data[0], colors, self._class_names(labels))

    # -- labelling --------------------------------------------------------------------------
    def label_span(self, t0: float, t1: float, value: int | None = None):
        """Mark seconds ``[t0, t1)`` with class ``value`` (default: the chosen class; 0 erases)."""
        rec, labels = self.record, self.labels_layer
        if rec is None or labels is None:
            return
        if value is None:
            value = self.class_combo.currentData()
        s0 = max(0, int(round(t0 * rec.sampling_rate)))
        s1 = min(rec.n_samples, int(round(t1 * rec.sampling_rate)))
        if s1 <= s0:
            return
        labels.data[0, s0:s1] = int(value or 0)
        labels.refresh()
        self._update_labels()

    def _on_kind_changed(self, index):
        filters = index == 0
        for w in (self.envelope_box, self.bands_box, self.scales_edit):
            w.setEnabled(filters)
        if not filters:
            self.stalta_box.setChecked(True)

    # -- training ---------------------------------------------------------------------------
    def feature_spec(self, sampling_rate: float) -> SignalFeatures:
        if self.kind_combo.currentIndex() == 1:  # the STA/LTA box is kept on in this mode
            return invariant_signal_features(sampling_rate, ((self.sta_spin.value(), self.lta_spin.value()),))
        text = self.scales_edit.currentText().replace(";", ",")
        try:
            secs = [float(s) for s in text.split(",") if s.strip()]
        except ValueError:
            raise InputError(f"Scales are seconds separated by commas, e.g. 0.05, 0.2, 0.8, 3.2; "
                             f"got {text!r}.") from None
        sta_lta = ((self.sta_spin.value(), self.lta_spin.value()),) if self.stalta_box.isChecked() else ()
        bands = default_bands(sampling_rate) if self.bands_box.isChecked() else ()
        return SignalFeatures.from_seconds(sampling_rate, secs, envelope=self.envelope_box.isChecked(),
                                           sta_lta_s=sta_lta, bands_hz=bands)

    def train(self, *_):
        """Fit on the labelled spans and classify every sample, in a worker; emits ``trained``."""
        rec, labels = self.record, self.labels_layer
        if rec is None:
            self.fail("Open a signal first (File > Open Sample > Seismogram).")
            return
        try:
            spec = self.feature_spec(rec.sampling_rate)
        except InputError as e:
            self.fail(str(e))
            return
        data, strokes, trees = rec.data, np.array(labels.data[0]), self.trees_spin.value()
        self.run(lambda task: _train_job(task, data, strokes, spec, trees),
                 lambda out, rec=rec: self._on_trained(rec, out), desc="Training and predicting every sample")

    def _on_trained(self, rec, out):
        self.classifier = out["classifier"]
        self._proba = out["proba"]
        C = rec.n_channels
        pred = out["prediction"][np.newaxis]
        unc = out["uncertainty"][np.newaxis]
        layer = self.prediction_layer
        scale, translate = row_geometry(rec, C + 1)
        if layer is None or layer.data.shape != pred.shape:
            if layer is not None:
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_labels(pred, name=rec.name + PREDICTION_SUFFIX, scale=scale,
                                           translate=translate, opacity=0.8)
        else:
            layer.data = pred
        ulayer = self.uncertainty_layer
        scale, translate = row_geometry(rec, C + 2)
        if ulayer is not None:
            self.viewer.layers.remove(ulayer)  # (a multiscale layer cannot take new data in place)
        self.viewer.add_image(multiscale_levels(unc), name=rec.name + UNCERTAINTY_SUFFIX, scale=scale,
                              translate=translate, colormap="magma", contrast_limits=(0.0, 1.0))
        labels = self.labels_layer
        if labels is not None:
            self.viewer.layers.selection.active = labels
        self.plot.set_prediction(out["prediction"], out["uncertainty"])
        clf = self.classifier
        top = ", ".join(list(clf.feature_importances())[:3])
        self.set_status(f"Trained on {clf.n_training_samples_} labelled samples "
                         f"({len(clf.feature_names_in_)} features; most used: {top}) and classified "
                         f"{rec.n_samples} samples in {out['seconds']:.1f} s. Press Suggest for where to label next.")
        self.trained.emit()

    def _explained(self):
        """The model and the labelled samples for the Explain tab (features computed in its worker)."""
        rec, labels, clf = self.record, self.labels_layer, self.classifier
        if clf is None or rec is None:
            raise InputError("There is no model yet: mark spans of two classes and press Train && predict.")
        strokes = np.array(labels.data[0])
        names = self._class_names(labels)
        return Explained(clf, lambda: clf.training_data(rec, strokes)[:2], "labelled samples",
                         class_colours=dict(self.plot.colors), class_names=names)

    # -- suggestions ------------------------------------------------------------------------
    def suggest(self, *_):
        rec, unc = self.record, self.uncertainty_layer
        if rec is None or unc is None:
            self.fail("Train first: suggestions rank windows by the model's uncertainty.")
            return
        width = max(2, int(round(self.window_spin.value() * rec.sampling_rate)))
        strategy = self.strategy_combo.currentText()
        args = (rec, self.classifier, np.asarray(signal_data(unc)[0]), np.array(self.labels_layer.data[0]),
                width, strategy, getattr(self, "_proba", None))
        self.run(lambda task: _rank_job(task, *args), lambda found: self._on_suggested(rec, strategy, found),
                 desc=f"Ranking windows ({strategy})")

    def _on_suggested(self, rec, strategy, found):
        self.suggestions = list(found)
        self.current = -1
        windows = [self._window_seconds(s, rec) for s in self.suggestions]
        self.plot.set_suggestions(windows, -1)
        self.set_status(f"{len(windows)} windows suggested ({strategy}). Press Next to go to the first.")
        self.suggested.emit()
        self.next_suggestion()

    @staticmethod
    def _window_seconds(suggestion, rec):
        sl = suggestion.candidate.slices[0]
        return sl.start / rec.sampling_rate, sl.stop / rec.sampling_rate

    def next_suggestion(self, *_):
        rec = self.record
        if not self.suggestions or rec is None:
            self.set_status("No suggestions yet: Train, then Suggest.")
            return
        self.current = (self.current + 1) % len(self.suggestions)
        s = self.suggestions[self.current]
        w0, w1 = self._window_seconds(s, rec)
        pad = (w1 - w0) * 1.5
        self.plot.set_suggestions([self._window_seconds(x, rec) for x in self.suggestions], self.current)
        self.plot.set_view(w0 - pad, w1 + pad)
        self.set_status(f"Suggestion {self.current + 1}/{len(self.suggestions)}: {w0:.2f}–{w1:.2f} s "
                         f"({s.reason}). Drag across it with the right class.")

    def show_all(self, *_):
        rec = self.record
        if rec is not None:
            self.plot.set_view(0.0, rec.duration)

    def _follow_view(self, t0, t1):
        """Centre napari's camera on the time range the waveform view shows."""
        layer = self.signal_layer
        if layer is None:
            return
        cam = self.viewer.scene.camera if hasattr(self.viewer, "scene") else self.viewer.camera
        y = float(layer.translate[0]) + 0.5 * float(layer.scale[0]) * (signal_data(layer).shape[0] + 2)
        cam.center = (y, (t0 + t1) / 2)
