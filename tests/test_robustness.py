"""Property-based tests: random shapes, dtypes and corrupt bytes raise our own errors.

Each property runs the code in-process: a crash of the interpreter would fail
the whole run, and hypothesis' deadline catches hangs. Where an input may be
valid or not, the test decides which from the input itself (or asserts on
both outcomes): accepted input must give a usable result, refused input must
raise the package's own error with a message that names the problem. Nothing
is swallowed.
"""

import io
import json
import uuid
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from active_annotator import AnnotatorError, FeatureSet, PixelClassifier, compute
from active_annotator.errors import InputError, ModelFileError
from active_annotator.persistence import load_model
from active_annotator.project import AnnotationStore, Project

SETTINGS = settings(max_examples=40, deadline=5000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

dtypes = st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.int8, bool])


@SETTINGS
@given(
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    dtype=dtypes,
    sigmas=st.lists(st.floats(0.3, 6.0), min_size=1, max_size=3, unique=True),
    data=st.data(),
)
def test_feature_engine_on_random_arrays(shape, dtype, sigmas, data):
    arr = data.draw(hnp.arrays(dtype, shape))
    fs = FeatureSet(sigmas=tuple(sorted(sigmas)), ndim=len(shape))
    usable = not np.issubdtype(arr.dtype, np.floating) or (
        np.isfinite(arr.astype(np.float32)).all()
        and float(np.abs(arr.astype(np.float32)).max()) <= 1e30  # as the engine checks it
    )
    if not usable:
        with pytest.raises(InputError, match="NaN or infinite|too large"):
            compute(arr, fs)
        return
    f = compute(arr, fs)
    assert np.isfinite(f).all()
    assert f.shape == (fs.n_features(1), *shape) and f.dtype == np.float32


@pytest.mark.parametrize("value, match", [(1e35, "too large"), (np.inf, "infinite"), (np.nan, "NaN")])
def test_unusable_float_values_are_refused(value, match):
    arr = np.zeros((6, 6))
    arr[2, 3] = value
    with pytest.raises(AnnotatorError, match=match):
        compute(arr, FeatureSet(sigmas=(1.0,)))


@SETTINGS
@given(ndim=st.integers(1, 3), image_ndim=st.integers(0, 4), channel_axis=st.sampled_from([None, 0, -1, 5]))
def test_feature_engine_shape_errors_are_ours(ndim, image_ndim, channel_axis):
    arr = np.zeros((3,) * image_ndim, np.float32)
    fs = FeatureSet(sigmas=(1.0,), ndim=ndim)
    axis_ok = channel_axis is None or -image_ndim <= channel_axis < image_ndim
    spatial = image_ndim - (channel_axis is not None)
    if not axis_ok:
        with pytest.raises(InputError, match=rf"channel_axis={channel_axis} is out of range"):
            compute(arr, fs, channel_axis=channel_axis)
    elif spatial != ndim:
        with pytest.raises(InputError, match=rf"works on {ndim}-D data, but the image has {spatial} spatial"):
            compute(arr, fs, channel_axis=channel_axis)
    else:
        f = compute(arr, fs, channel_axis=channel_axis)
        n_channels = 1 if channel_axis is None else 3
        assert f.shape == (fs.n_features(n_channels), *(3,) * ndim) and f.dtype == np.float32
        assert np.all(f == 0)  # features of a constant zero image are zero


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    rng = np.random.default_rng(0)
    img = rng.random((24, 24)).astype(np.float32)
    lab = np.zeros((24, 24), np.uint8)
    lab[2:5, 2:10], lab[15:18, 10:20] = 1, 2
    clf = PixelClassifier(FeatureSet(sigmas=(1.0,), ndim=2), n_estimators=3, max_depth=4).fit(img, lab)
    path = clf.save(tmp_path_factory.mktemp("m") / "m")
    return path.read_bytes()


@SETTINGS
@given(data=st.data())
def test_model_loader_on_corrupt_bytes(model_bytes, tmp_path, data):
    raw = bytearray(model_bytes)
    kind = data.draw(st.sampled_from(["flip", "truncate", "random"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 20))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw = bytearray(data.draw(st.binary(max_size=2000)))
    p = tmp_path / "x.aamodel"
    p.write_bytes(bytes(raw))
    if kind == "truncate" or (kind == "random" and bytes(raw) != model_bytes):
        # a zip without its central directory (at the end) cannot be read
        with pytest.raises(ModelFileError, match="x.aamodel"):
            load_model(p)
        return
    try:
        clf = load_model(p)
    except ModelFileError as e:
        assert "x.aamodel" in str(e)  # the message names the file it refused
        return
    # a flip that left the model valid (e.g. in a threshold) must still predict safely
    out = clf.predict(np.zeros((8, 8), np.float32))
    assert out.shape == (8, 8)
    assert set(np.unique(out)) <= set(clf.classes_.tolist())
    proba = clf.predict_proba(np.zeros((8, 8), np.float32))
    assert proba.shape == (len(clf.classes_), 8, 8) and np.isfinite(proba).all()


@SETTINGS
@given(arrays=st.dictionaries(
    st.sampled_from(["meta", "feature", "threshold", "left", "right", "value", "roots", "importances"]),
    hnp.arrays(st.sampled_from([np.int32, np.float64, np.uint8, np.int64]),
               hnp.array_shapes(max_dims=2, max_side=6)),
    min_size=1))
def test_model_loader_on_structurally_wrong_arrays(tmp_path, arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    p = tmp_path / "y.aamodel"
    p.write_bytes(buf.getvalue())
    with pytest.raises(ModelFileError, match="y.aamodel"):
        load_model(p)


@SETTINGS
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                      st.recursive(st.none() | st.integers() | st.text(max_size=8),
                                   lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                                   max_leaves=10).map(lambda o: __import__("json").dumps(
                                       {"format": "napari-active-annotator.project", "schema_version": 1, "images": o}))))
