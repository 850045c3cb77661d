"""SHAP values, correlated groups and the learning-curve diagnosis (active_annotator.explain)."""

import numpy as np
import pytest

pytest.importorskip("shap")  # the [explain] extra; CI installs it through [dev]

from active_annotator import explain
from active_annotator.classifier import PixelClassifier
from active_annotator.errors import InputError, LabelError, NotFittedError
from active_annotator.features import FeatureSet


def _one_signal_features(n=1500, n_features=8, informative=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    y = np.where(X[:, informative] > 0, 2, 1)
    return X, y


def _image_and_labels():
    rng = np.random.default_rng(1)
    img = rng.normal(0, 0.3, (64, 64)).astype(np.float32)
    img[16:48, 16:48] += 2.0
    lab = np.zeros((64, 64), np.uint8)
    lab[20:44, 20:44] = 2
    lab[:8] = 1
    lab[-8:, :] = 1
    return img, lab


def test_additivity_pixel_classifier():
    img, lab = _image_and_labels()
    fs = FeatureSet(sigmas=(1.0, 2.0), families=("gaussian", "dog", "log"))
    clf = PixelClassifier(features=fs, n_estimators=20, random_state=0, n_jobs=1).fit(img, lab)
    X, y = explain.pixel_samples(clf, img, lab, max_samples=500)
    e = explain.shap_values(clf, X, y=y)
    assert e.values.shape == (X.shape[0], fs.n_features(1), 2)
    prob = explain.predicted_probabilities(clf, X)
    np.testing.assert_allclose(e.base_values + e.values.sum(axis=1), prob, atol=1e-9)
    # names in the user's words, not the internal ones
    assert "Gaussian 1 px" in e.feature_names and "LoG 2 px" in e.feature_names


def test_additivity_holds_for_rows_not_used_for_covers_and_three_classes():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(900, 4)).astype(np.float32)
    y = 1 + (X[:, 0] > 0.5) + (X[:, 1] > 0)
    clf = PixelClassifier(features=FeatureSet(sigmas=(1.0,), families=("gaussian", "dog", "log",
                                                                       "hessian")),
                          n_estimators=15, random_state=0, n_jobs=1)
    clf.fit_features(X, y)
    other = rng.normal(size=(50, 4)).astype(np.float32) * 3
    e = explain.shap_values(clf, other)
    np.testing.assert_allclose(e.base_values + e.values.sum(axis=1),
                               explain.predicted_probabilities(clf, other), atol=1e-9)
    assert e.classes == [1, 2, 3]


def test_ranking_agrees_with_permutation_importance():
    from sklearn.inspection import permutation_importance

    X, y = _one_signal_features(informative=2)
    clf = PixelClassifier(n_estimators=30, random_state=0, n_jobs=1,
                          features=FeatureSet(sigmas=(1.0, 2.0), families=("gaussian", "dog", "log")))
    # 2 sigmas x gaussian/dog/log = 5 features; use the first 5 columns
    X = X[:, :5]
    clf.fit_features(X, y)
    e = explain.shap_values(clf, X, y=y, feature_names=[f"f{i}" for i in range(5)])
    shap_order = [name for name, _ in e.ranking()]

    class _Proba:  # permutation importance needs an estimator; score = accuracy of the same forest
        def fit(self):
            return self

        def score(self, Xs, ys):
            p = explain.predicted_probabilities(clf, Xs)
            return float(np.mean(np.asarray(clf.classes_)[p.argmax(1)] == ys))

    perm = permutation_importance(_Proba(), X, y, n_repeats=5, random_state=0)
    perm_order = [f"f{i}" for i in np.argsort(-perm.importances_mean, kind="stable")]
    assert shap_order[0] == perm_order[0] == "f2"
    top = dict(e.ranking())
    assert top["f2"] > 5 * max(v for k, v in top.items() if k != "f2")


def test_stratified_sample_keeps_every_class_in_proportion():
    y = np.array([1] * 9000 + [2] * 900 + [3] * 5)
    idx = explain.stratified_indices(y, 1000, seed=0)
    assert idx.size <= 1000 and np.all(np.diff(idx) > 0)
    vals, counts = np.unique(y[idx], return_counts=True)
    assert vals.tolist() == [1, 2, 3]
    assert abs(counts[0] / counts[1] - 10) < 0.5 and counts[2] >= 1


