"""The "Suggestions" panel of the pixel-classifier widget: where to label next.

Reads the Pixel classifier dock's :class:`~active_annotator.AnnotationSession` (its
probabilities and cached features, never the layers) and the annotations, ranks the
image's patches with one core call (:meth:`AnnotationSession.suggest`) in a worker thread, lists the ranking, outlines it in a "suggestions" Shapes
layer and walks the camera and the dims sliders from one suggestion to the
next. A suggestion the user paints in is marked done
(:func:`active_annotator.candidates.labelled_fraction`); the ranking refreshes
after each training.

Keys (bound on the viewer, unused by napari's layers): **N** next suggestion,
**B** back to the previous one.

No ``from __future__ import annotations``: see ``_widget.py``.
"""

import weakref
from functools import partial

import napari
import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from active_annotator.candidates import default_patch_size, labelled_fraction
from active_annotator.errors import AnnotatorError, InputError
from active_annotator.sampling import DEFAULT_STRATEGY

from ._dock import Runner
from ._messages import for_gui

SUGGESTIONS = "suggestions"
NEXT_KEY, PREVIOUS_KEY = "n", "b"
# (text shown, strategy name in the core)
_CHOICES = (
    ("ClaSP: uncertain places of every class, rare classes first", "clasp"),
    ("power: uncertain places, drawn at random in proportion", "power"),
    ("hybrid: uncertain and spread out", "hybrid"),
    ("entropy (most uncertain)", "entropy"),
    ("margin", "margin"),
    ("least confidence", "least_confidence"),
    ("diversity (k-center on features)", "diversity"),
    ("cluster (k-means on features)", "cluster"),
    ("typicality (cold start, no model)", "typiclust"),
    ("random (baseline)", "random"),
)
# the package's default strategy (the active-learning suite's winner) comes first
STRATEGY_CHOICES = tuple(sorted(_CHOICES, key=lambda c: c[1] != DEFAULT_STRATEGY))
AUTO_SIZE = 3  # the patch-size box's "auto" position (below every real size)
# the view shows the suggestion and about one patch of context on each side
CONTEXT = 3.0
COLOUR_TODO, COLOUR_CURRENT, COLOUR_DONE = "#00e5ff", "#ffd600", "#69f0ae"


def _rank(task, session, proba, classifier, labels, strategy, n, size):
    """Worker body: the session's ranking (on its cached features), plus how much of each
    suggestion was labelled already."""
    suggestions = session.suggest(strategy, n, labels=labels, size=size, seed=0, should_stop=task.should_stop,
                                  probabilities=proba, classifier=classifier)
    baseline = labelled_fraction([s.candidate for s in suggestions], labels)
    return suggestions, baseline


