"""``active-annotator signal-train`` and ``signal-predict``: signals classified sample by sample."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import InputError, OutputError
from ..io.arrays import check_output, write_atomically
from ..sampling import DEFAULT_STRATEGY
from ..signals import (
    SignalClassifier,
    SignalFeatures,
    default_bands,
    invariant_signal_features,
    read_labels,
    read_signal,
    spans_table,
    suggest_windows,
)
from ..uncertainty import entropy
from ._args import add_trees


def _seconds_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"Expected comma-separated seconds like 0.05,0.2,0.8, got {text!r}.") from None


def add_parser(subparsers) -> None:
    """Add ``signal-train`` and ``signal-predict`` to the ``active-annotator`` parser."""
    t = subparsers.add_parser(
        "signal-train", help="train a classifier on labelled spans of a signal (miniSEED, SAC, .npy, .csv)",
        description="Train a random forest that classifies every sample of a signal from labelled spans.")
    t.add_argument("signal", type=Path, help="signal file: miniSEED/SAC/... (needs [signals]), .npy or .csv")
    t.add_argument("labels", type=Path, help="labels: .npy (one int per sample) or .csv spans start_s,end_s,class")
    t.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.aasignal)")
    t.add_argument("--sampling-rate", type=float, default=None, help="Hz, for .npy/.csv without one")
    t.add_argument("--scales", default="0.05,0.2,0.8,3.2", help="feature scales in seconds (default: %(default)s)")
    t.add_argument("--no-envelope", action="store_true", help="leave out the envelope family")
    t.add_argument("--sta-lta", default="1,10", help="STA,LTA seconds, or 'none' (default: %(default)s)")
    t.add_argument("--bands", default="auto",
                   help="band centre frequencies in Hz, e.g. 1,2,4,8; 'auto' (octaves from 0.5 Hz "
                        "to 0.4 x the sampling rate) or 'none' (default: %(default)s)")
    t.add_argument("--features", choices=("filters", "invariant"), default="filters",
                   help="'filters': the options above (default); 'invariant': the sample plus STA/LTA "
                        "ratios, broadband and per octave band, which do not depend on amplitude "
                        "(better for detecting events of other sizes than the labelled ones; "
                        "ignores --scales/--no-envelope/--bands)")
    add_trees(t, 100)
    t.set_defaults(func=_run_train)
    p = subparsers.add_parser(
        "signal-predict", help="classify every sample of a signal; write classes, uncertainty, spans, suggestions",
        description="Write prediction.npy (time,), probabilities.npy (K, time), uncertainty.npy (time,), "
                    "spans.csv (start_s,end_s,class) and suggestions.csv (windows worth labelling next).")
    p.add_argument("model", type=Path, help="model from signal-train")
    p.add_argument("signal", type=Path, help="signal file: miniSEED/SAC/... (needs [signals]), .npy or .csv")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--sampling-rate", type=float, default=None, help="Hz, for .npy/.csv without one")
    p.add_argument("--labels", type=Path, default=None, help="labels already made (skipped by suggestions)")
    p.add_argument("--window", type=float, default=10.0, help="suggested window length in s (default: %(default)s)")
    p.add_argument("--strategy", default=DEFAULT_STRATEGY, help="suggestion strategy (default: %(default)s)")
    p.add_argument("--n-suggestions", type=int, default=10,
                   help="windows to suggest for labelling next (default: %(default)s)")
    p.set_defaults(func=_run_predict)


def _run_train(args) -> int:
    rec = read_signal(args.signal, args.sampling_rate)
    labels = read_labels(args.labels, rec)
    sta = () if args.sta_lta.strip().lower() == "none" else (_seconds_list(args.sta_lta)[:2],)
    word = args.bands.strip().lower()
    bands = default_bands(rec.sampling_rate) if word == "auto" else () if word == "none" else _seconds_list(args.bands)
    if args.features == "invariant":
        spec = invariant_signal_features(rec.sampling_rate)
    else:
        spec = SignalFeatures.from_seconds(rec.sampling_rate, _seconds_list(args.scales),
                                           envelope=not args.no_envelope, sta_lta_s=sta, bands_hz=bands)
    clf = SignalClassifier(spec, n_estimators=args.trees).fit(rec, labels)
    out = clf.save(args.output)
    top = ", ".join(list(clf.feature_importances())[:5])
    print(f"trained on {clf.n_training_samples_} labelled samples of {rec.name} "
          f"({rec.n_channels} channels, {rec.sampling_rate:g} Hz), classes {list(map(int, clf.classes_))}; "
          f"most used features: {top}\nwrote {out}")
    return 0


def _run_predict(args) -> int:
    check_output(args.signal, args.output, suffixes=None)
    out = Path(args.output)
    others = sorted(p.name for p in out.iterdir() if p.name not in _PREDICTION_FILES) if out.is_dir() else []
    if others or (out.exists() and not out.is_dir()):
        raise OutputError(
            f"The output folder {str(out)!r} holds other files ({others[:3]}); signal-predict replaces the "
            "whole folder, so choose a new or empty folder (or one written by signal-predict)."
        )
    clf = SignalClassifier.load(args.model)
    rec = read_signal(args.signal, args.sampling_rate)
    proba = clf.predict_proba(rec)
    pred = clf.classes_[np.argmax(proba, axis=0)].astype(clf.labels_dtype_)
    unc = entropy(proba)
    # the folder is written as a hidden temporary and renamed when complete
    write_atomically(out, lambda tmp: _write_prediction_folder(args, tmp, rec, pred, proba, unc))
    counts = {int(c): int((pred == c).sum()) for c in clf.classes_}
    print(f"classified {rec.n_samples} samples of {rec.name}: {counts}; "
          f"mean uncertainty {float(unc.mean()):.3f}\nwrote {out}/prediction.npy, probabilities.npy, "
          f"uncertainty.npy, spans.csv, suggestions.csv")
    return 0


_PREDICTION_FILES = ("prediction.npy", "probabilities.npy", "uncertainty.npy", "spans.csv", "suggestions.csv")


def _write_prediction_folder(args, out: Path, rec, pred, proba, unc) -> None:
    out.mkdir(parents=True)
    np.save(out / "prediction.npy", pred)
    np.save(out / "probabilities.npy", proba)
    np.save(out / "uncertainty.npy", unc)
    with open(out / "spans.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start_s", "end_s", "class"])
        w.writerows((f"{a:.3f}", f"{b:.3f}", v) for a, b, v in spans_table(pred, rec.sampling_rate))
    labels = read_labels(args.labels, rec) if args.labels else None
    width = max(2, int(round(args.window * rec.sampling_rate)))
    sug = suggest_windows(unc, labels, width=width, strategy=args.strategy, n=args.n_suggestions, proba=proba)
    with open(out / "suggestions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "start_s", "end_s", "score", "reason"])
        for s_ in sug:
            sl = s_.candidate.slices[0]
            w.writerow([s_.rank, f"{sl.start / rec.sampling_rate:.3f}", f"{sl.stop / rec.sampling_rate:.3f}",
                        f"{s_.score:.4f}", s_.reason])
