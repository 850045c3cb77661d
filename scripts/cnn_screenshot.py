"""Screenshot of the "CNN fine-tuning" widget on the nuclei2d sample (docs/cnn.md).

The sample's starter strokes (435 pixels), a random forest trained on them
(what pressing Train in the Pixel classifier gives: hidden per-class "probability"
layers), then a short CNN fine-tuning run through the widget with a warm start
from that forest, and ``docs/images/cnn_widget.png`` with the loss curve.
Needs a display; on a server:

    xvfb-run -a -s "-screen 0 1920x1200x24" python scripts/cnn_screenshot.py
"""

import sys
from pathlib import Path

import napari
from qtpy.QtCore import QEventLoop, QTimer

from active_annotator import FeatureSet, PixelClassifier, data
from active_annotator_napari._cnn_widget import CNNWidget
from active_annotator_napari._layers import FOREST_SOURCE, put_probability_layers

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "cnn_widget.png"


def run_and_wait(widget, start, timeout_ms=600_000):
    """Start a widget action and spin the Qt event loop until it has written its layers (or failed)."""
    loop = QEventLoop()
    widget.trained.connect(loop.quit)
    widget.failed.connect(loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    start()
    loop.exec()
    if widget.cnn is None:
        raise SystemExit(f"fine-tuning did not finish: {widget.status.text()}")


def main(out=OUT):
    d = data.nuclei2d()
    viewer = napari.Viewer(title="napari-active-annotator: CNN fine-tuning")
    viewer.add_image(d["image"], name="nuclei", contrast_limits=(0, 300))
    # the forest the Pixel classifier's Train button would give, as its hidden layer
    forest = PixelClassifier(FeatureSet.default(ndim=2), random_state=0).fit(d["image"], d["labels"])
    put_probability_layers(viewer, forest.predict_proba(d["image"]), forest.classes_, prefix="probability",
                           source=FOREST_SOURCE, scale=(1.0, 1.0), translate=(0.0, 0.0))
    viewer.add_labels(d["labels"], name="annotations")

    widget = CNNWidget(viewer)
    viewer.window.add_dock_widget(widget, name="CNN fine-tuning", area="right")
    viewer.window.resize(1800, 1150)
    widget.warm_epochs_spin.setValue(4)
    widget.epochs_spin.setValue(12)
    widget.threads_spin.setValue(1)  # fastest on a shared, busy machine
    run_and_wait(widget, widget.fine_tune)

    prediction = viewer.layers["cnn prediction"]
    prediction.contour = 2  # outlines: the nuclei stay visible underneath
    prediction.opacity = 1.0
    viewer.layers["cnn uncertainty"].visible = False
    viewer.layers.selection.active = viewer.layers["annotations"]
    viewer.reset_view()
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"wrote {out}: {widget.status.text()}")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
