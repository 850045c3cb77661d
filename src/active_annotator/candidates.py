"""Candidates: the units a person can label next.

A :class:`Candidate` is a place in the data (a 2-D tile, a 3-D block, a window
of a signal, one object of a label image, or one image of a collection) with a
location, a centre and, once :func:`describe` has run, a descriptor vector.

Axes: every candidate has a :attr:`Candidate.key`, a tuple of slices (and, for
stacks, a leading integer) that indexes an array shaped like the data the
candidates were built on: ``(*spatial)`` for patches, windows and objects,
``(n_images, *spatial)`` for a collection, ``(*stack, *spatial)`` for patches
built with ``stack_index``. Feature stacks are ``(n_features, *that shape)``,
as :func:`active_annotator.features.compute` returns them.

Per-candidate uncertainty (:func:`uncertainty`) is by default the **mean of the
top 10 % of the pixel uncertainties inside the candidate**, ignoring pixels
already labelled. Why not the alternatives: the plain mean dilutes the thin band
of uncertain pixels along an object boundary in a patch that is mostly
confident background, so patches full of boundaries lose to patches of
uniformly mediocre texture; the max is decided by one pixel, i.e. by noise, and
ranks every patch that touches any boundary the same. The top-decile mean
rewards a patch in which a region large enough to paint is uncertain.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage as ndi

from .errors import InputError

KINDS = ("patch", "window", "object", "image")
AGGREGATES = ("top_mean", "mean", "max", "quantile")


@dataclass(eq=False)
class Candidate:
    """One place that can be labelled next.

    Attributes
    ----------
    id : int
        Position of the candidate in the list it was built in.
    kind : {"patch", "window", "object", "image"}
    slices : tuple of slice
        Bounding box over the spatial axes (for ``kind="image"``: empty).
    centre : tuple of float
        Centre in the coordinates of the full array (stack index first when
        there is one); for objects, the centroid.
    stack_index : int or None
        Index along the leading stack axis (image of a collection, plane of a
        stack), or None.
    mask : bool ndarray or None
        For objects: which pixels of the bounding box belong to the object.
    descriptor : float ndarray (n_features,) or None
        Mean features over the candidate, set by :func:`describe`.
    """

    id: int
    kind: str
    slices: tuple[slice, ...]
    centre: tuple[float, ...]
    stack_index: int | None = None
    mask: np.ndarray | None = field(default=None, repr=False)
    descriptor: np.ndarray | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple:
        """Index into an array ``(*stack, *spatial)`` selecting the bounding box."""
        if self.stack_index is None:
            return tuple(self.slices)
        return (int(self.stack_index),) + tuple(self.slices)

    @property
    def bbox(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(starts, stops)`` of the bounding box over the spatial axes."""
        return tuple(s.start for s in self.slices), tuple(s.stop for s in self.slices)

    @property
    def extent(self) -> float:
        """Mean edge length of the bounding box, in pixels (0 for whole images)."""
        if not self.slices or any(s.stop is None for s in self.slices):
            return 0.0
        return float(np.mean([s.stop - s.start for s in self.slices]))

    def pixels(self, array: np.ndarray) -> np.ndarray:
        """Values of ``array`` inside the candidate as a 1-D array (object mask applied).

        ``array`` has the shape of the data (``(*stack, *spatial)``).
        """
        block = np.asarray(array[self.key])
        if self.mask is not None:
            return block[self.mask]
        return block.reshape(-1)

    def region_mask(self, shape: Sequence[int]) -> np.ndarray:
        """Boolean array of ``shape`` (the data's shape) true inside the candidate."""
        out = np.zeros(tuple(shape), bool)
        if self.mask is not None:
            out[self.key] = self.mask
        else:
            out[self.key] = True
        return out


def _as_size(size, ndim: int, name: str = "size") -> tuple[int, ...]:
    sz = (int(size),) * ndim if np.isscalar(size) else tuple(int(s) for s in size)
    if len(sz) != ndim or any(s < 1 for s in sz):
        raise InputError(f"{name} must be a positive integer or {ndim} positive integers, got {size!r}.")
    return sz


