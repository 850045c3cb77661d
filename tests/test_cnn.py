"""Tests of the CNN pixel classifier (active_annotator.cnn); small images, few epochs."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from active_annotator.cnn import CNNClassifier, CNNConfig, is_cnn_file, load_cnn  # noqa: E402
from active_annotator.cnn_net import IGNORE, sparse_cross_entropy  # noqa: E402
from active_annotator.errors import (  # noqa: E402
    Cancelled,
    InputError,
    LabelError,
    ModelFileError,
    ModelMismatchError,
)

SMALL = dict(widths=[8, 16], depth=1, patch_size=32, batch_size=4, batches_per_epoch=4, tile_size=64)


def two_textures(size=64, seed=0):
    """Left half: smooth noise; right half: fine checkerboard noise. Same mean and spread."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0, 1, (size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    checker = np.where((yy + xx) % 2 == 0, 1.0, -1.0).astype(np.float32)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 1, (size, size)), 0), 1)
    smooth = ((smooth - smooth.mean()) / smooth.std()).astype(np.float32)
    right = xx >= size // 2
    img = np.where(right, 1.5 * checker + 0.3 * img, smooth + 0.3 * img).astype(np.float32)
    truth = np.where(right, 2, 1).astype(np.uint8)
    labels = np.zeros_like(truth)
    s = size // 64 if size >= 64 else 1
    for r in (size // 8, 3 * size // 8, 5 * size // 8, 7 * size // 8):  # short strokes in each half
        labels[r, size // 10:size * 3 // 10 + s] = 1
        labels[r, size * 7 // 10:size * 9 // 10 + s] = 2
    return img, labels, truth


@pytest.fixture(scope="module")
def trained():
    img, labels, truth = two_textures()
    seen = []
    clf = CNNClassifier.from_config(CNNConfig(epochs=12, learning_rate=1e-2, patience=0, seed=1, **SMALL), device="cpu", n_threads=1)
    clf.fit(img, labels, on_progress=seen.append)
    return clf, img, labels, truth, seen


def test_loss_ignores_unlabelled_pixels_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=g, requires_grad=True)
    target = torch.full((2, 8, 8), IGNORE, dtype=torch.long)
    target[0, 2, 3] = 1
    target[1, 5, 5] = 0
    target[1, 6, 1] = 2
    loss = sparse_cross_entropy(logits, target)
    loss.backward()
    grad = logits.grad.clone()
    unl = (target == IGNORE).unsqueeze(1).expand_as(logits)
    assert torch.all(grad[unl] == 0)

    # other logits at unlabelled pixels: same loss, same gradient at labelled ones
    logits2 = logits.detach().clone()
    logits2[unl] = torch.randn(int(unl.sum()), generator=g) * 100
    logits2.requires_grad_(True)
    loss2 = sparse_cross_entropy(logits2, target)
    loss2.backward()
    assert float(loss2.detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
    assert torch.allclose(logits2.grad, grad)

    # a batch with no labels gives zero loss and zero gradient, not NaN
    empty = torch.full((2, 8, 8), IGNORE, dtype=torch.long)
    z = sparse_cross_entropy(logits, empty)
    assert float(z.detach()) == 0.0


def test_training_lowers_loss_and_separates_two_textures(trained):
    clf, img, labels, truth, seen = trained
    train = clf.history_["train_loss"]
    assert len(train) == 12
    assert np.mean(train[-3:]) < 0.6 * np.mean(train[:2])
    pred = clf.predict(img)
    assert pred.shape == truth.shape
    # accuracy away from the boundary (receptive field straddles it there)
    inner = np.ones(truth.shape, bool)
    inner[:, 24:40] = False
    acc = np.mean(pred[inner] == truth[inner])
    assert acc > 0.9, acc


def test_progress_reports_every_batch_and_epoch(trained):
    clf, *_, seen = trained
    batches = [i for i in seen if i["event"] == "batch"]
    epochs = [i for i in seen if i["event"] == "epoch"]
    assert len(batches) == 12 * SMALL["batches_per_epoch"]
    assert [e["epoch"] for e in epochs] == list(range(1, 13))
    assert all(np.isfinite(b["train_loss"]) for b in batches)
    # the validation strokes (one per class, held out by stroke) give a validation loss
    assert all(e["val_loss"] is not None and np.isfinite(e["val_loss"]) for e in epochs)


def test_predict_proba_shape_dtype_and_rows_sum_to_one(trained):
    clf, img, *_ = trained
    proba = clf.predict_proba(img)
    assert proba.shape == (2, 64, 64) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(0), 1.0, atol=1e-5)
    assert list(clf.classes_) == [1, 2]


def test_tiled_prediction_matches_one_tile(trained):
    clf, img, *_ = trained
    big = np.tile(img, (2, 2))  # 128x128 > tile_size 64: several overlapping tiles
    tiled = clf.predict_proba(big)
    cfg = clf.config_
    old = cfg.tile_size
    try:
        cfg.tile_size = 1024
        whole = clf.predict_proba(big)
    finally:
        cfg.tile_size = old
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_save_load_round_trip_gives_identical_outputs(trained, tmp_path):
    clf, img, *_ = trained
    path = clf.save(tmp_path / "model")
    assert path.suffix == ".aacnn" and is_cnn_file(path)
    again = CNNClassifier.load(path, device="cpu", n_threads=1)
    np.testing.assert_array_equal(again.predict_proba(img), clf.predict_proba(img))
    assert again.config_ == clf.config_
    assert again.history_ == json.loads(json.dumps(clf.history_))


def test_pickle_payload_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.aacnn"
    path.write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(ModelFileError, match="pickle"):
        load_cnn(path)
    # a torch.save archive (zip holding a pickle) is refused the same way
    tpath = tmp_path / "evil2.aacnn"
    torch.save({"w": torch.zeros(2)}, tpath)
    with pytest.raises(ModelFileError, match="pickle"):
        load_cnn(tpath)


def test_corrupt_and_mismatched_files_give_model_file_error(trained, tmp_path):
    clf, *_ = trained
    good = clf.save(tmp_path / "good.aacnn").read_bytes()
    (tmp_path / "trunc.aacnn").write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelFileError):
        load_cnn(tmp_path / "trunc.aacnn")
    (tmp_path / "short.aacnn").write_bytes(b"abc")
    with pytest.raises(ModelFileError, match="truncated"):
        load_cnn(tmp_path / "short.aacnn")
    with pytest.raises(ModelFileError, match="No CNN model file"):
        load_cnn(tmp_path / "missing.aacnn")

    # a config whose widths do not match the stored weights
    n = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + n])
    cfg = json.loads(header["__metadata__"]["config"])
    cfg["widths"] = [4, 8]
    header["__metadata__"]["config"] = json.dumps(cfg)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (tmp_path / "mismatch.aacnn").write_bytes(struct.pack("<Q", len(raw)) + raw + good[8 + n:])
    with pytest.raises(ModelFileError, match="weight"):
        load_cnn(tmp_path / "mismatch.aacnn")

    header["__metadata__"]["schema_version"] = "99"
    raw = json.dumps(header).encode()
    (tmp_path / "future.aacnn").write_bytes(struct.pack("<Q", len(raw)) + raw + good[8 + n:])
    with pytest.raises(ModelFileError, match="schema 99"):
        load_cnn(tmp_path / "future.aacnn")


