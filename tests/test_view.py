"""The viewer geometry of the visible-first prediction (active_annotator.view) and one
round of the loop (AnnotationSession.round), without a GUI."""

import numpy as np

from active_annotator import PixelClassifier
from active_annotator.session import AnnotationSession, Stage
from active_annotator.view import current_plane, preview_step, visible_region


def test_visible_region_is_the_screen_box_rounded_out_and_clipped():
    shape = (4, 100, 200)  # a stack of 4 planes
    corners = [(2, -10.4, 150.2), (2, -10.4, 260.0), (2, 30.5, 150.2), (2, 30.5, 260.0)]
    region = visible_region(shape, 2, point=(2.2, 50, 50), corners=corners)
    assert region == (slice(2, 3), slice(0, 32), slice(150, 200))
    # no corners (another pair of axes displayed): the whole current plane
    assert visible_region(shape, 2, point=(3.9, 0, 0)) == (slice(3, 4), slice(0, 100), slice(0, 200))


def test_a_volume_shows_its_slice_in_2d_and_everything_in_3d():
    shape = (10, 64, 64)
    assert visible_region(shape, 3, point=(6.4, 1, 1)) == (slice(6, 7), slice(0, 64), slice(0, 64))
    assert visible_region(shape, 3, point=(6.4, 1, 1), three_d=True) == tuple(slice(0, n) for n in shape)
    assert current_plane((3, 10, 64, 64), 3) == (slice(0, 1), slice(0, 10), slice(0, 64), slice(0, 64))


def test_preview_step_is_a_power_of_two_up_to_16():
    assert [preview_step(v) for v in (0.5, 1, 1.9, 2, 3.5, 7.9, 8, 100)] == [1, 1, 1, 2, 2, 4, 8, 16]


def test_round_yields_visible_stage_validation_then_the_rest(two_class_image):
    image, strokes, _ = two_class_image
    session = AnnotationSession(image)
    visible = (slice(0, 32), slice(0, 64))
    steps = session.round(strokes, PixelClassifier(n_estimators=10, random_state=0), visible)
    first = next(steps)
    assert isinstance(first, Stage) and first.region == visible and not first.complete
    validation = next(steps)
    assert validation is not None and validation.validation.n_pixels > 0
    assert session.history.rounds == []  # the caller records the round
    (last,) = list(steps)
    assert last.complete and last.probabilities.shape == (2, 64, 64)
    np.testing.assert_array_equal(last.probabilities[:, :32], first.probabilities)  # reused, exact
    # predict-only: no validation
    steps = session.round(None, region=visible)
    assert next(steps).region == visible and next(steps) is None
