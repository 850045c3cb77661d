"""``active-annotator export-quakeml``: event windows of seismic records as QuakeML and CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.quakeml import catalog_from_predictions, write_csv, write_quakeml
from ..io.signals import read_signal
from ..signals import SignalClassifier


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export-quakeml", help="predict a seismic record and write its event windows as QuakeML + CSV",
        description="Classify every sample of a record (miniSEED, SAC, ...) with a signal model and "
                    "write each run of an event class as an Event with an onset Pick (QuakeML 1.2, "
                    "readable by obspy.read_events) and a CSV beside it.")
    p.add_argument("--model", required=True, type=Path, help=".aasignal model (signal-train)")
    p.add_argument("--signal", required=True, type=Path, nargs="+", help="record(s): one per station")
    p.add_argument("--output", required=True, type=Path, help="QuakeML file (.xml); the CSV gets .csv")
    p.add_argument("--background", type=int, action="append", default=None,
                   help="class value(s) that are not events (default: the most frequent class)")
    p.add_argument("--class-name", action="append", default=[], metavar="VALUE=NAME",
                   help="name a class, e.g. 2=earthquake (QuakeML event types are recognised)")
    p.add_argument("--min-duration", type=float, default=0.0, help="drop windows shorter than this (s)")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    names = {}
    for text in args.class_name:
        value, _, name = text.partition("=")
        try:
            names[int(value)] = name.strip()
        except ValueError:
            raise InputError(f"--class-name {text!r}: use VALUE=NAME, e.g. 2=earthquake.") from None
    clf = SignalClassifier.load(args.model)
    items = []
    for path in args.signal:
        rec = read_signal(path)
        proba = clf.predict_proba(rec)
        items.append((rec, clf.classes_[np.argmax(proba, axis=0)], proba, clf.classes_))
    cat = catalog_from_predictions(items, class_names=names, background=args.background,
                                   min_duration_s=args.min_duration)
    out = write_quakeml(cat, args.output)
    csv_path = write_csv(cat, out.with_suffix(".csv"))
    print(f"{len(cat)} events from {len(items)} record(s); wrote {out} and {csv_path}")
    return 0
