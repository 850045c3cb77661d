"""Screenshot of the Pixel classifier widget working on the 2-D nuclei sample.

Run under a virtual display::

    xvfb-run -a python scripts/screenshot.py [output.png]

Opens napari, loads the plugin's nuclei2d sample (image, starter strokes,
hidden ground truth), docks the widget, trains once and saves the whole
window to docs/images/pixel_classifier.png.
"""

import sys
from pathlib import Path

import napari
from qtpy.QtCore import QTimer

PLUGIN = "napari-active-annotator"
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "pixel_classifier.png"


def main(output: Path = DEFAULT_OUTPUT, timeout_s: float = 300) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-active-annotator: pixel classifier")
    viewer.window.resize(1500, 950)
    viewer.open_sample(PLUGIN, "nuclei2d")
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Pixel classifier")
    result = {"code": 1}

    def shoot():
        # let the canvas and dock settle before grabbing the window
        viewer.layers.selection.active = viewer.layers["annotations"]
        QTimer.singleShot(500, save)

    def save():
        viewer.screenshot(str(output), canvas_only=False)
        print(f"saved {output}")
        result["code"] = 0
        viewer.close()

    def give_up():
        if result["code"]:
            print(f"no prediction after {timeout_s:.0f} s: {widget.status.text()}", file=sys.stderr)
            viewer.close()

    widget.trained.connect(shoot)
    widget.failed.connect(lambda message: (print(message, file=sys.stderr), viewer.close()))
    QTimer.singleShot(int(timeout_s * 1000), give_up)
    QTimer.singleShot(0, widget.train)
    napari.run()
    return result["code"]


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT))
