"""The "CNN fine-tuning" dock widget in a real napari viewer (run under Xvfb).

Kept fast: a 96x96 crop of the nuclei sample, 2-3 short epochs of 32x32
patches, one torch thread (the machine is shared). Tests wait for the
widget's signals, never sleep.
"""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("torch")
pytest.importorskip("safetensors")

from active_annotator import data  # noqa: E402
from active_annotator.cnn import CNNClassifier, CNNConfig  # noqa: E402
from active_annotator_napari import _cnn_widget  # noqa: E402
from active_annotator_napari._cnn_widget import (  # noqa: E402
    CNN_PREDICTION,
    CNN_UNCERTAINTY,
    INSTALL_HINT,
    OUTPUT_LAYERS,
    CNNWidget,
)
from active_annotator_napari._layers import (  # noqa: E402
    CNN_SOURCE,
    probability_layers,
    put_probability_layers,
    read_probabilities,
)

pytestmark = pytest.mark.gui

TIMEOUT_MS = 120_000
SIZE = 96


def sample():
    """A 96x96 crop of nuclei2d (30% nucleus) with sparse strokes made from the truth:
    every 12th row, split into short segments (several strokes per class, so some are
    held out for validation)."""
    d = data.nuclei2d()
    c = (slice(384, 384 + SIZE), slice(144, 144 + SIZE))
    image, truth = d["image"][c].copy(), d["truth"][c].copy()
    labels = np.zeros_like(truth)
    labels[::12, :] = truth[::12, :]
    labels[:, 40:44] = 0  # cut each row into two strokes
    return image, labels, truth


def dock(viewer, epochs=2, batches=3, warm_start=False):
    widget = CNNWidget(viewer)
    viewer.window.add_dock_widget(widget, name="CNN fine-tuning")
    widget.epochs_spin.setValue(epochs)
    widget.batches_spin.setValue(batches)
    widget.batch_size_spin.setValue(4)
    widget.patch_spin.setValue(32)
    widget.threads_spin.setValue(1)
    widget.warm_check.setChecked(warm_start)
    return widget


def add_sample(viewer):
    image, labels, truth = sample()
    viewer.add_image(image, name="nuclei")
    viewer.add_labels(labels, name="annotations")
    return image, labels, truth


@pytest.fixture(scope="module")
def saved_cnn(tmp_path_factory):
    """A CNN trained by the core on the sample strokes and saved, with its probabilities."""
    image, labels, _ = sample()
    cfg = CNNConfig(epochs=2, batches_per_epoch=3, batch_size=4, patch_size=32, seed=1)
    clf = CNNClassifier.from_config(cfg, device="cpu", n_threads=1).fit(image, labels)
    path = clf.save(tmp_path_factory.mktemp("cnn") / "nuclei.aacnn")
    return path, clf.predict_proba(image)


# -- the main path -----------------------------------------------------------------
def test_plugin_menu_opens_the_widget_with_the_viewer(viewer):
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-active-annotator", "CNN fine-tuning")
    assert isinstance(widget, CNNWidget)
    assert widget.fit_button.text() == "Fine-tune CNN"


def test_fine_tune_writes_prediction_probabilities_uncertainty_and_loss_curve(viewer, qtbot, run_until_done):
    add_sample(viewer)
    widget = dock(viewer, epochs=3)
    epochs_seen = []
    widget.progressed.connect(lambda info: epochs_seen.append(info) if info["event"] == "epoch" else None)
    run_until_done(widget, widget.fit_button.click)

    prediction = viewer.layers[CNN_PREDICTION]
    assert isinstance(prediction, napari.layers.Labels)
    assert prediction.data.shape == (SIZE, SIZE)
    assert set(np.unique(prediction.data)) <= {1, 2}
    layers = probability_layers(viewer, CNN_SOURCE)
    assert sorted(layers) == [1, 2] and not any(ly.visible for ly in layers.values())
    assert layers[2].name.startswith("cnn probability 2")
    proba, classes = read_probabilities(viewer, CNN_SOURCE)
    assert proba.shape == (2, SIZE, SIZE) and classes == [1, 2]
    np.testing.assert_allclose(proba.sum(axis=0), 1.0, atol=1e-4)
    uncertainty = viewer.layers[CNN_UNCERTAINTY].data
    assert uncertainty.shape == (SIZE, SIZE)
    assert 0.0 <= uncertainty.min() and uncertainty.max() <= 1.0 + 1e-6
    # one curve point per epoch event, training and validation (held-out strokes exist)
    n = len(widget.cnn.history_["epoch"])
    assert 1 <= n <= 3 and len(epochs_seen) == n
    assert len(widget.train_line.get_xdata()) == n
    assert np.isfinite(widget.val_line.get_ydata()).sum() == n
    assert "CPU" in widget.status.text() and "Fine-tuned" in widget.status.text()
    assert not widget.cancel_button.isEnabled()
    assert viewer.layers.selection.active.name == "annotations"  # painting can go on


