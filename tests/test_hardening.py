"""Crafted files from strangers: each case of issue 15, made in the test.

Where a regression could crash the interpreter or allocate tens of GiB, the
file is loaded in a child process with its address space capped
(``tests/helpers/capped.py``): a regression then fails an assertion instead
of taking the machine down.
"""

import json
import os
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


# -- 2. one size budget, checked from headers before allocation --------------------------


def _npy_header(shape, dtype="<f8") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _replace_entries(path: Path, entries: dict) -> Path:
    """Rewrite a model zip with some entries' raw bytes replaced (or added)."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        raw = {n: zf.read(n) for n in zf.namelist()}
    raw.update(entries)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, b in raw.items():
            zf.writestr(n, b)
    return path


@pytest.mark.slow
def test_npy_header_declaring_512_gib_is_refused_before_allocation(model_file):
    _replace_entries(model_file, {"threshold.npy": _npy_header((2 ** 36,)) + b"\0" * 64})
    assert model_file.stat().st_size < 10_000
    r = run_capped(LOAD_AND_PREDICT, mem_gib=3, args=[model_file])
    assert r.returncode == 0 and "REFUSED ModelFileError" in r.stdout, crashed(r)
    assert "(68719476736,)" in r.stdout and "ACTIVE_ANNOTATOR_MAX_MODEL_BYTES" in r.stdout


def test_npy_header_larger_than_its_entry_is_corrupt(model_file):
    from active_annotator.persistence import load_model

    _replace_entries(model_file, {"threshold.npy": _npy_header((1000,)) + b"\0" * 64})
    with pytest.raises(ModelFileError, match="more than its zip entry holds"):
        load_model(model_file)


@pytest.mark.slow
def test_model_budget_is_the_total_of_all_entries_not_per_entry(model_file):
    # three members each under the budget, together over it: the budget is per file
    zeros = _npy_header((50_000,), "|u1") + b"\0" * 50_000
    _replace_entries(model_file, {f"pad{i}.npy": zeros for i in range(3)})
    r = run_capped(LOAD_AND_PREDICT, args=[model_file], env={"ACTIVE_ANNOTATOR_MAX_MODEL_BYTES": "120000"})
    assert r.returncode == 0 and "REFUSED ModelFileError" in r.stdout and "unpacks to" in r.stdout, crashed(r)
    # and the same file loads when the user raises the limit
    r = run_capped(LOAD_AND_PREDICT, args=[model_file], env={"ACTIVE_ANNOTATOR_MAX_MODEL_BYTES": "1M"})
    assert r.returncode == 0 and "PREDICTED" in r.stdout, crashed(r)


@pytest.mark.slow
def test_model_with_20000_classes_is_refused(model_file, small_model):
    n, k = 3, 20_000
    value = np.zeros((n, k))
    value[:, 0] = 1
    meta = _meta(model_file)
    meta["classes"] = list(range(1, k + 1))
    meta["labels_dtype"] = "<u2"
    _rewrite(model_file, meta=meta, feature=np.array([0, -2, -2], np.int32), threshold=np.zeros(n),
             left=np.array([1, -1, -1], np.int32), right=np.array([2, -1, -1], np.int32), value=value,
             roots=np.zeros(1, np.int32))
    r = run_capped(LOAD_AND_PREDICT, mem_gib=3, args=[model_file])
    assert r.returncode == 0 and "REFUSED ModelFileError" in r.stdout, crashed(r)
    assert "20000 classes, more than the limit of 1000" in r.stdout


def test_bad_limit_override_is_explained(monkeypatch):
    from active_annotator import limits
    from active_annotator.errors import InputError

    monkeypatch.setenv("ACTIVE_ANNOTATOR_MAX_ARRAY_BYTES", "lots")
    with pytest.raises(InputError, match="ACTIVE_ANNOTATOR_MAX_ARRAY_BYTES='lots' is not a positive size"):
        limits.get("ARRAY_BYTES")
    monkeypatch.setenv("ACTIVE_ANNOTATOR_MAX_ARRAY_BYTES", "8G")
    assert limits.get("ARRAY_BYTES") == 8 << 30


def _cnn_file(path: Path, widths=(4, 8), depth=1, dims=2, config_widths=None, config_depth=None,
              config_dims=None) -> Path:
    """A valid (untrained but initialised) .aacnn file; the config may declare another network."""
    import torch  # noqa: F401
    from safetensors.torch import save_file

    from active_annotator import cnn_net
    from active_annotator.cnn import CNNConfig
    from active_annotator.persistence import CNN_FORMAT, CNN_SCHEMA_VERSION

    net = cnn_net.build_net(dims, 1, 2, list(widths), 0.1)
    cfg = CNNConfig(dims=config_dims or dims, depth=config_depth if config_depth is not None else depth,
                    widths=list(config_widths or widths), in_channels=1, n_classes=2, classes=[1, 2],
                    norm_mean=[0.0], norm_std=[1.0])
    meta = {"format": CNN_FORMAT, "schema_version": str(CNN_SCHEMA_VERSION),
            "config": json.dumps(cfg.to_dict()), "history": "{}", "best_epoch": "null"}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    return path


LOAD_CNN = """
import sys
from active_annotator.errors import AnnotatorError
from active_annotator.persistence import load_cnn
try:
    load_cnn(sys.argv[1])
