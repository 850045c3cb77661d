"""All four docks open at once fit a 1280x800 screen (issue 16, point 7), under Xvfb."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("torch")

from active_annotator import data  # noqa: E402
from active_annotator_napari._dock import Dock  # noqa: E402

pytestmark = pytest.mark.gui

PLUGIN = "napari-active-annotator"
DOCKS = ("Pixel classifier", "Object classifier", "Signal classifier", "CNN fine-tuning")
SCREEN = (1280, 800)


def open_all_docks(viewer):
    d = data.nuclei2d()
    viewer.add_image(d["image"], name="nuclei")
    viewer.add_labels(d["labels"], name="annotations")
    viewer.add_labels(d["objects"], name="objects")
    return {name: viewer.window.add_plugin_dock_widget(PLUGIN, name) for name in DOCKS}


# chrome of the main window: menu bar, napari's status bar, one title bar per dock
CHROME_PX = 60 + 25 * len(DOCKS)


def test_all_four_docks_fit_a_1280x800_window(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window  # the real viewer, not the plugin proxy: the test measures Qt
    window.resize(*SCREEN)
    docks = open_all_docks(viewer)
    # the docks are shown by the event loop: wait until each is on screen or tabified
    qtbot.waitUntil(lambda: all(d.isVisible() or window.tabifiedDockWidgets(d) for d, _ in docks.values()),
                    timeout=5000)
    window.resize(*SCREEN)
    qtbot.waitUntil(lambda: window.width() <= SCREEN[0] and window.height() <= SCREEN[1], timeout=5000)
    hint = window.minimumSizeHint()
    assert hint.width() <= SCREEN[0] and hint.height() <= SCREEN[1], (hint.width(), hint.height())
    frame = window.rect()
    for name, (dock, widget) in docks.items():
        if not dock.isVisible():  # tabified: one tab of a visible group
            assert any(d.isVisible() for d in window.tabifiedDockWidgets(dock)), name
            continue
        top_left = dock.mapTo(window, dock.rect().topLeft())
        bottom_right = dock.mapTo(window, dock.rect().bottomRight())
        assert frame.contains(top_left) and frame.contains(bottom_right), (name, top_left, bottom_right)
        status = getattr(widget, "status", None)
        if status is not None and isinstance(widget, Dock):  # the base's footer stays on screen
            corner = status.mapTo(window, status.rect().bottomRight())
            assert frame.contains(corner), (name, corner)


def test_the_base_docks_leave_room_for_a_fourth_on_an_800_px_screen(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(*SCREEN)
    docks = open_all_docks(viewer)
    qtbot.wait(0)
    base = {name: w for name, (_, w) in docks.items() if isinstance(w, Dock)}
    heights = {name: w.minimumSizeHint().height() for name, w in base.items()}
    widths = {name: w.minimumSizeHint().width() for name, w in base.items()}
    assert len(heights) >= 3, heights  # Object, Signal and CNN docks are built on the base
    # each leaves as much height to a fourth dock as it takes itself
    assert max(heights.values()) * len(DOCKS) + CHROME_PX <= SCREEN[1], heights
    assert max(widths.values()) <= SCREEN[0] // 2, widths  # the image keeps at least half the width
