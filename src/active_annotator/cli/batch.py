"""The batch part of ``active-annotator predict``: a folder or glob of images, one output each.

The work is :func:`active_annotator.batch.predict_batch`; this module adds the
options and prints each file's status.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..batch import find_inputs, predict_batch


def is_batch(input_spec, output) -> bool:
    """A batch: a folder (not a zarr store) or a glob as input, or an OME-Zarr image with an
    output folder (a path without a suffix)."""
    text = str(input_spec)
    p = Path(text)
    if any(c in text for c in "*?["):
        return True
    if p.is_dir():
        from ..io.ome_zarr import is_ome_zarr

        if is_ome_zarr(p):
            return Path(output).suffix == ""
        return p.suffix.lower() != ".zarr"
    return False


def add_batch_arguments(parser) -> None:
    """Options of ``active-annotator predict`` that only a folder or glob input uses."""
    parser.add_argument("--output-format", choices=("tif", "zarr", "labels"), default="tif",
                        help="batch: file type of each output (default tif; zarr is written "
                             "chunk by chunk; labels: into each OME-Zarr input as its "
                             "labels/<--labels-name> group, --output then holds the manifest)")
    parser.add_argument("--labels-name", default="prediction",
                        help="batch with --output-format labels: the label group's name "
                             "(default prediction)")
    parser.add_argument("--redo", action="store_true",
                        help="batch: predict every image again (default: skip those a previous "
                             "run finished with the same model and settings)")


def run_batch(args) -> int:
    """``active-annotator predict --input FOLDER_OR_GLOB --output DIR``."""
    out_dir = Path(args.output)
    inputs = find_inputs(str(args.input), exclude=out_dir)

    def show(i, fr):
        if fr.status == "done":
            print(f"[{i + 1}/{len(inputs)}] {fr.input.name}: done ({fr.seconds:.2f} s)", file=sys.stderr)
        elif fr.status in ("failed", "skipped"):
            why = f": {fr.message}" if fr.message else ""
            print(f"[{i + 1}/{len(inputs)}] {fr.input.name}: {fr.status}{why}", file=sys.stderr)

    fmt = args.output_format if args.output_format == "labels" else "." + args.output_format
    report = predict_batch(args.model, inputs, out_dir, output_format=fmt, labels_name=args.labels_name,
                           channel_axis=args.channel_axis, chunks=args.chunks,
                           proba=args.probabilities, scheduler=args.scheduler, redo=args.redo,
                           on_file=show)
    print(f"{report.summary()}; outputs in {out_dir}")
    return 1 if report.count("failed") else 0
