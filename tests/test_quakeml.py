"""QuakeML written from predicted event windows reads back with obspy.read_events with the right
times, stations and classes; the CSV beside it says the same."""

import csv
import datetime as dt
import json

import numpy as np
import pytest

obspy = pytest.importorskip("obspy")

from active_annotator.errors import InputError  # noqa: E402
from active_annotator.io.quakeml import (  # noqa: E402
    CSV_COLUMNS,
    catalog_from_prediction,
    catalog_from_predictions,
    event_windows,
    write_csv,
    write_quakeml,
)
from active_annotator.signals import SignalRecord  # noqa: E402

START = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
NAMES = {1: "noise", 2: "earthquake", 3: "tremor"}


def _record(station="RJOB", n=10_000, sr=100.0):
    data = np.random.default_rng(0).normal(size=(3, n)).astype(np.float32)
    return SignalRecord(data, sr, START, (f"BW.{station}..EHE", f"BW.{station}..EHN", f"BW.{station}..EHZ"),
                        station)


def _prediction(n=10_000):
    pred = np.ones(n, np.uint8)  # noise
    pred[1234:2000] = 2  # earthquake from 12.34 s to 20.00 s
    pred[5000:5600] = 3  # tremor 50.00 .. 56.00 s
    pred[8000:8003] = 2  # a 0.03 s blip
    return pred


def test_quakeml_reads_back_with_times_stations_and_classes(tmp_path):
    rec, pred = _record(), _prediction()
    cat = catalog_from_prediction(rec, pred, class_names=NAMES, min_duration_s=0.1)
    path = write_quakeml(cat, tmp_path / "picks.xml")
    back = obspy.read_events(str(path))  # format detected from the file
    assert len(back) == 2
    e1, e2 = sorted(back, key=lambda e: e.picks[0].time)
    t0 = obspy.UTCDateTime(START)
    assert abs(e1.picks[0].time - (t0 + 12.34)) < 1e-6
    assert abs(e2.picks[0].time - (t0 + 50.0)) < 1e-6
    for e in (e1, e2):
        wid = e.picks[0].waveform_id
        assert (wid.network_code, wid.station_code, wid.location_code, wid.channel_code) == ("BW", "RJOB", "", "EHZ")
        assert e.picks[0].evaluation_mode == "automatic"
        assert e.picks[0].time_errors.uncertainty == pytest.approx(0.01)
    assert [e.picks[0].phase_hint for e in (e1, e2)] == ["earthquake", "tremor"]
    assert e1.event_type == "earthquake" and e2.event_type is None  # "tremor" is no QuakeML type
    d1 = json.loads(e1.comments[0].text)
    assert d1["class"] == 2 and d1["duration_s"] == pytest.approx(7.66)
    assert obspy.UTCDateTime(d1["end"]) == t0 + 20.0


def test_several_stations_one_catalog_sorted_by_onset_and_csv(tmp_path):
    a, b = _record("RJOB"), _record("RNON")
    pa, pb = _prediction(), np.ones(10_000, np.uint8)
    pb[1500:1900] = 2  # the same quake reaches RNON 2.66 s later
    proba_a = np.zeros((3, 10_000), np.float32)
    proba_a[np.asarray(pa) - 1, np.arange(10_000)] = 0.8
    cat = catalog_from_predictions([(a, pa, proba_a, np.array([1, 2, 3])), (b, pb)], class_names=NAMES,
                                   min_duration_s=0.1)
    assert [e.picks[0].waveform_id.station_code for e in cat] == ["RJOB", "RNON", "RJOB"]
    csv_path = write_csv(cat, tmp_path / "picks.csv")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["seed_id"], r["class_name"]) for r in rows] == [
        ("BW.RJOB..EHZ", "earthquake"), ("BW.RNON..EHZ", "earthquake"), ("BW.RJOB..EHZ", "tremor")]
    assert obspy.UTCDateTime(rows[1]["onset_utc"]) == obspy.UTCDateTime(START) + 15.0
    assert rows[0]["mean_probability"] == "0.8000" and rows[1]["mean_probability"] == ""
    back = obspy.read_events(str(write_quakeml(cat, tmp_path / "net.xml")), format="QUAKEML")
    assert [str(e.resource_id) for e in back] == [r["event_id"] for r in rows]


def test_background_is_the_most_frequent_class_unless_given():
    rec, pred = _record(), _prediction()
    assert {w.cls for w in event_windows(rec, pred)} == {2, 3}
    assert {w.cls for w in event_windows(rec, pred, background=[1, 3])} == {2}


def test_bad_inputs_get_the_packages_errors():
    rec = _record()
    with pytest.raises(InputError, match="same record"):
        event_windows(rec, np.ones(10, np.uint8))
    no_time = SignalRecord(rec.data, 100.0, None, rec.channels)
    with pytest.raises(InputError, match="no start time"):
        event_windows(no_time, _prediction())


def test_real_classifier_on_the_sample_seismogram_through_the_cli(tmp_path, capsys):
    """signal-train on the ObsPy example quake, then export-quakeml: the pick lands in the labelled quake."""
    from active_annotator import data
    from active_annotator.cli import main
    from active_annotator.signals import SignalClassifier, read_signal

    path = data.sample_dir() / "seismogram_BW_RJOB.mseed"
    rec = read_signal(path)
    sr = rec.sampling_rate
    env = np.abs(rec.data).max(axis=0)
    onset = int(np.argmax(env > 0.2 * env.max()))  # the quake's first strong motion
    labels = np.zeros(rec.n_samples, np.uint8)
    labels[: max(1, onset - int(2 * sr))] = 1
    labels[onset: onset + int(3 * sr)] = 2
    clf = SignalClassifier(n_estimators=20).fit(rec, labels)
    model = clf.save(tmp_path / "quake.aasignal")
    out = tmp_path / "picks.xml"
    assert main(["export-quakeml", "--model", str(model), "--signal", str(path), "--output", str(out),
                 "--class-name", "2=earthquake", "--min-duration", "1"]) == 0
    assert "events from 1 record" in capsys.readouterr().out
    cat = obspy.read_events(str(out))
    quakes = [e for e in cat if e.picks[0].phase_hint == "earthquake"]
    assert quakes, [e.picks[0].phase_hint for e in cat]
    t_onset = obspy.UTCDateTime(rec.starttime) + onset / sr
    assert min(abs(e.picks[0].time - t_onset) for e in quakes) < 2.0
    assert quakes[0].picks[0].waveform_id.station_code == "RJOB"
    assert (tmp_path / "picks.csv").is_file()
