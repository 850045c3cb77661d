"""Autocontext stages: out-of-fold training inputs, persistence, exact chunked prediction."""

import io
import json
import zipfile

import numpy as np
import pytest

from active_annotator import FeatureSet, ModelFileError, PixelClassifier
from active_annotator.classifier import _fold_ids, context_spec
from active_annotator.cli import main
from active_annotator.errors import InputError
from active_annotator.features import compute_at
from active_annotator.persistence import load_model

FAST = FeatureSet(sigmas=(1.0, 2.0, 4.0), ndim=2)


def _scene(seed=0, n=96):
    """A noisy bright square on a dark ground, with strokes of both classes."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0, 1, (n, n)).astype(np.float32)
    img[30:70, 30:70] += 1.2
    lab = np.zeros((n, n), np.uint8)
    lab[5:9, 5:60] = 1
    lab[80:84, 10:90] = 1
    lab[40:60, 8:12] = 1
    lab[45:49, 35:65] = 2
    lab[55:65, 50:54] = 2
    lab[33:36, 33:60] = 2
    return img, lab


@pytest.fixture(scope="module")
def two_stage():
    img, lab = _scene()
    return img, lab, PixelClassifier(FAST, n_estimators=12, stages=2, n_jobs=1).fit(img, lab)


def test_stage_two_trains_on_out_of_fold_probabilities():
    # pure noise: nothing to learn, so a forest's probability of the painted class at its
    # own training pixels (memorised) is far above chance, out-of-fold it is near chance
    rng = np.random.default_rng(3)
    img = rng.normal(size=(80, 80)).astype(np.float32)
    lab = np.zeros((80, 80), np.uint8)
    for k, r in enumerate(range(4, 76, 8)):
        lab[r:r + 3, 5:75] = 1 + k % 2
    clf = PixelClassifier(FAST, n_estimators=20, stages=2, n_jobs=1).fit(img, lab)
    y = lab[lab > 0]
    col = np.searchsorted(clf.classes_, y)
    rows = np.arange(y.size)
    oof = clf.training_probabilities_[0][rows, col]
    X1 = compute_at(img, FAST, lab > 0)
    in_sample = clf.forest_.predict_proba(np.ascontiguousarray(X1.T))[rows, col]
    assert in_sample.mean() > 0.8
    assert oof.mean() < 0.6
    assert in_sample.mean() - oof.mean() > 0.25


def test_training_image_prediction_agrees_with_dense_labels(tmp_path):
    # dense labels on the top half: the full first-stage forest has memorised them, so the
    # second stage (trained on out-of-fold inputs) sees unfamiliar inputs there and
    # contradicts some labels; training_image=True gives it the out-of-fold inputs
    rng = np.random.default_rng(3)
    img = rng.normal(size=(80, 80)).astype(np.float32)
    img[20:60, 20:60] += 0.6
    truth = np.ones((80, 80), np.uint8)
    truth[20:60, 20:60] = 2
    lab = truth.copy()
    lab[40:] = 0
    clf = PixelClassifier(FAST, n_estimators=20, stages=2, n_jobs=1).fit(img, lab)
    plain, own = clf.predict(img), clf.predict(img, training_image=True)
    m = lab > 0
    assert (own[m] == lab[m]).mean() > 0.99
    assert (own[m] == lab[m]).mean() > (plain[m] == lab[m]).mean() + 0.01
    # every pixel that was not a training pixel is predicted exactly as without it
    p_plain, p_own = clf.predict_proba(img), clf.predict_proba(img, training_image=True)
    assert np.array_equal(p_plain[:, ~m], p_own[:, ~m])
    # tiles and regions give the same answer
    tiled = PixelClassifier(FAST, n_estimators=20, stages=2, n_jobs=1, tile_shape=24).fit(img, lab)
    np.testing.assert_allclose(tiled.predict_proba(img, training_image=True), p_own, atol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(img, region=(slice(10, 50), slice(5, 70)),
                                                 training_image=True),
                               p_own[:, 10:50, 5:70], atol=1e-5)
    # a loaded model has no fold forests: it predicts the image as a new one
    back = load_model(clf.save(tmp_path / "m"))
    assert np.array_equal(back.predict_proba(img, training_image=True), p_plain)
    # an image of another shape is a new image
    other = rng.normal(size=(64, 70)).astype(np.float32)
    assert np.array_equal(clf.predict_proba(other, training_image=True), clf.predict_proba(other))


def test_folds_keep_strokes_together_and_are_stratified_by_class():
    _, lab = _scene()
    folds = _fold_ids(lab)
    from scipy import ndimage

    comp, n = ndimage.label(lab > 0, structure=np.ones((3, 3)))
    comp = comp[lab > 0]
    for c in range(1, n + 1):
        assert np.unique(folds[comp == c]).size == 1
    assert set(np.unique(folds)) == {0, 1, 2}
    y = lab[lab > 0]
    for f in range(3):  # every fold's complement holds both classes
        assert set(np.unique(y[folds != f])) == {1, 2}
    one = np.zeros((20, 60), np.uint8)
    one[5:8, 2:58] = 1
    f = _fold_ids(one)
    assert set(np.unique(f)) == {0, 1, 2}  # one stroke, cut into slabs
    # a dense background (one region) and a few small objects: every fold gets a fair share
    dense = np.ones((60, 60), np.uint8)
    for r in (10, 30, 50):
        dense[r:r + 3, 10:13] = 2
    dense[:3, 40:43] = 2
    f = _fold_ids(dense)
    bg = np.bincount(f[dense.ravel() == 1], minlength=3)
    assert bg.min() > 0.25 * bg.sum()


def test_two_stage_model_reloads_and_predicts_identically(two_stage, tmp_path):
    img, _, clf = two_stage
    path = clf.save(tmp_path / "ac")
    back = load_model(path)
    assert back.stages == 2 and len(back.forests_) == 2
    assert np.array_equal(back.predict_proba(img), clf.predict_proba(img))
    assert np.array_equal(back.predict(img), clf.predict(img))


def _edit_meta(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            b = zin.read(item.filename)
            if item.filename == "meta.npy":
                meta = json.loads(bytes(np.load(io.BytesIO(b))).decode())
                edit(meta)
                buf = io.BytesIO()
                np.save(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
                b = buf.getvalue()
            zout.writestr(item.filename, b)


@pytest.mark.parametrize("bad", [0, 9, "2", 2.5, True])
def test_loading_validates_stages(two_stage, tmp_path, bad):
    _, _, clf = two_stage
    clf.save(tmp_path / "ac.aamodel")
    _edit_meta(tmp_path / "ac.aamodel", tmp_path / "bad.aamodel",
               lambda m: m["params"].__setitem__("stages", bad))
    with pytest.raises(ModelFileError, match="stages"):
        load_model(tmp_path / "bad.aamodel")


def test_more_stages_than_stored_forests_is_refused(two_stage, tmp_path):
    _, _, clf = two_stage
    clf.save(tmp_path / "ac.aamodel")
    _edit_meta(tmp_path / "ac.aamodel", tmp_path / "bad.aamodel",
               lambda m: m["params"].__setitem__("stages", 3))
    with pytest.raises(ModelFileError, match="missing"):
        load_model(tmp_path / "bad.aamodel")


def test_one_stage_files_keep_schema_version_1(tmp_path):
    img, lab = _scene()
    clf = PixelClassifier(FAST, n_estimators=5, n_jobs=1).fit(img, lab)
    clf.save(tmp_path / "one.aamodel")
    with np.load(tmp_path / "one.aamodel") as z:
        meta = json.loads(bytes(z["meta"]).decode())
    assert meta["schema_version"] == 1
    assert load_model(tmp_path / "one.aamodel").stages == 1


@pytest.mark.parametrize("tile", [16, 40, 64])
def test_tiled_prediction_equals_whole_image(two_stage, tile):
    img, _, clf = two_stage
    whole = clf.predict_proba(img)
    tiled = PixelClassifier(**{**clf.get_params(), "tile_shape": tile})
    for k in ("classes_", "n_channels_in_", "n_features_in_", "feature_names_in_", "labels_dtype_",
              "forest_", "forests_", "feature_importances_"):
        setattr(tiled, k, getattr(clf, k))
    assert np.array_equal(tiled.predict_proba(img), whole)
    region = (slice(20, 61), slice(7, 90))
    assert np.array_equal(tiled.predict_proba(img, region=region), whole[(slice(None),) + region])
    assert np.array_equal(clf.predict(img), clf.classes_[np.argmax(whole, axis=0)])


def test_dask_prediction_equals_in_memory(two_stage, tmp_path):
    da = pytest.importorskip("dask.array")
    from active_annotator.scale import predict_dask

    img, _, clf = two_stage
    assert clf.halo == FAST.halo + context_spec(FAST).halo
    for chunks in ((48, 48), (96, 30)):
        got = predict_dask(clf, da.from_array(img, chunks=chunks), proba=True).compute()
        assert np.array_equal(got, clf.predict_proba(img))
    path = clf.save(tmp_path / "m")
    got = predict_dask(path, img, chunks=40).compute(scheduler="sync")
    assert np.array_equal(got, clf.predict(img))


def test_dask_prediction_with_auto_context_and_a_large_halo_equals_in_memory(tmp_path):
    """context_sigmas="auto": the halo (80 px) is 5x the features' (16); chunks barely larger."""
    da = pytest.importorskip("dask.array")
    from active_annotator.scale import predict_dask

    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (192, 192)).astype(np.float32)
    lab = np.ones((192, 192), np.uint8)
    for y, x, s in ((10, 100, 50), (110, 20, 70), (70, 60, 45), (140, 130, 40)):  # dense labels
        img[y:y + s, x:x + s] += 0.8
        lab[y:y + s, x:x + s] = 2
    clf = PixelClassifier(FAST, n_estimators=6, stages=2, n_jobs=1, context_sigmas="auto").fit(img, lab)
    assert clf.context_sigmas_ == (1.0, 2.0, 4.0, 8.0, 16.0)
    assert clf.halo == FAST.halo + context_spec(FAST, clf.context_sigmas_).halo == 80
    whole = clf.predict_proba(img)
    # chunks of the halo's size (80, 80, 32 -> 80, 112); 2x2 of 96; smaller than the halo (merged)
    for chunks in ((80, 80), (96, 96), (30, 30)):
        got = predict_dask(clf, da.from_array(img, chunks=chunks), proba=True).compute(scheduler="sync")
        assert np.array_equal(got, whole), chunks
    path = clf.save(tmp_path / "auto.aamodel")
    got = predict_dask(path, img, chunks=80).compute(scheduler="sync")
    assert np.array_equal(got, clf.classes_[np.argmax(whole, axis=0)])