class SuggestionsPanel(QWidget):
    """Rank the image's patches by what a label there would teach, and go there.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    classifier_widget : PixelClassifierWidget
        Gives the image, annotations, geometry and model; its ``trained``
        signal refreshes the ranking.

    Signals
    -------
    suggested : the list and the outlines were (re)written.
    moved(int) : the view moved to the suggestion at this index.
    done_changed : a suggestion was marked done (painted in).
    failed(str) : a request failed, with the message shown.
    cancelled : a ranking was stopped (replaced rankings drop their result quietly).
    """

    suggested = Signal()
    moved = Signal(int)
    done_changed = Signal()
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, napari_viewer, classifier_widget):
        super().__init__()
        self.viewer = napari_viewer
        self.owner = classifier_widget
        self.suggestions = []
        self.done = np.zeros(0, bool)
        self.current = -1
        self._baseline = np.zeros(0)
        self._geometry = None  # (scale, translate) of the spatial axes the ranking was made on
        self.runner = Runner(self, self)  # one ranking at a time; a newer request replaces it
        self._watched = None
        # napari fires events.paint before the stroke's pixels are in layer.data: look after it
        self._done_timer = QTimer(self)
        self._done_timer.setSingleShot(True)
        self._done_timer.setInterval(0)
        self._done_timer.timeout.connect(self.update_done)
        self._build()

        classifier_widget.trained.connect(self._on_trained)
        classifier_widget.annotations_combo.currentTextChanged.connect(self._watch_annotations)
        self._watch_annotations()
        self._bind_keys()

    # -- layout ------------------------------------------------------------------------------
    def _build(self):
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        form = QFormLayout()
        self.strategy_combo = QComboBox()
        for text, _ in STRATEGY_CHOICES:
            self.strategy_combo.addItem(text)
        self.strategy_combo.setToolTip(
            "How patches are ranked:\n"
            "entropy (default): the most uncertain patches; it won the benchmark suite of 7 real datasets\n"
            "ClaSP: uncertain patches of every predicted class in turn, rare classes first\n"
            "power: uncertain patches drawn at random in proportion to their uncertainty\n"
            "hybrid: uncertainty, discounted near your labels and earlier picks\n"
            "margin / least confidence: other measures of the model's uncertainty\n"
            "typicality: typical patches of unlabelled clusters (a cold start, no model needed)\n"
            "diversity / cluster: patches that look unlike what is labelled (features)\n"
            "random: the baseline to compare against")
        form.addRow("Strategy", self.strategy_combo)
        row = QHBoxLayout()
        self.size_spin = QSpinBox()
        self.size_spin.setRange(AUTO_SIZE, 1024)
        self.size_spin.setSpecialValueText("auto")  # shown at AUTO_SIZE
        self.size_spin.setValue(AUTO_SIZE)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Edge of a candidate patch (a 3-D block for volumes). 'auto': the "
                                  "largest size that still cuts the image into ~150 patches.")
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 500)
        self.n_spin.setValue(10)
        self.n_spin.setToolTip("How many suggestions to list.")
        row.addWidget(QLabel("Patch"))
        row.addWidget(self.size_spin)
        row.addWidget(QLabel("N"))
        row.addWidget(self.n_spin)
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.setToolTip("Rank the unlabelled patches of the image (needs a trained model).")
        self.suggest_button.clicked.connect(self.suggest)
        row.addWidget(self.suggest_button)
        form.addRow(row)
        outer.addLayout(form)

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["#", "Score", "Why here"])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setToolTip("Ranked places to label next; double-click one to go there. "
                              "Green: you painted in it (done).")
        self.table.setMinimumHeight(150)
        self.table.cellDoubleClicked.connect(lambda r, _c: self.go_to(r))
        outer.addWidget(self.table, 1)

        row = QHBoxLayout()
        self.previous_button = QPushButton("◀ Previous")
        self.previous_button.setToolTip(f"Go back to the previous open suggestion (key {PREVIOUS_KEY.upper()}).")
        self.previous_button.clicked.connect(self.previous_suggestion)
        self.next_button = QPushButton("Next ▶")
        self.next_button.setToolTip(f"Go to the next open suggestion (key {NEXT_KEY.upper()}).")
        self.next_button.clicked.connect(self.next_suggestion)
        self.refresh_check = QCheckBox("Refresh after training")
        self.refresh_check.setChecked(True)
        self.refresh_check.setToolTip("Re-rank with the new model each time training finishes.")
        row.addWidget(self.previous_button)
        row.addWidget(self.next_button)
        row.addWidget(self.refresh_check)
        outer.addLayout(row)

        self.status = QLabel(f"Train, then Suggest. Keys: {NEXT_KEY.upper()} next, "
                             f"{PREVIOUS_KEY.upper()} previous.")
        self.status.setWordWrap(True)
        outer.addWidget(self.status)

    def patch_size(self, shape) -> int:
        """The patch edge to rank with: the box's value, or the core's choice for ``shape`` when 'auto'."""
        v = self.size_spin.value()
        if v != AUTO_SIZE:
            return v
        nd = self.owner.classifier.feature_set.ndim if getattr(self.owner, "classifier", None) else 2
        return default_patch_size(tuple(shape)[-nd:])

    @property
    def strategy(self) -> str:
        return STRATEGY_CHOICES[self.strategy_combo.currentIndex()][1]

    @property
    def busy(self) -> bool:
        return self.runner.busy

    # -- ranking -----------------------------------------------------------------------------
    def suggest(self, *_):
        """Rank the patches of the chosen image in a worker; emits ``suggested`` when listed."""
        owner = self.owner
        try:
            if owner.classifier is None:
                raise InputError("Train first: suggestions rank patches by the model's uncertainty.")
            _, image, _, shape, scale, translate = owner.image_and_geometry()
            session = owner.session
            proba = None if session is None or session.image is not image else session.probabilities
            if proba is None or tuple(proba.shape[1:]) != shape:
                raise InputError("There is no prediction of this image yet: press Train or Predict.")
            annotations = owner.annotations_layer
            labels = None if annotations is None else np.array(annotations.data, copy=True)
            if labels is not None and labels.shape != shape:
                raise InputError(f"Annotations '{annotations.name}' do not match the image's shape {shape}.")
        except AnnotatorError as e:
            self.fail(str(e))
            return
        geometry = (tuple(scale), tuple(translate))
        self.runner.run(partial(_rank, session=session, proba=proba, classifier=owner.classifier, labels=labels,
                                strategy=self.strategy, n=self.n_spin.value(), size=self.patch_size(shape)),
                        lambda out: self._on_ranked(out, geometry), desc=f"Ranking patches ({self.strategy})")

    # -- what the runner shows (no progress bar of its own: the status line) ------------------
    def show_running(self, desc):
        self.suggest_button.setEnabled(False)
        self.set_status(f"{desc}…")

    def show_progress(self, done, total, text):
        self.set_status(text or f"Ranking {done}/{total}…")

    def show_done(self):
        self.suggest_button.setEnabled(True)

    show_idle = show_done

    def set_status(self, text):
        self.status.setText(text)

    def _on_ranked(self, out, geometry):
        self.suggestions, self._baseline = list(out[0]), np.asarray(out[1])
        self.done = np.zeros(len(self.suggestions), bool)
        self.current = -1
        self._geometry = geometry
        self._fill_table()
        self._draw()
        n = len(self.suggestions)
        self.status.setText(
            f"{n} suggestions ({self.strategy}). Press Next ({NEXT_KEY.upper()}) to go to the first, "
            "paint there, retrain." if n else "Nothing left to suggest: every patch is labelled.")
        self.suggested.emit()

    # -- saved in projects ---------------------------------------------------------
    def state(self) -> dict:
        """JSON-serialisable ranking (for project files)."""
        if self._geometry is None:
            return {"strategy": self.strategy, "suggestions": []}
        return {
            "strategy": self.strategy,
            "geometry": [list(map(float, g)) for g in self._geometry],
            "baseline": [float(b) for b in self._baseline],
            "suggestions": [
                {"id": int(s.candidate.id), "kind": s.candidate.kind,
                 "slices": [[int(sl.start), int(sl.stop)] for sl in s.candidate.slices],
                 "centre": [float(c) for c in s.candidate.centre],
                 "stack_index": s.candidate.stack_index, "rank": int(s.rank),
                 "score": float(s.score), "reason": str(s.reason), "done": bool(d)}
                for s, d in zip(self.suggestions, self.done)
            ],
        }

    def restore(self, state: dict) -> None:
        """Show a ranking saved by :meth:`state` (without re-ranking)."""
        from active_annotator.candidates import Candidate
        from active_annotator.sampling import Suggestion

        items = state.get("suggestions") or []
        if not items or "geometry" not in state:
            return
        keys = [k for _, k in STRATEGY_CHOICES]
        if state.get("strategy") in keys:
            self.strategy_combo.setCurrentIndex(keys.index(state["strategy"]))
        self.suggestions = [
            Suggestion(Candidate(int(d["id"]), str(d["kind"]),
                                 tuple(slice(int(a), int(b)) for a, b in d["slices"]),
                                 tuple(float(c) for c in d["centre"]),
                                 None if d.get("stack_index") is None else int(d["stack_index"])),
                       int(d["rank"]), float(d["score"]), str(d["reason"]))
            for d in items
        ]
        self.done = np.array([bool(d.get("done")) for d in items])
        self._baseline = np.asarray(state.get("baseline", [0.0] * len(items)), float)
        self._geometry = tuple(tuple(g) for g in state["geometry"])
        self.current = -1
        self._fill_table()
        self._draw()
        self.status.setText(f"{len(items)} suggestions restored from the project "
                            f"({int(self.done.sum())} done). Press Next to continue.")

    def _on_trained(self):
        if self.suggestions and self.refresh_check.isChecked():
            self.suggest()

    # -- the list ----------------------------------------------------------------------------
    def _fill_table(self):
        self.table.setRowCount(len(self.suggestions))
        for row, s in enumerate(self.suggestions):
            items = [QTableWidgetItem(str(s.rank)), QTableWidgetItem(f"{s.score:.3f}"),
                     QTableWidgetItem(s.reason)]
            items[0].setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            items[2].setToolTip(s.reason)
            for col, item in enumerate(items):
                self.table.setItem(row, col, item)
        self._style_rows()

    def _style_rows(self):
        for row in range(self.table.rowCount()):
            done = bool(self.done[row])
            for col in range(3):
                item = self.table.item(row, col)
                if item is None:
                    continue
                item.setForeground(QColor(COLOUR_DONE) if done else QColor())
            rank = self.table.item(row, 0)
            if rank is not None:
                rank.setText(f"{self.suggestions[row].rank}{' ✓' if done else ''}")
        if 0 <= self.current < self.table.rowCount():
            self.table.blockSignals(True)
            self.table.selectRow(self.current)
            self.table.blockSignals(False)

    # -- outlines ----------------------------------------------------------------------------
    def _rectangles(self):
        """Rectangles (data coordinates of the annotations) and the suggestion each belongs to."""
        rects, owners = [], []
        for k, s in enumerate(self.suggestions):
            c = s.candidate
            (y0, x0), (y1, x1) = [b[-2:] for b in c.bbox]
            corners = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float) - 0.5
            if c.stack_index is not None:
                planes = [c.stack_index]
            elif len(c.slices) == 3:  # a 3-D block: outline it on each of its planes
                planes = range(c.slices[0].start, c.slices[0].stop)
            else:
                planes = [None]
            for z in planes:
                if z is None:
                    rects.append(corners)
                else:
                    rects.append(np.column_stack([np.full(4, float(z)), corners]))
                owners.append(k)
        return rects, owners

    def _colours(self, owners):
        def colour(k):
            if k == self.current:
                return COLOUR_CURRENT
            return COLOUR_DONE if self.done[k] else COLOUR_TODO

        colours = [colour(k) for k in owners]
        widths = [3.0 if k == self.current else 1.5 for k in owners]
        return colours, widths

    def _draw(self):
        """Write the "suggestions" Shapes layer (replaced when the image's dimensionality changed)."""
        rects, owners = self._rectangles()
        self._owners = owners
        layer = self.shapes_layer
        ndim = rects[0].shape[1] if rects else None
        if layer is not None and (ndim is None or layer.ndim != ndim):
            self.viewer.layers.remove(layer)
            layer = None
        if not rects:
            return
        scale, translate = self._geometry
        colours, widths = self._colours(owners)
        keep_active = self.viewer.layers.selection.active
        ranks = np.array([self.suggestions[k].rank for k in owners])
        if layer is None:
            layer = self.viewer.add_shapes(
                rects, shape_type="rectangle", name=SUGGESTIONS, edge_color=colours,
                edge_width=widths, face_color="transparent", scale=scale, translate=translate,
                features={"rank": ranks},
                text={"string": "{rank}", "color": "white", "size": 9, "anchor": "upper_left"})
        else:
            layer.selected_data = set()
            layer.data = []
            layer.scale, layer.translate = scale, translate
            layer.add_rectangles(rects, edge_color=colours, edge_width=widths, face_color="transparent")
            layer.features = {"rank": ranks}
            layer.refresh()
        layer.editable = False
        if keep_active is not None and keep_active in self.viewer.layers:
            self.viewer.layers.selection.active = keep_active  # go on painting

    def _highlight(self):
        layer = self.shapes_layer
        if layer is None or layer.nshapes != len(getattr(self, "_owners", [])):
            self._draw()
            return
        colours, widths = self._colours(self._owners)
        layer.edge_color = colours
        layer.edge_width = widths

    @property
    def shapes_layer(self):
        """The "suggestions" Shapes layer, or None."""
        if SUGGESTIONS in self.viewer.layers:
            layer = self.viewer.layers[SUGGESTIONS]
            if isinstance(layer, napari.layers.Shapes):
                return layer
        return None

    # -- walking -----------------------------------------------------------------------------
    def next_suggestion(self, *_):
        """Go to the next suggestion that is not done yet (wrapping around); returns its index."""
        return self._step(+1)

    def previous_suggestion(self, *_):
        """Go back to the previous suggestion that is not done yet; returns its index."""
        return self._step(-1)

    def _step(self, direction):
        n = len(self.suggestions)
        if not n:
            self.status.setText("No suggestions yet: Train, then Suggest.")
            return None
        start = self.current if self.current >= 0 else (-1 if direction > 0 else 0)
        for i in range(1, n + 1):
            k = (start + direction * i) % n
            if not self.done[k]:
                self.go_to(k)
                return k
        self.status.setText("Every suggestion is done: train again for a new ranking.")
        return None

    def go_to(self, index):
        """Move the camera (centre, zoom) and the dims sliders to suggestion ``index``."""
        s = self.suggestions[index]
        c = s.candidate
        scale, translate = (np.asarray(g, float) for g in self._geometry)
        centre = np.asarray(c.centre, float)
        n_stack = len(centre) - len(c.slices)
        # sliders go to whole planes: the stack index, or a block's middle plane
        plane = centre.copy()
        plane[n_stack:] = [(sl.start + sl.stop - 1) // 2 for sl in c.slices]
        extent = scale * np.array([1.0] * n_stack + [sl.stop - sl.start for sl in c.slices])
        world = translate + scale * centre
        plane_world = translate + scale * plane
        dims = self.viewer.dims
        lead = dims.ndim - len(world)
        displayed = [d - lead for d in dims.displayed if d >= lead]
        for a in range(len(world)):
            if a not in displayed:
                dims.set_point(lead + a, plane_world[a])
        camera = self.viewer.scene.camera
        camera.center = tuple(world[a] for a in displayed)
        size = np.asarray(self.viewer.canvas.size, float)
        span = max(float(np.max(extent[displayed])), 1e-9) * CONTEXT
        if size.min() > 0:
            camera.zoom = float(size.min() / span)
        self.current = index
        self._highlight()
        self._style_rows()
        self.status.setText(f"Suggestion {s.rank}/{len(self.suggestions)}: {s.reason}. "
                            f"Paint in the yellow box, then {NEXT_KEY.upper()} for the next.")
        self.moved.emit(index)
        return s

    # -- done marks --------------------------------------------------------------------------
    def _watch_annotations(self, *_):
        old = self._watched
        if old is not None:
            try:
                old.events.paint.disconnect(self._on_paint)
            except (RuntimeError, ValueError, TypeError):
                pass
        layer = self.owner.annotations_layer
        self._watched = layer
        if layer is not None:
            layer.events.paint.connect(self._on_paint)

    def _on_paint(self, event=None):
        if self.suggestions:
            self._done_timer.start()

    def update_done(self):
        """Mark suggestions done whose labelled fraction grew since they were suggested."""
        layer = self._watched
        if not self.suggestions or layer is None:
            return
        try:
            frac = labelled_fraction([s.candidate for s in self.suggestions], layer.data)
        except (IndexError, ValueError):
            return  # annotations of another shape than the ranking
        done = self.done | (frac > self._baseline)
        if not np.array_equal(done, self.done):
            self.done = done
            self._highlight()
            self._style_rows()
            left = int((~done).sum())
            self.status.setText(f"{int(done.sum())} done, {left} to go. "
                                + ("Train to update the ranking." if not left else
                                   f"{NEXT_KEY.upper()} for the next."))
            self.done_changed.emit()

    # -- keys --------------------------------------------------------------------------------
    def _bind_keys(self):
        ref = weakref.ref(self)

        def call(method):
            def on_key(viewer):
                panel = ref()
                if panel is not None:
                    getattr(panel, method)()
            on_key.__doc__ = f"Active annotator: {method.replace('_', ' ')}."
            return on_key

        self._key_functions = {NEXT_KEY: call("next_suggestion"), PREVIOUS_KEY: call("previous_suggestion")}
        for key, func in self._key_functions.items():
            self.viewer.bind_key(key, func, overwrite=True)
        self.destroyed.connect(_unbind_keys(self.viewer, dict(self._key_functions)))

    # -- messages ----------------------------------------------------------------------------
    def fail(self, message, notify=True):
        message = for_gui(message)  # it is a tab of the Pixel classifier dock: same controls
        self.status.setText(f"Error: {message}")
        if notify:
            show_error(message)
        self.failed.emit(message)


def _unbind_keys(viewer, functions):
    """A callable that removes this panel's keys from the viewer (holds no Qt object)."""

    def unbind(*_):
        for key, func in functions.items():
            for binding, bound in list(viewer.keymap.items()):
                if bound is func:
                    viewer.bind_key(key, None)
                    break

    return unbind
