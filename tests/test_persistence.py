"""Model files: round trip, versioning, and refusal of corrupt or malicious files."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from active_annotator import FeatureSet, ModelFileError, ModelMismatchError, PixelClassifier
from active_annotator.persistence import STAGES_SCHEMA_VERSION, load_model

FAST = FeatureSet(sigmas=(1.0, 2.0), ndim=2)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    img = rng.random((48, 48)).astype(np.float32)
    img[:, 24:] += 1
    labels = np.zeros((48, 48), np.uint16)
    labels[5:8, 2:20] = 4
    labels[30:33, 28:45] = 9
    return img, PixelClassifier(FAST, n_estimators=8, max_depth=6).fit(img, labels)


def _rewrite(src, dst, change):
    """Copy a model zip, letting ``change(name, bytes) -> bytes | None`` edit entries."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = change(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item.filename, data)


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def test_round_trip_gives_identical_predictions(fitted, tmp_path):
    img, clf = fitted
    path = clf.save(tmp_path / "m")
    assert path == tmp_path / "m.aamodel"
    loaded = PixelClassifier.load(tmp_path / "m.aamodel")
    assert loaded.classes_.tolist() == [4, 9] and loaded.classes_.dtype == np.uint16
    assert loaded.feature_set == FAST and loaded.max_depth == 6
    np.testing.assert_array_equal(loaded.predict_proba(img), clf.predict_proba(img))
    np.testing.assert_array_equal(loaded.predict(img), clf.predict(img))
    assert loaded.feature_importances() == clf.feature_importances()
    assert path.exists()


def test_loaded_model_refuses_image_with_other_channels(fitted, tmp_path):
    img, clf = fitted
    clf.save(tmp_path / "m.aamodel")
    loaded = load_model(tmp_path / "m.aamodel")
    with pytest.raises(ModelMismatchError, match="1 channel"):
        loaded.predict(np.stack([img] * 3, -1), channel_axis=-1)
    with pytest.raises(ModelMismatchError, match="2-D"):
        loaded.predict(img[0])


def test_pickle_payload_is_refused(fitted, tmp_path):
    _, clf = fitted
    clf.save(tmp_path / "m.aamodel")

    class Boom:
        def __reduce__(self):
            return (exec, ("open('/tmp/pwned_by_model_file', 'w').write('x')",))

    payload = np.empty(1, dtype=object)
    payload[0] = Boom()
    _rewrite(tmp_path / "m.aamodel", tmp_path / "evil.aamodel",
             lambda n, b: _npy(payload) if n == "value.npy" else b)
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(tmp_path / "evil.aamodel")
    import os

    assert not os.path.exists("/tmp/pwned_by_model_file")


def test_plain_pickle_file_is_refused(tmp_path):
    p = tmp_path / "model.aamodel"
    p.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(p)


def test_truncated_file_is_refused(fitted, tmp_path):
    _, clf = fitted
    clf.save(tmp_path / "m.aamodel")
    raw = (tmp_path / "m.aamodel").read_bytes()
    (tmp_path / "cut.aamodel").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "cut.aamodel")


def test_out_of_range_child_index_is_refused(fitted, tmp_path):
    _, clf = fitted
    clf.save(tmp_path / "m.aamodel")

    def corrupt(name, b):
        if name == "left.npy":
            arr = np.load(io.BytesIO(b))
            arr[0] = 10**6
            return _npy(arr)
        return b

    _rewrite(tmp_path / "m.aamodel", tmp_path / "bad.aamodel", corrupt)
    with pytest.raises(ModelFileError, match="child index"):
        load_model(tmp_path / "bad.aamodel")


def test_cycle_in_tree_is_refused(fitted, tmp_path):
    _, clf = fitted
    clf.save(tmp_path / "m.aamodel")

    def corrupt(name, b):
        if name == "right.npy":
            arr = np.load(io.BytesIO(b))
            internal = np.nonzero(arr >= 0)[0]
            arr[internal[1]] = internal[0]  # points back up the tree
            return _npy(arr)
        return b

    _rewrite(tmp_path / "m.aamodel", tmp_path / "cyc.aamodel", corrupt)
    with pytest.raises(ModelFileError, match="child index"):
        load_model(tmp_path / "cyc.aamodel")


def test_newer_schema_version_says_what_to_do(fitted, tmp_path):
    _, clf = fitted
    clf.save(tmp_path / "m.aamodel")

    def bump(name, b):
        if name == "meta.npy":
            meta = json.loads(bytes(np.load(io.BytesIO(b))).decode())
            meta["schema_version"] = STAGES_SCHEMA_VERSION + 1
            return _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))
        return b

    _rewrite(tmp_path / "m.aamodel", tmp_path / "new.aamodel", bump)
    with pytest.raises(ModelFileError, match="Upgrade"):
        load_model(tmp_path / "new.aamodel")


def test_missing_file_and_missing_entries(fitted, tmp_path):
    _, clf = fitted
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.aamodel")
    clf.save(tmp_path / "m.aamodel")
    _rewrite(tmp_path / "m.aamodel", tmp_path / "part.aamodel",
             lambda n, b: None if n == "roots.npy" else b)
    with pytest.raises(ModelFileError, match="missing"):
        load_model(tmp_path / "part.aamodel")


def test_save_is_atomic_and_leaves_no_temp_files(fitted, tmp_path):
    _, clf = fitted
    clf.save(tmp_path / "m.aamodel")
    clf.save(tmp_path / "m.aamodel")  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.aamodel"]


def test_cnn_file_format_is_importable_from_cnn_as_before():
    from active_annotator import cnn, persistence

    for name in ("CNN_FORMAT", "CNN_SCHEMA_VERSION", "CNN_SUFFIX", "is_cnn_file", "load_cnn", "save_cnn"):
        assert getattr(cnn, name) is getattr(persistence, name)


def test_persistence_reads_cnn_headers_without_torch(tmp_path):
    import struct
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "helpers"))
    from no_torch import run_without_torch

    header = json.dumps({"__metadata__": {"format": "napari-active-annotator.cnn"}}).encode()
    path = tmp_path / "model.bin"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    out = run_without_torch(
        "from active_annotator import persistence\n"
        "assert persistence.is_cnn_file(sys.argv[1])\n"
        "try:\n"
        "    persistence.load_cnn(sys.argv[1])\n"
        "except ImportError as e:\n"
        "    print('MSG', e)\n",
        path,
    )
    assert "napari-active-annotator[cnn]" in out
