"""The "Object classifier" dock: measure segmented objects, explore them, label, train, suggest.

Measures the objects of a Labels layer (:func:`active_annotator.objects.measure`),
explores them (:func:`~active_annotator.objects.explore`: embedding, k-means,
correlation) in a docked scatter plot linked both ways to the viewer, trains
an :class:`~active_annotator.objects.ObjectClassifier` on objects clicked with
a class, and walks the user through suggested objects. Every computation is a
core call in a napari worker; this module only moves data between layers,
the plot and the core.

No ``from __future__ import annotations`` in this module: napari injects the
viewer only when the constructor's annotation is the class itself.
"""

from pathlib import Path

import napari
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.path import Path as PolygonPath
from matplotlib.widgets import LassoSelector
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
)

from active_annotator import objects as core
from active_annotator.errors import AnnotatorError, InputError
from active_annotator.persistence import load_object_classifier, save_object_classifier

from ._dock import Dock
from ._explain_panel import Explained, ExplainPanel
from ._layers import is_probability_layer

SELECTION = "selected objects"
ANNOTATIONS = "object annotations"
RESULT = "object classes"
OWN_LAYERS = (SELECTION, ANNOTATIONS, RESULT)
NO_IMAGE = "(no intensity image)"
# never preselected as the objects: layers of strokes, truths and results are not segmentations
NOT_OBJECTS = ("annotation", "truth", "prediction", "uncertainty", "labels", "suggestion")
SELECT_MODE = "select objects"
FILE_FILTER = "Object classifier (*.aaobjects)"

NOT_DETERMINISTIC = (
    "Not deterministic: t-SNE, UMAP and k-means change with the seed and with the "
    "set of objects (PCA does not). Explore with them; the trained classifier is "
    "what gives reproducible classes."
)
METHODS = (("PCA", "pca"), ("t-SNE", "tsne"), ("UMAP (needs umap-learn)", "umap"))
# class colours shared by annotations, result layer and plot (matplotlib tab10)
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def _class_colormap():
    colours = {None: "transparent", 0: "transparent"}
    colours.update({k + 1: c for k, c in enumerate(CLASS_COLOURS)})
    return DirectLabelColormap(color_dict=colours)


def _looks_like_objects(layer) -> bool:
    name = layer.name.lower()
    return not any(word in name for word in NOT_OBJECTS)