def test_project_reader_on_hostile_json(tmp_path, text):
    folder = tmp_path / "p.aaproject"
    folder.mkdir(exist_ok=True)
    (folder / "project.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        meta = json.loads(text)
    except ValueError:
        with pytest.raises(ModelFileError, match="project.json.* is corrupt"):
            Project.open(folder)
        return
    if not isinstance(meta, dict) or meta.get("format") != "napari-active-annotator.project":
        with pytest.raises(ModelFileError, match="is not a napari-active-annotator project"):
            Project.open(folder)
        return
    images = meta.get("images", [])
    if not isinstance(images, list):
        with pytest.raises(ModelFileError, match="'images' must be a list"):
            Project.open(folder)
        return
    if any(not isinstance(d, dict) for d in images):
        with pytest.raises(ModelFileError, match="Invalid image entry"):
            Project.open(folder)
        return
    try:
        proj = Project.open(folder)
    except ModelFileError as e:  # an entry's fields may be missing or of the wrong kind
        assert "Invalid image entry" in str(e) or "relative path" in str(e)
        return
    assert [r.name for r in proj.images] == [str(d["name"]) for d in images]


@SETTINGS
@given(junk=st.binary(max_size=500))
def test_annotation_store_with_corrupt_metadata(tmp_path, junk):
    path = tmp_path / f"{uuid.uuid4().hex}.zarr"
    store = AnnotationStore(path)
    store.write(np.ones((4, 4), np.uint8))
    (path / "zarr.json").write_bytes(junk)
    try:
        json.loads(junk)
    except ValueError:
        # metadata that is not even JSON can never open
        with pytest.raises(ModelFileError, match="annotation store .* cannot be opened"):
            store.read()
        return
    try:
        labels = store.read()
    except ModelFileError as e:
        assert "annotation store" in str(e) and path.name in str(e)
        return
    assert labels.dtype.kind in "iu"  # whatever was accepted is a valid label array


def test_zip_bomb_sized_entry_is_refused(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("meta", "feature", "threshold", "left", "right", "value", "roots", "importances"):
            zf.writestr(f"{name}.npy", b"\0" * 4096)
    p = tmp_path / "bomb.aamodel"
    p.write_bytes(buf.getvalue())
    monkeypatch.setenv("ACTIVE_ANNOTATOR_MAX_MODEL_BYTES", "1024")  # stands in for 1 GiB
    with pytest.raises(AnnotatorError, match="implausibly large"):
        load_model(p)


@SETTINGS
@given(junk=st.binary(max_size=400), which=st.sampled_from(["zarr.json", "annotations/zarr.json", "chunk"]))
def test_annotation_reader_on_corrupt_stores(tmp_path, junk, which):
    from active_annotator.persistence import read_annotation_store, write_annotation_store

    path = write_annotation_store(tmp_path / uuid.uuid4().hex, np.arange(12, dtype=np.uint8).reshape(3, 4))
    if which == "chunk":
        chunks = [p for p in path.rglob("*") if p.is_file() and p.parent.name != "annotations"
                  and p.name != "zarr.json"]
        target = chunks[0]
    else:
        target = path / which
    target.write_bytes(junk)
    try:
        labels, attrs = read_annotation_store(path)
    except ModelFileError as e:
        assert path.name in str(e)  # the message names the store it refused
        return
    # whatever was accepted is a valid label array of the shape that was written
    assert labels.dtype.kind in "iu" and labels.shape == (3, 4)
    assert isinstance(attrs, dict)


@SETTINGS
@given(junk=st.binary(max_size=600), suffix=st.sampled_from([".npy", ".csv", ".mseed", ".sac"]))
def test_signal_reader_on_random_bytes(tmp_path, junk, suffix):
    from active_annotator.signals import read_signal

    path = tmp_path / f"x{suffix}"
    path.write_bytes(junk)
    try:
        rec = read_signal(path)
    except InputError as e:
        assert path.name in str(e) or "ObsPy" in str(e)  # names the file, or the missing reader
        return
    assert rec.data.ndim == 2 and rec.data.shape[1] >= 2 and rec.data.dtype == np.float32
    assert np.isfinite(rec.sampling_rate) and rec.sampling_rate > 0