def test_readable_names():
    assert explain.readable_name("gaussian_s2.0_c0") == "Gaussian 2 px"
    assert explain.readable_name("hessian1_s4.0_c1", n_channels=2) == "Hessian eigenvalue 2 4 px, channel 1"
    assert explain.readable_name("dog_s50.0_c0", unit="s", samples_per_unit=100.0) == "DoG 0.5 s"
    assert explain.readable_name("stalta_1s_10s_c0") == "STA/LTA 1 s / 10 s"
    assert explain.readable_name("area") == "area"


def test_bad_inputs_get_package_errors():
    with pytest.raises(NotFittedError, match="not trained"):
        explain.shap_values(PixelClassifier(), np.zeros((3, 4), np.float32))
    X, y = _one_signal_features(n=200, n_features=5)
    clf = PixelClassifier(n_estimators=5, n_jobs=1, random_state=0,
                          features=FeatureSet(sigmas=(1.0, 2.0), families=("gaussian", "dog", "log")))
    clf.fit_features(X, y)
    with pytest.raises(InputError, match="5 features"):
        explain.shap_values(clf, np.zeros((3, 4), np.float32))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        explain.shap_values(clf, bad)
    img, _ = _image_and_labels()
    with pytest.raises(LabelError, match="no labels"):
        explain.pixel_samples(clf, img, np.zeros(img.shape, np.uint8))


def test_correlated_groups_find_the_planted_pair_and_group_shap_stays_additive():
    rng = np.random.default_rng(0)
    a = rng.normal(size=800)
    X = np.stack([a, a + 0.01 * rng.normal(size=800), rng.normal(size=800), rng.normal(size=800)],
                 axis=1).astype(np.float32)
    names = ["Gaussian 2 px", "Gaussian 4 px", "LoG 1 px", "DoG 1 px"]
    g = explain.correlated_groups(X, names, threshold=0.9)
    assert g.labels[0] == g.labels[1] and len(set(g.labels.tolist())) == 3
    assert "Gaussian 2 px + Gaussian 4 px" in g.names
    assert abs(list(g.order).index(0) - list(g.order).index(1)) == 1
    assert "share credit" in g.sentence(names)
    y = np.where(a > 0, 2, 1)
    clf = PixelClassifier(n_estimators=20, random_state=0, n_jobs=1,
                          features=FeatureSet(sigmas=(1.0,), families=("gaussian", "dog", "log",
                                                                       "hessian")))
    clf.fit_features(X, y)
    e = explain.shap_values(clf, X, y=y, feature_names=names)
    ge = explain.group_shap(e, g)
    assert ge.values.shape == (800, 3, 2)
    np.testing.assert_allclose(ge.values.sum(axis=1), e.values.sum(axis=1), atol=1e-12)
    assert ge.ranking()[0][0] == "Gaussian 2 px + Gaussian 4 px"


def _history(points):
    from active_annotator.evaluation import History

    h = History()
    for n, t, v in points:
        h.rounds.append({"round": len(h.rounds) + 1, "labelled_pixels": n,
                         "train_error": t, "validation_error": v})
    return h


@pytest.mark.parametrize("points, regime", [
    ([(100, 0.02, 0.30), (200, 0.02, 0.20), (400, 0.02, 0.12), (800, 0.02, 0.07)], "still improving"),
    ([(100, 0.25, 0.28), (200, 0.24, 0.27), (400, 0.24, 0.27), (800, 0.25, 0.27)], "too simple (high bias)"),
    ([(100, 0.00, 0.21), (200, 0.00, 0.20), (400, 0.00, 0.205), (800, 0.00, 0.20)], "large gap (high variance)"),
    ([(100, 0.01, 0.04), (200, 0.01, 0.035), (400, 0.01, 0.036), (800, 0.01, 0.035)], "flat"),
])
def test_diagnose_regimes(points, regime):
    d = explain.diagnose(_history(points))
    assert d.regime == regime
    assert d.text.lower().startswith(regime.split(" (")[0])
    assert "\n" not in d.text and f"{points[-1][2]:.1%}" in d.text


