"""What a viewer shows, as regions of an image: the visible-first prediction's geometry.

A viewer (napari or any other) knows its camera in world coordinates; the
caller turns the current point and the screen's corners into the image's data
coordinates (without the channel axis) and these functions turn them into the
region :meth:`AnnotationSession.predict` predicts first and the preview step.
No GUI code: the Pixel classifier dock and scripts call the same functions.
"""

from __future__ import annotations

import numpy as np

MAX_PREVIEW_STEP = 16


def current_plane(shape, spatial_ndim: int, point=None) -> tuple[slice, ...]:
    """The whole plane (or volume) at ``point``: one index per stack axis, everything spatial.

    ``point``: data coordinates of every non-channel axis (None: the first plane).
    """
    shape = tuple(int(n) for n in shape)
    nst = len(shape) - spatial_ndim
    if point is None:
        return tuple([slice(0, 1)] * nst + [slice(0, n) for n in shape[nst:]])
    point = np.asarray(point, float)
    at = [int(np.clip(round(point[i]), 0, n - 1)) for i, n in enumerate(shape)]
    return tuple([slice(a, a + 1) for a in at[:nst]] + [slice(0, n) for n in shape[nst:]])


def visible_region(shape, spatial_ndim: int, point, corners=None, *, three_d: bool = False) -> tuple[slice, ...]:
    """Slices over ``(*stack, *spatial)`` of what a view shows of an image of ``shape``.

    ``point``: data coordinates of the view's current point (one per non-channel axis):
    stack axes get its plane, and so does the depth axis of a volume seen in 2-D.
    ``three_d``: the view renders the volume (all of it is visible). ``corners``: data
    coordinates of the screen's corners (``(k, >=2)``: the last two columns are read), or
    None when the view does not display the two last axes (then the whole plane). The
    box is rounded outwards and clipped to the image.
    """
    shape = tuple(int(n) for n in shape)
    region = list(current_plane(shape, spatial_ndim, point))
    if three_d:
        return tuple(region)
    nst = len(shape) - spatial_ndim
    if spatial_ndim == 3:
        z = int(np.clip(round(float(np.asarray(point, float)[nst])), 0, shape[nst] - 1))
        region[nst] = slice(z, z + 1)
    if corners is None:
        return tuple(region)
    corners = np.asarray(corners, float)[:, -2:]
    lo, hi = np.floor(corners.min(0)), np.ceil(corners.max(0)) + 1
    for k, i in enumerate((len(shape) - 2, len(shape) - 1)):
        a, b = int(np.clip(lo[k], 0, shape[i])), int(np.clip(hi[k], 0, shape[i]))
        if b > a:
            region[i] = slice(a, b)
    return tuple(region)


def preview_step(image_px_per_screen_px: float, max_step: int = MAX_PREVIEW_STEP) -> int:
    """Image pixels per screen pixel, as a power of 2 at most ``max_step`` (1 when zoomed in).

    The visible-first preview samples every ``step``-th pixel: what a zoomed-out
    screen can show anyway.
    """
    step = 1
    while step * 2 <= min(float(image_px_per_screen_px), max_step):
        step *= 2
    return step
