"""The numba kernels of the feature engine (private; the API is :mod:`active_annotator.features`).

Separable Gaussian derivative passes along one axis (:func:`_conv_mid`,
:func:`_conv_last`), the eigenvalues of 2-D and 3-D Hessians
(:func:`_hessian2`, :func:`_hessian3`), and the plan of shared 1-D passes that
:func:`active_annotator.features.compute` runs band by band
(:class:`_Plan`, :func:`_band_derivatives`). Nothing here validates input:
:mod:`~active_annotator.features` checks shapes, dtypes and finiteness first.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from ._jit_cache import njit

# -- the engine --------------------------------------------------------------
#
# 1-D passes are numba kernels in float32 that use the symmetry of Gaussian
# kernels (x[i+t] +/- x[i-t] is formed once per tap and shared by the 0th, 1st
# and 2nd derivative outputs of that pass) and vectorise over the contiguous
# axis. Measured on the 2-core dev machine, 2048x2048, sigmas 1,2,4,8: the
# previous engine (scipy.ndimage.gaussian_filter1d passes in a shared tree,
# threads over sigmas) took 1.3 s for 20 features; see docs/benchmarks.md for
# this one. Threads work on bands of rows (planes in 3-D) of the *output*, so
# each band's temporaries stay in cache and both cores stay busy whatever the
# number of sigmas; every output value is computed by the same operations
# whatever the banding, so results do not depend on ``threads``.

_COLS = 512  # column block of the middle-axis kernel: a few rows of it fit in L1


def _half_kernel(sigma: float, order: int, truncate: float) -> np.ndarray:
    """Taps ``h[t]``, t = 0..radius, of scipy's ``gaussian_filter1d`` weights.

    scipy correlates with ``w = _gaussian_kernel1d(...)[::-1]``; the output is
    ``sum_t w[r + t] x[i + t]``. For even orders ``w`` is symmetric and for odd
    orders antisymmetric, so ``h[t] = w[r + t]`` describes it completely.
    """
    radius = int(truncate * float(sigma) + 0.5)
    sigma2 = float(sigma) * float(sigma)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / sigma2 * x**2)
    phi = phi / phi.sum()
    if order:
        exps = np.arange(order + 1)
        q = np.zeros(order + 1)
        q[0] = 1
        d = np.diag(exps[1:], 1) + np.diag(np.ones(order) / -sigma2, -1)
        for _ in range(order):
            q = d.dot(q)
        phi = (x[:, None] ** exps).dot(q) * phi
    w = phi[::-1]
    return np.ascontiguousarray(w[radius:], dtype=np.float32)


@njit(cache=True, nogil=True)
def _reflect(i, n):
    """scipy's ``mode="reflect"`` index (d c b a | a b c d | d c b a), any offset."""
    period = 2 * n
    i = i % period
    if i < 0:
        i += period
    if i >= n:
        i = period - 1 - i
    return i


@njit(cache=True, nogil=True, inline="always")
def _roles(odd):
    """Output indices of the (up to two) symmetric and one antisymmetric kernels; -1 if absent."""
    e1 = -1
    e2 = -1
    o1 = -1
    for o in range(odd.shape[0]):
        if odd[o]:
            o1 = o
        elif e1 < 0:
            e1 = o
        else:
            e2 = o
    return e1, e2, o1


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _taps(xp, xm, k1, k2, k3, y1, y2, y3, w, e1, e2, o1):  # pragma: no cover - compiled
    """One tap for all outputs in a single sweep: x[i+t] +/- x[i-t] is formed once.

    Fusing the outputs of a pass into one loop (instead of one sweep per
    output) cut the 2048x2048 sigma=8 passes from 0.154 to see
    docs/benchmarks.md; the loop shape is chosen outside the inner loop so
    each variant vectorises.
    """
    if e2 >= 0 and o1 >= 0:
        for c in range(w):
            a = xp[c]
            b = xm[c]
            s = a + b
            y1[c] += k1 * s
            y2[c] += k2 * s
            y3[c] += k3 * (a - b)
    elif e2 >= 0:
        for c in range(w):
            s = xp[c] + xm[c]
            y1[c] += k1 * s
            y2[c] += k2 * s
    elif e1 >= 0 and o1 >= 0:
        for c in range(w):
            a = xp[c]
            b = xm[c]
            y1[c] += k1 * (a + b)
            y3[c] += k3 * (a - b)
    elif e1 >= 0:
        for c in range(w):
            y1[c] += k1 * (xp[c] + xm[c])
    else:
        for c in range(w):
            y3[c] += k3 * (xp[c] - xm[c])


