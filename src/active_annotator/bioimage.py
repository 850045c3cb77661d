"""Export the fine-tuned CNN as a bioimage.io model package (model zoo format 0.5).

:func:`export_cnn` writes one ``.zip`` with

* ``rdf.yaml``: the model description (``bioimageio.spec`` 0.5 ``ModelDescr``):
  input ``(batch, channel, [z,] y, x)`` float32 raw intensities, output
  ``(batch, class, [z,] y, x)`` float32 probabilities of the same spatial size,
  with the CNN's ``halo`` declared on the output's spatial axes (a consumer that
  tiles crops that much of every tile), the class names as channel names;
* ``weights.pt``: TorchScript of the whole prediction, so it is exactly the
  tool's: the per-channel normalisation learned at training, the mirror padding
  of the border by the halo (and up to a multiple of ``2**depth``), the U-Net,
  the softmax and the crop back. No pre- or post-processing is left to the
  consumer, so every consumer gets the same numbers;
* ``test_input.npy`` / ``test_output.npy``: an input and the tool's own
  ``CNNClassifier.predict_proba`` of it, which ``bioimageio.core`` reproduces in
  its test.

``bioimageio.spec`` validates the package and ``bioimageio.core`` runs it
offline: every file is inside the zip and nothing is fetched (the test runs
with every proxy pointed at a closed port).

The random forest cannot follow as an exact bioimage.io model: its features
are scipy.ndimage filters with reflected borders and the trees are thresholds
on float32 features; an ONNX graph (``TreeEnsembleClassifier`` after
convolutions) would need the same filters bit for bit, and ONNX's tree operator
compares in float32 and averages in a different order, so classes could flip at
thresholds. See docs/formats.md.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from pathlib import Path

import numpy as np

from .errors import AnnotatorError, InputError

BIOIMAGEIO_HINT = ('Install the export extra: pip install "napari-active-annotator[bioimageio]" '
                   "(it adds bioimageio.spec and bioimageio.core).")


class MissingDependencyError(AnnotatorError, ImportError):
    """bioimageio.spec (or torch) is not installed."""


def _spec():
    try:
        from bioimageio.spec.model import v0_5
    except ImportError:
        raise MissingDependencyError(f"Exporting to bioimage.io needs bioimageio.spec. {BIOIMAGEIO_HINT}") from None
    return v0_5


def _exported_module(clf):
    """The CNN's whole prediction as one TorchScript-able module ``(B, C, *sp) -> (B, K, *sp)``."""
    import torch
    from torch import nn

    cfg = clf.config_
    dims, halo, multiple = int(cfg.dims), int(cfg.halo), int(cfg.multiple)
    shape = (1, -1) + (1,) * dims

    class Exported(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.down = net.down
            self.up = net.up
            self.dec = net.dec
            self.head = net.head
            self.pool = net.pool
            self.depth = int(net.depth)
            self.dims = dims
            self.halo = halo
            self.multiple = multiple
            self.register_buffer("mean", torch.tensor(cfg.norm_mean, dtype=torch.float32).reshape(shape))
            self.register_buffer("std", torch.tensor(cfg.norm_std, dtype=torch.float32).reshape(shape))

        def _pad(self, x, d: int, n: int):
            # numpy's "symmetric" padding (edge sample repeated), as cnn_net.tiled pads
            extra = (self.multiple - n % self.multiple) % self.multiple
            left = x.narrow(d, 0, self.halo).flip([d])
            r = self.halo + extra
            right = x.narrow(d, n - r, r).flip([d])
            return torch.cat([left, x, right], d)

        def forward(self, x):
            x = (x - self.mean) / self.std
            sizes = [x.shape[2 + i] for i in range(self.dims)]
            for i in range(self.dims):
                x = self._pad(x, 2 + i, sizes[i])
            skips = []
            i = 0  # counters, not enumerate(): kept to what TorchScript compiles on every version
            for blk in self.down:
                x = blk(x)
                if i < self.depth:
                    skips.append(x)
                    x = self.pool(x)
                i += 1  # noqa: SIM113
            j = 0
            for up, dec in zip(self.up, self.dec):
                x = dec(torch.cat([up(x), skips[len(skips) - 1 - j]], 1))
                j += 1  # noqa: SIM113
            y = self.head(x).softmax(1)
            for i in range(self.dims):
                y = y.narrow(2 + i, self.halo, sizes[i])
            return y

    net = clf.net_.to("cpu").eval()
    return torch.jit.script(Exported(net).eval())


def _test_input(clf, shape):
    cfg = clf.config_
    rng = np.random.default_rng(0)
    mean = np.asarray(cfg.norm_mean, np.float32).reshape((-1,) + (1,) * cfg.dims)
    std = np.asarray(cfg.norm_std, np.float32).reshape((-1,) + (1,) * cfg.dims)
    return (mean + std * rng.standard_normal((cfg.in_channels,) + tuple(shape))).astype(np.float32)


def export_cnn(clf, path, *, name: str = "napari-active-annotator CNN", description: str = "",
               authors=("napari-active-annotator user",), test_input=None, class_names=None,
               license: str = "CC-BY-4.0") -> Path:
    """Write a fine-tuned :class:`~active_annotator.cnn.CNNClassifier` as a bioimage.io ``.zip``.

    Parameters
    ----------
    clf : CNNClassifier (fitted) or path of a ``.aacnn`` file
    path : output ``.zip`` (suffix added), written atomically
    test_input : array ``(C, *spatial)`` or ``(*spatial)`` for one channel, optional
        The package's test image; default a random image with the training
        statistics, at least 64 px per axis and more than twice the halo.
    class_names : dict ``{class value: name}``, optional (the output's channel names)

    Returns
    -------
    Path of the written package.
    """
    import torch

    v = _spec()
    from bioimageio.spec import save_bioimageio_package

    from .cnn import CNNClassifier
    from .io.arrays import write_atomically
    from .persistence import load_cnn

    if not isinstance(clf, CNNClassifier):
        clf = load_cnn(clf, device="cpu")
    clf._check_fitted()
    cfg = clf.config_
    if cfg.dims == 1:
        raise InputError("bioimage.io export is for 2-D and 3-D CNNs; a 1-D (signal) CNN has no "
                         "bioimage.io axes to describe it.")
    halo, multiple = int(cfg.halo), int(cfg.multiple)
    lo = -(-(2 * halo + 1) // multiple) * multiple  # the smallest input size with a core left
    if test_input is None:
        test_input = _test_input(clf, (max(lo, 64),) * cfg.dims)
    x = np.asarray(test_input, np.float32)
    if x.ndim == cfg.dims:
        x = x[None]
    if x.ndim != cfg.dims + 1 or x.shape[0] != cfg.in_channels:
        raise InputError(f"test_input must be (channels={cfg.in_channels}, *{cfg.dims} spatial axes), "
                         f"got shape {np.shape(test_input)}.")
    if min(x.shape[1:]) < 2 * halo + 1:
        raise InputError(f"test_input must be larger than twice the CNN's halo ({halo} px) per axis, "
                         f"got {x.shape[1:]}.")
    expected = clf.predict_proba(np.moveaxis(x, 0, -1), channel_axis=-1)  # the tool's own output
    names = class_names or {}
    channel_names = [str(names.get(int(c), f"class_{int(c)}")) for c in clf.classes_]
    channel_names = [v.Identifier("".join(ch if ch.isalnum() or ch == "_" else "_" for ch in n)) for n in channel_names]
    spatial = ["y", "x"] if cfg.dims == 2 else ["z", "y", "x"]
    in_axes = [v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier(f"channel{i}") for i in range(cfg.in_channels)])]
    in_axes += [v.SpaceInputAxis(id=v.AxisId(a), size=v.ParameterizedSize(min=lo, step=multiple)) for a in spatial]
    out_axes = [v.BatchAxis(), v.ChannelAxis(channel_names=channel_names)]
    out_axes += [v.SpaceOutputAxisWithHalo(id=v.AxisId(a), halo=halo,
                                           size=v.SizeReference(tensor_id=v.TensorId("raw"), axis_id=v.AxisId(a)))
                 for a in spatial]

    def write(tmp: Path):
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            np.save(d / "test_input.npy", x[None])
            np.save(d / "test_output.npy", expected[None].astype(np.float32))
            _exported_module(clf).save(str(d / "weights.pt"))
            (d / "README.md").write_text(
                f"# {name}\n\n{description or 'A small U-Net fine-tuned from sparse labels with napari-active-annotator.'}"
                f"\n\nInput: raw intensities ({cfg.in_channels} channel(s)), float32. Output: probabilities of "
                f"classes {', '.join(str(int(c)) for c in clf.classes_)} (softmax), same size. "
                f"Normalisation and border padding are inside the TorchScript weights.\n", encoding="utf-8")
            descr = v.ModelDescr(
                name=name,
                description=description or "U-Net pixel classifier fine-tuned from sparse annotations "
                                           "(napari-active-annotator).",
                authors=[v.Author(name=a) for a in authors],
                cite=[v.CiteEntry(text="napari-active-annotator", url="https://github.com/napari/napari")],
                license=v.LicenseId(license),
                documentation=v.FileDescr(source=d / "README.md"),
                tags=["segmentation", "pixel-classification", f"{cfg.dims}d", "napari-active-annotator"],
                inputs=[v.InputTensorDescr(id=v.TensorId("raw"), axes=in_axes,
                                           test_tensor=v.FileDescr(source=d / "test_input.npy"),
                                           data=v.IntervalOrRatioDataDescr(type="float32"))],
                outputs=[v.OutputTensorDescr(id=v.TensorId("probabilities"), axes=out_axes,
                                             test_tensor=v.FileDescr(source=d / "test_output.npy"),
                                             data=v.IntervalOrRatioDataDescr(type="float32"))],
                weights=v.WeightsDescr(torchscript=v.TorchscriptWeightsDescr(
                    source=d / "weights.pt", pytorch_version=v.Version(torch.__version__.split("+")[0]))),
                timestamp=v.Datetime(_dt.datetime.now(_dt.timezone.utc)),
                config={"napari-active-annotator": {"classes": [int(c) for c in clf.classes_],
                                                    "halo": halo, "dims": int(cfg.dims)}},
            )
            save_bioimageio_package(descr, output_path=tmp)

    out = Path(path)
    if out.suffix != ".zip":
        out = out.with_name(out.name + ".zip")
    write_atomically(out, write)
    return out


def validate(path) -> str:
    """Validate a package with ``bioimageio.spec`` (format and files, no network); return the status.

    Raises :class:`~active_annotator.errors.ModelFileError` with the summary when it is not valid.
    """
    from bioimageio.spec import ValidationContext, load_description

    from .errors import ModelFileError

    _spec()
    with ValidationContext(perform_io_checks=True):
        descr = load_description(str(path))
    summary = descr.validation_summary
    if summary.status not in ("passed", "valid-format"):
        raise ModelFileError(f"{path} is not a valid bioimage.io package:\n{summary.display() or summary}")
    return str(summary.status)


__all__ = ["export_cnn", "validate"]
