"""The Suggestions and Validation tabs of the pixel-classifier widget (run under Xvfb).

Suggest, walk to the suggestions (camera, zoom, dims sliders, outlines), mark
them done by painting, refresh after retraining, and the learning curve.
Tests wait on the widgets' signals, never on sleeps.
"""

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from active_annotator import data  # noqa: E402
from active_annotator_napari._suggestions import NEXT_KEY, SUGGESTIONS  # noqa: E402
from active_annotator_napari._widget import PixelClassifierWidget  # noqa: E402

pytestmark = pytest.mark.gui

TIMEOUT_MS = 120_000


def run(qtbot, widget, action, signal=None):
    """Do ``action``, wait for ``signal`` (default ``widget.trained``); fail on ``failed``."""
    signal = widget.trained if signal is None else signal
    done, failed = [], []
    signal.connect(lambda *a: done.append(a))
    widget.failed.connect(failed.append)
    action()
    qtbot.waitUntil(lambda: bool(done or failed), timeout=TIMEOUT_MS)
    assert not failed, f"failed: {failed}"


def suggest(qtbot, panel):
    run(qtbot, panel, panel.suggest_button.click, panel.suggested)
    qtbot.waitUntil(lambda: not panel.busy, timeout=TIMEOUT_MS)


@pytest.fixture
def viewer(make_napari_viewer_proxy):
    return make_napari_viewer_proxy()


def crop2d(viewer):
    d = data.nuclei2d()
    c = (slice(0, 256), slice(256, 512))
    viewer.add_image(np.ascontiguousarray(d["image"][c]), name="nuclei")
    annotations = viewer.add_labels(np.ascontiguousarray(d["labels"][c]), name="annotations")
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pixel classifier")
    widget.trees_spin.setValue(10)
    return widget, annotations, d["truth"][c]


def volume(viewer, scale=(2.0, 1.0, 1.0)):
    """nuclei3d with labels from the truth on every 10th plane, sparse grid."""
    d = data.nuclei3d()
    labels = np.zeros_like(d["truth"])
    grid = (slice(None, None, 10), slice(None, None, 4), slice(None, None, 4))
    labels[grid] = d["truth"][grid]
    viewer.add_image(d["image"], name="nuclei", scale=scale)
    annotations = viewer.add_labels(labels, name="annotations", scale=scale)
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pixel classifier")
    widget.trees_spin.setValue(10)
    widget.sigmas_edit.setText("1, 2")
    return widget, annotations


def test_suggest_lists_ranked_patches_and_next_moves_camera_to_the_first(viewer, qtbot):
    widget, _, _ = crop2d(viewer)
    run(qtbot, widget, widget.train_button.click)
    panel = widget.suggestions_panel
    panel.n_spin.setValue(5)
    panel.size_spin.setValue(32)
    from active_annotator.sampling import DEFAULT_STRATEGY

    assert panel.strategy == DEFAULT_STRATEGY == "entropy"  # the suite's winner is the default
    suggest(qtbot, panel)

    assert panel.table.rowCount() == 5
    assert [panel.table.item(r, 0).text() for r in range(5)] == ["1", "2", "3", "4", "5"]
    assert "entropy" in panel.table.item(0, 2).text()
    shapes = viewer.layers[SUGGESTIONS]
    assert isinstance(shapes, napari.layers.Shapes) and shapes.nshapes == 5
    assert set(shapes.shape_type) == {"rectangle"}
    assert viewer.layers.selection.active.name == "annotations"  # painting goes on

    zoom_before = viewer.scene.camera.zoom
    panel.next_button.click()
    first = panel.suggestions[0].candidate
    assert panel.current == 0
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], first.centre, atol=1e-6)
    assert viewer.scene.camera.zoom > zoom_before  # zoomed in on a 32 px patch of a 256 px image
    # the current outline is highlighted, the others are not
    colours = np.asarray(shapes.edge_color)
    assert not np.allclose(colours[0], colours[1])
    # the outline encloses the candidate's pixels
    (y0, x0), (y1, x1) = first.bbox
    np.testing.assert_allclose(shapes.data[0].min(axis=0), (y0 - 0.5, x0 - 0.5))
    np.testing.assert_allclose(shapes.data[0].max(axis=0), (y1 - 0.5, x1 - 0.5))

    panel.next_button.click()
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], panel.suggestions[1].candidate.centre)
    panel.previous_button.click()
    assert panel.current == 0


