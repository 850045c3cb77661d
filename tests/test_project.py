"""Project folders: round trip, autosave, crash recovery, hostile files, full/read-only disks."""

import json
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from active_annotator import ModelFileError
from active_annotator.project import AnnotationStore, Project, ProjectError, inside


@pytest.fixture
def labels():
    lab = np.zeros((300, 700), np.uint16)
    lab[10:20, 10:600] = 1
    lab[200:210, 500:690] = 2
    return lab


def test_round_trip_keeps_everything(tmp_path, labels):
    proj = Project.create(tmp_path / "work")
    assert proj.path.name == "work.aaproject"
    image = np.arange(300 * 700, dtype=np.uint16).reshape(300, 700)
    proj.add_image("cells 1", image=image)
    proj.settings = {"features": {"sigmas": [1.0, 2.0]}, "n_estimators": 50}
    proj.history = [{"round": 1, "labelled": {"1": 5900, "2": 1900}, "validation_f1": 0.9}]
    proj.suggestions = {"strategy": "hybrid", "done": [3, 5]}
    proj.classes = {"1": "background", "2": "nucleus"}
    proj.save_annotations("cells 1", labels)
    proj.save()

    again = Project.open(proj.path)
    assert [r.name for r in again.images] == ["cells_1"]
    np.testing.assert_array_equal(again.load_image("cells 1"), image)
    np.testing.assert_array_equal(again.load_annotations("cells 1"), labels)
    assert again.settings == proj.settings and again.history == proj.history
    assert again.suggestions == proj.suggestions and again.classes == proj.classes


def test_autosave_of_a_region_only_touches_that_region(tmp_path, labels):
    proj = Project.create(tmp_path / "p")
    proj.add_image("img", image=np.zeros(labels.shape, np.uint8))
    proj.save_annotations("img", labels)
    assert proj.unsaved_autosaves() == []
    edited = labels.copy()
    edited[100:110, 100:110] = 3
    edited[0, 0] = 9  # outside the region: must not be written
    proj.autosave("img", edited, region=(slice(100, 110), slice(100, 110)))
    auto = proj.load_annotations("img", prefer_autosave=True)
    assert (auto[100:110, 100:110] == 3).all() and auto[0, 0] == 0
    assert proj.unsaved_autosaves() == ["img"]


def test_crash_lock_and_restore(tmp_path, labels):
    proj = Project.create(tmp_path / "p")
    proj.add_image("img", image=np.zeros(labels.shape, np.uint8))
    proj.save_annotations("img", labels)
    proj.save()
    proj.begin_session()
    newer = labels.copy()
    newer[50:60, 50:60] = 2
    proj.autosave("img", newer)
    # the process dies here: no end_session
    reopened = Project.open(proj.path)
    assert reopened.crashed()
    assert reopened.unsaved_autosaves() == ["img"]
    np.testing.assert_array_equal(reopened.restore_autosave("img"), newer)
    np.testing.assert_array_equal(reopened.load_annotations("img"), newer)
    reopened.end_session()
    assert not Project.open(proj.path).crashed()


def test_paths_cannot_escape_the_project(tmp_path):
    proj = Project.create(tmp_path / "p")
    meta = json.loads((proj.path / "project.json").read_text())
    meta["images"] = [{"name": "x", "source": "../../etc/passwd", "embedded": True}]
    (proj.path / "project.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="outside the project"):
        Project.open(proj.path)
    for bad in ("/etc/passwd", "models/../../x", ""):
        with pytest.raises(ModelFileError):
            inside(proj.path, bad)


def test_corrupt_and_newer_project_files_say_what_to_do(tmp_path):
    proj = Project.create(tmp_path / "p")
    (proj.path / "project.json").write_text('{"format": "napari-active-annot')
    with pytest.raises(ModelFileError, match="corrupt"):
        Project.open(proj.path)
    (proj.path / "project.json").write_text(
        json.dumps({"format": "napari-active-annotator.project", "schema_version": 99})
    )
    with pytest.raises(ModelFileError, match="Upgrade"):
        Project.open(proj.path)
    with pytest.raises(ModelFileError, match="not a project"):
        Project.open(tmp_path)


def test_existing_project_is_not_overwritten(tmp_path):
    Project.create(tmp_path / "p")
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(tmp_path / "p")


def test_label_shape_mismatch_is_refused(tmp_path, labels):
    store = AnnotationStore(tmp_path / "a.zarr")
    store.write(labels)
    with pytest.raises(Exception, match="do not fit"):
        store.write(labels[:10])
    np.testing.assert_array_equal(store.read(), labels)


def _mount(args, target: Path):
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this machine cannot mount test file systems: {r.stderr.strip()}")


def test_full_disk_gives_clear_error_and_keeps_labels(tmp_path, labels):
    mnt = tmp_path / f"tiny{uuid.uuid4().hex[:6]}"
    _mount(["-t", "tmpfs", "-o", "size=96k", "tmpfs"], mnt)
    try:
        proj = Project.create(mnt / "p")
        noisy = np.random.default_rng(0).integers(0, 60000, (1024, 1024)).astype(np.uint16)
        before = noisy.copy()
        with pytest.raises(ProjectError, match="disk is full.*still in memory"):
            proj.autosave("img", noisy)
        np.testing.assert_array_equal(noisy, before)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_read_only_location_gives_clear_error(tmp_path, labels):
    folder = tmp_path / "ro"
    proj = Project.create(folder / "p")
    proj.autosave("img", labels)
    _mount(["-o", "bind,ro", str(folder)], folder)
    try:
        changed = labels + 1
        with pytest.raises(ProjectError, match="read-only"):
            proj.autosave("img", changed)
        np.testing.assert_array_equal(proj.load_annotations("img", prefer_autosave=True), labels)
    finally:
        subprocess.run(["umount", "-l", str(folder)])


def test_changed_region_is_the_bounding_box_of_the_differences():
    from active_annotator.project import changed_region

    a = np.zeros((6, 7, 8), np.uint8)
    b = a.copy()
    assert changed_region(a, b) is None
    b[1, 2, 3] = 1
    b[4, 2, 6] = 2
    assert changed_region(a, b) == (slice(1, 5), slice(2, 3), slice(3, 7))