def test_feature_cache_source_equals_image_fit_and_predict(two_stage):
    from active_annotator.features import FeatureCache

    img, lab, clf = two_stage
    cache = FeatureCache(img, FAST, tile=32)
    twin = PixelClassifier(**clf.get_params()).fit_sources(lab, lambda p: cache, 1)
    for a, b in zip(twin.forests_, clf.forests_):
        assert np.array_equal(a.threshold, b.threshold) and np.array_equal(a.feature, b.feature)
    region = (slice(10, 50), slice(30, 80))
    assert np.array_equal(twin.predict_proba_source(cache, region),
                          clf.predict_proba(img)[(slice(None),) + region])


def test_stack_of_planes_and_three_stages():
    img, lab = _scene(n=64)
    stack = np.stack([img, img[::-1]])
    labs = np.stack([lab, np.zeros_like(lab)])
    clf = PixelClassifier(FeatureSet(sigmas=(1.0, 2.0)), n_estimators=6, stages=3, n_jobs=1)
    clf.fit(stack, labs)
    p = clf.predict_proba(stack)
    assert p.shape == (2, 2, 64, 64) and len(clf.forests_) == 3
    assert np.allclose(p.sum(axis=0), 1, atol=1e-5)
    assert np.array_equal(p[:, 1], clf.predict_proba(stack[1]))


