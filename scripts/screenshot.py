"""Screenshot of the Pixel classifier widget working on the 2-D nuclei sample.

Run under a virtual display::

    xvfb-run -a python scripts/screenshot.py [output.png]
    xvfb-run -a python scripts/screenshot.py --sample micronuclei2d docs/images/suggestions_micronuclei.png

The micronuclei2d sample comes without strokes: the script starts it with one
dab per class copied from the ground truth.

Opens napari, loads the plugin's nuclei2d sample (image, starter strokes,
hidden ground truth), docks the widget, trains, and then plays three rounds
of the active-learning loop: Suggest, label the first suggestion with a few
strokes copied from the ground truth (as a person would paint there), train
again (the ranking refreshes by itself). It saves the whole window with the
Suggestions tab open, the ranked patches outlined on the image (the current
one in yellow) and the learning curve below, to
docs/images/pixel_classifier.png.
"""

import sys
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QTimer

PLUGIN = "napari-active-annotator"
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "pixel_classifier.png"
ROUNDS = 3  # training rounds after the first, each after labelling one suggestion


def label_from_truth(annotations, truth, candidate, every=6):
    """Paint every ``every``-th row of the candidate with the true classes: a few strokes."""
    region = candidate.region_mask(truth.shape)
    rows = (np.arange(truth.shape[0]) % every == 0)[:, None]
    for value in np.unique(truth[region]):
        if value:
            where = np.nonzero(region & rows & (truth == value))
            annotations.data_setitem(where, int(value))


def starter_dabs(annotations, truth, seed=0):
    """One radius-2 dab per class at a random pixel of it (the simulation's start)."""
    from active_annotator.simulate import Oracle, _start_labels

    start = _start_labels(truth, Oracle(2), seed)
    annotations.data_setitem(np.nonzero(start), start[start != 0])


def main(output: Path = DEFAULT_OUTPUT, timeout_s: float = 300, sample: str = "nuclei2d") -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-active-annotator: pixel classifier")
    viewer.window.resize(1500, 950)
    viewer.open_sample(PLUGIN, sample)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Pixel classifier")
    result = {"code": 1}
    panel = widget.suggestions_panel
    panel.n_spin.setValue(8)
    truth = np.asarray(viewer.layers["ground truth"].data)
    annotations = viewer.layers["annotations"]
    if not np.any(annotations.data):
        starter_dabs(annotations, truth)

    def on_trained():
        if not panel.suggestions:
            panel.suggest()  # later rounds refresh the ranking by themselves

    def on_suggested():
        if len(widget.history.rounds) <= ROUNDS:
            label_from_truth(annotations, truth, panel.suggestions[0].candidate)
            QTimer.singleShot(0, widget.train)
        else:
            shoot()

    def shoot():
        for s in panel.suggestions:  # what the truth holds in each suggested patch
            shown = np.unique(truth[s.candidate.region_mask(truth.shape)]).tolist()
            print(f"suggestion {s.rank}: true classes {shown}; {s.reason}")
        panel.next_suggestion()  # outline the first suggestion in yellow...
        viewer.reset_view()  # ...but show the whole image with every suggestion
        widget.panels.setCurrentIndex(1)  # Suggestions
        panel.table.selectRow(0)
        viewer.layers.selection.active = viewer.layers["annotations"]
        # let the canvas and dock settle before grabbing the window
        QTimer.singleShot(800, save)

    def save():
        viewer.screenshot(str(output), canvas_only=False)
        print(f"saved {output}")
        result["code"] = 0
        viewer.close()

    def give_up():
        if result["code"]:
            print(f"no prediction after {timeout_s:.0f} s: {widget.status.text()}", file=sys.stderr)
            viewer.close()

    widget.trained.connect(on_trained)
    panel.suggested.connect(on_suggested)
    panel.failed.connect(lambda message: (print(message, file=sys.stderr), viewer.close()))
    widget.failed.connect(lambda message: (print(message, file=sys.stderr), viewer.close()))
    QTimer.singleShot(int(timeout_s * 1000), give_up)
    QTimer.singleShot(0, widget.train)
    napari.run()
    return result["code"]


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--sample", default="nuclei2d", choices=("nuclei2d", "micronuclei2d"))
    args = ap.parse_args()
    sys.exit(main(args.output, sample=args.sample))
