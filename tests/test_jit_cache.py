"""numba's compiled kernels go to the user cache directory, never into the
installed package (a ``site-packages/active_annotator/__pycache__`` full of
files pip does not know turns a later editable install into an empty
namespace package)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import active_annotator

PACKAGE_DIR = Path(active_annotator.__file__).resolve().parent

# imports the package, compiles the feature and forest kernels with a tiny fit,
# and reports where each of the package's kernels keeps its cache
PROBE = """
import json, sys
import numba, numpy as np
before = numba.config.CACHE_DIR
from active_annotator import FeatureSet, PixelClassifier
import active_annotator.signals, active_annotator.objects, active_annotator.scale
rng = np.random.default_rng(0)
image = rng.random((24, 24)).astype(np.float32)
labels = np.zeros((24, 24), np.uint8)
labels[2:6, 2:6], labels[15:20, 15:20] = 1, 2
clf = PixelClassifier(FeatureSet(sigmas=(1.0,)), n_estimators=2).fit(image, labels)
clf.predict(image)
paths = {}
for name, mod in list(sys.modules.items()):
    if name.startswith("active_annotator"):
        for key, value in vars(mod).items():
            if isinstance(value, numba.core.dispatcher.Dispatcher) and value._cache is not None:
                paths[name + "." + key] = value._cache._cache_path
print(json.dumps({"paths": paths, "before": before, "after": numba.config.CACHE_DIR}))
"""


def _probe(tmp_path: Path, **env_extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), **env_extra)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_DIR.parent)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _new_cache_files(folder: Path, since: float) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")
            and p.stat().st_mtime >= since]


def test_kernels_are_cached_in_the_user_cache_dir_not_in_the_package(tmp_path):
    start = time.time() - 1
    got = _probe(tmp_path)
    user_dir = tmp_path / "cache" / "active-annotator" / "numba"
    assert {"active_annotator._feature_kernels._conv_mid", "active_annotator.forest._predict_index_packed"} \
        <= set(got["paths"]), got["paths"]
    for kernel, path in got["paths"].items():
        assert Path(path).is_relative_to(user_dir), (kernel, path)
    written = _new_cache_files(user_dir, start)
    assert any(p.name.startswith("_feature_kernels.") for p in written), written
    assert any(p.name.startswith("forest.") for p in written), written
    assert _new_cache_files(PACKAGE_DIR, start) == []


def test_numba_setting_of_other_libraries_is_left_as_it_was(tmp_path):
    got = _probe(tmp_path)
    assert got["before"] == got["after"] == ""


def test_numba_cache_dir_set_by_the_user_wins(tmp_path):
    mine = tmp_path / "mine"
    got = _probe(tmp_path, NUMBA_CACHE_DIR=str(mine))
    assert got["paths"]
    for path in got["paths"].values():
        assert Path(path).is_relative_to(mine)
    assert not (tmp_path / "cache" / "active-annotator").exists()


WARM_UP_PROBE = """
import json, sys
import numba, numpy as np
from active_annotator import FeatureSet, PixelClassifier
from active_annotator._jit_cache import start_warm_up

def signatures():
    out = {}
    for name, mod in list(sys.modules.items()):
        if name.startswith("active_annotator"):
            for key, value in vars(mod).items():
                if isinstance(value, numba.core.dispatcher.Dispatcher):
                    out[name + "." + key] = sorted(map(str, value.signatures))
    return out

thread = start_warm_up()
same = start_warm_up() is thread
thread.join()
warmed = signatures()
rng = np.random.default_rng(1)
for shape in ((70, 90), (9, 30, 40)):
    image = (rng.random(shape) * 4000).astype(np.uint16)
    labels = np.zeros(shape, np.uint8)
    labels[..., 2:8, 2:8], labels[..., 20:28, 25:35] = 1, 2
    clf = PixelClassifier(FeatureSet.default(ndim=len(shape)), n_estimators=5).fit(image, labels)
    clf.predict_proba(image)
print(json.dumps({"same": same, "warmed": warmed, "after": signatures()}))
"""


def test_background_warm_up_compiles_every_kernel_that_training_needs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_DIR.parent)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    done = subprocess.run([sys.executable, "-c", WARM_UP_PROBE], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["same"]  # one warm-up per process
    assert any(got["warmed"].values())
    # training and prediction of 2-D and 3-D images compiled nothing new
    assert got["after"] == got["warmed"]
