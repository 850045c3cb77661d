"""``active-annotator explain``: SHAP plots and tables of a pixel model on its labelled pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..classifier import PixelClassifier
from ..errors import InputError
from ..explain import (
    MAX_SAMPLES,
    correlated_groups,
    pixel_samples,
    shap_values,
    write_report,
)
from ..io.arrays import open_array


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "explain", help="SHAP values of a pixel model on labelled pixels: plots and tables",
        description="Explain a trained pixel classifier: exact TreeSHAP values (shap library) on a "
                    "stratified sample of the labelled pixels, a beeswarm plot per class, a bar plot "
                    "of mean |SHAP|, the clustered feature correlation and SHAP per correlated group.")
    p.add_argument("--model", required=True, type=Path, help="model file (.aamodel) from train/save")
    p.add_argument("--image", required=True, type=Path, help=".tif, .npy or .zarr image")
    p.add_argument("--labels", required=True, type=Path, help="integer labels; 0 = unlabelled")
    p.add_argument("--output", required=True, type=Path, help="directory for the PNG and CSV files")
    p.add_argument("--channel-axis", type=int, default=None,
                   help="axis of the image's channels, as when training (default: no channel axis)")
    p.add_argument("--max-samples", type=int, default=MAX_SAMPLES,
                   help=f"labelled pixels explained, a stratified sample (default {MAX_SAMPLES})")
    p.add_argument("--correlation", type=float, default=0.9,
                   help="|correlation| at which features form a group (default 0.9)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified sample (default 0)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    if args.max_samples < 1:
        raise InputError(f"--max-samples must be at least 1, got {args.max_samples}.")
    model = PixelClassifier.load(args.model)
    image = np.asarray(open_array(args.image, lazy=False))
    labels = np.asarray(open_array(args.labels, lazy=False))
    X, y = pixel_samples(model, image, labels, args.channel_axis, args.max_samples, args.seed)
    e = shap_values(model, X, y=y, max_samples=args.max_samples, seed=args.seed)
    groups = correlated_groups(X, e.feature_names, args.correlation)
    paths = write_report(e, args.output, groups=groups)
    print(f"explained {X.shape[0]} labelled pixels, {X.shape[1]} features, classes {e.classes}")
    for note in e.notes:
        print(f"note: {note}")
    print("top features by mean |SHAP|:")
    for name, v in e.ranking()[:5]:
        print(f"  {name:40s} {v:.4f}")
    print(groups.sentence(e.feature_names))
    for path in paths:
        print(f"wrote {path}")
    return 0
