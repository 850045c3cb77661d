"""Predicted seismic event windows and onsets as an ObsPy ``Catalog`` (QuakeML) and a CSV.

A :class:`~active_annotator.signals.SignalClassifier` gives a class per sample.
:func:`catalog_from_prediction` turns each run of an *event class* (every
class but the background, see below) into one ObsPy ``Event`` with

* one ``Pick`` at the onset (the run's first sample) on the record's
  vertical channel (``..Z``, else its first channel): ``time`` in UTC,
  ``waveform_id`` from the SEED id (network, station, location, channel),
  ``phase_hint`` the class name, ``time_errors.uncertainty`` one sample,
  ``evaluation_mode`` "automatic", ``method_id``
  ``smi:local/napari-active-annotator/signal-classifier``;
* ``event_type`` the class name when it is one of QuakeML's event types
  (``earthquake``, ``explosion``, ``quarry blast``, ...), else unset;
* a comment holding the window as JSON (``class``, ``class_name``, ``start``,
  ``end`` in ISO UTC, ``duration_s``, ``mean_probability``), so nothing is lost
  for a reader that only understands QuakeML.

Several stations give one catalog (:func:`catalog_from_predictions`); events
are per station and per window: associating picks of several stations into
one located event is the job of an associator/locator (e.g. in SeisComP or
ObsPy-based pipelines), not of this exporter.

The background class is the one given as ``background`` (default: the class
that covers most samples, i.e. the noise between events).

Needs ObsPy (the ``[signals]`` extra).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from .labels import runs
from .signals import SignalRecord

METHOD_ID = "smi:local/napari-active-annotator/signal-classifier"
CSV_COLUMNS = ("event_id", "seed_id", "class", "class_name", "onset_utc", "end_utc", "duration_s",
               "mean_probability")


def _obspy():
    from .signals import (
        _obspy as require_obspy,  # raises the package's error with the install hint
    )

    obspy = require_obspy()
    from obspy.core import event as ev

    return obspy, ev


@dataclasses.dataclass
class EventWindow:
    """One predicted event window on one station."""

    seed_id: str
    cls: int
    class_name: str
    onset: object  # obspy.UTCDateTime
    end: object
    mean_probability: float | None
    uncertainty_s: float = 0.0  # of the onset: one sample

    @property
    def duration_s(self) -> float:
        return float(self.end - self.onset)


def _pick_channel(record: SignalRecord) -> str:
    for c in record.channels:
        if c.upper().endswith("Z"):
            return c
    return record.channels[0]


def event_windows(record: SignalRecord, prediction, probabilities=None, classes=None,
                  class_names=None, background=None, min_duration_s: float = 0.0) -> list[EventWindow]:
    """The runs of event classes in ``prediction`` ``(time,)`` as :class:`EventWindow` s.

    Parameters
    ----------
    record : the predicted SignalRecord (its ``starttime``, ``sampling_rate``, ``channels``)
    prediction : int array ``(time,)``, class per sample
    probabilities : float array ``(K, time)``, optional (rows in ``classes`` order)
    classes : the class values of the probability rows (``clf.classes_``)
    class_names : dict ``{class: name}``, optional
    background : int or sequence of ints, optional; default the most frequent class
    min_duration_s : windows shorter than this are dropped
    """
    obspy, _ = _obspy()
    pred = np.asarray(prediction).ravel()
    if pred.shape != (record.n_samples,):
        raise InputError(f"prediction has {pred.size} samples, the record {record.n_samples}; "
                         "predict the same record you export.")
    if record.starttime is None:
        raise InputError(f"{record.name} has no start time, so its picks would have no absolute time. "
                         "Read it from miniSEED/SAC (which carry one) or set SignalRecord.starttime.")
    if background is None:
        values, counts = np.unique(pred, return_counts=True)
        background = [int(values[np.argmax(counts)])]
    elif np.isscalar(background):
        background = [int(background)]
    names = {int(k): str(v) for k, v in (class_names or {}).items()}
    if probabilities is not None:
        probabilities = np.asarray(probabilities)
        if classes is None or probabilities.shape != (len(classes), record.n_samples):
            raise InputError(f"probabilities must be (len(classes), {record.n_samples}) with their classes.")
        row = {int(c): i for i, c in enumerate(classes)}
    t0 = obspy.UTCDateTime(record.starttime)
    sr = record.sampling_rate
    seed = _pick_channel(record)
    out = []
    for a, b, v in runs(pred):
        if v in background or (b - a) / sr < min_duration_s:
            continue
        p = float(probabilities[row[v], a:b].mean()) if probabilities is not None and v in row else None
        out.append(EventWindow(seed, int(v), names.get(int(v), f"class {v}"), t0 + a / sr, t0 + b / sr, p,
                               1.0 / sr))
    return out


def catalog_from_windows(windows) -> object:
    """An ObsPy ``Catalog``: one Event with one onset Pick per window (see the module docstring)."""
    obspy, ev = _obspy()
    from obspy.core.event.header import EventType

    types = {t.lower(): t for t in EventType}
    events = []
    info = ev.CreationInfo(author="napari-active-annotator", creation_time=obspy.UTCDateTime())
    for w in windows:
        net, sta, loc, cha = (w.seed_id.split(".") + ["", "", "", ""])[:4] if w.seed_id.count(".") == 3 \
            else ("", w.seed_id, "", "")
        pick = ev.Pick(
            time=w.onset, time_errors=ev.QuantityError(uncertainty=w.uncertainty_s),
            waveform_id=ev.WaveformStreamID(network_code=net, station_code=sta, location_code=loc,
                                            channel_code=cha),
            phase_hint=w.class_name, evaluation_mode="automatic", method_id=METHOD_ID,
            creation_info=info.copy(),
        )
        detail = {"class": w.cls, "class_name": w.class_name, "start": str(w.onset), "end": str(w.end),
                  "duration_s": round(w.duration_s, 6), "mean_probability": w.mean_probability}
        event = ev.Event(picks=[pick], creation_info=info.copy(),
                         comments=[ev.Comment(text=json.dumps(detail))])
        if w.class_name.lower() in types:
            event.event_type = types[w.class_name.lower()]
        events.append(event)
    return ev.Catalog(events=events, creation_info=info.copy(),
                      description="event windows predicted by napari-active-annotator")


def catalog_from_prediction(record, prediction, probabilities=None, classes=None, class_names=None,
                            background=None, min_duration_s: float = 0.0):
    """One station's predicted windows as a Catalog (see :func:`event_windows` for the parameters)."""
    return catalog_from_windows(event_windows(record, prediction, probabilities, classes, class_names,
                                              background, min_duration_s))


