"""AnnotationSession: the annotation loop in the core (no Qt)."""

import numpy as np
import pytest
import zarr

from active_annotator import FeatureSet, PixelClassifier
from active_annotator.errors import Cancelled, InputError, LabelError, NotFittedError
from active_annotator.evaluation import metrics
from active_annotator.sampling import suggest_for_image
from active_annotator.session import AnnotationSession

FS = FeatureSet(sigmas=(1.0, 2.0, 4.0))


def _clf(**kw):
    return PixelClassifier(features=FS, n_estimators=16, random_state=0, **kw)


def test_region_first_then_whole_equals_a_direct_fit(two_class_image):
    image, strokes, truth = two_class_image
    s = AnnotationSession(image)
    s.train(strokes, _clf())
    region = (slice(8, 40), slice(16, 50))
    stages = list(s.predict(region))
    assert [st.complete for st in stages] == [False, True]
    assert stages[0].region == region and stages[0].probabilities.shape == (2, 32, 34)
    direct = _clf().fit(image, strokes).predict_proba(image)
    np.testing.assert_allclose(stages[1].probabilities, direct, atol=1e-5)
    # the region's stage is the same numbers as the whole image's there
    np.testing.assert_array_equal(stages[0].probabilities, stages[1].probabilities[(slice(None),) + region])
    np.testing.assert_array_equal(s.probabilities, stages[1].probabilities)
    assert np.array_equal(s.prediction(), stages[1].prediction)
    assert metrics(truth, s.prediction()).mean_jaccard > 0.8
    np.testing.assert_allclose(s.uncertainty(), stages[1].uncertainty)


def test_retraining_reuses_the_cached_features(two_class_image):
    image, strokes, _ = two_class_image
    s = AnnotationSession(image)
    s.train(strokes, _clf())
    s.predict_all()
    tiles = s.tiles_computed
    assert tiles >= 1
    more = strokes.copy()
    more[60, :] = 1
    s.train(more, _clf())
    s.predict_all()
    assert s.tiles_computed == tiles  # a cache hit computes nothing
    s.train(more, PixelClassifier(features=FeatureSet(sigmas=(1.0, 2.0)), n_estimators=8))
    assert s.cached_features.spec.sigmas == (1.0, 2.0)  # a new feature set: a new cache


def test_a_stack_of_planes_and_a_lazy_zarr_image(two_class_image, tmp_path):
    image, strokes, _ = two_class_image
    stack = np.stack([image, image[::-1]])
    labels = np.stack([strokes, np.zeros_like(strokes)])
    store = zarr.open(str(tmp_path / "img.zarr"), mode="w", shape=stack.shape, chunks=(1, 32, 32),
                      dtype=stack.dtype)
    store[:] = stack
    s = AnnotationSession(store, spatial_ndim=2)
    assert s.stack == (2,) and s.spatial == (64, 64)
    s.train(labels, _clf())
    vis = (slice(1, 2), slice(0, 64), slice(0, 64))
    first, whole = s.predict(vis)
    assert first.probabilities.shape == (2, 1, 64, 64)
    direct = _clf().fit(stack, labels).predict_proba(stack)
    np.testing.assert_allclose(whole.probabilities, direct, atol=1e-5)


def test_preview_step_and_visible_only(two_class_image):
    image, strokes, _ = two_class_image
    s = AnnotationSession(image)
    s.train(strokes, _clf())
    (only,) = list(s.predict((slice(0, 64), slice(0, 64)), step=4, full=False))
    assert not only.complete and s.probabilities is None  # a preview is never the model's answer
    exact = s.predict_all()
    np.testing.assert_allclose(only.probabilities[:, ::4, ::4], exact[:, ::4, ::4], atol=1e-5)
    assert np.array_equal(only.probabilities[:, 1, 1], only.probabilities[:, 0, 0])  # blocks filled


def test_autocontext_stages_predict_the_same_as_a_direct_fit(two_class_image):
    image, strokes, _ = two_class_image
    s = AnnotationSession(image)
    s.train(strokes, _clf(stages=2))
    got = s.predict_all()
    # the session predicts its own training image: out-of-fold stage inputs at the strokes
    direct = _clf(stages=2).fit(image, strokes).predict_proba(image, training_image=True)
    np.testing.assert_allclose(got, direct, atol=1e-5)
    s.train(strokes, _clf(stages=2))  # a new fit of another classifier object: its own folds
    np.testing.assert_allclose(s.predict_all(), direct, atol=1e-5)
    assert s.validate() is None  # no twin for multi-stage models (documented)