@njit(cache=True, nogil=True, fastmath={"contract"})
def _conv_mid(src, lo, hi, h, odd, dst):  # pragma: no cover - compiled
    """Correlate ``src (A, N, B)`` along its middle axis, output rows ``lo:hi``.

    ``h (m, r+1)`` holds the half taps of ``m <= 3`` kernels (``odd[o]``:
    antisymmetric; at most two symmetric and one antisymmetric),
    ``dst (m, A, hi - lo, B)`` receives the ``m`` outputs.
    """
    n_a, n, n_b = src.shape
    m, r1 = h.shape
    e1, e2, o1 = _roles(odd)
    i1 = max(e1, 0)
    i2 = max(e2, 0)
    i3 = max(o1, 0)
    for a in range(n_a):
        for i in range(lo, hi):
            for c0 in range(0, n_b, _COLS):
                c1 = min(n_b, c0 + _COLS)
                w = c1 - c0
                xc = src[a, i, c0:c1]
                for o in range(m):
                    out = dst[o, a, i - lo, c0:c1]
                    if odd[o]:
                        out[:] = 0
                    else:
                        k = h[o, 0]
                        for c in range(w):
                            out[c] = k * xc[c]
                y1 = dst[i1, a, i - lo, c0:c1]
                y2 = dst[i2, a, i - lo, c0:c1]
                y3 = dst[i3, a, i - lo, c0:c1]
                for t in range(1, r1):
                    _taps(src[a, _reflect(i + t, n), c0:c1], src[a, _reflect(i - t, n), c0:c1],
                          h[i1, t], h[i2, t], h[i3, t], y1, y2, y3, w, e1, e2, o1)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _conv_last(src, h, odd, dst):  # pragma: no cover - compiled
    """Correlate every row of ``src (R, N)`` with ``m <= 3`` kernels into ``dst (m, R, N)``."""
    n_rows, n = src.shape
    m, r1 = h.shape
    r = r1 - 1
    e1, e2, o1 = _roles(odd)
    i1 = max(e1, 0)
    i2 = max(e2, 0)
    i3 = max(o1, 0)
    buf = np.empty(n + 2 * r, np.float32)
    for row in range(n_rows):
        for j in range(n):
            buf[r + j] = src[row, j]
        for j in range(r):
            buf[j] = src[row, _reflect(j - r, n)]
            buf[r + n + j] = src[row, _reflect(n + j, n)]
        for o in range(m):
            out = dst[o, row]
            if odd[o]:
                out[:] = 0
            else:
                k = h[o, 0]
                for c in range(n):
                    out[c] = k * buf[r + c]
        y1 = dst[i1, row]
        y2 = dst[i2, row]
        y3 = dst[i3, row]
        for t in range(1, r1):
            _taps(buf[r + t : r + t + n], buf[r - t : r - t + n],
                  h[i1, t], h[i2, t], h[i3, t], y1, y2, y3, n, e1, e2, o1)


@njit(cache=True, nogil=True)
def _hessian2(a, b, c, ev0, ev1, lap, want_ev, want_lap):  # pragma: no cover - compiled
    """Eigenvalues (descending) of [[a, b], [b, c]] and the trace, in float64."""
    for i in range(a.shape[0]):
        aa = np.float64(a[i])
        cc = np.float64(c[i])
        if want_lap:
            lap[i] = a[i] + c[i]
        if want_ev:
            half_tr = (aa + cc) * 0.5
            # sqrt of float64 squares of float32 values cannot overflow; unlike
            # np.hypot (a libm call) it vectorises: 0.165 s -> see benchmarks.md
            dd = (aa - cc) * 0.5
            bb = np.float64(b[i])
            rad = np.sqrt(dd * dd + bb * bb)
            ev0[i] = half_tr + rad
            ev1[i] = half_tr - rad


@njit(cache=True, nogil=True)
def _hessian3(h00, h11, h22, h01, h02, h12, ev0, ev1, ev2, lap, want_ev, want_lap):  # pragma: no cover
    """Eigenvalues (descending) of a symmetric 3x3 matrix, closed form in float64.

    Trigonometric solution of the characteristic cubic (Smith 1961); in float64
    its error near repeated eigenvalues (~sqrt(eps64) of the spread) is far
    below float32 resolution. About 20x faster than numpy.linalg.eigvalsh on
    (n, 3, 3) float32 blocks (measured on 160^3 voxels).
    """
    for i in range(h00.shape[0]):
        if want_lap:
            lap[i] = h00[i] + h11[i] + h22[i]
        if not want_ev:
            continue
        a = np.float64(h00[i])
        b = np.float64(h11[i])
        c = np.float64(h22[i])
        d = np.float64(h01[i])
        e = np.float64(h02[i])
        f = np.float64(h12[i])
        p1 = d * d + e * e + f * f
        q = (a + b + c) / 3.0
        if p1 == 0.0:
            x, y, z = a, b, c
            if x < y:
                x, y = y, x
            if y < z:
                y, z = z, y
            if x < y:
                x, y = y, x
            ev0[i] = x
            ev1[i] = y
            ev2[i] = z
            continue
        aq = a - q
        bq = b - q
        cq = c - q
        p2 = aq * aq + bq * bq + cq * cq + 2.0 * p1
        p = np.sqrt(p2 / 6.0)
        det = aq * (bq * cq - f * f) - d * (d * cq - f * e) + e * (d * f - bq * e)
        rr = det / (2.0 * p * p * p)
        if rr <= -1.0:
            phi = np.pi / 3.0
        elif rr >= 1.0:
            phi = 0.0
        else:
            phi = np.arccos(rr) / 3.0
        e1 = q + 2.0 * p * np.cos(phi)
        e3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
        ev0[i] = e1
        ev1[i] = 3.0 * q - e1 - e3
        ev2[i] = e3


