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


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for what, call in cases(Path(d)):
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
    out = ROOT / "docs" / "bad_inputs.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
