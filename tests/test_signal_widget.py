"""Signal classifier widget and signal reader: spans in, predictions and suggestions out.

Run under a display: ``xvfb-run -a python -m pytest tests/test_signal_widget.py -W error::FutureWarning``.
"""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from active_annotator_napari._signal_reader import get_reader, layer_data, seismogram  # noqa: E402
from active_annotator_napari._signal_widget import SignalClassifierWidget  # noqa: E402

pytestmark = pytest.mark.gui


def label_and_train(widget, qtbot):
    """Mark noise (0-15 s) and the first burst (20-30 s), train, wait for ``trained``."""
    widget.label_span(0.0, 15.0, 1)
    widget.label_span(20.0, 30.0, 2)
    with qtbot.waitSignal(widget.trained, timeout=120_000):
        widget.train()


@pytest.fixture
def widget(viewer, qtbot, bursts):
    for data, kwargs, kind in layer_data(bursts()):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    w = SignalClassifierWidget(viewer)
    qtbot.addWidget(w)
    w.trees_spin.setValue(20)
    return w


def test_spans_painted_on_a_signal_train_and_fill_the_prediction_layer(widget, qtbot):
    viewer = widget.viewer
    assert widget.signal_combo.currentText() == "bursts"
    labels = viewer.layers["bursts labels"]
    assert labels.data.shape == (1, 6000)
    # a span dragged in the waveform view (the span selector's callback) ...
    widget.class_combo.setCurrentIndex(widget.class_combo.findData(2))
    widget.plot._on_span(21.0, 29.0)
    # ... and a stroke with napari's brush on the labels row
    labels.selected_label = 1
    labels.brush_size = 1
    labels.paint((0, 100), 1, refresh=False)
    labels.data[0, 100:900] = 1  # the rest of the stroke: fill like a long brush drag
    labels.events.paint(value=[])
    assert (labels.data[0, 1050:1450] == 2).all() and (labels.data[0, 100:900] == 1).all()
    assert widget.plot.labels is not None and widget.plot.labels[1200] == 2  # the view follows

    with qtbot.waitSignal(widget.trained, timeout=120_000):
        widget.train_button.click()

    pred = viewer.layers["bursts prediction"]
    unc = viewer.layers["bursts uncertainty"]
    assert isinstance(pred, napari.layers.Labels) and pred.data.shape == (1, 6000)
    assert isinstance(unc, napari.layers.Image) and unc.data.shape == (1, 6000)
    # the unlabelled second burst (80-90 s) is found, the noise stays noise
    assert (pred.data[0, 4050:4450] == 2).mean() > 0.9
    assert (pred.data[0, 5200:5900] == 1).mean() > 0.9
    assert 0.0 <= unc.data.min() and unc.data.max() <= 1.0
    # the strip rows: channels, labels, prediction, uncertainty from top to bottom
    assert pred.translate[0] > labels.translate[0] > viewer.layers["bursts"].translate[0]
    assert unc.translate[0] > pred.translate[0]
    np.testing.assert_array_equal(widget.plot.prediction, pred.data[0])


def test_suggest_and_next_jump_the_view_to_ranked_windows(widget, qtbot):
    label_and_train(widget, qtbot)
    widget.window_spin.setValue(5.0)
    with qtbot.waitSignal(widget.suggested, timeout=10_000):
        widget.suggest_button.click()
    assert 1 <= len(widget.suggestions) <= 10
    seen = []
    for _ in range(2):
        sl = widget.suggestions[widget.current].candidate.slices[0]
        w0, w1 = sl.start / 50.0, sl.stop / 50.0
        t0, t1 = widget.plot.view
        assert t0 <= w0 and w1 <= t1 and (t1 - t0) < 30  # zoomed onto the window
        seen.append((w0, w1))
        widget.next_button.click()
    assert seen[0] != seen[1]
    # a suggestion never lies entirely inside labelled samples
    lab = widget.viewer.layers["bursts labels"].data[0]
    assert all(lab[s.candidate.slices[0]].min() == 0 for s in widget.suggestions)


def test_a_third_class_can_be_added_by_name_and_trained(widget, qtbot):
    widget.class_name_edit.setText("tourists jumping on the sensor")
    widget.add_class_button.click()
    value = widget.class_combo.currentData()
    assert value == 4 and "4: tourists jumping on the sensor" in widget.class_combo.currentText()
    labels = widget.viewer.layers["bursts labels"]
    assert labels.metadata["class_names"][4] == "tourists jumping on the sensor"
    widget.label_span(0.0, 15.0, 1)
    widget.label_span(20.0, 30.0, 2)
    widget.plot._on_span(100.0, 110.0)  # class 4, the chosen one
    assert (labels.data[0, 5000:5500] == 4).all()
    with qtbot.waitSignal(widget.trained, timeout=120_000):
        widget.train()
    assert list(widget.classifier.classes_) == [1, 2, 4]


