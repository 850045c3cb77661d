"""The command line's shared options: one spelling of the tree count, help for
every option, and the RGB(A) channel axis guessed as napari (and the widget)
guess it."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import tifffile

from active_annotator.cli._args import guess_channel_axis
from active_annotator.cli import build_parser, main


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_command_has_help_text():
    missing = [(name, a.option_strings or a.dest) for name, sub in _subparsers().items()
               for a in sub._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert missing == []


@pytest.mark.parametrize("command, required", [
    ("train", ["--image", "i.tif", "--labels", "l.tif", "--output", "m.aamodel"]),
    ("signal-train", ["s.npy", "l.npy", "-o", "m.aasignal"]),
    ("simulate", ["--sample", "nuclei2d", "--output", "out"]),
    ("demo", []),
])
def test_commands_that_train_a_forest_take_trees_and_n_estimators(command, required):
    parser = build_parser()
    assert parser.parse_args([command, *required, "--trees", "7"]).trees == 7
    assert parser.parse_args([command, *required, "--n-estimators", "9"]).trees == 9
    help_text = _subparsers()[command].format_help()
    assert "--trees N, --n-estimators N" in help_text


@pytest.mark.parametrize("shape, axis", [
    ((64, 80, 3), -1), ((64, 80, 4), -1), ((5, 64, 80, 3), -1),
    ((3, 64, 80), None), ((64, 80), None), ((20, 20, 3), None), ((64, 80, 5), None),
    ((64, 3), None),
])
def test_channel_axis_guess_follows_napari_rgb_rule(shape, axis):
    guess_rgb = pytest.importorskip("napari.layers.image._image_utils").guess_rgb
    assert guess_channel_axis(shape) == axis
    assert (axis == -1) == guess_rgb(shape)  # the widget's guess comes from napari


def _rgb_sample(tmp_path):
    rng = np.random.default_rng(0)
    shape = (48, 56)
    labels = np.zeros(shape, np.uint8)
    labels[5:15, 5:15], labels[30:40, 30:40] = 1, 2
    image = rng.integers(0, 60, (*shape, 3)).astype(np.uint8)
    image[labels == 2] = (200, 40, 40)  # class 2 is red, class 1 dark
    tifffile.imwrite(tmp_path / "rgb.tif", image)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    return image, labels


def test_train_and_predict_guess_the_rgb_axis_and_say_so(tmp_path, capsys):
    from active_annotator import load_model

    image, labels = _rgb_sample(tmp_path)
    model = tmp_path / "m.aamodel"
    assert main(["train", "--image", str(tmp_path / "rgb.tif"), "--labels", str(tmp_path / "labels.tif"),
                 "--sigmas", "1,2", "--trees", "5", "--output", str(model)]) == 0
    out = capsys.readouterr().out
    assert "looks like RGB" in out and "--channel-axis -1" in out
    clf = load_model(model)
    assert clf.n_channels_in_ == 3 and clf.feature_set.ndim == 2

    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "rgb.tif"),
                 "--output", str(tmp_path / "pred.tif")]) == 0
    assert "--channel-axis -1" in capsys.readouterr().out
    pred = tifffile.imread(tmp_path / "pred.tif")
    assert pred.shape == labels.shape
    assert (pred[labels > 0] == labels[labels > 0]).mean() > 0.9


def test_no_guess_when_the_labels_cover_the_last_axis_or_it_is_given(tmp_path, capsys):
    image, labels = _rgb_sample(tmp_path)
    volume_labels = np.repeat(labels[..., None], 3, axis=-1)  # (48, 56, 3): a thin volume
    tifffile.imwrite(tmp_path / "vlabels.tif", volume_labels)
    assert main(["train", "--image", str(tmp_path / "rgb.tif"), "--labels", str(tmp_path / "vlabels.tif"),
                 "--sigmas", "1", "--trees", "3", "--output", str(tmp_path / "v.aamodel")]) == 0
    assert "looks like RGB" not in capsys.readouterr().out
    assert main(["train", "--image", str(tmp_path / "rgb.tif"), "--labels", str(tmp_path / "labels.tif"),
                 "--channel-axis", "2", "--sigmas", "1", "--trees", "3",
                 "--output", str(tmp_path / "c.aamodel")]) == 0
    assert "looks like RGB" not in capsys.readouterr().out


def test_simulate_guesses_the_rgb_axis(tmp_path, capsys):
    rng = np.random.default_rng(1)
    truth = np.ones((64, 64), np.uint8)
    truth[16:48, 16:48] = 2
    image = rng.integers(0, 50, (64, 64, 3)).astype(np.uint8)
    image[truth == 2, 1] += 150
    np.save(tmp_path / "rgb.npy", image)
    np.save(tmp_path / "truth.npy", truth)
    assert main(["simulate", "--image", str(tmp_path / "rgb.npy"), "--truth", str(tmp_path / "truth.npy"),
                 "--protocol", "1", "--strategies", "random", "--rounds", "1", "--seeds", "1",
                 "--patch", "16", "--trees", "3", "--output", str(tmp_path / "o"), "--quiet"]) == 0
    assert "looks like RGB" in capsys.readouterr().out
