"""Screenshot of the Object classifier widget on the nuclei2d sample (docs/objects.md).

Runs the documented example end to end through the widget -- measure,
PCA + k-means, eight nuclei labelled by click-equivalent calls (4 round,
4 elongated), train, a lasso-like selection in the plot -- and saves
``docs/images/objects_widget.png``. Needs a display; on a server:

    xvfb-run -a -s "-screen 0 1920x1200x24" python scripts/objects_screenshot.py
"""

import sys
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QEventLoop, QTimer

from active_annotator import data
from active_annotator_napari._objects_widget import ObjectClassifierWidget

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "objects_widget.png"


def run_and_wait(signal, start, timeout_ms=300_000):
    """Start a widget action and spin the Qt event loop until it signals completion."""
    loop = QEventLoop()
    signal.connect(loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    start()
    loop.exec()
    signal.disconnect(loop.quit)


def main(out=OUT):
    d = data.nuclei2d()
    viewer = napari.Viewer(title="napari-active-annotator: object classifier")
    viewer.add_image(d["image"], name="nuclei", contrast_limits=(0, 300))
    viewer.add_labels(d["objects"], name="objects", opacity=0.25)
    widget = ObjectClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Object classifier", area="right")
    viewer.window.resize(1800, 1150)

    run_and_wait(widget.measured, widget.measure)
    run_and_wait(widget.explored, widget.explore)

    # the hypothesis from the plot: round versus elongated nuclei; label 4 of each
    order = np.argsort(widget.table["elongation"])
    widget.annotate_objects(widget.table["label"][order[:4]], 1)
    widget.annotate_objects(widget.table["label"][order[-4:]], 2)
    run_and_wait(widget.trained, widget.train)

    # select the points on the left of the plot (mostly elongated), as a lasso would
    e = widget.exploration.embedding
    x0 = np.quantile(e[:, 0], 0.12)
    pad = 1.0
    widget._on_lasso([(e[:, 0].min() - pad, e[:, 1].min() - pad), (x0, e[:, 1].min() - pad),
                      (x0, e[:, 1].max() + pad), (e[:, 0].min() - pad, e[:, 1].max() + pad)])
    widget.tabs.setCurrentIndex(0)
    viewer.layers["objects"].visible = False  # the classes layer shows the same nuclei
    viewer.layers.selection.active = viewer.layers["object classes"]
    viewer.reset_view()
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"wrote {out}")
    for name, fig in (("correlation", widget.correlation_figure),
                      ("importance", widget.importance_figure)):
        path = out.with_name(f"objects_{name}.png")
        fig.savefig(path, dpi=110)
        print(f"wrote {path}")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
