"""The feature engine against scipy.ndimage's reference definitions.

Tolerance: float32 engine vs float64 reference. For every feature plane,
``|ours - reference| <= 1e-4 * scale`` with ``scale = max(ptp(reference),
1e-2 * max|reference|)``, i.e. 1e-4 of the feature's dynamic range (the
second term keeps nearly constant planes, e.g. heavy smoothing of a
3-pixel signal, from demanding more than float32 resolution).
"""

import numpy as np
import pytest
from scipy import ndimage as ndi

from active_annotator.errors import InputError
from active_annotator.features import FeatureSet, compute, compute_at

RTOL = 1e-4


def reference(x, fs: FeatureSet) -> np.ndarray:
    """One scipy.ndimage call per output, in float64, in the order of FeatureSet.names()."""
    x = np.asarray(x, np.float64)
    nd = fs.ndim
    kw = dict(mode="reflect", truncate=fs.truncate)
    g = [ndi.gaussian_filter(x, s, **kw) for s in fs.sigmas]
    out = {"original": [x], "gaussian": g, "dog": [g[i] - g[i + 1] for i in range(len(g) - 1)],
           "log": [ndi.gaussian_laplace(x, s, **kw) for s in fs.sigmas], "hessian": []}
    for s in fs.sigmas:
        h = np.empty(x.shape + (nd, nd))
        for i in range(nd):
            for j in range(i, nd):
                o = [0] * nd
                o[i] += 1
                o[j] += 1
                h[..., i, j] = h[..., j, i] = ndi.gaussian_filter(x, s, order=o, **kw)
        w = np.linalg.eigvalsh(h)[..., ::-1]
        out["hessian"] += [w[..., k] for k in range(nd)]
    return np.stack([a for f in fs.families for a in out[f]])


def assert_close(ours, ref):
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    for k in range(ref.shape[0]):
        r = ref[k]
        scale = max(np.ptp(r), 1e-2 * np.abs(r).max(), 1e-30)
        err = np.abs(ours[k].astype(np.float64) - r).max()
        assert err <= RTOL * scale, f"feature {k}: error {err:.3g} > {RTOL} x {scale:.3g}"


@pytest.mark.parametrize("shape, sigmas", [
    ((257,), (1.0, 2.0, 4.0, 8.0)),
    ((3,), (1.0, 4.0)),              # kernel much longer than the signal: repeated reflection
    ((64, 81), (1.0, 2.0, 4.0, 8.0)),
    ((2, 5), (0.7, 3.0)),
    ((23, 19, 30), (1.0, 2.5)),
    ((1, 6, 40), (1.0, 2.0)),
])
def test_features_equal_scipy_reference(shape, sigmas):
    rng = np.random.default_rng(0)
    x = (rng.random(shape) * 1000).astype(np.float32)
    fs = FeatureSet(sigmas=sigmas, ndim=len(shape))
    assert_close(compute(x, fs), reference(x, fs))


def test_features_equal_reference_on_real_image_and_uint16():
    from active_annotator.data import nuclei2d

    img = nuclei2d()["image"][:200, :300]
    fs = FeatureSet.default(ndim=2)
    assert_close(compute(img, fs), reference(img, fs))


@pytest.mark.parametrize("families", [("log",), ("hessian",), ("dog",), ("gaussian", "log"),
                                      ("original",)])
def test_family_subsets(families):
    x = np.random.default_rng(1).random((40, 50)).astype(np.float32)
    fs = FeatureSet(families=families, ndim=2)
    ours = compute(x, fs)
    assert ours.shape[0] == fs.n_features() == len(fs.names())
    assert_close(ours, reference(x, fs))


def test_multichannel_channel_axis_and_order():
    rng = np.random.default_rng(2)
    rgb = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    fs = FeatureSet(sigmas=(1.0, 3.0), ndim=2)
    f = compute(rgb, fs, channel_axis=-1)
    n = fs.n_features(1)
    assert f.shape == (3 * n, 30, 40)
    names = fs.names(3)
    assert names[0] == "original_c0" and names[n] == "original_c1"
    for c in range(3):
        assert_close(f[c * n:(c + 1) * n], reference(rgb[..., c], fs))


def test_multichannel_3d():
    rng = np.random.default_rng(3)
    v = rng.random((2, 12, 14, 16)).astype(np.float32)
    fs = FeatureSet(sigmas=(1.0, 2.0), ndim=3)
    f = compute(v, fs, channel_axis=0)
    n = fs.n_features(1)
    for c in range(2):
        assert_close(f[c * n:(c + 1) * n], reference(v[c], fs))


def test_names_and_order():
    fs = FeatureSet(sigmas=(1.0, 2.0), ndim=2)
    assert fs.names() == [
        "original_c0", "gaussian_s1.0_c0", "gaussian_s2.0_c0", "dog_s1.0_c0",
        "log_s1.0_c0", "log_s2.0_c0", "hessian0_s1.0_c0", "hessian1_s1.0_c0",
        "hessian0_s2.0_c0", "hessian1_s2.0_c0",
    ]
    assert FeatureSet.default(ndim=3).n_features() == 4 * 3 + 3 + 4 + 1 + 4


