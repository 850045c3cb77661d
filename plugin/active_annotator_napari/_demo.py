"""The GUI half of ``active-annotator demo``: napari with the sample, widget docked, trained once."""

import sys

import napari
from qtpy.QtCore import QTimer


def run(quit_after=None, timeout=300.0) -> int:
    """Open the viewer; with ``quit_after`` close that many seconds after the first training."""
    viewer = napari.Viewer(title="napari-active-annotator demo")
    # the same layers as File > Open Sample > napari-active-annotator > Nuclei 2D:
    # image, "annotations" (starter strokes) and "ground truth" (hidden)
    viewer.open_sample("napari-active-annotator", "nuclei2d")
    _dock, widget = viewer.window.add_plugin_dock_widget(
        "napari-active-annotator", "Pixel classifier"
    )

    state = {"trained": False, "error": None}

    def on_trained(*_):
        if state["trained"]:
            return
        state["trained"] = True
        if quit_after is not None:
            QTimer.singleShot(int(max(quit_after, 0) * 1000), viewer.close)

    def on_failed(message=""):
        state["error"] = message
        print(f"active-annotator demo: training failed: {message}", file=sys.stderr)
        if quit_after is not None:
            viewer.close()

    widget.trained.connect(on_trained)
    widget.failed.connect(on_failed)
    if quit_after is not None:
        def give_up():
            if not state["trained"] and state["error"] is None:
                print(f"active-annotator demo: no prediction after {timeout:.0f} s; closing.",
                      file=sys.stderr)
                viewer.close()
        QTimer.singleShot(int(timeout * 1000), give_up)
    # train once the event loop runs, so the window is already on screen
    QTimer.singleShot(0, widget.train)
    napari.run()
    if quit_after is not None and not state["trained"]:
        return 1
    return 0
