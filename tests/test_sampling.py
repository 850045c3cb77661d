from dataclasses import replace

import numpy as np
import pytest

from active_annotator import candidates as cand
from active_annotator.errors import InputError
from active_annotator.sampling import STRATEGIES, suggest


def _grid(shape=(64, 64), size=8):
    return cand.patches(shape, size)


@pytest.mark.parametrize("strategy", ["uncertainty", "entropy", "hybrid"])
def test_most_uncertain_patch_is_picked_first(strategy):
    ps = _grid()
    u = np.full((64, 64), 0.1, np.float32)
    u[40:48, 16:24] = 0.9  # patch (5, 2)
    s = suggest(ps, u, strategy=strategy, n=3)
    assert s[0].candidate.slices == (slice(40, 48), slice(16, 24))
    assert s[0].rank == 1 and s[0].score > s[1].score
    assert "0.90" in s[0].reason


def test_measure_strategies_compute_from_probabilities():
    p = np.zeros((2, 16, 16), np.float32)
    p[0] = 1.0
    p[:, 8:, 8:] = 0.5
    ps = _grid((16, 16), 8)
    for strategy in ("entropy", "margin", "least_confidence"):
        s = suggest(ps, proba=p, strategy=strategy, n=1)
        assert s[0].candidate.slices == (slice(8, 16), slice(8, 16))
        assert s[0].reason.startswith(strategy)


def test_fully_labelled_candidates_are_skipped():
    ps = _grid((16, 16), 8)
    u = np.ones((16, 16), np.float32)
    lab = np.zeros((16, 16), np.uint8)
    lab[:8, :8] = 1
    s = suggest(ps, u, lab, strategy="uncertainty", n=10)
    assert len(s) == 3
    assert all(x.candidate.slices != (slice(0, 8), slice(0, 8)) for x in s)


def test_per_candidate_scores_are_accepted():
    ps = _grid((16, 16), 8)
    s = suggest(ps, np.array([0.1, 0.7, 0.3, 0.2]), strategy="uncertainty", n=2)
    assert [x.candidate.id for x in s] == [1, 2]


def _clustered(n_clusters=4, per=10, seed=0):
    """Candidates whose descriptors form well separated clusters."""
    rng = np.random.default_rng(seed)
    ps = cand.patches((8, 8 * n_clusters * per), 8)
    centres = np.eye(n_clusters) * 100
    truth = np.repeat(np.arange(n_clusters), per)
    for p, c in zip(ps, truth):
        p.descriptor = centres[c] + rng.normal(0, 1, n_clusters)
    return ps, truth


def test_k_center_covers_separated_clusters():
    ps, truth = _clustered()
    s = suggest(ps, strategy="diversity", n=4, seed=0)
    assert sorted(truth[[x.candidate.id for x in s]]) == [0, 1, 2, 3]


def test_k_center_counts_labelled_candidates_as_covered():
    ps, truth = _clustered()
    lab = np.zeros((8, 8 * 40), np.uint8)
    # label one pixel in a candidate of cluster 0 and one of cluster 1
    lab[0, 0] = 1
    lab[0, 8 * 10] = 2
    s = suggest(ps, labelled=lab, strategy="diversity", n=2, seed=0)
    assert sorted(truth[[x.candidate.id for x in s]]) == [2, 3]


def test_cluster_sampling_draws_most_uncertain_of_each_cluster():
    ps, truth = _clustered()
    scores = np.linspace(0.1, 0.9, len(ps))[::-1].copy()  # first of each cluster is the most uncertain
    s = suggest(ps, scores, strategy="cluster", n=4, seed=1)
    ids = [x.candidate.id for x in s]
    assert sorted(truth[ids]) == [0, 1, 2, 3]
    assert ids == [0, 10, 20, 30]
    assert "cluster" in s[0].reason and "of 4" in s[0].reason


