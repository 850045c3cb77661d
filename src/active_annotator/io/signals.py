"""Signal files: seismograms and other time series as :class:`SignalRecord`.

A record is ``data`` shaped ``(channels, time)`` (float32) with its sampling
rate, start time and channel names; components of one station (Z/N/E) stay
together as channels of one record. :func:`read_signal` / :func:`write_signal`
handle ``.npy`` and ``.csv`` always, and miniSEED, SAC and every other format
ObsPy reads when the optional extra ``napari-active-annotator[signals]``
(ObsPy) is installed.
"""

from __future__ import annotations

import csv
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

OBSPY_HINT = 'Install the signals extra: pip install "napari-active-annotator[signals]" (it adds ObsPy).'
ARRAY_SUFFIXES = (".npy", ".csv")
SEISMIC_SUFFIXES = (".mseed", ".msd", ".miniseed", ".sac", ".seed", ".gse2", ".segy", ".sgy")
MAX_CHANNELS = 64
"""An array with more rows and columns than this is an image, not a signal."""


def _obspy():
    try:
        import obspy
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError(f"Reading seismic formats needs ObsPy. {OBSPY_HINT}") from None
    return obspy


# -- records ---------------------------------------------------------------------
@dataclass
class SignalRecord:
    """A multi-channel signal.

    Attributes
    ----------
    data : float32 ndarray ``(channels, time)``
    sampling_rate : float
        Samples per second (Hz).
    starttime : datetime or None
        Time of the first sample (timezone-aware UTC), None when unknown.
    channels : tuple of str
        One name per channel, e.g. SEED ids ``"BW.RJOB..EHZ"``.
    name : str
        Display name (e.g. the file stem).
    """

    data: np.ndarray
    sampling_rate: float = 1.0
    starttime: _dt.datetime | None = None
    channels: tuple[str, ...] = ()
    name: str = "signal"

    def __post_init__(self):
        d = np.asarray(self.data)
        if d.ndim == 1:
            d = d[np.newaxis]
        if d.ndim != 2 or d.shape[1] < 1:
            raise InputError(
                f"A signal must be (channels, time); got shape {np.shape(self.data)}. "
                "Reshape to (n_channels, n_samples)."
            )
        self.data = np.ascontiguousarray(d, dtype=np.float32)
        self.sampling_rate = float(self.sampling_rate)
        if not np.isfinite(self.sampling_rate) or self.sampling_rate <= 0:
            raise InputError(f"sampling_rate must be a positive number of Hz, got {self.sampling_rate}.")
        if not self.channels:
            self.channels = tuple(f"ch{i}" for i in range(d.shape[0]))
        self.channels = tuple(str(c) for c in self.channels)
        if len(self.channels) != d.shape[0]:
            raise InputError(f"{len(self.channels)} channel names for {d.shape[0]} channels.")

    @property
    def n_channels(self) -> int:
        return self.data.shape[0]

    @property
    def n_samples(self) -> int:
        return self.data.shape[1]

    @property
    def duration(self) -> float:
        """Seconds from the first to one sample past the last."""
        return self.n_samples / self.sampling_rate

    def times(self) -> np.ndarray:
        """Seconds since the first sample, ``(time,)`` float64."""
        return np.arange(self.n_samples) / self.sampling_rate

    def metadata(self) -> dict:
        """JSON-friendly description (no data), e.g. for a napari layer's metadata."""
        return {
            "sampling_rate": self.sampling_rate,
            "starttime": None if self.starttime is None else self.starttime.isoformat(),
            "channels": list(self.channels),
            "name": self.name,
        }

    @classmethod
    def from_metadata(cls, data, meta: dict) -> SignalRecord:
        st = meta.get("starttime")
        return cls(
            data, meta.get("sampling_rate", 1.0),
            None if st is None else _dt.datetime.fromisoformat(st),
            tuple(meta.get("channels", ())), meta.get("name", "signal"),
        )

    def to_stream(self):
        """An ObsPy ``Stream`` with one trace per channel (needs ObsPy)."""
        obspy = _obspy()
        start = obspy.UTCDateTime(self.starttime) if self.starttime is not None else obspy.UTCDateTime(0)
        traces = []
        for name, row in zip(self.channels, self.data):
            parts = name.split(".")
            if len(parts) != 4:
                parts = ["", "", "", name[:3]]
            stats = {"network": parts[0], "station": parts[1], "location": parts[2],
                     "channel": parts[3], "sampling_rate": self.sampling_rate, "starttime": start}
            traces.append(obspy.Trace(np.ascontiguousarray(row), header=stats))
        return obspy.Stream(traces)


