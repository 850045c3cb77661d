"""``active-annotator suggest-features``: rank feature families and scales, propose a smaller set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..feature_suggestion import suggest_features
from ..features import DEFAULT_FAMILIES, DEFAULT_SIGMAS, FeatureSet
from ..io.arrays import open_array
from ._args import add_channel_axis, add_trees, resolve_channel_axis

# -- command line ----------------------------------------------------------------------


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "suggest-features", help="rank feature families and scales on your labels; propose a smaller set",
        description="Rank the feature families and scales by importance on the labels, and propose "
                    "the smallest feature set whose validation score (held-out strokes) matches the full set's.")
    p.add_argument("--image", required=True, type=Path, help=".tif, .npy or .zarr image")
    p.add_argument("--labels", required=True, type=Path, help="integer labels; 0 = unlabelled")
    add_channel_axis(p)
    p.add_argument("--ndim", type=int, choices=(1, 2, 3), default=None,
                   help="spatial axes of the features (default: all non-channel axes, at most 3)")
    p.add_argument("--sigmas", default=None, help="scales to examine, e.g. 1,2,4,8 (default: 1,2,4,8)")
    p.add_argument("--families", default=None,
                   help="families to examine, e.g. gaussian,dog,log,hessian,deep (default: the filter families)")
    add_trees(p, 50)
    p.add_argument("--tolerance", type=float, default=0.005,
                   help="how much lower than the full set's validation score the proposed "
                        "set may score (default: %(default)s)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    image = np.asarray(open_array(args.image, lazy=False))
    labels = np.asarray(open_array(args.labels, lazy=False))
    args.channel_axis = resolve_channel_axis(args.channel_axis, image.shape, labels.shape,
                                             "suggest-features")
    n_axes = image.ndim - (args.channel_axis is not None)
    try:
        sigmas = (DEFAULT_SIGMAS if args.sigmas is None
                  else tuple(float(s) for s in args.sigmas.split(",") if s.strip()))
    except ValueError:
        raise InputError(f"--sigmas must be numbers separated by commas, got {args.sigmas!r}.") from None
    fams = DEFAULT_FAMILIES if args.families is None else tuple(
        f.strip() for f in args.families.split(",") if f.strip())
    fs = FeatureSet(sigmas=sigmas, families=fams, ndim=args.ndim or max(1, min(3, n_axes)))
    s = suggest_features(image, labels, fs, channel_axis=args.channel_axis, n_estimators=args.trees,
                         tolerance=args.tolerance)
    n_ch = 1 if args.channel_axis is None else image.shape[args.channel_axis]
    print(s.report(n_ch))
    print(f"as Python: FeatureSet(sigmas={tuple(s.proposed.sigmas)}, "
          f"families={tuple(s.proposed.families)}, ndim={s.proposed.ndim})")
    return 0
