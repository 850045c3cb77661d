"""OME-Zarr (NGFF 0.4 / zarr v2 and 0.5 / zarr v3): read images, write labels, read them back
with the ome-zarr library and with napari's OME-Zarr reader (napari-ome-zarr)."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("ome_zarr")

from active_annotator.errors import InputError, OutputError
from active_annotator.io import ome_zarr as oz

VERSIONS = ["0.4", "0.5"]
CLASS_NAMES = {1: "background", 2: "nucleus"}
COLORS = {1: (0.0, 0.0, 1.0, 1.0), 2: (1.0, 0.0, 0.0, 1.0)}


def _image(shape=(2, 120, 160)):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, shape, dtype=np.uint8)


def _labels(shape=(120, 160)):
    lab = np.zeros(shape, np.uint8)
    lab[10:40, 10:60] = 1
    lab[70:110, 90:150] = 2
    return lab


@pytest.fixture(params=VERSIONS)
def image_path(request, tmp_path):
    return oz.write_image(tmp_path / f"img{request.param}.zarr", _image(), axes="cyx",
                          version=request.param, levels=3), request.param


def test_version_files_are_the_ones_ngff_prescribes(image_path):
    path, version = image_path
    if version == "0.4":
        attrs = json.loads((path / ".zattrs").read_text())
        assert attrs["multiscales"][0]["version"] == "0.4"
        assert (path / "s0" / ".zarray").is_file()
    else:
        meta = json.loads((path / "zarr.json").read_text())
        assert meta["zarr_format"] == 3 and meta["attributes"]["ome"]["version"] == "0.5"


def test_read_image_levels_axes_and_preview_level(image_path):
    path, version = image_path
    img = oz.read_image(path)
    assert img.version == version
    assert img.axes == ("c", "y", "x") and img.channel_axis == 0
    assert [lv.shape for lv in img.levels] == [(2, 120, 160), (2, 60, 80), (2, 30, 40)]
    np.testing.assert_array_equal(np.asarray(img.data), _image())
    # a preview budget smaller than level 0 picks the finest level that fits
    prev = oz.read_image(path, level=None, max_bytes=2 * 60 * 80)
    assert prev.level == 1 and prev.data.shape == (2, 60, 80)
    assert oz.choose_level([(2, 120, 160), (2, 60, 80)], 1, max_bytes=10) == 1
    with pytest.raises(InputError, match="levels 0..2"):
        oz.read_image(path, level=3)


def test_labels_round_trip_through_the_ome_zarr_library(image_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    path, version = image_path
    lab = _labels()
    oz.write_labels(path, lab, name="annotations", class_names=CLASS_NAMES, colors=COLORS)
    oz.write_labels(path, (lab > 0).astype(np.uint8) + 1, name="prediction", class_names=CLASS_NAMES)
    # the library's own reader, not ours
    nodes = list(Reader(parse_url(str(path)))())
    labels = {n.zarr.path.rstrip("/").rsplit("/", 1)[-1]: n for n in nodes
              if any(isinstance(s, Label) for s in n.specs)}
    assert set(labels) == {"annotations", "prediction"}
    ann = labels["annotations"]
    np.testing.assert_array_equal(np.asarray(ann.data[0]), lab)
    assert [d.shape for d in ann.data] == [(120, 160), (60, 80), (30, 40)]  # one per image level
    np.testing.assert_array_equal(np.asarray(ann.data[1]), lab[::2, ::2])  # nearest: classes stay
    assert ann.metadata["color"] == {1: [0.0, 0.0, 1.0, 1.0], 2: [1.0, 0.0, 0.0, 1.0]}
    assert {k: v["class"] for k, v in ann.metadata["properties"].items()} == CLASS_NAMES
    # the image-label metadata sits where the version puts it
    if version == "0.4":
        attrs = json.loads((path / "labels" / "annotations" / ".zattrs").read_text())
        assert attrs["image-label"]["version"] == "0.4"
    else:
        attrs = json.loads((path / "labels" / "annotations" / "zarr.json").read_text())["attributes"]
        assert attrs["ome"]["image-label"]["version"] == "0.5"
    # our reader agrees
    ours = oz.read_labels(path)
    assert ours["annotations"].class_names == CLASS_NAMES and ours["annotations"].colors == COLORS


def test_rewriting_labels_replaces_them_and_lists_the_name_once(image_path):
    path, _ = image_path
    oz.write_labels(path, _labels(), class_names=CLASS_NAMES)
    new = np.zeros((120, 160), np.uint8)
    new[:5] = 2
    oz.write_labels(path, new, class_names=CLASS_NAMES)
    np.testing.assert_array_equal(np.asarray(oz.read_labels(path)["annotations"].levels[0]), new)
    assert oz.read_image(path).labels == ["annotations"]
    assert not [p for p in os.listdir(path) if p.startswith(".annotations")]  # no partials left
    assert not [p for p in os.listdir(path / "labels") if p.startswith(".annotations")]


def test_bad_labels_get_the_packages_errors(image_path, tmp_path):
    path, _ = image_path
    with pytest.raises(InputError, match=r"need shape \(120, 160\)"):
        oz.write_labels(path, np.zeros((2, 120, 160), np.uint8))
    with pytest.raises(InputError, match="integers"):
        oz.write_labels(path, np.zeros((120, 160), np.float32))
    with pytest.raises(InputError, match="Label group name"):
        oz.write_labels(path, _labels(), name="../escape")
    plain = tmp_path / "plain.zarr"
    plain.mkdir()
    with pytest.raises(InputError, match="multiscales"):
        oz.read_image(plain)
    # a planted link under labels/ is never written through
    victim = tmp_path / "victim"
    victim.mkdir()
    (path / "labels").mkdir(exist_ok=True)
    os.symlink(victim, path / "labels" / "planted")
    with pytest.raises(OutputError, match="symbolic link"):
        oz.write_labels(path, _labels(), name="planted")
    assert os.listdir(victim) == []


def test_3d_time_lapse_axes(tmp_path):
    vol = np.random.default_rng(1).integers(0, 9, (3, 8, 32, 32), dtype=np.uint16)
    path = oz.write_image(tmp_path / "t.zarr", vol, axes="tzyx", version="0.5", levels=2)
    img = oz.read_image(path)
    assert img.axes == ("t", "z", "y", "x") and img.channel_axis is None
    lab = np.zeros(vol.shape, np.uint8)
    lab[1, 2:4, 5:9, 5:9] = 1
    oz.write_labels(path, lab, class_names={1: "cell"})
    got = oz.read_labels(path)["annotations"]
    assert got.axes == ("t", "z", "y", "x")
    np.testing.assert_array_equal(np.asarray(got.levels[0]), lab)


def test_batch_prediction_reads_ome_zarr_inputs(tmp_path):
    import tifffile

    from active_annotator.batch import predict_batch
    from active_annotator.classifier import PixelClassifier
    from active_annotator.features import FeatureSet

    img = np.zeros((40, 40), np.float32)
    img[:20] = 1.0
    lab = np.zeros((40, 40), np.uint8)
    lab[2:8] = 2
    lab[30:38] = 1
    clf = PixelClassifier(FeatureSet(sigmas=(1.0,), ndim=2), n_estimators=4).fit(img, lab)
    model = clf.save(tmp_path / "m.aamodel")
    d = tmp_path / "in"
    d.mkdir()
    oz.write_image(d / "a.ome.zarr", img, axes="yx", version="0.5", levels=2)
    report = predict_batch(model, d, tmp_path / "out")
    assert report.count("done") == 1, report.files
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "a.tif"), clf.predict(img))


# -- napari ------------------------------------------------------------------------------------


@pytest.mark.gui
@pytest.mark.parametrize("version", VERSIONS)
def test_napari_opens_it_with_our_reader_and_saves_annotations_back(make_napari_viewer_proxy, tmp_path,
                                                                  version):
    pytest.importorskip("napari")
    path = oz.write_image(tmp_path / "img.zarr", _image(), axes="cyx", version=version, levels=3)
    oz.write_labels(path, _labels(), class_names=CLASS_NAMES, colors=COLORS)
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(str(path), plugin="napari-active-annotator")
    kinds = {type(layer).__name__: layer for layer in layers}
    assert set(kinds) == {"Image", "Labels"}
    labels = kinds["Labels"]
    assert labels.name == "annotations" and labels.metadata["class_names"] == CLASS_NAMES
    np.testing.assert_array_equal(labels.colormap.map(np.array([2]))[0], COLORS[2])
    assert kinds["Image"].data.shape == (120, 160) or kinds["Image"].data.shape == (2, 120, 160)
    # paint and save back (File > Save Selected Layers with the image folder)
    labels.data[0:3, 0:3] = 2
    labels.name = "annotations v2"
    viewer.layers.selection = {labels}
    written = viewer.layers.save(str(path), selected=True, plugin="napari-active-annotator")
    assert written == [str(path / "labels" / "annotations_v2")]
    back = oz.read_labels(path)["annotations_v2"]
    assert back.class_names == CLASS_NAMES and back.colors[2] == COLORS[2]
    assert np.asarray(back.levels[0])[1, 1] == 2


@pytest.mark.gui
@pytest.mark.parametrize("version", VERSIONS)
def test_napari_ome_zarr_reader_opens_what_we_wrote(make_napari_viewer_proxy, tmp_path, version):
    pytest.importorskip("napari_ome_zarr")
    path = oz.write_image(tmp_path / "img.zarr", _image(), axes="cyx", version=version, levels=3)
    oz.write_labels(path, _labels(), class_names=CLASS_NAMES, colors=COLORS)
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(str(path), plugin="napari-ome-zarr")
    labels = [layer for layer in layers if type(layer).__name__ == "Labels"]
    assert len(labels) == 1
    np.testing.assert_array_equal(np.asarray(labels[0].data[0]), _labels())
    assert list(labels[0].properties["class"]) == ["background", "nucleus"]
    np.testing.assert_array_equal(labels[0].colormap.map(np.array([1]))[0], COLORS[1])


def test_batch_writes_predictions_into_each_images_labels_group(tmp_path, capsys):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    from active_annotator.classifier import PixelClassifier
    from active_annotator.cli import main
    from active_annotator.features import FeatureSet

    rng = np.random.default_rng(3)
    d = tmp_path / "plate"
    d.mkdir()
    images = {}
    for i, version in enumerate(VERSIONS):
        img = rng.normal(0, 0.2, (2, 48, 40)).astype(np.float32)
        img[:, :24] += 2.0
        images[f"w{i}"] = img
        oz.write_image(d / f"w{i}.ome.zarr", img, axes="cyx", version=version, levels=2)
    lab = np.zeros((48, 40), np.uint8)
    lab[2:8] = 2
    lab[40:46] = 1
    clf = PixelClassifier(FeatureSet(sigmas=(1.0,), ndim=2), n_estimators=4).fit(images["w0"], lab, channel_axis=0)
    model = clf.save(tmp_path / "m.aamodel")
    args = ["predict", "--model", str(model), "--input", str(d / "*.ome.zarr"), "--output",
            str(tmp_path / "runs"), "--output-format", "labels"]
    assert main(args) == 0
    assert "2 images: 2 done" in capsys.readouterr().out
    for name, img in images.items():
        nodes = list(Reader(parse_url(str(d / f"{name}.ome.zarr")))())
        (pred,) = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
        assert pred.zarr.path.rstrip("/").endswith("labels/prediction")
        np.testing.assert_array_equal(np.asarray(pred.data[0]), clf.predict(img, channel_axis=0))
    assert main(args) == 0
    assert "2 images: 2 skipped" in capsys.readouterr().out
    # a plain TIFF among them fails alone with the reason
    import tifffile

    tifffile.imwrite(d / "plain.tif", images["w0"])
    from active_annotator.batch import predict_batch

    report = predict_batch(model, [d / "plain.tif"], tmp_path / "runs", output_format="labels")
    assert report.files[0].status == "failed" and "not an OME-Zarr image" in report.files[0].message


def test_reader_gives_a_multiscale_layer_when_level_0_is_large(tmp_path, monkeypatch):
    from active_annotator_napari import _ome_zarr_reader

    path = oz.write_image(tmp_path / "big.zarr", _image(), axes="cyx", version="0.5", levels=3)
    (image, meta, kind), = _ome_zarr_reader.get_reader(str(path))(str(path))
    assert kind == "image" and not meta["multiscale"] and image.shape == (2, 120, 160)
    monkeypatch.setattr(oz, "PREVIEW_BYTES", 2 * 120 * 160 - 1)  # level 0 now counts as large
    (levels, meta, _), = _ome_zarr_reader.read_ome_zarr(str(path))
    assert meta["multiscale"] and [lv.shape for lv in levels] == [(2, 120, 160), (2, 60, 80), (2, 30, 40)]
    assert meta["channel_axis"] == 0
    assert _ome_zarr_reader.get_reader(str(tmp_path)) is None  # not OME-Zarr: left to other readers


def test_batch_over_plate_wells_names_outputs_by_well(tmp_path):
    import tifffile

    from active_annotator.batch import predict_batch
    from active_annotator.classifier import PixelClassifier
    from active_annotator.features import FeatureSet

    img = np.zeros((32, 32), np.float32)
    img[:16] = 1.0
    lab = np.zeros((32, 32), np.uint8)
    lab[1:5] = 2
    lab[25:30] = 1
    clf = PixelClassifier(FeatureSet(sigmas=(1.0,), ndim=2), n_estimators=4).fit(img, lab)
    model = clf.save(tmp_path / "m.aamodel")
    plate = tmp_path / "plate.zarr"
    for well in ("A/1", "B/2"):
        (plate / well).mkdir(parents=True)
        oz.write_image(plate / well / "0", img, axes="yx", version="0.5", levels=1)
    report = predict_batch(model, str(plate / "*" / "*" / "0"), tmp_path / "out")
    assert report.count("done") == 2, report.files
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["A_1_0.tif", "B_2_0.tif"]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "B_2_0.tif"), clf.predict(img))