def test_diagnose_needs_rounds_with_validation():
    assert explain.diagnose(_history([(10, 0.1, 0.2)])).regime == "too few rounds"
    assert explain.diagnose([]).regime == "too few rounds"


def test_figures_are_pyplot_free_figures():
    from matplotlib.figure import Figure

    X, y = _one_signal_features(n=300, n_features=5)
    clf = PixelClassifier(n_estimators=5, n_jobs=1, random_state=0,
                          features=FeatureSet(sigmas=(1.0, 2.0), families=("gaussian", "dog", "log")))
    clf.fit_features(X, y)
    e = explain.shap_values(clf, X, y=y)
    g = explain.correlated_groups(X, e.feature_names)
    for fig in (explain.beeswarm_figure(e, 1), explain.bar_figure(e),
                explain.correlation_figure(g, e.feature_names)):
        assert isinstance(fig, Figure) and fig.axes
    assert [t.get_text() for t in explain.bar_figure(e).axes[0].get_yticklabels()][-1] == e.ranking()[0][0]
    with pytest.raises(InputError, match="class_index"):
        explain.beeswarm_figure(e, 5)


def _cli_files(tmp_path):
    img, lab = _image_and_labels()
    clf = PixelClassifier(features=FeatureSet(sigmas=(1.0, 2.0), families=("gaussian", "log")),
                          n_estimators=10, random_state=0, n_jobs=1).fit(img, lab)
    model = clf.save(tmp_path / "m.aamodel")
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "lab.npy", lab)
    return model, tmp_path / "img.npy", tmp_path / "lab.npy"


def test_cli_writes_plots_and_csv(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    model, img, lab = _cli_files(tmp_path)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "active_annotator.cli", "explain", "--model", str(model),
                        "--image", str(img), "--labels", str(lab), "--output", str(out),
                        "--max-samples", "400"], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["correlation.png", "shap_bar.png", "shap_beeswarm_class_1.png",
                     "shap_beeswarm_class_2.png", "shap_groups_mean_abs.csv", "shap_mean_abs.csv"]
    assert Image.open(out / "shap_bar.png").size[0] > 300
    rows = (out / "shap_mean_abs.csv").read_text().splitlines()
    assert rows[0] == "feature,class_1,class_2,total" and len(rows) == 1 + 4
    assert "explained 400 labelled pixels, 4 features" in r.stdout


def test_cli_bad_input_exits_1_with_package_error(tmp_path, capsys):
    from active_annotator.cli import main

    model, img, lab = _cli_files(tmp_path)
    np.save(tmp_path / "wrong.npy", np.zeros((10, 10), np.uint8))
    assert main(["explain", "--model", str(model), "--image", str(img), "--labels",
                 str(tmp_path / "wrong.npy"), "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "active-annotator explain: error:" in err and "Traceback" not in err
    (tmp_path / "bad.aamodel").write_bytes(b"not a model")
    assert main(["explain", "--model", str(tmp_path / "bad.aamodel"), "--image", str(img), "--labels",
                 str(lab), "--output", str(tmp_path / "o")]) == 1
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert main(["explain", "--model", str(model), "--image", str(img), "--labels", str(lab),
                 "--output", str(tmp_path / "link")]) == 1
    assert "symbolic link" in capsys.readouterr().err
    assert not any((tmp_path / "real").iterdir())


def test_shap_values_report_progress_and_cancel():
    from active_annotator.errors import Cancelled

    X, y = _one_signal_features(n=700, n_features=5)
    clf = PixelClassifier(n_estimators=5, n_jobs=1, random_state=0,
                          features=FeatureSet(sigmas=(1.0, 2.0), families=("gaussian", "dog", "log")))
    clf.fit_features(X, y)
    seen = []
    e = explain.shap_values(clf, X, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(256, 700), (512, 700), (700, 700)] and e.values.shape[0] == 700
    calls = []
    with pytest.raises(Cancelled, match="cancelled"):
        explain.shap_values(clf, X, should_stop=lambda: calls.append(1) or len(calls) > 1)
