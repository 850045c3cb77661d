"""The array forest and its evaluator against scikit-learn."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from active_annotator.errors import ModelFileError
from active_annotator.forest import Forest, _predict_kernel_py

sys.path.insert(0, str(Path(__file__).parent / "helpers"))


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


# -- structure: the arrays must be a forest before the compiled kernels see them ----------


def _chain(n=40, same=True):
    """A chain of ``n`` nodes; with ``same`` each internal node has left == right."""
    left = np.full(n, -1, np.int32)
    right = np.full(n, -1, np.int32)
    if same:
        left[:-1] = right[:-1] = np.arange(1, n)
    else:  # node i -> (i + 1, i + 2): every node below the second has two parents
        left[:-2], right[:-2] = np.arange(1, n - 1), np.arange(2, n)
    value = np.full((n, 2), 0.5)
    return Forest(feature=np.where(left >= 0, 0, -2).astype(np.int32), threshold=np.zeros(n),
                  left=left, right=right, value=value, roots=np.zeros(1, np.int32), n_features=1)


def _root_leaf_with_unreachable(n_extra=1000):
    n = 1 + n_extra
    return Forest(feature=np.full(n, -2, np.int32), threshold=np.zeros(n),
                  left=np.full(n, -1, np.int32), right=np.full(n, -1, np.int32),
                  value=np.full((n, 2), 0.5), roots=np.zeros(1, np.int32), n_features=1)


def _shared_child():
    # node 0 -> (1, 2), node 1 -> (3, 4), node 2 -> (3, 4): 3 and 4 have two parents
    left = np.array([1, 3, 3, -1, -1], np.int32)
    right = np.array([2, 4, 4, -1, -1], np.int32)
    return Forest(feature=np.array([0, 0, 0, -2, -2], np.int32), threshold=np.zeros(5), left=left,
                  right=right, value=np.full((5, 2), 0.5), roots=np.zeros(1, np.int32), n_features=1)


def _unnormalised_leaf(f):
    value = f.value.copy()
    leaf = np.flatnonzero(f.left < 0)[0]
    value[leaf] *= 0.5
    return _corrupt(f, value=value)


@pytest.mark.parametrize("make, match", [
    (lambda f: _chain(40, same=True), "same left and right child"),
    (lambda f: _chain(40, same=False), "more than one node"),
    (lambda f: _root_leaf_with_unreachable(), "1000 node.*not reachable"),
    (lambda f: _shared_child(), "more than one node"),
    (_unnormalised_leaf, "do not sum to 1"),
])
def test_validate_refuses_arrays_that_are_not_a_forest(fitted, make, match):
    _, forest, _ = fitted
    with pytest.raises(ModelFileError, match=match):
        make(forest).validate()
    with pytest.raises(ModelFileError, match=match):  # the kernels never run on them
        make(forest).predict_proba(np.zeros((make(forest).n_features, 4), np.float32))


def test_validate_accepts_trained_forests_with_leaf_roots(fitted):
    _, forest, X = fitted
    # a forest of one-node trees (a root that is a leaf) is a valid forest
    stump = Forest(feature=np.full(2, -2, np.int32), threshold=np.zeros(2),
                   left=np.full(2, -1, np.int32), right=np.full(2, -1, np.int32),
                   value=np.array([[0.25, 0.75], [1.0, 0.0]]), roots=np.arange(2, dtype=np.int32),
                   n_features=7).validate()
    np.testing.assert_allclose(stump.predict_proba(np.ascontiguousarray(X[:5].T)),
                               np.tile([0.625, 0.375], (5, 1)))


@pytest.mark.slow
def test_random_structures_are_refused_or_predict_as_a_python_walk():
    """Hypothesis over structurally random forests (see tests/helpers/forest_property.py).

    Runs in a memory-capped child: with the old validator (children after the
    parent only) this aborts with ``munmap_chunk(): invalid pointer`` or
    fails on leaf fractions that do not sum to 1.
    """
    from capped import crashed, run_capped

    r = run_capped("import runpy, sys; sys.argv[0] = 'p'; runpy.run_module('forest_property', run_name='__main__')",
                   mem_gib=3, args=["400"])
    assert r.returncode == 0 and "OK" in r.stdout, crashed(r)


# -- realistic forests: unlimited depth, trained on hard labels of a real image -------------


@pytest.fixture(scope="module")
def real_forest():
    """100 unlimited-depth trees on the micronuclei sample's 4-class truth (sparse pixels)."""
    from active_annotator import data
    from active_annotator.features import FeatureSet, compute

    d = data.micronuclei2d()
    img = d["image"][:256, :256].astype(np.float32)
    truth = d["truth"][:256, :256]
    xt = np.ascontiguousarray(compute(img, FeatureSet.default(ndim=2)).reshape(-1, img.size))
    rng = np.random.default_rng(0)
    train = rng.choice(img.size, 6000, replace=False)
    rf = RandomForestClassifier(n_estimators=100, max_depth=None, random_state=0, n_jobs=2)
    rf.fit(xt[:, train].T, truth.reshape(-1)[train])
    assert len(rf.classes_) >= 3
    # deep trees are the case where stopping at the leaves matters
    assert max(e.tree_.max_depth for e in rf.estimators_) >= 12
    return rf, Forest.from_sklearn(rf).validate(), xt