def test_next_in_a_volume_moves_the_dims_slider_to_the_candidate_plane(viewer, qtbot):
    scale = (2.0, 1.0, 1.0)
    widget, _ = volume(viewer, scale)
    widget.spatial_combo.setCurrentIndex(1)  # 3D volume
    run(qtbot, widget, widget.train_button.click)
    panel = widget.suggestions_panel
    panel.size_spin.setValue(12)
    panel.n_spin.setValue(4)
    suggest(qtbot, panel)
    first = panel.suggestions[0].candidate
    assert len(first.slices) == 3  # 3-D blocks
    assert viewer.dims.ndim == 3  # per-class probability layers add no class axis
    z_axis = 0
    viewer.dims.set_point(z_axis, 0)

    panel.next_button.click()
    z0, z1 = first.slices[0].start, first.slices[0].stop
    middle = (z0 + z1 - 1) // 2
    assert viewer.dims.current_step[z_axis] == middle
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], first.centre[1:])
    # each plane of the block is outlined, so the box is seen while scrolling through it
    shapes = viewer.layers[SUGGESTIONS]
    planes = {float(r[0, 0]) for r in shapes.data[: z1 - z0]}
    assert planes == set(map(float, range(z0, z1)))


def test_next_in_a_stack_of_planes_goes_to_the_plane_and_key_n_does_the_same(viewer, qtbot):
    widget, _ = volume(viewer)
    widget.spatial_combo.setCurrentIndex(2)  # 2D per plane
    run(qtbot, widget, widget.train_button.click)
    panel = widget.suggestions_panel
    panel.strategy_combo.setCurrentIndex(1)  # entropy
    panel.size_spin.setValue(16)
    panel.n_spin.setValue(3)
    suggest(qtbot, panel)
    first, second = (s.candidate for s in panel.suggestions[:2])
    assert first.stack_index is not None and len(first.slices) == 2

    assert viewer.dims.ndim == 3  # per-class probability layers add no class axis
    z_axis = 0
    keys = {str(k): f for k, f in viewer.keymap.items()}
    assert NEXT_KEY.upper() in keys and "B" in keys
    keys[NEXT_KEY.upper()](viewer)
    assert panel.current == 0
    assert viewer.dims.current_step[z_axis] == first.stack_index
    keys[NEXT_KEY.upper()](viewer)
    assert viewer.dims.current_step[z_axis] == second.stack_index
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], second.centre[1:])
    keys["B"](viewer)
    assert panel.current == 0


def test_painting_inside_the_current_suggestion_marks_it_done_and_next_skips_it(viewer, qtbot):
    widget, annotations, _ = crop2d(viewer)
    run(qtbot, widget, widget.train_button.click)
    panel = widget.suggestions_panel
    panel.n_spin.setValue(3)
    suggest(qtbot, panel)
    panel.next_button.click()
    c = panel.suggestions[0].candidate
    (y0, x0), (y1, x1) = c.bbox
    # painting elsewhere marks nothing
    other = [s.candidate for s in panel.suggestions]
    free = np.ones(annotations.data.shape, bool)
    for o in other:
        free[o.key] = False
    yy, xx = np.nonzero(free & (annotations.data == 0))
    annotations.data_setitem((yy[:3], xx[:3]), 1)
    qtbot.waitUntil(lambda: not panel._done_timer.isActive(), timeout=5000)
    assert not panel.done.any()

    with qtbot.waitSignal(panel.done_changed, timeout=5000):
        ys, xs = np.mgrid[y0 + 2:y0 + 5, x0 + 2:x0 + 5]
        annotations.data_setitem((ys.ravel(), xs.ravel()), 2)
    assert panel.done.tolist() == [True, False, False]
    assert "✓" in panel.table.item(0, 0).text()
    panel.next_button.click()
    assert panel.current == 1
    panel.previous_button.click()
    assert panel.current == 2  # wraps around, skipping the done one


def test_retraining_refreshes_the_ranking(viewer, qtbot):
    widget, annotations, truth = crop2d(viewer)
    run(qtbot, widget, widget.train_button.click)
    panel = widget.suggestions_panel
    panel.n_spin.setValue(4)
    suggest(qtbot, panel)
    before = list(panel.suggestions)
    first = before[0].candidate
    # label the whole first suggestion with the truth: it cannot be suggested again
    annotations.data_setitem(np.nonzero(first.region_mask(truth.shape)), 1)
    region = first.region_mask(truth.shape) & (truth == 2)
    annotations.data_setitem(np.nonzero(region), 2)
    qtbot.waitUntil(lambda: bool(panel.done[0]), timeout=5000)

    done, trained = [], []
    panel.suggested.connect(lambda: done.append(1))
    widget.trained.connect(lambda: trained.append(1))
    widget.train_button.click()
    qtbot.waitUntil(lambda: bool(trained and done), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not panel.busy, timeout=TIMEOUT_MS)
    assert panel.suggestions is not before and len(panel.suggestions) == 4
    assert all(s.candidate.slices != first.slices for s in panel.suggestions)
    assert not panel.done.any() and panel.current == -1
    assert viewer.layers[SUGGESTIONS].nshapes == 4


