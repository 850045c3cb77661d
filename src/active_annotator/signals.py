"""Signals: seismograms and other time series, classified sample by sample.

A signal is a :class:`SignalRecord`: ``data`` shaped ``(channels, time)``
(float32) with its sampling rate, start time and channel names. Components of
one station (Z/N/E) stay together as channels of one record. Labels are one
integer per sample, ``(time,)``, shared by all channels: 0 = unlabelled,
1..K = classes.

What lives here:

* Records, signal files and label files live in :mod:`active_annotator.io.signals`
  and :mod:`active_annotator.io.labels`; :class:`SignalRecord`, :func:`read_signal`,
  :func:`write_signal`, :func:`read_labels` and :func:`spans_table` are imported
  here too, so ``from active_annotator.signals import read_signal`` keeps working.
* Extra feature families that seismologists expect, next to the 1-D Gaussian,
  DoG, LoG and Hessian features of :mod:`active_annotator.features`:
  ``envelope`` (Hilbert envelope, raw and Gaussian-smoothed at the feature
  set's sigmas) and ``stalta`` (classic STA/LTA ratio, trailing windows, as in
  ObsPy's ``classic_sta_lta``) and ``bands`` (spectral band amplitudes from a
  bank of complex Gabor (Morlet) filters, one per centre frequency in Hz: the
  spectrogram seismologists read, sample by sample), described by
  :class:`SignalFeatures`. Everything a user sets is in seconds or Hz and
  converted with the sampling rate (:func:`default_signal_features`,
  :meth:`SignalFeatures.from_seconds`).
* :class:`SignalClassifier`: the random forest on those features, tiled along
  time so a day at 100 Hz fits in memory.
* :func:`suggest_windows`: windows of the record ranked by the active-learning
  strategies of :mod:`active_annotator.sampling`.
* the min/max drawing pyramid lives in the plugin (active_annotator_napari._drawing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from ._estimator import Estimator
from .errors import AnnotatorError as AnnotatorErrorBase
from .errors import Cancelled, InputError, LabelError, NotFittedError
from .features import FeatureSet, compute, padded, tile_slices
from .io.labels import read_labels, runs, spans_table  # noqa: F401  (part of this module's API)
from .io.signals import (  # noqa: F401  (part of this module's API)
    ARRAY_SUFFIXES,
    MAX_CHANNELS,
    OBSPY_HINT,
    SEISMIC_SUFFIXES,
    SignalRecord,
    is_signal_array,
    read_signal,
    write_signal,
)

ProgressCallback = Callable[[int, int], None]
StopCallback = Callable[[], bool]

MODEL_FORMAT = "napari-active-annotator.signal-classifier"
MODEL_SUFFIX = ".aasignal"


# -- extra feature families --------------------------------------------------------
def envelope(x, axis: int = -1) -> np.ndarray:
    """Hilbert envelope ``|x + i H(x)|`` along ``axis`` (float32), via :func:`scipy.signal.hilbert`."""
    from scipy.fft import next_fast_len
    from scipy.signal import hilbert

    x = np.asarray(x, np.float64)
    n = x.shape[axis]
    return np.abs(hilbert(x, N=next_fast_len(n), axis=axis).take(np.arange(n), axis=axis)).astype(np.float32)


def sta_lta(x, nsta: int, nlta: int) -> np.ndarray:
    """Classic STA/LTA ratio of a 1-D signal with trailing windows (cumulative sums).

    ``sta[i]`` is the mean of ``x**2`` over the ``nsta`` samples ending at ``i``,
    ``lta[i]`` over the ``nlta`` samples ending at ``i``. Equals ObsPy's
    ``classic_sta_lta`` for ``i >= nlta - 1`` (ObsPy sets earlier samples to 0;
    here they use the samples available, so the start of a record is usable).
    """
    nsta, nlta = int(nsta), int(nlta)
    if not 1 <= nsta < nlta:
        raise InputError(f"STA/LTA needs 1 <= nsta < nlta samples, got nsta={nsta}, nlta={nlta}.")
    x = np.asarray(x, np.float64)
    cs = np.concatenate([[0.0], np.cumsum(x * x)])
    i = np.arange(1, x.size + 1)
    s0 = np.maximum(i - nsta, 0)
    l0 = np.maximum(i - nlta, 0)
    sta = (cs[i] - cs[s0]) / (i - s0)
    lta = (cs[i] - cs[l0]) / (i - l0)
    tiny = np.finfo(np.float64).tiny
    return (sta / np.maximum(lta, tiny)).astype(np.float32)


DEFAULT_SCALES_S = (0.05, 0.2, 0.8, 3.2)
"""Default filter scales in seconds (Gaussian sigma), from a P onset to a coda."""
DEFAULT_STA_LTA_S = ((1.0, 10.0),)
BAND_CYCLES = 5.0
"""Cycles per Gabor filter (its standard deviation in time is ``cycles / (2 pi f)``)."""


def seconds_to_samples(seconds, sampling_rate: float) -> tuple[float, ...]:
    """Filter scales in seconds as sigmas in samples (at least 1), sorted and distinct.

    Rounded to 1e-4 samples so names stay short; a sigma given in samples and
    the same scale given in seconds give the same features.
    """
    rate = float(sampling_rate)
    if not np.isfinite(rate) or rate <= 0:
        raise InputError(f"The sampling rate must be a positive number of Hz, got {sampling_rate!r}.")
    secs = [float(v) for v in seconds]
    if not secs or any(not np.isfinite(v) or v <= 0 for v in secs):
        raise InputError(f"Scales must be positive seconds, e.g. {DEFAULT_SCALES_S}; got {list(seconds)}.")
    return tuple(sorted({max(1.0, round(v * rate, 4)) for v in secs}))


def default_bands(sampling_rate: float) -> tuple[float, ...]:
    """Octave band centres in Hz from 0.5 Hz up to 0.4 x the sampling rate (at most 32 Hz)."""
    top = min(32.0, 0.4 * float(sampling_rate))
    bands, f = [], 0.5
    while f <= top + 1e-9:
        bands.append(f)
        f *= 2
    return tuple(bands)


def _band_radius(frequency, sampling_rate, cycles=BAND_CYCLES, truncate=4.0) -> int:
    return int(truncate * cycles / (2 * np.pi * float(frequency)) * float(sampling_rate) + 0.5)


def band_amplitude(x, frequency: float, sampling_rate: float, cycles: float = BAND_CYCLES,
                   truncate: float = 4.0) -> np.ndarray:
    """Amplitude of ``x`` ``(time,)`` in a band: ``|x * g|`` with a complex Gabor (Morlet) kernel.

    ``g(t) = exp(-t^2 / (2 s^2)) exp(2 pi i f t)``, ``s = cycles / (2 pi f)``
    seconds, cut at ``truncate * s``, scaled so a sine of amplitude A at ``f``
    gives A (neighbouring octaves: under 5 %, two octaves away: 0.1 %); the
    signal is reflected at its ends (as scipy.ndimage's ``mode="reflect"``).
    Returns float32 ``(time,)``.
    """
    from scipy.signal import oaconvolve

    r = _band_radius(frequency, sampling_rate, cycles, truncate)
    t = np.arange(-r, r + 1) / float(sampling_rate)
    sd = cycles / (2 * np.pi * frequency)
    w = np.exp(-0.5 * (t / sd) ** 2)
    g = 2 * w * np.exp(2j * np.pi * frequency * t) / w.sum()  # a sine of amplitude A gives A
    x = np.asarray(x, np.float64)
    xp = np.pad(x, r, mode="symmetric") if r < x.size else _reflect_pad(x, r)
    return np.abs(oaconvolve(xp, g[::-1], mode="valid")).astype(np.float32)


@dataclass(frozen=True)
class SignalFeatures:
    """1-D features of a signal: a :class:`FeatureSet` plus the signal families.

    Parameters
    ----------
    base : FeatureSet
        1-D filter features (``ndim=1``; sigmas in samples).
    envelope : bool
        Add the ``envelope`` family: the Hilbert envelope of the detrended
        signal, raw and Gaussian-smoothed at ``base.sigmas``.
    sta_lta : tuple of (sta_s, lta_s)
        Add the ``stalta`` family: one STA/LTA ratio per pair of window
        lengths in seconds, e.g. ``((1.0, 10.0),)``.
    sampling_rate : float
        Hz; converts the STA/LTA windows (and the detrending window) to samples.
    detrend_s : float
        The envelope, STA/LTA and band amplitudes use the signal minus its
        moving mean over this many seconds, so a DC offset or slow drift does
        not dominate.
    bands : tuple of float
        Add the ``bands`` family: the amplitude in each band, centre
        frequencies in Hz (below the Nyquist frequency), by
        :func:`band_amplitude`.
    band_sta_lta : bool
        Add the ``bandstalta`` family: the STA/LTA ratio of each band's
        amplitude for every ``sta_lta`` window pair, i.e. the band-passed
        trigger seismologists run (an event is "sudden energy in a band"
        whatever the record's absolute amplitude). Needs ``bands`` and
        ``sta_lta``.
    band_amplitudes : bool
        Output the band amplitudes themselves (default); False keeps only
        their STA/LTA ratios (``band_sta_lta``), which do not depend on the
        record's absolute amplitude.

    Feature names: ``base.names(C)`` first, then ``envelope_c0``,
    ``envelope_s4.0_c0``, ..., ``stalta_1s_10s_c0``, ``band_2Hz_c0``, ... per channel.
    """

    base: FeatureSet = field(default_factory=lambda: FeatureSet(ndim=1))
    envelope: bool = False
    sta_lta: tuple[tuple[float, float], ...] = ()
    sampling_rate: float = 1.0
    detrend_s: float = 30.0
    bands: tuple[float, ...] = ()
    band_sta_lta: bool = False
    band_amplitudes: bool = True

    def __post_init__(self):
        if self.base.ndim != 1:
            raise InputError(f"Signal features need a 1-D FeatureSet (ndim=1), got ndim={self.base.ndim}.")
        pairs = tuple((float(a), float(b)) for a, b in self.sta_lta)
        for a, b in pairs:
            if not 0 < a < b:
                raise InputError(f"STA/LTA windows must satisfy 0 < sta < lta seconds, got ({a}, {b}).")
            if round(a * self.sampling_rate) < 1:
                raise InputError(
                    f"STA window {a} s is shorter than one sample at {self.sampling_rate} Hz; use a longer one."
                )
        object.__setattr__(self, "sta_lta", pairs)
        object.__setattr__(self, "sampling_rate", float(self.sampling_rate))
        bands = tuple(float(f) for f in self.bands)
        nyquist = self.sampling_rate / 2
        if any(not np.isfinite(f) or not 0 < f < nyquist for f in bands) or len(set(bands)) != len(bands):
            raise InputError(
                f"Band centre frequencies must be distinct, positive and below the Nyquist frequency "
                f"({nyquist:g} Hz at {self.sampling_rate:g} Hz), got {list(bands)}."
            )
        object.__setattr__(self, "bands", tuple(sorted(bands)))
        object.__setattr__(self, "band_sta_lta", bool(self.band_sta_lta))
        object.__setattr__(self, "band_amplitudes", bool(self.band_amplitudes))
        if not self.band_amplitudes and not self.band_sta_lta:
            object.__setattr__(self, "bands", ())  # nothing of the bands is output
        if self.band_sta_lta and not (self.bands and self.sta_lta):
            raise InputError("band_sta_lta needs both bands (centre frequencies) and sta_lta window "
                             "pairs; give both or set band_sta_lta=False.")

    @classmethod
    def default(cls, sampling_rate: float, envelope: bool = True,
                sta_lta=((1.0, 10.0),)) -> SignalFeatures:
        """Gaussian, DoG, LoG and Hessian at 0.05, 0.2, 0.8 and 3.2 s, plus envelope and STA/LTA."""
        sigmas = sorted({max(1.0, round(s * sampling_rate, 1)) for s in (0.05, 0.2, 0.8, 3.2)})
        return cls(FeatureSet(sigmas=tuple(sigmas), ndim=1), envelope, tuple(sta_lta), sampling_rate)

    @classmethod
    def from_seconds(cls, sampling_rate: float, scales_s=DEFAULT_SCALES_S, *,
                     families=None, envelope: bool = True, sta_lta_s=DEFAULT_STA_LTA_S,
                     bands_hz=(), detrend_s: float = 30.0,
                     band_sta_lta: bool = False) -> SignalFeatures:
        """A feature spec given in physical units: scales in seconds, band centres in Hz.

        ``families``: the filter families of the base :class:`FeatureSet`
        (default all five); ``sta_lta_s``: (STA, LTA) window pairs in seconds.
        """
        kw = {} if families is None else {"families": tuple(families)}
        base = FeatureSet(sigmas=seconds_to_samples(scales_s, sampling_rate), ndim=1, **kw)
        return cls(base, bool(envelope), tuple(sta_lta_s), float(sampling_rate), float(detrend_s),
                   tuple(bands_hz), bool(band_sta_lta))

    @property
    def scales_s(self) -> tuple[float, ...]:
        """The filter scales in seconds."""
        return tuple(s / self.sampling_rate for s in self.base.sigmas)

    @property
    def families(self) -> tuple[str, ...]:
        return (self.base.families + (("envelope",) if self.envelope else ())
                + (("stalta",) if self.sta_lta else ()) + (("bands",) if self.bands else ())
                + (("bandstalta",) if self.band_sta_lta else ()))

    def _samples(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.sampling_rate)))

    @property
    def halo(self) -> int:
        """Samples of context each side so a tile's features equal the whole record's (envelope: nearly)."""
        h = self.base.halo
        if self.envelope or self.sta_lta or self.bands:
            extra = self._samples(self.detrend_s) // 2 + 1
            if self.envelope:
                extra += 2048 + self.base.halo  # Hilbert transform decays; smoothing reads further
            if self.sta_lta:
                extra += max(self._samples(b) for _, b in self.sta_lta)
            if self.bands:
                extra += _band_radius(min(self.bands), self.sampling_rate)
            h = max(h, extra)
        return h

    def _extra_per_channel(self) -> list[str]:
        names = []
        if self.envelope:
            names.append("envelope")
            names += [f"envelope_s{s}" for s in self.base.sigmas]
        for a, b in self.sta_lta:
            names.append(f"stalta_{a:g}s_{b:g}s")
        if self.band_amplitudes:
            names += [f"band_{f:g}Hz" for f in self.bands]
        if self.band_sta_lta:
            names += [f"band_{f:g}Hz_stalta_{a:g}s_{b:g}s" for f in self.bands for a, b in self.sta_lta]
        return names

    def names(self, n_channels: int = 1) -> list[str]:
        extra = self._extra_per_channel()
        return self.base.names(n_channels) + [f"{n}_c{c}" for c in range(n_channels) for n in extra]

    def n_features(self, n_channels: int = 1) -> int:
        return len(self.names(n_channels))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["base"] = self.base.to_dict()
        d["sta_lta"] = [list(p) for p in self.sta_lta]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SignalFeatures:
        return cls(FeatureSet.from_dict(d["base"]), bool(d.get("envelope", False)),
                   tuple(tuple(p) for p in d.get("sta_lta", ())), float(d.get("sampling_rate", 1.0)),
                   float(d.get("detrend_s", 30.0)), tuple(float(f) for f in d.get("bands", ())),
                   bool(d.get("band_sta_lta", False)), bool(d.get("band_amplitudes", True)))


def invariant_signal_features(sampling_rate: float, sta_lta_s=DEFAULT_STA_LTA_S) -> SignalFeatures:
    """Event-detection features that do not depend on the record's absolute amplitude.

    The sample itself, the broadband STA/LTA (``sta_lta_s`` window pairs in
    seconds, default :data:`DEFAULT_STA_LTA_S`) and
    the STA/LTA of each band's amplitude (octave bands of :func:`default_bands`):
    "sudden energy in a band", as a band-passed trigger. Earthquake amplitudes
    span orders of magnitude, so a forest trained on one event's amplitude
    features does not find a weaker one; ratios do. Measured with dense labels
    (``benchmarks/bench_quality.py``, ObsPy's Unterhaching records): held-out
    event Jaccard 0.000 -> 0.36 (3 components) and 0.03 -> 0.44 (4 stations)
    against :func:`default_signal_features`.
    """
    base = FeatureSet(sigmas=seconds_to_samples(DEFAULT_SCALES_S, sampling_rate),
                      families=("original",), ndim=1)
    return SignalFeatures(base, envelope=False, sta_lta=tuple(tuple(p) for p in sta_lta_s),
                          sampling_rate=float(sampling_rate), bands=default_bands(sampling_rate),
                          band_sta_lta=True, band_amplitudes=False)


def default_signal_features(sampling_rate: float) -> SignalFeatures:
    """The default signal features, in physical units derived from the sampling rate.

    Gaussian, DoG, LoG and Hessian at :data:`DEFAULT_SCALES_S` seconds (a
    100 Hz record gets sigmas of 5 to 320 samples), the envelope, STA/LTA
    over 1 s / 10 s, and band amplitudes at octave centres from 0.5 Hz to
    0.4 x the sampling rate (:func:`default_bands`). For event detection see
    :func:`invariant_signal_features`.
    """
    return SignalFeatures.from_seconds(sampling_rate, DEFAULT_SCALES_S, envelope=True,
                                       sta_lta_s=DEFAULT_STA_LTA_S, bands_hz=default_bands(sampling_rate))


FFT_SIGMA = 12.0
"""From this sigma (in samples) on, :func:`base_features` filters by FFT."""


def _gaussian_kernel(sigma: float, order: int, truncate: float) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian (order 0) or second-derivative (order 2) kernel."""
    r = int(truncate * sigma + 0.5)
    t = np.arange(-r, r + 1, dtype=np.float64)
    phi = np.exp(-0.5 * (t / sigma) ** 2)
    phi /= phi.sum()
    if order == 0:
        return phi
    return phi * (t * t / sigma**4 - 1.0 / sigma**2)


def base_features(x, spec: FeatureSet) -> np.ndarray:
    """The 1-D Gaussian/DoG/LoG/Hessian features of ``x`` ``(channels, time)``.

    Same values and order as :func:`active_annotator.features.compute` with
    ``channel_axis=0`` (``mode="reflect"``). Seismic scales are long (a sigma
    of 3 s at 100 Hz is a 2,561-tap kernel), so sigmas from :data:`FFT_SIGMA`
    on are filtered by overlap-add FFT convolution (:func:`scipy.signal.oaconvolve`),
    whose cost does not grow with the kernel; shorter ones use the feature engine.
    """
    from scipy.signal import oaconvolve

    x = np.asarray(x)
    if spec.ndim != 1:
        raise InputError(f"base_features needs a 1-D FeatureSet, got ndim={spec.ndim}.")
    fam = set(spec.families)
    long = [s for s in spec.sigmas if s >= FFT_SIGMA and fam - {"original"}]
    if not long:
        return compute(x, spec, channel_axis=0)
    short = tuple(s for s in spec.sigmas if s < FFT_SIGMA)
    per = spec._per_channel()
    index = {name: i for i, name in enumerate(per)}
    n_ch, n = x.shape
    out = np.empty((len(per) * n_ch, n), np.float32)
    if short:
        # DoG needs the Gaussians even when they are not requested themselves
        sub_fam = (fam - {"dog"}) | ({"gaussian"} if "dog" in fam else set())
        sub = FeatureSet(sigmas=short, families=tuple(sub_fam), ndim=1, truncate=spec.truncate)
        f_short = compute(x, sub, channel_axis=0).reshape(n_ch, -1, n)
        sub_names = sub._per_channel()
    gauss = {}
    for c in range(n_ch):
        base = c * len(per)
        row = lambda name: out[base + index[name]]  # noqa: E731
        if short:
            for j, name in enumerate(sub_names):
                if name.startswith("gaussian_"):
                    gauss[float(name[len("gaussian_s"):])] = f_short[c, j]
                if name in index:
                    row(name)[:] = f_short[c, j]
        elif "original" in fam:
            row("original")[:] = x[c]
        xc = x[c].astype(np.float64)
        for s in long:
            r = int(spec.truncate * s + 0.5)
            # scipy's "reflect" (d c b a | a b c d | d c b a) is numpy's "symmetric"
            xp = np.pad(xc, r, mode="symmetric") if r < n else _reflect_pad(xc, r)
            if fam & {"gaussian", "dog"}:
                g = oaconvolve(xp, _gaussian_kernel(s, 0, spec.truncate), mode="valid")
                gauss[s] = g
                if "gaussian" in fam:
                    row(f"gaussian_s{s}")[:] = g
            if fam & {"log", "hessian"}:
                d2 = oaconvolve(xp, _gaussian_kernel(s, 2, spec.truncate), mode="valid")
                if "log" in fam:
                    row(f"log_s{s}")[:] = d2
                if "hessian" in fam:
                    row(f"hessian0_s{s}")[:] = d2
        if "dog" in fam:
            sig = spec.sigmas
            for a, b in zip(sig[:-1], sig[1:]):
                row(f"dog_s{a}")[:] = np.asarray(gauss[a], np.float64) - gauss[b]
        gauss.clear()
    return out


def _reflect_pad(x: np.ndarray, r: int) -> np.ndarray:
    """scipy ``mode="reflect"`` padding by ``r`` samples, also when ``r`` exceeds the length."""
    n = x.size
    i = np.arange(-r, n + r)
    period = 2 * n
    i = np.mod(i, period)
    i = np.where(i >= n, period - 1 - i, i)
    return x[i]


def signal_features(data, spec: SignalFeatures) -> np.ndarray:
    """All features of a signal ``(channels, time)`` → ``(spec.n_features(C), time)`` float32.

    The base features come from :func:`active_annotator.features.compute`, in
    the order of ``spec.names(C)``.
    """
    x = np.asarray(data)
    if x.ndim == 1:
        x = x[np.newaxis]
    if x.ndim != 2:
        raise InputError(f"signal_features expects (channels, time), got shape {x.shape}.")
    base = base_features(x, spec.base)
    extra = spec._extra_per_channel()
    if not extra:
        return base
    n_ch, n = x.shape
    out = np.empty((base.shape[0] + len(extra) * n_ch, n), np.float32)
    out[: base.shape[0]] = base
    k = base.shape[0]
    width = min(n, spec._samples(spec.detrend_s))
    for c in range(n_ch):
        xc = x[c].astype(np.float64)
        xc = xc - ndi.uniform_filter1d(xc, width, mode="reflect")
        if spec.envelope:
            env = envelope(xc)
            out[k] = env
            k += 1
            smooth = FeatureSet(sigmas=spec.base.sigmas, families=("gaussian",), ndim=1,
                                truncate=spec.base.truncate)
            m = len(spec.base.sigmas)
            out[k:k + m] = base_features(env[np.newaxis], smooth)
            k += m
        for a, b in spec.sta_lta:
            out[k] = sta_lta(xc, spec._samples(a), min(spec._samples(b), max(2, n)))
            k += 1
        amps = [band_amplitude(xc, f, spec.sampling_rate) for f in spec.bands]
        if spec.band_amplitudes:
            for amp in amps:
                out[k] = amp
                k += 1
        if spec.band_sta_lta:
            for amp in amps:
                for a, b in spec.sta_lta:
                    out[k] = sta_lta(amp, spec._samples(a), min(spec._samples(b), max(2, n)))
                    k += 1
    return out


def _as_spec(features, sampling_rate) -> SignalFeatures:
    if features is None:
        return default_signal_features(sampling_rate or 1.0)
    if isinstance(features, FeatureSet):
        return SignalFeatures(features, sampling_rate=sampling_rate or 1.0)
    return features


def _signal_array(signal) -> tuple[np.ndarray, float | None]:
    if isinstance(signal, SignalRecord):
        return signal.data, signal.sampling_rate
    x = np.asarray(signal)
    if x.ndim == 1:
        x = x[np.newaxis]
    if x.ndim != 2:
        raise InputError(f"A signal is (channels, time); got shape {x.shape}.")
    return x, None


# -- classifier -----------------------------------------------------------------
class SignalClassifier(Estimator):
    """Random forest that classifies every sample of a signal ``(channels, time)``.

    Parameters
    ----------
    features : SignalFeatures or FeatureSet, optional
        Default :meth:`SignalFeatures.default` at the record's sampling rate.
    n_estimators, max_depth, min_samples_leaf, max_features, class_weight,
    random_state, n_jobs :
        As in :class:`active_annotator.classifier.PixelClassifier`.
    tile : int
        Samples per prediction tile (memory is bounded by the tile).

    Examples
    --------
    >>> rec = read_signal("station.mseed")                       # doctest: +SKIP
    >>> clf = SignalClassifier().fit(rec, labels)               # labels: (time,) ints
    >>> proba = clf.predict_proba(rec)                          # (K, time) float32
    """

    def __init__(self, features: SignalFeatures | FeatureSet | None = None, n_estimators: int = 100,
                 max_depth: int | None = None, min_samples_leaf: int = 1, max_features="sqrt",
                 class_weight: str | None = None, random_state: int | None = 0, n_jobs: int = -1,
                 tile: int = 1 << 18):
        self.features = features
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.tile = tile

    def _tiles(self, n: int, spec: SignalFeatures, wanted=None):
        """(outer, inner) slices of tiles; ``wanted``: bool (time,) — only tiles touching it."""
        for (t,) in tile_slices((n,), (int(self.tile),)):
            if wanted is not None and not wanted[t].any():
                continue
            (outer,), (inner,) = padded((t,), (n,), spec.halo)
            yield t, outer, inner

    def training_data(self, signal, labels, on_progress=None, should_stop=None):
        """Features ``(n_labelled, n_features)`` and classes at the labelled samples."""
        x, sr = _signal_array(signal)
        spec = _as_spec(self.features, sr)
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[0] == 1:
            labels = labels[0]
        if labels.shape != (x.shape[1],):
            raise LabelError(
                f"Labels have shape {labels.shape}; a signal of {x.shape[1]} samples needs one "
                f"label per sample, shape ({x.shape[1]},), shared by all channels."
            )
        if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
            raise LabelError(f"Labels must be integers (0 = unlabelled), got {labels.dtype}.")
        mask = labels > 0
        if not mask.any():
            raise LabelError("There are no labels yet: mark spans of at least two classes before training.")
        tiles = list(self._tiles(x.shape[1], spec, mask))
        Xs, ys = [], []
        for i, (t, outer, inner) in enumerate(tiles):
            if should_stop is not None and should_stop():
                raise Cancelled("Training was cancelled.")
            f = signal_features(x[:, outer], spec)[:, inner]
            m = mask[t]
            Xs.append(f[:, m].T)
            ys.append(labels[t][m])
            if on_progress:
                on_progress(i + 1, len(tiles))
        return np.concatenate(Xs), np.concatenate(ys), spec

    def fit(self, signal, labels, on_progress: ProgressCallback | None = None,
            should_stop: StopCallback | None = None) -> SignalClassifier:
        """Train on the labelled samples.

        Parameters
        ----------
        signal : SignalRecord or array ``(channels, time)`` (or ``(time,)``)
        labels : integer array ``(time,)``; 0 = unlabelled
        """
        from sklearn.ensemble import RandomForestClassifier

        from .forest import Forest

        x, _ = _signal_array(signal)
        X, y, spec = self.training_data(signal, labels, on_progress, should_stop)
        classes = np.unique(y)
        if classes.size < 2:
            raise LabelError(
                f"Only class {classes[0]} is labelled; mark spans of at least two classes "
                "(e.g. 1 = noise, 2 = earthquake)."
            )
        rf = RandomForestClassifier(
            n_estimators=int(self.n_estimators), max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
            class_weight=self.class_weight, random_state=self.random_state, n_jobs=self.n_jobs,
        )
        rf.fit(X, y)
        self.features_ = spec
        self.classes_ = rf.classes_
        self.n_channels_in_ = int(x.shape[0])
        self.n_features_in_ = int(X.shape[1])
        self.feature_names_in_ = spec.names(x.shape[0])
        self.labels_dtype_ = np.asarray(labels).dtype
        self.forest_ = Forest.from_sklearn(rf)
        self.feature_importances_ = rf.feature_importances_.astype(np.float64)
        self.n_training_samples_ = int(X.shape[0])
        return self

    def _check(self, x):
        if not hasattr(self, "forest_"):
            raise NotFittedError("This SignalClassifier is not trained yet; call fit(signal, labels) first.")
        if x.shape[0] != self.n_channels_in_:
            from .errors import ModelMismatchError

            raise ModelMismatchError(
                f"The model was trained on {self.n_channels_in_} channel(s), this signal has "
                f"{x.shape[0]}. Use a record with the same channels, or retrain."
            )

    def predict_proba(self, signal, on_progress: ProgressCallback | None = None,
                      should_stop: StopCallback | None = None) -> np.ndarray:
        """Class probabilities ``(n_classes, time)`` float32, rows in ``classes_`` order."""
        x, _ = _signal_array(signal)
        self._check(x)
        spec = self.features_
        out = np.empty((len(self.classes_), x.shape[1]), np.float32)
        tiles = list(self._tiles(x.shape[1], spec))
        for i, (t, outer, inner) in enumerate(tiles):
            if should_stop is not None and should_stop():
                raise Cancelled("Prediction was cancelled.")
            f = signal_features(x[:, outer], spec)[:, inner]
            out[:, t] = self.forest_.predict_proba(np.ascontiguousarray(f)).T
            if on_progress:
                on_progress(i + 1, len(tiles))
        return out

    def predict(self, signal, on_progress=None, should_stop=None) -> np.ndarray:
        """Class of every sample, ``(time,)``, in the labels' dtype."""
        p = self.predict_proba(signal, on_progress, should_stop)
        return self.classes_[np.argmax(p, axis=0)].astype(self.labels_dtype_)

    def save(self, path) -> Path:
        """Save to a safe model file (zip of ``.npy`` arrays + JSON, never pickle; suffix ``.aasignal``)."""
        from .persistence import _package_version, _write_npz

        if not hasattr(self, "forest_"):
            raise NotFittedError("Train the SignalClassifier before saving it.")
        path = Path(path)
        if path.suffix != MODEL_SUFFIX:
            path = path.with_name(path.name + MODEL_SUFFIX)
        params = {k: v for k, v in self.get_params().items() if k != "features"}
        meta = {
            "format": MODEL_FORMAT, "schema_version": 1, "package_version": _package_version(),
            "features": self.features_.to_dict(), "classes": [int(c) for c in self.classes_],
            "labels_dtype": np.dtype(self.labels_dtype_).str, "n_channels": self.n_channels_in_,
            "n_features": self.n_features_in_, "feature_names": list(self.feature_names_in_),
            "n_training_samples": self.n_training_samples_, "params": params,
        }
        arrays = self.forest_.arrays()
        arrays["importances"] = np.asarray(self.feature_importances_, np.float64)
        return _write_npz(path, meta, arrays)

    @classmethod
    def load(cls, path) -> SignalClassifier:
        """Load a file written by :meth:`save`; every index is validated, nothing is unpickled."""
        import json

        from .errors import ModelFileError
        from .forest import Forest
        from .persistence import _read_npz

        path = Path(path)
        names = ("meta", "feature", "threshold", "left", "right", "value", "roots", "importances")
        a = _read_npz(path, names, "signal-classifier")
        try:
            from .persistence import _meta_bytes

            meta = json.loads(_meta_bytes(path, a["meta"]).decode("utf-8"))
            if meta.get("format") != MODEL_FORMAT or meta.get("schema_version") != 1:
                raise ModelFileError(
                    f"{str(path)!r} is not a signal-classifier file of schema 1; train one with "
                    "`active-annotator signal-train` (pixel classifiers load with load_model)."
                )
            spec = SignalFeatures.from_dict(meta["features"])
            n_ch, n_feat = int(meta["n_channels"]), int(meta["n_features"])
            classes = np.asarray([int(c) for c in meta["classes"]])
            dtype = np.dtype(meta["labels_dtype"])
        except ModelFileError:
            raise
        except (ValueError, KeyError, TypeError, AnnotatorErrorBase) as e:
            raise ModelFileError(f"{str(path)!r}: invalid metadata ({e}).") from None
        if n_feat != spec.n_features(n_ch) or not np.issubdtype(dtype, np.integer):
            raise ModelFileError(f"{str(path)!r}: feature count or label type does not match its feature set.")
        forest = Forest(feature=a["feature"], threshold=a["threshold"], left=a["left"], right=a["right"],
                        value=a["value"], roots=a["roots"], n_features=n_feat).validate()
        if forest.n_classes != classes.size:
            raise ModelFileError(f"{str(path)!r}: class list does not match the forest's outputs.")
        from .persistence import _check_classes, _check_file_params

        _check_classes(path, classes, dtype)
        params = _check_file_params(path, meta.get("params", {}), set(cls.param_names()) - {"features"})
        clf = cls(spec, **params)
        clf.features_, clf.classes_ = spec, classes.astype(dtype)
        clf.n_channels_in_, clf.n_features_in_ = n_ch, n_feat
        clf.feature_names_in_ = spec.names(n_ch)
        clf.labels_dtype_ = dtype
        clf.forest_ = forest
        clf.feature_importances_ = np.asarray(a["importances"], np.float64)
        clf.n_training_samples_ = meta.get("n_training_samples")
        return clf

    def feature_importances(self) -> dict[str, float]:
        """Impurity-based importance of each named feature, largest first."""
        order = np.argsort(self.feature_importances_)[::-1]
        return {self.feature_names_in_[i]: float(self.feature_importances_[i]) for i in order}


# -- suggestions ------------------------------------------------------------------
def suggest_windows(uncertainty, labels=None, width: int = 1000, step: int | None = None,
                    strategy: str | None = None, n: int = 10, features=None, seed: int | None = 0,
                    proba=None, **kwargs):
    """Windows of a record ranked by an active-learning strategy.

    Parameters
    ----------
    uncertainty : float array ``(time,)``
        Per-sample uncertainty, e.g. ``active_annotator.uncertainty.entropy(proba)``.
    labels : int array ``(time,)``, optional
        Labelled samples count as certain; fully labelled windows are skipped.
    width, step : int
        Window length and hop in samples (``step`` defaults to ``width // 2``).
    strategy : str, optional
        See :data:`active_annotator.sampling.STRATEGIES`; default
        :data:`active_annotator.sampling.DEFAULT_STRATEGY`.
    n : int
        Number of windows.
    proba : float array ``(n_classes, time)``, optional
        Class probabilities; needed by ``clasp`` (which stratifies by the
        predicted class) and used instead of ``uncertainty`` when given.
    features : float array ``(n_features, time)``, optional
        Per-sample descriptors (e.g. :func:`signal_features`), needed by the
        ``diversity`` and ``cluster`` strategies.
    **kwargs :
        Passed to :func:`active_annotator.sampling.suggest` (``aggregate``,
        ``fraction``, ``distance_scale``, ...).

    Returns
    -------
    list of :class:`active_annotator.sampling.Suggestion`; each
    ``suggestion.candidate.slices[0]`` is the window's sample range.
    """
    from . import candidates as cand
    from .sampling import DEFAULT_STRATEGY, suggest

    strategy = strategy or DEFAULT_STRATEGY
    u = np.asarray(uncertainty, np.float32)
    if u.ndim != 1:
        raise InputError(f"uncertainty must be per sample, shape (time,), got {u.shape}.")
    width = int(width)
    cands = cand.signal_windows(u.shape[0], width, step if step is not None else max(1, width // 2))
    if features is not None:
        f = np.asarray(features)
        if f.ndim == 1:
            f = f[np.newaxis]
        cands = cand.describe(cands, f)
    lab = None if labels is None else np.asarray(labels).reshape(u.shape)
    if proba is not None:
        p = np.asarray(proba, np.float32)
        if p.ndim != 2 or p.shape[1] != u.shape[0]:
            raise InputError(f"proba must be (n_classes, time) with {u.shape[0]} samples, got {p.shape}.")
        return suggest(cands, None, lab, strategy=strategy, n=n, seed=seed, proba=p, **kwargs)
    return suggest(cands, u, lab, strategy=strategy, n=n, seed=seed, **kwargs)


__all__ = [
    "SignalRecord", "read_signal", "write_signal", "is_signal_array", "envelope", "sta_lta",
    "SignalFeatures", "signal_features", "base_features", "SignalClassifier", "suggest_windows",
    "runs", "OBSPY_HINT", "read_labels", "spans_table", "default_signal_features",
    "seconds_to_samples", "band_amplitude", "default_bands",
]
