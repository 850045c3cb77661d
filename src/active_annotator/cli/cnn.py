"""``active-annotator finetune`` and ``cnn-predict``: the small U-Net from files."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..cnn import CNNClassifier, CNNConfig
from ..io.arrays import check_output, read_array, write_array
from ..persistence import load_cnn
from ..uncertainty import entropy
from ._args import add_channel_axis, resolve_channel_axis


def add_parser(subparsers) -> None:
    """Add ``finetune`` and ``cnn-predict`` to the ``active-annotator`` command."""
    p = subparsers.add_parser(
        "finetune", help="fine-tune a small CNN from sparse labels (needs the [cnn] extra)",
        description="Train a small U-Net on the labelled pixels of an image (0 = unlabelled), "
                    "optionally warm-started from a random-forest model's probabilities.",
    )
    p.add_argument("--image", required=True, help="image file (.tif, .npy, .zarr)")
    p.add_argument("--labels", required=True, help="label file, same non-channel shape, 0 = unlabelled")
    p.add_argument("--output", "-o", required=True, help="model file to write (.aacnn)")
    p.add_argument("--rf-model", help="random-forest .aamodel to distil first (warm start)")
    add_channel_axis(p)
    d = CNNConfig()
    p.add_argument("--dims", type=int, default=d.dims, choices=(1, 2, 3),
                   help="spatial axes the network convolves over (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="fine-tuning epochs, at most (early stopping; default: %(default)s)")
    p.add_argument("--warm-start-epochs", type=int, default=d.warm_start_epochs,
                   help="epochs distilling the --rf-model's probabilities first (default: %(default)s)")
    p.add_argument("--batches-per-epoch", type=int, default=d.batches_per_epoch,
                   help="batches that make one epoch (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="patches per batch (default: %(default)s)")
    p.add_argument("--patch-size", type=int, default=d.patch_size,
                   help="patch edge in pixels (default: 512 in 1-D, 48 in 2-D, 32 in 3-D)")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate,
                   help="Adam learning rate (default: %(default)s)")
    p.add_argument("--dropout", type=float, default=d.dropout,
                   help="dropout rate in the bottleneck and decoder (default: %(default)s)")
    p.add_argument("--widths", type=int, nargs="+", default=d.widths, help="channels per level, e.g. 16 32 64")
    p.add_argument("--patience", type=int, default=d.patience,
                   help="stop after this many epochs without a better validation loss; "
                        "0: never (default: %(default)s)")
    p.add_argument("--validation-fraction", type=float, default=d.validation_fraction,
                   help="fraction of each class's strokes held out for validation "
                        "(default: %(default)s)")
    p.add_argument("--no-augment", action="store_true", help="no flips, rotations or intensity jitter")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of initialisation, patches, augmentation and dropout (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-epoch progress lines")
    p.set_defaults(func=_run_finetune)

    q = subparsers.add_parser(
        "cnn-predict", help="segment an image with a fine-tuned CNN (.aacnn)",
        description="Predict classes (and optionally probabilities and uncertainty) with a CNN model file.",
    )
    q.add_argument("--model", "-m", required=True, help=".aacnn file from 'finetune'")
    q.add_argument("--image", required=True, help="image file (.tif, .npy, .zarr)")
    q.add_argument("--output", "-o", required=True, help="segmentation file (.tif or .npy)")
    q.add_argument("--proba", help="also write probabilities (n_classes, *spatial) here")
    q.add_argument("--uncertainty", help="also write uncertainty (*spatial) here: softmax entropy, "
                                         "or MC-dropout mutual information with --mc-dropout")
    q.add_argument("--mc-dropout", type=int, default=0, metavar="N", help="N Monte-Carlo dropout passes")
    add_channel_axis(q)
    q.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    q.set_defaults(func=_run_predict)


def _run_finetune(args: argparse.Namespace) -> int:
    image = read_array(args.image)
    labels = read_array(args.labels)
    args.channel_axis = resolve_channel_axis(args.channel_axis, np.shape(image), np.shape(labels),
                                             "finetune")
    aug = not args.no_augment
    cfg = CNNConfig(
        dims=args.dims, widths=list(args.widths), depth=len(args.widths) - 1, dropout=args.dropout,
        epochs=args.epochs, warm_start_epochs=args.warm_start_epochs,
        batches_per_epoch=args.batches_per_epoch, batch_size=args.batch_size, patch_size=args.patch_size,
        learning_rate=args.learning_rate, patience=args.patience,
        validation_fraction=args.validation_fraction, flips=aug, rot90=aug,
        intensity_jitter=CNNConfig().intensity_jitter if aug else 0.0, seed=args.seed,
    ).validate()
    proba = classes = None
    if args.rf_model:
        from ..persistence import load_model

        rf = load_model(args.rf_model)
        proba = rf.predict_proba(image, channel_axis=args.channel_axis)
        classes = rf.classes_
    clf = CNNClassifier.from_config(cfg, device=args.device, n_threads=args.threads)

    def report(info):
        if not args.quiet and info["event"] == "epoch":
            val = "" if info["val_loss"] is None else f"  val {info['val_loss']:.4f}"
            print(f"{info['phase']:>10} epoch {info['epoch']:3d}/{info['epochs']}  "
                  f"train {info['train_loss']:.4f}{val}  ({info['elapsed_s']:.1f} s)", flush=True)

    clf.fit(image, labels, channel_axis=args.channel_axis, warm_start_proba=proba,
            warm_start_classes=classes, on_progress=report)
    out = clf.save(args.output)
    print(f"trained in {clf.fit_time_s_:.1f} s on {clf.device_}; best epoch {clf.best_epoch_}; wrote {out}")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    for out in (args.output, args.proba, args.uncertainty):
        if out:
            check_output(args.image, out, suffixes=(".tif", ".tiff", ".npy"))
    clf = load_cnn(args.model, device=args.device, n_threads=args.threads)
    image = read_array(args.image)
    args.channel_axis = resolve_channel_axis(args.channel_axis, np.shape(image), command="cnn-predict")
    if args.mc_dropout:
        proba, unc = clf.mc_dropout_uncertainty(image, n=args.mc_dropout, channel_axis=args.channel_axis)
    else:
        proba = clf.predict_proba(image, channel_axis=args.channel_axis)
        unc = entropy(proba) if args.uncertainty else None
    seg = clf.classes_.astype(np.min_scalar_type(int(clf.classes_.max())))[np.argmax(proba, 0)]
    write_array(args.output, seg)
    if args.proba:
        write_array(args.proba, proba)
    if args.uncertainty:
        write_array(args.uncertainty, unc)
    print(f"wrote {args.output}" + (f", {args.proba}" if args.proba else "")
          + (f", {args.uncertainty}" if args.uncertainty else ""), file=sys.stdout)
    return 0
