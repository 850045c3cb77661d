"""Core error messages, as the docks show them, name the docks' controls."""

from __future__ import annotations

import pytest

from active_annotator import FeatureSet
from active_annotator.classifier import check_size, split_axes
from active_annotator.errors import InputError

pytest.importorskip("napari")
from active_annotator_napari._messages import for_gui  # noqa: E402

PYTHON = ("FeatureSet", "sigmas=(", "channel_axis", "ndim=")


def _core_message(call) -> str:
    with pytest.raises(InputError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize("call, control", [
    (lambda: check_size((1, 5000), FeatureSet(sigmas=(1.0, 2.0, 4.0))), "'Scales (sigmas, px)'"),
    (lambda: check_size((1, 5000), FeatureSet(sigmas=(2.0, 4.0))), "'Original intensity'"),
    (lambda: split_axes((40, 50), 3, None), "'Spatial dims'"),
    (lambda: split_axes((3, 40), 2, 0), "'Channel axis'"),
    (lambda: FeatureSet(sigmas=()), "'Scales (sigmas, px)'"),
])
def test_core_messages_shown_in_a_dock_name_controls_not_python(call, control):
    message = _core_message(call)
    shown = for_gui(message)
    assert control in shown
    assert not any(word in shown for word in PYTHON), shown
    assert shown[:20] == message[:20]  # the diagnosis is unchanged


def test_messages_without_python_pass_unchanged():
    text = "Only one class is labelled (value 2); paint at least two classes."
    assert for_gui(text) == text
    assert for_gui("") == ""


def test_signal_messages_speak_of_seconds_and_samples_never_pixels():
    from active_annotator_napari._messages import for_signal_gui

    core = ("A sigma of 320 px needs 1921 px per axis; this image is 600 px. Use sigmas up to 100 for "
            "an image this small, e.g. FeatureSet(sigmas=(10.0, 50.0)).")
    gui = for_signal_gui(core, 100.0)
    assert "px" not in gui and "FeatureSet" not in gui
    assert "320 samples" in gui and "up to 1 s in 'Scales (s)'" in gui and "e.g. 0.1, 0.5" in gui
