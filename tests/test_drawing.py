"""Drawing helpers of the Signal dock (plugin/_drawing.py): min/max pyramid and waveform paths."""

import numpy as np

from active_annotator_napari._drawing import MinMaxPyramid, waveform_paths


def test_minmax_pyramid_keeps_extremes_at_any_zoom():
    x = np.zeros((2, 1_000_000), np.float32)
    x[0, 123_457] = 5.0  # one spike must survive zooming out
    x[1, 654_321] = -3.0
    pyr = MinMaxPyramid(x)
    idx, vals = pyr.view(0, x.shape[1], 2000)
    assert vals.shape[1] <= 2 * 2 * 2000 * 4 and idx.shape[0] == vals.shape[1]
    assert vals[0].max() == 5.0 and vals[1].min() == -3.0
    idx, vals = pyr.view(100, 600, 2000)  # zoomed in: raw samples
    np.testing.assert_array_equal(vals, x[:, 100:600])


def test_waveform_paths_stay_in_their_rows_and_keep_a_spike():
    x = np.zeros((3, 200_000))
    x[1, 150_000] = 10.0
    paths = waveform_paths(x, n_bins=1000)
    assert len(paths) == 3
    for i, p in enumerate(paths):
        assert p.shape[1] == 2 and len(p) <= 2 * 4 * 1000 * 4
        assert np.all(np.abs(p[:, 0] - i) <= 0.45 + 1e-9)  # within its own row
        assert 0 <= p[:, 1].min() and p[:, 1].max() <= 200_000
    spike = paths[1][np.argmin(paths[1][:, 0])]
    assert abs(spike[1] - 150_000) < 200 and spike[0] == 1 - 0.45  # drawn up, at its time