def is_signal_array(arr) -> bool:
    """True if ``arr`` looks like a signal: 1-D, or 2-D with one short axis (channels)."""
    shape = np.shape(arr)
    if len(shape) == 1:
        return shape[0] > 1
    if len(shape) == 2:
        return min(shape) <= MAX_CHANNELS and max(shape) > 4 * min(shape)
    return False


def _from_array(arr, path: Path, sampling_rate, channels=None) -> SignalRecord:
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number) or not is_signal_array(arr):
        raise InputError(
            f"{path.name} holds an array of shape {arr.shape} and dtype {arr.dtype}; a signal is "
            f"(channels, time) or (time, channels) with at most {MAX_CHANNELS} channels and more "
            "samples than channels. Save it as numpy.save(path, data) with data of that shape."
        )
    if arr.ndim == 2 and arr.shape[0] > arr.shape[1]:
        arr = arr.T  # (time, channels) as written by most tools
    return SignalRecord(arr, sampling_rate or 1.0, None, tuple(channels or ()), path.stem)


def _read_csv(path: Path, sampling_rate) -> SignalRecord:
    try:
        return _parse_csv(path, sampling_rate)
    except (UnicodeDecodeError, IndexError, csv.Error) as e:
        raise InputError(
            f"{path.name} is not a readable CSV table ({type(e).__name__}: {e}). Write one "
            "column per channel, one row per sample, as UTF-8 text."
        ) from None


def _parse_csv(path: Path, sampling_rate) -> SignalRecord:
    with open(path, newline="", encoding="utf-8") as f:
        sample = f.read(4096)
        f.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t ")
        except csv.Error:
            dialect = csv.excel
        rows = list(csv.reader(f, dialect))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    header = None
    try:
        float(rows[0][0])
    except (ValueError, IndexError):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    try:
        arr = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as e:
        raise InputError(
            f"{path.name}: every row after the optional header must hold numbers only ({e}). "
            "Write one column per channel, one row per sample."
        ) from None
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise InputError(f"{path.name}: found no table of numbers (one column per channel, one row per sample).")
    names = header
    if header and header[0].lower() in ("t", "time", "time_s", "seconds", "time (s)") and arr.shape[1] > 1:
        dt = np.diff(arr[:, 0])
        if sampling_rate is None and dt.size and np.all(dt > 0):
            sampling_rate = _csv_rate(path, dt)
        arr, names = arr[:, 1:], header[1:]
    rec = SignalRecord(arr.T, sampling_rate or 1.0, None, tuple(names or ()), path.stem)
    return rec


def _csv_rate(path: Path, dt: np.ndarray) -> float:
    """Sampling rate of a CSV time column: steps must be regular and the rate plausible."""
    from .. import limits

    step = float(np.median(dt))
    if np.max(np.abs(dt - step)) > 0.01 * step + 1e-12:
        raise InputError(
            f"{path.name}: the time column is not evenly spaced (steps from {dt.min():g} to "
            f"{dt.max():g} s). Resample to a regular time step first."
        )
    rate = 1.0 / step
    if not np.isfinite(rate) or rate > limits.get("SAMPLING_RATE"):
        raise InputError(
            f"{path.name}: the time column steps by {step:g} s, a sampling rate of {rate:g} Hz, "
            f"above the limit of {limits.get('SAMPLING_RATE')} Hz. Is the time column in seconds? "
            f"{limits.hint('SAMPLING_RATE')}"
        )
    return rate


def _check_merged_size(path: Path, st) -> None:
    """Refuse traces whose gaps, once filled by merging, would need more memory than allowed."""
    from .. import limits

    spans = {}
    for tr in st:
        rate = float(tr.stats.sampling_rate)
        if not np.isfinite(rate) or rate <= 0 or rate > limits.get("SAMPLING_RATE"):
            raise InputError(f"{path.name}: trace {tr.id} has an implausible sampling rate {rate:g} Hz. "
                             f"{limits.hint('SAMPLING_RATE')}")
        t0, t1, _ = spans.get(tr.id, (tr.stats.starttime, tr.stats.endtime, rate))
        spans[tr.id] = (min(t0, tr.stats.starttime), max(t1, tr.stats.endtime), max(rate, _))
    samples = sum(int((t1 - t0) * rate) + 1 for t0, t1, rate in spans.values())
    size = samples * 8  # merging works in up to float64
    if size > limits.get("ARRAY_BYTES"):
        longest = max(spans.values(), key=lambda s: s[1] - s[0])
        raise InputError(
            f"{path.name}: its traces span {longest[1] - longest[0]:.0f} s ({longest[0]} to {longest[1]}); "
            f"filling the gaps would need {size} bytes, above the limit of {limits.get('ARRAY_BYTES')}. "
            f"Cut the time span first (obspy: stream.trim(start, end)). {limits.hint('ARRAY_BYTES')}"
        )