def test_mc_dropout_uncertainty_layer(viewer, qtbot, run_until_done):
    add_sample(viewer)
    widget = dock(viewer, epochs=1, batches=2)
    widget.mc_check.setChecked(True)
    widget.mc_spin.setValue(3)
    run_until_done(widget, widget.fit_button.click)
    assert viewer.layers[CNN_UNCERTAINTY].data.shape == (SIZE, SIZE)
    assert "MC dropout (3 passes)" in widget.status.text()


def test_cancel_stops_within_one_batch_and_writes_no_layers(viewer, qtbot):
    add_sample(viewer)
    widget = dock(viewer, epochs=500, batches=10)
    jobs = []

    def cancel_on_first_batch(info):
        if not jobs:
            jobs.append(widget._job)
            widget.cancel_button.click()

    widget.progressed.connect(cancel_on_first_batch)
    trained = []
    widget.trained.connect(lambda: trained.append(1))
    with qtbot.waitSignal(widget.cancelled, timeout=TIMEOUT_MS):
        widget.fit_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    assert trained == []
    assert jobs[0].batches_after_stop <= 1  # the core checks the flag before every batch
    assert not any(name in viewer.layers for name in OUTPUT_LAYERS)
    assert widget.cnn is None
    assert "Cancelled" in widget.status.text()
    assert not widget.cancel_button.isEnabled()


def test_new_request_replaces_the_running_one(viewer, qtbot, run_until_done):
    add_sample(viewer)
    widget = dock(viewer, epochs=500, batches=10)
    trained = []
    widget.trained.connect(lambda: trained.append(1))
    widget.fit_button.click()
    first = widget._job
    widget.epochs_spin.setValue(1)
    widget.batches_spin.setValue(2)
    run_until_done(widget, widget.fit_button.click)
    assert first.stop.is_set()
    assert trained == [1]
    assert widget.cnn.config_.epochs == 1


