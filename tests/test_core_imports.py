"""The core must import without napari or any Qt/GUI module (DESIGN.md)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import active_annotator

GUI_PREFIXES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui",
                "superqt", "vispy")


def core_modules() -> list[str]:
    """Every module of the core package, found on disk so new ones are covered too."""
    names = ["active_annotator"]
    for info in pkgutil.walk_packages(active_annotator.__path__, "active_annotator."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # runs the command when imported
            names.append(info.name)
    return sorted(names)


def test_core_package_has_the_modules_of_the_design():
    names = set(core_modules())
    for expected in ("classifier", "features", "uncertainty", "persistence", "data", "cli",
                     "demo"):
        assert f"active_annotator.{expected}" in names


def test_importing_every_core_module_loads_no_gui_module():
    modules = core_modules()
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        # the CLI builds its parser from every subcommand module: that must stay Qt-free too
        "from active_annotator.cli import build_parser\n"
        "build_parser()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    gui = [m for m in loaded if m.split(".")[0] in GUI_PREFIXES]
    assert gui == [], f"core imports GUI modules: {gui[:20]}"
    assert "active_annotator.classifier" in loaded  # the import really happened