def test_should_stop_cancels_within_one_batch():
    img, labels, _ = two_textures(32)
    state = {"batches": 0, "stop": False, "after": 0}

    def on_progress(info):
        if info["event"] == "batch":
            state["batches"] += 1
            if state["stop"]:
                state["after"] += 1
            if state["batches"] == 3:
                state["stop"] = True

    clf = CNNClassifier.from_config(CNNConfig(epochs=50, **SMALL), device="cpu", n_threads=1)
    with pytest.raises(Cancelled):
        clf.fit(img, labels, on_progress=on_progress, should_stop=lambda: state["stop"])
    assert state["after"] == 0  # no batch ran after the flag was raised
    assert not hasattr(clf, "net_")


def test_embeddings_shapes(trained):
    clf, img, *_ = trained
    emb = clf.embed(img)
    assert emb.shape == (SMALL["widths"][0], 64, 64) and emb.dtype == np.float32
    bott = clf.embed(img, layer="bottleneck")
    assert bott.shape == (SMALL["widths"][-1], 64, 64)
    regions = [(slice(0, 16), slice(0, 16)), (slice(0, 16), slice(48, 64)), (slice(30, 40), slice(5, 9))]
    desc = clf.embed_regions(img, regions, embedding=emb)
    assert desc.shape == (3, SMALL["widths"][0])
    np.testing.assert_allclose(desc[0], emb[:, :16, :16].mean((1, 2)), rtol=1e-5)
    with pytest.raises(InputError, match="layer"):
        clf.embed(img, layer="nope")


