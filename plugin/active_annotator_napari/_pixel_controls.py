"""The Pixel classifier dock's model controls: which features, which forest.

:class:`ModelControls` holds the "Features" and "Random forest" groups and
turns them into a :class:`~active_annotator.FeatureSet` and a
:class:`~active_annotator.PixelClassifier` (the core validates the values and
words the errors), into a project's settings and back.
"""

from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from active_annotator import FAMILIES, FeatureSet, PixelClassifier
from active_annotator.classifier import MAX_STAGES
from active_annotator.errors import AnnotatorError, InputError

from ._dock import choice_combo, choice_value, set_choice

FAMILY_TEXT = {
    "original": ("Original intensity", "The pixel value itself (per channel)."),
    "gaussian": ("Gaussian smoothing", "Local mean brightness at each scale."),
    "dog": ("Difference of Gaussians", "Band-pass: edges and blobs between consecutive scales."),
    "log": ("Laplacian of Gaussian", "Blob detector: bright or dark spots of about the scale's size."),
    "hessian": ("Hessian eigenvalues", "Local curvature: ridges, valleys, corners and texture."),
    "deep": ("Pretrained CNN (deep)", ("Activations of an ImageNet-pretrained CNN (EfficientNet-Lite0), "
                                       "reduced to 32 per channel; slower. "
                                       "Needs: pip install \"napari-active-annotator[deep]\".")),
}
DEFAULT_SIGMAS = "1, 2, 4, 8"
# (text shown, class_weight); "auto" also sets context_sigmas="auto" (docs/classifier_strength.md)
WEIGHT_CHOICES = (("none", None), ("balanced (rare classes count more)", "balanced"),
                  ("auto (chosen from the labels)", "auto"))
DEFAULT_TREES = 100
LIVE_TREES = 32  # Live mode: a fast preview forest; nuclei2d starter strokes: Jaccard 0.738 vs 0.734 with 100


def _spin(lo, hi, value, tip, special=None):
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    box.setToolTip(tip)
    if special:
        box.setSpecialValueText(special)
    return box


class ModelControls(QWidget):
    """Feature families and scales, number of trees, depth, stages, Live mode's trees."""

    def __init__(self):
        super().__init__()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
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
        self.trees_spin = _spin(1, 2000, DEFAULT_TREES,
                                "More trees: smoother probabilities, slower training and prediction.")
        form.addRow("Number of trees", self.trees_spin)
        self.depth_spin = _spin(0, 200, 0, "Maximum depth of each tree; 0 = grow until leaves are pure.",
                                special="unlimited")
        form.addRow("Max depth", self.depth_spin)
        self.stages_spin = _spin(
            1, MAX_STAGES, 1, "Autocontext: each further stage is a forest that also sees the previous stage's "
            "smoothed probabilities (slower; often better on textured or low-contrast images).")
        form.addRow("Stages", self.stages_spin)
        self.weight_combo = choice_combo(
            WEIGHT_CHOICES, "How much each class counts in training.\nNone: every labelled pixel the same. "
            "Balanced: a rare class counts as much as a common one (a small lesion painted densely).\n"
            "Auto: picks one of the two by an out-of-fold score on your labels (slower; with Stages 2 or\n"
            "more it also widens the context to the size of your rarest class's regions).")
        form.addRow("Class weights", self.weight_combo)
        self.live_trees_spin = _spin(
            1, 2000, LIVE_TREES, "Live mode retrains after every stroke with at most this many trees: a fast "
            "preview. Train (the button) always uses 'Number of trees'.")
        form.addRow("Trees in Live mode", self.live_trees_spin)
        outer.addWidget(forest_box)

    def feature_set(self, ndim: int) -> FeatureSet:
        """The FeatureSet the controls describe; raises InputError with a fix if they are invalid."""
        text = self.sigmas_edit.text().replace(";", ",")
        try:
            sigmas = tuple(float(s) for s in text.replace(" ", ",").split(",") if s.strip())
        except ValueError:
            raise InputError(
                f"Scales must be numbers separated by commas, e.g. {DEFAULT_SIGMAS!r}; got {text!r}."
            ) from None
        families = tuple(f for f, box in self.family_checks.items() if box.isChecked())
        return FeatureSet(sigmas=sigmas, families=families, ndim=ndim)

    def classifier(self, ndim: int, live: bool = False) -> PixelClassifier:
        """A new, untrained classifier; ``live``: at most "Trees in Live mode" trees."""
        trees = self.trees_spin.value()
        if live:
            trees = min(trees, self.live_trees_spin.value())
        weight = choice_value(self.weight_combo, WEIGHT_CHOICES)
        return PixelClassifier(features=self.feature_set(ndim), n_estimators=trees,
                               max_depth=self.depth_spin.value() or None, stages=self.stages_spin.value(),
                               class_weight=weight, context_sigmas="auto" if weight == "auto" else None)

    def show_features(self, fs: FeatureSet) -> None:
        for fam, box in self.family_checks.items():
            box.setChecked(fam in fs.families)
        self.sigmas_edit.setText(", ".join(f"{s:g}" for s in fs.sigmas))

    def show_classifier(self, clf) -> None:
        """Set the controls to a trained or loaded classifier's settings."""
        self.show_features(clf.feature_set)
        self.trees_spin.setValue(int(clf.n_estimators))
        self.depth_spin.setValue(int(clf.max_depth or 0))
        self.stages_spin.setValue(int(clf.n_stages))
        weight = clf.class_weight if clf.class_weight in ("balanced", "auto") else None
        set_choice(self.weight_combo, WEIGHT_CHOICES, weight)

    def settings(self, ndim: int) -> dict:
        """The controls as a project's settings (invalid sigmas typed: left out)."""
        settings = {"n_estimators": self.trees_spin.value(), "max_depth": self.depth_spin.value(),
                    "live_trees": self.live_trees_spin.value(), "stages": self.stages_spin.value(),
                    "class_weight": choice_value(self.weight_combo, WEIGHT_CHOICES)}
        try:
            settings["features"] = self.feature_set(ndim).to_dict()
        except AnnotatorError:
            pass
        return settings

    def apply(self, settings: dict) -> None:
        """Restore :meth:`settings`; values that do not validate keep the controls as they are."""
        if "features" in settings:
            try:
                self.show_features(FeatureSet.from_dict(settings["features"]))
            except AnnotatorError:
                pass  # a hand-edited project: keep the current features
        for key, spin in (("n_estimators", self.trees_spin), ("max_depth", self.depth_spin),
                          ("live_trees", self.live_trees_spin), ("stages", self.stages_spin)):
            spin.setValue(int(settings.get(key, spin.value())))
        if settings.get("class_weight") in [v for _, v in WEIGHT_CHOICES]:
            set_choice(self.weight_combo, WEIGHT_CHOICES, settings["class_weight"])