def test_autocontext_helps_on_a_context_task():
    # the two classes have the same intensity distribution; only the neighbourhood differs
    rng = np.random.default_rng(5)
    n = 128
    truth = np.zeros((n, n), np.uint8)
    truth[:, : n // 2] = 1
    truth[:, n // 2:] = 2
    img = rng.normal(size=(n, n)).astype(np.float32)
    img[truth == 2] *= 2.0
    lab = np.zeros_like(truth)
    lab[10:14, 5:50] = 1
    lab[10:14, 80:120] = 2
    lab[100:104, 5:50] = 1
    lab[100:104, 80:120] = 2
    test = (slice(30, 90), slice(None))
    scores = []
    for stages in (1, 2):
        clf = PixelClassifier(FeatureSet(sigmas=(1.0, 2.0)), n_estimators=30, stages=stages,
                              n_jobs=1).fit(img, lab)
        scores.append(np.mean(clf.predict(img)[test] == truth[test]))
    assert scores[1] > scores[0] + 0.02


def test_bad_stages_and_fit_features_need_the_image():
    img, lab = _scene(n=48)
    for bad in (0, 6, 1.5, True):
        with pytest.raises(InputError, match="stages"):
            PixelClassifier(FAST, stages=bad).fit(img, lab)
    with pytest.raises(InputError, match="fit\\(image, labels\\)"):
        PixelClassifier(FAST, stages=2).fit_features(np.zeros((4, 10), np.float32), [1, 1, 2, 2])


def test_cli_trains_two_stages(tmp_path):
    img, lab = _scene(n=64)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "lab.npy", lab)
    assert main(["train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"),
                 "--sigmas", "1,2", "--trees", "5", "--stages", "2",
                 "--output", str(tmp_path / "m.aamodel")]) == 0
    clf = load_model(tmp_path / "m.aamodel")
    assert clf.stages == 2
    assert main(["predict", "--model", str(tmp_path / "m.aamodel"), "--input", str(tmp_path / "img.npy"),
                 "--output", str(tmp_path / "seg.tif"), "--chunks", "32,32"]) == 0
    import tifffile

    assert np.array_equal(tifffile.imread(tmp_path / "seg.tif"), clf.predict(img))
    assert main(["train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"),
                 "--stages", "0", "--output", str(tmp_path / "x.aamodel")]) == 1