def patches(shape: Sequence[int], size=32, step=None, stack_index: int | None = None,
            start_id: int = 0) -> list[Candidate]:
    """Tile a 2-D image or a 3-D volume into patches (tiles or blocks).

    Parameters
    ----------
    shape : tuple of int
        Spatial shape ``(*spatial)`` (1, 2 or 3 axes).
    size : int or tuple of int
        Patch edge per axis in pixels; patches at the far edges are cut short.
    step : int or tuple of int, optional
        Distance between patch starts; default ``size`` (no overlap). With an
        explicit step, patches cut short by the far edges are left out (they
        would repeat their overlapping neighbours).
    stack_index : int, optional
        Plane of a stack these patches belong to.
    start_id : int
        Id of the first patch (to concatenate lists from several planes).

    Returns
    -------
    list of Candidate, kind ``"patch"``, in C order of their start corners.
    """
    shape = tuple(int(n) for n in shape)
    if not 1 <= len(shape) <= 3 or any(n < 1 for n in shape):
        raise InputError(f"patches() needs a 1-D to 3-D spatial shape, got {shape}.")
    sz = _as_size(size, len(shape))
    st = sz if step is None else _as_size(step, len(shape), "step")
    starts = [range(0, n, s) for n, s in zip(shape, st)]
    out = []
    for corner in np.ndindex(*[len(r) for r in starts]):
        sl = tuple(slice(r[i], min(r[i] + s, n)) for r, i, s, n in zip(starts, corner, sz, shape))
        if step is not None and any(x.stop - x.start < min(s, n) for x, s, n in zip(sl, sz, shape)):
            continue  # with overlap, short edge tiles duplicate their neighbours
        centre = tuple((x.start + x.stop - 1) / 2 for x in sl)
        if stack_index is not None:
            centre = (float(stack_index),) + centre
        out.append(Candidate(start_id + len(out), "patch", sl, centre, stack_index))
    return out


#: Patch edges :func:`default_patch_size` chooses from, largest first, per spatial ndim.
PATCH_SIZES = {1: (1024, 512, 256, 128, 64, 32), 2: (64, 48, 32, 24, 16, 12, 8), 3: (16, 12, 8, 6, 4)}


