"""The "Object classifier" dock widget in a real napari viewer (run under Xvfb).

Clicks in the viewer go through napari's own mouse-press dispatch
(``mouse_press_callbacks``), a lasso in the plot through the LassoSelector's
callback; the tests wait on the widget's signals, never on sleeps.
"""

from types import SimpleNamespace

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari.utils.interactions import mouse_press_callbacks  # noqa: E402

from active_annotator import data, objects  # noqa: E402
from active_annotator_napari._objects_widget import (  # noqa: E402
    ANNOTATIONS,
    RESULT,
    SELECTION,
    ObjectClassifierWidget,
)

pytestmark = pytest.mark.gui

TIMEOUT_MS = 120_000


@pytest.fixture
def widget(viewer, qtbot):
    d = data.nuclei2d()
    viewer.add_image(d["image"], name="nuclei")
    viewer.add_labels(d["objects"], name="objects")
    w = ObjectClassifierWidget(viewer)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.measured, timeout=TIMEOUT_MS):
        w.measure_button.click()
    return w


def click(viewer, world_position):
    event = SimpleNamespace(type="mouse_press", position=tuple(world_position), button=1,
                            modifiers=(), dims_displayed=(0, 1), view_direction=None)
    mouse_press_callbacks(viewer, event)


def inside(w, row):
    """A pixel of the object in ``row`` (a bent nucleus's centroid can lie outside it)."""
    pixels = np.argwhere(w._objects == w.table["label"][row])
    return pixels[len(pixels) // 2].astype(float)


def centroid(w, row):
    return (w.table["centroid-0"][row], w.table["centroid-1"][row])


def test_measure_writes_the_table_into_layer_features(widget):
    d = data.nuclei2d()
    expected = objects.measure(d["objects"], d["image"])
    features = widget.viewer.layers["objects"].features
    for column in ("label", "area", "circularity", "eccentricity", "intensity_mean"):
        np.testing.assert_allclose(np.asarray(features[column]), expected[column])
    assert widget.image_combo.currentText() == "nuclei"


def test_plot_and_viewer_selections_are_linked(widget, qtbot):
    w = widget
    with qtbot.waitSignal(w.explored, timeout=TIMEOUT_MS):
        w.explore_button.click()
    e = w.exploration.embedding
    assert np.asarray(w.viewer.layers["objects"].features["cluster"]).shape == (len(e),)

    # plot -> viewer: a lasso around the right half of the points
    xs = np.sort(e[:, 0])
    x0 = (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2  # between two points, on none
    lasso = [(x0, e[:, 1].min() - 1), (e[:, 0].max() + 1, e[:, 1].min() - 1),
             (e[:, 0].max() + 1, e[:, 1].max() + 1), (x0, e[:, 1].max() + 1)]
    with qtbot.waitSignal(w.selection_changed, timeout=5000):
        w._lasso.onselect(lasso)
    expected = w.table["label"][e[:, 0] > x0]
    assert set(w.selected.tolist()) == set(expected.tolist()) and len(expected) > 10
    highlight = w.viewer.layers[SELECTION].data
    np.testing.assert_array_equal(highlight != 0, np.isin(w._objects, expected))
    np.testing.assert_allclose(w.selection_points.get_offsets(), e[e[:, 0] > x0])

    # viewer -> plot: a click on one nucleus selects it and rings its point
    row = 17
    with qtbot.waitSignal(w.selection_changed, timeout=5000):
        click(w.viewer, inside(w, row))
    assert w.selected.tolist() == [w.table["label"][row]]
    np.testing.assert_allclose(w.selection_points.get_offsets(), e[[row]])
    assert (w.viewer.layers[SELECTION].data != 0).sum() == w.table["area"][row]


def test_click_to_label_train_suggest_and_save(widget, qtbot, tmp_path):
    w = widget
    order = np.argsort(w.table["elongation"])
    rounds, longs = order[:4], order[-4:]
    for value, rows in ((1, rounds), (2, longs)):
        w.click_combo.setCurrentIndex(w.click_combo.findData(value))
        for row in rows:
            click(w.viewer, inside(w, row))
    y = w.object_labels()
    assert set(np.nonzero(y == 1)[0]) == set(rounds) and set(np.nonzero(y == 2)[0]) == set(longs)
    assert ANNOTATIONS in w.viewer.layers

    with qtbot.waitSignal(w.trained, timeout=TIMEOUT_MS):
        w.train_button.click()
    pred = np.asarray(w.viewer.layers["objects"].features["class"])
    assert (pred[rounds] == 1).all() and (pred[longs] == 2).all()
    result = w.viewer.layers[RESULT].data
    for row in (rounds[0], longs[0]):
        in_object = w._objects == w.table["label"][row]
        assert (result[in_object] == pred[row]).all()
    # a clear majority of nuclei are round: elongation above the median is rarer
    assert 0 < (pred == 2).sum() < len(pred)

    with qtbot.waitSignal(w.suggested, timeout=TIMEOUT_MS):
        w.suggest_button.click()
    first = w.suggestions[0]
    assert y[first.index] == 0
    camera = w.viewer.scene.camera if hasattr(w.viewer, "scene") else w.viewer.camera
    np.testing.assert_allclose(camera.center[-2:], centroid(w, first.index), atol=1e-6)
    assert w.selected.tolist() == [first.label]
    second = w.next_suggestion()
    np.testing.assert_allclose(camera.center[-2:], centroid(w, second.index), atol=1e-6)

    path = w.save_classifier(tmp_path / "nuclei")
    before = w.proba.copy()
    with qtbot.waitSignal(w.trained, timeout=5000):
        w.load_classifier(path)
    np.testing.assert_array_equal(w.proba, before)


def test_3d_objects_measure_click_and_next(viewer, qtbot):
    zz, yy, xx = np.mgrid[:20, :40, :80]
    obj = np.zeros((20, 40, 80), np.uint16)
    for oid, (cz, cy, cx, rz, ry, rx) in enumerate(
            [(10, 10, 10, 5, 5, 5), (10, 10, 40, 4, 4, 12), (8, 30, 15, 3, 6, 6),
             (12, 30, 55, 4, 4, 15)], start=1):
        obj[((zz - cz) / rz) ** 2 + ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = oid
    viewer.add_image(obj.astype(np.float32) * 50, name="volume")
    viewer.add_labels(obj, name="cells")
    w = ObjectClassifierWidget(viewer)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.measured, timeout=TIMEOUT_MS):
        w.measure_button.click()
    assert "sphericity" in w.table and "eccentricity" not in w.table
    np.testing.assert_allclose(w.table["volume"], np.bincount(obj.ravel())[1:])

    # a click in the plane z=8 on object 3 selects it
    with qtbot.waitSignal(w.selection_changed, timeout=5000):
        click(viewer, (8.0, 30.0, 15.0))
    assert w.selected.tolist() == [3]

    with qtbot.waitSignal(w.suggested, timeout=TIMEOUT_MS):
        w.suggest_button.click()
    s = w.suggestions[0]
    z = w.table["centroid-0"][s.index]
    assert abs(viewer.dims.point[0] - z) <= 0.5
    assert w.selected.tolist() == [s.label]


def test_cancel_drops_a_running_embedding_and_keeps_everything(widget, qtbot):
    w = widget
    explored, cancelled = [], []
    w.explored.connect(lambda: explored.append(1))
    w.cancelled.connect(lambda: cancelled.append(1))
    w.method_combo.setCurrentIndex(w.method_combo.findData("tsne"))  # seconds, not instant
    w.explore_button.click()
    assert w.busy and w.cancel_button.isEnabled()
    w.cancel_button.click()
    assert cancelled == [1] and not w.running and "Cancelled" in w.status.text()
    with qtbot.assertNotEmitted(w.explored):
        qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)  # the stale t-SNE finished...
    assert explored == [] and w.exploration is None  # ...and nothing used its result
    assert "cluster" not in w.viewer.layers["objects"].features
    # the next request runs normally
    w.method_combo.setCurrentIndex(w.method_combo.findData("pca"))
    with qtbot.waitSignal(w.explored, timeout=TIMEOUT_MS):
        w.explore_button.click()
    assert w.exploration is not None and not w.running


def test_objects_picker_never_preselects_annotations_or_ground_truth(viewer, qtbot):
    d = data.nuclei2d()
    viewer.add_image(d["image"], name="nuclei")
    viewer.add_labels(d["labels"], name="annotations")
    viewer.add_labels(d["truth"], name="ground truth")
    w = ObjectClassifierWidget(viewer)
    qtbot.addWidget(w)
    assert w.objects_layer is None  # nothing that looks like a segmentation: no guess
    with qtbot.waitSignal(w.failed, timeout=5000):
        w.measure_button.click()
    assert "objects" in w.status.text().lower()
    viewer.add_labels(d["objects"], name="segmentation")
    assert w.objects_layer.name == "segmentation"
    assert w.image_layer.name == "nuclei"
