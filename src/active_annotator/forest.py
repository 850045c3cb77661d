"""A random forest as plain arrays, with a compiled evaluator.

scikit-learn trains the forest; :class:`Forest` keeps only its node arrays.
That gives two things scikit-learn's own objects do not:

* a file format with nothing executable in it (see :mod:`persistence`):
  :meth:`Forest.validate` checks every index before the arrays are used, so a
  crafted file cannot make the evaluator read out of bounds or loop forever;
* faster prediction. scikit-learn's ``predict_proba`` runs ``apply`` per tree,
  then gathers a float64 ``(n_samples, n_classes)`` array per tree and adds
  them under a lock. Here one numba kernel walks all trees for a block of
  pixels while that block is in cache, reads features in the
  ``(n_features, n_pixels)`` layout the feature engine produces (no
  transpose). Comparisons and sums are float64 in tree order, as in
  scikit-learn, so the leaves reached and the class decisions are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ModelFileError

try:  # numba is a dependency; the fallback only keeps odd platforms working
    import numba

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _HAVE_NUMBA = False


def _predict_kernel_py(xt, feature, threshold, left, right, value, roots, out):
    """Reference evaluator in numpy (used when numba is missing, and in tests)."""
    n = xt.shape[1]
    idx = np.arange(n)
    for root in roots:
        node = np.full(n, root, np.int64)
        active = left[node] >= 0
        while active.any():
            a = idx[active]
            nd = node[a]
            go_left = xt[feature[nd], a].astype(np.float64) <= threshold[nd]
            node[a] = np.where(go_left, left[nd], right[nd])
            active = left[node] >= 0
        out += value[node]
    out /= len(roots)


if _HAVE_NUMBA:

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _predict_kernel(xt, feature, threshold, left, right, value, roots, out):  # pragma: no cover
        n = xt.shape[1]
        n_trees = roots.shape[0]
        n_classes = value.shape[1]
        block = 256
        n_blocks = (n + block - 1) // block
        for b in numba.prange(n_blocks):
            start = b * block
            stop = min(n, start + block)
            for t in range(n_trees):
                root = roots[t]
                for i in range(start, stop):
                    node = root
                    while left[node] >= 0:
                        if np.float64(xt[feature[node], i]) <= threshold[node]:
                            node = left[node]
                        else:
                            node = right[node]
                    for k in range(n_classes):
                        out[i, k] += value[node, k]
            for i in range(start, stop):
                for k in range(n_classes):
                    out[i, k] /= n_trees

else:  # pragma: no cover
    _predict_kernel = _predict_kernel_py


@dataclass
class Forest:
    """All trees of a forest in flat arrays (node indices are global).

    Attributes
    ----------
    feature : int32 (n_nodes,)
        Feature tested at each internal node (-2 at leaves).
    threshold : float64 (n_nodes,)
        Go left when ``x[feature] <= threshold``.
    left, right : int32 (n_nodes,)
        Children; -1 at leaves. Always greater than the node's own index.
    value : float64 (n_nodes, n_classes)
        Class fractions at each node (rows of leaves sum to 1).
    roots : int32 (n_trees,)
        Index of each tree's root.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    n_features: int

    @property
    def n_classes(self) -> int:
        return self.value.shape[1]

    @property
    def n_trees(self) -> int:
        return self.roots.shape[0]

    @classmethod
    def from_sklearn(cls, rf) -> Forest:
        """Copy the node arrays out of a fitted ``RandomForestClassifier``."""
        feats, thrs, lefts, rights, values, roots = [], [], [], [], [], []
        offset = 0
        for est in rf.estimators_:
            t = est.tree_
            n = t.node_count
            roots.append(offset)
            leaf = t.children_left < 0
            feats.append(np.where(leaf, -2, t.feature).astype(np.int32))
            thrs.append(t.threshold.astype(np.float64))
            lefts.append(np.where(leaf, -1, t.children_left + offset).astype(np.int32))
            rights.append(np.where(leaf, -1, t.children_right + offset).astype(np.int32))
            v = t.value[:, 0, :].astype(np.float64)
            v /= np.maximum(v.sum(axis=1, keepdims=True), 1e-300)
            values.append(v)
            offset += n
        return cls(
            feature=np.concatenate(feats),
            threshold=np.concatenate(thrs),
            left=np.concatenate(lefts),
            right=np.concatenate(rights),
            value=np.concatenate(values),
            roots=np.asarray(roots, np.int32),
            n_features=int(rf.n_features_in_),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "feature": self.feature,
            "threshold": self.threshold,
            "left": self.left,
            "right": self.right,
            "value": self.value,
            "roots": self.roots,
        }

    def validate(self) -> Forest:
        """Check shapes, dtypes and every index; raise :class:`ModelFileError`.

        After this passes the evaluator cannot index out of bounds and every
        walk from a root ends at a leaf (children always have larger indices).
        """
        def bad(msg):
            raise ModelFileError(f"The forest in this model file is corrupt: {msg}.")

        a = self.arrays()
        for name, dtype in [("feature", np.int32), ("left", np.int32), ("right", np.int32),
                            ("roots", np.int32), ("threshold", np.float64), ("value", np.float64)]:
            if not isinstance(a[name], np.ndarray) or a[name].dtype != dtype:
                bad(f"array '{name}' must be {np.dtype(dtype).name}")
        n = self.feature.shape[0]
        if n == 0 or self.feature.ndim != 1:
            bad("no nodes")
        for name in ("threshold", "left", "right"):
            if a[name].shape != (n,):
                bad(f"array '{name}' has shape {a[name].shape}, expected ({n},)")
        if self.value.ndim != 2 or self.value.shape[0] != n or self.value.shape[1] < 2:
            bad(f"array 'value' has shape {self.value.shape}, expected ({n}, n_classes>=2)")
        if self.roots.ndim != 1 or self.roots.shape[0] == 0:
            bad("no trees")
        if not (self.n_features >= 1):
            bad("no input features")
        roots = self.roots
        if roots[0] != 0 or np.any(np.diff(roots) <= 0) or roots[-1] >= n:
            bad("tree roots out of order or out of range")
        ends = np.append(roots[1:], n)
        tree_end = np.repeat(ends, np.diff(np.append(roots, n)))
        idx = np.arange(n)
        leaf = self.left < 0
        if np.any(leaf != (self.right < 0)):
            bad("a node has exactly one child")
        internal = ~leaf
        for name, child in (("left", self.left), ("right", self.right)):
            c = child[internal]
            if np.any(c <= idx[internal]) or np.any(c >= tree_end[internal]):
                bad(f"'{name}' child index out of range")
        if np.any(self.left[leaf] != -1) or np.any(self.right[leaf] != -1):
            bad("leaf children must be -1")
        f = self.feature[internal]
        if np.any(f < 0) or np.any(f >= self.n_features):
            bad(f"feature index outside 0..{self.n_features - 1}")
        if not np.all(np.isfinite(self.threshold[internal])):
            bad("non-finite threshold")
        if not np.all(np.isfinite(self.value)) or np.any(self.value < 0):
            bad("invalid class fractions")
        return self

    def predict_proba(self, xt: np.ndarray) -> np.ndarray:
        """Class probabilities for samples given feature-first.

        Parameters
        ----------
        xt : float32 array, shape ``(n_features, n_samples)``

        Returns
        -------
        proba : float64 array, shape ``(n_samples, n_classes)``
        """
        xt = np.ascontiguousarray(xt, dtype=np.float32)
        if xt.ndim != 2 or xt.shape[0] != self.n_features:
            raise ValueError(
                f"expected features of shape ({self.n_features}, n), got {xt.shape}"
            )
        out = np.zeros((xt.shape[1], self.n_classes), np.float64)
        if xt.shape[1]:
            _predict_kernel(xt, self.feature, self.threshold, self.left, self.right,
                            self.value, self.roots, out)
        return out
