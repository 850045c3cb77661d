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
    assert trained.panels.tabText(trained.panels.indexOf(panel)) == "Explain"
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
    assert panel.result is None and "cancelled" in panel.status.text()


def test_explain_without_a_model_says_what_to_do(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    widget = PixelClassifierWidget(viewer)
    widget.explain_panel.explain_button.click()
    assert "press Train" in widget.explain_panel.status.text()
