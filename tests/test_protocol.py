"""Protocol v2 (active_annotator.protocol): splits, references, censoring, paired tests."""

import numpy as np
import pytest

from active_annotator import protocol
from active_annotator.errors import InputError
from active_annotator.simulate import Oracle
from active_annotator import candidates as cand


def _blobs(shape=(96, 96), seed=0):
    """A smooth two-class image: bright discs (class 2) on a dark noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    truth = np.ones(shape, np.uint8)
    for _ in range(14):
        cy, cx = rng.integers(6, shape[0] - 6), rng.integers(6, shape[1] - 6)
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(9, 30)] = 2
    image = (truth == 2) * 1.0 + rng.normal(0, 0.35, shape)
    return image.astype(np.float32), truth


def test_checkerboard_splits_are_complementary_and_every_class_is_in_both_halves():
    _, truth = _blobs()
    masks = protocol.checkerboard_splits(truth.shape, 8, n_splits=4)
    assert len(masks) == 4
    np.testing.assert_array_equal(masks[0], ~masks[1])
    np.testing.assert_array_equal(masks[2], ~masks[3])
    assert not np.array_equal(masks[0], masks[2])  # the shifted grid differs
    for m in masks:
        assert abs(m.mean() - 0.5) < 0.1
        for k in (1, 2):
            assert (truth[m] == k).any() and (truth[~m] == k).any()


def test_patches_never_straddle_a_block_in_either_grid():
    masks = protocol.checkerboard_splits((64, 64), 8)
    for m in masks:
        for c in cand.patches((64, 64), 8):
            v = m[c.key]
            assert v.all() or not v.any()


def test_default_patch_gives_enough_candidates():
    assert protocol.default_patch((512, 512)) == 32
    assert protocol.default_patch((128, 128)) == 8
    p = protocol.default_patch((48000,))
    assert 48000 / p / 2 >= 96
    assert protocol.default_patch((64, 64, 64)) == 12


def test_interest_classes_drop_the_background_unless_asked():
    t = np.array([[1, 1, 1, 2], [1, 1, 3, 3]])
    assert protocol.interest_classes(t) == [2, 3]
    assert protocol.interest_classes(t, [1, 2]) == [1, 2]
    with pytest.raises(InputError, match="do not occur"):
        protocol.interest_classes(t, [4])


def test_censored_median_marks_a_lower_bound():
    assert protocol.censored_median([10, 20, 30], [False, False, False]) == (20.0, False)
    # the middle value is censored: the true median is only known to be >= 30
    m, bound = protocol.censored_median([10, 30, 40], [False, True, True])
    assert bound and m == 30
    # a censored value above the median does not move it
    assert protocol.censored_median([10, 20, 900], [False, False, True]) == (20.0, False)


def _constructed_result(default_better: bool, n_seeds=8, missing=False):
    rows = []
    px = np.array([20, 40, 80, 160, 320])
    for s in range(n_seeds):
        base = np.array([0.3, 0.5, 0.7, 0.85, 0.95])
        good = np.array([0.5, 0.8, 0.95, 0.97, 0.98])
        a, b = (good, base) if default_better else (base, good)
        if missing:
            a = np.array([0.3, 0.4, 0.5, 0.6, 0.7])
        for name, sc in (("mine", a + 0.001 * s), ("random", b)):
            for r, (p, v) in enumerate(zip(px, sc)):
                rows.append({"strategy": name, "seed": s, "split": s % 2, "round": r,
                             "labelled_pixels": int(p), "score": float(v)})
    res = protocol.ProtocolResult(rows, {"0": {"dense": 1.0}, "1": {"dense": 1.0}}, {"target_fraction": 0.95})
    res.finish_references()
    return res


def test_summary_paired_test_and_saving_on_a_constructed_pair():
    res = _constructed_result(default_better=True)
    summ = res.summary("mine", baselines=("random",))
    mine, rnd = summ["strategies"]["mine"], summ["strategies"]["random"]
    assert mine["aulc_median"] > rnd["aulc_median"]
    assert mine["px_to_target_median"] == 80 and rnd["px_to_target_median"] == 320
    assert mine["saving_vs_random"] == pytest.approx(4.0) and mine["saving_bound"] == "exact"
    t = summ["tests"]["random"]
    assert t["wins"] == 8 and t["p_value"] < 0.01 and not t["significantly_worse"]
    # the reverse pair is flagged as significantly worse
    worse = _constructed_result(default_better=False).summary("mine", baselines=("random",))
    assert worse["tests"]["random"]["significantly_worse"]
    assert "significantly worse" in protocol.format_summary(worse)


def test_a_strategy_that_misses_is_reported_as_missing_with_a_bound():
    res = _constructed_result(default_better=True, missing=True)
    summ = res.summary("mine", baselines=("random",))
    mine = summ["strategies"]["mine"]
    assert mine["reached"] == 0 and mine["px_to_target_is_lower_bound"]
    assert mine["px_to_target_median"] == 320  # censored at its last count
    assert mine["saving_bound"] == "upper" and mine["saving_vs_random"] == pytest.approx(1.0)
    table = protocol.format_summary(summ)
    assert ">= 320" in table and "<= 1.0x" in table and "0/8" in table


def test_ceiling_is_the_best_of_dense_interior_and_strategies():
    res = _constructed_result(default_better=True)
    for ref in res.references.values():
        # the constructed strategies reach 0.98 > 0.95 target... but dense is 1.0
        assert ref["ceiling"] == 1.0 and ref["ceiling_from"] == "dense"
    res.references = {"0": {"dense": 0.5}, "1": {"dense": 0.5}}
    res.finish_references()
    assert res.references["0"]["ceiling"] == pytest.approx(0.987, abs=0.01)
    assert "largest budget" in res.references["0"]["ceiling_from"]


def test_run_end_to_end_is_paired_and_reproducible(tmp_path):
    image, truth = _blobs()
    kw = dict(rounds=3, batch=3, seeds=2, patch=8, progress=False, n_estimators=10)
    a = protocol.run(image, truth, ["entropy", "random"], **kw)
    b = protocol.run(image, truth, ["entropy", "random"], **kw)
    assert a.rows == [dict(r, seconds=r2["seconds"]) for r, r2 in zip(b.rows, a.rows)]
    runs_e, runs_r = a.runs("entropy"), a.runs("random")
    for s in (0, 1):
        assert runs_e[s][0] == runs_r[s][0] == s  # seed s uses split s
        assert runs_e[s][1][0] == runs_r[s][1][0]  # same start labels
        assert np.all(np.diff(runs_e[s][1]) >= 0)
    assert a.settings["classes_scored"] == [2]
    for ref in a.references.values():
        assert 0 < ref["ceiling"] <= 1 and ref["dense"] is not None and ref["dense_interior"] is not None
    summ = a.summary("entropy")
    assert set(summ["strategies"]) == {"entropy", "random"}
    back = protocol.ProtocolResult.from_json(a.to_json())
    assert back.summary("entropy") == summ
    a.to_csv(tmp_path / "rows.csv")
    assert (tmp_path / "rows.csv").read_text().startswith("strategy,seed,split,round")
    a.figure("t").savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_labels_never_fall_in_the_test_region():
    image, truth = _blobs()
    region = protocol.checkerboard_splits(truth.shape, 8)[0]
    truth_ann = np.where(region, truth, 0)
    labels = protocol._start_labels(truth_ann, 2, 0)
    o = Oracle(2, "stroke", seed=0)
    proba = np.full((2,) + truth.shape, 0.5, np.float32)
    for c in protocol.candidates_in(region, 8)[:40]:
        o.label(c, truth_ann, proba, np.array([1, 2]), labels)
    assert labels.any() and not labels[~region].any()
    assert np.all(labels[labels != 0] == truth[labels != 0])


def test_stroke_oracle_paints_a_line_inside_one_class():
    truth = np.ones((40, 40), np.uint8)
    truth[10:30, 10:30] = 2
    o = Oracle(2, "stroke", seed=1)
    labels = np.zeros_like(truth)
    c = cand.patches((40, 40), 40)[0]
    n = o.label(c, truth, np.full((2, 40, 40), 0.5, np.float32), np.array([1, 2]), labels)
    assert n > 9  # a stroke is more than a dab's worth of pixels... and stays in its class
    for k in (1, 2):
        assert (labels == k).sum() >= 9
    assert np.all(labels[labels != 0] == truth[labels != 0])


def test_superpixel_candidates_follow_edges_and_stay_in_the_region():
    image, truth = _blobs((64, 64))
    region = protocol.checkerboard_splits(truth.shape, 8)[0]
    cs = protocol.candidates_in(region, 8, "superpixels", image)
    assert len(cs) > 20
    covered = np.zeros(truth.shape, bool)
    for c in cs:
        assert c.kind == "region"
        m = np.zeros(truth.shape, bool)
        m[c.key] = c.mask
        assert not m[~region].any() and not (covered & m).any()
        covered |= m
    assert covered[region].mean() > 0.95


def test_bad_arguments_get_clear_errors():
    image, truth = _blobs((32, 32))
    with pytest.raises(InputError, match="Unknown strategies"):
        protocol.run(image, truth, ["nope"], progress=False)
    with pytest.raises(InputError, match="spatial shape"):
        protocol.run(image, truth[:10], ["random"], progress=False)
    with pytest.raises(InputError, match="oracle"):
        protocol.run(image, truth, ["random"], oracle="psychic", progress=False)
