"""The "Explain" tab of the Pixel classifier dock in a real napari viewer (run under Xvfb)."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("shap")

from active_annotator_napari._widget import PixelClassifierWidget  # noqa: E402

pytestmark = pytest.mark.gui
TIMEOUT_MS = 120_000


def _coins_with_threshold_labels():
    import skimage.data
    from skimage.filters import threshold_otsu

    img = skimage.data.coins()[:128, :128].astype(np.float32) / 255
    lab = np.zeros(img.shape, np.uint8)
    lab[::6, ::6] = np.where(img[::6, ::6] > threshold_otsu(img), 2, 1)
    return img, lab


@pytest.fixture
def trained(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    img, lab = _coins_with_threshold_labels()
    viewer.add_image(img, name="coins")
    viewer.add_labels(lab, name="annotations")
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pixel classifier")
    widget.trees_spin.setValue(10)
    done = []
    widget.trained.connect(lambda *a: done.append(a))
    widget.train_button.click()
    qtbot.waitUntil(lambda: bool(done) and not widget.busy, timeout=TIMEOUT_MS)
    return widget


def test_explain_tab_shows_shap_plots_and_findings(trained, qtbot):
    panel = trained.explain_panel
    tabs = trained.panels  # each tab page sits in a scroll area
    (index,) = [i for i in range(tabs.count()) if tabs.widget(i).widget() is panel]
    assert tabs.tabText(index) == "Explain"
    panel.explain_button.click()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=TIMEOUT_MS)
    e, groups, diagnosis = panel.result
    assert e.values.shape[1] == trained.classifier.n_features_in_
    items = [panel.plot_choice.itemText(i) for i in range(panel.plot_choice.count())]
    assert items[:3] == ["mean |SHAP| per feature", "beeswarm: class 1", "beeswarm: class 2"]
    assert "Learning curve:" in panel.status.text()
    for i in range(len(items)):
        panel.plot_choice.setCurrentIndex(i)
        assert panel.figure.axes
    assert not panel.cancel_button.isEnabled()


def test_explain_can_be_cancelled(trained, qtbot):
    panel = trained.explain_panel
    panel.explain_button.click()
    assert panel.cancel_button.isEnabled()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.cancel_button.isEnabled(), timeout=TIMEOUT_MS)
    assert panel.result is None and "Cancelled" in panel.status.text()


def test_explain_without_a_model_says_what_to_do(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    widget = PixelClassifierWidget(viewer)
    widget.explain_panel.explain_button.click()
    assert "press Train" in widget.explain_panel.status.text()


def test_bar_plot_uses_the_class_colours_and_fits_its_canvas(trained, qtbot):
    panel = trained.explain_panel
    panel.explain_button.click()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=TIMEOUT_MS)
    panel.plot_choice.setCurrentIndex(0)
    ax = panel.figure.axes[0]
    layer = trained.annotations_layer
    for container, c in zip(ax.containers, (1, 2)):
        np.testing.assert_allclose(container[0].get_facecolor(), np.ravel(layer.colormap.map(np.array([c]))),
                                   atol=1e-6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1: class 1", "2: class 2"]
    panel.canvas.draw()
    renderer = panel.canvas.get_renderer()
    box = ax.xaxis.label.get_window_extent(renderer)
    assert box.y0 >= 0  # the axis label at the bottom is inside the figure, not cut off


def test_suggest_features_shows_its_proposal(trained, qtbot):
    panel = trained.explain_panel
    assert panel.suggest_button is not None
    panel.suggest_button.click()
    qtbot.waitUntil(lambda: "proposed:" in panel.suggest_text.text(), timeout=TIMEOUT_MS)
    assert "importance by family" in panel.suggest_text.text()


def test_signal_dock_explain_tab_names_features_in_seconds(viewer, qtbot, bursts):
    from active_annotator_napari._signal_reader import layer_data
    from active_annotator_napari._signal_widget import SignalClassifierWidget

    for data, kwargs, kind in layer_data(bursts()):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    w = SignalClassifierWidget(viewer)
    qtbot.addWidget(w)
    w.trees_spin.setValue(10)
    w.label_span(0.0, 15.0, 1)
    w.label_span(20.0, 30.0, 2)
    with qtbot.waitSignal(w.trained, timeout=TIMEOUT_MS):
        w.train()
    panel = w.explain_panel
    assert w.tabs.tabText(w.tabs.indexOf(panel)) == "Explain"
    panel.explain_button.click()
    assert panel.cancel_button.isEnabled()  # runs in a worker: the GUI is free
    qtbot.waitUntil(lambda: panel.result is not None, timeout=TIMEOUT_MS)
    e = panel.result[0]
    assert e.values.shape[1] == len(w.classifier.feature_names_in_)
    import re

    assert any(re.search(r"\d s\b", name) for name in e.feature_names), e.feature_names[:5]
    assert not any(" px" in n for n in e.feature_names)


def test_object_dock_explain_tab_and_cancel(viewer, qtbot, nuclei2d):
    from active_annotator_napari._objects_widget import ObjectClassifierWidget

    viewer.add_image(nuclei2d["image"], name="nuclei")
    viewer.add_labels(nuclei2d["objects"], name="objects")
    w = ObjectClassifierWidget(viewer)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.measured, timeout=TIMEOUT_MS):
        w.measure_button.click()
    order = np.argsort(w.table["area"])
    w.annotate_objects(w.table["label"][order[:5]], 1)
    w.annotate_objects(w.table["label"][order[-5:]], 2)
    with qtbot.waitSignal(w.trained, timeout=TIMEOUT_MS):
        w.train_button.click()
    panel = w.explain_panel
    panel.explain_button.click()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.cancel_button.isEnabled(), timeout=TIMEOUT_MS)
    assert panel.result is None and "Cancelled" in panel.status.text()
    panel.explain_button.click()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=TIMEOUT_MS)
    e = panel.result[0]
    assert "area" in e.feature_names and e.values.shape[0] == 10
    assert "Learning curve" not in panel.status.text()  # no rounds history for objects
