"""Sample-data commands and the ``.aalabels`` annotation store (reader and writer)."""

import json

import numpy as np
import pytest

from active_annotator import data
from active_annotator_napari import _io, _sample_data


def _plugins_discovered():
    """A bare ViewerModel does not load plugins; discover them the way napari does at start."""
    npe2 = pytest.importorskip("npe2")
    npe2.PluginManager.instance().discover()


# -- sample data ------------------------------------------------------------------------
def test_nuclei2d_sample_gives_image_starter_annotations_and_hidden_truth():
    (image, image_meta, image_type), (labels, labels_meta, labels_type), (truth, truth_meta, truth_type) = (
        _sample_data.nuclei2d()
    )
    d = data.nuclei2d()
    assert image_type == "image" and labels_type == "labels" == truth_type
    np.testing.assert_array_equal(image, d["image"])
    np.testing.assert_array_equal(labels, d["labels"])
    np.testing.assert_array_equal(truth, d["truth"])
    assert labels_meta["name"] == "annotations" and labels_meta.get("visible", True)
    assert truth_meta["name"] == "ground truth" and truth_meta["visible"] is False
    assert set(np.unique(labels)) == {0, 1, 2}  # both classes have starter strokes
    assert labels_meta["metadata"]["class_names"] == {1: "background", 2: "nucleus"}


def test_nuclei3d_sample_gives_volume_sparse_starter_labels_and_truth():
    layers = _sample_data.nuclei3d()
    assert [(m["name"], t) for _, m, t in layers] == [
        ("nuclei 3D", "image"), ("annotations", "labels"), ("ground truth", "labels")]
    image, annotations, truth = (arr for arr, _, _ in layers)
    assert image.shape == annotations.shape == truth.shape == (31, 61, 57)
    assert layers[2][1]["visible"] is False
    labelled = annotations > 0
    assert set(np.unique(annotations)) == {0, 1, 2}
    assert labelled.mean() < 0.01  # sparse: a starting point, not the answer
    np.testing.assert_array_equal(annotations[labelled], truth[labelled])


def test_micronuclei2d_sample_is_the_mnfinder_image_with_three_class_truth():
    layers = _sample_data.micronuclei2d()
    assert [(m["name"], t) for _, m, t in layers] == [
        ("micronuclei", "image"), ("annotations", "labels"), ("ground truth", "labels")]
    image, annotations, truth = (arr for arr, _, _ in layers)
    assert image.shape == annotations.shape == truth.shape == (768, 869)
    assert image.dtype == np.uint16 and not annotations.any()  # nothing painted yet
    counts = np.bincount(truth.ravel(), minlength=4)
    assert counts[0] == 0 and counts[1:].tolist() == [527544, 133794, 6054]  # micronuclei are rare
    assert layers[1][1]["metadata"]["class_names"] == {1: "background", 2: "nucleus", 3: "micronucleus"}
    lo, hi = layers[0][1]["contrast_limits"]
    assert image.min() <= lo < hi <= image.max()


def test_napari_lists_and_opens_the_samples_through_the_manifest():
    napari = pytest.importorskip("napari")
    from napari.components import ViewerModel

    _plugins_discovered()
    viewer = ViewerModel()
    viewer.open_sample("napari-active-annotator", "nuclei2d")
    assert [ly.name for ly in viewer.layers] == ["nuclei", "annotations", "ground truth"]
    assert isinstance(viewer.layers["annotations"], napari.layers.Labels)
    assert not viewer.layers["ground truth"].visible


# -- annotation store --------------------------------------------------------------------
def test_labels_store_round_trip_keeps_values_dtype_names_and_geometry(tmp_path):
    labels = np.zeros((4, 30, 40), np.uint16)
    labels[1, 5:9, 10:30] = 1
    labels[2, 20:25, 3:8] = 300
    meta = {"name": "annotations", "scale": (2.0, 0.5, 0.5), "translate": (0, 10, -3),
            "metadata": {"class_names": {1: "background", 300: "nucleus"}}}

    written = _io.write_labels(str(tmp_path / "cells"), labels, meta)

    assert written == [str(tmp_path / "cells.aalabels")]
    reader = _io.get_reader(written[0])
    assert reader is not None
    [(back, back_meta, layer_type)] = reader(written[0])
    assert layer_type == "labels"
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)
    assert back_meta["name"] == "annotations"
    assert back_meta["scale"] == [2.0, 0.5, 0.5] and back_meta["translate"] == [0.0, 10.0, -3.0]
    assert back_meta["metadata"]["class_names"] == {1: "background", 300: "nucleus"}