def test_results_do_not_depend_on_threads():
    x = np.random.default_rng(4).random((300, 70)).astype(np.float32)
    fs = FeatureSet.default(ndim=2)
    assert np.array_equal(compute(x, fs, threads=1), compute(x, fs, threads=3))


@pytest.mark.parametrize("ndim, shape", [(2, (150, 170)), (3, (40, 45, 50)), (1, (600,))])
def test_crop_with_halo_equals_whole_image(ndim, shape):
    rng = np.random.default_rng(5)
    x = rng.random(shape).astype(np.float32)
    fs = FeatureSet(sigmas=(1.0, 2.0, 3.0), ndim=ndim)
    whole = compute(x, fs)
    h = fs.halo
    assert h == int(fs.truncate * 3.0 + 0.5)
    inner = tuple(slice(h + 3, n - h - 2) for n in shape)
    outer = tuple(slice(s.start - h, s.stop + h) for s in inner)
    crop = compute(x[outer], fs)
    assert np.array_equal(crop[(slice(None),) + (slice(h, -h),) * ndim],
                          whole[(slice(None),) + inner])


def test_compute_at_equals_compute():
    rng = np.random.default_rng(6)
    x = rng.random((300, 280)).astype(np.float32)
    mask = np.zeros(x.shape, bool)
    mask[10:14, 20:200] = True
    mask[250, 5] = True
    fs = FeatureSet(sigmas=(1.0, 4.0), ndim=2)
    X = compute_at(x, fs, mask, tile=64)
    assert np.array_equal(X, compute(x, fs)[:, mask].T)


def test_nan_is_rejected_with_fix():
    x = np.ones((20, 20), np.float32)
    x[3, 4] = np.nan
    with pytest.raises(InputError, match="NaN.*nan_to_num"):
        compute(x, FeatureSet.default(ndim=2))


def test_wrong_ndim_is_rejected():
    with pytest.raises(InputError, match="3-D data, but the image has 2 spatial axes"):
        compute(np.ones((10, 10)), FeatureSet.default(ndim=3))


@pytest.mark.parametrize("sigmas, match", [((2.0, 1.0), "strictly increasing"),
                                           ((0.0, 1.0), "positive"),
                                           ((1.0, np.inf), "positive and finite"),
                                           ((), "at least one sigma")])
def test_bad_sigmas_are_rejected(sigmas, match):
    with pytest.raises(InputError, match=match):
        FeatureSet(sigmas=sigmas)


def test_feature_set_json_round_trip():
    fs = FeatureSet(sigmas=(0.5, 2.0), families=("log", "hessian"), ndim=3, truncate=3.0)
    assert FeatureSet.from_json(fs.to_json()) == fs


def test_feature_cache_region_equals_whole_image():
    from active_annotator.features import FeatureCache

    rng = np.random.default_rng(7)
    x = rng.random((300, 410, 2)).astype(np.float32)
    fs = FeatureSet(sigmas=(1.0, 3.0))
    whole = compute(x, fs, channel_axis=-1)
    cache = FeatureCache(x, fs, channel_axis=-1, tile=128)
    assert np.array_equal(cache.region((slice(50, 290), slice(100, 409))),
                          whole[:, 50:290, 100:409])
    assert len(cache._tiles) == 3 * 4          # only tiles under the region were computed
    assert np.array_equal(cache.region(), whole)
    mask = np.zeros(x.shape[:2], bool)
    mask[::7, ::5] = True
    assert np.array_equal(cache.at(mask), whole[:, mask].T)


def test_feature_cache_is_bounded_and_reads_lazily():
    from active_annotator.features import FeatureCache

    class CountingArray:
        """Records every read, like a zarr array would be read from disk."""

        def __init__(self, a):
            self.a, self.shape, self.reads = a, a.shape, []

        def __getitem__(self, sl):
            self.reads.append(sl)
            return self.a[sl]

    x = CountingArray(np.random.default_rng(8).random((1000, 1000)).astype(np.float32))
    fs = FeatureSet(sigmas=(1.0,))
    cache = FeatureCache(x, fs, tile=100, max_bytes=3 * 100 * 100 * 4 * fs.n_features())
    cache.region((slice(0, 100), slice(0, 300)))
    assert len(x.reads) == 3 and cache.nbytes <= cache.max_bytes
    assert all(s.stop - s.start <= 100 + 2 * fs.halo for sl in x.reads for s in sl)
    cache.region((slice(900, 1000), slice(900, 1000)))
    assert len(cache._tiles) == 3               # least recently used tile dropped
    with pytest.raises(InputError, match="2 spatial axes"):
        FeatureCache(np.zeros((3, 10, 10)), fs)


def test_thick_slices_rule():
    from active_annotator.features import thick_slices

    assert thick_slices((6.5, 0.78, 0.78))
    assert thick_slices((3.0, 1.0, 1.0))
    assert not thick_slices((2.9, 1.0, 1.0))
    assert not thick_slices((1.0, 1.0, 1.0))
    assert not thick_slices((0.8, 0.8))          # 2-D: nothing to say
    assert not thick_slices((0.0, 1.0, 1.0))     # unknown spacing
    assert not thick_slices((float("nan"), 1.0, 1.0))
    assert thick_slices((2.0, 6.5, 0.5, 0.5))    # leading axes (time) are ignored
