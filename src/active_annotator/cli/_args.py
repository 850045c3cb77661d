"""Options that several ``active-annotator`` subcommands share, spelled and explained once.

Every command that trains a forest takes ``--trees`` (``--n-estimators``, the
scikit-learn name, is the same option), and every command that reads an image
takes ``--channel-axis``, guessed for RGB(A) images the way napari (and so the
Pixel classifier widget) guesses it.
"""

from __future__ import annotations

import argparse

from ..io.arrays import guess_channel_axis


def add_trees(parser: argparse.ArgumentParser, default: int) -> None:
    """``--trees N`` (alias ``--n-estimators N``), stored as ``args.trees``."""
    parser.add_argument("--trees", "--n-estimators", dest="trees", type=int, default=default,
                        metavar="N",
                        help=f"trees in the random forest (default: {default}; "
                             "--n-estimators is the same option)")


def add_channel_axis(parser: argparse.ArgumentParser) -> None:
    """``--channel-axis AXIS``, stored as ``args.channel_axis`` (None: guess)."""
    parser.add_argument("--channel-axis", type=int, default=None, metavar="AXIS",
                        help="axis of the image that holds its channels, e.g. -1 for RGB "
                             "(y, x, 3) or 0 for (channels, y, x); default: guessed, -1 for "
                             "an RGB(A) image, otherwise no channel axis")


def resolve_channel_axis(given: int | None, shape, labels_shape=None, command: str = "") -> int | None:
    """The channel axis to use: ``given`` if set, else the RGB(A) guess (printed).

    ``labels_shape`` (labels or ground truth of the image, if the command has
    them) must then be the image's shape without its last axis, or no axis is
    guessed.
    """
    if given is not None:
        return given
    axis = guess_channel_axis(shape)
    if axis is None:
        return None
    if labels_shape is not None and tuple(labels_shape) != tuple(shape)[:-1]:
        return None
    name = "RGBA" if tuple(shape)[-1] == 4 else "RGB"
    prefix = f"active-annotator {command}" if command else "active-annotator"
    print(f"{prefix}: the image {tuple(int(n) for n in shape)} looks like {name}: using its "
          "last axis as channels (--channel-axis -1); give --channel-axis to change that")
    return axis
