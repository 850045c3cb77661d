"""Interactive latency of the napari widget: end of a stroke -> visible prediction updated.

Run: ``xvfb-run -a python benchmarks/bench_latency.py [--strokes 10] [--view 1024]``

Drives the real ``PixelClassifierWidget`` in a napari viewer on a 2048x2048 real
image (the nuclei2d sample tiled 4x4, uint16) with the sample's starter strokes
tiled over it, Live mode on, default features (20) and forest (100 trees,
unlimited depth; Live mode retrains a preview forest of "Trees in Live mode",
default 32, which ``--live-trees`` changes). The camera shows about ``--view`` image pixels (``0``: the
whole image). Each stroke is painted with ``data_setitem`` inside
``block_history()`` (fires ``events.paint`` like a brush); the clock runs from
the paint event to the widget's ``visible_updated`` signal (emitted after the
prediction/probabilities/uncertainty layers were written for the visible
region), Qt events processed meanwhile. After each stroke the benchmark waits
until the whole-image stage has finished too (reported separately).

The previous approach (what the widget did before this change: Live retrains
500 ms after the stroke, the worker runs fit_and_validate + whole-image
predict_proba + entropy/argmax with features recomputed every time, then the
layers are written) is measured in the same run through the same widget, by
swapping its worker body for the previous one (``_previous_run_job`` below, a
copy of it); its latency runs from the paint event to ``predicted``. The core
calls alone (no GUI, no delay) are timed as well; both use the full forest.
``--full-strokes`` more strokes are timed with Live mode training the full
forest too, to show what the preview forest saves.
"""

import argparse
import os
import time

import numpy as np


