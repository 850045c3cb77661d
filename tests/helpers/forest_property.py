"""Property run in a capped child process (see test_forest.py).

Builds structurally random forests: a valid forest, then 0-3 structural
mutations (a child set to any index: shared children, self loops, back edges,
out-of-range values; left == right; subtrees cut off so their nodes are
unreachable; extra unreachable nodes; features, thresholds and class
fractions out of range). Each must be refused by :meth:`Forest.validate`
with ModelFileError, or predict exactly what a plain Python walk of the
arrays predicts. A forest the walk itself finds broken (a cycle, an index out
of range) must be refused.
"""

import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from active_annotator.errors import ModelFileError
from active_annotator.forest import Forest

N_FEATURES = 3


@st.composite
def valid_trees(draw, offset):
    """One tree, nodes numbered from ``offset``, children after parents."""
    left, right, feature = [-1], [-1], [-2]
    leaves = [0]
    for _ in range(draw(st.integers(0, 7))):
        i = leaves.pop(draw(st.integers(0, len(leaves) - 1)))
        n = len(left)
        left[i], right[i] = n + offset, n + 1 + offset
        feature[i] = draw(st.integers(0, N_FEATURES - 1))
        left += [-1, -1]
        right += [-1, -1]
        feature += [-2, -2]
        leaves += [n, n + 1]
    return left, right, feature


@st.composite
def forests(draw):
    left, right, feature, roots = [], [], [], []
    for _ in range(draw(st.integers(1, 3))):
        roots.append(len(left))
        lt, rt, ft = draw(valid_trees(len(left)))
        left += lt
        right += rt
        feature += ft
    n = len(left)
    k = draw(st.integers(2, 3))
    thr = draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n))
    raw = np.asarray(draw(st.lists(st.lists(st.floats(0.01, 1), min_size=k, max_size=k),
                                   min_size=n, max_size=n)), np.float64)
    arrays = dict(left=np.asarray(left, np.int32), right=np.asarray(right, np.int32),
                  feature=np.asarray(feature, np.int32), threshold=np.asarray(thr, np.float64),
                  value=raw / raw.sum(axis=1, keepdims=True), roots=np.asarray(roots, np.int32))
    for _ in range(draw(st.integers(0, 3))):
        n = arrays["left"].size
        kind = draw(st.sampled_from(["child", "child", "same", "cut", "extra", "feature",
                                     "threshold", "value", "roots"]))
        i = draw(st.integers(0, n - 1))
        if kind == "child":
            side = draw(st.sampled_from(["left", "right"]))
            arrays[side][i] = draw(st.integers(-3, n + 2))
        elif kind == "same":
            arrays["right"][i] = arrays["left"][i]
        elif kind == "cut":
            arrays["left"][i] = arrays["right"][i] = -1
        elif kind == "extra":
            m = draw(st.integers(1, 4))
            for name, fill in (("left", -1), ("right", -1), ("feature", -2), ("threshold", 0.0)):
                arrays[name] = np.append(arrays[name], np.full(m, fill)).astype(arrays[name].dtype)
            arrays["value"] = np.vstack([arrays["value"], np.full((m, k), 1.0 / k)])
        elif kind == "feature":
            arrays["feature"][i] = draw(st.integers(-3, N_FEATURES + 2))
        elif kind == "threshold":
            arrays["threshold"][i] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e300]))
        elif kind == "value":
            arrays["value"][i] *= draw(st.sampled_from([0.0, 0.5, 2.0, -1.0, np.nan]))
        else:
            arrays["roots"] = draw(st.lists(st.integers(-1, n + 1), min_size=1, max_size=3).map(
                lambda r: np.asarray(r, np.int32)))
    return arrays


def reference_walk(a, x):
    """Mean leaf value over trees for one sample; None when a walk leaves the arrays or loops."""
    n = a["left"].size
    total = np.zeros(a["value"].shape[1])
    for root in a["roots"]:
        node, steps = int(root), 0
        if not 0 <= node < n:
            return None
        while a["left"][node] != -1 or a["right"][node] != -1:
            f = int(a["feature"][node])
            if not 0 <= f < x.size or steps > n:
                return None
            node = int(a["left"][node] if np.float64(x[f]) <= a["threshold"][node] else a["right"][node])
            steps += 1
            if not 0 <= node < n:
                return None
        total += a["value"][node]
    return total / a["roots"].size


@settings(max_examples=int(sys.argv[1]) if len(sys.argv) > 1 else 400, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(arrays=forests(), seed=st.integers(0, 2**32 - 1))
def refused_or_exact(arrays, seed):
    forest = Forest(n_features=N_FEATURES, **arrays)
    x = np.random.default_rng(seed).uniform(-2.5, 2.5, (N_FEATURES, 64)).astype(np.float32)
    ref = [reference_walk(arrays, x[:, j]) for j in range(x.shape[1])]
    try:
        forest.validate()
    except ModelFileError:
        return
    assert all(r is not None for r in ref), "accepted a forest whose walk loops or leaves the arrays"
    ref = np.asarray(ref)
    np.testing.assert_allclose(forest.predict_proba(x, threads=1), ref, rtol=0, atol=1e-12)
    assert np.array_equal(forest.predict_index(x, threads=1), ref.argmax(axis=1))
    np.testing.assert_allclose(ref.sum(axis=1), 1.0, atol=1e-9)


if __name__ == "__main__":
    refused_or_exact()
    print("OK")
