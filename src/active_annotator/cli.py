"""The ``active-annotator`` command.

Each subcommand lives in the module of its concept; this file only parses
arguments and dispatches, so the core stays importable without any GUI.
Subcommands register themselves through ``add_parser(subparsers)`` functions
listed in :data:`SUBCOMMANDS` (module path, function name).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import AnnotatorError

# (module, function that adds the subparser); each subparser sets ``func``
SUBCOMMANDS = [
    ("active_annotator.demo", "add_parser"),
    ("active_annotator.scale", "add_parser"),
    ("active_annotator.simulate", "add_parser"),
    ("active_annotator.cnn", "add_parser"),
    ("active_annotator.signals", "add_parser"),
    ("active_annotator.feature_suggestion", "add_parser"),
    ("active_annotator.explain", "add_parser"),
    ("active_annotator.bioimage", "add_parser"),
    ("active_annotator.io.quakeml", "add_parser"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="active-annotator",
        description="Active-learning pixel classification: train, predict, suggest where to label next.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, func in SUBCOMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:  # not written yet in this version
                continue
            raise
        getattr(mod, func)(sub)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
