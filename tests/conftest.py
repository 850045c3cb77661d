"""Fixtures shared by the tests.

* ``viewer``: a real napari viewer (public-API proxy), closed by napari's fixture;
* ``run_until_done``: press a dock's button and wait for its signal (or ``failed``)
  and for its workers to finish, never a fixed wait;
* ``nuclei2d``: the bundled 2-D sample (image, starter labels, truth, objects);
* ``two_class_image``: a small synthetic image with a bright disc on noise, strokes and truth;
* ``bursts``: makes a 3-channel signal record of noise with two loud bursts.

Core tests do not need napari: the fixtures that do import it only when used.
"""

import numpy as np
import pytest

TIMEOUT_MS = 120_000


@pytest.fixture
def viewer(make_napari_viewer_proxy):
    """A napari viewer that exposes only the public API (as plugins get it)."""
    return make_napari_viewer_proxy()


@pytest.fixture
def run_until_done(qtbot):
    """``run_until_done(widget, action, signal=None, timeout=...)``.

    Calls ``action()``, waits until ``signal`` (default ``widget.trained``) or
    ``widget.failed`` fires, fails the test on ``failed``, then waits until the
    widget has no worker left (``widget.busy`` is False).
    """

    def run(widget, action, signal=None, timeout=TIMEOUT_MS):
        signal = widget.trained if signal is None else signal
        done, failed = [], []
        signal.connect(lambda *a: done.append(a))
        widget.failed.connect(failed.append)
        action()
        qtbot.waitUntil(lambda: bool(done or failed), timeout=timeout)
        assert not failed, f"widget failed: {failed}"
        qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)
        return done[-1]

    return run


@pytest.fixture(scope="session")
def nuclei2d():
    """The bundled nuclei2d sample: dict of "image", "labels" (starter strokes), "truth", "objects"."""
    from active_annotator import data

    return data.nuclei2d()


@pytest.fixture
def two_class_image():
    """``(image, strokes, truth)``: a bright disc (class 2) on a noisy background (class 1), 64x64."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    truth = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 15 ** 2, 2, 1).astype(np.uint8)
    image = (0.8 * (truth == 2) + rng.normal(0, 0.15, truth.shape)).astype(np.float32)
    strokes = np.zeros_like(truth)
    strokes[::8, :] = truth[::8, :]
    strokes[:, 28:36] = 0  # two strokes per row: some can be held out
    return image, strokes, truth


@pytest.fixture
def bursts():
    """``bursts(n=6000)``: a :class:`SignalRecord` "bursts", 3 channels at 50 Hz, noise with loud
    8 Hz bursts at 20-30 s and 80-90 s."""
    from active_annotator.signals import SignalRecord

    def make(n=6000, sr=50.0):
        rng = np.random.default_rng(0)
        t = np.arange(n) / sr
        x = rng.normal(size=(3, n))
        for a in (1000, 4000):
            x[:, a:a + 500] += 6 * np.sin(2 * np.pi * 8 * t[a:a + 500])
        return SignalRecord(x, sr, channels=("XX.STA..HHZ", "XX.STA..HHN", "XX.STA..HHE"), name="bursts")

    return make
