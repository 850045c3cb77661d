"""Core tests for signals: 1-D features against scipy/ObsPy, readers, classifier, suggestions."""

import datetime as dt
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import signal as sps

from active_annotator import features
from active_annotator.errors import InputError, LabelError
from active_annotator.features import FeatureSet
from active_annotator.signals import (
    SignalClassifier,
    SignalFeatures,
    SignalRecord,
    base_features,
    envelope,
    read_signal,
    runs,
    signal_features,
    sta_lta,
    suggest_windows,
    write_signal,
)
from active_annotator.uncertainty import entropy


def _noise(n, seed=0, channels=3):
    return np.random.default_rng(seed).normal(size=(channels, n)).astype(np.float32)


# -- features ---------------------------------------------------------------------
def test_1d_features_match_scipy_gaussian_derivatives_per_channel():
    x = _noise(5000, channels=2).cumsum(axis=1)  # a random walk: all scales matter
    spec = FeatureSet(sigmas=(1.0, 3.0, 9.0), families=("original", "gaussian", "dog", "log", "hessian"), ndim=1)
    f = features.compute(x, spec, channel_axis=0)
    names = spec.names(2)
    assert f.shape == (len(names), 5000) and f.dtype == np.float32
    for c in range(2):
        xc = x[c].astype(np.float64)
        ref = {"original": xc}
        for s in spec.sigmas:
            ref[f"gaussian_s{s}"] = ndi.gaussian_filter1d(xc, s, mode="reflect", truncate=4.0)
            ref[f"log_s{s}"] = ndi.gaussian_filter1d(xc, s, order=2, mode="reflect", truncate=4.0)
            ref[f"hessian0_s{s}"] = ref[f"log_s{s}"]  # 1-D Hessian = second derivative
        for a, b in zip(spec.sigmas, spec.sigmas[1:]):
            ref[f"dog_s{a}"] = ref[f"gaussian_s{a}"] - ref[f"gaussian_s{b}"]
        for key, want in ref.items():
            got = f[names.index(f"{key}_c{c}")]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=key)


@pytest.mark.parametrize("n", [300, 5000])  # shorter and longer than the largest kernel
def test_fft_path_for_seismic_scales_matches_scipy_and_the_feature_engine(n):
    x = _noise(n, seed=4, channels=2).cumsum(axis=1)
    spec = FeatureSet(sigmas=(2.0, 16.0, 60.0), ndim=1)  # 16 and 60 go through the FFT
    got = base_features(x, spec)
    np.testing.assert_allclose(got, features.compute(x, spec, channel_axis=0), rtol=1e-4,
                               atol=2e-5 * np.abs(got).max())
    names = spec.names(2)
    for c in range(2):
        for s in (16.0, 60.0):
            ref = ndi.gaussian_filter1d(x[c].astype(np.float64), s, mode="reflect")
            np.testing.assert_allclose(got[names.index(f"gaussian_s{s}_c{c}")], ref, rtol=1e-5,
                                       atol=1e-5 * np.abs(ref).max())
            ref2 = ndi.gaussian_filter1d(x[c].astype(np.float64), s, order=2, mode="reflect")
            np.testing.assert_allclose(got[names.index(f"log_s{s}_c{c}")], ref2, rtol=1e-4,
                                       atol=1e-5 * np.abs(ref2).max())


def test_fft_path_equals_the_feature_engine_for_every_family_combination():
    import itertools

    x = _noise(3000, seed=5, channels=2).cumsum(axis=1)
    for sigmas in [(2.5, 10.0, 40.0, 160.0), (20.0, 40.0), (1.0, 2.0, 4.0)]:
        for r in range(1, len(features.DEFAULT_FAMILIES) + 1):  # 'deep' is 2-D/3-D only
            for fams in itertools.combinations(features.DEFAULT_FAMILIES, r):
                spec = FeatureSet(sigmas=sigmas, families=fams, ndim=1)
                want = features.compute(x, spec, channel_axis=0)
                got = base_features(x, spec)
                np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max(),
                                           err_msg=f"{sigmas} {fams}")


def test_envelope_matches_scipy_hilbert_and_recovers_an_am_envelope():
    t = np.arange(4096) / 100.0
    amp = 1.0 + 0.5 * np.sin(2 * np.pi * 0.2 * t)
    x = amp * np.cos(2 * np.pi * 12.0 * t)
    np.testing.assert_allclose(envelope(x), np.abs(sps.hilbert(x)), rtol=1e-4, atol=1e-4)
    inner = slice(200, -200)  # edges of a finite Hilbert transform ring
    np.testing.assert_allclose(envelope(x)[inner], amp[inner], atol=0.02)