except AnnotatorError as e:
    print("REFUSED", type(e).__name__, e); sys.exit(0)
print("LOADED")
"""


@pytest.mark.slow
def test_cnn_declaring_the_largest_network_is_refused_before_it_is_built(tmp_path):
    pytest.importorskip("torch")
    path = _cnn_file(tmp_path / "big.aacnn", config_widths=[1024] * 7, config_depth=6, config_dims=3)
    assert path.stat().st_size < 1 << 20
    r = run_capped(LOAD_CNN, mem_gib=4, args=[path])
    assert r.returncode == 0 and "REFUSED ModelFileError" in r.stdout, crashed(r)
    assert "parameters, more than the limit" in r.stdout and "ACTIVE_ANNOTATOR_MAX_CNN_PARAMETERS" in r.stdout


def test_cnn_tensor_shapes_are_checked_against_the_config_before_reading(tmp_path):
    pytest.importorskip("torch")
    from active_annotator.persistence import load_cnn

    ok = _cnn_file(tmp_path / "ok.aacnn")
    assert load_cnn(ok).classes_.tolist() == [1, 2]
    bad = _cnn_file(tmp_path / "bad.aacnn", widths=(4, 8), config_widths=(4, 16))
    with pytest.raises(ModelFileError, match="has shape .* the config needs"):
        load_cnn(bad)


@pytest.mark.slow
def test_embedded_image_store_declaring_200000_squared_is_refused(tmp_path):
    from active_annotator.project import Project

    proj = Project.create(tmp_path / "p")
    proj.add_image("img", image=np.zeros((8, 8), np.uint8))
    proj.save()
    meta_file = proj.path / "images" / "img.zarr" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["shape"] = [200000, 200000]
    meta_file.write_text(json.dumps(meta))
    code = """
import sys
from active_annotator.errors import AnnotatorError
from active_annotator.project import Project
try:
    Project.open(sys.argv[1]).load_image("img")
except AnnotatorError as e:
    print("REFUSED", type(e).__name__, e); sys.exit(0)
print("LOADED")
"""
    r = run_capped(code, mem_gib=3, args=[proj.path])
    assert r.returncode == 0 and "REFUSED ModelFileError" in r.stdout, crashed(r)
    assert "(200000, 200000)" in r.stdout and "ACTIVE_ANNOTATOR_MAX_ARRAY_BYTES" in r.stdout


@pytest.mark.slow
def test_annotations_of_65536_squared_uint16_are_refused(tmp_path):
    import zarr

    from active_annotator.project import Project

    proj = Project.create(tmp_path / "p")
    proj.add_image("img", image=np.zeros((8, 8), np.uint8))
    proj.save()
    zarr.create_array(str(proj.annotations("img").path), shape=(65536, 65536), dtype=np.uint16,
                      chunks=(4096, 4096), fill_value=0)
    code = """
import sys
from active_annotator.errors import AnnotatorError
from active_annotator.project import Project
try:
    Project.open(sys.argv[1]).load_annotations("img")
except AnnotatorError as e:
    print("REFUSED", type(e).__name__, e); sys.exit(0)
