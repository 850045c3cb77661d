"""The ``active-annotator`` command.

One module per subcommand group in this package (``cli/scale.py`` holds
``train`` and ``predict``, ``cli/cnn.py`` ``finetune`` and ``cnn-predict``, ...);
each parses arguments, calls the library functions of its concept module
(``active_annotator.scale``, ``active_annotator.cnn``, ...) and prints. The
concept modules hold no argparse code. Subcommands register themselves through
``add_parser(subparsers)`` functions listed in :data:`SUBCOMMANDS` (module
path, function name). Shared options live in :mod:`._args`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import AnnotatorError

# (module, function that adds the subparser); each subparser sets ``func``
SUBCOMMANDS = [
    ("active_annotator.cli.demo", "add_parser"),
    ("active_annotator.cli.scale", "add_parser"),
    ("active_annotator.cli.simulate", "add_parser"),
    ("active_annotator.cli.cnn", "add_parser"),
    ("active_annotator.cli.signals", "add_parser"),
    ("active_annotator.cli.suggest_features", "add_parser"),
    ("active_annotator.cli.explain", "add_parser"),
    ("active_annotator.cli.bioimage", "add_parser"),
    ("active_annotator.cli.quakeml", "add_parser"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="active-annotator",
        description="Active-learning pixel classification: train, predict, suggest where to label next.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, func in SUBCOMMANDS:
        getattr(importlib.import_module(module), func)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AnnotatorError as e:
        print(f"active-annotator {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["SUBCOMMANDS", "build_parser", "main"]