def test_sta_lta_matches_obspy_classic_sta_lta():
    trigger = pytest.importorskip("obspy.signal.trigger")
    x = np.random.default_rng(1).normal(size=6000)
    x[3000:3400] *= 8  # an event
    ours = sta_lta(x, 50, 1000)
    ref = trigger.classic_sta_lta(x, 50, 1000)
    np.testing.assert_allclose(ours[999:], ref[999:], rtol=1e-6)
    assert ours[3050] > 10 * ours[2900]


def test_signal_feature_names_families_and_tiles_equal_the_whole_record():
    sr = 50.0
    spec = SignalFeatures(FeatureSet(sigmas=(2.0, 8.0), ndim=1), envelope=True, sta_lta=((0.5, 5.0),),
                          sampling_rate=sr)
    assert spec.families[-2:] == ("envelope", "stalta")
    names = spec.names(2)
    assert "envelope_c1" in names and "envelope_s8.0_c0" in names and "stalta_0.5s_5s_c1" in names
    x = _noise(20000, channels=2)
    whole = signal_features(x, spec)
    assert whole.shape == (len(names), 20000)
    # a crop enlarged by the halo gives the whole record's features inside the crop
    a, b = 8000, 9000
    lo, hi = a - spec.halo, b + spec.halo
    part = signal_features(x[:, lo:hi], spec)[:, a - lo:b - lo]
    np.testing.assert_allclose(part, whole[:, a:b], rtol=1e-3, atol=1e-3 * np.abs(whole).max())


def test_signal_features_reject_bad_windows_with_the_fix():
    with pytest.raises(InputError, match="sta < lta"):
        SignalFeatures(sta_lta=((10.0, 1.0),), sampling_rate=100.0)
    with pytest.raises(InputError, match="ndim=1"):
        SignalFeatures(FeatureSet(ndim=2))


# -- reading ---------------------------------------------------------------------------
def test_reader_round_trips_a_miniseed_file_written_by_obspy(tmp_path):
    obspy = pytest.importorskip("obspy")
    rng = np.random.default_rng(2)
    start = obspy.UTCDateTime("2024-03-01T12:34:56.250000Z")
    traces = []
    for cha in ("HHE", "HHZ", "HHN"):  # written out of order on purpose
        data = rng.integers(-5000, 5000, 4321).astype(np.int32)
        traces.append(obspy.Trace(data, header={"network": "XX", "station": "TEST", "location": "00",
                                                "channel": cha, "sampling_rate": 200.0, "starttime": start}))
    path = tmp_path / "record.mseed"
    obspy.Stream(traces).write(str(path), format="MSEED")
    rec = read_signal(path)
    assert rec.channels == ("XX.TEST.00.HHZ", "XX.TEST.00.HHN", "XX.TEST.00.HHE")  # Z, N, E
    assert rec.sampling_rate == 200.0
    assert rec.starttime == dt.datetime(2024, 3, 1, 12, 34, 56, 250000, tzinfo=dt.timezone.utc)
    assert rec.data.dtype == np.float32 and rec.data.shape == (3, 4321)
    by_channel = {tr.stats.channel: tr.data for tr in traces}
    for row, cha in zip(rec.data, ("HHZ", "HHN", "HHE")):
        np.testing.assert_array_equal(row, by_channel[cha].astype(np.float32))
    # and back through our writer
    again = read_signal(write_signal(rec, tmp_path / "again.mseed"))
    np.testing.assert_array_equal(again.data, rec.data)
    assert (again.channels, again.sampling_rate, again.starttime) == (rec.channels, 200.0, rec.starttime)


