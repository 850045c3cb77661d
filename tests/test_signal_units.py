"""Signal features in physical units: scales in seconds, band amplitudes in Hz."""

import numpy as np
import pytest

from active_annotator.errors import InputError
from active_annotator.features import FeatureSet
from active_annotator.signals import (
    SignalClassifier,
    SignalFeatures,
    band_amplitude,
    default_bands,
    default_signal_features,
    seconds_to_samples,
    signal_features,
)


def _record(rate=100.0, n=6000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = rng.normal(0, 0.2, (2, n))
    burst = (t > 20) & (t < 26)
    x[:, burst] += np.sin(2 * np.pi * 6.0 * t[burst]) * np.hanning(burst.sum())
    return x.astype(np.float32), burst


def test_scales_in_seconds_equal_the_same_scales_in_samples():
    x, _ = _record()
    secs = SignalFeatures.from_seconds(100.0, (0.05, 0.2, 0.8, 3.2), envelope=True,
                                       sta_lta_s=((1.0, 10.0),), bands_hz=(1.0, 4.0))
    samples = SignalFeatures(FeatureSet(sigmas=(5.0, 20.0, 80.0, 320.0), ndim=1), True,
                             ((1.0, 10.0),), 100.0, bands=(1.0, 4.0))
    assert secs == samples
    assert secs.names(2) == samples.names(2)
    assert np.array_equal(signal_features(x, secs), signal_features(x, samples))
    assert secs.scales_s == pytest.approx((0.05, 0.2, 0.8, 3.2))
    # the same seconds at another rate are other sample counts
    assert seconds_to_samples((0.05, 3.2), 40.0) == (2.0, 128.0)


def test_default_signal_features_reach_several_seconds_at_100_hz():
    spec = default_signal_features(100.0)
    assert spec.base.sigmas == (5.0, 20.0, 80.0, 320.0) and max(spec.scales_s) >= 3
    assert spec.bands == (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    assert spec.sta_lta == ((1.0, 10.0),) and spec.envelope
    assert default_bands(20.0) == (0.5, 1.0, 2.0, 4.0, 8.0)  # below 0.4 x 20 Hz
    assert "band_4Hz_c0" in spec.names(1)
    # a classifier without a feature spec uses these at the record's rate
    x, burst = _record(n=4000)
    labels = np.zeros(4000, np.uint8)
    labels[:1500] = 1
    labels[2100:2500] = 2
    from active_annotator.signals import SignalRecord

    clf = SignalClassifier(n_estimators=10, n_jobs=1).fit(SignalRecord(x, 100.0), labels)
    assert clf.features_ == default_signal_features(100.0)


def test_band_amplitude_has_unit_gain_at_its_centre_and_rejects_other_bands():
    rate = 100.0
    t = np.arange(4000) / rate
    x = 3.0 * np.sin(2 * np.pi * 4.0 * t)
    mid = slice(1000, 3000)
    assert np.allclose(band_amplitude(x, 4.0, rate)[mid], 3.0, rtol=0.01)
    for other in (0.5, 1.0, 16.0):  # two octaves or more away
        assert band_amplitude(x, other, rate)[mid].max() < 0.01 * 3.0


def test_band_features_of_a_tile_with_halo_equal_the_whole_record():
    x, _ = _record(n=5000)
    spec = SignalFeatures.from_seconds(100.0, (0.05, 0.2), envelope=False, sta_lta_s=(),
                                       bands_hz=(1.0, 8.0))
    whole = signal_features(x, spec)
    lo, hi = 2000, 3000
    h = spec.halo
    part = signal_features(x[:, lo - h:hi + h], spec)[:, h:h + (hi - lo)]
    assert np.allclose(part, whole[:, lo:hi], atol=1e-4 * np.abs(whole).max())


def test_bands_above_nyquist_and_bad_seconds_are_refused():
    with pytest.raises(InputError, match="Nyquist"):
        SignalFeatures(FeatureSet(sigmas=(2.0,), ndim=1), sampling_rate=20.0, bands=(12.0,))
    with pytest.raises(InputError, match="seconds"):
        seconds_to_samples((0.0, 1.0), 100.0)
    with pytest.raises(InputError, match="sampling rate"):
        seconds_to_samples((1.0,), 0)
