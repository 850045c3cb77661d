"""``active-annotator train`` and ``predict``: a pixel forest from files, and chunked prediction.

The library functions are :func:`active_annotator.scale.predict_file` and
:class:`active_annotator.classifier.PixelClassifier`; this module only parses
arguments and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..classifier import DEFAULT_MAX_SAMPLES, PixelClassifier
from ..features import FeatureSet, thick_slices
from ..io.arrays import is_signal_file, open_array, pixel_spacing
from ..scale import predict_file
from ._args import add_channel_axis, add_trees, resolve_channel_axis
from .batch import add_batch_arguments, is_batch, run_batch

# -- command line -------------------------------------------------------------------


def _max_samples(text: str):
    if text.strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'all' or a number of pixels >= 100")
    return n


def _sigmas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"sigmas must be numbers separated by commas, got {text!r}")


def add_parser(subparsers) -> None:
    t = subparsers.add_parser("train", help="train a pixel classifier from an image and labels",
                              description="Train a random-forest pixel classifier and save it.")
    t.add_argument("--image", required=True, type=Path, help=".tif, .npy or .zarr image")
    t.add_argument("--labels", required=True, type=Path,
                   help="integer labels, same non-channel shape; 0 = unlabelled")
    add_channel_axis(t)
    t.add_argument("--ndim", type=int, choices=(1, 2, 3), default=None,
                   help="spatial axes of the features (default: all non-channel axes, at most 3)")
    t.add_argument("--sigmas", type=_sigmas, default=None,
                   help="feature scales in pixels, e.g. 1,2,4,8 (default: the FeatureSet's)")
    add_trees(t, 100)
    t.add_argument("--max-depth", type=int, default=None,
                   help="maximum depth of each tree (default: unlimited)")
    t.add_argument("--max-samples", type=_max_samples, default=DEFAULT_MAX_SAMPLES,
                   help="with more labelled pixels than this, each tree trains on a class-aware "
                        f"sample of about this many (default {DEFAULT_MAX_SAMPLES}; 'all' = every "
                        "labelled pixel, slower on dense labels)")
    t.add_argument("--stages", type=int, default=1,
                   help="autocontext stages: each later forest also sees the previous one's "
                        "smoothed probabilities (default 1)")
    t.add_argument("--class-weight", choices=("none", "balanced", "auto"), default="none",
                   help="'balanced' weights each class by the inverse of its labelled pixel count "
                        "(helps a rare class painted densely, e.g. a lesion); 'auto' picks none or "
                        "balanced by the out-of-fold score on the labels (needs --stages 2 or more "
                        "to score the second stage); see docs/classifier_strength.md; default none")
    t.add_argument("--context", choices=("features", "auto"), default="features",
                   help="autocontext smoothing scales: the feature sigmas, or 'auto' (up to two "
                        "doublings more, within the size of the rarest class's labelled regions)")
    t.add_argument("--strong", action="store_true",
                   help="the benchmark's strongest configuration: --stages 2 --class-weight auto "
                        "--context auto (slower; best on dense labels, see docs/classifier_strength.md)")
    t.add_argument("--output", required=True, type=Path, help="model file (.aamodel)")
    t.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "predict", help="predict a (larger than memory) image chunk by chunk",
        description="Predict classes (or probabilities) of an image with a trained model. "
                    "Zarr input is read and written chunk by chunk; --scheduler runs it on "
                    "a dask.distributed cluster.")
    p.add_argument("--model", required=True, type=Path,
                   help="trained model: .aamodel (from train or the widget) or .aacnn (cnn-train)")
    p.add_argument("--input", required=True, type=Path,
                   help=".zarr, .tif or .npy; or a folder or glob ('images/*.tif') of them: "
                        "batch prediction, one output per input in the --output folder")
    p.add_argument("--output", required=True, type=Path,
                   help=".zarr or .tif; a folder for a folder or glob input")
    add_channel_axis(p)
    p.add_argument("--chunks", type=lambda s: tuple(int(v) for v in s.split(",")), default=None,
                   help="chunk edge per non-channel axis, e.g. 1,1024,1024 (default: the input's)")
    p.add_argument("--scheduler", default=None,
                   help="dask.distributed scheduler address, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--probabilities", action="store_true",
                   help="write class probabilities (n_classes, ...) float32 instead of classes")
    add_batch_arguments(p)
    p.set_defaults(func=run_predict)


def run_train(args) -> int:
    image = np.asarray(open_array(args.image, lazy=False))
    labels = np.asarray(open_array(args.labels, lazy=False))
    if is_signal_file(args.image) and args.channel_axis is None:
        args.channel_axis, args.ndim = 0, args.ndim or 1  # one label per sample
    args.channel_axis = resolve_channel_axis(args.channel_axis, image.shape, labels.shape, "train")
    n_axes = image.ndim - (args.channel_axis is not None)
    ndim = args.ndim or max(1, min(3, n_axes))
    spacing = pixel_spacing(args.image) if args.ndim is None and ndim == 3 else None
    if spacing is not None and len(spacing) == 3 and thick_slices(spacing):
        ndim = 2  # as the Pixel classifier dock does with a layer's scale
        print(f"the file's voxel size {' x '.join(f'{v:g}' for v in spacing)} (z, y, x) has slices "
              f"{spacing[0] / max(spacing[1:]):.1f}x thicker than pixels: 2-D features per slice "
              "(--ndim 3 for 3-D filters)")
    fs = FeatureSet(ndim=ndim) if args.sigmas is None else FeatureSet(sigmas=args.sigmas, ndim=ndim)
    if args.strong:
        args.stages, args.class_weight, args.context = max(2, args.stages), "auto", "auto"
    clf = PixelClassifier(fs, n_estimators=args.trees, max_depth=args.max_depth, stages=args.stages,
                          class_weight=None if args.class_weight == "none" else args.class_weight,
                          context_sigmas="auto" if args.context == "auto" else None,
                          max_samples=args.max_samples)
    clf.fit(image, labels, channel_axis=args.channel_axis)
    clf.save(args.output)
    print(f"trained on {clf.n_training_pixels_} labelled pixels, classes "
          f"{clf.classes_.tolist()}, {clf.n_features_in_} features; saved {args.output}")
    return 0


def _input_shape(path) -> tuple[int, ...]:
    """Shape of an input file without reading its pixels (TIFF: from its header)."""
    if Path(path).suffix.lower() in (".tif", ".tiff") and Path(path).is_file():
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return tuple(tif.series[0].shape)
    return tuple(np.shape(open_array(path)))


def run_predict(args) -> int:
    if is_batch(args.input, args.output):
        return run_batch(args)
    if is_signal_file(args.input) and args.channel_axis is None:
        args.channel_axis = 0
    if args.channel_axis is None:
        args.channel_axis = resolve_channel_axis(None, _input_shape(args.input), command="predict")
    out = predict_file(args.model, args.input, args.output, channel_axis=args.channel_axis,
                       chunks=args.chunks, scheduler=args.scheduler, proba=args.probabilities)
    print(f"wrote {out}")
    return 0