def test_training_without_two_classes_says_what_to_do(widget, qtbot):
    widget.label_span(0.0, 5.0, 1)
    with qtbot.waitSignal(widget.failed, timeout=60_000) as blocker:
        widget.train()
    assert "two classes" in blocker.args[0]


def test_reader_claims_signal_files_only(tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 500)).astype(np.float32)
    np.save(tmp_path / "signal.npy", x)
    np.save(tmp_path / "image.npy", np.zeros((256, 256), np.float32))
    assert get_reader(str(tmp_path / "image.npy")) is None
    layers = get_reader(str(tmp_path / "signal.npy"))(str(tmp_path / "signal.npy"))
    (data, meta, kind), (paths, smeta, skind), (lab, lmeta, lkind) = layers
    assert kind == "image" and data.shape == (3, 500) and meta["metadata"]["signal"]["channels"] == ["ch0", "ch1", "ch2"]
    assert meta["visible"] is False  # the samples travel hidden; the canvas shows waveforms
    assert skind == "shapes" and smeta["shape_type"] == "path" and len(paths) == 3
    assert lkind == "labels" and lab.shape == (1, 500)
    (tmp_path / "points.csv").write_text("index,axis-0,axis-1\n0,1.5,2.5\nfoo,bar,baz\n")
    assert get_reader(str(tmp_path / "points.csv")) is None


def test_sample_seismogram_opens_with_station_metadata(viewer, qtbot):
    pytest.importorskip("obspy")
    for data, kwargs, kind in seismogram():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    meta = viewer.layers["seismogram_BW_RJOB"].metadata["signal"]
    assert meta["channels"] == ["BW.RJOB..EHZ", "BW.RJOB..EHN", "BW.RJOB..EHE"]
    assert meta["sampling_rate"] == 100.0 and meta["starttime"].startswith("2009-08-24T00:20:03")
    w = SignalClassifierWidget(viewer)
    qtbot.addWidget(w)
    assert w.record.n_samples == 3000 and w.plot.record is not None


def test_long_record_opens_multiscale_and_trains(viewer, qtbot, bursts):
    # wider than one GPU texture: napari gets a multiscale strip, the widget the full record
    rec = bursts(n=60_000)
    for data, kwargs, kind in layer_data(rec):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    assert viewer.layers["bursts"].multiscale
    w = SignalClassifierWidget(viewer)
    qtbot.addWidget(w)
    w.trees_spin.setValue(10)
    assert w.record.n_samples == 60_000
    idx, vals = w.plot.pyramid.view(0, 60_000, 500)
    assert vals.shape[1] < 60_000  # drawn as a min/max envelope, not every sample
    w.label_span(0.0, 15.0, 1)
    w.label_span(20.0, 30.0, 2)
    with qtbot.waitSignal(w.trained, timeout=120_000):
        w.train()
    assert viewer.layers["bursts uncertainty"].multiscale
    assert (viewer.layers["bursts prediction"].data[0, 4050:4450] == 2).mean() > 0.9
    with qtbot.waitSignal(w.suggested, timeout=10_000):
        w.suggest()
    assert w.suggestions


def test_napari_opens_miniseed_and_the_sample_through_the_manifest(make_napari_viewer_proxy, tmp_path):
    obspy = pytest.importorskip("obspy")
    st = obspy.read()  # ObsPy's example: BW.RJOB..EHZ/EHN/EHE
    st.write(str(tmp_path / "rjob.mseed"), format="MSEED")
    viewer = make_napari_viewer_proxy()
    viewer.open(str(tmp_path / "rjob.mseed"), plugin="napari-active-annotator")
    assert [ly.name for ly in viewer.layers] == ["rjob", "rjob waveform", "rjob labels"]
    meta = viewer.layers["rjob"].metadata["signal"]
    assert meta["channels"] == ["BW.RJOB..EHZ", "BW.RJOB..EHN", "BW.RJOB..EHE"] and meta["sampling_rate"] == 100.0
    np.testing.assert_allclose(viewer.layers["rjob"].data[0], st[0].data.astype(np.float32))
    viewer.open_sample("napari-active-annotator", "seismogram")
    assert "seismogram_BW_RJOB labels" in viewer.layers


