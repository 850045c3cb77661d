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


def test_invariant_features_do_not_depend_on_amplitude_and_reload(tmp_path):
    from active_annotator.signals import invariant_signal_features, sta_lta

    rate = 50.0
    spec = invariant_signal_features(rate)
    assert "bandstalta" in spec.families and "bands" not in spec.names(1)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 3000))
    x[0, 1500:1650] += 8 * np.sin(2 * np.pi * 8.0 * np.arange(150) / rate)  # an 8 Hz burst
    f1 = signal_features(x, spec)
    f2 = signal_features(1000.0 * x, spec)
    names = spec.names(1)
    ratio = [i for i, n in enumerate(names) if "stalta" in n]
    assert len(ratio) == 1 + len(default_bands(rate))
    np.testing.assert_allclose(f1[ratio], f2[ratio], rtol=1e-4, atol=1e-5)
    # the 8 Hz band's ratio is the STA/LTA of that band's amplitude, and peaks in the burst
    k = names.index("band_8Hz_stalta_1s_10s_c0")
    xc = x[0] - __import__("scipy.ndimage", fromlist=["x"]).uniform_filter1d(x[0], 1500, mode="reflect")
    np.testing.assert_allclose(f1[k], sta_lta(band_amplitude(xc, 8.0, rate), 50, 500), rtol=1e-5, atol=1e-6)
    assert 1500 <= int(np.argmax(f1[k])) <= 1700
    labels = np.zeros(3000, np.int64)
    labels[:1000], labels[1520:1640] = 1, 2
    from active_annotator.signals import SignalRecord

    rec = SignalRecord(x.astype(np.float32), rate)
    clf = SignalClassifier(spec, n_estimators=10, random_state=0).fit(rec, labels)
    path = clf.save(tmp_path / "m")
    back = SignalClassifier.load(path)
    assert back.features_ == spec
    np.testing.assert_array_equal(back.predict_proba(rec), clf.predict_proba(rec))


def test_band_sta_lta_needs_bands_and_windows():
    with pytest.raises(InputError, match="band_sta_lta"):
        SignalFeatures(FeatureSet(ndim=1), sta_lta=((1.0, 10.0),), sampling_rate=50.0, band_sta_lta=True)


def test_cli_signal_train_invariant_features(tmp_path):
    from active_annotator.cli import main

    rng = np.random.default_rng(0)
    x = rng.normal(size=3000).astype(np.float32)
    x[1500:1650] += 8 * np.sin(2 * np.pi * 8.0 * np.arange(150) / 50.0).astype(np.float32)
    np.save(tmp_path / "sig.npy", x[None])
    lab = np.zeros(3000, np.int64)
    lab[:1000], lab[1520:1640] = 1, 2
    np.save(tmp_path / "lab.npy", lab)
    assert main(["signal-train", str(tmp_path / "sig.npy"), str(tmp_path / "lab.npy"), "--sampling-rate", "50",
                 "-o", str(tmp_path / "m"), "--n-estimators", "5", "--features", "invariant"]) == 0
    from active_annotator.signals import invariant_signal_features

    assert SignalClassifier.load(tmp_path / "m.aasignal").features_ == invariant_signal_features(50.0)