def test_real_forest_proba_and_decisions_match_sklearn(real_forest):
    rf, forest, xt = real_forest
    ref = rf.predict_proba(np.ascontiguousarray(xt.T))
    p = forest.predict_proba(xt, threads=2)
    np.testing.assert_allclose(p, ref, rtol=0, atol=1e-6)
    assert np.array_equal(p.argmax(1), ref.argmax(1))
    idx = forest.predict_index(xt, threads=2)
    assert np.array_equal(idx, ref.argmax(1))
    # the pixels the forest is unsure of, where early exit cannot apply, are among them
    assert np.sum(ref.max(1) < 0.6) > 100


def test_real_forest_single_root_leaf_tree(real_forest):
    # a tree that is a single leaf (all labels of one class) walks zero steps
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 3)).astype(np.float32)
    y = np.r_[np.zeros(49, int), 1]
    rf = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1).fit(X, y)
    assert any(e.tree_.node_count == 1 for e in rf.estimators_)
    forest = Forest.from_sklearn(rf).validate()
    Xt = rng.normal(size=(1000, 3)).astype(np.float32)
    np.testing.assert_allclose(forest.predict_proba(np.ascontiguousarray(Xt.T)), rf.predict_proba(Xt),
                               rtol=0, atol=1e-12)
    assert np.array_equal(forest.predict_index(np.ascontiguousarray(Xt.T)), rf.predict_proba(Xt).argmax(1))


def test_torch_evaluator_matches_sklearn_on_cpu(real_forest):
    # the torch path (the one CUDA runs) checked on torch's CPU device everywhere
    torch = pytest.importorskip("torch")
    rf, forest, xt = real_forest
    ref = rf.predict_proba(np.ascontiguousarray(xt[:, :20000].T))
    p = forest.predict_proba(xt[:, :20000], device=torch.device("cpu"))
    np.testing.assert_allclose(p, ref, rtol=0, atol=1e-6)
    assert np.array_equal(p.argmax(1), ref.argmax(1))
    assert np.array_equal(p, forest.predict_proba(xt[:, :20000]))


def _cuda():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU (runs where one is)")
def test_cuda_evaluator_matches_sklearn(real_forest):
    rf, forest, xt = real_forest
    ref = rf.predict_proba(np.ascontiguousarray(xt.T))
    p = forest.predict_proba(xt, device="cuda")
    np.testing.assert_allclose(p, ref, rtol=0, atol=1e-6)
    assert np.array_equal(p.argmax(1), ref.argmax(1))