def test_reader_reads_sac_and_merges_gappy_traces(tmp_path):
    obspy = pytest.importorskip("obspy")
    tr = obspy.Trace(np.arange(1000, dtype=np.float32), header={"station": "S", "channel": "BHZ",
                                                                 "sampling_rate": 20.0})
    tr.write(str(tmp_path / "one.sac"), format="SAC")
    rec = read_signal(tmp_path / "one.sac")
    assert rec.data.shape == (1, 1000) and rec.sampling_rate == 20.0
    a, b = tr.copy(), tr.copy()
    a.trim(a.stats.starttime, a.stats.starttime + 10)
    b.trim(b.stats.starttime + 20, b.stats.endtime)
    obspy.Stream([a, b]).write(str(tmp_path / "gap.mseed"), format="MSEED")
    merged = read_signal(tmp_path / "gap.mseed")
    assert merged.n_samples == 1000  # gap interpolated, one channel
    np.testing.assert_allclose(merged.data[0], np.arange(1000), atol=1e-3)


def test_reader_reads_npy_either_orientation_and_csv_with_time_column(tmp_path):
    x = _noise(800, channels=3)
    np.save(tmp_path / "cf.npy", x)
    np.save(tmp_path / "tf.npy", x.T)
    for name in ("cf.npy", "tf.npy"):
        rec = read_signal(tmp_path / name, sampling_rate=50.0)
        np.testing.assert_array_equal(rec.data, x)
        assert rec.sampling_rate == 50.0 and rec.starttime is None
    write_signal(SignalRecord(x, 25.0, channels=("Z", "N", "E")), tmp_path / "t.csv")
    rec = read_signal(tmp_path / "t.csv")
    assert rec.channels == ("Z", "N", "E")
    assert rec.sampling_rate == pytest.approx(25.0)
    np.testing.assert_allclose(rec.data, x, rtol=1e-6)


def test_reader_errors_say_the_fix(tmp_path, monkeypatch):
    np.save(tmp_path / "image.npy", np.zeros((300, 300)))
    with pytest.raises(InputError, match="channels, time"):
        read_signal(tmp_path / "image.npy")
    (tmp_path / "x.mseed").write_bytes(b"not a seismogram")
    monkeypatch.setitem(sys.modules, "obspy", None)  # as if ObsPy were not installed
    with pytest.raises(InputError, match=r'pip install "napari-active-annotator\[signals\]"'):
        read_signal(tmp_path / "x.mseed")


# -- classifier -------------------------------------------------------------------------
def _tremor_record():
    """Noise with loud 10 Hz bursts and 2 Hz tremor spans, 100 Hz, 120 s.

    Labels: noise and one tremor span as class 1, the first burst and a second
    tremor span as class 2: the tremor is labelled both ways, so the third,
    unlabelled tremor span (100-110 s) is the known ambiguous place.
    """
    sr, n = 100.0, 12000
    rng = np.random.default_rng(3)
    t = np.arange(n) / sr
    x = rng.normal(size=(3, n))
    truth = np.ones(n, np.uint8)
    for a in (2000, 8000):
        x[:, a:a + 1000] += 8 * np.sin(2 * np.pi * 10 * t[a:a + 1000]) * np.array([[1], [0.7], [0.5]])
        truth[a:a + 1000] = 2
    for a in (4000, 6000, 10000):
        x[:, a:a + 1000] += 3 * np.sin(2 * np.pi * 2 * t[a:a + 1000])
    labels = np.zeros(n, np.uint8)
    labels[0:1500] = 1
    labels[4000:5000] = 1
    labels[2000:3000] = 2
    labels[6000:7000] = 2
    return SignalRecord(x, sr, channels=("Z", "N", "E")), labels, truth


def test_classifier_labels_every_sample_and_separates_clear_classes():
    rec, labels, truth = _tremor_record()
    spec = SignalFeatures(FeatureSet(sigmas=(5.0, 20.0, 80.0), ndim=1), envelope=True,
                          sta_lta=((0.5, 5.0),), sampling_rate=rec.sampling_rate)
    clf = SignalClassifier(spec, n_estimators=30, tile=3000).fit(rec, labels)
    assert clf.n_features_in_ == spec.n_features(3) and len(clf.feature_names_in_) == clf.n_features_in_
    proba = clf.predict_proba(rec)
    assert proba.shape == (2, rec.n_samples) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(0), 1.0, atol=1e-5)
    pred = clf.predict(rec)
    # the unlabelled burst (80-90 s) and unlabelled noise (115-120 s) come out right
    assert (pred[8100:8900] == 2).mean() > 0.95
    assert (pred[11100:12000] == 1).mean() > 0.95
    # tiles of 3000 samples give the same answer as one tile
    whole = SignalClassifier(spec, n_estimators=30, tile=1 << 18).fit(rec, labels).predict_proba(rec)
    # (the envelope of a tile differs from the whole record's in the last digits, which
    # can flip a few trees' votes, never the classes of more than a handful of samples)
    assert np.abs(whole - proba).max() < 0.2
    assert (whole.argmax(0) == proba.argmax(0)).mean() > 0.995