def _previous_run_job(job, task):
    """The widget's worker body before the cached, visible-first path (for comparison)."""
    from active_annotator import entropy
    from active_annotator.evaluation import fit_and_validate
    from active_annotator.session import Stage
    from active_annotator_napari._widget import _Outcome

    start = time.perf_counter()
    clf = job.classifier
    image, channel_axis = job.session.image, job.session.channel_axis
    validation = None
    if job.kind == "train":
        validation = fit_and_validate(clf, image, job.labels, channel_axis=channel_axis,
                                      on_progress=lambda d, t: task.progress(d, t, "Training"),
                                      should_stop=task.should_stop)
    yield (1, 3)
    proba = clf.predict_proba(image, channel_axis=channel_axis, should_stop=task.should_stop,
                              on_progress=lambda d, t: task.progress(d, t, "Predicting tiles"))
    yield (2, 3)
    uncertainty = entropy(proba)
    prediction = clf.classes_[np.argmax(proba, axis=0)].astype(clf.labels_dtype_)
    whole = tuple(slice(0, n) for n in prediction.shape)
    seconds = time.perf_counter() - start
    return _Outcome(stage=Stage(whole, proba, prediction, uncertainty, clf, True, seconds), classifier=clf,
                    seconds=seconds, validation=validation)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strokes", type=int, default=10)
    p.add_argument("--old", type=int, default=5, help="strokes with the previous approach")
    p.add_argument("--view", type=int, default=1024, help="image pixels on screen (0: whole image)")
    p.add_argument("--live-trees", type=int, default=None, help="Trees in Live mode (default: the widget's)")
    p.add_argument("--full-strokes", type=int, default=3,
                   help="strokes timed with Live mode training the full forest")
    a = p.parse_args(argv)

    import napari
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    from active_annotator import data, entropy
    from active_annotator.evaluation import fit_and_validate
    from active_annotator_napari import _widget
    from active_annotator_napari._widget import LIVE_DELAY_MS, PixelClassifierWidget

    d = data.nuclei2d()
    image = np.tile(d["image"], (4, 4))
    truth = np.tile(d["truth"], (4, 4))
    labels = np.tile(d["labels"], (4, 4))
    n = image.shape[0]

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)  # noqa: SLF001 - benchmark only: a usual window size
    viewer.add_image(image, name="nuclei")
    annotations = viewer.add_labels(labels.copy(), name="annotations")
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pixel classifier")
    if a.live_trees:
        widget.live_trees_spin.setValue(a.live_trees)
    live_trees = widget.live_trees_spin.value()
    trees = widget.trees_spin.value()
    app = QApplication.instance()
    heartbeat = QTimer()  # wakes the blocking waits now and then (finished workers post no event)
    heartbeat.start(20)
    for _ in range(20):
        app.processEvents()
    state = {}
    widget.visible_updated.connect(lambda: state.__setitem__("visible", time.perf_counter()))
    widget.predicted.connect(lambda: state.__setitem__("full", time.perf_counter()))
    widget.failed.connect(lambda msg: state.__setitem__("failed", msg))

    def wait(key, timeout=300):
        # a blocking event loop (like qtbot.waitSignal): no busy polling that would take a core
        t_end = time.perf_counter() + timeout
        while key not in state:
            if "failed" in state:
                raise RuntimeError(state["failed"])
            if time.perf_counter() > t_end:
                raise TimeoutError(key)
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)

    def idle():
        while widget.busy:
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)

    # first training: computes and caches the features of the whole image
    t0 = time.perf_counter()
    state.clear()
    widget.live_check.setChecked(True)
    wait("full")
    idle()
    first = time.perf_counter() - t0

    # the first result adds the output layers (napari may reset the view), so the camera is placed after it
    camera = viewer.scene.camera
    if a.view:
        camera.center = (n / 2, n / 2)
        camera.zoom = max(viewer.canvas.size) / a.view
    else:
        viewer.reset_view()
    app.processEvents()
    visible = widget.visible_region(viewer.layers["nuclei"], image.shape, None, 2)
    vy, vx = visible


    rng = np.random.default_rng(0)

    def stroke():
        # a short horizontal stroke inside the visible region, class from the truth
        y = int(rng.integers(vy.start + 5, vy.stop - 5))
        x0 = int(rng.integers(vx.start + 5, max(vx.start + 6, vx.stop - 45)))
        xs = np.arange(x0, min(x0 + 40, n))
        value = np.where(truth[y, xs] == 2, 2, 1).astype(np.uint8)
        state.clear()
        t0 = time.perf_counter()
        with annotations.block_history():
            for v in (1, 2):
                sel = xs[value == v]
                if sel.size:
                    annotations.data_setitem((np.full(sel.size, y), sel), v)
        return t0

    # the previous approach through the same widget: its worker body and its 500 ms delay
    # (it trained the full forest on every stroke)
    ours_run_job = _widget._run_job
    _widget._run_job = _previous_run_job
    widget._live_timer.setInterval(500)
    widget.live_trees_spin.setValue(trees)
    prev = []
    for _ in range(a.old):
        t0 = stroke()
        wait("full")
        idle()
        prev.append(state["full"] - t0)
    _widget._run_job = ours_run_job
    widget._live_timer.setInterval(LIVE_DELAY_MS)

    # ours, but Live mode training the full forest
    lat_full_forest = []
    for _ in range(a.full_strokes):
        t0 = stroke()
        wait("visible")
        lat_full_forest.append(state["visible"] - t0)
        wait("full")
        idle()
    widget.live_trees_spin.setValue(live_trees)

    lat, full, parts = [], [], []
    for i in range(a.strokes):
        t0 = stroke()
        wait("visible")
        lat.append(state["visible"] - t0)
        wait("full")
        idle()
        parts.append(dict(widget.timings))
        full.append(state["full"] - t0)

    # breakdown of one update on the final labels (the live preview forest)
    clf = widget.classifier
    feats = widget.session.cached_features.plane(())
    lab = np.asarray(annotations.data)
    t = time.perf_counter()
    X = feats.at(lab > 0)
    t_x = time.perf_counter() - t
    y_ = lab[lab > 0]
    from active_annotator import PixelClassifier

    twin = PixelClassifier(**clf.get_params())
    t = time.perf_counter()
    twin.fit_features(X, y_)
    t_fit = time.perf_counter() - t
    t = time.perf_counter()
    twin.predict_proba_features(feats.region(visible))
    t_pred = time.perf_counter() - t

    # a script doing the widget's Live round with the core session (no GUI): same image, same
    # final labels, same preview forest; the session's cache is warmed by one round first
    from active_annotator import AnnotationSession

    script = []
    session = AnnotationSession(image)
    for i in range(a.strokes + 1):
        c = PixelClassifier(**clf.get_params())
        t = time.perf_counter()
        next(session.round(lab, c, visible))  # the widget's worker: the same round, first stage
        if i:
            script.append(time.perf_counter() - t)

    # the previous approach's core calls alone, same labels, same run
    old = []
    for _ in range(a.old):  # noqa: B007
        c = PixelClassifier(**{**clf.get_params(), "n_estimators": trees})
        t = time.perf_counter()
        fit_and_validate(c, image, lab)
        proba = c.predict_proba(image)
        entropy(proba)
        c.classes_[np.argmax(proba, axis=0)]
        old.append(time.perf_counter() - t)

    def q(v, p):
        return float(np.percentile(v, p))

    print(f"image {image.shape} {image.dtype}, {X.shape[0]} labelled pixels, {X.shape[1]} features, "
          f"{trees} trees ({live_trees} in Live mode), {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"visible region {vy.stop - vy.start} x {vx.stop - vx.start} px "
          f"(canvas {tuple(viewer.canvas.size)}), live delay {LIVE_DELAY_MS} ms")
    print(f"first training on the image (features of all tiles computed): {first:.2f} s")
    print()
    print("| path | n | median (s) | p90 (s) | ratio (previous / ours, median) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| ours: stroke -> visible region on screen | {len(lat)} | {q(lat, 50):.2f} | {q(lat, 90):.2f} | "
          f"{q(prev, 50) / q(lat, 50):.1f}x |")
    print(f"| ours: stroke -> whole image updated | {len(full)} | {q(full, 50):.2f} | {q(full, 90):.2f} | "
          f"{q(prev, 50) / q(full, 50):.1f}x |")
    if lat_full_forest:
        print(f"| ours, Live mode with all {trees} trees: stroke -> visible region on screen | "
              f"{len(lat_full_forest)} | {q(lat_full_forest, 50):.2f} | {q(lat_full_forest, 90):.2f} | "
              f"{q(prev, 50) / q(lat_full_forest, 50):.1f}x |")
    print(f"| script, AnnotationSession: train + visible stage (no live delay, no GUI) | {len(script)} | "
          f"{q(script, 50):.2f} | {q(script, 90):.2f} | {q(prev, 50) / q(script, 50):.1f}x |")
    print(f"| previous widget: stroke -> whole image (= visible) updated | {len(prev)} | "
          f"{q(prev, 50):.2f} | {q(prev, 90):.2f} | 1.0x |")
    print(f"| previous core calls alone (fit_and_validate + predict_proba, no GUI) | {len(old)} | "
          f"{q(old, 50):.2f} | {q(old, 90):.2f} | {q(prev, 50) / q(old, 50):.1f}x |")
    print()
    print(f"widget timings (median): worker from job start to visible result "
          f"{np.median([t['worker_s'] for t in parts]):.2f} s, layer writes "
          f"{np.median([t['write_s'] for t in parts]):.2f} s; worker to whole image "
          f"{np.median([t['full_worker_s'] for t in parts]):.2f} s, whole-image layer writes "
          f"{np.median([t['full_write_s'] for t in parts]):.2f} s")
    print(f"breakdown (ours, one update, {clf.n_estimators} trees): live delay {LIVE_DELAY_MS / 1000:.2f} s, cached features at "
          f"labels {t_x:.2f} s, forest fit {t_fit:.2f} s, predict visible (every pixel) {t_pred:.2f} s; the rest is "
          "thread hand-over, entropy/argmax and the layer writes")
    viewer.close()


if __name__ == "__main__":
    main()
