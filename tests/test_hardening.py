"""Crafted files from strangers: each case of issue 15, made in the test.

Where a regression could crash the interpreter or allocate tens of GiB, the
file is loaded in a child process with its address space capped
(``tests/helpers/capped.py``): a regression then fails an assertion instead
of taking the machine down.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from active_annotator import FeatureSet, PixelClassifier
from active_annotator.errors import AnnotatorError, ModelFileError

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from capped import crashed, run_capped  # noqa: E402

FOREST_ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")


def _rewrite(path: Path, **changes) -> Path:
    """Rewrite arrays of a model zip (meta may be given as a dict)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for k, v in changes.items():
        if k == "meta" and isinstance(v, (dict, list)):
            v = np.frombuffer(json.dumps(v).encode(), np.uint8)
        arrays[k] = v
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def _meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(bytes(npz["meta"]).decode())


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    rng = np.random.default_rng(0)
    img = rng.random((24, 24)).astype(np.float32)
    lab = np.zeros((24, 24), np.uint8)
    lab[2:5, 2:10], lab[15:18, 10:20] = 1, 2
    clf = PixelClassifier(FeatureSet(sigmas=(1.0,), ndim=2), n_estimators=3, max_depth=4).fit(img, lab)
    return clf.save(tmp_path_factory.mktemp("m") / "m").read_bytes(), clf.n_features_in_


@pytest.fixture
def model_file(small_model, tmp_path):
    path = tmp_path / "m.aamodel"
    path.write_bytes(small_model[0])
    return path


def _bad_chain(n_features, n=40):
    """40 nodes, each internal one with left == right: segfaulted the old kernel."""
    left = np.full(n, -1, np.int32)
    left[:-1] = np.arange(1, n)
    return dict(feature=np.where(left >= 0, 0, -2).astype(np.int32), threshold=np.zeros(n),
                left=left, right=left.copy(), value=np.full((n, 2), 0.5), roots=np.zeros(1, np.int32))


def _unreachable(n_features, n=1001):
    return dict(feature=np.full(n, -2, np.int32), threshold=np.zeros(n), left=np.full(n, -1, np.int32),
                right=np.full(n, -1, np.int32), value=np.full((n, 2), 0.5), roots=np.zeros(1, np.int32))


LOAD_AND_PREDICT = """
import sys, numpy as np
from active_annotator.errors import AnnotatorError
from active_annotator.persistence import load_model
try:
    clf = load_model(sys.argv[1])
    clf.predict(np.zeros((16, 16), np.float32))
except AnnotatorError as e:
    print("REFUSED", type(e).__name__, e)
    sys.exit(0)
print("PREDICTED")
"""


# -- 1. forests that are not forests -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("make, match", [(_bad_chain, "same left and right child"),
                                         (_unreachable, "not reachable")])
def test_crafted_forest_is_refused_by_load_model(model_file, small_model, make, match):
    _rewrite(model_file, **make(small_model[1]))
    r = run_capped(LOAD_AND_PREDICT, mem_gib=3, args=[model_file])
    assert r.returncode == 0 and "REFUSED ModelFileError" in r.stdout, crashed(r)
    assert match in r.stdout and "corrupt" in r.stdout


@pytest.mark.slow
def test_crafted_forest_is_refused_by_predict_command(model_file, small_model, tmp_path):
    _rewrite(model_file, **_bad_chain(small_model[1]))
    np.save(tmp_path / "img.npy", np.zeros((16, 16), np.float32))
    r = run_capped("from active_annotator.cli import main; import sys; sys.exit(main(sys.argv[1:]))",
                   args=["predict", "--model", model_file, "--input", tmp_path / "img.npy",
                         "--output", tmp_path / "out.zarr"])
    assert r.returncode == 1, crashed(r)
    assert "same left and right child" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.slow
def test_crafted_forest_is_refused_in_object_classifier(tmp_path):
    from active_annotator.objects import ObjectClassifier

    rng = np.random.default_rng(1)
    table = {"area": rng.random(40), "mean_intensity": rng.random(40)}
    y = np.where(table["area"] > 0.5, 1, 2)
    path = ObjectClassifier(n_estimators=3).fit(table, y, permutation_repeats=1).save(tmp_path / "o")
    _rewrite(path, **_bad_chain(2))
    code = """
import sys, numpy as np
from active_annotator.errors import ModelFileError
from active_annotator.objects import ObjectClassifier
try:
    ObjectClassifier.load(sys.argv[1]).predict({"area": np.ones(3), "mean_intensity": np.ones(3)})
except ModelFileError as e:
    print("REFUSED", e); sys.exit(0)
print("PREDICTED")
"""
    r = run_capped(code, args=[path])
    assert r.returncode == 0 and "REFUSED" in r.stdout and "same left and right" in r.stdout, crashed(r)