def test_classifier_errors_say_the_fix():
    rec, labels, _ = _tremor_record()
    with pytest.raises(LabelError, match="one label per sample"):
        SignalClassifier().fit(rec, labels[:-1])
    with pytest.raises(LabelError, match="at least two classes"):
        SignalClassifier().fit(rec, np.where(labels == 2, 0, labels).astype(np.uint8))


def test_suggestions_rank_the_ambiguous_span_first():
    rec, labels, _ = _tremor_record()
    spec = SignalFeatures(FeatureSet(sigmas=(5.0, 20.0, 80.0), ndim=1), envelope=True,
                          sampling_rate=rec.sampling_rate)
    proba = SignalClassifier(spec, n_estimators=50).fit(rec, labels).predict_proba(rec)
    u = entropy(proba)
    for strategy in ("uncertainty", "hybrid"):
        got = suggest_windows(u, labels, width=1000, step=1000, strategy=strategy, n=3, aggregate="mean")
        first = got[0].candidate.slices[0]
        assert (first.start, first.stop) == (10000, 11000), (strategy, got)
    # fully labelled windows are never suggested
    got = suggest_windows(u, labels, width=1000, step=1000, strategy="uncertainty", n=12)
    assert all(labels[s.candidate.slices[0]].min() == 0 for s in got)
    # diversity needs descriptors: per-sample features work
    div = suggest_windows(u, labels, width=1000, step=1000, strategy="diversity", n=3, features=proba)
    assert len(div) == 3


# -- drawing helpers ---------------------------------------------------------------------
def test_runs_lists_labelled_spans():
    assert runs(np.array([0, 1, 1, 0, 2, 2, 2, 0])) == [(1, 3, 1), (4, 7, 2)]


# -- model files and the command line ---------------------------------------------------------
def test_model_file_round_trip_and_refuses_other_files(tmp_path):
    from active_annotator.errors import ModelFileError

    rec, labels, _ = _tremor_record()
    spec = SignalFeatures(FeatureSet(sigmas=(5.0, 20.0), ndim=1), envelope=True, sta_lta=((0.5, 5.0),),
                          sampling_rate=rec.sampling_rate)
    clf = SignalClassifier(spec, n_estimators=10).fit(rec, labels)
    path = clf.save(tmp_path / "m")
    assert path.suffix == ".aasignal"
    back = SignalClassifier.load(path)
    assert back.features_ == spec and back.feature_names_in_ == clf.feature_names_in_
    np.testing.assert_array_equal(back.predict_proba(rec), clf.predict_proba(rec))
    (tmp_path / "junk.aasignal").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ModelFileError):
        SignalClassifier.load(tmp_path / "junk.aasignal")


def test_cli_signal_train_and_predict_from_spans_csv(tmp_path, capsys):
    from active_annotator.cli import main

    rec, labels, _ = _tremor_record()
    write_signal(rec, tmp_path / "rec.csv")
    (tmp_path / "spans.csv").write_text("start_s,end_s,class\n0,15,1\n20,30,2\n")
    assert main(["signal-train", str(tmp_path / "rec.csv"), str(tmp_path / "spans.csv"),
                 "-o", str(tmp_path / "model"), "--n-estimators", "10", "--scales", "0.05,0.2,0.8"]) == 0
    assert (tmp_path / "model.aasignal").is_file()
    assert main(["signal-predict", str(tmp_path / "model.aasignal"), str(tmp_path / "rec.csv"),
                 "-o", str(tmp_path / "out"), "--labels", str(tmp_path / "spans.csv"), "--window", "10"]) == 0
    pred = np.load(tmp_path / "out" / "prediction.npy")
    assert pred.shape == (12000,) and (pred[8100:8900] == 2).mean() > 0.9
    spans = (tmp_path / "out" / "spans.csv").read_text().splitlines()
    assert spans[0] == "start_s,end_s,class" and len(spans) > 2
    sug = (tmp_path / "out" / "suggestions.csv").read_text().splitlines()
    assert sug[0].startswith("rank,start_s,end_s") and len(sug) == 11
    assert "wrote" in capsys.readouterr().out
