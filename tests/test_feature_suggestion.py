"""suggest_features: ranking families and scales on labels, and a smaller set that validates as well."""

import numpy as np
import pytest

from active_annotator import FeatureSet
from active_annotator.cli import main
from active_annotator.errors import LabelError
from active_annotator.feature_suggestion import suggest_features


def _texture(seed=0, n=160):
    """Two classes with the same mean and different fine-scale variance (left: calm, right: rough)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0, 1, (n, n)).astype(np.float32)
    img[:, n // 2:] *= 3
    lab = np.zeros((n, n), np.uint8)
    for r in range(8, n - 8, 24):  # several strokes per class, so some can be held out
        lab[r:r + 3, 10:60] = 1
        lab[r:r + 3, 100:150] = 2
    return img, lab


def test_proposes_a_smaller_set_that_validates_as_well():
    img, lab = _texture()
    s = suggest_features(img, lab, FeatureSet(), n_estimators=30, n_jobs=1)
    assert s.proposed.n_features() < s.full.n_features()
    assert s.proposed_score >= s.full_score - 0.005
    assert s.full_score > 0.9
    # the mean brightness (Gaussian) cannot tell the classes apart; curvature at fine scales can
    assert list(s.families)[0] in ("hessian", "log", "dog")
    assert s.families["gaussian"] < max(s.families.values())
    assert set(s.families) == {"original", "gaussian", "dog", "log", "hessian"}
    assert np.isclose(sum(s.families.values()), 1.0)
    # every candidate tried before the proposal was smaller and scored worse
    for spec, n, score in s.candidates[:-1]:
        assert n <= s.proposed.n_features()
    assert "proposed" in s.report()


def test_deterministic():
    img, lab = _texture(seed=1)
    a = suggest_features(img, lab, n_estimators=20, n_jobs=1)
    b = suggest_features(img, lab, n_estimators=20, n_jobs=1)
    assert a.proposed == b.proposed and a.families == b.families


def test_one_stroke_per_class_is_explained():
    img, _ = _texture()
    lab = np.zeros(img.shape, np.uint8)
    lab[10:13, 10:60] = 1
    lab[10:13, 100:150] = 2
    with pytest.raises(LabelError, match="strokes"):
        suggest_features(img, lab, n_estimators=5, n_jobs=1)


def test_cli_prints_ranking_and_proposal(tmp_path, capsys):
    img, lab = _texture()
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "lab.npy", lab)
    assert main(["suggest-features", "--image", str(tmp_path / "img.npy"), "--labels",
                 str(tmp_path / "lab.npy"), "--trees", "20"]) == 0
    out = capsys.readouterr().out
    assert "importance by family" in out and "proposed" in out and "FeatureSet(" in out
    assert main(["suggest-features", "--image", str(tmp_path / "img.npy"), "--labels",
                 str(tmp_path / "lab.npy"), "--sigmas", "1,x"]) == 1