def _derivative_outputs(ndim: int, want_hessian: bool, want_laplace: bool):
    """Order tuples needed: smoothing and Hessian entries (or only its diagonal)."""
    orders = [(0,) * ndim]
    if want_hessian or want_laplace:
        for i in range(ndim):
            o = [0] * ndim
            o[i] = 2
            orders.append(tuple(o))
    if want_hessian:
        for i in range(ndim):
            for j in range(i + 1, ndim):
                o = [0] * ndim
                o[i] = o[j] = 1
                orders.append(tuple(o))
    return orders


class _Plan:
    """Per (sigma, axis) kernels for the shared tree of 1-D passes."""

    def __init__(self, sigma: float, orders, truncate: float, ndim: int):
        self.levels = []  # per axis: list of (prefix, next orders, h, odd)
        for axis in range(ndim):
            groups: dict[tuple, list[int]] = {}
            for o in orders:
                nxt = groups.setdefault(o[:axis], [])
                if o[axis] not in nxt:
                    nxt.append(o[axis])
            level = []
            for prefix, nxt in sorted(groups.items()):
                nxt = sorted(nxt)
                h = np.stack(_pad_same([_half_kernel(sigma, k, truncate) for k in nxt]))
                level.append((prefix, tuple(nxt), h, np.array([k % 2 == 1 for k in nxt])))
            self.levels.append(level)


def _pad_same(hs):
    n = max(len(h) for h in hs)
    return [np.pad(h, (0, n - len(h))) for h in hs]


_workspace = threading.local()


def _buffer(key, shape) -> np.ndarray:
    """A per-thread scratch array, reused across bands and sigmas.

    Fresh multi-megabyte arrays cost page faults on every touch; reusing them
    halved the time of a 2048x2048 sigma=1 pass in our measurement.
    """
    bufs = getattr(_workspace, "bufs", None)
    if bufs is None:
        bufs = _workspace.bufs = {}
    a = bufs.get(key)
    if a is None or a.shape != shape:
        a = bufs[key] = np.empty(shape, np.float32)
    return a


def _band_derivatives(x: np.ndarray, lo: int, hi: int, plan: _Plan) -> dict:
    """Gaussian derivatives of ``x`` for rows ``lo:hi`` of axis 0, keyed by order tuple.

    The arrays returned are per-thread scratch space, valid until the next call.
    """
    ndim = x.ndim
    shape = x.shape
    cache: dict[tuple, np.ndarray] = {}
    for axis, level in enumerate(plan.levels):
        new = {}
        for prefix, nxt, h, odd in level:
            if axis == 0:
                if ndim == 1:
                    dst = _buffer((axis, prefix), (len(nxt), 1, shape[0]))
                    _conv_last(x.reshape(1, -1), h, odd, dst)
                    res = dst.reshape(len(nxt), hi - lo)
                else:
                    src = x.reshape(1, shape[0], -1)
                    dst = _buffer((axis, prefix), (len(nxt), 1, hi - lo, src.shape[2]))
                    _conv_mid(src, lo, hi, h, odd, dst)
                    res = dst.reshape((len(nxt), hi - lo) + shape[1:])
            else:
                y = cache[prefix]
                bshape = y.shape
                if axis == ndim - 1:
                    src = y.reshape(-1, bshape[-1])
                    dst = _buffer((axis, prefix), (len(nxt),) + src.shape)
                    _conv_last(src, h, odd, dst)
                else:
                    a = int(np.prod(bshape[:axis]))
                    src = y.reshape(a, bshape[axis], -1)
                    dst = _buffer((axis, prefix), (len(nxt),) + src.shape)
                    _conv_mid(src, 0, bshape[axis], h, odd, dst)
                res = dst.reshape((len(nxt),) + bshape)
            for k, order in enumerate(nxt):
                new[prefix + (order,)] = res[k]
        cache = new
    return cache
