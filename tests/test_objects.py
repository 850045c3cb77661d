"""Object measurements, exploration, classifier and suggestions (no Qt)."""

import csv

import numpy as np
import pytest
from skimage.draw import ellipse
from skimage.measure import regionprops

from active_annotator import data, objects
from active_annotator.errors import InputError, LabelError, ModelFileError
from active_annotator.persistence import load_object_classifier, save_object_classifier


@pytest.fixture(scope="module")
def nuclei():
    d = data.nuclei2d()
    return d, objects.measure(d["objects"], d["image"])


def round_and_elongated(n_each=20, seed=0):
    """Discs and ellipses (aspect 2.5-4, any orientation) on a grid; returns (objects, kind)."""
    rng = np.random.default_rng(seed)
    cell = 40
    n = 2 * n_each
    side = int(np.ceil(np.sqrt(n)))
    img = np.zeros((side * cell, side * cell), np.uint16)
    kind = np.zeros(n, np.int64)
    order = rng.permutation(n)
    for oid, k in enumerate(order, start=1):
        r, c = divmod(oid - 1, side)
        cy, cx = r * cell + cell // 2, c * cell + cell // 2
        if k < n_each:  # round
            a = b = rng.uniform(6, 11)
            kind[oid - 1] = 1
        else:
            b = rng.uniform(3.5, 5)
            a = b * rng.uniform(2.5, 4)
            kind[oid - 1] = 2
        rr, cc = ellipse(cy, cx, a, b, shape=img.shape, rotation=rng.uniform(0, np.pi))
        img[rr, cc] = oid
    return img, kind


def test_measurements_equal_skimage_regionprops(nuclei):
    d, t = nuclei
    props = regionprops(d["objects"], intensity_image=d["image"].astype(np.float64))
    assert t["label"].tolist() == [p.label for p in props]
    pairs = {
        "area": "area", "perimeter": "perimeter", "solidity": "solidity", "extent": "extent",
        "major_axis_length": "axis_major_length", "minor_axis_length": "axis_minor_length",
        "eccentricity": "eccentricity", "intensity_mean": "intensity_mean",
        "intensity_std": "intensity_std", "intensity_min": "intensity_min",
        "intensity_max": "intensity_max",
    }
    for ours, theirs in pairs.items():
        np.testing.assert_allclose(t[ours], [getattr(p, theirs) for p in props], rtol=1e-12,
                                   err_msg=ours)
    np.testing.assert_allclose(t["centroid-0"], [p.centroid[0] for p in props])
    np.testing.assert_allclose(t["circularity"], 4 * np.pi * t["area"] / t["perimeter"] ** 2)
    np.testing.assert_allclose(t["aspect_ratio"], t["major_axis_length"] / t["minor_axis_length"])
    np.testing.assert_allclose(t["elongation"], 1 - t["minor_axis_length"] / t["major_axis_length"])