def test_hybrid_does_not_pile_a_batch_in_one_spot():
    ps = _grid((64, 64), 8)
    u = np.full((64, 64), 0.2, np.float32)
    u[:16, :16] = 0.95  # a 2x2 block of very uncertain patches
    u[56:, 56:] = 0.8  # a lone, slightly less uncertain corner patch
    s_unc = suggest(ps, u, strategy="uncertainty", n=4)
    s_hyb = suggest(ps, u, strategy="hybrid", n=4)
    in_block = lambda x: x.candidate.centre[0] < 16 and x.candidate.centre[1] < 16  # noqa: E731
    assert all(in_block(x) for x in s_unc)
    # after one pick in the block its neighbours are discounted: the corner comes second
    assert in_block(s_hyb[0])
    assert s_hyb[1].candidate.slices == (slice(56, 64), slice(56, 64))
    assert sum(in_block(x) for x in s_hyb) == 3
    assert "from suggestion 1" in s_hyb[2].reason


def test_hybrid_moves_away_from_labels_and_says_how_far():
    ps = _grid((64, 64), 8)
    u = np.full((64, 64), 0.5, np.float32)
    lab = np.zeros((64, 64), np.uint8)
    lab[:, :32] = 1  # left half labelled
    s = suggest(ps, u, lab, strategy="hybrid", n=1)
    assert s[0].candidate.centre[1] > 48
    assert "px from nearest label" in s[0].reason


def test_random_is_repeatable_with_a_seed_and_differs_between_seeds():
    ps = _grid()
    a = [x.candidate.id for x in suggest(ps, strategy="random", n=5, seed=3)]
    b = [x.candidate.id for x in suggest(ps, strategy="random", n=5, seed=3)]
    c = [x.candidate.id for x in suggest(ps, strategy="random", n=5, seed=4)]
    assert a == b and a != c and len(set(a)) == 5


def test_every_strategy_returns_ranked_suggestions_with_reasons():
    ps, _ = _clustered()
    u = np.random.default_rng(0).random((8, 320)).astype(np.float32)
    for strategy in STRATEGIES:
        kw = {"proba": np.stack([u, 1 - u])} if strategy in ("entropy", "margin", "least_confidence",
                                                             "clasp") else {}
        s = suggest(ps, None if kw else u, strategy=strategy, n=4, seed=0, **kw)
        assert [x.rank for x in s] == [1, 2, 3, 4]
        assert all(isinstance(x.reason, str) and x.reason for x in s)
        assert len({x.candidate.id for x in s}) == 4


def test_errors_say_what_to_do():
    ps = _grid()
    with pytest.raises(InputError, match="choose from"):
        suggest(ps, np.zeros((64, 64)), strategy="best")
    with pytest.raises(InputError, match="needs uncertainty"):
        suggest(ps, strategy="hybrid")
    with pytest.raises(InputError, match="describe"):
        suggest(ps, np.zeros((64, 64)), strategy="cluster")


# -- suggest_for_image: the one call the widget makes -------------------------------------
def _proba_with_uncertain_block(shape, block):
    p = np.zeros((2, *shape), np.float32)
    p[0] = 0.95
    p[1] = 0.05
    p[(slice(None),) + block] = 0.5
    return p


def test_suggest_for_image_finds_the_uncertain_patch_of_a_2d_image():
    from active_annotator.sampling import suggest_for_image

    p = _proba_with_uncertain_block((64, 64), (slice(32, 48), slice(16, 32)))
    s = suggest_for_image(p, np.zeros((64, 64), np.uint8), strategy="hybrid", n=3, size=16)
    assert s[0].candidate.slices == (slice(32, 48), slice(16, 32))
    assert s[0].candidate.stack_index is None and len(s) == 3


def test_suggest_for_image_on_a_stack_ranks_2d_patches_of_every_plane():
    from active_annotator.sampling import suggest_for_image

    p = _proba_with_uncertain_block((5, 32, 32), (3, slice(16, 32), slice(0, 16)))
    s = suggest_for_image(p, None, strategy="entropy", n=2, size=16, spatial_ndim=2)
    first = s[0].candidate
    assert first.stack_index == 3 and first.slices == (slice(16, 32), slice(0, 16))
    assert first.centre == (3.0, 23.5, 7.5)