def test_cli_class_weight_balanced_is_saved(tmp_path):
    img, lab = _scene(n=48)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "lab.npy", lab)
    assert main(["train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"),
                 "--sigmas", "1,2", "--trees", "5", "--stages", "2", "--class-weight", "balanced",
                 "--output", str(tmp_path / "m.aamodel")]) == 0
    clf = load_model(tmp_path / "m.aamodel")
    assert clf.class_weight == "balanced" and clf.stages == 2
    assert main(["train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"),
                 "--sigmas", "1,2", "--trees", "5", "--output", str(tmp_path / "n.aamodel")]) == 0
    assert load_model(tmp_path / "n.aamodel").class_weight is None


@pytest.mark.parametrize("stages", [1, 2])
def test_class_weight_auto_picks_the_better_out_of_fold_weighting(stages, tmp_path):
    img, lab = _scene(n=64)
    lab = lab.copy()
    lab[lab == 2] = 0
    lab[45:49, 35:45] = 2  # a rare class: weighting matters
    clf = PixelClassifier(FAST, n_estimators=12, stages=stages, n_jobs=1, class_weight="auto").fit(img, lab)
    scores = clf.class_weight_scores_
    assert set(scores) == {"none", "balanced"} and all(0 <= v <= 1 for v in scores.values())
    assert clf.class_weight_ == ("balanced" if scores["balanced"] > scores["none"] else None)
    # the model is the one trained with the chosen weighting
    twin = PixelClassifier(FAST, n_estimators=12, stages=stages, n_jobs=1,
                           class_weight=clf.class_weight_).fit(img, lab)
    assert twin.class_weight_ == clf.class_weight_ and not hasattr(twin, "class_weight_scores_")
    assert np.array_equal(clf.predict_proba(img), twin.predict_proba(img))
    # "auto" is a parameter: saved and loaded with the model
    clf.save(tmp_path / "auto.aamodel")
    back = load_model(tmp_path / "auto.aamodel")
    assert back.class_weight == "auto"
    assert np.array_equal(back.predict_proba(img), clf.predict_proba(img))


def test_class_weight_auto_with_features_only_and_bad_values():
    img, lab = _scene(n=48)
    X = compute_at(img, FAST, lab > 0)
    clf = PixelClassifier(FAST, n_estimators=8, n_jobs=1, class_weight="auto")
    clf.fit_features(np.ascontiguousarray(X), lab[lab > 0])
    assert clf.class_weight_ in (None, "balanced") and set(clf.class_weight_scores_) == {"none", "balanced"}
    with pytest.raises(InputError, match="class_weight"):
        PixelClassifier(FAST, class_weight="heavy").fit(img, lab)