def test_mc_dropout_gives_mean_proba_and_bounded_uncertainty(trained):
    clf, img, *_ = trained
    proba, unc = clf.mc_dropout_uncertainty(img, n=3)
    assert proba.shape == (2, 64, 64) and unc.shape == (64, 64)
    assert 0 <= unc.min() and unc.max() <= 1 and unc.max() > 0


def test_warm_start_distils_given_probabilities():
    img, labels, truth = two_textures(32)
    proba = np.stack([(truth == 1), (truth == 2)]).astype(np.float32)
    cfg = CNNConfig(epochs=1, warm_start_epochs=6, learning_rate=1e-2, **SMALL)
    clf = CNNClassifier.from_config(cfg, device="cpu", n_threads=1).fit(img, labels, warm_start_proba=proba, warm_start_classes=[1, 2])
    assert clf.history_["phase"][:6] == ["warm_start"] * 6
    with pytest.raises(InputError, match="classes"):
        CNNClassifier.from_config(cfg, device="cpu", n_threads=1).fit(img, labels, warm_start_proba=proba, warm_start_classes=[1, 3])
    with pytest.raises(InputError, match="shape"):
        CNNClassifier.from_config(cfg, device="cpu", n_threads=1).fit(img, labels, warm_start_proba=proba[:, :10])


def test_same_seed_repeats_training():
    img, labels, _ = two_textures(32)
    cfg = CNNConfig(epochs=2, **SMALL)
    a = CNNClassifier.from_config(cfg, device="cpu", n_threads=1).fit(img, labels)
    b = CNNClassifier.from_config(cfg, device="cpu", n_threads=1).fit(img, labels)
    assert a.history_ == b.history_
    np.testing.assert_array_equal(a.predict_proba(img), b.predict_proba(img))


def test_one_dimensional_signal_with_channels():
    rng = np.random.default_rng(0)
    t = np.arange(512)
    sig = np.stack([np.sin(t / 3.0) * (t >= 256) + 0.1 * rng.normal(size=512),
                    0.1 * rng.normal(size=512)]).astype(np.float32)  # (channels, time)
    labels = np.zeros(512, np.uint8)
    labels[20:60] = 1
    labels[300:340] = 2
    cfg = CNNConfig(dims=1, epochs=2, patch_size=128, tile_size=256, widths=[8, 16], depth=1,
                    batch_size=4, batches_per_epoch=2)
    clf = CNNClassifier.from_config(cfg, device="cpu", n_threads=1).fit(sig, labels, channel_axis=0)
    assert clf.predict_proba(sig, channel_axis=0).shape == (2, 512)
    with pytest.raises(ModelMismatchError, match="channel"):
        clf.predict_proba(sig[0])


def test_bad_inputs_give_clear_errors():
    img, labels, _ = two_textures(32)
    with pytest.raises(LabelError, match="two classes"):
        CNNClassifier.from_config(CNNConfig(**SMALL)).fit(img, (labels == 1).astype(np.uint8))
    with pytest.raises(InputError, match="widths"):
        CNNConfig(widths=[8, 16, 32], depth=1).validate()
    with pytest.raises(InputError, match="Unknown CNN config"):
        CNNConfig.from_dict({"dims": 2, "bogus": 1})
    assert json.loads(json.dumps(CNNConfig().to_dict())) == CNNConfig().to_dict()


def test_cli_finetune_and_cnn_predict(tmp_path):
    import tifffile

    from active_annotator.cli import main

    img, labels, _ = two_textures(32)
    tifffile.imwrite(tmp_path / "img.tif", img)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    model = tmp_path / "m.aacnn"
    rc = main(["finetune", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lab.tif"),
               "--epochs", "1", "--batches-per-epoch", "2", "--batch-size", "2", "--patch-size", "32",
               "--widths", "8", "16", "--output", str(model), "--quiet", "--device", "cpu"])
    assert rc == 0 and model.exists()
    rc = main(["cnn-predict", "--model", str(model), "--image", str(tmp_path / "img.tif"),
               "--output", str(tmp_path / "seg.tif"), "--uncertainty", str(tmp_path / "unc.tif")])
    assert rc == 0
    seg = tifffile.imread(tmp_path / "seg.tif")
    assert seg.shape == (32, 32) and set(np.unique(seg)) <= {1, 2}
    assert tifffile.imread(tmp_path / "unc.tif").shape == (32, 32)


