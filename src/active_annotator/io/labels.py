"""Label files of signals: one class per sample, or spans ``start_s,end_s,class`` in seconds.

Labels are one integer per sample, ``(time,)``, shared by all channels of a
record: 0 = unlabelled, 1..K = classes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import LabelError
from .signals import SignalRecord


def runs(values) -> list[tuple[int, int, int]]:
    """Constant runs of a 1-D integer array as ``(start, stop, value)``, zeros skipped."""
    v = np.asarray(values).ravel()
    if v.size == 0:
        return []
    edges = np.flatnonzero(np.diff(v)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [v.size]])
    return [(int(a), int(b), int(v[a])) for a, b in zip(starts, stops) if v[a] != 0]


def read_labels(path, record: SignalRecord) -> np.ndarray:
    """Per-sample labels ``(time,)`` for ``record`` from a file.

    ``.npy``: an integer array ``(time,)`` (0 = unlabelled). ``.csv``: spans,
    one per row, ``start_s,end_s,class`` in seconds since the first sample (an
    optional header row is skipped), e.g. ``12.5,31.0,2``.
    """
    path = Path(path)
    n = record.n_samples
    if path.suffix.lower() == ".npy":
        lab = np.load(path, allow_pickle=False)
        lab = np.asarray(lab).reshape(-1) if lab.size == n else lab
        if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
            raise LabelError(f"{path.name}: labels must be integers of shape ({n},), got {lab.dtype} {lab.shape}.")
        return lab
    labels = np.zeros(n, np.uint8)
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or not "".join(row).strip():
                continue
            try:
                t0, t1, cls = float(row[0]), float(row[1]), int(row[2])
            except (ValueError, IndexError):
                if i == 0:
                    continue  # header
                raise LabelError(f"{path.name} line {i + 1}: expected start_s,end_s,class, got {row}.") from None
            a = max(0, int(round(t0 * record.sampling_rate)))
            b = min(n, int(round(t1 * record.sampling_rate)))
            labels[a:b] = cls
    return labels


def spans_table(values, sampling_rate: float) -> list[tuple[float, float, int]]:
    """Constant runs of per-sample classes as ``(start_s, end_s, class)``."""
    return [(a / sampling_rate, b / sampling_rate, v) for a, b, v in runs(values)]


__all__ = ["read_labels", "runs", "spans_table"]