def test_object_radius_and_auto_context_sigmas():
    from active_annotator.classifier import auto_context_sigmas, object_radius

    lab = np.ones((200, 200), np.uint8)
    lab[50:150, 50:150] = 2  # one painted 100 x 100 object: radius sqrt(1e4 / pi) = 56
    assert object_radius(lab, 2) == pytest.approx(np.sqrt(1e4 / np.pi))
    fs = FeatureSet(sigmas=(1.0, 2.0, 4.0), ndim=2)
    assert auto_context_sigmas(lab, fs) == (1.0, 2.0, 4.0, 8.0, 16.0)  # at most two octaves more
    small = np.zeros((200, 200), np.uint8)
    small[10:14, 10:190] = 1  # short strokes (the rarest class's: 3 x 40 px, radius 6.2): no larger context
    small[100:103, 10:50] = 2
    small[150:153, 10:50] = 2
    assert auto_context_sigmas(small, fs) == (1.0, 2.0, 4.0)
    mid = lab.copy()
    mid[mid == 2] = 1
    mid[90:110, 90:110] = 2  # radius 11.3: one octave (8), not 16
    assert auto_context_sigmas(mid, fs) == (1.0, 2.0, 4.0, 8.0)
    # per plane of a stack: the radius of 2-D regions
    assert object_radius(np.stack([lab, lab]), 2) == pytest.approx(np.sqrt(1e4 / np.pi))


def test_context_sigmas_auto_fits_saves_and_reloads(tmp_path):
    img, lab = _scene(n=96)
    lab = np.ones_like(lab)
    lab[30:70, 30:70] = 2  # dense labels, the square the rarer class: radius 22.6 -> context up to 16
    clf = PixelClassifier(FAST, n_estimators=8, stages=2, n_jobs=1, context_sigmas="auto").fit(img, lab)
    assert clf.context_sigmas_ == (1.0, 2.0, 4.0, 8.0, 16.0)
    assert clf.halo == FAST.halo + context_spec(FAST, clf.context_sigmas_).halo
    assert clf.forests_[1].n_features == clf.n_features_in_ + context_spec(FAST, clf.context_sigmas_).n_features(2)
    p = clf.predict_proba(img)
    clf.tile_shape = 32  # tiles smaller than the context halo: still exact
    assert np.allclose(clf.predict_proba(img), p, atol=1e-6)
    clf.tile_shape = None
    clf.save(tmp_path / "ctx.aamodel")
    back = load_model(tmp_path / "ctx.aamodel")
    assert back.context_sigmas == "auto" and back.context_sigmas_ == clf.context_sigmas_
    assert np.array_equal(back.predict_proba(img), p)
    fixed = PixelClassifier(FAST, n_estimators=8, stages=2, n_jobs=1, context_sigmas=(2.0, 8.0)).fit(img, lab)
    assert fixed.context_sigmas_ == (2.0, 8.0)
    fixed.save(tmp_path / "fixed.aamodel")
    assert np.array_equal(load_model(tmp_path / "fixed.aamodel").predict_proba(img), fixed.predict_proba(img))
    with pytest.raises(InputError, match="context_sigmas"):
        PixelClassifier(FAST, stages=2, context_sigmas=(0.0,)).fit(img, lab)


def test_cli_strong_trains_the_benchmarks_strongest_configuration(tmp_path):
    img, lab = _scene(n=64)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "lab.npy", lab)
    assert main(["train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"),
                 "--sigmas", "1,2", "--trees", "5", "--strong", "--output", str(tmp_path / "s.aamodel")]) == 0
    clf = load_model(tmp_path / "s.aamodel")
    assert clf.stages == 2 and clf.class_weight == "auto" and clf.context_sigmas == "auto"
    assert len(clf.context_sigmas_) >= 2  # the sigmas chosen at training are in the file
    np.testing.assert_array_equal(clf.predict(img), load_model(tmp_path / "s.aamodel").predict(img))


def test_cli_max_samples_is_saved_and_checked(tmp_path, capsys):
    img, lab = _scene(n=48)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "lab.npy", lab)
    base = ["train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"),
            "--sigmas", "1,2", "--trees", "3"]
    assert main(base + ["--max-samples", "200", "--output", str(tmp_path / "m.aamodel")]) == 0
    assert load_model(tmp_path / "m.aamodel").max_samples == 200
    assert main(base + ["--max-samples", "all", "--output", str(tmp_path / "a.aamodel")]) == 0
    assert load_model(tmp_path / "a.aamodel").max_samples is None
    with pytest.raises(SystemExit):
        main(base + ["--max-samples", "12", "--output", str(tmp_path / "b.aamodel")])
    assert "'12' is not 'all' or a number of pixels >= 100" in capsys.readouterr().err