def test_prediction_leaves_the_input_unchanged_and_repeats(trained):
    clf, img, *_ = trained
    before = img.copy()
    a = clf.predict_proba(img)
    b = clf.predict_proba(img)
    np.testing.assert_array_equal(img, before)
    np.testing.assert_array_equal(a, b)


def test_dask_prediction_matches_in_memory(trained):
    da = pytest.importorskip("dask.array")
    from active_annotator.scale import predict_dask

    clf, img, *_ = trained
    big = np.tile(img, (2, 2))
    lazy = predict_dask(clf, da.from_array(big, chunks=64), proba=True)
    np.testing.assert_allclose(lazy.compute(scheduler="synchronous"), clf.predict_proba(big), atol=1e-4)
    seg = predict_dask(clf, big, chunks=64).compute(scheduler="synchronous")
    np.testing.assert_array_equal(seg, clf.predict(big))
    assert seg.dtype == np.uint8


def test_dask_prediction_of_a_cnn_file_and_the_old_import_path(trained, tmp_path):
    pytest.importorskip("dask.array")
    from active_annotator import cnn, scale

    clf, img, *_ = trained
    assert cnn.predict_dask is scale.predict_dask
    path = clf.save(tmp_path / "m.aacnn")
    seg = scale.predict_dask(path, img, chunks=32).compute(scheduler="synchronous")
    np.testing.assert_array_equal(seg, clf.predict(img))


def test_dask_chunks_smaller_than_the_cnn_halo_are_refused(trained):
    pytest.importorskip("dask.array")
    from active_annotator.scale import predict_dask

    clf, img, *_ = trained
    with pytest.raises(InputError, match="smaller than the CNN's halo"):
        predict_dask(clf, img, chunks=(img.shape[0], clf.halo - 1))


def test_three_dimensional_volume():
    rng = np.random.default_rng(0)
    vol = rng.normal(0, 1, (16, 16, 16)).astype(np.float32)
    vol[:, :, 8:] += 3
    labels = np.zeros(vol.shape, np.uint8)
    labels[4, 4, 1:6] = 1
    labels[10, 10, 10:15] = 2
    cfg = CNNConfig(dims=3, epochs=1, widths=[4, 8], depth=1, patch_size=8, tile_size=16,
                    batch_size=2, batches_per_epoch=2, validation_fraction=0.0)
    clf = CNNClassifier.from_config(cfg, device="cpu", n_threads=1).fit(vol, labels)
    assert clf.predict_proba(vol).shape == (2, 16, 16, 16)
    assert clf.embed(vol).shape == (4, 16, 16, 16)


def test_forest_model_file_is_named_when_given_as_cnn(tmp_path):
    from active_annotator import FeatureSet, PixelClassifier

    img, labels, _ = two_textures(32)
    rf = PixelClassifier(FeatureSet.default(ndim=2), n_estimators=2, n_jobs=1).fit(img, labels)
    path = tmp_path / "rf.aamodel"
    rf.save(path)
    with pytest.raises(ModelFileError, match="random-forest"):
        load_cnn(path)
    assert not is_cnn_file(path)


def test_missing_torch_gives_install_hint(monkeypatch):
    import sys

    from active_annotator.cnn import MissingDependencyError

    monkeypatch.setitem(sys.modules, "torch", None)  # makes "import torch" fail
    img, labels, _ = two_textures(32)
    with pytest.raises(MissingDependencyError, match=r'pip install "napari-active-annotator\[cnn\]"'):
        CNNClassifier().fit(img, labels)


def test_cnn_embeddings_drive_diversity_sampling(trained):
    from active_annotator import candidates as cand
    from active_annotator import sampling

    clf, img, labels, *_ = trained
    patches = cand.describe(sampling.image_patches(img.shape, size=16), clf.embed(img))
    assert patches[0].descriptor.shape == (SMALL["widths"][0],)
    ranked = sampling.suggest(patches, labelled=labels, strategy="diversity", n=4, seed=0,
                              proba=clf.predict_proba(img))
    assert len(ranked) == 4 and len({s.candidate.id for s in ranked}) == 4


def test_predict_command_accepts_cnn_files(trained, tmp_path):
    """`active-annotator predict` dispatches .aacnn models and matches in-memory prediction."""
    import tifffile

    from active_annotator.cli import main

    clf, img = trained[0], trained[1]
    model = clf.save(tmp_path / "net")
    tifffile.imwrite(tmp_path / "img.tif", img)
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "img.tif"),
                 "--output", str(tmp_path / "out.tif")]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), clf.predict(img))
