"""Projects in napari: autosave after strokes and undo, restore after a crash, kill test."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from active_annotator.project import Project

pytest.importorskip("napari")
from active_annotator_napari._project import open_project, save_project  # noqa: E402

HERE = Path(__file__).parent


def _stroke(layer, rows, cols, value):
    r, c = np.meshgrid(np.arange(*rows), np.arange(*cols), indexing="ij")
    with layer.block_history():
        layer.data_setitem((r.ravel(), c.ravel()), value)


def test_stroke_and_undo_are_autosaved(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    img = viewer.add_image(np.zeros((64, 80), np.float32), name="cells")
    lab = viewer.add_labels(np.zeros((64, 80), np.uint8), name="annotations")
    session = save_project(tmp_path / "p", img, lab, delay_ms=50)

    with qtbot.waitSignal(session.autosaved, timeout=5000):
        _stroke(lab, (5, 8), (10, 40), 2)
    disk = session.project.load_annotations("cells", prefer_autosave=True)
    assert (disk[5:8, 10:40] == 2).all() and disk.sum() == 2 * 3 * 30

    with qtbot.waitSignal(session.autosaved, timeout=5000):
        lab.undo()  # napari's own history; the undone state is saved too
    assert not session.project.load_annotations("cells", prefer_autosave=True).any()
    with qtbot.waitSignal(session.autosaved, timeout=5000):
        lab.redo()
    assert (session.project.load_annotations("cells", prefer_autosave=True)[5:8, 10:40] == 2).all()
    session.close()
    assert not Project.open(tmp_path / "p.aaproject").crashed()


def test_reopen_after_crash_offers_and_restores_autosave(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    img = viewer.add_image(np.random.default_rng(0).random((40, 50)).astype(np.float32), name="cells")
    lab = viewer.add_labels(np.zeros((40, 50), np.uint8), name="annotations")
    session = save_project(tmp_path / "p", img, lab, delay_ms=50)  # explicit save: all zero
    with qtbot.waitSignal(session.autosaved, timeout=5000):
        _stroke(lab, (1, 3), (1, 30), 1)
    # no close(): the session "crashes" here

    viewer2 = make_napari_viewer()
    sessions = open_project(viewer2, tmp_path / "p.aaproject", restore=True)
    restored = viewer2.layers["annotations"].data
    assert (restored[1:3, 1:30] == 1).all()
    np.testing.assert_array_equal(viewer2.layers["cells"].data, img.data)
    for s in sessions:
        s.close()

    viewer3 = make_napari_viewer()
    sessions = open_project(viewer3, tmp_path / "p.aaproject", restore=None)  # clean: no dialog
    assert (viewer3.layers["annotations"].data[1:3, 1:30] == 1).all()
    for s in sessions:
        s.close()


def test_declining_restore_keeps_the_saved_annotations(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    img = viewer.add_image(np.zeros((30, 30), np.float32), name="cells")
    lab = viewer.add_labels(np.zeros((30, 30), np.uint8), name="annotations")
    session = save_project(tmp_path / "p", img, lab, delay_ms=50)
    with qtbot.waitSignal(session.autosaved, timeout=5000):
        _stroke(lab, (1, 2), (1, 9), 2)
    viewer2 = make_napari_viewer()
    sessions = open_project(viewer2, tmp_path / "p.aaproject", restore=False)
    assert not viewer2.layers["annotations"].data.any()
    for s in sessions:
        s.close()


@pytest.mark.slow
@pytest.mark.parametrize("extra_delay", [0.0, 0.07, 0.23])
def test_killing_napari_while_painting_loses_no_autosaved_stroke(tmp_path, extra_delay):
    """A real napari process paints non-stop; SIGKILL it; every stroke reported saved is intact."""
    path = tmp_path / f"kill{int(extra_delay * 100)}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen(
        [sys.executable, str(HERE / "helpers" / "autosave_child.py"), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    last = 0
    deadline = time.monotonic() + 120
    try:
        for line in child.stdout:
            m = re.match(r"ONDISK (\d+)", line)
            if m:
                last = int(m.group(1))
                if last >= 10:
                    break
            if time.monotonic() > deadline:
                break
        # kill at an arbitrary point of the next stroke/autosave cycle
        time.sleep(extra_delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert last >= 10, "the child never reported 10 autosaved strokes"

    project = Project.open(path.with_name(path.name + ".aaproject"))
    assert project.crashed()  # the lock was left behind: the GUI will offer a restore
    disk = project.load_annotations("img", prefer_autosave=True)
    for k in range(last):
        assert (disk[2 * k: 2 * k + 2, 10:200] == 1 + k % 2).all(), f"stroke {k} damaged"
    # whatever was written after that is a whole number of strokes, in order, never garbage
    values = set(np.unique(disk)) - {0}
    assert values <= {1, 2}


def test_widget_saves_and_reopens_a_project_with_model_and_settings(make_napari_viewer, qtbot, tmp_path):
    from active_annotator import data
    from active_annotator_napari._widget import PixelClassifierWidget

    d = data.nuclei2d()
    image = d["image"][:160, :160].copy()
    labels = np.zeros_like(d["truth"][:160, :160])
    labels[::12, ::12] = d["truth"][:160:12, :160:12]  # sparse clicks of both classes
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    viewer.add_labels(labels, name="annotations")
    widget = PixelClassifierWidget(viewer)
    widget.trees_spin.setValue(20)
    widget.live_trees_spin.setValue(7)
    widget.sigmas_edit.setText("1, 2, 4")
    with qtbot.waitSignal(widget.trained, timeout=120_000):
        widget.train()
    assert widget.classifier is not None, widget.status.text()
    with qtbot.waitSignal(widget.suggestions_panel.suggested, timeout=60_000):
        widget.suggestions_panel.suggest()
    ranking = [(s.rank, s.candidate.slices) for s in widget.suggestions_panel.suggestions]
    assert ranking
    session = widget.save_project(tmp_path / "study")
    assert session is not None and "autosave" in widget.project_status.text()
    assert session.project.model_path("pixel.aamodel").exists()
    with qtbot.waitSignal(session.autosaved, timeout=10_000):
        _stroke(viewer.layers["annotations"], (100, 103), (100, 140), 2)
    assert "autosaved" in widget.project_status.text()
    expected = np.array(viewer.layers["annotations"].data)

    viewer2 = make_napari_viewer()
    widget2 = PixelClassifierWidget(viewer2)
    with qtbot.waitSignal(widget2.predicted, timeout=120_000):  # the saved model predicts
        widget2.open_project(tmp_path / "study.aaproject", restore=True)
    np.testing.assert_array_equal(viewer2.layers["annotations"].data, expected)
    np.testing.assert_array_equal(viewer2.layers["nuclei"].data, image)
    assert widget2.sigmas_edit.text() == "1, 2, 4" and widget2.trees_spin.value() == 20
    assert widget2.live_trees_spin.value() == 7
    # the learning curve's rounds and the ranking come back with the project
    assert len(widget2.history.rounds) == len(widget.history.rounds) >= 1
    assert [(s.rank, s.candidate.slices) for s in widget2.suggestions_panel.suggestions] == ranking
    assert "prediction" in viewer2.layers
    widget2.project_box.session.close()
    session.close()


def test_project_holds_the_cnn_of_the_cnn_dock(make_napari_viewer, qtbot, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from active_annotator import data
    from active_annotator.cnn import CNNClassifier, CNNConfig
    from active_annotator_napari._cnn_widget import CNNWidget
    from active_annotator_napari._widget import PixelClassifierWidget

    d = data.nuclei2d()
    image, labels = d["image"][:96, :96], d["labels"][:96, :96].copy()
    labels[5:8, 5:30] = 1
    labels[60:63, 60:64] = 2
    cnn = CNNClassifier(CNNConfig(epochs=1, batches_per_epoch=2, batch_size=2, patch_size=32, seed=3),
                        device="cpu", n_threads=1).fit(image, labels)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    viewer.add_labels(labels, name="annotations")
    widget = PixelClassifierWidget(viewer)
    cnn_dock = CNNWidget(viewer)
    viewer.window.add_dock_widget(cnn_dock)
    cnn_dock.cnn = cnn  # as after Fine-tune CNN
    session = widget.save_project(tmp_path / "with_cnn")
    assert session is not None
    saved = session.project.model_path("cnn.aacnn")
    assert saved.exists() and "with the CNN" in widget.project_status.text()
    session.close()

    # reopened with a CNN dock open: the dock gets the same network back
    viewer2 = make_napari_viewer()
    widget2 = PixelClassifierWidget(viewer2)
    dock2 = CNNWidget(viewer2)
    viewer2.window.add_dock_widget(dock2)
    with qtbot.waitSignal(dock2.predicted, timeout=120_000):
        widget2.open_project(tmp_path / "with_cnn.aaproject", restore=True)
    assert dock2.cnn is not None and "loaded the project's CNN" in widget2.project_status.text()
    np.testing.assert_allclose(dock2.cnn.predict_proba(image), cnn.predict_proba(image), atol=1e-5)
    widget2.project_box.session.close()

    # reopened without a CNN dock: the status says where the CNN is
    viewer3 = make_napari_viewer()
    widget3 = PixelClassifierWidget(viewer3)
    widget3.open_project(tmp_path / "with_cnn.aaproject", restore=True)
    assert "holds a CNN" in widget3.project_status.text()
    widget3.project_box.session.close()


def test_widget_reports_a_project_it_cannot_open(make_napari_viewer, tmp_path):
    from active_annotator_napari._widget import PixelClassifierWidget

    viewer = make_napari_viewer()
    widget = PixelClassifierWidget(viewer)
    assert widget.open_project(tmp_path) is None
    assert "not a project folder" in widget.status.text()