print("LOADED")
"""
    r = run_capped(code, mem_gib=3, args=[proj.path])
    assert r.returncode == 0 and "REFUSED ModelFileError" in r.stdout, crashed(r)
    assert "(65536, 65536)" in r.stdout


@pytest.mark.slow
def test_miniseed_with_a_30_year_gap_is_refused_before_merging(tmp_path):
    obspy = pytest.importorskip("obspy")
    t0 = obspy.UTCDateTime(1990, 1, 1)
    traces = [obspy.Trace(np.arange(200, dtype=np.int32),
                          header={"network": "XX", "station": "S", "channel": "HHZ",
                                  "sampling_rate": 100.0, "starttime": t})
              for t in (t0, t0 + 30 * 365.25 * 86400)]
    path = tmp_path / "gap.mseed"
    obspy.Stream(traces).write(str(path), format="MSEED")
    code = """
import sys
from active_annotator.errors import AnnotatorError
from active_annotator.signals import read_signal
try:
    read_signal(sys.argv[1])
except AnnotatorError as e:
    print("REFUSED", type(e).__name__, e); sys.exit(0)
print("LOADED")
"""
    r = run_capped(code, mem_gib=3, args=[path])
    assert r.returncode == 0 and "REFUSED InputError" in r.stdout, crashed(r)
    assert "filling the gaps would need" in r.stdout and "stream.trim" in r.stdout


@pytest.mark.parametrize("times, match", [
    (np.arange(1000) * 1e-8, "sampling rate of 1e\\+08 Hz, above the limit"),
    (np.cumsum(np.r_[0, np.ones(500), np.full(499, 3.0)]), "not evenly spaced"),
])
def test_csv_time_column_is_sanity_checked(tmp_path, times, match):
    from active_annotator.errors import InputError
    from active_annotator.signals import read_signal

    path = tmp_path / "s.csv"
    rows = "\n".join(f"{float(t)!r},{float(v)}" for t, v in zip(times, np.sin(np.arange(times.size))))
    path.write_text("time,x\n" + rows + "\n")
    with pytest.raises(InputError, match=match):
        read_signal(path)


# -- 3. parameters read from files are validated like constructor arguments ---------------


@pytest.mark.parametrize("value, match", [(-5, "tile_shape = -5 is invalid"), (1, "tile_shape = 1 is invalid"),
                                          ("abc", "tile_shape = 'abc' is invalid"),
                                          (True, "tile_shape = True is invalid")])
def test_tile_shape_from_a_file_is_validated(model_file, value, match):
    from active_annotator.persistence import load_model

    meta = _meta(model_file)
    meta["params"]["tile_shape"] = value
    _rewrite(model_file, meta=meta)
    with pytest.raises(ModelFileError, match=match + ".*from 16 to"):
        load_model(model_file)


@pytest.mark.parametrize("key, value", [("n_estimators", "many"), ("max_depth", -1), ("n_jobs", 0),
                                        ("class_weight", "heavy"), ("random_state", 1.5)])
def test_other_parameters_from_a_file_are_validated(model_file, key, value):
    from active_annotator.persistence import load_model

    meta = _meta(model_file)
    meta["params"][key] = value
    _rewrite(model_file, meta=meta)
    with pytest.raises(ModelFileError, match=f"parameter {key} = .* is invalid"):
        load_model(model_file)


def test_tile_shape_argument_is_validated_before_prediction():
    from active_annotator.errors import InputError

    rng = np.random.default_rng(0)
    img = rng.random((24, 24)).astype(np.float32)
    lab = np.zeros((24, 24), np.uint8)
    lab[2:5, 2:10], lab[15:18, 10:20] = 1, 2
    clf = PixelClassifier(FeatureSet(sigmas=(1.0,), ndim=2), n_estimators=2).fit(img, lab)
    clf.tile_shape = -5
    with pytest.raises(InputError, match="tile_shape must be None .* from 16"):
        clf.predict(img)


def test_class_values_must_fit_the_labels_dtype(model_file):
    from active_annotator.persistence import load_model

    meta = _meta(model_file)
    assert meta["labels_dtype"] == "|u1"
    meta["classes"] = [1, 256]
    _rewrite(model_file, meta=meta)
    with pytest.raises(ModelFileError, match=r"class values 1\.\.256 do not fit the labels type uint8"):
        load_model(model_file)


# -- 4. project files: never write through a symbolic link, never outside the project -----


@pytest.fixture
def project_and_victim(tmp_path):
    from active_annotator.project import Project

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    proj = Project.create(tmp_path / "p")
    proj.add_image("img", image=np.zeros((8, 8), np.uint8))
    proj.save()
    return proj, victim


def test_session_lock_that_is_a_link_is_not_written_through(project_and_victim):
    from active_annotator.project import ProjectError

    proj, victim = project_and_victim
    (proj.path / "session.lock").symlink_to(victim)
    with pytest.raises(ProjectError, match="session.lock' is a symbolic link.*Delete the link"):
        proj.begin_session()
    assert victim.read_text() == "precious"
    proj.end_session()  # removes the link, not its target
    assert not (proj.path / "session.lock").is_symlink() and victim.read_text() == "precious"


@pytest.mark.parametrize("where", ["autosave", "annotations"])
def test_annotation_store_links_are_refused(project_and_victim, tmp_path, where):
    from active_annotator.project import ProjectError

    proj, victim = project_and_victim
    labels = np.ones((8, 8), np.uint8)
    store = proj.autosave_store("img") if where == "autosave" else proj.annotations("img")
    store.write(labels)
    # a chunk folder swapped for a link to a folder outside the project
    outside = tmp_path / "outside"
    outside.mkdir()
    chunks = store.path / "c"
    import shutil

    shutil.rmtree(chunks)
    chunks.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ProjectError, match="is a symbolic link"):
        proj.save_annotations("img", labels + 1) if where == "annotations" else proj.autosave("img", labels + 1)
    assert list(outside.iterdir()) == []


def test_store_folder_linked_elsewhere_is_refused(project_and_victim, tmp_path):
    from active_annotator.project import ProjectError

    proj, _ = project_and_victim
    proj.save_annotations("img", np.ones((8, 8), np.uint8))
    auto = proj.path / "autosave" / "img.zarr"
    import shutil

    shutil.rmtree(auto)
    # inside the project, but a link: autosaves would overwrite the explicit save
    auto.symlink_to(proj.path / "annotations" / "img.zarr", target_is_directory=True)
    with pytest.raises(ProjectError, match="img.zarr' is a symbolic link"):
        proj.autosave("img", np.full((8, 8), 2, np.uint8))
    np.testing.assert_array_equal(proj.annotations("img").read(), 1)
    # a link to a folder outside the project is refused before it is opened
    auto.unlink()
    (tmp_path / "elsewhere.zarr").mkdir()
    auto.symlink_to(tmp_path / "elsewhere.zarr", target_is_directory=True)
    with pytest.raises(AnnotatorError, match="outside the project folder"):
        proj.autosave("img", np.full((8, 8), 2, np.uint8))
    assert list((tmp_path / "elsewhere.zarr").iterdir()) == []


def test_planted_temporary_links_are_not_written_through(project_and_victim, small_model):
    import os

    from active_annotator.persistence import load_model

    proj, victim = project_and_victim
    (proj.path / f".project.json.{os.getpid()}.tmp").symlink_to(victim)
    proj.save()
    assert victim.read_text() == "precious" and json.loads((proj.path / "project.json").read_text())
    model = proj.model_path("pixel.aamodel")
    (model.parent / f".{model.name}.{os.getpid()}.tmp").symlink_to(victim)
    model.write_bytes(small_model[0])
    clf = load_model(model)
    clf.save(model)
    assert victim.read_text() == "precious" and load_model(model).n_features_in_ == small_model[1]


def test_models_folder_that_is_a_link_is_refused(project_and_victim, tmp_path):
    import shutil

    from active_annotator.project import ProjectError

    proj, _ = project_and_victim
    shutil.rmtree(proj.path / "models")
    (tmp_path / "models_elsewhere").mkdir()
    (proj.path / "models").symlink_to(proj.path / "images", target_is_directory=True)
    with pytest.raises(ProjectError, match="models' is a symbolic link"):
        proj.model_path("pixel.aamodel")


def _open_in_widget(make_napari_viewer, path):
    pytest.importorskip("napari")
    from active_annotator_napari._widget import PixelClassifierWidget

    viewer = make_napari_viewer()
    widget = PixelClassifierWidget(viewer)
    failures = []
    widget.failed.connect(failures.append)
    return viewer, widget.open_project(path, restore=False), failures


@pytest.mark.gui
def test_napari_open_project_refuses_a_linked_session_lock(make_napari_viewer, project_and_victim):
    proj, victim = project_and_victim
    (proj.path / "session.lock").symlink_to(victim)
    viewer, session, failures = _open_in_widget(make_napari_viewer, proj.path)
    assert session is None and len(viewer.layers) == 0
    assert failures and "session.lock' is a symbolic link" in failures[0]
    assert victim.read_text() == "precious"


# -- 5. predict outputs are atomic ---------------------------------------------------------


def _cli(*args, cwd=None, timeout=300):
    from capped import SRC

    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "active_annotator.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def predict_case(tmp_path_factory):
    """A model and a zarr image whose prediction takes a few seconds, and the reference result."""
    import zarr

    d = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    img = rng.random((1536, 1536)).astype(np.float32)
    lab = np.zeros(img.shape, np.uint8)
    lab[10:20, 10:200], lab[300:310, 10:200] = 1, 2
    PixelClassifier(FeatureSet(sigmas=(1.0, 2.0), ndim=2), n_estimators=20).fit(img, lab).save(d / "m")
    z = zarr.create_array(str(d / "img.zarr"), shape=img.shape, dtype=img.dtype, chunks=(256, 256))
    z[...] = img
    r = _cli("predict", "--model", d / "m.aamodel", "--input", d / "img.zarr", "--output", d / "ref.zarr")
    assert r.returncode == 0, r.stderr
    return d, np.asarray(zarr.open_array(str(d / "ref.zarr"), mode="r")[...])


def _old_output(path: Path, shape):
    import zarr

    z = zarr.create_array(str(path), shape=shape, dtype=np.uint8, chunks=(512, 512), overwrite=True)
    z[...] = 7
    return path


def _visible(folder: Path):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_killed_predict_leaves_the_old_output_or_the_complete_new_one(predict_case, tmp_path, seed):
    import os
    import random
    import signal
    import time

    import zarr

    from capped import SRC

    d, ref = predict_case
    out = _old_output(tmp_path / "out.zarr", ref.shape)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "active_annotator.cli", "predict", "--model", str(d / "m.aamodel"),
                             "--input", str(d / "img.zarr"), "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.zarr.partial-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(random.Random(seed).uniform(0.0, 6.0))  # computing takes ~4 s here
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _visible(tmp_path) == ["out.zarr"]
    got = np.asarray(zarr.open_array(str(out), mode="r")[...])
    assert np.all(got == 7) or np.array_equal(got, ref), "a killed run left a mixed output"
    # the next run completes and removes what the killed one left behind
    r = _cli("predict", "--model", d / "m.aamodel", "--input", d / "img.zarr", "--output", out)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[...], ref)
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]


@pytest.mark.slow
@pytest.mark.parametrize("output", ["img.zarr", "img.zarr/inner.zarr", "."])
def test_predict_refuses_to_overwrite_its_input(predict_case, output):
    import zarr

    d, _ = predict_case
    before = np.asarray(zarr.open_array(str(d / "img.zarr"), mode="r")[...])
    r = _cli("predict", "--model", d / "m.aamodel", "--input", d / "img.zarr", "--output", d / output)
    assert r.returncode == 1 and "would destroy the input" in r.stderr and "Traceback" not in r.stderr
    np.testing.assert_array_equal(zarr.open_array(str(d / "img.zarr"), mode="r")[...], before)


def _mount(args, target: Path):
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this machine cannot mount test file systems: {r.stderr.strip()}")


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".zarr", ".tif"])
def test_predict_on_a_full_disk_keeps_the_old_output(predict_case, tmp_path, suffix):
    import tifffile
    import zarr

    d, ref = predict_case
    mnt = tmp_path / "tiny"
    _mount(["-t", "tmpfs", "-o", "size=512k", "tmpfs"], mnt)
    try:
        out = mnt / f"out{suffix}"
        if suffix == ".zarr":
            _old_output(out, ref.shape)
        else:
            tifffile.imwrite(out, np.full((8, 8), 7, np.uint8))
        # float32 probabilities of noise do not compress: far more than 512 kB
        r = _cli("predict", "--model", d / "m.aamodel", "--input", d / "img.zarr", "--output", out,
                 "--probabilities")
        assert r.returncode == 1, r.stderr
        assert "disk is full" in r.stderr and "previous output there is unchanged" in r.stderr
        assert "Traceback" not in r.stderr
        assert [p.name for p in mnt.iterdir()] == [out.name]  # no partial store left
        old = zarr.open_array(str(out), mode="r")[...] if suffix == ".zarr" else tifffile.imread(out)
        assert np.all(np.asarray(old) == 7)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


@pytest.mark.slow
def test_predict_into_a_read_only_folder_is_explained(predict_case, tmp_path):
    import zarr

    d, ref = predict_case
    folder = tmp_path / "ro"
    folder.mkdir()
    out = _old_output(folder / "out.zarr", ref.shape)
    _mount(["-o", "bind,ro", str(folder)], folder)
    try:
        r = _cli("predict", "--model", d / "m.aamodel", "--input", d / "img.zarr", "--output", out)
        assert r.returncode == 1 and "read-only" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert np.all(zarr.open_array(str(out), mode="r")[...] == 7)
    finally:
        subprocess.run(["umount", "-l", str(folder)])


# -- 6. the package's own errors, in Python, on the command line and in napari ------------


def _corrupt_chunks(store_path: Path):
    chunks = [p for p in store_path.rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert chunks
    for p in chunks:
        p.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 20)  # a zstd magic number, then junk
    return chunks


@pytest.fixture
def project_with_labels(tmp_path):
    from active_annotator.project import Project

    proj = Project.create(tmp_path / "p")
    proj.add_image("img", image=np.zeros((32, 32), np.uint8))
    proj.save()
    labels = np.zeros((32, 32), np.uint8)
    labels[3:9, 4:20] = 1
    proj.save_annotations("img", labels)
    return proj, labels


def test_corrupt_annotation_chunk_is_a_model_file_error(project_with_labels):
    proj, _ = project_with_labels
    _corrupt_chunks(proj.annotations("img").path)
    with pytest.raises(ModelFileError, match="annotations/img.zarr' has corrupt chunks.*delete that folder"):
        proj.load_annotations("img")


def test_corrupt_autosave_chunk_in_the_crash_scan_is_a_model_file_error(project_with_labels):
    proj, _ = project_with_labels
    proj.begin_session()  # a session that never ended: the scan runs on open
    _corrupt_chunks(proj.autosave_store("img").path)
    assert proj.crashed()
    with pytest.raises(ModelFileError, match="autosave/img.zarr' has corrupt chunks"):
        proj.unsaved_autosaves()


def test_annotations_of_another_shape_are_refused(project_with_labels):
    import zarr

    proj, _ = project_with_labels
    store = proj.annotations("img")
    z = zarr.create_array(str(store.path), shape=(5, 7, 3), dtype=np.uint8, overwrite=True)
    z[...] = 1
    with pytest.raises(ModelFileError, match=r"have shape \(5, 7, 3\), but the image 'img' has the "
                                             r"non-channel shape \(32, 32\)"):
        proj.load_annotations("img", image_shape=(32, 32))


def test_load_cnn_of_a_folder_is_a_model_file_error(tmp_path):
    pytest.importorskip("torch")
    from active_annotator.persistence import load_cnn

    (tmp_path / "model.aacnn").mkdir()
    with pytest.raises(ModelFileError, match="is a folder, not a CNN model file"):
        load_cnn(tmp_path / "model.aacnn")


def test_cnn_metadata_that_is_a_list_is_a_model_file_error(tmp_path):
    pytest.importorskip("torch")
    import struct

    from active_annotator.persistence import load_cnn

    header = json.dumps({"__metadata__": ["format", "napari-active-annotator.cnn"]}).encode()
    path = tmp_path / "list.aacnn"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ModelFileError, match="is not a napari-active-annotator CNN file"):
        load_cnn(path)


def test_finite_float64_image_scaled_1e300_is_reported_as_too_large():
    from active_annotator import compute
    from active_annotator.errors import InputError

    image = np.random.default_rng(0).random((16, 16)) * 1e300
    assert np.isfinite(image).all()
    with pytest.raises(InputError, match="too large for float32") as info:
        compute(image, FeatureSet(sigmas=(1.0,)))
    assert "NaN" not in str(info.value)


@pytest.mark.slow
def test_cli_reports_a_corrupt_cnn_folder_without_traceback(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "model.aacnn").mkdir()
    np.save(tmp_path / "img.npy", np.zeros((16, 16), np.float32))
    r = _cli("predict", "--model", tmp_path / "model.aacnn", "--input", tmp_path / "img.npy",
             "--output", tmp_path / "out.zarr")
    assert r.returncode == 1 and "is a folder, not a CNN model file" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out.zarr").exists()


@pytest.mark.gui
@pytest.mark.parametrize("damage, match", [
    ("chunk", "has corrupt chunks"),
    ("crash_scan", "autosave/img.zarr' has corrupt chunks"),
    ("shape", r"have shape \(5, 7, 3\)"),
])
def test_napari_open_project_shows_the_packages_error(make_napari_viewer, project_with_labels, damage, match):
    import zarr

    proj, _ = project_with_labels
    if damage == "chunk":
        _corrupt_chunks(proj.annotations("img").path)
    elif damage == "crash_scan":
        proj.begin_session()
        _corrupt_chunks(proj.autosave_store("img").path)
    else:
        for store in (proj.annotations("img"), proj.autosave_store("img")):
            zarr.create_array(str(store.path), shape=(5, 7, 3), dtype=np.uint8, overwrite=True)
    viewer, session, failures = _open_in_widget(make_napari_viewer, proj.path)
    assert session is None and failures, failures
    assert "Could not open the project" in failures[0]
    import re

    assert re.search(match, failures[0]), failures[0]
    assert not any(layer.name.startswith("annotations") for layer in viewer.layers)


@pytest.mark.slow
def test_cnn_predict_refuses_its_input_as_output_and_writes_atomically(tmp_path):
    pytest.importorskip("torch")
    model = _cnn_file(tmp_path / "m.aacnn")
    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((32, 32)).astype(np.float32))
    before = (tmp_path / "img.npy").read_bytes()
    r = _cli("cnn-predict", "--model", model, "--image", tmp_path / "img.npy", "--output", tmp_path / "img.npy")
    assert r.returncode == 1 and "would destroy the input" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert (tmp_path / "img.npy").read_bytes() == before
    r = _cli("cnn-predict", "--model", model, "--image", tmp_path / "img.npy", "--output", tmp_path / "seg.npy")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "seg.npy").shape == (32, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.npy", "m.aacnn", "seg.npy"]


def test_signal_predict_refuses_a_folder_with_other_files(tmp_path):
    from active_annotator.cli import main
    from active_annotator.signals import SignalClassifier, SignalRecord, write_signal

    rng = np.random.default_rng(0)
    rec = SignalRecord(rng.normal(size=(1, 3000)).astype(np.float32), 100.0)
    write_signal(rec, tmp_path / "rec.npy")
    labels = np.zeros(3000, np.uint8)
    labels[100:400], labels[2000:2300] = 1, 2
    SignalClassifier(n_estimators=3).fit(rec, labels).save(tmp_path / "m")
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    args = ["signal-predict", str(tmp_path / "m.aasignal"), str(tmp_path / "rec.npy"), "-o", str(folder)]
    assert main(args) == 1
    assert (folder / "thesis.tex").read_text() == "precious"
    (folder / "thesis.tex").unlink()
    assert main(args) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["prediction.npy", "probabilities.npy", "uncertainty.npy", "spans.csv", "suggestions.csv"])
    assert main(args) == 0  # a folder written by signal-predict is replaced as a whole


def test_temporaries_of_killed_saves_are_removed_on_open(project_and_victim):
    from active_annotator.project import Project

    proj, victim = project_and_victim
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = [proj.path / f".project.json.{dead}.tmp", proj.path / "models" / f".pixel.aamodel.{dead}.tmp"]
    for p in stale:
        p.write_text("half")
    link = proj.path / "models" / f".cnn.aacnn.{dead}.tmp"
    link.symlink_to(victim)
    Project.open(proj.path)
    assert not any(os.path.lexists(p) for p in stale + [link])
    assert victim.read_text() == "precious"


def test_external_images_are_listed(tmp_path):
    import tifffile

    from active_annotator.project import Project

    tifffile.imwrite(tmp_path / "big.tif", np.zeros((16, 16), np.uint8))
    proj = Project.create(tmp_path / "p")
    proj.EMBED_LIMIT = 10  # stands in for a large image
    proj.add_image("big", image=np.zeros((16, 16), np.uint8), source_path=tmp_path / "big.tif")
    proj.save()
    assert Project.open(proj.path).external_images() == [("big", str((tmp_path / "big.tif").resolve()))]
    assert Project.open(proj.path).load_image("big").shape == (16, 16)
