"""Interactive latency paths of the "Pixel classifier" widget (run under Xvfb).

Visible region first, the rest after; features cached per image; a zarr-backed
image is read tile by tile (only the chunks the visible region and the labelled
tiles need before the visible result is shown).
"""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
zarr = pytest.importorskip("zarr")

from active_annotator import data  # noqa: E402
from active_annotator_napari._layers import FOREST_SOURCE, read_probabilities  # noqa: E402
from active_annotator_napari._widget import PixelClassifierWidget  # noqa: E402

pytestmark = pytest.mark.gui

TIMEOUT_MS = 120_000
CHUNK = 128


class CountingStore(zarr.storage.LocalStore):
    """A LocalStore that records the chunk keys it reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = []

    async def get(self, key, prototype=None, byte_range=None):
        if key.startswith("c/"):
            self.reads.append(tuple(int(i) for i in key.split("/")[1:]))
        return await super().get(key, prototype, byte_range)


@pytest.fixture
def viewer(make_napari_viewer_proxy):
    return make_napari_viewer_proxy()


def tiled_sample(n=2):
    d = data.nuclei2d()
    return np.tile(d["image"], (n, n)), d["labels"]


def open_zarr(tmp_path, image):
    store = CountingStore(str(tmp_path / "image.zarr"))
    z = zarr.create_array(store, shape=image.shape, chunks=(CHUNK, CHUNK), dtype=image.dtype)
    z[:] = image
    z = zarr.open_array(store, mode="r")
    z.store.reads.clear()  # opening read-only makes a copy of the store: count on that one
    return z, z.store


def look_at(viewer, y, x, height):
    """Point the camera at (y, x) with about ``height`` data pixels on screen."""
    camera = viewer.scene.camera
    camera.center = (y, x)
    camera.zoom = min(viewer.canvas.size) / height


def test_zarr_image_trains_and_predicts_visible_region_without_reading_every_chunk(viewer, qtbot, tmp_path):
    image, starter = tiled_sample()  # 1024 x 1024 uint16
    z, store = open_zarr(tmp_path, image)
    viewer.add_image(z, name="nuclei", contrast_limits=(0, int(image.max())))
    labels = np.zeros(image.shape, np.uint8)
    labels[:512, :512] = starter  # strokes only in the top-left feature tile
    annotations = viewer.add_labels(labels, name="annotations")
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pixel classifier")
    widget.trees_spin.setValue(10)
    look_at(viewer, 150, 150, 250)
    visible = widget.visible_region(viewer.layers["nuclei"], image.shape, None, 2)
    assert visible[0].stop <= 512 and visible[1].stop <= 512  # inside the first tile

    order, reads_when_visible = [], []

    def on_visible():
        order.append("visible")
        reads_when_visible.append(set(store.reads))
        # what is on screen is already the prediction of what is on screen
        shown = viewer.layers["prediction"].data[visible]
        assert shown.shape == tuple(s.stop - s.start for s in visible)
        assert set(np.unique(shown)) <= {1, 2} and (shown == 2).any() and (shown == 1).any()

    widget.visible_updated.connect(on_visible)
    widget.predicted.connect(lambda: order.append("predicted"))
    widget.failed.connect(lambda msg: order.append(f"failed: {msg}"))
    # napari itself reads the displayed plane of a non-multiscale image whole to draw it:
    # count only what the widget reads from here on
    store.reads.clear()
    with qtbot.waitSignal(widget.trained, timeout=TIMEOUT_MS):
        widget.train_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    assert order == ["visible", "predicted"]
    read = reads_when_visible[0]
    total = (image.shape[0] // CHUNK) * (image.shape[1] // CHUNK)
    # one 512-px feature tile plus its halo: rows/cols 0..4 of 8 chunks, never the far ones
    assert read and len(read) < total / 2
    assert max(max(k) for k in read) <= 4
    # then the full stage predicts the rest: the whole image equals in-memory prediction
    assert len(set(store.reads)) == total
    expected = widget.classifier.predict(image)
    np.testing.assert_array_equal(viewer.layers["prediction"].data, expected)
    proba, classes = read_probabilities(viewer, FOREST_SOURCE)
    assert classes == [1, 2] and proba.shape == (2,) + image.shape

    # a new stroke and a second training: every feature comes from the cache
    tiles = widget.feature_tiles_computed
    assert tiles == 4  # 2 x 2 tiles of 512 px, each computed once
    reads = len(store.reads)
    n_labelled = int((annotations.data > 0).sum())
    annotations.data_setitem((np.full(40, 700), np.arange(700, 740)), 1)
    order.clear()
    with qtbot.waitSignal(widget.trained, timeout=TIMEOUT_MS):
        widget.train_button.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
    assert order == ["visible", "predicted"]
    assert widget.feature_tiles_computed == tiles
    assert len(store.reads) == reads  # not one chunk read again
    assert widget.classifier.n_training_pixels_ == n_labelled + 40


def test_features_are_recomputed_when_the_feature_set_or_image_changes(viewer, qtbot):
    image, starter = tiled_sample(1)
    layer = viewer.add_image(image, name="nuclei")
    viewer.add_labels(starter, name="annotations")
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pixel classifier")
    widget.trees_spin.setValue(5)

    def train():
        with qtbot.waitSignal(widget.trained, timeout=TIMEOUT_MS):
            widget.train_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    train()
    assert widget.feature_tiles_computed == 1
    train()
    assert widget.feature_tiles_computed == 1  # cached
    widget.sigmas_edit.setText("1, 2, 4")
    train()
    assert widget.feature_tiles_computed == 1  # a new cache for the new feature set
    first = widget.session.cached_features
    train()
    assert widget.session.cached_features is first
    layer.data = image[::-1].copy()  # new pixels
    train()
    assert widget.session.cached_features is not first
    np.testing.assert_array_equal(viewer.layers["prediction"].data,
                                  widget.classifier.predict(layer.data))


def test_live_stroke_updates_the_visible_region_first(viewer, qtbot):
    image, starter = tiled_sample()
    viewer.add_image(image, name="nuclei")
    labels = np.zeros(image.shape, np.uint8)
    labels[:512, :512] = starter
    annotations = viewer.add_labels(labels, name="annotations")
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pixel classifier")
    widget.trees_spin.setValue(10)
    look_at(viewer, 700, 700, 200)
    with qtbot.waitSignal(widget.trained, timeout=TIMEOUT_MS):
        widget.live_check.setChecked(True)
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    order = []
    widget.visible_updated.connect(lambda: order.append("visible"))
    widget.trained.connect(lambda: order.append("trained"))
    with qtbot.waitSignal(widget.trained, timeout=TIMEOUT_MS):
        with annotations.block_history():
            annotations.data_setitem((np.full(30, 650), np.arange(650, 680)), 2)
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
    assert order == ["visible", "trained"]
    np.testing.assert_array_equal(viewer.layers["prediction"].data, widget.classifier.predict(image))


def test_zoomed_out_preview_predicts_one_pixel_per_screen_pixel_exactly():
    from active_annotator import AnnotationSession, PixelClassifier

    image, starter = tiled_sample()
    clf = PixelClassifier(n_estimators=5).fit(image[:512, :512], starter)
    session = AnnotationSession(image)
    region = (slice(96, 1000), slice(0, 1024))  # starts at multiples of the step
    (stage,) = list(session.predict(region, classifier=clf, step=4, full=False))
    out = stage.probabilities
    assert out.shape == (2, 904, 1024) and stage.region == region
    exact = clf.predict_proba(image)[:, region[0], region[1]]
    # the sampled pixels are exact, and each fills its 4 x 4 block
    np.testing.assert_allclose(out[:, ::4, ::4], exact[:, ::4, ::4], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out[:, 1::4, 2::4], out[:, ::4, ::4][:, : out[:, 1::4].shape[1], : out[:, :, 2::4].shape[2]])
