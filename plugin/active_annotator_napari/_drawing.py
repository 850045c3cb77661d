"""Drawing helpers for long signals: a min/max pyramid and waveform paths for napari's canvas.

Drawing, not analysis: what the eye sees of a record at a given zoom, a few
thousand vertices however long the record is.
"""

import numpy as np


class MinMaxPyramid:
    """Min/max envelope of a ``(channels, time)`` array at every zoom.

    Level ``k`` holds the minimum and maximum of each block of ``factor**k``
    samples; :meth:`view` picks the coarsest level that still gives about
    ``n_bins`` points in the requested range, so drawing a day at 100 Hz costs
    the same as drawing a minute. Memory: about a sixth of the data.
    """

    def __init__(self, data, factor: int = 4, smallest: int = 1024):
        x = np.asarray(data)
        if x.ndim == 1:
            x = x[np.newaxis]
        self.data = x
        self.factor = int(factor)
        self.levels: list[tuple[int, np.ndarray, np.ndarray]] = []  # (block, mins, maxs)
        # the finest level already groups 16 samples: finer views draw raw samples
        lo, hi, block, f = x, x, 1, 16
        while lo.shape[1] > smallest:
            m = lo.shape[1] // f * f
            if m == 0:
                break
            lo = lo[:, :m].reshape(x.shape[0], -1, f).min(2)
            hi = hi[:, :m].reshape(x.shape[0], -1, f).max(2)
            block *= f
            self.levels.append((block, lo, hi))
            f = self.factor

    def view(self, start: int, stop: int, n_bins: int = 2000):
        """Vertices to draw samples ``[start, stop)``.

        Returns
        -------
        index : float64 ``(m,)`` sample positions; values : ``(channels, m)``.
        When zoomed out, each block contributes its min and its max at the same
        position (a vertical stroke), which is what the eye sees of the raw data.
        """
        n = self.data.shape[1]
        start, stop = max(0, int(start)), min(n, int(np.ceil(stop)))
        if stop <= start:
            return np.zeros(0), np.zeros((self.data.shape[0], 0), np.float32)
        per_bin = (stop - start) / max(1, n_bins)
        chosen = None
        for block, lo, hi in self.levels:
            if block <= per_bin:
                chosen = (block, lo, hi)
        if chosen is None:
            idx = np.arange(start, stop, dtype=np.float64)
            return idx, self.data[:, start:stop]
        block, lo, hi = chosen
        b0, b1 = start // block, min(lo.shape[1], -(-stop // block))
        idx = (np.arange(b0, b1) * block + block / 2).repeat(2)
        vals = np.empty((self.data.shape[0], 2 * (b1 - b0)), self.data.dtype)
        vals[:, 0::2] = lo[:, b0:b1]
        vals[:, 1::2] = hi[:, b0:b1]
        return idx, vals


def waveform_paths(data, n_bins: int = 4000, half_height: float = 0.45):
    """Path vertices ``[(m, 2) (row, sample)]`` per channel of ``data`` ``(channels, time)``.

    Channel ``i`` is drawn around row ``i`` (napari's pixel centre of row
    ``i`` of the strip), scaled to ``±half_height`` by its robust range; the
    min/max envelope keeps a short event visible in a day-long record.
    """
    x = np.asarray(data, np.float64)
    if x.ndim == 1:
        x = x[np.newaxis]
    idx, vals = MinMaxPyramid(x).view(0, x.shape[1], n_bins)
    paths = []
    for i, v in enumerate(vals.astype(np.float64)):
        centre = float(np.median(v)) if v.size else 0.0
        amp = float(np.max(np.abs(v - centre))) if v.size else 0.0
        y = i - half_height * (v - centre) / (amp or 1.0)  # up is up: napari's row axis points down
        paths.append(np.column_stack([y, idx]))
    return paths
