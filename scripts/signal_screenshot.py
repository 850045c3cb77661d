"""Screenshots of the signal classifier for docs/signals.md.

Opens the bundled seismogram (ObsPy's 3-component example, a local
earthquake), marks pre-event noise and the strong shaking as two classes,
trains, asks for suggestions and saves

* ``docs/images/signal_view.png``: the waveform view (labels, prediction,
  uncertainty, suggested windows);
* ``docs/images/signal_napari.png``: the whole napari window.

Run under a display (or ``xvfb-run -a python scripts/signal_screenshot.py``).
"""

from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from active_annotator_napari._signal_reader import seismogram
from active_annotator_napari._signal_widget import SignalClassifierWidget

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    for data, kwargs, kind in seismogram():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = SignalClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Signal classifier", area="right")
    viewer.window._qt_window.resize(1900, 1050)
    widget.label_span(0.3, 3.0, 1)     # pre-event noise
    widget.label_span(4.5, 11.0, 2)    # P and S arrivals, strong shaking
    done = []
    widget.trained.connect(lambda: done.append(True))
    widget.train()
    app = QApplication.instance()
    while not done:
        app.processEvents()
    widget.suggest()
    widget.show_all()
    widget.plot.redraw()
    app.processEvents()
    viewer.reset_view()
    app.processEvents()
    viewer.screenshot(OUT / "signal_napari.png", canvas_only=False)
    widget.plot.figure.set_size_inches(11, 5.8)
    widget.plot.figure.savefig(OUT / "signal_view.png", dpi=130, bbox_inches="tight")
    print("wrote", OUT / "signal_view.png", OUT / "signal_napari.png")
    print(widget.status.text())
    viewer.close()


if __name__ == "__main__":
    main()
