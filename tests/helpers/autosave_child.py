"""Child process for the kill test: paints strokes non-stop while autosave runs.

Prints ``ONDISK n`` each time an autosave finished and the first ``n`` strokes
are verified on disk. The parent kills this process at an arbitrary moment.
"""

import sys

import napari
import numpy as np
from qtpy.QtCore import QTimer

from active_annotator_napari._project import save_project

ROWS = 120  # strokes are 2 px rows: stroke k covers rows 2k..2k+1, columns 10..200


def stroke_value(k):
    return 1 + k % 2


def main(path):
    viewer = napari.Viewer(show=False)
    img = viewer.add_image(np.zeros((2 * ROWS, 256), np.float32), name="img")
    lab = viewer.add_labels(np.zeros((2 * ROWS, 256), np.uint8), name="annotations")
    session = save_project(path, img, lab, delay_ms=150)
    done = []

    def stroke():
        k = len(done)
        if k >= ROWS:
            return
        rows, cols = np.mgrid[2 * k: 2 * k + 2, 10:200]
        with lab.block_history():  # one stroke = one undo step, as a brush drag
            lab.data_setitem((rows.ravel(), cols.ravel()), stroke_value(k))
        done.append(k)

    def verify(_name):
        disk = session.project.load_annotations("img", prefer_autosave=True)
        n = 0
        while n < ROWS and np.all(disk[2 * n: 2 * n + 2, 10:200] == stroke_value(n)):
            n += 1
        print(f"ONDISK {n}", flush=True)

    session.autosaved.connect(verify)
    timer = QTimer()
    timer.timeout.connect(stroke)
    timer.start(40)
    napari.run(force=True)


if __name__ == "__main__":
    main(sys.argv[1])