def default_patch_size(shape: Sequence[int], min_candidates: int = 150) -> int:
    """The largest patch edge of :data:`PATCH_SIZES` that cuts ``shape`` into ``min_candidates`` patches.

    ``shape`` is ``(*spatial)`` of one image or volume (1-3 axes). A 512 x 512
    image gets 32 px tiles (256 of them); a 31 x 61 x 57 volume 8-voxel blocks
    instead of its four quadrants; tiny images the smallest size.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in PATCH_SIZES:
        raise InputError(f"default_patch_size needs 1 to 3 spatial axes, got shape {shape}.")
    for p in PATCH_SIZES[len(shape)]:
        if np.prod([-(-n // p) for n in shape]) >= min_candidates:
            return p
    return PATCH_SIZES[len(shape)][-1]


def signal_windows(n_samples: int, width: int, step: int | None = None,
                   start_id: int = 0) -> list[Candidate]:
    """Windows along the time axis of a signal ``(channels, time)``.

    The windows index the time axis only (all channels are labelled together),
    so their keys apply to per-sample arrays ``(time,)`` such as the uncertainty
    of a 1-D classifier.

    Parameters
    ----------
    n_samples : int
        Length of the time axis.
    width : int
        Window length in samples.
    step : int, optional
        Hop between window starts; default ``width``.
    """
    n_samples, width = int(n_samples), int(width)
    step = width if step is None else int(step)
    if n_samples < 1 or width < 1 or step < 1:
        raise InputError(f"n_samples, width and step must be positive, got {n_samples}, {width}, {step}.")
    width = min(width, n_samples)
    starts = list(range(0, max(1, n_samples - width + 1), step))
    if starts[-1] + width < n_samples:
        starts.append(n_samples - width)  # cover the tail
    return [
        Candidate(start_id + i, "window", (slice(t, t + width),), ((t + t + width - 1) / 2,))
        for i, t in enumerate(starts)
    ]


def objects(label_image, start_id: int = 0) -> list[Candidate]:
    """One candidate per object of an instance label image ``(*spatial)``.

    Background is 0. Each candidate keeps its bounding box and the object's
    mask inside it; ``centre`` is the centroid.
    """
    lab = np.asarray(label_image)
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"objects() needs an integer label image, got dtype {lab.dtype}.")
    out = []
    for value, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        m = lab[sl] == value
        coords = np.argwhere(m).mean(axis=0)
        centre = tuple(float(c + s.start) for c, s in zip(coords, sl))
        out.append(Candidate(start_id + len(out), "object", tuple(sl), centre, mask=m))
    return out


def collection(n_images: int, start_id: int = 0) -> list[Candidate]:
    """One candidate per image of a collection (a stack ``(n_images, *spatial)``)."""
    n_images = int(n_images)
    if n_images < 1:
        raise InputError(f"A collection needs at least one image, got n_images={n_images}.")
    return [Candidate(start_id + i, "image", (), (float(i),), stack_index=i) for i in range(n_images)]


def superpixels(image, size: int = 16, channel_axis: int | None = None, mask=None,
                compactness: float | None = None, start_id: int = 0) -> list[Candidate]:
    """SLIC superpixels (scikit-image) as candidates: regions that follow the image's edges.

    Parameters
    ----------
    image : array ``(*spatial)`` (2-D or 3-D) with an optional channel axis; 1-D
        signals ``(channels, time)`` with ``channel_axis=0`` are cut into
        segments at the SLIC boundaries of the time axis.
    size : int
        Typical superpixel edge in pixels (``n_segments = pixels / size**ndim``).
    mask : bool array ``(*spatial)``, optional
        Only pixels inside (e.g. the annotation region); regions are cut by it.
    compactness : float, optional
        SLIC's compactness; default: SLIC-zero (adaptive per superpixel).

    Returns
    -------
    list of Candidate of kind ``"region"``, with a pixel ``mask`` in their bounding box.
    """
    from skimage.segmentation import slic

    img = np.asarray(image, dtype=np.float32)
    if channel_axis is not None:
        img = np.moveaxis(img, channel_axis, -1)
    spatial = img.shape[:-1] if channel_axis is not None else img.shape
    if len(spatial) == 1:  # SLIC needs 2-D: a time axis becomes a 1-row image
        img = img[np.newaxis]
    lo, hi = np.percentile(img, [1, 99])
    img = np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    n_seg = max(2, int(np.prod(spatial) / float(size) ** len(spatial)))
    m = None
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.shape != tuple(spatial):
            raise InputError(f"mask has shape {m.shape}, the image's spatial shape is {tuple(spatial)}.")
        m = m[np.newaxis] if len(spatial) == 1 else m
    seg = slic(img, n_segments=n_seg, compactness=compactness or 0.1, slic_zero=compactness is None,
               channel_axis=-1 if channel_axis is not None else None, mask=m, start_label=1,
               enforce_connectivity=True)
    if len(spatial) == 1:
        seg = seg[0]
    if mask is not None:
        seg = np.where(np.asarray(mask, bool), seg, 0)
    out = []
    for k, sl in enumerate(ndi.find_objects(seg), 1):
        if sl is None:
            continue
        m_k = seg[sl] == k
        centre = tuple(float(c) + s.start for c, s in zip(ndi.center_of_mass(m_k), sl))
        out.append(Candidate(start_id + len(out), "region", tuple(sl), centre, None, m_k))
    return out


def describe(candidates: Iterable[Candidate], feats: np.ndarray) -> list[Candidate]:
    """Set each candidate's descriptor to the mean of the features over it.

    Parameters
    ----------
    candidates : list of Candidate
    feats : float array ``(n_features, *shape)``
        Feature stack over the data the candidates index (``shape`` is
        ``(*spatial)`` or ``(n_images, *spatial)``). Any other per-pixel
        embedding (e.g. a CNN's) works the same way.

    Returns
    -------
    list of Candidate
        Copies with ``descriptor`` (float32, ``(n_features,)``) set.
    """
    feats = np.asarray(feats)
    out = []
    for c in candidates:
        block = feats[(slice(None),) + c.key]
        if c.mask is not None:
            vec = block[:, c.mask].mean(axis=1)
        else:
            vec = block.reshape(block.shape[0], -1).mean(axis=1)
        out.append(replace(c, descriptor=vec.astype(np.float32)))
    return out


def descriptors(candidates: Sequence[Candidate]) -> np.ndarray:
    """Stack descriptors into ``(n_candidates, n_features)``; raise if any is missing."""
    if any(c.descriptor is None for c in candidates):
        raise InputError(
            "Some candidates have no descriptor; call "
            "active_annotator.candidates.describe(candidates, features) first."
        )
    return np.stack([np.asarray(c.descriptor, np.float64) for c in candidates]) if candidates else np.zeros((0, 0))


def uncertainty(candidates: Sequence[Candidate], uncertainty_map: np.ndarray,
                labelled=None, aggregate: str = "top_mean", fraction: float = 0.1) -> np.ndarray:
    """Uncertainty of each candidate from a per-pixel uncertainty map.

    Parameters
    ----------
    candidates : list of Candidate
    uncertainty_map : float array, the data's shape
        E.g. :func:`active_annotator.uncertainty.entropy` of the probabilities.
    labelled : bool or int array of the same shape, optional
        Labelled pixels (non-zero) count as certain: a label there teaches
        nothing new.
    aggregate : {"top_mean", "mean", "max", "quantile"}
        ``top_mean`` (default): mean of the top ``fraction`` of pixels;
        ``quantile``: the ``1 - fraction`` quantile. See the module docstring
        for why the top-decile mean is the default.
    fraction : float in (0, 1]

    Returns
    -------
    float64 array ``(n_candidates,)``
    """
    if aggregate not in AGGREGATES:
        raise InputError(f"Unknown aggregate {aggregate!r}; choose from {list(AGGREGATES)}.")
    if not 0 < fraction <= 1:
        raise InputError(f"fraction must be in (0, 1], got {fraction}.")
    u = np.asarray(uncertainty_map, dtype=np.float32)
    if labelled is not None:
        lab = np.asarray(labelled)
        if lab.shape != u.shape:
            raise InputError(f"labelled has shape {lab.shape} but the uncertainty map has {u.shape}.")
        u = np.where(lab != 0, np.float32(0), u)
    out = np.empty(len(candidates))
    for i, c in enumerate(candidates):
        v = c.pixels(u)
        if v.size == 0:
            out[i] = 0.0
        elif aggregate == "mean":
            out[i] = v.mean()
        elif aggregate == "max":
            out[i] = v.max()
        elif aggregate == "quantile":
            out[i] = np.quantile(v, 1 - fraction)
        else:
            k = max(1, int(round(fraction * v.size)))
            out[i] = np.partition(v, v.size - k)[v.size - k:].mean()
    return out


def labelled_fraction(candidates: Sequence[Candidate], labelled) -> np.ndarray:
    """Fraction of each candidate's pixels that are labelled (non-zero), ``(n_candidates,)``."""
    lab = np.asarray(labelled) != 0
    out = np.zeros(len(candidates))
    for i, c in enumerate(candidates):
        v = c.pixels(lab)
        out[i] = v.mean() if v.size else 0.0
    return out


__all__ = [
    "Candidate", "patches", "default_patch_size", "PATCH_SIZES", "superpixels", "signal_windows", "objects", "collection", "describe",
    "descriptors", "uncertainty", "labelled_fraction",
]