def test_suggest_for_image_on_a_volume_ranks_3d_blocks():
    from active_annotator.sampling import suggest_for_image

    p = _proba_with_uncertain_block((16, 32, 32), (slice(8, 16), slice(0, 8), slice(8, 16)))
    s = suggest_for_image(p, strategy="entropy", n=1, size=8, spatial_ndim=3)
    assert s[0].candidate.slices == (slice(8, 16), slice(0, 8), slice(8, 16))


def test_suggest_for_image_describes_patches_by_features_for_cluster_and_diversity():
    from active_annotator import FeatureSet
    from active_annotator.sampling import suggest_for_image

    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 32, 32)).astype(np.float32)
    image[:, :, 16:] += 10  # two kinds of texture: left and right halves
    p = _proba_with_uncertain_block((3, 32, 32), (0, slice(0, 8), slice(0, 8)))
    fs = FeatureSet(sigmas=(1.0,), families=("original", "gaussian"), ndim=2)
    s = suggest_for_image(p, strategy="cluster", n=2, size=8, spatial_ndim=2, image=image,
                          features=fs, seed=0)
    halves = {c.candidate.slices[1].start >= 16 for c in s}
    assert halves == {True, False}  # one pick per kind of texture
    assert s[0].candidate.descriptor.shape == (fs.n_features(1),)
    with pytest.raises(InputError, match="image="):
        suggest_for_image(p, strategy="diversity", n=2, size=8, spatial_ndim=2)


def test_suggest_for_image_refuses_two_stack_axes():
    from active_annotator.sampling import suggest_for_image

    with pytest.raises(InputError, match="one time point"):
        suggest_for_image(np.full((2, 2, 3, 16, 16), 0.5, np.float32), spatial_ndim=2)


def test_suggest_on_a_stack_points_at_the_uncertain_plane():
    ps = [p for z in range(3) for p in cand.patches((16, 16), 8, stack_index=z, start_id=4 * z)]
    u = np.zeros((3, 16, 16), np.float32)
    u[2, 8:, :8] = 0.7
    s = suggest(ps, u, np.zeros((3, 16, 16), np.uint8), strategy="hybrid", n=2)
    assert s[0].candidate.stack_index == 2 and s[0].candidate.key == (2, slice(8, 16), slice(0, 8))
    assert s[0].candidate.centre == (2.0, 11.5, 3.5)


def test_hybrid_on_a_collection_uses_descriptor_distance():
    cs = cand.collection(4)
    feats = np.zeros((2, 4, 8, 8), np.float32)
    feats[0, :2] = 0.0  # images 0 and 1 look alike
    feats[0, 2:] = 10.0  # images 2 and 3 look alike
    feats[1] = 3.0  # a feature that does not tell images apart
    cs = cand.describe(cs, feats)
    scores = np.array([0.9, 0.85, 0.5, 0.4])
    s = suggest(cs, scores, strategy="hybrid", n=2)
    assert [x.candidate.stack_index for x in s] == [0, 2]


def test_hybrid_discounts_uncertainty_touching_labels_not_a_few_pixels_away():
    ps = _grid((64, 64), 8)
    lab = np.zeros((64, 64), np.uint8)
    lab[:, :32] = 1
    u = np.full((64, 64), 0.3, np.float32)
    u[8:16, 32] = 0.9  # patch A: uncertain pixels touching the labels
    u[40:48, 60] = 0.6  # patch B: less uncertain, far from labels
    default = suggest(ps, u, lab, strategy="hybrid", n=2)
    picks_only = suggest(ps, u, lab, strategy="hybrid", n=2, avoid="picks")
    a, b = (slice(8, 16), slice(32, 40)), (slice(40, 48), slice(56, 64))
    assert default[0].candidate.slices == b  # 0.9 at 1 px keeps 63 %: 0.57 < 0.6
    assert picks_only[0].candidate.slices == a  # labels act only through the model
    assert "from suggestion 1" in picks_only[1].reason
    # the same uncertainty 4 px from the labels is nearly untouched (98 %)
    u2 = u.copy()
    u2[8:16, 32] = 0.3
    u2[8:16, 36] = 0.9
    assert suggest(ps, u2, lab, strategy="hybrid", n=1)[0].candidate.slices == a
    # a patch that holds a label and stays uncertain elsewhere is still offered, and says so
    lab2 = lab.copy()
    lab2[10, 38] = 1
    s2 = suggest(ps, u2, lab2, strategy="hybrid", n=1)[0]
    assert s2.candidate.slices == a and "holds labels but is still uncertain" in s2.reason
    # a wider label scale reaches further
    assert suggest(ps, u2, lab, strategy="hybrid", n=1, label_scale=16)[0].candidate.slices == b
    with pytest.raises(InputError, match="avoid"):
        suggest(ps, u, lab, strategy="hybrid", avoid="everything")
    with pytest.raises(InputError, match="label_scale"):
        suggest(ps, u, lab, strategy="hybrid", label_scale=0)


