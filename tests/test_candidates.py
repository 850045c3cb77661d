import numpy as np
import pytest

from active_annotator import candidates as cand
from active_annotator.errors import InputError


def test_patches_tile_2d_image_with_short_edge_tiles():
    ps = cand.patches((70, 64), 32)
    assert len(ps) == 3 * 2
    covered = np.zeros((70, 64), int)
    for p in ps:
        covered[p.key] += 1
    assert (covered == 1).all()
    assert ps[-1].slices == (slice(64, 70), slice(32, 64))
    assert ps[0].centre == (15.5, 15.5)


def test_patches_3d_blocks_and_stack_index():
    ps = cand.patches((8, 16, 16), (4, 8, 8))
    assert len(ps) == 8 and all(p.kind == "patch" for p in ps)
    st = cand.patches((16, 16), 8, stack_index=3, start_id=10)
    assert st[0].key == (3, slice(0, 8), slice(0, 8)) and st[0].id == 10
    assert st[0].centre == (3.0, 3.5, 3.5)


def test_patches_reject_bad_size():
    with pytest.raises(InputError, match="size"):
        cand.patches((10, 10), (4, 4, 4))


def test_signal_windows_cover_the_tail():
    ws = cand.signal_windows(100, 30, 30)
    assert [w.slices[0].start for w in ws] == [0, 30, 60, 70]
    assert all(w.slices[0].stop - w.slices[0].start == 30 for w in ws)


def test_objects_have_mask_and_centroid():
    lab = np.zeros((10, 10), np.uint16)
    lab[1:3, 1:4] = 1
    lab[6:9, 6:9] = 5
    obs = cand.objects(lab)
    assert len(obs) == 2
    assert obs[0].mask.sum() == 6 and obs[1].mask.sum() == 9
    assert obs[1].centre == (7.0, 7.0)


def test_collection_keys_index_the_stack():
    cs = cand.collection(3)
    stack = np.arange(3 * 4).reshape(3, 2, 2)
    assert cs[2].pixels(stack).tolist() == [8, 9, 10, 11]


def test_describe_is_the_mean_feature_over_the_candidate():
    feats = np.stack([np.arange(16.0).reshape(4, 4), np.ones((4, 4))]).astype(np.float32)
    ps = cand.describe(cand.patches((4, 4), 2), feats)
    np.testing.assert_allclose(ps[0].descriptor, [np.mean([0, 1, 4, 5]), 1.0])
    assert cand.descriptors(ps).shape == (4, 2)


def test_descriptors_missing_says_how_to_fix():
    with pytest.raises(InputError, match="describe"):
        cand.descriptors(cand.patches((4, 4), 2))


def test_uncertainty_aggregates_and_ignores_labelled_pixels():
    u = np.zeros((4, 8), np.float32)
    u[0, 0] = 1.0  # one hot pixel in the left patch
    u[:, 4:] = 0.3  # uniformly mediocre right patch
    ps = cand.patches((4, 8), 4)
    np.testing.assert_allclose(cand.uncertainty(ps, u, aggregate="max"), [1.0, 0.3])
    np.testing.assert_allclose(cand.uncertainty(ps, u, aggregate="mean"), [1 / 16, 0.3], rtol=1e-6)
    # top 10% of 16 pixels = 2 pixels
    np.testing.assert_allclose(cand.uncertainty(ps, u), [0.5, 0.3], rtol=1e-6)
    lab = np.zeros((4, 8), np.uint8)
    lab[0, 0] = 1
    np.testing.assert_allclose(cand.uncertainty(ps, u, lab, aggregate="max"), [0.0, 0.3])
    np.testing.assert_allclose(cand.labelled_fraction(ps, lab), [1 / 16, 0])
