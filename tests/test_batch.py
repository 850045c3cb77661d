"""Batch prediction over a folder: progress, cancel within one image, rerun skips finished ones."""

import json
import os

import numpy as np
import pytest
import tifffile

from active_annotator.batch import MANIFEST, find_inputs, predict_batch
from active_annotator.classifier import PixelClassifier
from active_annotator.errors import InputError
from active_annotator.features import FeatureSet

N = 100


def _image(i, shape=(24, 24)):
    rng = np.random.default_rng(i)
    img = rng.normal(0, 0.2, shape).astype(np.float32)
    img[: shape[0] // 2] += 2.0  # top half bright = class 2
    return img


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    img = _image(0, (48, 48))
    labels = np.zeros(img.shape, np.uint8)
    labels[2:10, 2:40] = 2
    labels[30:45, 2:40] = 1
    clf = PixelClassifier(FeatureSet(sigmas=(1.0, 2.0), ndim=2), n_estimators=8).fit(img, labels)
    return clf, clf.save(d / "m.aamodel")


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    for i in range(N):
        tifffile.imwrite(d / f"img_{i:03d}.tif", _image(i))
    (d / "notes.txt").write_text("not an image")
    return d


def test_100_images_progress_and_outputs_equal_in_memory_prediction(model, folder, tmp_path):
    clf, path = model
    seen = []
    report = predict_batch(path, folder, tmp_path / "out", on_progress=lambda d, t: seen.append((d, t)))
    assert report.count("done") == N and not report.cancelled
    assert seen == [(i, N) for i in range(1, N + 1)]
    for i in (0, 57, 99):
        out = tifffile.imread(tmp_path / "out" / f"img_{i:03d}.tif")
        np.testing.assert_array_equal(out, clf.predict(_image(i)))
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == \
        [f"img_{i:03d}.tif" for i in range(N)]


def test_cancel_stops_within_the_running_image_and_writes_nothing_of_it(model, folder, tmp_path):
    _, path = model
    out = tmp_path / "out"
    stop = {"now": False}
    statuses = {}

    def on_file(i, fr):
        statuses[i] = fr.status
        if i == 40 and fr.status == "running":
            stop["now"] = True  # asked while image 40 runs

    report = predict_batch(path, folder, out, should_stop=lambda: stop["now"], on_file=on_file,
                           chunks=(8, 8))  # 9 chunks per image: cancel lands inside it
    assert report.cancelled
    assert [f.status for f in report.files[:40]] == ["done"] * 40
    assert report.files[40].status == "cancelled" and "nothing written" in report.files[40].message
    assert all(f.status == "cancelled" for f in report.files[41:])
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([MANIFEST] + [f"img_{i:03d}.tif" for i in range(40)])  # no partials


def test_rerun_skips_finished_images_and_redoes_changed_or_damaged_ones(model, folder, tmp_path):
    _, path = model
    out = tmp_path / "out"
    stop = {"n": 0}

    def should_stop():
        return stop["n"] >= 30

    predict_batch(path, folder, out, on_progress=lambda d, t: stop.__setitem__("n", d),
                  should_stop=should_stop)
    assert len(list(out.glob("*.tif"))) == 30
    # damage one finished output (a half-written copy) and change one input
    with open(out / "img_005.tif", "r+b") as f:
        f.truncate(100)
    tifffile.imwrite(folder / "img_010.tif", _image(1010))
    mtime = (out / "img_000.tif").stat().st_mtime_ns
    report = predict_batch(path, folder, out)
    assert report.count("skipped") == 28
    assert report.count("done") == 72
    done = {f.input.name for f in report.files if f.status == "done"}
    assert {"img_005.tif", "img_010.tif"} <= done
    assert (out / "img_000.tif").stat().st_mtime_ns == mtime  # untouched
    tifffile.imread(out / "img_005.tif")  # whole again
    # a third run has nothing to do
    assert predict_batch(path, folder, out).count("skipped") == N


def test_a_corrupt_manifest_is_ignored_not_trusted(model, folder, tmp_path):
    _, path = model
    out = tmp_path / "out"
    predict_batch(path, [folder / "img_000.tif", folder / "img_001.tif"], out)
    (out / MANIFEST).write_text("{not json")
    report = predict_batch(path, [folder / "img_000.tif", folder / "img_001.tif"], out)
    assert report.count("done") == 2
    assert json.loads((out / MANIFEST).read_text())["format"] == "napari-active-annotator.batch"


def test_a_planted_symlink_under_an_output_name_is_replaced_not_followed(model, folder, tmp_path):
    _, path = model
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, out / "img_000.tif")
    predict_batch(path, [folder / "img_000.tif"], out)
    assert victim.read_text() == "keep me"
    assert not (out / "img_000.tif").is_symlink()
    assert tifffile.imread(out / "img_000.tif").shape == (24, 24)


