"""First Train and first Suggest on a fresh install: how much is JIT compilation.

Run: ``python benchmarks/bench_first_run.py`` (about a minute on two cores);
``xvfb-run -a python benchmarks/bench_first_run.py --gui`` adds the real dock.

Each measurement runs in a new Python process with its own, at first empty,
user cache folder (``XDG_CACHE_HOME``), so the first process sees what a
fresh install sees (numba compiles every kernel) and the second what every
later start sees (kernels loaded from the user cache, see
``active_annotator._jit_cache``). In each process, on the bundled nuclei2d
sample with its starter strokes and the widget's defaults (default features,
100 trees, patches of 32, 10 suggestions, the default strategy):

* ``import``: ``import active_annotator``;
* ``train``: ``PixelClassifier.fit`` + ``predict_proba`` of the whole image
  (what Train computes before it draws);
* ``suggest``: ``sampling.suggest_for_image`` on those probabilities (what
  Suggest computes).

The last row is a fresh install where the kernels were compiled by
``_jit_cache.start_warm_up`` (which the Pixel classifier dock starts when it
opens) before Train is pressed: ``warm-up`` is how long after opening the dock
the first Train is as fast as later ones.

``--gui`` times the Pixel classifier dock itself on a fresh install (new user
cache): Train (until the whole image is predicted and the layers written),
Suggest (until the list is shown), and a second round of each, once with Train
pressed as soon as the dock opened and once ``--paint-seconds`` later.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, time
t0 = time.perf_counter()
import active_annotator
t1 = time.perf_counter()
from active_annotator import FeatureSet, PixelClassifier, data
warm = 0.0
if WARM_UP:  # what the Pixel classifier dock does when it opens, before the first Train
    from active_annotator._jit_cache import start_warm_up
    start_warm_up().join()
    warm = time.perf_counter() - t1
from active_annotator.sampling import suggest_for_image
d = data.nuclei2d()
t2 = time.perf_counter()
clf = PixelClassifier(FeatureSet.default(ndim=2), n_estimators=100, n_jobs=N_JOBS).fit(d["image"], d["labels"])
proba = clf.predict_proba(d["image"])
t3 = time.perf_counter()
suggest_for_image(proba, d["labels"], n=10, size=32, seed=0, spatial_ndim=2, image=d["image"],
                  features=clf.feature_set)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "warm_up": warm, "train": t3 - t2, "suggest": t4 - t3}))
"""


GUI_CHILD = r"""
import json, time
t0 = time.perf_counter()
import napari
from qtpy.QtCore import QTimer
viewer = napari.Viewer(show=True)
viewer.open_sample("napari-active-annotator", "nuclei2d")
_dock, widget = viewer.window.add_plugin_dock_widget("napari-active-annotator", "Pixel classifier")
panel = widget.suggestions_panel
got = {"open": time.perf_counter() - t0}
app = napari.qt.get_qapp()

def wait(signal, seconds=600):
    done = []
    signal.connect(lambda *a: done.append(a))
    widget.failed.connect(lambda m: done.append(m))
    panel.failed.connect(lambda m: done.append(m))
    end = time.perf_counter() + seconds
    while not done and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)
    while widget.busy and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)

end = time.perf_counter() + PAINT_SECONDS  # the person looks and paints before the first Train
while time.perf_counter() < end:
    app.processEvents()
    time.sleep(0.01)
t = time.perf_counter(); widget.train(); wait(widget.trained); got["train"] = time.perf_counter() - t
t = time.perf_counter(); panel.suggest(); wait(panel.suggested); got["suggest"] = time.perf_counter() - t
t = time.perf_counter(); widget.train(); wait(widget.trained); got["train2"] = time.perf_counter() - t
t = time.perf_counter(); panel.suggest(); wait(panel.suggested); got["suggest2"] = time.perf_counter() - t
viewer.close()
print(json.dumps(got))
"""


def measure_gui(cache: Path, paint_seconds: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(cache)
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root / "plugin")]
                                        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    done = subprocess.run([sys.executable, "-c", GUI_CHILD.replace("PAINT_SECONDS", str(paint_seconds))],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(cache: Path, n_jobs: int, warm_up: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(cache)
    src = Path(__file__).resolve().parents[1] / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(src)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    done = subprocess.run([sys.executable, "-c", CHILD.replace("N_JOBS", str(n_jobs)).replace("WARM_UP", str(warm_up))],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2, help="processes on the same cache (default 2)")
    p.add_argument("--n-jobs", type=int, default=2, help="threads of the forest (default 2)")
    p.add_argument("--gui", action="store_true",
                   help="also the real Pixel classifier dock (needs a display, e.g. xvfb-run -a)")
    p.add_argument("--paint-seconds", type=float, default=20.0,
                   help="GUI: seconds between opening the dock and the first Train (default 20)")
    args = p.parse_args(argv)
    print(f"{'process':<44}{'import':>8}{'warm-up':>9}{'train':>8}{'suggest':>9}  [s]")

    def show(name, got):
        print(f"{name:<44}{got['import']:>8.2f}{got['warm_up']:>9.2f}{got['train']:>8.2f}"
              f"{got['suggest']:>9.2f}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            name = "fresh install (compiles)" if run == 0 else f"start {run + 1} (kernels from the cache)"
            show(name, measure(Path(tmp), args.n_jobs))
    with tempfile.TemporaryDirectory() as tmp:
        show("fresh install, dock's background warm-up", measure(Path(tmp), args.n_jobs, True))
    if args.gui:
        print(f"\nPixel classifier dock on nuclei2d, first Train {args.paint_seconds:g} s after it opened:")
        print(f"{'process':<36}{'open':>7}{'train':>8}{'suggest':>9}{'train 2':>9}{'suggest 2':>11}  [s]")
        for paint in (0.0, args.paint_seconds):
            with tempfile.TemporaryDirectory() as tmp:
                got = measure_gui(Path(tmp), paint)
            name = f"fresh install, Train after {paint:g} s"
            print(f"{name:<36}{got['open']:>7.2f}{got['train']:>8.2f}{got['suggest']:>9.2f}"
                  f"{got['train2']:>9.2f}{got['suggest2']:>11.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
