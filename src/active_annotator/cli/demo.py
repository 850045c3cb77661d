"""``active-annotator demo``: the main job on the bundled sample image.

``active-annotator demo --headless`` runs :func:`active_annotator.demo.run_headless`
(no display needed). Without ``--headless`` it opens napari through the
plugin's ``active_annotator_napari._demo``: the command line is the one place
of the package that starts the GUI, and it imports the plugin only inside
:func:`run_gui`, so the core library never does. The checks here (a display,
Qt's system libraries) run first, so a missing piece gets a sentence and the
apt line instead of Qt's abort.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..demo import run_headless

GUI_INSTALL_HINT = (
    "The interactive demo needs napari and a Qt binding. Install them with\n"
    '    pip install "napari-active-annotator[gui]"\n'
    "or run the demo without a display:\n"
    "    active-annotator demo --headless"
)

#: Debian/Ubuntu packages that Qt's xcb platform plugin (napari's window on X11)
#: needs beyond a bare system; README.md and scripts/run-tests.sh list the same.
GUI_APT_PACKAGES = (
    "libgl1 libgl1-mesa-dri libglx-mesa0 libegl1 libglib2.0-0 libfontconfig1 "
    "libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 "
    "libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 "
    "libxcb-xkb1 libdbus-1-3"
)
GUI_APT_LINE = f"sudo apt-get install {GUI_APT_PACKAGES}"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand to the ``active-annotator`` parser."""
    p = subparsers.add_parser(
        "demo",
        help="open napari on the bundled nuclei sample, trained once (or --headless)",
        description=(
            "Train a pixel classifier on the starter labels of the bundled 2-D nuclei "
            "image and show the prediction and its uncertainty in napari. With --headless, "
            "write the prediction, probabilities, uncertainty and a PNG overview instead."
        ),
    )
    p.add_argument("--headless", action="store_true",
                   help="no window: train, predict and write files to --output")
    p.add_argument("--output", type=Path, default=Path("active-annotator-demo"), metavar="DIR",
                   help="folder for the headless results (default: ./active-annotator-demo)")
    p.add_argument("--trees", "--n-estimators", dest="trees", type=int, default=100, metavar="N",
                   help="trees in the random forest of the headless demo (default: 100; "
                        "--n-estimators is the same option)")
    p.add_argument("--max-depth", type=int, default=None, metavar="D",
                   help="maximum tree depth of the headless demo (default: unlimited)")
    p.add_argument("--quit-after", type=float, default=None, metavar="SECONDS",
                   help="GUI only: close the window SECONDS after the first prediction shows "
                        "(for scripted checks); exit status 1 if none shows within --timeout")
    p.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                   help="with --quit-after: give up if the first training has not finished "
                        "after this long (default: 300)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Entry point of the subcommand; returns the exit status."""
    if args.headless:
        return run_headless(args.output, n_estimators=args.trees, max_depth=args.max_depth)
    return run_gui(quit_after=args.quit_after, timeout=args.timeout)




# -- GUI -------------------------------------------------------------------------
def run_gui(quit_after: float | None = None, timeout: float = 300.0) -> int:
    """Open napari with the sample and the docked widget, trained once.

    The napari part lives in the plugin (``active_annotator_napari._demo``):
    the core never imports napari or Qt itself.
    """
    try:
        from active_annotator_napari._demo import run
    except ImportError as e:  # napari, Qt binding or qtpy missing
        print(f"active-annotator demo: {e}\n{GUI_INSTALL_HINT}", file=sys.stderr)
        return 1

    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
        # Qt would abort the process with a cryptic xcb message
        print("active-annotator demo: no display found (DISPLAY is not set). Run\n"
              "    active-annotator demo --headless\n"
              "or start it on a virtual display: xvfb-run -a active-annotator demo",
              file=sys.stderr)
        return 1
    missing = missing_qt_libraries()
    if missing:
        # Qt would abort the process (exit 134) with "could not load the Qt platform plugin"
        print("active-annotator demo: Qt cannot open a window, these system libraries are "
              f"missing: {', '.join(missing)}.\nOn Debian/Ubuntu install them with\n"
              f"    {GUI_APT_LINE}\nor run the demo without a window:\n"
              "    active-annotator demo --headless", file=sys.stderr)
        return 1
    return run(quit_after=quit_after, timeout=timeout)


def _qt_xcb_plugin() -> Path | None:
    """The Qt xcb platform plugin that qtpy would load, found without importing Qt."""
    import importlib.util

    bindings = ["PyQt5", "PyQt6", "PySide2", "PySide6"]  # qtpy's order
    wanted = os.environ.get("QT_API", "").lower()
    bindings.sort(key=lambda b: b.lower() != wanted)
    for binding in bindings:
        try:
            spec = importlib.util.find_spec(binding)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            plugins = sorted(Path(folder).glob("**/plugins/platforms/libqxcb.so"))
            if plugins:
                return plugins[0]
    return None


def missing_libraries(binary: Path) -> list[str]:
    """Shared libraries that ``binary`` (an ELF file) needs and the loader cannot find.

    Asks ``ldd``, which resolves them as the dynamic loader will (RPATH,
    ``LD_LIBRARY_PATH``, the ldconfig cache); [] where ``ldd`` is not available.
    """
    import shutil
    import subprocess

    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        done = subprocess.run([ldd, str(binary)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({line.split("=>")[0].strip() for line in done.stdout.splitlines()
                   if "not found" in line})


def missing_qt_libraries() -> list[str]:
    """System libraries missing for napari's window on X11 ([] elsewhere or if all present)."""
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY"):
        return []
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return []
    if not platform and os.environ.get("WAYLAND_DISPLAY"):
        return []  # Qt 6 prefers Wayland there
    plugin = _qt_xcb_plugin()
    return missing_libraries(plugin) if plugin is not None else []
