"""Every classifier follows scikit-learn's estimator contract.

``get_params`` lists exactly the ``__init__`` parameters, ``set_params``
round-trips, ``sklearn.base.clone`` copies the parameters and none of the
learned state, and a clone refitted on the same data with the same seed
predicts what the original predicts.
"""

import inspect
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier

from active_annotator import FeatureSet, PixelClassifier
from active_annotator.errors import InputError, NotFittedError
from active_annotator.io.signals import SignalRecord
from active_annotator.objects import ObjectClassifier
from active_annotator.signals import SignalClassifier


def _pixel_data():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 0.3, (24, 24)).astype(np.float32)
    img[:, 12:] += 2.0
    lab = np.zeros((24, 24), np.uint8)
    lab[2:6, 2:8], lab[16:20, 15:22] = 1, 2
    return img, lab


def _signal_data():
    rng = np.random.default_rng(1)
    data = rng.normal(0, 0.2, (1, 4096)).astype(np.float32)
    data[0, 2048:] += np.sin(np.arange(2048) * 0.5) * 3
    labels = np.zeros(4096, np.uint8)
    labels[200:600], labels[3000:3400] = 1, 2
    return SignalRecord(data, sampling_rate=100.0), labels


def _object_data():
    rng = np.random.default_rng(2)
    table = rng.normal(0, 1, (40, 4))
    table[20:, 0] += 4.0
    y = np.zeros(40, np.int64)
    y[:6], y[20:26] = 1, 2
    return table, y


def _make_pixel():
    return PixelClassifier(FeatureSet(sigmas=(1.0, 2.0), ndim=2), n_estimators=5, max_depth=6,
                           random_state=3, n_jobs=1)


def _make_signal():
    return SignalClassifier(n_estimators=5, max_depth=6, random_state=3, n_jobs=1, tile=2048)


def _make_object():
    return ObjectClassifier(n_estimators=5, max_depth=6, random_state=3, n_jobs=1)


CASES = {
    "pixel": (_make_pixel, _pixel_data, {"n_estimators": 9, "tile_shape": 64, "stages": 2}),
    "signal": (_make_signal, _signal_data, {"n_estimators": 9, "tile": 4096, "class_weight": "balanced"}),
    "object": (_make_object, _object_data, {"n_estimators": 9, "min_samples_leaf": 2, "class_weight": None}),
}


def _make_cnn():
    from active_annotator.cnn import CNNClassifier

    return CNNClassifier(dims=2, widths=[4, 8], depth=1, epochs=1, batches_per_epoch=2, batch_size=2,
                         patch_size=16, warm_start_epochs=0, tile_size=64, seed=5, device="cpu",
                         n_threads=1)


try:
    import torch  # noqa: F401
except ImportError:  # the CNN is an extra; the forest classifiers are tested without it
    pass
else:
    CASES["cnn"] = (_make_cnn, _pixel_data, {"epochs": 3, "widths": [8, 16], "dropout": 0.2})


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]


def test_every_classifier_is_a_sklearn_classifier(case):
    clf = case[0]()
    assert isinstance(clf, BaseEstimator) and isinstance(clf, ClassifierMixin) and is_classifier(clf)


def test_get_params_keys_are_the_init_signature(case):
    clf = case[0]()
    signature = [p for p in inspect.signature(type(clf).__init__).parameters if p != "self"]
    assert list(clf.get_params(deep=False)) == signature
    assert set(clf.get_params(deep=True)) >= set(signature)


def test_init_stores_its_arguments_unchanged(case):
    clf = case[0]()
    defaults = type(clf)()
    for name, value in clf.get_params(deep=False).items():
        assert getattr(clf, name) is value
    # an unfitted classifier has no learned (trailing underscore) state
    learned = [k for k in vars(defaults) if k.endswith("_") and not k.startswith("_")]
    assert learned == []


def test_set_params_round_trips(case):
    make, _, changes = case
    clf = make()
    before = clf.get_params(deep=False)
    assert clf.set_params(**changes) is clf
    after = clf.get_params(deep=False)
    for k, v in changes.items():
        assert after[k] == v
    assert {k: v for k, v in after.items() if k not in changes} == {
        k: v for k, v in before.items() if k not in changes}
    clf.set_params(**{k: before[k] for k in changes})
    assert clf.get_params(deep=False) == before


def test_set_params_refuses_unknown_names_with_our_error(case):
    with pytest.raises(InputError, match="Unknown parameter 'not_a_parameter'"):
        case[0]().set_params(not_a_parameter=1)


def test_clone_of_a_fitted_classifier_has_equal_params_and_is_unfitted(case):
    make, data, _ = case
    X, y = data()
    clf = make().fit(X, y)
    twin = clone(clf)
    assert type(twin) is type(clf) and twin is not clf
    p, q = clf.get_params(deep=False), twin.get_params(deep=False)
    assert list(p) == list(q)
    for k in p:
        assert p[k] == q[k], k
    assert not hasattr(twin, "classes_")
    with pytest.raises(NotFittedError):
        twin.predict(X)


def test_refitted_clone_predicts_what_the_original_predicts(case):
    make, data, _ = case
    X, y = data()
    clf = make().fit(X, y)
    twin = clone(clf).fit(X, y)
    np.testing.assert_array_equal(twin.classes_, clf.classes_)
    np.testing.assert_array_equal(twin.predict(X), clf.predict(X))
    np.testing.assert_allclose(twin.predict_proba(X), clf.predict_proba(X), rtol=0, atol=1e-6)
    # score counts the labelled entries only; the two agree on it too
    assert twin.score(X, y) == clf.score(X, y) and 0.5 <= clf.score(X, y) <= 1.0


def test_score_needs_labelled_entries(case):
    make, data, _ = case
    X, y = data()
    clf = make().fit(X, y)
    with pytest.raises(InputError, match="no labelled entries"):
        clf.score(X, np.zeros_like(y))


def test_cnn_config_is_a_read_only_view_of_the_flat_params():
    pytest.importorskip("torch")
    from active_annotator.cnn import CNNClassifier, CNNConfig

    assert CNNClassifier().config == CNNConfig()  # the same defaults in both places
    clf = _make_cnn()
    cfg = clf.config
    assert isinstance(cfg, CNNConfig) and cfg.epochs == 1 and cfg.widths == [4, 8] and cfg.seed == 5
    assert cfg.classes is None and cfg.in_channels is None  # learned fields stay out of the params
    clf.set_params(epochs=4)
    assert clf.config.epochs == 4
    with pytest.raises(AttributeError):
        clf.config = CNNConfig()


def test_cnn_from_config_and_the_deprecated_config_argument_agree():
    pytest.importorskip("torch")
    from active_annotator.cnn import CNNClassifier, CNNConfig

    cfg = CNNConfig(epochs=3, widths=[8, 16], depth=1, seed=7)
    new = CNNClassifier.from_config(cfg, device="cpu", n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CNNClassifier.from_config(cfg)  # the supported form does not warn
    with pytest.deprecated_call(match="CNNClassifier.from_config"):
        old = CNNClassifier(cfg, device="cpu", n_threads=1)
    with pytest.deprecated_call():
        by_keyword = CNNClassifier(config=cfg, device="cpu", n_threads=1)
    assert old.get_params() == new.get_params() == by_keyword.get_params()
    assert new.config == cfg and new.device == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(InputError, match="config must be a CNNConfig"):
            CNNClassifier({"epochs": 3})
