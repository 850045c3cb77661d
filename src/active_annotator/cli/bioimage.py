"""``active-annotator export-bioimageio``: a fine-tuned CNN as a bioimage.io model package."""

from __future__ import annotations

from pathlib import Path

from ..bioimage import export_cnn, validate
from ..io.arrays import read_array


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export-bioimageio", help="export a fine-tuned CNN (.aacnn) as a bioimage.io model package",
        description="Write a bioimage.io model zoo package (.zip: rdf.yaml, TorchScript weights, "
                    "test input and output) of a CNN trained with cnn-train or the CNN dock, and "
                    "validate it with bioimageio.spec.")
    p.add_argument("--model", required=True, type=Path, help=".aacnn file")
    p.add_argument("--output", required=True, type=Path, help="package .zip")
    p.add_argument("--name", default="napari-active-annotator CNN", help="model name in rdf.yaml")
    p.add_argument("--author", action="append", default=None, help="author name (repeatable)")
    p.add_argument("--test-input", type=Path, default=None,
                   help="image for the package's test (.tif or .npy, (channels, y, x) or (y, x)); "
                        "default: random with the training statistics")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    test_input = None
    if args.test_input is not None:
        test_input = read_array(args.test_input)
    out = export_cnn(args.model, args.output, name=args.name,
                     authors=tuple(args.author or ("napari-active-annotator user",)), test_input=test_input)
    status = validate(out)
    print(f"wrote {out} (bioimageio.spec: {status})")
    return 0