def test_a_bad_image_fails_alone_with_its_reason(model, folder, tmp_path):
    _, path = model
    tifffile.imwrite(folder / "img_050.tif", np.zeros((40, 40, 3), np.uint8))  # RGB, model has 1 channel
    (folder / "img_05x.npy").write_bytes(b"garbage")
    report = predict_batch(path, sorted(folder.glob("img_05*")), tmp_path / "out")
    failed = {f.input.name: f.message for f in report.files if f.status == "failed"}
    assert set(failed) == {"img_050.tif", "img_05x.npy"}
    assert "channel" in failed["img_050.tif"]
    assert report.count("done") == len(report.files) - 2


def test_glob_inputs_and_the_output_folder_inside_the_input_is_not_read_back(model, folder):
    _, path = model
    assert len(find_inputs(str(folder / "img_00*.tif"))) == 10
    out = folder / "predictions"
    predict_batch(path, str(folder / "img_00*.tif"), out)
    assert len(find_inputs(folder, exclude=out)) == N
    with pytest.raises(InputError, match="No images found"):
        find_inputs(str(folder / "nothing_*.tif"))


def test_cli_predict_folder_skips_on_rerun(model, folder, tmp_path, capsys):
    from active_annotator.cli import main

    _, path = model
    args = ["predict", "--model", str(path), "--input", str(folder / "img_00*.tif"),
            "--output", str(tmp_path / "out")]
    assert main(args) == 0
    assert "10 images: 10 done" in capsys.readouterr().out
    assert main(args) == 0
    assert "10 images: 10 skipped" in capsys.readouterr().out


# -- the "Batch prediction" dock (napari under Xvfb) -------------------------------------------


@pytest.fixture
def viewer(make_napari_viewer_proxy):
    pytest.importorskip("napari")
    return make_napari_viewer_proxy()


def _dock(viewer, model_path, inputs, out):
    from active_annotator_napari._batch_widget import BatchPredictionWidget

    w = BatchPredictionWidget(viewer)
    viewer.window.add_dock_widget(w, name="Batch prediction")
    w.model_edit.setText(str(model_path))
    w.input_edit.setText(str(inputs))
    w.output_edit.setText(str(out))
    return w


@pytest.mark.gui
def test_dock_runs_shows_per_file_status_and_skips_on_rerun(viewer, qtbot, model, folder, tmp_path):
    _, path = model
    w = _dock(viewer, path, folder / "img_00*.tif", tmp_path / "out")
    with qtbot.waitSignal(w.finished, timeout=60_000) as blocker:
        w.run_button.click()
    report = blocker.args[0]
    assert report.count("done") == 10
    assert w.progress_bar.value() == 10 and w.progress_bar.maximum() == 10
    assert [w.table.item(i, 1).text().split(" (")[0] for i in range(10)] == ["done"] * 10
    assert w.table.item(3, 0).text() == "img_003.tif"
    assert "10 done" in w.status.text()
    with qtbot.waitSignal(w.finished, timeout=60_000) as blocker:
        w.run_button.click()
    assert blocker.args[0].count("skipped") == 10
    assert w.table.item(0, 1).text() == "skipped (done before)"