def test_learning_curve_gets_a_point_per_training_round_and_metrics_per_class(viewer, qtbot):
    widget, annotations, truth = crop2d(viewer)
    run(qtbot, widget, widget.train_button.click)
    assert len(widget.history.rounds) == 1
    row = widget.history.rounds[0]
    assert row["labelled_pixels"] == int((annotations.data != 0).sum())
    if "validation_error" not in row:  # the starter strokes: too few held out to be scored
        assert "Not enough held-out strokes yet" in widget.validation_panel.summary.text()
    held_before = widget.session._split.validation.copy()

    # strokes of both classes on every 16th row: many separate strokes, about a third held out
    rows = np.arange(256)[:, None] % 16 == 0
    for c in (1, 2):
        annotations.data_setitem(np.nonzero((truth == c) & rows & (annotations.data == 0)), c)
    run(qtbot, widget, widget.train_button.click)
    rounds = widget.history.rounds
    assert len(rounds) == 2 and rounds[1]["labelled_pixels"] > rounds[0]["labelled_pixels"]
    assert rounds[1]["validation_pixels"] > 0 and rounds[1]["validation_strokes"] >= 6
    held = widget.session._split.validation  # the first round's held-out strokes stay held out
    assert np.array_equal(held[held_before != 0], held_before[held_before != 0])

    panel = widget.validation_panel
    ax = panel.figure.axes[0]
    (train,) = [ln for ln in ax.get_lines() if ln.get_label() == "train error"]
    assert list(train.get_xdata()) == [r["labelled_pixels"] for r in rounds]
    (bars,) = [c for c in ax.containers if c.get_label() == "validation error ± s.e."]
    np.testing.assert_allclose(bars.lines[0].get_ydata(), [r.get("validation_error", np.nan) for r in rounds])
    # the table: one row per class with precision, recall, F1, Jaccard on the validation strokes
    assert panel.table.rowCount() == 2
    assert [panel.table.item(r, 0).text() for r in range(2)] == ["1", "2"]
    jaccard = float(panel.table.item(1, 4).text())
    assert jaccard == pytest.approx(rounds[1]["validation_jaccard_2"], abs=1e-3)
    summary = panel.summary.text()
    assert "validation error" in summary and "±" in summary and "strokes" in summary


def test_choosing_another_image_starts_a_new_learning_curve(viewer, qtbot):
    widget, annotations, truth = crop2d(viewer)
    first = widget.image_combo.currentText()
    run(qtbot, widget, widget.train_button.click)
    assert len(widget.history.rounds) == 1
    # re-selecting the same image keeps the curve
    widget.image_combo.setCurrentText(first)
    assert len(widget.history.rounds) == 1
    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="other image")
    widget.image_combo.setCurrentText("other image")
    assert widget.history.rounds == []
    assert "New learning curve for 'other image'" in widget.validation_panel.summary.text()
    assert widget.validation_panel.table.rowCount() == 0
    lines = [ln for ln in widget.validation_panel.figure.axes[0].get_lines() if len(ln.get_xdata())]
    assert lines == []  # the old points are gone from the plot


def test_patch_size_is_auto_by_default_and_adapts_to_a_small_volume():
    from active_annotator.candidates import default_patch_size

    assert default_patch_size((512, 512)) == 32
    assert default_patch_size((31, 61, 57)) == 8  # blocks, not the volume's four quadrants
    assert default_patch_size((100000,)) == 512


def test_auto_patch_size_in_the_panel(viewer, qtbot):
    widget, _, _ = crop2d(viewer)
    panel = widget.suggestions_panel
    assert panel.size_spin.text().startswith("auto")
    run(qtbot, widget, widget.train_button.click)
    suggest(qtbot, panel)
    shape = viewer.layers["prediction"].data.shape
    from active_annotator.candidates import default_patch_size

    edge = default_patch_size(shape)
    c = panel.suggestions[0].candidate
    assert max(s.stop - s.start for s in c.slices) == edge
