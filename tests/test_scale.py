"""Chunked (dask) and distributed prediction equal in-memory prediction exactly."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from active_annotator.classifier import PixelClassifier
from active_annotator.cli import main
from active_annotator.data import nuclei2d, nuclei3d
from active_annotator.features import FeatureSet
from active_annotator.scale import predict_dask


@pytest.fixture(scope="module")
def model2d():
    d = nuclei2d()
    clf = PixelClassifier(FeatureSet(sigmas=(1.0, 2.0, 4.0)), n_estimators=15).fit(
        d["image"], d["labels"])
    return clf, d["image"], d["labels"]


@pytest.fixture(scope="module")
def model3d():
    d = nuclei3d()
    rng = np.random.default_rng(0)
    labels = np.where(rng.random(d["truth"].shape) < 0.03, d["truth"], 0).astype(np.uint8)
    clf = PixelClassifier(FeatureSet(sigmas=(1.0, 2.0), ndim=3), n_estimators=10).fit(
        d["image"], labels)
    return clf, d["image"]


@pytest.mark.parametrize("chunks", [(100, 100), (200, 77), (512, 512), (300, 5)])
def test_dask_prediction_equals_in_memory_2d(model2d, chunks):
    clf, image, _ = model2d
    lazy = predict_dask(clf, da.from_array(image, chunks=chunks))
    assert lazy.shape == image.shape and lazy.dtype == clf.labels_dtype_
    assert np.array_equal(lazy.compute(), clf.predict(image))
    p = predict_dask(clf, image, proba=True, chunks=chunks).compute()
    assert p.dtype == np.float32
    assert np.array_equal(p, clf.predict_proba(image))


def test_dask_prediction_equals_in_memory_3d_volume(model3d):
    clf, vol = model3d
    lazy = predict_dask(clf, da.from_array(vol, chunks=(12, 20, 19)))
    assert np.array_equal(lazy.compute(), clf.predict(vol))


def test_stack_of_planes_with_channels(model2d):
    _, image, _ = model2d
    rng = np.random.default_rng(1)
    labels = np.where(rng.random(image.shape) < 0.05, nuclei2d()["truth"], 0)
    img = np.stack([image[:150, :160], image[150:300, :160], image[300:450, :160]])
    rgb = np.stack([img, img // 3], axis=-1)                     # (3, 150, 160, 2)
    lab = np.stack([labels[:150, :160], labels[150:300, :160], labels[300:450, :160]])
    clf = PixelClassifier(FeatureSet(sigmas=(1.0, 2.0)), n_estimators=8).fit(
        rgb, lab, channel_axis=-1)
    lazy = predict_dask(clf, da.from_array(rgb, chunks=(2, 64, 64, 1)), channel_axis=-1)
    assert lazy.shape == (3, 150, 160)
    assert np.array_equal(lazy.compute(), clf.predict(rgb, channel_axis=-1))
    p = predict_dask(clf, rgb, channel_axis=-1, proba=True, chunks=(1, 70, 70)).compute()
    assert np.array_equal(p, clf.predict_proba(rgb, channel_axis=-1))


def test_cli_train_predict_round_trip_tif(tmp_path, model2d):
    tifffile = pytest.importorskip("tifffile")
    _, image, labels = model2d
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    model = tmp_path / "m.aamodel"
    assert main(["train", "--image", str(tmp_path / "img.tif"), "--labels",
                 str(tmp_path / "lab.tif"), "--sigmas", "1,2,4", "--trees", "12",
                 "--output", str(model)]) == 0
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "img.tif"),
                 "--output", str(tmp_path / "seg.tif"), "--chunks", "200,200"]) == 0
    clf = PixelClassifier.load(model)
    assert clf.feature_set.sigmas == (1.0, 2.0, 4.0) and clf.n_estimators == 12
    assert np.array_equal(tifffile.imread(tmp_path / "seg.tif"), clf.predict(image))


def test_cli_predict_zarr_to_zarr_with_probabilities(tmp_path, model2d):
    zarr = pytest.importorskip("zarr")
    clf, image, _ = model2d
    model = tmp_path / "m.aamodel"
    clf.save(model)
    vol = np.stack([image, image[::-1]])                         # 2 planes, 2-D features
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=vol.shape, chunks=(1, 256, 256),
                          dtype=vol.dtype)
    z[...] = vol
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "in.zarr"),
                 "--output", str(tmp_path / "out.zarr")]) == 0
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert out.chunks == (1, 256, 256)
    assert np.array_equal(out[...], clf.predict(vol))
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "in.zarr"),
                 "--output", str(tmp_path / "proba.zarr"), "--probabilities"]) == 0
    assert np.array_equal(zarr.open_array(str(tmp_path / "proba.zarr"), mode="r")[...],
                          clf.predict_proba(vol))


def test_cli_zarr_with_small_last_chunk_and_small_chunks(tmp_path, model2d):
    zarr = pytest.importorskip("zarr")
    clf, image, _ = model2d
    model = tmp_path / "m.aamodel"
    clf.save(model)
    img = image[:, :490]                                          # chunks 240,240,10 along x
    for chunks in [(240, 240), (24, 24)]:                         # halo 16; tiny chunks merged
        z = zarr.create_array(str(tmp_path / "in.zarr"), shape=img.shape, chunks=chunks,
                              dtype=img.dtype, overwrite=True)
        z[...] = img
        assert main(["predict", "--model", str(model), "--input", str(tmp_path / "in.zarr"),
                     "--output", str(tmp_path / "out.zarr")]) == 0
        assert np.array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...],
                              clf.predict(img))


def test_cli_reports_wrong_channels(tmp_path, model2d, capsys):
    clf, image, _ = model2d
    model = tmp_path / "m.aamodel"
    clf.save(model)
    np.save(tmp_path / "rgb.npy", np.stack([image] * 3, axis=-1))
    rc = main(["predict", "--model", str(model), "--input", str(tmp_path / "rgb.npy"),
               "--output", str(tmp_path / "o.tif"), "--channel-axis", "-1"])
    assert rc == 1
    assert "trained on images with 1 channel(s), but this image has 3" in capsys.readouterr().err


@pytest.mark.slow
def test_local_cluster_equals_single_process(tmp_path, model3d):
    distributed = pytest.importorskip("distributed")
    zarr = pytest.importorskip("zarr")
    clf, vol = model3d
    model = tmp_path / "m.aamodel"
    clf.save(model)
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=vol.shape, chunks=(16, 32, 32),
                          dtype=vol.dtype)
    z[...] = vol
    single = predict_dask(clf, da.from_zarr(str(tmp_path / "in.zarr"))).compute(
        scheduler="synchronous")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        assert main(["predict", "--model", str(model), "--input", str(tmp_path / "in.zarr"),
                     "--output", str(tmp_path / "out.zarr"),
                     "--scheduler", cluster.scheduler_address]) == 0
        with distributed.Client(cluster) as client:
            api = client.compute(predict_dask(clf, da.from_zarr(str(tmp_path / "in.zarr")))).result()
    assert np.array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...], single)
    assert np.array_equal(api, single)
    assert np.array_equal(single, clf.predict(vol))


def test_train_and_predict_commands_accept_a_seismogram(tmp_path):
    """miniSEED in, one class per sample out: the same commands as for images."""
    pytest.importorskip("obspy")
    import tifffile

    from active_annotator import data
    from active_annotator.cli import main

    rec = data.seismogram()
    src = data.sample_dir() / "seismogram_BW_RJOB.mseed"
    n = rec.data.shape[1]
    labels = np.zeros(n, np.uint8)
    labels[30:300] = 1                      # quiet start: noise
    labels[int(5 * rec.sampling_rate):int(9 * rec.sampling_rate)] = 2   # the earthquake
    np.save(tmp_path / "labels.npy", labels)
    assert main(["train", "--image", str(src), "--labels", str(tmp_path / "labels.npy"),
                 "--sigmas", "1,4,16", "--trees", "20", "--output", str(tmp_path / "m.aamodel")]) == 0
    assert main(["predict", "--model", str(tmp_path / "m.aamodel"), "--input", str(src),
                 "--output", str(tmp_path / "pred.tif")]) == 0
    pred = tifffile.imread(tmp_path / "pred.tif")
    assert pred.shape == (n,)
    assert (pred[30:300] == 1).mean() > 0.9 and (pred[int(6 * rec.sampling_rate)] == 2)
