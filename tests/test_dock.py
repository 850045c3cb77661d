"""The dock base (plugin/_dock.py) in a real napari viewer (run under Xvfb)."""

import threading

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from active_annotator.errors import InputError  # noqa: E402
from active_annotator_napari._dock import Dock, image_and_geometry  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def dock(viewer, qtbot):
    d = Dock(viewer, idle_text="idle")
    qtbot.addWidget(d)
    return d


def test_layer_picker_follows_the_layer_list_prefers_and_avoids(viewer, dock):
    picker = dock.layer_picker(napari.layers.Labels, prefer=("objects",), avoid=("ground truth", "annotations"))
    assert picker.value is None
    viewer.add_labels(np.zeros((4, 4), np.uint8), name="ground truth")
    viewer.add_labels(np.zeros((4, 4), np.uint8), name="annotations")
    assert picker.value is None  # only avoided layers: nothing preselected
    cells = viewer.add_labels(np.zeros((4, 4), np.uint8), name="cells")
    assert picker.value.name == "cells"
    objects = viewer.add_labels(np.zeros((4, 4), np.uint8), name="objects")  # (the proxy: compare names)
    assert picker.value.name == "cells"  # a chosen layer stays chosen
    viewer.layers.remove(cells)
    assert picker.value.name == "objects"  # ... until it goes: then the preferred one
    objects.name = "nuclei"
    assert "nuclei" in [picker.native.itemText(i) for i in range(picker.native.count())]
    viewer.add_image(np.zeros((4, 4)), name="image")
    assert all(isinstance(ly, napari.layers.Labels) for ly in picker.layers())


def test_picker_with_a_none_entry(viewer, dock):
    picker = dock.layer_picker(napari.layers.Image, none_text="(none)")
    assert picker.native.currentText() == "(none)" and picker.value is None
    viewer.add_image(np.zeros((4, 4)), name="image")
    assert picker.value.name == "image"
    picker.select("(none)")
    assert picker.value is None


def test_run_delivers_the_latest_result_only_and_drops_a_replaced_one(dock, qtbot):
    release = threading.Event()
    results = []

    def slow(task):
        release.wait(10)
        return "old"

    dock.run(slow, results.append, desc="Slow")
    assert dock.running and dock.cancel_button.isEnabled()
    dock.run(lambda task: "new", results.append, desc="Fast")
    release.set()
    qtbot.waitUntil(lambda: not dock.busy, timeout=10_000)
    assert results == ["new"]
    assert not dock.cancel_button.isEnabled()


def test_replaced_job_sees_its_stop_flag(dock, qtbot):
    seen = []

    def loop(task):
        while not task.should_stop():
            task.progress(1, 2, "looping")
        seen.append("stopped")
        return "stale"

    results = []
    dock.run(loop, results.append, desc="Looping")
    dock.run(lambda task: 42, results.append, desc="Answer")
    qtbot.waitUntil(lambda: not dock.busy, timeout=10_000)
    assert seen == ["stopped"] and results == [42]


def test_cancel_drops_the_result_and_emits_cancelled(dock, qtbot):
    results = []

    def gen(task):
        for i in range(1000):
            yield (i, 1000)
            threading.Event().wait(0.01)
        return "finished"

    dock.run(gen, results.append, desc="Counting")
    qtbot.waitUntil(lambda: dock.progress_bar.maximum() == 1000, timeout=10_000)
    with qtbot.waitSignal(dock.cancelled, timeout=5000):
        dock.cancel_button.click()
    qtbot.waitUntil(lambda: not dock.busy, timeout=10_000)
    assert results == [] and "Cancelled" in dock.status.text()


def test_reports_and_errors_reach_the_main_thread(dock, qtbot):
    reports = []

    def job(task):
        task.report({"epoch": 1})
        raise InputError("Paint two classes.")

    with qtbot.waitSignal(dock.failed, timeout=10_000) as blocker:
        dock.run(job, lambda r: None, desc="Failing", on_report=reports.append)
    assert blocker.args == ["Paint two classes."]
    assert dock.status.text() == "Error: Paint two classes."
    qtbot.waitUntil(lambda: reports == [{"epoch": 1}], timeout=5000)


def test_put_layer_updates_in_place_or_replaces(viewer, dock):
    first = dock.put_layer("out", "labels", np.zeros((4, 4), np.uint8), (1, 1), (0, 0))
    second = dock.put_layer("out", "labels", np.ones((4, 4), np.uint8), (2, 2), (0, 0))
    assert len(viewer.layers) == 1 and first.data is second.data and second.data.sum() == 16 and tuple(second.scale) == (2, 2)
    third = dock.put_layer("out", "image", np.ones((3, 4, 4)), (1, 1, 1), (0, 0, 0))
    assert isinstance(third, napari.layers.Image) and len(viewer.layers) == 1


def test_image_and_geometry_checks_the_layer(viewer):
    with pytest.raises(InputError, match="no image layer"):
        image_and_geometry(None, None)
    rgb = viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="rgb", rgb=True)
    with pytest.raises(InputError, match="RGB image"):
        image_and_geometry(rgb, None)
    data, shape, scale, translate = image_and_geometry(rgb, -1)
    assert shape == (32, 32) and scale == (1.0, 1.0)
    stack = viewer.add_image(np.zeros((2, 8, 9)), name="stack", scale=(1, 2, 3))
    _, shape, scale, _ = image_and_geometry(stack, 0)
    assert shape == (8, 9) and scale == (2.0, 3.0)
