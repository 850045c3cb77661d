"""Reader for signals: miniSEED, SAC (and other ObsPy formats), ``.npy``, ``.csv``.

A record becomes napari layers laid out as a strip along time (x in seconds):
one row per channel, then one row each for the labels, the prediction and the
uncertainty. On the canvas the channels are drawn as waveforms (a Shapes layer
of paths, ``"<record> waveform"``, min/max-decimated to a few thousand
vertices); the samples themselves travel in a hidden image layer (a colour
strip of amplitudes says nothing to the eye), whose ``metadata["signal"]``
holds the sampling rate, start time and channel ids. The "Signal classifier"
dock reads these layers and draws the detailed waveform view.
"""

from pathlib import Path

import numpy as np

from active_annotator.signals import (
    ARRAY_SUFFIXES,
    SEISMIC_SUFFIXES,
    SignalRecord,
    is_signal_array,
    read_signal,
)

CLASS_NAMES = {1: "noise", 2: "earthquake", 3: "other"}
LABELS_SUFFIX = " labels"
PREDICTION_SUFFIX = " prediction"
UNCERTAINTY_SUFFIX = " uncertainty"
WAVEFORM_SUFFIX = " waveform"


def row_height(record: SignalRecord) -> float:
    """Height (in world units = seconds on the x axis) of one row of the strip."""
    return max(record.duration / 40.0, 1.0 / record.sampling_rate)


def row_geometry(record: SignalRecord, row: int):
    """``(scale, translate)`` of a one-row layer drawn ``row`` rows below the first channel."""
    h = row_height(record)
    return (h, 1.0 / record.sampling_rate), (row * h, 0.0)


MAX_WIDTH = 16384
"""Widest image napari draws as one texture; wider records become multiscale."""


def multiscale_levels(data):
    """The record itself, or for long records a multiscale list of strided views.

    napari splits an image wider than the GPU's texture limit into hundreds of
    tiles (minutes to open a day at 100 Hz); as a multiscale image it draws
    only the level that fits the screen. The views cost no memory.
    """
    if data.shape[1] <= MAX_WIDTH:
        return data
    levels, step = [data], 4
    while data.shape[1] // step > MAX_WIDTH // 4:
        levels.append(data[:, ::step])
        step *= 4
    return levels


def signal_data(layer):
    """The full-resolution ``(channels, time)`` array of a signal image layer."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def layer_data(record: SignalRecord, labels=None, class_names=None) -> list:
    """napari LayerData tuples for a record: the channels as an image, and a labels row."""
    data = record.data
    step = max(1, data.shape[1] // 200_000)
    sub = data[:, ::step]
    lo, hi = np.percentile(sub, [0.5, 99.5]) if sub.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    scale, translate = row_geometry(record, 0)
    meta = record.metadata()
    meta["row_height"] = scale[0]
    image = (multiscale_levels(data), {"name": record.name, "scale": scale, "translate": translate,
                    "colormap": "gray", "contrast_limits": (float(lo), float(hi)), "visible": False,
                    "metadata": {"signal": meta}}, "image")
    if labels is None:
        labels = np.zeros((1, record.n_samples), np.uint8)
    labels = np.asarray(labels).reshape(1, record.n_samples)
    l_scale, l_translate = row_geometry(record, record.n_channels)
    names = dict(class_names or CLASS_NAMES)
    annotations = (labels, {"name": record.name + LABELS_SUFFIX, "scale": l_scale,
                            "translate": l_translate, "opacity": 0.9,
                            "metadata": {"class_names": names, "signal_of": record.name}}, "labels")
    return [image, waveform_layer_data(record), annotations]


def waveform_layer_data(record: SignalRecord, n_bins: int = 4000):
    """A Shapes LayerData tuple: one path per channel, in the channel's row of the strip (world units)."""
    from ._drawing import waveform_paths

    h = row_height(record)
    paths = [np.column_stack([p[:, 0] * h, p[:, 1] / record.sampling_rate])
             for p in waveform_paths(record.data, n_bins)]
    return (paths, {"name": record.name + WAVEFORM_SUFFIX, "shape_type": "path", "edge_width": 0.02 * h,
                    "edge_color": "#e8e8e8", "face_color": "transparent",
                    "metadata": {"waveform_of": record.name}}, "shapes")


def _claims(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in SEISMIC_SUFFIXES:
        return path.is_file()
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError):
            return False
        return np.issubdtype(arr.dtype, np.number) and is_signal_array(arr)
    if suffix == ".csv":
        try:
            with open(path) as f:
                lines = [ln for ln in (f.readline() for _ in range(6)) if ln.strip()]
        except (OSError, UnicodeDecodeError):
            return False
        if len(lines) < 2 or "axis-0" in lines[0]:
            return False  # napari's own points/shapes tables have axis-N columns
        try:
            for ln in lines[1:]:
                [float(v) for v in ln.replace(";", ",").replace("\t", ",").split(",") if v.strip()]
        except ValueError:
            return False  # not a numeric table
        return True
    return False


def get_reader(path):
    """npe2 reader hook: a function for one signal file, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if path.suffix.lower() not in SEISMIC_SUFFIXES + ARRAY_SUFFIXES or not _claims(path):
        return None
    return read_layers


def read_layers(path):
    """Read one signal file into LayerData tuples."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    return layer_data(read_signal(path))


def seismogram():
    """Sample data: a 3-component local-earthquake record (ObsPy's example), with an empty labels row."""
    from active_annotator import data

    return layer_data(data.seismogram())