def catalog_from_predictions(items, **kwargs):
    """Several stations: ``items`` of ``(record, prediction[, probabilities, classes])``; one Catalog."""
    _, ev = _obspy()
    cat = None
    for item in items:
        c = catalog_from_prediction(*item, **kwargs)
        cat = c if cat is None else cat + c
    if cat is None:
        return ev.Catalog()
    cat.events.sort(key=lambda e: e.picks[0].time)
    return cat


def write_quakeml(catalog, path) -> Path:
    """Write ``catalog`` as QuakeML 1.2 (atomically; a link at ``path`` is replaced, never followed)."""
    from .arrays import write_atomically

    out = Path(path)
    write_atomically(out, lambda tmp: catalog.write(str(tmp), format="QUAKEML"))
    return out


def write_csv(catalog, path) -> Path:
    """One row per event: :data:`CSV_COLUMNS` (times ISO UTC), written atomically."""
    from .arrays import write_atomically

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            for e in catalog:
                d = json.loads(e.comments[0].text)
                p = e.picks[0]
                w.writerow([str(e.resource_id), p.waveform_id.get_seed_string(), d["class"], d["class_name"],
                            d["start"], d["end"], d["duration_s"],
                            "" if d["mean_probability"] is None else f"{d['mean_probability']:.4f}"])

    out = Path(path)
    write_atomically(out, write)
    return out


__all__ = ["EventWindow", "event_windows", "catalog_from_windows", "catalog_from_prediction",
           "catalog_from_predictions", "write_quakeml", "write_csv", "CSV_COLUMNS", "METHOD_ID"]