def test_store_is_plain_zarr_with_a_versioned_format_tag(tmp_path):
    zarr = pytest.importorskip("zarr")
    [path] = _io.write_labels(str(tmp_path / "a.aalabels"), np.ones((3, 3), np.uint8), {})
    group = zarr.open_group(path, mode="r")
    assert group.attrs["format"] == "napari-active-annotator.labels"
    assert group.attrs["version"] == 1
    np.testing.assert_array_equal(group["annotations"][...], 1)


def test_overwriting_replaces_the_store_and_leaves_no_temporary_folders(tmp_path):
    first = np.full((5, 5), 1, np.uint8)
    second = np.full((6, 2), 2, np.uint8)
    _io.write_labels(str(tmp_path / "x.aalabels"), first, {"name": "one"})
    _io.write_labels(str(tmp_path / "x.aalabels"), second, {"name": "two"})

    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.aalabels"]
    [(back, meta, _)] = _io.read_labels(str(tmp_path / "x.aalabels"))
    np.testing.assert_array_equal(back, second)
    assert meta["name"] == "two"


def test_writer_refuses_float_data_and_leaves_the_old_store(tmp_path):
    _io.write_labels(str(tmp_path / "x.aalabels"), np.ones((2, 2), np.uint8), {})
    with pytest.raises(ValueError, match="integer"):
        _io.write_labels(str(tmp_path / "x.aalabels"), np.ones((2, 2), np.float32), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.aalabels"]
    np.testing.assert_array_equal(_io.read_labels(str(tmp_path / "x.aalabels"))[0][0], 1)


def test_reader_declines_other_paths(tmp_path):
    zarr = pytest.importorskip("zarr")
    assert _io.get_reader(str(tmp_path / "missing.aalabels")) is None
    assert _io.get_reader(str(tmp_path)) is None
    foreign = tmp_path / "foreign.aalabels"
    zarr.open_group(str(foreign), mode="w").attrs["format"] = "something else"
    assert _io.get_reader(str(foreign)) is None
    (tmp_path / "f.aalabels").write_text("a file, not a store")
    assert _io.get_reader(str(tmp_path / "f.aalabels")) is None


def test_reader_refuses_a_newer_store_version_with_advice(tmp_path):
    [path] = _io.write_labels(str(tmp_path / "x"), np.ones((2, 2), np.uint8), {})
    meta_file = tmp_path / "x.aalabels" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["attributes"]["version"] = 99
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="newer napari-active-annotator"):
        _io.read_labels(path)


def test_napari_saves_and_reopens_a_labels_layer_through_the_plugin(tmp_path):
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    _plugins_discovered()
    viewer = ViewerModel()
    labels = np.zeros((20, 30), np.uint8)
    labels[3:6, 4:9] = 2
    viewer.add_labels(labels, name="annotations", scale=(1.5, 1.5),
                      metadata={"class_names": {2: "nucleus"}})
    saved = viewer.layers.save(str(tmp_path / "mine.aalabels"), plugin="napari-active-annotator")
    assert saved == [str(tmp_path / "mine.aalabels")]

    reopened = ViewerModel()
    reopened.open(saved[0], plugin="napari-active-annotator")
    layer = reopened.layers["annotations"]
    np.testing.assert_array_equal(layer.data, labels)
    assert tuple(layer.scale) == (1.5, 1.5)
    assert layer.metadata["class_names"] == {2: "nucleus"}


# -- array files (active_annotator.io.arrays) ----------------------------------------------
def test_read_array_reads_tif_npy_zarr_and_a_one_array_zarr_group_the_same(tmp_path):
    import tifffile
    import zarr

    from active_annotator.io.arrays import open_array, read_array

    a = np.arange(6 * 7, dtype=np.uint16).reshape(6, 7)
    tifffile.imwrite(tmp_path / "a.tif", a)
    np.save(tmp_path / "a.npy", a)
    zarr.save_array(str(tmp_path / "a.zarr"), a)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("only", shape=a.shape, dtype=a.dtype)[...] = a
    for name in ("a.tif", "a.npy", "a.zarr", "g.zarr"):
        got = read_array(tmp_path / name)
        assert isinstance(got, np.ndarray) and got.dtype == a.dtype, name
        np.testing.assert_array_equal(got, a)
    lazy = open_array(tmp_path / "a.zarr", lazy=True)
    assert type(lazy).__module__.startswith("dask")
    np.testing.assert_array_equal(lazy.compute(), a)