def test_mouse_drag_across_the_waveform_marks_a_span(widget, qtbot):
    # mouse events through matplotlib's event system into the span selector
    # (QTest's synthetic moves carry no button state, which matplotlib needs)
    from matplotlib.backend_bases import MouseButton, MouseEvent

    plot = widget.plot
    plot.resize(900, 400)
    plot.show()
    qtbot.waitExposed(plot)
    plot.redraw()
    plot.canvas.draw()
    widget.class_combo.setCurrentIndex(widget.class_combo.findData(2))
    canvas = plot.canvas

    def event(name, t):
        x, y = plot.ax.transData.transform((t, 0.0))
        canvas.callbacks.process(name, MouseEvent(name, canvas, x, y, button=MouseButton.LEFT))

    event("button_press_event", 40.0)
    for t in (45.0, 50.0, 55.0, 60.0):
        event("motion_notify_event", t)
    event("button_release_event", 60.0)
    lab = widget.viewer.layers["bursts labels"].data[0]
    marked = np.flatnonzero(lab == 2)
    assert marked.size > 0
    assert abs(marked[0] / 50.0 - 40.0) < 0.1 and abs((marked[-1] + 1) / 50.0 - 60.0) < 0.1
    # wheel zooms time around the cursor, right-drag pans
    t0, t1 = plot.view
    x, y = plot.ax.transData.transform((50.0, 0.0))
    canvas.callbacks.process("scroll_event", MouseEvent("scroll_event", canvas, x, y, button="up", step=1))
    z0, z1 = plot.view
    assert z1 - z0 < t1 - t0 and z0 < 50.0 < z1


def test_feature_controls_are_in_seconds_and_hertz_never_pixels(widget):
    from qtpy.QtWidgets import QAbstractSpinBox, QLabel

    from active_annotator.signals import default_signal_features, invariant_signal_features

    w = widget
    texts = [lbl.text() for lbl in w.findChildren(QLabel)]
    texts += [b.suffix() for b in w.findChildren(QAbstractSpinBox) if hasattr(b, "suffix")]
    assert not any("px" in t for t in texts), texts
    assert any(t.strip() == "s" for t in texts) and any("(s)" in t for t in texts)
    spec = w.feature_spec(100.0)  # the controls' defaults are the core's defaults
    assert spec == default_signal_features(100.0)
    w.bands_box.setChecked(False)
    assert w.feature_spec(100.0).bands == ()
    w.scales_edit.setEditText("0.1, 1")
    assert w.feature_spec(50.0).base.sigmas == (5.0, 50.0)
    w.kind_combo.setCurrentIndex(1)  # amplitude-free: the core's preset with the dock's windows
    w.sta_spin.setValue(0.5)
    assert w.feature_spec(50.0) == invariant_signal_features(50.0, ((0.5, 10.0),))
    assert not w.bands_box.isEnabled() and not w.scales_edit.isEnabled()
    w.kind_combo.setCurrentIndex(0)
    assert w.bands_box.isEnabled() and w.feature_spec(50.0).base.sigmas == (5.0, 50.0)


def test_canvas_shows_waveforms_as_paths_not_a_colour_strip(widget):
    viewer = widget.viewer
    assert not viewer.layers["bursts"].visible
    wave = viewer.layers["bursts waveform"]
    assert isinstance(wave, napari.layers.Shapes) and set(wave.shape_type) == {"path"}
    assert wave.nshapes == 3 and wave.visible
    row = viewer.layers["bursts"].scale[0]
    for i, path in enumerate(wave.data):  # each channel within its row, along the whole record
        assert np.all(np.abs(path[:, 0] - i * row) <= 0.5 * row)
        assert path[:, 1].min() < 1.0 and path[:, 1].max() > 119.0
    # the loud burst (20-30 s) reaches further from the row's centre than the noise
    p = wave.data[0]
    burst, noise = (p[:, 1] > 20) & (p[:, 1] < 30), (p[:, 1] > 40) & (p[:, 1] < 70)
    assert np.abs(p[burst, 0]).max() > 2 * np.abs(p[noise, 0]).max()


def test_unparseable_scales_give_a_clear_error_in_the_dock(widget, qtbot):
    widget.label_span(0.0, 15.0, 1)
    widget.label_span(20.0, 30.0, 2)
    widget.scales_edit.setEditText("abc, 1")
    with qtbot.waitSignal(widget.failed, timeout=5000) as blocker:
        widget.train_button.click()
    assert "'abc, 1'" in blocker.args[0] and "seconds" in blocker.args[0]
    assert widget.status.text().startswith("Error:") and not widget.running


def test_suggestion_numbers_are_readable_and_do_not_overlap(widget, qtbot):
    label_and_train(widget, qtbot)
    widget.window_spin.setValue(2.0)
    with qtbot.waitSignal(widget.suggested, timeout=60_000):
        widget.suggest_button.click()
    plot = widget.plot
    plot.resize(600, 400)
    plot.set_view(0.0, 120.0)  # zoomed out: the ten windows crowd together
    plot.redraw()
    plot.canvas.draw()
    labels = plot.rank_labels
    assert labels and all(t.get_fontsize() >= 9 for t in labels)
    renderer = plot.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    for i, a in enumerate(boxes):
        assert a.x0 >= plot.ax.get_window_extent().x0 - 1 and a.x1 <= plot.ax.get_window_extent().x1 + 1
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
