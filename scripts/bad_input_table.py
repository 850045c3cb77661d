"""Run every bad input we know of through the core and write docs/bad_inputs.md.

The table is generated from the real exceptions, so it cannot drift from the
code: ``python scripts/bad_input_table.py`` rewrites it. The widget shows the
same message in a napari error notification and in its status line.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from active_annotator import FeatureSet, PixelClassifier
from active_annotator.persistence import load_model
from active_annotator.project import Project

ROOT = Path(__file__).resolve().parents[1]
FAST = FeatureSet(sigmas=(1.0, 2.0))


def _image(shape=(64, 64)):
    return np.random.default_rng(0).random(shape).astype(np.float32)


def _labels(shape=(64, 64)):
    lab = np.zeros(shape, np.uint8)
    lab[5:8, 5:30], lab[40:43, 20:50] = 1, 2
    return lab


def _fitted():
    return PixelClassifier(FAST, n_estimators=5).fit(_image(), _labels())


def _model_file(tmp: Path) -> Path:
    return _fitted().save(tmp / "model")


def _mount(args, target: Path) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", *args, str(target)], capture_output=True).returncode == 0


def cases(tmp: Path):
    img, lab = _image(), _labels()
    nan = img.copy()
    nan[3, 3] = np.nan
    yield "Image with NaN values", lambda: PixelClassifier(FAST).fit(nan, lab)
    inf = img.copy()
    inf[3, 3] = np.inf
    yield "Image with infinite values", lambda: PixelClassifier(FAST).fit(inf, lab)
    yield "Empty image (0 pixels)", lambda: PixelClassifier(FAST).fit(np.zeros((0, 64)), np.zeros((0, 64), np.uint8))
    yield "1-pixel image", lambda: PixelClassifier(FAST).fit(np.ones((1, 1)), np.ones((1, 1), np.uint8))
    yield "Labels of the wrong shape", lambda: PixelClassifier(FAST).fit(img, lab[:32])
    yield "Labels of a float dtype", lambda: PixelClassifier(FAST).fit(img, lab.astype(np.float32))
    yield "Negative label values", lambda: PixelClassifier(FAST).fit(img, lab.astype(np.int16) - 1)
    huge = lab.astype(np.uint64)
    huge[huge == 2] = 2**63
    yield "Huge label values (2**63)", lambda: PixelClassifier(FAST, n_estimators=3).fit(img, huge).predict(img)
    many = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) + 1
    yield "Instance labels (4096 values) given as classes", lambda: PixelClassifier(FAST).fit(img, many)
    yield "No labels painted", lambda: PixelClassifier(FAST).fit(img, np.zeros_like(lab))
    yield "Only one class painted", lambda: PixelClassifier(FAST).fit(img, (lab > 0).astype(np.uint8))
    yield "Sigma too large for the image", lambda: PixelClassifier(FeatureSet(sigmas=(1.0, 16.0))).fit(_image((10, 64)), _labels((10, 64)) * 0 + np.pad(np.array([[1, 2]], np.uint8), ((0, 9), (0, 62))))
    yield "Model trained on other channels", lambda: _fitted().predict(np.stack([img] * 3, -1), channel_axis=-1)
    yield "1-D signal given to a 2-D image model", lambda: _fitted().predict(img[0])
    yield "Unknown feature family", lambda: FeatureSet(families=("gaussian", "sobel"))
    yield "Sigmas not increasing", lambda: FeatureSet(sigmas=(4.0, 1.0))
    model = _model_file(tmp)
    cut = tmp / "truncated.aamodel"
    cut.write_bytes(model.read_bytes()[:400])
    yield "Truncated model file", lambda: load_model(cut)
    bad = tmp / "corrupt.aamodel"
    raw = bytearray(model.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = os.urandom(64)
    bad.write_bytes(bytes(raw))
    yield "Corrupted model file (random bytes inside)", lambda: load_model(bad)
    evil = tmp / "pickle.aamodel"
    buf = io.BytesIO()
    obj = np.empty(1, object)
    obj[0] = {"payload": "x"}
    with zipfile.ZipFile(model) as zin, zipfile.ZipFile(evil, "w") as zout:
        for item in zin.infolist():
            if item.filename == "value.npy":
                np.save(buf, obj, allow_pickle=True)
                zout.writestr(item.filename, buf.getvalue())
            else:
                zout.writestr(item.filename, zin.read(item.filename))
    yield "Model file with a pickle payload", lambda: load_model(evil)
    proj = Project.create(tmp / "proj")
    (proj.path / "project.json").write_text('{"format": "napari-active-annot')
    yield "Corrupted project file", lambda: Project.open(proj.path)
    p2 = Project.create(tmp / "escape")
    (p2.path / "project.json").write_text(
        '{"format": "napari-active-annotator.project", "schema_version": 1,'
        ' "images": [{"name": "x", "source": "../../etc/passwd", "embedded": true}]}'
    )
    yield "Project path escaping the folder", lambda: Project.open(p2.path)
    ro = tmp / "ro"
    p3 = Project.create(ro / "p")
    p3.autosave("img", lab)
    if _mount(["-o", "bind,ro", str(ro)], ro):
        yield "Read-only annotation store", lambda: p3.autosave("img", lab + 1)
        subprocess.run(["umount", "-l", str(ro)])
    full = tmp / "full"
    if _mount(["-t", "tmpfs", "-o", "size=64k", "tmpfs"], full):
        p4 = Project.create(full / "p")
        noise = np.random.default_rng(0).integers(0, 60000, (1024, 1024)).astype(np.uint16)
        yield "Full disk while autosaving", lambda: p4.autosave("img", noise)
        subprocess.run(["umount", "-l", str(full)])


def _rewrite(path: Path, **arrays) -> Path:
    """A copy of a model file with some arrays (or the JSON meta, as a dict) replaced."""
    import json

    with np.load(path, allow_pickle=False) as npz:
        a = {k: npz[k] for k in npz.files}
    for k, v in arrays.items():
        a[k] = np.frombuffer(json.dumps(v).encode(), np.uint8) if k == "meta" else v
    out = path.with_name(f"{path.stem}_{len(list(path.parent.iterdir()))}.aamodel")
    with open(out, "wb") as fh:
        np.savez_compressed(fh, **a)
    return out


def _meta(path: Path) -> dict:
    import json

    with np.load(path, allow_pickle=False) as npz:
        return json.loads(bytes(npz["meta"]).decode())


def hardening_cases(tmp: Path):
    """Files crafted as an attacker would (issue 15): each must be refused before harm."""
    import json
    import struct

    import zarr

    from active_annotator.scale import predict_file

    model = _model_file(tmp)
    n_feat = _meta(model)["n_features"]
    n = 40
    chain = np.full(n, -1, np.int32)
    chain[:-1] = np.arange(1, n)
    yield "Forest whose nodes have left == right (a 40-node chain)", lambda: load_model(_rewrite(
        model, feature=np.where(chain >= 0, 0, -2).astype(np.int32), threshold=np.zeros(n), left=chain,
        right=chain.copy(), value=np.full((n, 2), 0.5), roots=np.zeros(1, np.int32)))
    m = 1001
    yield "Forest with 1000 unreachable nodes", lambda: load_model(_rewrite(
        model, feature=np.full(m, -2, np.int32), threshold=np.zeros(m), left=np.full(m, -1, np.int32),
        right=np.full(m, -1, np.int32), value=np.full((m, 2), 0.5), roots=np.zeros(1, np.int32)))
    shared = dict(feature=np.array([0, 0, 0, -2, -2], np.int32), threshold=np.zeros(5),
                  left=np.array([1, 3, 3, -1, -1], np.int32), right=np.array([2, 4, 4, -1, -1], np.int32),
                  value=np.full((5, 2), 0.5), roots=np.zeros(1, np.int32))
    yield "Forest whose trees share nodes", lambda: load_model(_rewrite(model, **shared))
    with np.load(model) as npz:
        value = npz["value"].copy()
    value[-1] *= 0.5
    yield "Forest whose leaf class fractions do not sum to 1", lambda: load_model(_rewrite(model, value=value))
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (2 ** 36,)})
    declared = tmp / "declared.aamodel"
    with zipfile.ZipFile(model) as zin, zipfile.ZipFile(declared, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = hdr.getvalue() + b"\0" * 64 if item.filename == "threshold.npy" else zin.read(item.filename)
            zout.writestr(item.filename, data)
    yield "Model whose .npy header declares 512 GiB (file of 2 kB)", lambda: load_model(declared)
    padded = tmp / "padded.aamodel"
    with zipfile.ZipFile(model) as zin, zipfile.ZipFile(padded, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename))
        for i in range(3):
            zout.writestr(f"pad{i}.npy", b"\0" * (400 << 20))
    yield "Model of 3 entries of 400 MiB zeros (each under the limit, together over it)", lambda: load_model(padded)
    k = 20000
    many = np.zeros((3, k))
    many[:, 0] = 1
    meta = dict(_meta(model), classes=list(range(1, k + 1)), labels_dtype="<u2")
    yield "Model with 20000 classes", lambda: load_model(_rewrite(
        model, meta=meta, feature=np.array([0, -2, -2], np.int32), threshold=np.zeros(3),
        left=np.array([1, -1, -1], np.int32), right=np.array([2, -1, -1], np.int32), value=many,
        roots=np.zeros(1, np.int32)))
    for value_ in (-5, 1, "abc"):
        meta = _meta(model)
        meta["params"]["tile_shape"] = value_
        yield f"Model file with tile_shape = {value_!r}", (lambda m=meta: load_model(_rewrite(model, meta=m)))
    meta = dict(_meta(model), classes=[1, 256])
    yield "Model with classes [1, 256] and uint8 labels", lambda: load_model(_rewrite(model, meta=meta))
    try:
        import torch  # noqa: F401
        from safetensors.torch import save_file

        from active_annotator import cnn_net
        from active_annotator.cnn import CNN_FORMAT, CNNConfig, load_cnn

        net = cnn_net.build_net(2, 1, 2, [4, 8], 0.1)
        cfg = CNNConfig(dims=3, depth=6, widths=[1024] * 7, in_channels=1, n_classes=2, classes=[1, 2],
                        norm_mean=[0.0], norm_std=[1.0])
        big = tmp / "big.aacnn"
        save_file({k_: v.contiguous() for k_, v in net.state_dict().items()}, str(big),
                  metadata={"format": CNN_FORMAT, "schema_version": "1", "config": json.dumps(cfg.to_dict())})
        yield "CNN file (0.2 MB) whose config declares the largest network", lambda: load_cnn(big)
        (tmp / "folder.aacnn").mkdir()
        yield "load_cnn of a folder", lambda: load_cnn(tmp / "folder.aacnn")
        header = json.dumps({"__metadata__": ["format"]}).encode()
        (tmp / "list.aacnn").write_bytes(struct.pack("<Q", len(header)) + header)
        yield "CNN file whose metadata is a list", lambda: load_cnn(tmp / "list.aacnn")
    except ImportError:
        pass
    proj = Project.create(tmp / "embedded")
    proj.add_image("img", image=np.zeros((8, 8), np.uint8))
    proj.save()
    meta_file = proj.path / "images" / "img.zarr" / "zarr.json"
    zmeta = json.loads(meta_file.read_text())
    zmeta["shape"] = [200000, 200000]
    meta_file.write_text(json.dumps(zmeta))
    yield "Project whose embedded image store declares 200000x200000", lambda: Project.open(proj.path).load_image("img")
    proj2 = Project.create(tmp / "bigannot")
    proj2.add_image("img", image=np.zeros((32, 32), np.uint8))
    proj2.save()
    zarr.create_array(str(proj2.annotations("img").path), shape=(65536, 65536), dtype=np.uint16, chunks=(4096, 4096))
    yield "Annotations declaring 65536x65536 uint16", lambda: proj2.load_annotations("img")
    proj3 = Project.create(tmp / "shape")
    proj3.add_image("img", image=np.zeros((32, 32), np.uint8))
    proj3.save()
    zarr.create_array(str(proj3.annotations("img").path), shape=(5, 7, 3), dtype=np.uint8)
    yield "Annotations of shape (5, 7, 3) for a 32x32 image", lambda: proj3.load_annotations("img", image_shape=(32, 32))
    proj4 = Project.create(tmp / "chunk")
    proj4.add_image("img", image=np.zeros((32, 32), np.uint8))
    proj4.save_annotations("img", np.ones((32, 32), np.uint8))
    for c in (proj4.path / "annotations" / "img.zarr").rglob("*"):
        if c.is_file() and c.name != "zarr.json":
            c.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 20)
    yield "Corrupt annotation chunk (zstd error)", lambda: proj4.load_annotations("img")
    victim = tmp / "victim.txt"
    victim.write_text("precious")
    proj5 = Project.create(tmp / "lock")
    (proj5.path / "session.lock").symlink_to(victim)
    yield "session.lock that is a link to another file", proj5.begin_session
    try:
        import obspy

        t0 = obspy.UTCDateTime(1990, 1, 1)
        traces = [obspy.Trace(np.arange(200, dtype=np.int32), header={
            "network": "XX", "station": "S", "channel": "HHZ", "sampling_rate": 100.0, "starttime": t})
            for t in (t0, t0 + 30 * 365.25 * 86400)]
        obspy.Stream(traces).write(str(tmp / "gap.mseed"), format="MSEED")
        from active_annotator.signals import read_signal

        yield "miniSEED file with a 30-year gap", lambda: read_signal(tmp / "gap.mseed")
    except ImportError:
        pass
    from active_annotator.signals import read_signal

    (tmp / "ns.csv").write_text("time,x\n" + "\n".join(f"{i * 1e-8!r},{i % 7}" for i in range(1000)) + "\n")
    yield "CSV signal with a 10 ns time step", lambda: read_signal(tmp / "ns.csv")
    from active_annotator import compute

    yield "Finite float64 image scaled by 1e300", lambda: compute(_image().astype(np.float64) * 1e300, FAST)
    z = zarr.create_array(str(tmp / "a.zarr"), shape=(64, 64), dtype=np.float32)
    z[...] = _image()
    yield "predict --input a.zarr --output a.zarr", lambda: predict_file(model, tmp / "a.zarr", tmp / "a.zarr")
    full = tmp / "fullpredict"
    if _mount(["-t", "tmpfs", "-o", "size=64k", "tmpfs"], full):
        big_img = tmp / "noise.npy"
        np.save(big_img, np.random.default_rng(1).random((512, 512)).astype(np.float32))
        yield "predict onto a full disk", lambda: predict_file(model, big_img, full / "out.zarr", proba=True)
        subprocess.run(["umount", "-l", str(full)])


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        import itertools

        for what, call in itertools.chain(cases(Path(d)), hardening_cases(Path(d))):
            try:
                call()
                seen, kind = "accepted (no error): handled as valid input", "-"
            except Exception as e:  # we record whatever the user would see
                seen, kind = str(e).replace("|", "\\|").replace("\n", " "), type(e).__name__
            rows.append((what, kind, seen))
    lines = [
        "# Bad input: what the user sees",
        "",
        "Generated by `python scripts/bad_input_table.py` from the real exceptions. In Python each",
        "is an exception of the package's own type (all derive from",
        "`active_annotator.errors.AnnotatorError`); in napari the widget shows the same text in an",
        "error notification and its status line, and the annotations layer is left untouched.",
        "",
        "| bad input | exception | message |",
        "|---|---|---|",
    ]
    lines += [f"| {w} | `{k}` | {m} |" for w, k, m in rows]
    from active_annotator import limits

    lines += [
        "",
        "## Size limits and how to raise them",
        "",
        "Every loader checks what a file *declares* (zip directory, `.npy` and safetensors headers,",
        "zarr metadata, trace start and end times) against one budget before it allocates memory.",
        "A user who really has bigger data raises a limit with an environment variable, e.g.",
        "`ACTIVE_ANNOTATOR_MAX_ARRAY_BYTES=64G napari` (plain integers or K, M, G, T suffixes).",
        "",
        "| limit | default | environment variable | what it bounds |",
        "|---|---|---|---|",
    ]
    what = {
        "MODEL_BYTES": "total uncompressed bytes of one model file (all entries / all CNN weights)",
        "ARRAY_BYTES": "one array read whole: embedded project images, referenced TIFFs, annotations, "
                       "signals after gap merging",
        "CLASSES": "classes of a model file (forest outputs, CNN classes)",
        "CNN_PARAMETERS": "parameters of the network a CNN config declares (checked before it is built)",
        "SAMPLING_RATE": "samples per second of a signal (CSV time column, seismic traces)",
    }
    lines += [f"| `limits.{k}` | {limits._DEFAULTS[k]} | `{limits.env_name(k)}` | {v} |" for k, v in what.items()]
    lines += [
        "",
        "Other rules: model files are zips of plain `.npy` arrays (never pickles); a forest is proven",
        "to be a forest (each node reached from its tree's root exactly once, children distinct,",
        "leaves well formed, indices in range, finite thresholds, leaf fractions summing to 1) before",
        "compiled code sees it; parameters read from files are checked like constructor arguments;",
        "nothing in a project folder is written through a symbolic link; `predict` writes into a",
        "hidden `.NAME.partial-PID` next to the target and renames it when complete, so a killed",
        "run leaves the old output (or nothing) and never a result that looks complete.",
    ]
    out = ROOT / "docs" / "bad_inputs.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
