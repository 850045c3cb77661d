import numpy as np
import pytest
from scipy import ndimage as ndi
from sklearn import metrics as skm

from active_annotator.errors import InputError
from active_annotator.evaluation import History, metrics, split_labels


def _strokes(n=12, seed=0):
    """Labels made of short separate horizontal strokes, alternating classes 1 and 2."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((100, 100), np.uint8)
    for i in range(n):
        r = 4 + 8 * i
        c = rng.integers(0, 60)
        lab[r, c : c + rng.integers(5, 30)] = 1 + i % 2
    return lab


def test_split_keeps_every_stroke_whole_and_covers_all_labels():
    lab = _strokes()
    sp = split_labels(lab, validation=0.3, test=0.2, seed=1)
    total = sum((p != 0).astype(int) for p in sp)
    assert ((total == 1) == (lab != 0)).all()  # each labelled pixel in exactly one part
    comp, n = ndi.label(lab != 0)
    for c in range(1, n + 1):
        m = comp == c
        owners = [int((p[m] != 0).any()) for p in sp]
        assert sum(owners) == 1, "a stroke was cut between parts"
    for p in sp:
        assert set(np.unique(p[p != 0])) <= {1, 2}
    # each class keeps training labels; validation gets some of both
    assert set(np.unique(sp.train[sp.train != 0])) == {1, 2}
    assert set(np.unique(sp.validation[sp.validation != 0])) == {1, 2}


def test_split_fractions_are_approximately_met():
    lab = _strokes(n=12, seed=2)
    sp = split_labels(lab, validation=0.5, seed=0)
    frac = (sp.validation != 0).sum() / (lab != 0).sum()
    assert 0.25 < frac < 0.75


def test_single_stroke_class_stays_in_training():
    lab = np.zeros((10, 10), np.uint8)
    lab[1, 1:5] = 1
    lab[5, 1:5] = 2
    lab[8, 1:5] = 2
    sp = split_labels(lab, validation=0.5)
    assert (sp.train == 1).sum() == 4


def test_split_rejects_bad_fractions():
    with pytest.raises(InputError, match="fractions"):
        split_labels(np.zeros((3, 3), np.uint8), validation=0.7, test=0.4)


def test_metrics_match_sklearn_and_ignore_unlabelled():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (50, 50))  # 0 = unlabelled, classes 1..3
    pred = np.where(rng.random((50, 50)) < 0.7, truth, rng.integers(1, 4, (50, 50)))
    pred[truth == 0] = 1
    m = metrics(truth, pred)
    sel = truth != 0
    yt, yp = truth[sel], pred[sel]
    assert m.classes == [1, 2, 3]
    np.testing.assert_array_equal(m.confusion, skm.confusion_matrix(yt, yp, labels=[1, 2, 3]))
    assert m.accuracy == pytest.approx(skm.accuracy_score(yt, yp))
    for k, c in enumerate([1, 2, 3]):
        assert m.precision[c] == pytest.approx(skm.precision_score(yt, yp, labels=[c], average=None)[0])
        assert m.recall[c] == pytest.approx(skm.recall_score(yt, yp, labels=[c], average=None)[0])
        assert m.f1[c] == pytest.approx(skm.f1_score(yt, yp, labels=[c], average=None)[0])
        tp = ((yt == c) & (yp == c)).sum()
        assert m.jaccard[c] == pytest.approx(tp / ((yt == c) | (yp == c)).sum())
    assert m.n_pixels == sel.sum()
    assert m.table()[0]["support"] == (yt == 1).sum()


def test_fast_simulation_score_equals_metrics():
    from active_annotator.simulate import _score

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, (40, 40))
    pred = rng.integers(1, 3, (40, 40))
    m = metrics(truth, pred, [1, 2])
    j, mj, acc = _score(truth, pred, [1, 2])
    assert j == pytest.approx(m.jaccard[2])
    assert mj == pytest.approx(m.mean_jaccard)
    assert acc == pytest.approx(m.accuracy)


def test_history_rows_csv_and_learning_curve_figure(tmp_path):
    lab = _strokes()
    sp = split_labels(lab, validation=0.3, seed=0)
    h = History()
    perfect = np.where(lab == 0, 1, lab)
    row = h.record(perfect, lab, sp)
    assert row["train_error"] == 0 and row["validation_error"] == 0
    assert row["labelled_pixels"] == (lab != 0).sum()
    assert row["labels_class_1"] + row["labels_class_2"] == row["labelled_pixels"]
    h.record(np.ones_like(lab), lab, sp)
    assert h.rounds[1]["validation_error"] > 0 and h.rounds[1]["round"] == 2
    text = h.to_csv(tmp_path / "h.csv")
    assert text.splitlines()[0].startswith("round,labelled_pixels")
    assert len(text.splitlines()) == 3
    assert History.from_dict(h.to_dict()).rounds == h.rounds
    fig = h.figure()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train error", "validation error"]
    assert ax.get_xlabel() == "labelled pixels"
    fig.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_fit_and_validate_trains_on_all_labels_and_scores_a_twin_on_held_out_strokes():
    from active_annotator import FeatureSet, PixelClassifier
    from active_annotator.evaluation import fit_and_validate

    rng = np.random.default_rng(1)
    truth = np.ones((64, 64), np.uint8)
    truth[:, 32:] = 2
    image = (truth * 10 + rng.normal(size=truth.shape)).astype(np.float32)
    labels = np.zeros_like(truth)
    for row in range(2, 62, 6):  # ten separate strokes per class: three or so held out each
        labels[row:row + 2, 4:12] = 1
        labels[row:row + 2, 40:48] = 2
    clf = PixelClassifier(FeatureSet(sigmas=(1.0,), families=("gaussian",), ndim=2),
                          n_estimators=10, n_jobs=1)
    v = fit_and_validate(clf, image, labels, validation=0.3, seed=0)
    n = int((labels != 0).sum())
    assert clf.n_training_pixels_ == n  # the user's model saw everything
    assert v.labels_per_class == {1: n // 2, 2: n // 2}
    assert v.train.n_pixels + v.validation.n_pixels == n
    assert v.enough and all(k >= 3 for k in v.held_out_strokes.values())
    assert v.validation.n_pixels == int((v.split.validation != 0).sum()) > 0
    assert v.validation.accuracy == 1.0 and v.train.accuracy == 1.0  # separable classes
    history = History()
    row = v.record(history)
    assert row["validation_pixels"] == v.validation.n_pixels and row["labelled_pixels"] == n
    assert row["validation_error_se"] == 0.0 and row["validation_strokes"] == sum(v.held_out_strokes.values())


def test_held_out_strokes_stay_held_out_and_few_of_them_are_not_scored():
    from active_annotator import FeatureSet, PixelClassifier
    from active_annotator.evaluation import validate_fitted

    rng = np.random.default_rng(2)
    truth = np.ones((96, 64), np.uint8)
    truth[:, 32:] = 2
    image = (truth * 1.0 + rng.normal(size=truth.shape)).astype(np.float32)  # overlapping classes
    labels = np.zeros_like(truth)
    fs = FeatureSet(sigmas=(1.0,), families=("gaussian",), ndim=2)
    split, history = None, History()
    for round_, row in enumerate(range(2, 92, 6)):  # one new stroke per class each round
        labels[row:row + 2, 4:12] = 1
        labels[row:row + 2, 40:48] = 2
        X, y, n_ch = PixelClassifier(fs).training_data(image, labels)
        clf = PixelClassifier(fs, n_estimators=5, n_jobs=1).fit(image, labels)
        v = validate_fitted(clf, X, y, labels, n_ch, seed=round_, keep=split)
        if split is not None:  # what was held out stays held out, whatever the seed
            assert np.all(v.split.validation[split.validation != 0] == split.validation[split.validation != 0])
            assert not np.any(v.split.validation[split.train != 0])
        split = v.split
        row_ = v.record(history)
        if not v.enough:  # fewer than 3 held-out strokes of a class: no validation score
            assert "validation_error" not in row_ and min(v.held_out_strokes.values(), default=0) < 3
        else:
            assert np.isfinite(row_["validation_error_se"]) and row_["validation_error_se"] > 0
    assert v.enough and any("validation_error" not in r for r in history.rounds)
    history.figure()  # rounds without a validation score and with error bars draw


def test_fit_and_validate_without_a_second_stroke_has_no_validation_scores():
    from active_annotator import FeatureSet, PixelClassifier
    from active_annotator.evaluation import fit_and_validate

    image = np.zeros((32, 32), np.float32)
    image[:, 16:] = 1
    labels = np.zeros((32, 32), np.uint8)
    labels[4:8, 4:8] = 1
    labels[4:8, 20:24] = 2
    clf = PixelClassifier(FeatureSet(sigmas=(1.0,), families=("gaussian",), ndim=2),
                          n_estimators=5, n_jobs=1)
    v = fit_and_validate(clf, image, labels)
    assert v.validation.n_pixels == 0 and np.isnan(v.validation.accuracy)
    assert v.train.n_pixels == 32 and hasattr(clf, "forest_")