def test_read_array_refuses_pickles_missing_files_and_ambiguous_groups(tmp_path):
    import zarr

    from active_annotator.errors import InputError
    from active_annotator.io.arrays import read_array

    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="obj.npy"):
        read_array(tmp_path / "obj.npy")
    with pytest.raises(InputError, match="does not exist"):
        read_array(tmp_path / "nope.tif")
    g = zarr.open_group(str(tmp_path / "two.zarr"), mode="w")
    g.create_array("a", shape=(2,), dtype="u1")
    g.create_array("b", shape=(2,), dtype="u1")
    with pytest.raises(InputError, match="point at one array"):
        read_array(tmp_path / "two.zarr")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match="Unsupported file type"):
        read_array(tmp_path / "x.png")


def test_write_array_is_atomic_and_refuses_unknown_suffixes(tmp_path):
    import tifffile

    from active_annotator.errors import InputError
    from active_annotator.io.arrays import read_array, write_array

    a = np.eye(5, dtype=np.float32)
    write_array(tmp_path / "p.tif", a)
    write_array(tmp_path / "p.npy", a)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), a)
    np.testing.assert_array_equal(read_array(tmp_path / "p.npy"), a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npy", "p.tif"]  # no temporaries left
    with pytest.raises(InputError, match="use .tif, .tiff or .npy"):
        write_array(tmp_path / "p.png", a)
    assert not (tmp_path / "p.png").exists()


def test_pixel_spacing_from_imagej_and_ome_tiff_and_ome_zarr(tmp_path):
    import tifffile

    from active_annotator.io.arrays import pixel_spacing
    from active_annotator.io.ome_zarr import write_image

    vol = np.zeros((4, 16, 16), np.uint8)
    tifffile.imwrite(tmp_path / "ij.tif", vol, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"spacing": 4.0, "unit": "um"})
    assert pixel_spacing(tmp_path / "ij.tif") == pytest.approx((4.0, 0.5, 0.5))
    tifffile.imwrite(tmp_path / "ome.tif", vol, ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeZ": 6.5, "PhysicalSizeY": 0.78, "PhysicalSizeX": 0.78})
    assert pixel_spacing(tmp_path / "ome.tif") == pytest.approx((6.5, 0.78, 0.78))
    tifffile.imwrite(tmp_path / "plain.tif", vol)
    assert pixel_spacing(tmp_path / "plain.tif") is None  # says nothing: the caller's default
    np.save(tmp_path / "a.npy", vol)
    assert pixel_spacing(tmp_path / "a.npy") is None
    write_image(tmp_path / "v.ome.zarr", vol, axes="zyx", levels=1)
    assert pixel_spacing(tmp_path / "v.ome.zarr") == pytest.approx((1.0, 1.0, 1.0))


def test_cli_train_filters_thick_slices_per_slice_from_the_file_metadata(tmp_path, capsys):
    import tifffile

    from active_annotator.cli import main
    from active_annotator.persistence import load_model

    rng = np.random.default_rng(0)
    vol = rng.normal(size=(6, 32, 32)).astype(np.float32)
    vol[:, 8:24, 8:24] += 3
    labels = np.zeros(vol.shape, np.uint8)
    labels[:, 2, 2:30], labels[:, 16, 10:22] = 1, 2
    tifffile.imwrite(tmp_path / "thick.tif", vol, imagej=True, resolution=(1 / 0.8, 1 / 0.8),
                     metadata={"spacing": 6.5})
    np.save(tmp_path / "lab.npy", labels)
    args = ["train", "--image", str(tmp_path / "thick.tif"), "--labels", str(tmp_path / "lab.npy"),
            "--trees", "3", "--output"]
    assert main([*args, str(tmp_path / "m.aamodel")]) == 0
    assert "8.1x thicker than pixels: 2-D features per slice" in capsys.readouterr().out
    assert load_model(tmp_path / "m.aamodel").feature_set.ndim == 2
    code = main([*args, str(tmp_path / "m3.aamodel"), "--ndim", "3", "--sigmas", "1,2"])
    assert code == 0, capsys.readouterr().err  # the user's choice wins
    assert load_model(tmp_path / "m3.aamodel").feature_set.ndim == 3


def test_pixel_spacing_of_a_broken_ome_header_is_unknown_not_an_error(tmp_path):
    import tifffile

    from active_annotator.io.arrays import pixel_spacing

    broken = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/'
              '2016-06"><Image ID="Image:0"><Pixels PhysicalSizeX="1" <<broken</OME>')
    tifffile.imwrite(tmp_path / "bad.ome.tif", np.zeros((2, 8, 8), np.uint8), description=broken, metadata=None)
    with tifffile.TiffFile(tmp_path / "bad.ome.tif") as tif:
        assert tif.is_ome  # the XML reaches the parser
    assert pixel_spacing(tmp_path / "bad.ome.tif") is None