def test_validate_records_a_round(two_class_image):
    image, strokes, _ = two_class_image
    s = AnnotationSession(image)
    with pytest.raises(NotFittedError):
        s.validate()
    s.train(strokes, _clf())
    v = s.validate()
    assert len(s.history.rounds) == 1
    assert s.history.rounds[0]["labelled_pixels"] == int(np.count_nonzero(strokes))
    assert 0.0 <= v.validation.mean_jaccard <= 1.0
    s.validate(record=False)
    assert len(s.history.rounds) == 1


def test_suggest_reads_the_cached_features(two_class_image):
    image, strokes, _ = two_class_image
    s = AnnotationSession(image)
    s.train(strokes, _clf())
    proba = s.predict_all()
    tiles = s.tiles_computed
    got = s.suggest("diversity", n=5, labels=strokes, size=16)
    assert s.tiles_computed == tiles  # descriptors came from the cache
    want = suggest_for_image(proba, strokes, strategy="diversity", n=5, size=16, seed=0, spatial_ndim=2,
                             image=image, features=s.classifier.feature_set)
    assert [x.candidate.key for x in got] == [x.candidate.key for x in want]
    assert len(s.suggest(n=3, labels=strokes)) == 3  # the default strategy, the default patch size


def test_errors_name_the_problem_and_the_fix(two_class_image):
    image, strokes, _ = two_class_image
    s = AnnotationSession(image)
    with pytest.raises(LabelError, match="no labels yet"):
        s.train(np.zeros_like(strokes), _clf())
    with pytest.raises(InputError, match="non-channel shape"):
        s.train(strokes[:10], _clf())
    with pytest.raises(InputError, match="ndim=2"):
        s.train(strokes, PixelClassifier(features=FeatureSet(ndim=3)))
    with pytest.raises(NotFittedError, match="no model yet"):
        next(s.predict())
    with pytest.raises(NotFittedError, match="train, then predict"):
        s.suggest()
    with pytest.raises(InputError, match="spatial_ndim"):
        AnnotationSession(image, spatial_ndim=3)
    with pytest.raises(InputError, match="channel_axis"):
        AnnotationSession(image, channel_axis=5)


def test_cancel_stops_training_and_prediction(two_class_image):
    image, strokes, _ = two_class_image
    s = AnnotationSession(image)
    with pytest.raises(Cancelled):
        s.train(strokes, _clf(), should_stop=lambda: True)
    assert s.classifier is None  # a cancelled round leaves the session as it was
    s.train(strokes, _clf())
    with pytest.raises(Cancelled):
        list(s.predict(should_stop=lambda: True))
    assert s.probabilities is None


def test_multichannel_image_channel_axis_first(two_class_image):
    image, strokes, _ = two_class_image
    rgb = np.stack([image, image ** 2, -image])
    s = AnnotationSession(rgb, channel_axis=0)
    assert s.shape == (64, 64) and s.n_channels == 3
    s.train(strokes, _clf())
    direct = _clf().fit(rgb, strokes, channel_axis=0).predict_proba(rgb, channel_axis=0)
    np.testing.assert_allclose(s.predict_all(), direct, atol=1e-5)


def test_session_and_classifier_gather_the_same_labelled_rows(two_class_image):
    from active_annotator.classifier import NO_LABELS_MESSAGE

    image, strokes, _ = two_class_image
    stack = np.stack([image, image[::-1]])
    labels = np.stack([np.zeros_like(strokes), strokes.astype(np.uint16)])  # plane 0 unlabelled
    clf = _clf()
    X, y, _ = clf.training_data(stack, labels)
    s = AnnotationSession(stack)
    s.train(labels, _clf())
    _, Xs, ys, *_ = s._last_fit
    np.testing.assert_array_equal(Xs, X)
    np.testing.assert_array_equal(ys, y)
    assert ys.dtype == y.dtype == np.uint16
    with pytest.raises(LabelError) as from_session:
        s.train(np.zeros_like(labels), _clf())
    with pytest.raises(LabelError) as from_classifier:
        clf.training_data(stack, np.zeros_like(labels))
    assert str(from_session.value) == str(from_classifier.value) == NO_LABELS_MESSAGE
