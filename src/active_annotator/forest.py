"""A random forest as plain arrays, with a compiled evaluator.

scikit-learn trains the forest; :class:`Forest` keeps only its node arrays.
That gives two things scikit-learn's own objects do not:

* a file format with nothing executable in it (see :mod:`persistence`):
  :meth:`Forest.validate` checks every index before the arrays are used, so a
  crafted file cannot make the evaluator read out of bounds or loop forever;
* faster prediction. scikit-learn's ``predict_proba`` runs ``apply`` per tree,
  then gathers a float64 ``(n_samples, n_classes)`` array per tree and adds
  them under a lock. Here one numba kernel walks all trees for a block of
  pixels while that block is in cache, with the trees renumbered breadth-first
  so that one walk step is ``node = child[node] + (x > thr)`` without a
  branch, stopping when the block's pixels are at their leaves (see
  :func:`_walk_block`; class decisions: :func:`_walk_to_leaves`).
  Thresholds are rounded *down* to float32, which for float32 features gives exactly scikit-learn's float64
  decisions; class fractions are summed in float64 in tree order as
  scikit-learn does, so the class decisions are the same.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import limits
from .errors import ModelFileError

try:  # numba is a dependency; the fallback only keeps odd platforms working
    import numba  # noqa: F401 - the kernels below need it

    from ._jit_cache import njit

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

    @njit(cache=True, nogil=True)
    def _pack_kernel(feature, threshold, left, right, roots, ends, child, feat, thr, order, depth):  # pragma: no cover
        """Renumber each tree breadth-first so siblings are adjacent (right = left + 1).

        Leaves point at themselves with threshold +inf, so a walk can run a
        fixed number of steps without branching. ``thr`` is the largest float32
        not above the float64 threshold: for float32 features ``x <= thr32``
        exactly when ``x <= thr64``, so every decision equals scikit-learn's.
        """
        n_trees = roots.shape[0]
        new_of = np.empty(feature.shape[0], np.int64)
        for t in range(n_trees):
            r = roots[t]
            size = ends[t] - r
            # order[new] = old node, filled breadth-first; children appended in pairs
            order[r] = r
            new_of[r] = r
            head = r
            tail = r + 1
            level_end = tail
            d = 0
            while head < tail:
                old = order[head]
                if left[old] >= 0:
                    order[tail] = left[old]
                    order[tail + 1] = right[old]
                    new_of[left[old]] = tail
                    new_of[right[old]] = tail + 1
                    tail += 2
                head += 1
                if head == level_end and head < tail:
                    d += 1
                    level_end = tail
            depth[t] = d
            for k in range(r, r + size):
                old = order[k]
                if left[old] >= 0:
                    child[k] = new_of[left[old]]
                    feat[k] = feature[old]
                    x = np.float32(threshold[old])
                    if np.float64(x) > threshold[old]:
                        x = np.nextafter(x, np.float32(-np.inf))
                    thr[k] = x
                else:
                    child[k] = k
                    feat[k] = 0
                    thr[k] = np.inf

    @njit(cache=True, nogil=True, inline="always")
    def _walk_to_leaves(xb, nf, r, pix, n_pix, child, feat, thr, node, walk):  # pragma: no cover
        """Walk pixels ``pix[:n_pix]`` of the block ``xb`` from root ``r`` to their leaves.

        Each pass moves every pixel still inside the tree one level down
        (``node = child[node] + (x > thr)``, no data-dependent branch) and
        keeps in ``walk`` only those not yet at a leaf (leaves point at
        themselves), so a pixel costs the depth of its own leaf, not the
        tree's maximum depth. Used for class decisions, where the pixels
        still walking are a scattered subset of the block (measured 0.36 s
        against 0.38-0.47 s for the full-depth lock step, 262k px, 100
        trees, one thread); a plain per-pixel ``while`` loop was 2x slower
        than the lock step (branch mispredictions).
        """
        for j in range(n_pix):
            node[pix[j]] = r
            walk[j] = pix[j]
        n_walk = np.uint32(n_pix)
        while n_walk > 0:
            keep = np.uint32(0)
            for j in range(n_walk):
                i = walk[j]
                nd = node[i]
                # unsigned indices: numba then skips negative-index wraparound
                nn = child[nd] + np.uint32(xb[i * nf + feat[nd]] > thr[nd])
                node[i] = nn
                walk[keep] = i
                keep += np.uint32(child[nn] != nn)
            n_walk = keep

    @njit(cache=True, nogil=True, inline="always")
    def _walk_block(xb, nf, r, d, nb, child, feat, thr, node):  # pragma: no cover
        """Walk pixels ``0:nb`` of the block ``xb`` from root ``r`` in lock step, until all are at leaves.

        ``node = child[node] + (x > thr)`` with no data-dependent branch
        (leaves point at themselves), stopping as soon as a step moved no
        pixel of the block: a block of 64 neighbouring pixels costs the depth
        of its deepest leaf, not the tree's maximum depth ``d``. Measured on
        the micronuclei sample's forest (100 unlimited-depth trees, mean max
        depth 20.8, mean leaf depth 8.5, 262k px, one thread, CPU s): full
        depth 0.54, this with blocks of 16/64/256 0.44/0.45/0.55, each pixel
        stopping at its own leaf (:func:`_walk_to_leaves`) 0.58: the
        branch-free lock step over the block is cheaper per step.
        """
        for i in range(nb):
            node[i] = r
        for _ in range(d):
            moved = np.uint32(0)
            # unsigned indices: numba then skips negative-index wraparound,
            # which measured 1.8x faster (0.41 -> 0.23 s, 262k px, 100 trees)
            for i in range(np.uint32(nb)):
                nd = node[i]
                nn = child[nd] + np.uint32(xb[i * nf + feat[nd]] > thr[nd])
                moved |= nn ^ nd
                node[i] = nn
            if moved == 0:
                break

    @njit(cache=True, nogil=True)
    def _predict_packed(xt, lo, hi, child, feat, thr, value, roots, depth, out):  # pragma: no cover
        """Probabilities of pixels ``lo:hi`` into ``out[lo:hi]`` (float64 sums in tree order).

        A block of pixels is copied to pixel-major order (one cache line per
        pixel), then each tree walks the block to its leaves
        (:func:`_walk_block`) while the tree is in cache.
        """
        n_feat = xt.shape[0]
        n_trees = roots.shape[0]
        n_cls = value.shape[1]
        blk = 64
        nf = np.uint32(n_feat)
        xb = np.empty(blk * n_feat, np.float32)
        node = np.empty(blk, np.uint32)
        for b0 in range(lo, hi, blk):
            nb = min(hi, b0 + blk) - b0
            for f in range(n_feat):
                for i in range(nb):
                    xb[i * n_feat + f] = xt[f, b0 + i]
            for i in range(nb):
                for k in range(n_cls):
                    out[b0 + i, k] = 0.0
            for t in range(n_trees):
                _walk_block(xb, nf, roots[t], depth[t], nb, child, feat, thr, node)
                for i in range(nb):
                    nd = node[i]
                    for k in range(n_cls):
                        out[b0 + i, k] += value[nd, k]
            for i in range(nb):
                for k in range(n_cls):
                    out[b0 + i, k] /= n_trees

    @njit(cache=True, nogil=True)
    def _predict_index_packed(xt, lo, hi, child, feat, thr, value, roots, depth, out):  # pragma: no cover
        """Index of the most probable class of pixels ``lo:hi``, stopping early when decided.

        Every 8 trees, a pixel whose leading class is ahead of every other by
        more than the number of trees left (each tree adds at most 1 to a
        class) cannot change its decision and leaves the walk. The margin
        1e-6 is far above the float64 rounding of these sums, so the result
        is the argmax of the complete ``predict_proba``, ties to the first class.
        Within a tree each pixel stops at its own leaf (:func:`_walk_to_leaves`).
        """
        n_feat = xt.shape[0]
        n_trees = roots.shape[0]
        n_cls = value.shape[1]
        blk = 256
        nf = np.uint32(n_feat)
        xb = np.empty(blk * n_feat, np.float32)
        node = np.empty(blk, np.uint32)
        walk = np.empty(blk, np.uint32)
        active = np.empty(blk, np.uint32)
        acc = np.empty((blk, n_cls), np.float64)
        for b0 in range(lo, hi, blk):
            nb = min(hi, b0 + blk) - b0
            for f in range(n_feat):
                for i in range(nb):
                    xb[i * n_feat + f] = xt[f, b0 + i]
            for i in range(nb):
                active[i] = i
                for k in range(n_cls):
                    acc[i, k] = 0.0
            n_act = nb
            t = 0
            while t < n_trees and n_act > 0:
                t_end = min(n_trees, t + 8)
                for tt in range(t, t_end):
                    _walk_to_leaves(xb, nf, roots[tt], active, n_act, child, feat, thr, node, walk)
                    for j in range(n_act):
                        i = active[j]
                        nd = node[i]
                        for k in range(n_cls):
                            acc[i, k] += value[nd, k]
                t = t_end
                left = n_trees - t
                if left == 0:
                    break
                keep = 0
                for j in range(n_act):
                    i = active[j]
                    best = 0
                    for k in range(1, n_cls):
                        if acc[i, k] > acc[i, best]:
                            best = k
                    decided = True
                    for k in range(n_cls):
                        if k != best and acc[i, best] - acc[i, k] <= left + 1e-6:
                            decided = False
                            break
                    if decided:
                        out[b0 + i] = best
                    else:
                        active[keep] = i
                        keep += 1
                n_act = keep
            for j in range(n_act):
                i = active[j]
                best = 0
                pb = acc[i, 0] / n_trees
                for k in range(1, n_cls):
                    pk = acc[i, k] / n_trees
                    if pk > pb:
                        best = k
                        pb = pk
                out[b0 + i] = best


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

        After this passes the arrays are a forest: every node is reached from
        its tree's root exactly once (no shared children, no cycles, nothing
        unreachable), so the evaluator cannot index out of bounds, every walk
        ends at a leaf, and leaf class fractions sum to 1.
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
        if self.value.shape[1] > limits.get("CLASSES"):
            bad(f"{self.value.shape[1]} classes, more than the limit of {limits.get('CLASSES')}. "
                f"{limits.hint('CLASSES')[:-1]}")
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
        if np.any(self.left[internal] == self.right[internal]):
            bad("a node has the same left and right child")
        # Children lie after their parent and inside its tree, so no walk can
        # cycle. If moreover every root has no parent and every other node
        # exactly one, each node is reached from its tree's root exactly once:
        # follow parents down the indices to the root (the kernels rely on it).
        parents = np.bincount(np.concatenate([self.left[internal], self.right[internal]]),
                              minlength=n)
        if np.any(parents[roots] != 0):
            bad("a tree root is also a child of another node")
        others = np.ones(n, bool)
        others[roots] = False
        if np.any(parents[others] > 1):
            bad("a node is the child of more than one node (trees must not share nodes)")
        if np.any(parents[others] == 0):
            bad(f"{int(np.sum(parents[others] == 0))} node(s) are not reachable from their tree's root")
        f = self.feature[internal]
        if np.any(f < 0) or np.any(f >= self.n_features):
            bad(f"feature index outside 0..{self.n_features - 1}")
        if not np.all(np.isfinite(self.threshold[internal])):
            bad("non-finite threshold")
        if not np.all(np.isfinite(self.value)) or np.any(self.value < 0):
            bad("invalid class fractions")
        if np.any(np.abs(self.value[leaf].sum(axis=1) - 1.0) > 1e-6):
            bad("class fractions at a leaf do not sum to 1")
        return self

    def _packed(self):
        """Breadth-first layout for the evaluator, built once per forest."""
        cached = getattr(self, "_packed_cache", None)
        if cached is not None and cached[0] is self.threshold:
            return cached[1]
        # the compiled kernels do not check bounds: never run them on unchecked arrays
        self.validate()
        n = self.feature.shape[0]
        roots = self.roots.astype(np.uint32)
        ends = np.append(roots[1:], n).astype(np.int64)
        child = np.empty(n, np.uint32)
        feat = np.empty(n, np.uint32)
        thr = np.empty(n, np.float32)
        order = np.empty(n, np.int64)
        depth = np.empty(roots.shape[0], np.int64)
        _pack_kernel(self.feature, self.threshold, self.left, self.right, roots, ends,
                     child, feat, thr, order, depth)
        # second line of defence, once per forest instead of per pixel: the walks can only
        # index inside the packed arrays (the kernels themselves stay branch-free)
        own = np.arange(n)
        inner = child != own
        if (not np.array_equal(np.sort(order), own) or np.any(child[inner] + 1 >= n)
                or np.any(child[inner] <= own[inner]) or np.any(feat >= self.n_features)
                or np.any(depth < 0) or np.any(depth >= n)):
            raise ModelFileError("The forest in this model file is corrupt: its packed layout is inconsistent.")
        packed = (child, feat, thr, np.ascontiguousarray(self.value[order]), roots, depth)
        self._packed_cache = (self.threshold, packed)
        return packed

    def _packed_torch(self, device):
        """The packed arrays as torch tensors on ``device`` (cached per device)."""
        import torch

        cache = getattr(self, "_torch_cache", None)
        if cache is None or cache[0] is not self.threshold:
            cache = (self.threshold, {})
            self._torch_cache = cache
        key = str(device)
        if key not in cache[1]:
            child, feat, thr, value, roots, depth = self._packed()
            cache[1][key] = (torch.from_numpy(child.astype(np.int64)).to(device),
                             torch.from_numpy(feat.astype(np.int64)).to(device),
                             torch.from_numpy(thr).to(device),
                             torch.from_numpy(value).to(device),
                             [int(r) for r in roots], [int(d) for d in depth])
        return cache[1][key]

    def _proba_torch(self, xt: np.ndarray, device, chunk: int = 1 << 20) -> np.ndarray:
        """:meth:`predict_proba` with torch on ``device`` (``"cuda"`` on a GPU).

        A GPU wants lock-step work, so every pixel walks each tree for the
        tree's full depth (leaves point at themselves, so extra steps stay at
        the leaf); sums in float64 in tree order as on the CPU, so results
        equal the numba kernels' (and scikit-learn's).
        """
        import torch

        child, feat, thr, value, roots, depth = self._packed_torch(device)
        n = xt.shape[1]
        out = np.empty((n, self.n_classes), np.float64)
        x_all = torch.from_numpy(xt)
        for lo in range(0, n, chunk):
            x = x_all[:, lo:lo + chunk].to(device)
            m = x.shape[1]
            x = x.T.contiguous().reshape(-1)  # pixel-major, flat
            base = torch.arange(m, device=device) * xt.shape[0]
            acc = torch.zeros((m, self.n_classes), dtype=torch.float64, device=device)
            for r, d in zip(roots, depth):
                node = torch.full((m,), r, dtype=torch.int64, device=device)
                for _ in range(d):
                    node = child[node] + (x[base + feat[node]] > thr[node]).to(torch.int64)
                acc += value[node]
            out[lo:lo + m] = (acc / len(roots)).cpu().numpy()
        return out

    def predict_proba(self, xt: np.ndarray, *, threads: int | None = None,
                      device: str | None = None) -> np.ndarray:
        """Class probabilities for samples given feature-first.

        Parameters
        ----------
        xt : float32 array, shape ``(n_features, n_samples)``
            Finite values (the feature engine rejects NaN input).
        threads : int, optional
            Worker threads; default ``os.cpu_count()``. Results do not depend on it.
        device : str, optional
            A torch device (``"cuda"``) to evaluate on instead of the CPU
            kernels; needs torch. Results are the same.

        Returns
        -------
        proba : float64 array, shape ``(n_samples, n_classes)``
        """
        xt = np.ascontiguousarray(xt, dtype=np.float32)
        if xt.ndim != 2 or xt.shape[0] != self.n_features:
            raise ValueError(
                f"expected features of shape ({self.n_features}, n), got {xt.shape}"
            )
        n = xt.shape[1]
        out = np.zeros((n, self.n_classes), np.float64)
        if not n:
            return out
        if device is not None:
            return self._proba_torch(xt, device)
        if not _HAVE_NUMBA:  # pragma: no cover
            _predict_kernel_py(xt, self.feature, self.threshold, self.left, self.right,
                               self.value, self.roots, out)
            return out
        return self._run(_predict_packed, xt, out, threads)

    def _run(self, kernel, xt, out, threads):
        """Run a packed-forest kernel over pixel chunks on threads (the kernels release the GIL)."""
        n = xt.shape[1]
        packed = self._packed()
        n_threads = max(1, min(int(threads or os.cpu_count() or 1), -(-n // 16384)))
        if n_threads == 1:
            kernel(xt, 0, n, *packed, out)
            return out
        # chunks several times the thread count, so a slow core does not hold the rest
        step = -(-n // (4 * n_threads))
        with ThreadPoolExecutor(n_threads) as pool:
            futs = [pool.submit(kernel, xt, lo, min(n, lo + step), *packed, out)
                    for lo in range(0, n, step)]
            for f in futs:
                f.result()
        return out

    def predict_index(self, xt: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """Index of the most probable class (argmax of :meth:`predict_proba`), faster.

        Pixels stop walking trees once no remaining tree can change their
        decision, so confident pixels cost about half the trees. The result
        equals ``predict_proba(xt).argmax(axis=1)`` exactly.

        Returns
        -------
        index : int64 array, shape ``(n_samples,)``
        """
        xt = np.ascontiguousarray(xt, dtype=np.float32)
        if xt.ndim != 2 or xt.shape[0] != self.n_features:
            raise ValueError(
                f"expected features of shape ({self.n_features}, n), got {xt.shape}"
            )
        n = xt.shape[1]
        out = np.zeros(n, np.int64)
        if not n:
            return out
        if not _HAVE_NUMBA:  # pragma: no cover
            return self.predict_proba(xt).argmax(axis=1)
        return self._run(_predict_index_packed, xt, out, threads)