def _read_obspy(path: Path, sampling_rate, format) -> SignalRecord:
    obspy = _obspy()
    try:
        st = obspy.read(str(path), format=format)
    except Exception as e:  # ObsPy raises TypeError/Exception for unknown formats
        raise InputError(
            f"ObsPy cannot read {path.name} ({type(e).__name__}: {e}). Check that it is a "
            "seismic waveform file (miniSEED, SAC, GSE2, SEG-Y, ...) or pass format=..."
        ) from None
    if len(st) == 0:
        raise InputError(f"{path.name} contains no traces.")
    _check_merged_size(path, st)
    st.merge(method=1, fill_value="interpolate")  # one trace per channel; gaps filled
    rates = sorted({float(tr.stats.sampling_rate) for tr in st})
    if len(rates) > 1:
        raise InputError(
            f"{path.name} mixes sampling rates {rates} Hz; resample first, e.g. "
            "stream.resample(100.0) in ObsPy, then save and open again."
        )
    start = max(tr.stats.starttime for tr in st)
    end = min(tr.stats.endtime for tr in st)
    if end < start:
        raise InputError(f"The traces of {path.name} do not overlap in time; open them one by one.")
    st.trim(start, end, nearest_sample=True)
    order = {"Z": 0, "N": 1, "1": 1, "E": 2, "2": 2}
    traces = sorted(st, key=lambda tr: (tr.id[:-1], order.get(tr.stats.channel[-1:], 9), tr.id))
    n = min(tr.stats.npts for tr in traces)
    data = np.stack([np.asarray(tr.data[:n], np.float32) for tr in traces])
    t0 = traces[0].stats.starttime.datetime.replace(tzinfo=_dt.timezone.utc)
    return SignalRecord(data, rates[0], t0, tuple(tr.id for tr in traces), path.stem)


def read_signal(path, sampling_rate: float | None = None, format: str | None = None) -> SignalRecord:
    """Read a signal file into a :class:`SignalRecord`.

    Parameters
    ----------
    path : str or Path
        ``.npy`` (1-D, ``(channels, time)`` or ``(time, channels)``), ``.csv``
        (one column per channel; an optional header row; a first column named
        ``time`` gives the sampling rate), or any waveform format ObsPy reads
        (miniSEED ``.mseed``/``.msd``, SAC, GSE2, SEG-Y, ...), which needs the
        ``[signals]`` extra.
    sampling_rate : float, optional
        Hz, for formats that do not store it (``.npy``, ``.csv`` without a time
        column); default 1 Hz (time axis in samples).
    format : str, optional
        ObsPy format name (``"MSEED"``, ``"SAC"``) when the suffix does not say.

    Returns
    -------
    SignalRecord
        Traces of a waveform file are merged per channel (gaps interpolated),
        trimmed to their common time span and ordered Z, N, E per station.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No such file: {path}. Check the path.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:
            raise InputError(f"{path.name} is not a plain numpy array file ({e}).") from None
        return _from_array(arr, path, sampling_rate)
    if suffix == ".csv":
        return _read_csv(path, sampling_rate)
    return _read_obspy(path, sampling_rate, format)


def write_signal(record: SignalRecord, path, format: str | None = None) -> Path:
    """Write a record: ``.npy`` (``(channels, time)``), ``.csv`` (time column + one column per
    channel) or any ObsPy format (``.mseed``, ``.sac``; SAC holds one channel per file)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, record.data)
    elif suffix == ".csv":
        table = np.column_stack([record.times(), record.data.T])
        np.savetxt(path, table, delimiter=",", header=",".join(["time"] + list(record.channels)),
                   comments="", fmt="%.9g")
    else:
        fmt = format or {".mseed": "MSEED", ".msd": "MSEED", ".miniseed": "MSEED", ".sac": "SAC"}.get(suffix)
        if fmt is None:
            raise InputError(f"Unknown signal suffix {suffix!r}; use .npy, .csv, .mseed or .sac, or pass format=.")
        record.to_stream().write(str(path), format=fmt)
    return path


__all__ = [
    "ARRAY_SUFFIXES", "MAX_CHANNELS", "OBSPY_HINT", "SEISMIC_SUFFIXES", "SignalRecord",
    "is_signal_array", "read_signal", "write_signal",
]
