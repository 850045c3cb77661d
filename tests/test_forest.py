"""The array forest and its evaluator against scikit-learn."""

import dataclasses

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from active_annotator.errors import ModelFileError
from active_annotator.forest import Forest, _predict_kernel_py


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 7)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] ** 2 + 0.5 * rng.normal(size=3000) > 1).astype(int) \
        + (X[:, 2] > 1.2).astype(int) * 2
    rf = RandomForestClassifier(n_estimators=30, max_depth=None, random_state=0, n_jobs=1).fit(X, y)
    Xt = rng.normal(size=(20000, 7)).astype(np.float32)
    # values exactly at thresholds exercise the <= rule and float32 rounding of thresholds
    thr = rf.estimators_[0].tree_.threshold[0]
    Xt[:500, rf.estimators_[0].tree_.feature[0]] = np.float32(thr)
    return rf, Forest.from_sklearn(rf).validate(), Xt


def test_proba_matches_sklearn(fitted):
    rf, forest, X = fitted
    p = forest.predict_proba(np.ascontiguousarray(X.T))
    ref = rf.predict_proba(X)
    assert p.shape == ref.shape
    np.testing.assert_allclose(p, ref, rtol=0, atol=1e-12)
    assert np.array_equal(p.argmax(1), ref.argmax(1))


def test_predict_index_equals_argmax_of_sklearn(fitted):
    rf, forest, X = fitted
    idx = forest.predict_index(np.ascontiguousarray(X.T))
    assert np.array_equal(idx, rf.predict_proba(X).argmax(1))
    assert np.array_equal(rf.classes_[idx], rf.predict(X))


def test_threads_do_not_change_results(fitted):
    _, forest, X = fitted
    xt = np.ascontiguousarray(X.T)
    assert np.array_equal(forest.predict_proba(xt, threads=1), forest.predict_proba(xt, threads=4))
    assert np.array_equal(forest.predict_index(xt, threads=1), forest.predict_index(xt, threads=3))


def test_compiled_equals_numpy_reference(fitted):
    _, forest, X = fitted
    xt = np.ascontiguousarray(X[:2000].T)
    ref = np.zeros((2000, forest.n_classes))
    _predict_kernel_py(xt, forest.feature, forest.threshold, forest.left, forest.right,
                       forest.value, forest.roots, ref)
    np.testing.assert_allclose(forest.predict_proba(xt), ref, rtol=0, atol=1e-12)


def test_float32_threshold_rounding_keeps_decisions():
    # thresholds between two float32 values: the rounded-down float32 threshold must
    # send exactly the same float32 inputs left as the float64 one
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    rf = RandomForestClassifier(n_estimators=1, random_state=0, bootstrap=False).fit(X, y)
    t = rf.estimators_[0].tree_
    f = t.feature[0]
    lo = np.float32(0.1)
    hi = np.nextafter(lo, np.float32(1))
    t.threshold[0] = (np.float64(lo) + np.float64(hi)) / 2  # not representable in float32
    forest = Forest.from_sklearn(rf)
    Xt = np.zeros((3, 2), np.float32)
    Xt[:, f] = [lo, hi, np.nextafter(lo, np.float32(-1))]
    assert np.array_equal(forest.predict_proba(np.ascontiguousarray(Xt.T)), rf.predict_proba(Xt))


def test_empty_input(fitted):
    _, forest, _ = fitted
    assert forest.predict_proba(np.zeros((7, 0), np.float32)).shape == (0, forest.n_classes)
    assert forest.predict_index(np.zeros((7, 0), np.float32)).shape == (0,)


def test_wrong_feature_count(fitted):
    _, forest, _ = fitted
    with pytest.raises(ValueError, match=r"expected features of shape \(7, n\)"):
        forest.predict_proba(np.zeros((6, 10), np.float32))


def _corrupt(forest, **changes):
    return dataclasses.replace(forest, **{k: v for k, v in changes.items()})


@pytest.mark.parametrize("make, match", [
    (lambda f: _corrupt(f, left=np.where(f.left >= 0, f.left + 10**6, -1).astype(np.int32)),
     "child index out of range"),
    (lambda f: _corrupt(f, right=np.where(f.right >= 0, np.arange(f.right.size), -1).astype(np.int32)),
     "child index out of range"),   # a node pointing at itself: a cycle
    (lambda f: _corrupt(f, left=np.where(f.left >= 0, 0, -1).astype(np.int32)),
     "child index out of range"),   # back to the root: a cycle
    (lambda f: _corrupt(f, threshold=f.threshold.astype(np.float32)), "must be float64"),
    (lambda f: _corrupt(f, feature=f.feature.astype(np.int64)), "must be int32"),
    (lambda f: _corrupt(f, feature=np.where(f.feature >= 0, 99, -2).astype(np.int32)),
     "feature index outside"),
    (lambda f: _corrupt(f, value=-f.value), "invalid class fractions"),
    (lambda f: _corrupt(f, roots=f.roots[::-1].copy()), "roots out of order"),
    (lambda f: _corrupt(f, threshold=np.full_like(f.threshold, np.nan)), "non-finite threshold"),
    (lambda f: _corrupt(f, right=np.where(np.arange(f.right.size) == 0, -1, f.right).astype(np.int32)),
     "exactly one child"),
])
def test_validate_rejects_corrupt_arrays(fitted, make, match):
    _, forest, _ = fitted
    with pytest.raises(ModelFileError, match=match):
        make(forest).validate()