class ObjectClassifierWidget(Dock):
    """Measure, explore, label, train and get suggestions for segmented objects.

    Signals (besides the base's ``failed`` and ``cancelled``): measured,
    explored, trained, suggested, selection_changed(ids).
    """

    measured = Signal()
    explored = Signal()
    trained = Signal()
    suggested = Signal()
    selection_changed = Signal(object)  # np.ndarray of selected object ids

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__(napari_viewer, idle_text="Pick the objects and press Measure.")
        self.setMaximumWidth(620)
        self.table = None  # dict of columns from core.measure
        self.exploration = None
        self.classifier = None
        self.proba = None
        self.selected = np.zeros(0, np.int64)
        self.suggestions = []
        self._next = 0
        self._objects = None  # the label array that was measured
        self._build()
        self.viewer.mouse_drag_callbacks.append(self._on_viewer_click)
        self.destroyed.connect(_disconnect_from_viewer(self.viewer, self._on_viewer_click))

    # -- layout ------------------------------------------------------------------
    def _build(self):
        outer = self.body

        box = QGroupBox("1. Objects")
        form = QFormLayout(box)
        self.objects_picker = self.layer_picker(
            napari.layers.Labels, accept=lambda ly: ly.name not in OWN_LAYERS, prefer=("objects",),
            avoid=lambda ly: not _looks_like_objects(ly),
            tooltip="A segmentation: one integer per object, 0 = background.")
        self.image_picker = self.layer_picker(
            napari.layers.Image, accept=lambda ly: not is_probability_layer(ly) and ly.name != "uncertainty",
            none_text=NO_IMAGE, tooltip="Intensity measurements come from this image (optional).")
        self.objects_combo = self.objects_picker.native
        self.image_combo = self.image_picker.native
        form.addRow("Objects (labels)", self.objects_combo)
        form.addRow("Intensity image", self.image_combo)
        row = QHBoxLayout()
        self.measure_button = QPushButton("Measure")
        self.measure_button.setToolTip("Area, perimeter, circularity, ... per object; "
                                       "the table goes into the layer's features.")
        self.export_button = QPushButton("Export CSV…")
        row.addWidget(self.measure_button)
        row.addWidget(self.export_button)
        form.addRow(row)
        outer.addWidget(box)

        box = QGroupBox("2. Explore (no labels needed)")
        form = QFormLayout(box)
        self.method_combo = QComboBox()
        for text, key in METHODS:
            self.method_combo.addItem(text, key)
        if not core.umap_available():
            item = self.method_combo.model().item(2)
            item.setEnabled(False)
            item.setToolTip("pip install umap-learn")
        self.clusters_spin = QSpinBox()
        self.clusters_spin.setRange(2, 20)
        self.clusters_spin.setValue(3)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        row = QHBoxLayout()
        row.addWidget(self.method_combo)
        row.addWidget(QLabel("clusters"))
        row.addWidget(self.clusters_spin)
        row.addWidget(QLabel("seed"))
        row.addWidget(self.seed_spin)
        form.addRow("Embedding", row)
        self.explore_button = QPushButton("Embed + cluster")
        form.addRow(self.explore_button)
        note = QLabel(NOT_DETERMINISTIC)
        note.setWordWrap(True)
        note.setStyleSheet("color: #c0a060;")
        outer.addWidget(box)
        outer.addWidget(note)

        self.tabs = QTabWidget()
        self.scatter_figure = Figure(figsize=(4, 3.6), layout="constrained")
        self.scatter_canvas = FigureCanvasQTAgg(self.scatter_figure)
        self.scatter_ax = self.scatter_figure.add_subplot()
        self.correlation_figure = Figure(figsize=(4, 3.6), layout="constrained")
        self.correlation_canvas = FigureCanvasQTAgg(self.correlation_figure)
        self.importance_figure = Figure(figsize=(4, 3.6), layout="constrained")
        self.importance_canvas = FigureCanvasQTAgg(self.importance_figure)
        for canvas in (self.scatter_canvas, self.correlation_canvas, self.importance_canvas):
            canvas.setMinimumHeight(300)
        self.tabs.addTab(self.scatter_canvas, "Embedding")
        self.tabs.addTab(self.correlation_canvas, "Correlation")
        self.tabs.addTab(self.importance_canvas, "Importance")
        self.explain_panel = ExplainPanel(self, source=self._explained)
        self.tabs.addTab(self.explain_panel, "Explain")
        outer.addWidget(self.tabs)
        row = QHBoxLayout()
        row.addWidget(QLabel("Colour points by"))
        self.colour_combo = QComboBox()
        self.colour_combo.addItems(["k-means cluster", "predicted class"])
        row.addWidget(self.colour_combo)
        outer.addLayout(row)
        self.separating_label = QLabel("")
        self.separating_label.setWordWrap(True)
        outer.addWidget(self.separating_label)
        self.scatter_points = None
        self.selection_points = None
        self._lasso = None
        self._draw_empty_plots()

        box = QGroupBox("3. Label objects and train")
        form = QFormLayout(box)
        self.class_names_edit = QLineEdit("round, elongated")
        self.class_names_edit.setToolTip("Comma-separated; class 1 is the first name.")
        form.addRow("Classes", self.class_names_edit)
        self.click_combo = QComboBox()
        form.addRow("A click on an object", self.click_combo)
        row = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.save_button = QPushButton("Save…")
        self.load_button = QPushButton("Load…")
        for b in (self.train_button, self.save_button, self.load_button):
            row.addWidget(b)
        form.addRow(row)
        outer.addWidget(box)

        box = QGroupBox("4. What to label next")
        form = QFormLayout(box)
        self.strategy_combo = QComboBox()
        self.strategy_combo.addItems(list(core.STRATEGIES))
        row = QHBoxLayout()
        row.addWidget(self.strategy_combo)
        self.suggest_button = QPushButton("Suggest")
        self.next_button = QPushButton("Next ▶")
        row.addWidget(self.suggest_button)
        row.addWidget(self.next_button)
        form.addRow("Strategy", row)
        outer.addWidget(box)

        self.cancel_button.setToolTip(
            "Stop waiting for the running step: its result is dropped and everything stays as it was. "
            "(A t-SNE or UMAP already started finishes in the background; nothing uses its result.)")
        outer.addStretch(1)

        self.measure_button.clicked.connect(self.measure)
        self.export_button.clicked.connect(self._export_dialog)
        self.explore_button.clicked.connect(self.explore)
        self.colour_combo.currentIndexChanged.connect(self._draw_scatter)
        self.class_names_edit.editingFinished.connect(self._refresh_click_modes)
        self.train_button.clicked.connect(self.train)
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button.clicked.connect(self._load_dialog)
        self.suggest_button.clicked.connect(self.suggest)
        self.next_button.clicked.connect(self.next_suggestion)
        self._refresh_click_modes()

    def _draw_empty_plots(self):
        for fig, text in ((self.scatter_figure, "Measure, then Embed + cluster"),
                          (self.correlation_figure, "Feature correlation after Embed + cluster"),
                          (self.importance_figure, "Feature importance after Train")):
            fig.clear()
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            if fig is self.scatter_figure:
                self.scatter_ax = ax
            fig.canvas.draw_idle()

    # -- layers --------------------------------------------------------------------
    @property
    def objects_layer(self):
        return self.objects_picker.value

    def _own_labels_layer(self, name, data, **kwargs):
        """Create or update one of this widget's Labels layers, aligned with the objects."""
        src = self.objects_layer
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
        else:
            layer = self.viewer.add_labels(data, name=name, scale=src.scale,
                                           translate=src.translate, **kwargs)
        return layer

    @property
    def class_names(self):
        names = [n.strip() for n in self.class_names_edit.text().split(",") if n.strip()]
        return {k + 1: n for k, n in enumerate(names[: len(CLASS_COLOURS)])}

    def _refresh_click_modes(self):
        current = self.click_combo.currentIndex()
        self.click_combo.clear()
        self.click_combo.addItem(SELECT_MODE, 0)
        for value, name in self.class_names.items():
            self.click_combo.addItem(f"labels it {value}: {name}", value)
        self.click_combo.addItem("removes its label", -1)
        if 0 <= current < self.click_combo.count():
            self.click_combo.setCurrentIndex(current)

    # -- workers -------------------------------------------------------------------
    def _start(self, fn, *args, on_done, desc, **kwargs):
        """Run ``fn(*args, **kwargs)`` in the base's worker (cancel, newest request wins)."""
        return self.run(lambda task: fn(*args, **kwargs), on_done, desc=desc)

    def _need_table(self):
        if self.table is None or self.objects_layer is None:
            self.fail("Measure the objects first (step 1).")
            return False
        return True

    # -- 1. measure ----------------------------------------------------------------
    def measure(self, *_):
        """Measure the chosen objects (in a worker); emits ``measured``."""
        layer = self.objects_layer
        if layer is None:
            self.fail("Add or pick a Labels layer with the objects (0 = background).")
            return
        image = self.image_layer
        obj = np.asarray(layer.data)
        intensity = None if image is None else np.asarray(image.data)
        if intensity is not None and intensity.shape != obj.shape:
            self.fail(f"The image {image.name!r} {intensity.shape} and the objects "
                       f"{obj.shape} differ in shape; pick the matching image.")
            return
        self._start(core.measure, obj, intensity, spacing=tuple(layer.scale),
                    on_done=lambda t, obj=obj: self._on_measured(obj, t),
                    desc="Measuring objects")

    def _on_measured(self, obj, table):
        self._objects = obj
        self.table = table
        self.exploration = self.classifier = self.proba = None
        self.suggestions, self._next = [], 0
        self._write_features()
        self._draw_empty_plots()
        self.set_status(f"Measured {len(table['label'])} objects: "
                            f"{', '.join(core.measurement_names(table))}.")
        self.measured.emit()

    def _write_features(self):
        # 'index' maps label values to rows, so napari shows the row when hovering
        self.objects_layer.features = {"index": self.table["label"], **self.table}

    def export_csv(self, path):
        if not self._need_table():
            return None
        return core.to_csv(self.table, path)

    def _export_dialog(self):
        if not self._need_table():
            return
        path = self.ask_path("Export measurements", "CSV (*.csv)", save_as="objects.csv")
        if path:
            self.set_status(f"Wrote {self.export_csv(path)}")

    # -- 2. explore ----------------------------------------------------------------
    def explore(self, *_):
        """Embedding + k-means + correlation (in a worker); emits ``explored``."""
        if not self._need_table():
            return
        self._start(core.explore, self.table, self.method_combo.currentData(),
                    self.clusters_spin.value(), random_state=self.seed_spin.value(),
                    on_done=self._on_explored, desc="Embedding and clustering")

    def _on_explored(self, result):
        self.exploration = result
        self.table["cluster"] = result.clusters
        self._write_features()
        self.colour_combo.setCurrentIndex(0)
        self._draw_scatter()
        self._draw_correlation()
        top = ", ".join(f"{n} ({s:.0f})" for n, s in result.separating[:4])
        self.separating_label.setText(
            f"Measurements that differ most between the clusters (ANOVA F): {top}")
        self.set_status("Draw a lasso or click points to see those objects; "
                            "click objects in the viewer to find their points.")
        self.explored.emit()

    def _draw_scatter(self, *_):
        if self.exploration is None:
            return
        fig = self.scatter_figure
        fig.clear()
        ax = self.scatter_ax = fig.add_subplot()
        e = self.exploration.embedding
        by_class = self.colour_combo.currentIndex() == 1 and self.proba is not None
        groups = (self.classifier.predict(self.table) if by_class
                  else self.exploration.clusters)
        names = self.class_names
        for g in np.unique(groups):
            m = groups == g
            colour = CLASS_COLOURS[(int(g) - 1) % len(CLASS_COLOURS)]
            label = names.get(int(g), f"class {g}") if by_class else f"cluster {g}"
            ax.scatter(e[m, 0], e[m, 1], s=14, color=colour, label=label, picker=False)
        ax.legend(fontsize="x-small", loc="best", markerscale=1.2)
        method = dict((k, t) for t, k in METHODS)[self.exploration.method].split(" ")[0]
        ax.set_xlabel(f"{method} 1", fontsize="small")
        ax.set_ylabel(f"{method} 2", fontsize="small")
        ax.tick_params(labelsize="x-small")
        what = "predicted class" if by_class else "k-means cluster"
        ax.set_title(f"{len(e)} objects, {method} (seed {self.seed_spin.value()}), "
                     f"coloured by {what}", fontsize="small")
        self.selection_points = ax.scatter([], [], s=70, facecolors="none",
                                           edgecolors="black", linewidths=1.5)
        self._lasso = LassoSelector(ax, onselect=self._on_lasso)
        self._show_selection_in_plot()

    def _draw_correlation(self):
        r = self.exploration
        fig = self.correlation_figure
        fig.clear()
        ax = fig.add_subplot()
        im = ax.imshow(r.correlation, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(r.names)), r.names, rotation=90, fontsize="xx-small")
        ax.set_yticks(range(len(r.names)), r.names, fontsize="xx-small")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title("Pearson correlation of measurements", fontsize="small")
        self.correlation_canvas.draw_idle()

    # -- selection, both ways --------------------------------------------------------
    def _on_lasso(self, vertices):
        """Select the points inside a lasso (a click selects the nearest point)."""
        e = self.exploration.embedding
        verts = np.asarray(vertices, float)
        if len(verts) >= 3:
            inside = PolygonPath(verts).contains_points(e)
            ids = self.table["label"][inside]
        else:  # a click: the nearest point
            ids = self.table["label"][[int(np.argmin(np.linalg.norm(e - verts[0], axis=1)))]]
        self.select_objects(ids)

    def select_objects(self, ids):
        """Highlight objects ``ids`` in the viewer (layer "selected objects") and in the plot."""
        if not self._need_table():
            return
        self.selected = np.asarray(ids, np.int64).ravel()
        mask = np.isin(self._objects, self.selected).astype(np.uint8)
        layer = self._own_labels_layer(SELECTION, mask, opacity=1.0)
        layer.contour = 2
        layer.colormap = DirectLabelColormap(color_dict={None: "transparent", 0: "transparent",
                                                         1: "yellow"})
        self._show_selection_in_plot()
        n = self.selected.size
        self.set_status(f"{n} object(s) selected" + (f": {self.selected[:10].tolist()}"
                                                        if n else ""))
        self.selection_changed.emit(self.selected)

    def _show_selection_in_plot(self):
        if self.selection_points is None or self.exploration is None:
            return
        rows = np.isin(self.table["label"], self.selected)
        self.selection_points.set_offsets(self.exploration.embedding[rows].reshape(-1, 2))
        self.scatter_canvas.draw_idle()

    def _object_at(self, position):
        layer = self.objects_layer
        if layer is None or self._objects is None:
            return 0
        data_pos = np.round(layer.world_to_data(position)).astype(int)[-self._objects.ndim:]
        if np.any(data_pos < 0) or np.any(data_pos >= self._objects.shape):
            return 0
        return int(self._objects[tuple(data_pos)])

    def _on_viewer_click(self, viewer, event):
        """Click on an object: select it (and its point) or give it the chosen class."""
        if self.table is None or getattr(event, "button", 1) != 1:
            return
        try:
            self.click_combo.currentData()
        except RuntimeError:  # the Qt side of this widget is gone; its callback stayed
            _disconnect_from_viewer(self.viewer, self._on_viewer_click)()
            return
        oid = self._object_at(event.position)
        if oid == 0:
            return
        value = self.click_combo.currentData()
        if value:
            self.annotate_objects([oid], max(value, 0))
        if any(getattr(m, "name", str(m)) == "Shift" for m in getattr(event, "modifiers", ())):
            self.select_objects(np.union1d(self.selected, [oid]))
        else:
            self.select_objects([oid])

    def annotate_objects(self, ids, value):
        """Give objects ``ids`` class ``value`` (0 removes it) in the "object annotations" layer."""
        if ANNOTATIONS in self.viewer.layers:
            layer = self.viewer.layers[ANNOTATIONS]
            data = np.asarray(layer.data)
            data[np.isin(self._objects, ids)] = value
            layer.data = data
        else:
            data = np.zeros(self._objects.shape, np.uint8)
            data[np.isin(self._objects, ids)] = value
            layer = self._own_labels_layer(ANNOTATIONS, data, opacity=0.6)
            layer.colormap = _class_colormap()
        self.set_status(self._annotation_summary())

    def object_labels(self):
        """Class per measured object from the annotations layer (0 = not labelled)."""
        if ANNOTATIONS not in self.viewer.layers:
            return np.zeros(len(self.table["label"]), np.int64)
        return core.object_annotations(self._objects, self.viewer.layers[ANNOTATIONS].data,
                                       ids=self.table["label"])

    def _annotation_summary(self):
        y = self.object_labels()
        counts = ", ".join(f"{self.class_names.get(int(k), k)}: {int((y == k).sum())}"
                           for k in np.unique(y[y > 0]))
        return f"Labelled objects: {counts or 'none'}."

    # -- 3. train ------------------------------------------------------------------
    def train(self, *_):
        """Train the object classifier on the labelled objects (in a worker); emits ``trained``."""
        if not self._need_table():
            return
        y = self.object_labels()
        self._start(_fit_and_predict, self.table, y, on_done=self._on_trained,
                    desc="Training the object classifier")

    def _on_trained(self, result):
        clf, proba = result
        self._set_classifier(clf, proba)
        self.set_status(f"Trained on {clf.n_training_objects_} objects. "
                            + self._annotation_summary())
        self.trained.emit()

    def _set_classifier(self, clf, proba):
        self.classifier, self.proba = clf, proba
        pred = clf.classes_[np.argmax(proba, axis=1)]
        names = self.class_names
        self.table["class"] = pred
        self.table["class_name"] = np.array([names.get(int(c), str(c)) for c in pred])
        self.table["class_probability"] = proba.max(axis=1)
        self._write_features()
        layer = self._own_labels_layer(RESULT, core.object_classes(
            self._objects, self.table["label"], pred), opacity=0.5)
        layer.colormap = _class_colormap()
        self._draw_importance()
        if self.exploration is not None:
            self.colour_combo.setCurrentIndex(1)
            self._draw_scatter()

    def _draw_importance(self):
        rows = self.classifier.importances()[::-1]
        fig = self.importance_figure
        fig.clear()
        ax = fig.add_subplot()
        y = np.arange(len(rows))
        ax.barh(y - 0.2, [r["impurity"] for r in rows], height=0.4, label="impurity (forest splits)")
        ax.barh(y + 0.2, [r["permutation"] for r in rows], height=0.4,
                xerr=[r["permutation_std"] for r in rows],
                label="permutation (objects whose class changes)")
        ax.set_yticks(y, [r["measurement"] for r in rows], fontsize="xx-small")
        ax.tick_params(axis="x", labelsize="x-small")
        ax.legend(fontsize="x-small")
        ax.set_title("Feature importance", fontsize="small")
        self.importance_canvas.draw_idle()

    def _explained(self):
        """The classifier and the labelled objects' measurements for the Explain tab."""
        clf = self.classifier
        if clf is None or self.table is None:
            raise InputError("There is no object classifier yet: label objects of two classes and press Train.")
        y = self.object_labels()
        x, _ = core.feature_matrix(self.table, clf.feature_names_in_)
        x = np.where(np.isnan(x), clf.fill_values_, x)[y > 0]  # the values the forest was trained with
        colours = {k + 1: c for k, c in enumerate(CLASS_COLOURS)}
        return Explained(clf, lambda: (x, y[y > 0]), "labelled objects", class_colours=colours,
                         class_names=self.class_names)

    def save_classifier(self, path):
        if self.classifier is None:
            self.fail("Train the object classifier before saving it.")
            return None
        path = save_object_classifier(self.classifier, path, class_names=self.class_names)
        self.set_status(f"Saved {path}")
        return path

    def load_classifier(self, path):
        """Load a ``.aaobjects`` file and classify the measured objects with it."""
        if not self._need_table():
            return
        try:
            clf = load_object_classifier(path)
            proba = clf.predict_proba(self.table)
        except AnnotatorError as e:
            self.fail(str(e))
            return
        if clf.class_names_:
            self.class_names_edit.setText(", ".join(
                clf.class_names_.get(k, str(k)) for k in range(1, max(clf.class_names_) + 1)))
            self._refresh_click_modes()
        self._set_classifier(clf, proba)
        self.set_status(f"Loaded {Path(path).name}; classified {len(proba)} objects.")
        self.trained.emit()

    def _save_dialog(self):
        path = self.ask_path("Save object classifier", FILE_FILTER, save_as="objects.aaobjects")
        if path:
            self.save_classifier(path)

    def _load_dialog(self):
        path = self.ask_path("Load object classifier", FILE_FILTER)
        if path:
            self.load_classifier(path)

    # -- 4. suggestions --------------------------------------------------------------
    def suggest(self, *_):
        """Rank unlabelled objects (in a worker); emits ``suggested``; then Next visits them."""
        if not self._need_table():
            return
        self._start(core.suggest_objects, self.table, proba=self.proba,
                    labelled=self.object_labels(), n=10,
                    strategy=self.strategy_combo.currentText(),
                    random_state=self.seed_spin.value(),
                    on_done=self._on_suggested, desc="Ranking objects")

    def _on_suggested(self, suggestions):
        self.suggestions, self._next = list(suggestions), 0
        self.set_status(f"{len(self.suggestions)} suggestions; press Next.")
        self.suggested.emit()
        self.next_suggestion()

    def next_suggestion(self, *_):
        """Centre the view on the next suggested object and select it."""
        if not self.suggestions:
            self.fail("Press Suggest first.")
            return None
        s = self.suggestions[self._next % len(self.suggestions)]
        self._next += 1
        layer = self.objects_layer
        ndim = self._objects.ndim
        data_centre = [self.table[f"centroid-{i}"][s.index] / layer.scale[i] for i in range(ndim)]
        world = np.asarray(layer.data_to_world(data_centre))
        lead = self.viewer.dims.ndim - ndim
        for i, v in enumerate(world):
            self.viewer.dims.set_point(lead + i, v)
        camera = self.viewer.scene.camera if hasattr(self.viewer, "scene") else self.viewer.camera
        camera.center = tuple(world[-self.viewer.dims.ndisplay:])
        self.select_objects([s.label])
        k = (self._next - 1) % len(self.suggestions) + 1
        self.set_status(f"Suggestion {k}/{len(self.suggestions)}: object {s.label}, "
                            f"{s.reason}. Click it with a class to label it.")
        return s


def _fit_and_predict(table, y):
    clf = core.ObjectClassifier().fit(table, y)
    return clf, clf.predict_proba(table)


def _disconnect_from_viewer(viewer, on_click):
    """A callable that unhooks a closed widget's click handler from the viewer (holds no Qt object)."""

    def disconnect(*_):
        if on_click in viewer.mouse_drag_callbacks:
            viewer.mouse_drag_callbacks.remove(on_click)

    return disconnect