@pytest.mark.gui
def test_dock_cancel_stops_the_batch_and_keeps_finished_images(viewer, qtbot, model, folder, tmp_path):
    _, path = model
    w = _dock(viewer, path, folder, tmp_path / "out")

    def cancel_after_three(done, total):
        if done == 3:
            w.cancel_button.click()

    w._progress.connect(cancel_after_three)  # main thread, after image 3's progress arrives
    with qtbot.waitSignal(w.finished, timeout=60_000) as blocker:
        w.run_button.click()
    report = blocker.args[0]
    assert report.cancelled
    n_done = report.count("done")
    # the worker may have started a few more images before the click reached it: each
    # ran to its next chunk at most, and every image after the cancelled one is untouched
    assert 3 <= n_done < N
    assert report.count("cancelled") == N - n_done
    assert len(list((tmp_path / "out").glob("*.tif"))) == n_done
    assert w.status.text().startswith("Cancelled")
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()


@pytest.mark.gui
def test_dock_shows_the_core_message_for_a_missing_model(viewer, qtbot, folder, tmp_path):
    w = _dock(viewer, tmp_path / "nope.aamodel", folder, tmp_path / "out")
    with qtbot.waitSignal(w.finished, timeout=30_000) as blocker:
        w.run_button.click()
    assert isinstance(blocker.args[0], str)
    assert "does not exist" in w.status.text() and "nope.aamodel" in w.status.text()


def test_a_cnn_model_file_predicts_a_folder_too(folder, tmp_path):
    pytest.importorskip("torch")
    from active_annotator.cnn import CNNClassifier, CNNConfig

    img = _image(0, (48, 48))
    labels = np.zeros(img.shape, np.uint8)
    labels[2:10, ::3] = 2
    labels[30:45, ::3] = 1
    cnn = CNNClassifier(CNNConfig(epochs=1, batches_per_epoch=1, batch_size=2, warm_start_epochs=0),
                        device="cpu", n_threads=1).fit(img, labels)
    model = cnn.save(tmp_path / "m.aacnn")
    inputs = sorted(folder.glob("img_00[0-2].tif"))
    report = predict_batch(model, inputs, tmp_path / "out", proba=True)
    assert report.count("done") == 3
    got = tifffile.imread(tmp_path / "out" / "img_001.tif")
    np.testing.assert_allclose(got, cnn.predict_proba(_image(1)), atol=1e-5)


@pytest.mark.slow
def test_batch_on_a_dask_distributed_cluster_over_loopback(model, folder, tmp_path):
    distributed = pytest.importorskip("distributed")
    clf, path = model
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        report = predict_batch(path, sorted(folder.glob("img_00[0-2].tif")), tmp_path / "out",
                               scheduler=cluster.scheduler_address)
    assert report.count("done") == 3, report.files
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "img_002.tif"), clf.predict(_image(2)))


@pytest.mark.gui
def test_dock_uses_the_pixel_classifier_docks_current_model(viewer, qtbot, model, folder, tmp_path):
    from active_annotator_napari._widget import PixelClassifierWidget

    clf, _ = model
    w = _dock(viewer, "", folder / "img_00[0-4].tif", tmp_path / "out")
    w.pixel_check.setChecked(True)
    w.run_button.click()  # no Pixel classifier dock yet: the dock says so, nothing runs
    assert "not open or has no trained model" in w.status.text() and not w.busy
    pixel = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(pixel, name="Pixel classifier")
    pixel.classifier = clf  # what Train leaves there
    with qtbot.waitSignal(w.finished, timeout=60_000) as blocker:
        w.run_button.click()
    assert blocker.args[0].count("done") == 5
    assert (tmp_path / "out" / "pixel-classifier.aamodel").is_file()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "img_004.tif"), clf.predict(_image(4)))
    with qtbot.waitSignal(w.finished, timeout=60_000) as blocker:
        w.run_button.click()  # saved again, same bytes: all skipped
    assert blocker.args[0].count("skipped") == 5