def test_power_draws_in_proportion_to_uncertainty():
    ps = _grid((16, 64), 16)  # 4 candidates
    u = np.zeros((16, 64), np.float32)
    for i, v in enumerate([0.1, 0.2, 0.3, 0.4]):
        u[:, 16 * i:16 * (i + 1)] = v
    firsts = [suggest(ps, u, strategy="power", n=1, seed=s)[0].candidate.id for s in range(4000)]
    freq = np.bincount(firsts, minlength=4) / len(firsts)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.03)
    # beta large: greedy; the whole batch is distinct candidates
    s = suggest(ps, u, strategy="power", n=4, seed=0, beta=50)
    assert [x.candidate.id for x in s] == [3, 2, 1, 0]
    assert "power" in s[0].reason


def test_clasp_covers_a_rare_class_that_entropy_misses():
    # 16 patches; a rare class 3 is predicted (with low uncertainty) in one patch only,
    # the most uncertain patches show only classes 1 and 2
    ps = _grid((32, 32), 8)
    p = np.zeros((3, 32, 32), np.float32)
    p[0] = 0.9
    p[1] = 0.1
    p[:, :16, :16] = np.array([0.5, 0.5, 0.0])[:, None, None]   # uncertain, classes 1/2
    p[:, 24:, 24:] = np.array([0.05, 0.05, 0.9])[:, None, None]  # rare class 3, fairly certain
    ent = [x.candidate.id for x in suggest(ps, proba=p, strategy="entropy", n=2)]
    rare = ps[-1].id
    assert rare not in ent
    hits = [rare in [x.candidate.id for x in suggest(ps, proba=p, strategy="clasp", n=2, seed=s)]
            for s in range(20)]
    assert all(hits)
    s = suggest(ps, proba=p, strategy="clasp", n=2, seed=0)
    assert s[0].candidate.id == rare and "class 3" in s[0].reason


def test_typiclust_picks_the_dense_region_first():
    # descriptors: 30 candidates in a tight cluster, 5 scattered outliers
    rng = np.random.default_rng(0)
    desc = np.concatenate([rng.normal(0, 0.05, (30, 2)), rng.uniform(5, 50, (5, 2))])
    ps = [replace(c, descriptor=d) for c, d in zip(cand.patches((8, 8 * 35), 8), desc)]
    s = suggest(ps, strategy="typiclust", n=1, seed=0)
    assert s[0].candidate.id < 30
    assert "typical" in s[0].reason


def test_mutual_information_is_disagreement_not_ambiguity():
    from active_annotator.uncertainty import entropy, mutual_information

    agree_unsure = np.full((10, 2, 1), 0.5, np.float32)        # every tree says 50/50
    disagree = np.zeros((10, 2, 1), np.float32)
    disagree[:5, 0] = 1.0
    disagree[5:, 1] = 1.0                                      # confident trees that split
    assert mutual_information(agree_unsure)[0] < 1e-6
    assert mutual_information(disagree)[0] > 0.99
    # pure-leaf forests: every tree is one-hot, so MI equals the entropy of the mean
    np.testing.assert_allclose(mutual_information(disagree), entropy(disagree.mean(0)), atol=1e-6)