def test_one_dimensional_signal_with_a_labels_row(viewer, qtbot, run_until_done):
    """A (channels, time) record with its labels as one row (1, T), as the Signal reader lays it out."""
    rng = np.random.default_rng(0)
    truth = np.where((np.arange(2048) // 256) % 2 == 0, 1, 2).astype(np.uint8)
    signal = (rng.normal(size=(3, 2048)) * np.where(truth == 2, 3.0, 0.5)).astype(np.float32)
    viewer.add_image(signal, name="record", scale=(0.75, 0.01))
    labels = np.zeros((1, 2048), np.uint8)
    labels[0, ::7] = truth[::7]
    viewer.add_labels(labels, name="annotations", scale=(0.75, 0.01), translate=(2.25, 0.0))
    widget = dock(viewer, epochs=2, batches=2)
    widget.patch_spin.setValue(0)  # auto: 512 samples in 1-D
    widget.dims_combo.setCurrentIndex(1)  # "1D signal"
    widget.channel_combo.setCurrentIndex(2)  # "first axis"
    assert widget.channel_axis == 0 and widget.dims == 1
    run_until_done(widget, widget.fit_button.click)

    assert widget.cnn.config_.dims == 1 and widget.cnn.config_.in_channels == 3
    prediction = viewer.layers[CNN_PREDICTION]
    assert prediction.data.shape == (1, 2048)
    assert tuple(prediction.translate) == (2.25, 0.0)  # drawn where the labels row is
    assert read_probabilities(viewer, CNN_SOURCE)[0].shape == (2, 1, 2048)
    assert viewer.layers[CNN_UNCERTAINTY].data.shape == (1, 2048)


def test_signal_reader_layers_choose_a_1d_network_with_channels_first(viewer):
    pytest.importorskip("obspy")
    from active_annotator_napari._signal_reader import seismogram

    for layer_data, kwargs, kind in seismogram():
        getattr(viewer, f"add_{kind}")(layer_data, **kwargs)
    widget = dock(viewer)
    assert widget.image_layer.name == "seismogram_BW_RJOB"
    assert widget.dims == 1 and widget.channel_axis == 0


def test_closing_the_widget_stops_its_training(viewer, qtbot):
    add_sample(viewer)
    widget = dock(viewer, epochs=500, batches=10)
    widget.fit_button.click()
    job = widget._job
    qtbot.waitUntil(lambda: job.task.worker.is_running, timeout=5000)
    viewer.window.remove_dock_widget(widget)
    widget.deleteLater()
    qtbot.waitUntil(lambda: job.stop.is_set(), timeout=10_000)
    qtbot.waitUntil(lambda: not job.task.worker.is_running, timeout=TIMEOUT_MS)


# -- save and load ---------------------------------------------------------------------
def test_load_then_save_round_trip_gives_identical_probabilities(viewer, qtbot, saved_cnn, tmp_path, run_until_done):
    path, reference = saved_cnn
    add_sample(viewer)
    widget = dock(viewer)
    run_until_done(widget, lambda: widget.load_cnn(path), signal=widget.predicted)
    np.testing.assert_allclose(read_probabilities(viewer, CNN_SOURCE)[0], reference, atol=1e-5)
    assert widget.seed_spin.value() == 1  # the file's settings are shown
    assert len(widget.train_line.get_xdata()) == 2  # and its loss curve

    written = widget.save_cnn(tmp_path / "again")
    assert written == tmp_path / "again.aacnn" and written.exists()
    for layer in probability_layers(viewer, CNN_SOURCE).values():
        viewer.layers.remove(layer)
    other = dock(viewer)
    run_until_done(other, lambda: other.load_cnn(written), signal=other.predicted)
    np.testing.assert_allclose(read_probabilities(viewer, CNN_SOURCE)[0], reference, atol=1e-5)


def test_corrupt_or_foreign_file_gives_a_clear_message_and_keeps_the_model(viewer, qtbot, saved_cnn, tmp_path, run_until_done):
    path, _ = saved_cnn
    add_sample(viewer)
    widget = dock(viewer)
    run_until_done(widget, lambda: widget.load_cnn(path), signal=widget.predicted)
    model = widget.cnn
    before = viewer.layers[CNN_PREDICTION].data.copy()

    failures = []
    widget.failed.connect(failures.append)
    corrupt = tmp_path / "corrupt.aacnn"
    corrupt.write_bytes(path.read_bytes()[:200])  # truncated
    assert widget.load_cnn(corrupt) is False
    pickled = tmp_path / "pickled.aacnn"
    pickled.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    assert widget.load_cnn(pickled) is False

    assert len(failures) == 2
    assert all(m.startswith("Could not load the CNN:") for m in failures)
    assert "corrupt.aacnn" in failures[0] and "pickled.aacnn" in failures[1]
    assert widget.status.text().startswith("Error: Could not load the CNN")
    assert widget.cnn is model
    np.testing.assert_array_equal(viewer.layers[CNN_PREDICTION].data, before)


def test_model_for_other_channels_is_refused(viewer, qtbot, saved_cnn):
    path, _ = saved_cnn
    image, _, _ = sample()
    viewer.add_image(np.stack([image, image, image]), name="three channels")
    widget = dock(viewer)
    assert widget.channel_axis == 0  # guessed from the short first axis
    failures = []
    widget.failed.connect(failures.append)
    assert widget.load_cnn(path) is False
    assert "does not fit 'three channels'" in failures[0] and "1 channel" in failures[0]
    assert widget.cnn is None


# -- warm start ------------------------------------------------------------------------
def test_warm_start_distils_the_pixel_classifiers_session(viewer, qtbot, run_until_done):
    from active_annotator_napari._widget import PixelClassifierWidget

    add_sample(viewer)
    pixel = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(pixel, name="Pixel classifier")
    pixel.trees_spin.setValue(10)
    run_until_done(pixel, pixel.train_button.click)
    forest = pixel.session.probabilities  # read from the session, not from its layers
    for layer in probability_layers(viewer, "pixel classifier").values():
        viewer.layers.remove(layer)
    widget = dock(viewer, epochs=2, warm_start=True)
    widget.warm_epochs_spin.setValue(2)
    run_until_done(widget, widget.fit_button.click)

    phases = widget.cnn.history_["phase"]
    assert phases[:2] == ["warm_start", "warm_start"] and "finetune" in phases
    assert len(widget.warm_line.get_xdata()) == 2
    assert "warm start from the forest" in widget.status.text()
    # the status line and the plot's star name the same epoch: the one whose weights were kept
    best = widget.cnn.best_epoch_
    assert best and f"weights of epoch {best} " in widget.status.text()
    assert widget.best_marker.get_xdata()[0] == best
    assert max(widget.warm_line.get_xdata()) <= 0 < min(widget.train_line.get_xdata())
    offered = [widget.image_combo.itemText(i) for i in range(widget.image_combo.count())]
    assert not any(name.startswith("probability") for name in offered)
    assert forest is pixel.session.probabilities and forest.shape == (2, SIZE, SIZE)


def test_warm_start_from_a_forest_of_another_image_says_so(viewer, qtbot, run_until_done):
    from active_annotator_napari._widget import PixelClassifierWidget

    image, labels, _ = add_sample(viewer)
    pixel = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(pixel, name="Pixel classifier")
    pixel.trees_spin.setValue(5)
    run_until_done(pixel, pixel.train_button.click)
    viewer.add_image(image[::-1].copy(), name="other")
    widget = dock(viewer, warm_start=True)
    widget.image_combo.setCurrentText("other")
    run_until_done(widget, widget.fit_button.click)
    assert "warm_start" not in widget.cnn.history_["phase"]
    assert "trained on another image" in widget.status.text()


def test_default_warm_start_before_the_forest_is_trained_starts_from_scratch(viewer, qtbot, run_until_done):
    add_sample(viewer)
    widget = dock(viewer, warm_start=True)
    assert widget.warm_check.isChecked()
    run_until_done(widget, widget.fit_button.click)
    assert "warm_start" not in widget.cnn.history_["phase"]
    assert "Pixel classifier has not been trained yet" in widget.status.text()
    assert "press Train there first" in widget.status.text()


def test_ready_text_counts_the_starter_strokes(viewer):
    add_sample(viewer)
    widget = dock(viewer)
    assert "Paint at least two classes" not in widget.status.text()
    assert "classes 1, 2" in widget.status.text() and "press Fine-tune CNN" in widget.status.text()
    viewer.layers["annotations"].data = np.zeros((SIZE, SIZE), np.uint8)
    widget.annotations_combo.setCurrentIndex(widget.annotations_combo.currentIndex())
    assert "paint at least two classes" in widget._ready_text()


# -- without torch ---------------------------------------------------------------------
def test_missing_torch_shows_the_install_hint_on_the_button(viewer, qtbot, monkeypatch):
    monkeypatch.setattr(_cnn_widget, "missing_torch_message",
                        lambda: f"The CNN needs PyTorch and safetensors (torch missing). Install with: {INSTALL_HINT}")
    add_sample(viewer)
    widget = dock(viewer)
    assert INSTALL_HINT in widget.fit_button.text()
    failures = []
    widget.failed.connect(failures.append)
    widget.fit_button.click()
    assert INSTALL_HINT in failures[0]
    assert not widget.busy and not widget.load_button.isEnabled()