def test_measure_3d_volume_axes_and_sphericity():
    zz, yy, xx = np.mgrid[:40, :40, :80]
    obj = np.zeros((40, 40, 80), np.uint8)
    obj[(zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 12**2] = 1  # ball
    obj[((zz - 20) / 6) ** 2 + ((yy - 20) / 6) ** 2 + ((xx - 58) / 18) ** 2 <= 1] = 2  # cigar
    t = objects.measure(obj, obj.astype(np.float32) * 10)
    props = regionprops(obj)
    np.testing.assert_allclose(t["volume"], [p.area for p in props])
    np.testing.assert_allclose(t["major_axis_length"], [p.axis_major_length for p in props])
    assert "eccentricity" not in t and "perimeter" not in t
    ball, cigar = t["sphericity"]
    assert 0.85 < ball <= 1.05 and cigar < ball
    assert t["elongation"][1] > 0.6 > t["elongation"][0]
    np.testing.assert_allclose(t["intensity_mean"], [10, 20])


def test_measure_rejects_mismatched_image():
    with pytest.raises(InputError, match="spatial shape"):
        objects.measure(np.ones((5, 5), np.uint8), np.ones((6, 5)))


def test_classifier_separates_round_from_elongated():
    img, kind = round_and_elongated()
    t = objects.measure(img)
    y = np.zeros_like(kind)
    for k in (1, 2):  # three labelled examples per class
        y[np.nonzero(kind == k)[0][:3]] = k
    clf = objects.ObjectClassifier(n_estimators=100).fit(t, y)
    pred = clf.predict(t)
    assert np.array_equal(pred, kind)
    top = {r["measurement"] for r in clf.importances()[:4]}
    assert top & {"elongation", "aspect_ratio", "eccentricity", "minor_axis_length",
                  "circularity"}
    perm = clf.permutation_importances_
    assert perm.shape == (len(clf.feature_names_in_),) and np.all((0 <= perm) & (perm <= 1))
    # a measurement no split uses cannot change any prediction when shuffled
    assert np.all(perm[clf.feature_importances_ == 0] == 0)


def test_classifier_needs_two_classes():
    img, kind = round_and_elongated(4)
    y = np.where(kind == 1, 1, 0)
    with pytest.raises(LabelError, match="at least two classes"):
        objects.ObjectClassifier().fit(objects.measure(img), y)


def test_saved_classifier_predicts_the_same_and_bad_files_are_refused(tmp_path, nuclei):
    _, t = nuclei
    y = np.zeros(len(t["label"]), np.int64)
    y[:10] = np.where(t["elongation"][:10] > 0.4, 2, 1)
    if np.unique(y[:10]).size < 2:
        y[0], y[1] = 1, 2
    clf = objects.ObjectClassifier(n_estimators=30).fit(t, y)
    assert clf.permutation_importances_.max() > 0  # 10 labels: some measurement matters
    path = save_object_classifier(clf, tmp_path / "nuclei", class_names={1: "round", 2: "long"})
    assert path.suffix == ".aaobjects"
    back = load_object_classifier(path)
    np.testing.assert_array_equal(back.predict_proba(t), clf.predict_proba(t))
    assert back.class_names_ == {1: "round", 2: "long"}
    assert back.feature_names_in_ == clf.feature_names_in_

    truncated = tmp_path / "cut.aaobjects"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFileError):
        load_object_classifier(truncated)
    # a forest whose child points outside its tree is refused before use
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["left"] = arrays["left"].copy()
    arrays["left"][0] = 10**6
    bad = tmp_path / "bad.aaobjects"
    with open(bad, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    with pytest.raises(ModelFileError, match="corrupt"):
        load_object_classifier(bad)


def test_csv_export_round_trips(tmp_path, nuclei):
    _, t = nuclei
    path = objects.to_csv(t, tmp_path / "objects.csv")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(t)
    back = np.array(rows[1:], float)
    assert back.shape == (len(t["label"]), len(t))
    np.testing.assert_allclose(back[:, rows[0].index("circularity")], t["circularity"])
    np.testing.assert_array_equal(back[:, 0], t["label"])


def test_embeddings_and_kmeans_are_reproducible_with_a_seed(nuclei):
    _, t = nuclei
    x, names = objects.feature_matrix(t)
    for method, rows in (("pca", x), ("tsne", x[:40])):  # t-SNE is slow: fewer objects
        a = objects.embed(rows, method, random_state=3)
        assert a.shape == (len(rows), 2)
        np.testing.assert_allclose(a, objects.embed(rows, method, random_state=3))
    c = objects.cluster(x, 4, random_state=1)
    assert set(np.unique(c)) == {1, 2, 3, 4}
    np.testing.assert_array_equal(c, objects.cluster(x, 4, random_state=1))
    corr = objects.correlation(x)
    assert corr.shape == (len(names), len(names))
    np.testing.assert_allclose(np.diag(corr), 1)
    i, j = names.index("area"), names.index("perimeter")
    assert corr[i, j] > 0.8
    if not objects.umap_available():
        with pytest.raises(InputError, match="umap-learn"):
            objects.embed(x, "umap")
    else:  # installed with the [objects] extra, as in CI
        u = objects.embed(x, "umap", random_state=0)
        assert u.shape == (len(x), 2) and np.isfinite(u).all()


def test_separating_measurements_ranks_shape_for_shape_groups():
    img, kind = round_and_elongated()
    t = objects.measure(img)
    ranking = objects.separating_measurements(t, kind)
    assert ranking[0][0] in {"elongation", "aspect_ratio", "eccentricity", "minor_axis_length"}
    assert ranking[0][1] > ranking[-1][1]
    mi = objects.separating_measurements(t, kind, method="mutual_info")
    assert len(mi) == len(ranking)


def test_object_annotations_take_the_majority_class_per_object():
    obj = np.array([[1, 1, 1, 0, 2, 2], [1, 1, 1, 0, 2, 2], [3, 3, 0, 0, 0, 0]])
    ann = np.array([[1, 2, 2, 1, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]])
    assert objects.object_annotations(obj, ann).tolist() == [2, 1, 0]
    painted = objects.object_classes(obj, [1, 2, 3], [2, 1, 0])
    assert painted.tolist()[0] == [2, 2, 2, 0, 1, 1] and painted[2].tolist() == [0] * 6


def test_suggestions_skip_labelled_objects_and_put_uncertain_first(nuclei):
    _, t = nuclei
    n = len(t["label"])
    labelled = np.zeros(n, bool)
    labelled[:5] = True
    proba = np.tile([[0.99, 0.01]], (n, 1))
    proba[[7, 30, 60]] = [0.5, 0.5]
    for strategy in objects.STRATEGIES:
        s = objects.suggest_objects(t, proba=proba, labelled=labelled, n=6, strategy=strategy)
        assert 0 < len(s) <= 6 and not any(x.index < 5 for x in s)
        assert all(x.label == t["label"][x.index] for x in s)
    unc = objects.suggest_objects(t, proba=proba, labelled=labelled, n=3, strategy="uncertainty")
    assert sorted(x.index for x in unc) == [7, 30, 60]
    hyb = objects.suggest_objects(t, proba=proba, labelled=labelled, n=3)
    assert hyb[0].index in (7, 30, 60)
    # before any training: diverse objects, no probabilities needed
    assert len(objects.suggest_objects(t, n=4)) == 4
