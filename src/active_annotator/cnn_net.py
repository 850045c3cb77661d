"""The torch half of :mod:`active_annotator.cnn`: network, loss, augmentation, tiling.

Imported only when a CNN is built or used, so ``import active_annotator`` works
without torch. Every array here is ``(batch, channels, *spatial)``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -1  # target index of unlabelled pixels


def build_net(dims: int, in_channels: int, n_classes: int, widths, dropout: float) -> nn.Module:
    """A small U-Net for 1-D, 2-D or 3-D data; ``len(widths) - 1`` poolings."""
    return UNet(dims, in_channels, n_classes, tuple(int(w) for w in widths), float(dropout))


def _block(dims: int, cin: int, cout: int, dropout: float) -> nn.Sequential:
    Conv = getattr(nn, f"Conv{dims}d")
    Norm = getattr(nn, f"BatchNorm{dims}d")
    layers = [
        Conv(cin, cout, 3, padding=1, bias=False), Norm(cout), nn.ReLU(inplace=True),
        Conv(cout, cout, 3, padding=1, bias=False), Norm(cout), nn.ReLU(inplace=True),
    ]
    if dropout > 0:
        # plain dropout (not channel dropout) so MC-dropout varies per pixel
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Encoder-decoder with skip connections; dropout in bottleneck and decoder."""

    def __init__(self, dims, in_channels, n_classes, widths, dropout):
        super().__init__()
        self.dims = dims
        self.depth = len(widths) - 1
        self.down = nn.ModuleList(
            _block(dims, cin, cout, dropout if i == self.depth else 0.0)
            for i, (cin, cout) in enumerate(zip((in_channels,) + widths[:-1], widths))
        )
        ConvT = getattr(nn, f"ConvTranspose{dims}d")
        self.up = nn.ModuleList(ConvT(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(self.depth)))
        self.dec = nn.ModuleList(_block(dims, 2 * widths[i], widths[i], dropout) for i in reversed(range(self.depth)))
        self.head = getattr(nn, f"Conv{dims}d")(widths[0], n_classes, 1)
        self.pool = getattr(nn, f"MaxPool{dims}d")(2)

    def forward(self, x, features: bool = False):
        """Logits ``(B, K, *spatial)``; with ``features`` also (hidden, bottleneck)."""
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x)
            if i < self.depth:
                skips.append(x)
                x = self.pool(x)
        bottleneck = x
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], 1))
        logits = self.head(x)
        if features:
            return logits, x, bottleneck
        return logits


def sparse_cross_entropy(logits, target):
    """Mean cross-entropy over labelled pixels only.

    ``target`` holds class indices, :data:`IGNORE` (-1) where unlabelled; those
    pixels contribute neither to the loss nor to its gradient. Returns 0 (with
    a gradient path) when nothing in the batch is labelled.
    """
    if not bool((target != IGNORE).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=IGNORE)


def soft_cross_entropy(logits, soft_target):
    """Cross-entropy against class probabilities ``(B, K, *spatial)`` (distillation)."""
    return -(soft_target * F.log_softmax(logits, 1)).sum(1).mean()


def augment(x, y, rng: np.random.Generator, flips: bool, rot90: bool, jitter: float):
    """Random flips / 90-degree rotations (same for image and target) and intensity jitter.

    ``x`` is ``(B, C, *sp)``, ``y`` ``(B, *sp)`` indices or ``(B, K, *sp)`` soft
    targets. Geometric transforms are per sample.
    """
    dims = x.ndim - 2
    soft = y.ndim == x.ndim
    xs, ys = [], []
    for b in range(x.shape[0]):
        xb, yb = x[b], y[b]
        off = 1 if soft else 0  # yb has a class axis first when soft
        if flips:
            ax = [a for a in range(dims) if rng.random() < 0.5]
            if ax:
                xb = torch.flip(xb, [a + 1 for a in ax])
                yb = torch.flip(yb, [a + off for a in ax])
        if rot90 and dims >= 2 and xb.shape[-1] == xb.shape[-2]:
            k = int(rng.integers(4))
            if k:
                xb = torch.rot90(xb, k, (-2, -1))
                yb = torch.rot90(yb, k, (-2, -1))
        xs.append(xb)
        ys.append(yb)
    x = torch.stack(xs)
    y = torch.stack(ys)
    if jitter > 0:
        shape = (x.shape[0], x.shape[1]) + (1,) * dims
        gain = torch.from_numpy(rng.uniform(1 - jitter, 1 + jitter, shape).astype(np.float32))
        shift = torch.from_numpy(rng.normal(0, jitter, shape).astype(np.float32))
        x = x * gain.to(x.device) + shift.to(x.device)
    return x, y


def tiled(fn, image: np.ndarray, out_channels: int, tile: int, margin: int, multiple: int,
          device, should_stop=None, on_tile=None) -> np.ndarray:
    """Apply ``fn`` (tensor ``(1, C, *t)`` -> ``(1, out_channels, *t)``) over tiles.

    ``image`` is ``(C, *spatial)`` float32. Tiles overlap by ``margin`` on
    every side and only their centres are kept, so seams do not show; the edge
    is padded by mirroring. Tile edges are multiples of ``multiple`` (the
    network's total pooling factor). Returns ``(out_channels, *spatial)`` float32.
    """
    sp = image.shape[1:]
    tiles, cores, pads = [], [], []
    for n in sp:
        t = min(tile, _round_up(n, multiple) + 2 * margin)
        core = t - 2 * margin
        ntile = math.ceil(n / core)
        tiles.append(t)
        cores.append(core)
        pads.append((margin, margin + ntile * core - n))
    xp = np.pad(image, [(0, 0)] + pads, mode="symmetric")
    out = np.empty((out_channels,) + tuple(math.ceil(n / c) * c for n, c in zip(sp, cores)), np.float32)
    grid = list(itertools.product(*[range(math.ceil(n / c)) for n, c in zip(sp, cores)]))
    for done, idx in enumerate(grid):
        if should_stop is not None and should_stop():
            from .errors import Cancelled

            raise Cancelled("Prediction was cancelled.")
        src = tuple(slice(i * c, i * c + t) for i, c, t in zip(idx, cores, tiles))
        block = torch.from_numpy(np.ascontiguousarray(xp[(slice(None),) + src])).to(device)[None]
        res = fn(block)[0]
        inner = tuple(slice(margin, margin + c) for c in cores)
        dst = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, cores))
        out[(slice(None),) + dst] = res[(slice(None),) + inner].float().cpu().numpy()
        if on_tile is not None:
            on_tile(done + 1, len(grid))
    return out[(slice(None),) + tuple(slice(0, n) for n in sp)]


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m
