"""A small U-Net fine-tuned from sparse labels: the CNN alternative to the forest.

Axes: an image is ``(*stack, *spatial)`` plus an optional channel axis given by
``channel_axis``; ``spatial`` has ``config.dims`` axes (1, 2 or 3) and leading
*stack* axes are processed plane by plane, as in :class:`PixelClassifier`.
Labels have the shape ``(*stack, *spatial)``: 0 = unlabelled (ignored by the
loss), positive values are classes, kept as given. Probabilities are
``(n_classes, *stack, *spatial)`` float32 in ``classes_`` order.

torch is an optional dependency (``pip install "napari-active-annotator[cnn]"``);
it is imported only when a network is trained, used or loaded, so this module
imports without it.

>>> clf = CNNClassifier(epochs=20).fit(image, labels)               # doctest: +SKIP
>>> proba = clf.predict_proba(image)                                # doctest: +SKIP
>>> clf.save("nuclei.aacnn"); CNNClassifier.load("nuclei.aacnn")    # doctest: +SKIP

File format (suffix ``.aacnn``): one safetensors file, written and read by
:mod:`active_annotator.persistence` (``save_cnn``, ``load_cnn``, ``is_cnn_file``;
re-exported here). Loading never unpickles and never executes anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._estimator import Estimator
from .classifier import check_labels, split_axes
from .errors import (
    AnnotatorError,
    Cancelled,
    InputError,
    LabelError,
    ModelMismatchError,
    NotFittedError,
)

# the .aacnn format lives with every model file format; these names stay importable from here
from .persistence import (  # noqa: F401
    CNN_FORMAT,
    CNN_SCHEMA_VERSION,
    CNN_SUFFIX,
    is_cnn_file,
    load_cnn,
    save_cnn,
)
from .scale import predict_dask  # noqa: F401  # forests and CNNs share one dask path

ProgressInfoCallback = Callable[[dict], None]
ProgressCallback = Callable[[int, int], None]
StopCallback = Callable[[], bool]


class MissingDependencyError(AnnotatorError, ImportError):
    """torch (or safetensors) is needed for the CNN but not installed."""


def _require_torch():
    try:
        import safetensors  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            f"The CNN needs PyTorch and safetensors ({e.name} is missing). Install them with: "
            'pip install "napari-active-annotator[cnn]"'
        ) from None
    import torch

    return torch


# -- configuration --------------------------------------------------------------

_DEFAULT_PATCH = {1: 512, 2: 48, 3: 32}
_DEFAULT_TILE = {1: 16384, 2: 256, 3: 96}


@dataclass
class CNNConfig:
    """Everything that defines a CNN and how it is trained; JSON-serialisable.

    Fields marked *learned* are filled in by :meth:`CNNClassifier.fit` and saved
    with the model; leave them None. The other fields are
    :class:`CNNClassifier`'s parameters (``CNNClassifier(**fields)`` or
    :meth:`CNNClassifier.from_config`); this is the model file's record of them.

    Parameters
    ----------
    dims : 1, 2 or 3
        Spatial dimensions the network convolves over.
    widths : list of int
        Feature channels per level, finest first; ``len(widths) == depth + 1``.
    depth : int
        Number of poolings (each halves the resolution).
    dropout : float
        Dropout rate in the bottleneck and decoder (also used by MC dropout).
    epochs : int
        Fine-tuning epochs on the labels (an upper bound with early stopping).
    batches_per_epoch : int
        Sparse labels have no natural epoch; an epoch is this many batches.
    batch_size, patch_size : int
        Patches per batch and patch edge in pixels (None: 512 in 1-D, 48 in
        2-D, 32 in 3-D). Patches are centred near labelled pixels, balanced
        over classes.
    learning_rate, weight_decay : float
        Adam settings.
    flips, rot90 : bool
        Random flips along every axis; random 90-degree rotations (2-D/3-D).
    intensity_jitter : float
        Random gain ``1 ± j`` and offset ``N(0, j)`` on the normalised image.
    patience : int
        Stop when the validation loss has not improved for this many epochs
        (0: never stop early). The best epoch's weights are kept.
    validation_fraction : float
        Fraction of each class's label strokes (connected components) held out
        for validation; a class with a single stroke keeps it for training.
    warm_start_epochs : int
        Epochs distilling the forest's probabilities over the whole image
        before fine-tuning (only when ``warm_start_proba`` is given to fit).
    distill_weight : float
        Weight of the distillation loss kept during fine-tuning (0: off).
    seed : int
        Seed for initialisation, patch sampling, augmentation and dropout.
    tile_size : int or None
        Prediction tile edge (None: 16384 in 1-D, 256 in 2-D, 96 in 3-D).
    in_channels, n_classes, classes, norm_mean, norm_std : learned
    """

    dims: int = 2
    widths: list = field(default_factory=lambda: [16, 32, 64])
    depth: int = 2
    dropout: float = 0.1
    epochs: int = 20
    batches_per_epoch: int = 10
    batch_size: int = 8
    patch_size: int | None = None
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    flips: bool = True
    rot90: bool = True
    intensity_jitter: float = 0.1
    patience: int = 8
    validation_fraction: float = 0.25
    warm_start_epochs: int = 8
    distill_weight: float = 0.0
    seed: int = 0
    tile_size: int | None = None
    # learned
    in_channels: int | None = None
    n_classes: int | None = None
    classes: list | None = None
    norm_mean: list | None = None
    norm_std: list | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CNNConfig:
        """Build from :meth:`to_dict` output; raises :class:`InputError` on unknown keys or bad values."""
        if not isinstance(d, dict):
            raise InputError(f"A CNN config must be a JSON object, got {type(d).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"Unknown CNN config keys {sorted(unknown)}; valid: {sorted(names)}.")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> CNNConfig:
        def _int(name, lo, hi=10**9, none=False):
            v = getattr(self, name)
            if none and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise InputError(f"CNN setting {name} must be an integer from {lo} to {hi}, got {v!r}.")

        def _float(name, lo, hi):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not lo <= v <= hi:
                raise InputError(f"CNN setting {name} must be a number from {lo} to {hi}, got {v!r}.")

        _int("dims", 1, 3)
        _int("depth", 0, 6)
        if (not isinstance(self.widths, (list, tuple)) or len(self.widths) != self.depth + 1
                or not all(isinstance(w, (int, np.integer)) and 1 <= w <= 1024 for w in self.widths)):
            raise InputError(
                f"CNN widths must be depth+1 = {self.depth + 1} integers from 1 to 1024, got {self.widths!r}."
            )
        self.widths = [int(w) for w in self.widths]
        _float("dropout", 0.0, 0.9)
        _int("epochs", 0, 100000)
        _int("batches_per_epoch", 1, 100000)
        _int("batch_size", 1, 4096)
        _int("patch_size", 2 ** self.depth, 1 << 20, none=True)
        if self.patch_size is not None and self.patch_size % (2 ** self.depth):
            raise InputError(f"patch_size must be a multiple of 2**depth = {2 ** self.depth}, got {self.patch_size}.")
        _float("learning_rate", 1e-7, 1.0)
        _float("weight_decay", 0.0, 1.0)
        for name in ("flips", "rot90"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"CNN setting {name} must be true or false, got {getattr(self, name)!r}.")
        _float("intensity_jitter", 0.0, 1.0)
        _int("patience", 0, 100000)
        _float("validation_fraction", 0.0, 0.9)
        _int("warm_start_epochs", 0, 100000)
        _float("distill_weight", 0.0, 100.0)
        _int("seed", 0, 2**63 - 1)
        _int("tile_size", 2 ** self.depth, 1 << 22, none=True)
        _int("in_channels", 1, 4096, none=True)
        _int("n_classes", 2, 65535, none=True)
        if self.classes is not None:
            if (not isinstance(self.classes, list) or len(self.classes) != self.n_classes
                    or not all(isinstance(c, int) and c > 0 for c in self.classes)
                    or sorted(set(self.classes)) != self.classes):
                raise InputError(f"CNN classes must be n_classes sorted positive integers, got {self.classes!r}.")
        for name in ("norm_mean", "norm_std"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, list) or len(v) != self.in_channels
                                  or not all(isinstance(a, (int, float)) and math.isfinite(a) for a in v)):
                raise InputError(f"CNN {name} must be in_channels finite numbers, got {v!r}.")
        return self

    @property
    def patch(self) -> int:
        return int(self.patch_size or _DEFAULT_PATCH[self.dims])

    @property
    def tile(self) -> int:
        return int(self.tile_size or _DEFAULT_TILE[self.dims])

    @property
    def multiple(self) -> int:
        """Total pooling factor: tile and patch edges are multiples of it."""
        return 2 ** self.depth

    @property
    def halo(self) -> int:
        """Context in pixels each side of a tile (covers the receptive field)."""
        return max(16, 8 * self.multiple)


# -- helpers --------------------------------------------------------------------


def _planes(image: np.ndarray, channel_axis, dims: int):
    """``(n_planes, C, *spatial)`` float32 and the stack shape."""
    stack, spatial, n_ch = split_axes(image.shape, dims, channel_axis)
    img = np.asarray(image)
    if channel_axis is None:
        img = img[..., np.newaxis]
    else:
        img = np.moveaxis(img, channel_axis, -1)
    img = img.reshape((-1,) + tuple(spatial) + (n_ch,))
    # always a copy: callers normalise it in place
    return np.array(np.moveaxis(img, -1, 1), dtype=np.float32, order="C", copy=True), stack, spatial, n_ch


def _resolve_device(device: str):
    torch = _require_torch()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise InputError(f"Unknown device {device!r} ({e}); use 'auto', 'cpu' or 'cuda'.") from None


@contextlib.contextmanager
def _threads(n: int | None):
    """Limit torch's intra-op threads (shared machines, napari's own threads)."""
    torch = _require_torch()
    old = torch.get_num_threads()
    try:
        avail = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        avail = os.cpu_count() or 1
    torch.set_num_threads(max(1, min(old, avail) if n is None else int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _split_by_component(index: np.ndarray, fraction: float, rng: np.random.Generator):
    """Split class-index labels (-1 = none) into train and validation by stroke.

    Whole connected components (full connectivity) go to validation, so a
    validation pixel never has a training neighbour from the same stroke.
    """
    from scipy import ndimage as ndi

    train = index.copy()
    val = np.full_like(index, -1)
    if fraction <= 0:
        return train, val
    struct_el = ndi.generate_binary_structure(index.ndim, index.ndim)
    for k in np.unique(index[index >= 0]):
        comp, n = ndi.label(index == k, struct_el)
        n_val = min(n - 1, int(round(fraction * n)))
        if n >= 2:
            n_val = max(n_val, 1)
        if n_val <= 0:
            continue
        chosen = rng.permutation(n)[:n_val] + 1
        m = np.isin(comp, chosen)
        val[m] = k
        train[m] = -1
    return train, val


def _pad_to(arr: np.ndarray, min_size: int, n_lead: int, mode: str, value=0):
    """Pad trailing spatial axes (after ``n_lead`` leading ones) up to ``min_size``."""
    pads = [(0, 0)] * n_lead + [(0, max(0, min_size - n)) for n in arr.shape[n_lead:]]
    if not any(p[1] for p in pads):
        return arr
    if mode == "constant":
        return np.pad(arr, pads, mode="constant", constant_values=value)
    return np.pad(arr, pads, mode=mode)


# -- the classifier -------------------------------------------------------------


_LEARNED_FIELDS = ("in_channels", "n_classes", "classes", "norm_mean", "norm_std")


def _config_params(config: CNNConfig | None) -> dict:
    """The training fields of ``config`` as :class:`CNNClassifier` keyword arguments."""
    if config is None:
        return {}
    if not isinstance(config, CNNConfig):
        raise InputError(f"config must be a CNNConfig, got {type(config).__name__}.")
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(CNNConfig)
            if f.name not in _LEARNED_FIELDS}


class _AcceptsConfig(type):
    """Keeps the older ``CNNClassifier(config, device=..., n_threads=...)`` call working.

    The parameters are now flat keyword arguments (the scikit-learn contract);
    a :class:`CNNConfig` given positionally or as ``config=`` is unpacked into
    them, with a :class:`DeprecationWarning`.
    """

    def __call__(cls, *args, **kwargs):
        if args or "config" in kwargs:
            if len(args) > 1 or (args and "config" in kwargs):
                raise TypeError("CNNClassifier takes one CNNConfig at most; give the other settings by keyword.")
            config = args[0] if args else kwargs.pop("config")
            warnings.warn(
                "CNNClassifier(config) is deprecated: give the settings as keyword arguments, "
                "e.g. CNNClassifier(epochs=20, device='cpu'), or use CNNClassifier.from_config(config).",
                DeprecationWarning, stacklevel=2)
            kwargs = {**_config_params(config), **kwargs}
        return super().__call__(**kwargs)


class CNNClassifier(Estimator, metaclass=_AcceptsConfig):
    """Small U-Net pixel classifier trained from sparse labels.

    Parameters
    ----------
    dims, widths, depth, dropout, epochs, batches_per_epoch, batch_size, \
patch_size, learning_rate, weight_decay, flips, rot90, intensity_jitter, \
patience, validation_fraction, warm_start_epochs, distill_weight, seed, tile_size :
        Architecture and training settings, as documented in
        :class:`CNNConfig` (same names, same defaults). Checked at :meth:`fit`.
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
    n_threads : int or None
        torch CPU threads during fit/predict (None: at most the cores this
        process may use); restored afterwards.

    Attributes
    ----------
    config : CNNConfig
        Read-only: the parameters as a :class:`CNNConfig` (learned fields None).
    config_ : CNNConfig
        The settings used, with the learned fields filled in.
    classes_ : ndarray
        Class values, the rows of ``predict_proba``.
    net_ : torch.nn.Module
    history_ : dict of lists
        Per epoch: ``phase`` ("warm_start"/"finetune"), ``epoch``,
        ``train_loss``, ``val_loss`` (None without validation strokes).
    best_epoch_ : int or None
        Fine-tuning epoch whose weights were kept (early stopping).
    fit_time_s_ : float
    """

    def __init__(self, *, dims: int = 2, widths=(16, 32, 64), depth: int = 2, dropout: float = 0.1,
                 epochs: int = 20, batches_per_epoch: int = 10, batch_size: int = 8,
                 patch_size: int | None = None, learning_rate: float = 3e-3, weight_decay: float = 1e-4,
                 flips: bool = True, rot90: bool = True, intensity_jitter: float = 0.1, patience: int = 8,
                 validation_fraction: float = 0.25, warm_start_epochs: int = 8, distill_weight: float = 0.0,
                 seed: int = 0, tile_size: int | None = None, device: str = "auto",
                 n_threads: int | None = None):
        self.dims = dims
        self.widths = widths
        self.depth = depth
        self.dropout = dropout
        self.epochs = epochs
        self.batches_per_epoch = batches_per_epoch
        self.batch_size = batch_size
        self.patch_size = patch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.flips = flips
        self.rot90 = rot90
        self.intensity_jitter = intensity_jitter
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.warm_start_epochs = warm_start_epochs
        self.distill_weight = distill_weight
        self.seed = seed
        self.tile_size = tile_size
        self.device = device
        self.n_threads = n_threads

    @classmethod
    def from_config(cls, config: CNNConfig | None = None, **params) -> CNNClassifier:
        """A classifier with ``config``'s training settings; ``params`` (e.g. ``device``) override them."""
        return cls(**{**_config_params(config), **params})

    @property
    def config(self) -> CNNConfig:
        """The parameters as a :class:`CNNConfig` (a new object; learned fields None)."""
        d = {name: getattr(self, name) for name in _config_params(CNNConfig())}
        if isinstance(d["widths"], (list, tuple)):
            d["widths"] = list(d["widths"])
        return CNNConfig(**d)

    def __repr__(self) -> str:
        return f"CNNClassifier({self._params_repr()})"

    def _check_fitted(self):
        if not hasattr(self, "net_"):
            raise NotFittedError("This CNNClassifier is not trained yet; call fit(image, labels) or load a file.")

    @property
    def halo(self) -> int:
        """Pixels of context a prediction needs each side (for dask ``map_overlap`` depth)."""
        return (self.config_ if hasattr(self, "config_") else self.config).halo

    # -- training ----------------------------------------------------------------
    def fit(self, image, labels, channel_axis: int | None = None, warm_start_proba=None,
            warm_start_classes=None, on_progress: ProgressInfoCallback | None = None,
            should_stop: StopCallback | None = None) -> CNNClassifier:
        """Train on the labelled pixels of ``image``; unlabelled pixels (0) are ignored.

        Parameters
        ----------
        image : array ``(*stack, *spatial)`` with an optional channel axis
        labels : integer array ``(*stack, *spatial)``; 0 = unlabelled
        channel_axis : int or None
        warm_start_proba : float array ``(K, *stack, *spatial)``, optional
            Probabilities of another model (the forest's ``predict_proba``) to
            distil for ``warm_start_epochs`` epochs before fine-tuning.
        warm_start_classes : sequence of int, optional
            Class values of the rows of ``warm_start_proba`` (default: the
            labelled classes); must equal the labelled classes.
        on_progress : callable(info: dict), optional
            Called after every batch (``info["event"] == "batch"``) and every
            epoch (``"epoch"``) with keys ``phase``, ``epoch``, ``epochs``,
            ``batch``, ``batches``, ``train_loss``, ``val_loss``, ``elapsed_s``.
            Runs in the training thread: keep it short (e.g. emit a signal).
        should_stop : callable() -> bool, optional
            Checked before every batch and every validation pass; True stops
            with :class:`~active_annotator.errors.Cancelled` and leaves the
            classifier unchanged.

        Returns
        -------
        self
        """
        torch = _require_torch()
        from . import cnn_net

        t0 = time.perf_counter()
        cfg = CNNConfig.from_dict(self.config.to_dict())
        cfg.in_channels = cfg.n_classes = cfg.classes = cfg.norm_mean = cfg.norm_std = None
        image = np.asarray(image)
        x, stack, spatial, n_ch = _planes(image, channel_axis, cfg.dims)
        labels = check_labels(labels, stack + spatial)
        classes = np.unique(labels[labels > 0])
        if classes.size < 2:
            raise LabelError(
                f"Only {classes.size} class(es) labelled; paint at least two classes "
                "(e.g. 1 = background, 2 = object) before training the CNN."
            )
        # normalisation from the image itself, stored so prediction repeats it
        mean = x.mean(axis=tuple(i for i in range(x.ndim) if i != 1), dtype=np.float64)
        std = x.std(axis=tuple(i for i in range(x.ndim) if i != 1), dtype=np.float64)
        std = np.where(std > 1e-8, std, 1.0)
        x -= mean.astype(np.float32).reshape((1, -1) + (1,) * cfg.dims)
        x /= std.astype(np.float32).reshape((1, -1) + (1,) * cfg.dims)
        cfg.in_channels, cfg.n_classes = int(n_ch), int(classes.size)
        cfg.classes = [int(c) for c in classes]
        cfg.norm_mean, cfg.norm_std = [float(m) for m in mean], [float(s) for s in std]

        index = np.full(labels.shape, -1, np.int64)
        m = labels > 0
        index[m] = np.searchsorted(classes, labels[m])
        index = index.reshape((-1,) + tuple(spatial))
        rng = np.random.default_rng(cfg.seed)
        train_idx, val_idx = _split_by_component(index, cfg.validation_fraction, rng)

        soft = None
        if warm_start_proba is not None:
            soft = self._check_warm_start(warm_start_proba, warm_start_classes, classes, stack, spatial)

        P = cfg.patch
        x = _pad_to(x, P, 2, "symmetric")
        train_idx_p = _pad_to(train_idx, P, 1, "constant", -1)
        if soft is not None:
            soft = _pad_to(soft, P, 2, "symmetric")
        device = _resolve_device(self.device)

        history = {"phase": [], "epoch": [], "train_loss": [], "val_loss": []}
        with _threads(self.n_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = cnn_net.build_net(cfg.dims, n_ch, cfg.n_classes, cfg.widths, cfg.dropout).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            xt = torch.from_numpy(x)
            train_t = torch.from_numpy(train_idx_p)
            soft_t = torch.from_numpy(soft) if soft is not None else None
            coords = [np.argwhere(train_idx_p == k) for k in range(cfg.n_classes)]
            coords = [c for c in coords if len(c)]
            val_crops = self._validation_crops(x, val_idx, cfg)

            phases = []
            if soft is not None and cfg.warm_start_epochs > 0:
                phases.append(("warm_start", cfg.warm_start_epochs))
            phases.append(("finetune", cfg.epochs))
            best = (math.inf, None, None)  # val loss, epoch, state
            for phase, n_epochs in phases:
                stale = 0
                for epoch in range(1, n_epochs + 1):
                    net.train()
                    losses = []
                    for b in range(1, cfg.batches_per_epoch + 1):
                        if should_stop is not None and should_stop():
                            raise Cancelled("CNN training was cancelled.")
                        if phase == "warm_start":
                            corners = self._random_corners(xt.shape, cfg.batch_size, P, rng)
                        else:
                            corners = self._label_corners(coords, xt.shape, cfg.batch_size, P, rng)
                        xb, yb, sb = self._gather(xt, train_t, soft_t, corners, P, cfg.dims)
                        if phase == "warm_start":
                            xb, sb = cnn_net.augment(xb, sb, rng, cfg.flips, cfg.rot90, cfg.intensity_jitter)
                            loss = cnn_net.soft_cross_entropy(net(xb.to(device)), sb.to(device))
                        else:
                            if sb is not None and cfg.distill_weight > 0:
                                # augment image, hard and soft targets together
                                both = torch.cat([yb[:, None].float(), sb], 1)
                                xb, both = cnn_net.augment(xb, both, rng, cfg.flips, cfg.rot90, cfg.intensity_jitter)
                                yb, sb = both[:, 0].long(), both[:, 1:]
                                logits = net(xb.to(device))
                                loss = cnn_net.sparse_cross_entropy(logits, yb.to(device))
                                loss = loss + cfg.distill_weight * cnn_net.soft_cross_entropy(logits, sb.to(device))
                            else:
                                xb, yb = cnn_net.augment(xb, yb, rng, cfg.flips, cfg.rot90, cfg.intensity_jitter)
                                loss = cnn_net.sparse_cross_entropy(net(xb.to(device)), yb.to(device))
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        losses.append(float(loss.detach()))
                        if on_progress is not None:
                            on_progress({
                                "event": "batch", "phase": phase, "epoch": epoch, "epochs": n_epochs,
                                "batch": b, "batches": cfg.batches_per_epoch, "train_loss": losses[-1],
                                "val_loss": None, "elapsed_s": time.perf_counter() - t0,
                            })
                    val_loss = None
                    if phase == "finetune" and val_crops:
                        if should_stop is not None and should_stop():
                            raise Cancelled("CNN training was cancelled.")
                        val_loss = self._val_loss(net, val_crops, cfg, device)
                    train_loss = float(np.mean(losses))
                    for k, v in (("phase", phase), ("epoch", epoch), ("train_loss", train_loss), ("val_loss", val_loss)):
                        history[k].append(v)
                    if on_progress is not None:
                        on_progress({
                            "event": "epoch", "phase": phase, "epoch": epoch, "epochs": n_epochs,
                            "batch": cfg.batches_per_epoch, "batches": cfg.batches_per_epoch,
                            "train_loss": train_loss, "val_loss": val_loss,
                            "elapsed_s": time.perf_counter() - t0,
                        })
                    if val_loss is not None:
                        if val_loss < best[0] - 1e-4:
                            state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                            best = (val_loss, epoch, state)
                            stale = 0
                        else:
                            stale += 1
                            if cfg.patience and stale >= cfg.patience:
                                break
            if best[2] is not None:
                net.load_state_dict(best[2])
        net.eval()
        self.config_ = cfg
        self.classes_ = classes
        self.net_ = net
        self.history_ = history
        self.best_epoch_ = best[1]
        self.device_ = device
        self.fit_time_s_ = time.perf_counter() - t0
        return self

    @staticmethod
    def _check_warm_start(proba, warm_classes, classes, stack, spatial):
        proba = np.asarray(proba, dtype=np.float32)
        want = (len(classes),) + tuple(stack) + tuple(spatial)
        if proba.shape != want:
            raise InputError(
                f"warm_start_proba has shape {proba.shape}; expected {want} (one row per "
                f"labelled class {list(map(int, classes))}, then the image's non-channel shape)."
            )
        if warm_classes is not None and [int(c) for c in warm_classes] != [int(c) for c in classes]:
            raise InputError(
                f"warm_start_proba is for classes {list(map(int, warm_classes))} but the labels have "
                f"classes {list(map(int, classes))}; retrain the forest on the same labels."
            )
        soft = proba.reshape((proba.shape[0], -1) + tuple(spatial))
        soft = np.clip(np.moveaxis(soft, 0, 1), 0, None)
        soft /= np.maximum(soft.sum(1, keepdims=True), 1e-12)
        return np.ascontiguousarray(soft)

    @staticmethod
    def _random_corners(shape, n, P, rng):
        planes = rng.integers(shape[0], size=n)
        starts = [rng.integers(0, s - P + 1, size=n) for s in shape[2:]]
        return [(int(p),) + tuple(int(s[i]) for s in starts) for i, p in enumerate(planes)]

    @staticmethod
    def _label_corners(coords, shape, n, P, rng):
        """Patch corners so each patch holds a labelled pixel; classes drawn evenly."""
        out = []
        for _ in range(n):
            c = coords[int(rng.integers(len(coords)))]
            pix = c[int(rng.integers(len(c)))]
            corner = [int(pix[0])]
            for a, s in enumerate(shape[2:]):
                corner.append(int(np.clip(pix[a + 1] - rng.integers(P), 0, s - P)))
            out.append(tuple(corner))
        return out

    @staticmethod
    def _gather(xt, yt, st, corners, P, dims):
        torch = _require_torch()
        xs, ys, ss = [], [], []
        for c in corners:
            sl = tuple(slice(s, s + P) for s in c[1:])
            xs.append(xt[(c[0], slice(None)) + sl])
            ys.append(yt[(c[0],) + sl])
            if st is not None:
                ss.append(st[(c[0], slice(None)) + sl])
        return torch.stack(xs), torch.stack(ys), (torch.stack(ss) if ss else None)

    @staticmethod
    def _validation_crops(x, val_idx, cfg):
        """(image crop, target crop) around each validation stroke, with context."""
        from scipy import ndimage as ndi

        crops = []
        if not (val_idx >= 0).any():
            return crops
        ctx = cfg.halo
        for p in range(val_idx.shape[0]):
            m = val_idx[p] >= 0
            if not m.any():
                continue
            comp, n = ndi.label(m, ndi.generate_binary_structure(m.ndim, m.ndim))
            boxes = ndi.find_objects(comp)
            total = sum(math.prod(min(sz, s.stop + ctx) - max(0, s.start - ctx) for s, sz in zip(b, m.shape)) for b in boxes)
            if total > 0.5 * m.size:  # cheaper to run the whole plane once
                boxes = [tuple(slice(0, sz) for sz in m.shape)]
            for b in boxes:
                sl = tuple(slice(max(0, s.start - ctx), min(sz, s.stop + ctx)) for s, sz in zip(b, m.shape))
                crops.append((x[(p, slice(None)) + sl], val_idx[(p,) + sl]))
        return crops

    @staticmethod
    def _val_loss(net, crops, cfg, device):
        torch = _require_torch()
        import torch.nn.functional as F

        from . import cnn_net

        net.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for img, tgt in crops:
                logits = cnn_net.tiled(net, img, cfg.n_classes, 1 << 22, 0, cfg.multiple, device)
                t = torch.from_numpy(tgt)[None]
                lt = torch.from_numpy(logits)[None]
                n = int((t >= 0).sum())
                total += float(F.cross_entropy(lt, t, ignore_index=-1, reduction="sum"))
                count += n
        net.train()
        return total / max(count, 1)

    # -- prediction --------------------------------------------------------------
    def check_image(self, image_shape, channel_axis):
        """Raise :class:`ModelMismatchError` if an image does not fit the trained model."""
        self._check_fitted()
        cfg = self.config_
        try:
            stack, spatial, n_ch = split_axes(image_shape, cfg.dims, channel_axis)
        except InputError as e:
            raise ModelMismatchError(str(e)) from None
        if n_ch != cfg.in_channels:
            raise ModelMismatchError(
                f"The CNN was trained on images with {cfg.in_channels} channel(s), but this image has "
                f"{n_ch} (shape {tuple(image_shape)}, channel_axis={channel_axis}). Use an image with "
                "the same channels, or retrain."
            )
        return stack, spatial

    def _run(self, image, channel_axis, out_channels, fn, on_progress, should_stop, mc_dropout=False):
        """Apply ``fn(net, tile) -> tensor`` over every plane, tiled; ``(out, *stack, *spatial)``."""
        torch = _require_torch()
        from . import cnn_net

        image = np.asarray(image)
        stack, spatial = self.check_image(image.shape, channel_axis)
        cfg = self.config_
        x, _, _, _ = _planes(image, channel_axis, cfg.dims)
        x -= np.asarray(cfg.norm_mean, np.float32).reshape((1, -1) + (1,) * cfg.dims)
        x /= np.asarray(cfg.norm_std, np.float32).reshape((1, -1) + (1,) * cfg.dims)
        device = self.device_ if hasattr(self, "device_") else _resolve_device(self.device)
        net = self.net_.to(device)
        net.eval()
        if mc_dropout:
            for mod in net.modules():
                if isinstance(mod, torch.nn.Dropout):
                    mod.train()
        out = np.empty((out_channels, x.shape[0]) + tuple(spatial), np.float32)
        n_planes = x.shape[0]
        try:
            with _threads(self.n_threads), torch.no_grad():
                for p in range(n_planes):
                    def tick(done, total, p=p):
                        if on_progress is not None:
                            on_progress(p * total + done, n_planes * total)

                    out[:, p] = cnn_net.tiled(lambda t: fn(net, t), x[p], out_channels, cfg.tile, cfg.halo,
                                              cfg.multiple, device, should_stop, tick)
        finally:
            net.eval()
        return out.reshape((out_channels,) + tuple(stack) + tuple(spatial))

    def predict_proba(self, image, channel_axis: int | None = None,
                      on_progress: ProgressCallback | None = None,
                      should_stop: StopCallback | None = None) -> np.ndarray:
        """Class probabilities ``(n_classes, *stack, *spatial)`` float32, rows in ``classes_`` order.

        Large images are predicted in overlapping tiles (``config.tile_size``
        with ``halo`` pixels of context each side), so memory is bounded by
        the tile. ``on_progress(done, total)`` is called per tile.
        """
        return self._run(image, channel_axis, self.config_.n_classes if hasattr(self, "config_") else 0,
                         lambda net, t: net(t).softmax(1), on_progress, should_stop)

    def predict(self, image, channel_axis: int | None = None,
                on_progress: ProgressCallback | None = None,
                should_stop: StopCallback | None = None) -> np.ndarray:
        """Class value of every pixel ``(*stack, *spatial)`` (smallest unsigned dtype that holds them)."""
        proba = self.predict_proba(image, channel_axis, on_progress, should_stop)
        dtype = np.min_scalar_type(int(self.classes_.max()))
        return self.classes_.astype(dtype)[np.argmax(proba, axis=0)]

    def mc_dropout_uncertainty(self, image, n: int = 10, channel_axis: int | None = None,
                               seed: int | None = 0, on_progress: ProgressCallback | None = None,
                               should_stop: StopCallback | None = None):
        """Monte-Carlo dropout: ``n`` stochastic passes with dropout left on.

        Returns
        -------
        proba : float32 ``(n_classes, *stack, *spatial)``, the mean over passes
        uncertainty : float32 ``(*stack, *spatial)`` in [0, 1], the mutual
            information between prediction and weights (BALD) divided by
            ``log(n_classes)``: high where the passes disagree.
        """
        torch = _require_torch()
        self._check_fitted()
        if self.config_.dropout <= 0:
            raise InputError("This CNN has no dropout (dropout=0), so MC dropout gives no uncertainty; retrain with dropout > 0.")
        if not (isinstance(n, int) and n >= 2):
            raise InputError(f"n must be an integer >= 2 passes, got {n!r}.")
        K = self.config_.n_classes
        mean = None
        mean_ent = None
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            for i in range(n):
                def tick(done, total, i=i):
                    if on_progress is not None:
                        on_progress(i * total + done, n * total)

                p = self._run(image, channel_axis, K, lambda net, t: net(t).softmax(1), tick, should_stop,
                              mc_dropout=True)
                ent = -(p * np.log(np.clip(p, 1e-12, 1))).sum(0)
                mean = p if mean is None else mean + p
                mean_ent = ent if mean_ent is None else mean_ent + ent
        mean /= n
        mean_ent /= n
        total_ent = -(mean * np.log(np.clip(mean, 1e-12, 1))).sum(0)
        mi = np.clip((total_ent - mean_ent) / np.log(K), 0, 1).astype(np.float32)
        return mean.astype(np.float32), mi

    def embed(self, image, channel_axis: int | None = None, layer: str = "hidden",
              on_progress: ProgressCallback | None = None,
              should_stop: StopCallback | None = None) -> np.ndarray:
        """Per-pixel network features ``(n_features, *stack, *spatial)`` float32.

        ``layer="hidden"``: the last hidden layer (``widths[0]`` features, full
        resolution); ``"bottleneck"``: the coarsest level (``widths[-1]``
        features), repeated to full resolution.
        """
        torch = _require_torch()
        self._check_fitted()
        cfg = self.config_
        if layer == "hidden":
            d = cfg.widths[0]

            def fn(net, t):
                return net(t, features=True)[1]
        elif layer == "bottleneck":
            d = cfg.widths[-1]

            def fn(net, t):
                b = net(t, features=True)[2]
                return torch.nn.functional.interpolate(b, size=t.shape[2:], mode="nearest")
        else:
            raise InputError(f"layer must be 'hidden' or 'bottleneck', got {layer!r}.")
        return self._run(image, channel_axis, d, fn, on_progress, should_stop)

    def embed_regions(self, image, regions, channel_axis: int | None = None, layer: str = "hidden",
                      embedding: np.ndarray | None = None) -> np.ndarray:
        """One descriptor per region: the mean embedding over it, ``(n_regions, n_features)``.

        ``regions`` is a list of tuples of slices over ``(*stack, *spatial)``
        (candidate patches or windows). Pass ``embedding`` (from :meth:`embed`)
        to reuse one computed before.
        """
        emb = self.embed(image, channel_axis, layer) if embedding is None else np.asarray(embedding)
        out = np.empty((len(regions), emb.shape[0]), np.float32)
        for i, r in enumerate(regions):
            block = emb[(slice(None),) + tuple(r)]
            if block[0].size == 0:
                raise InputError(f"Region {i} ({r}) selects no pixels of an image of shape {emb.shape[1:]}.")
            out[i] = block.reshape(emb.shape[0], -1).mean(1)
        return out

    # -- persistence ---------------------------------------------------------------
    def save(self, path) -> Path:
        """Write weights and config to a ``.aacnn`` safetensors file (atomically); returns the path.

        The format is :func:`active_annotator.persistence.save_cnn`'s.
        """
        return save_cnn(self, path)

    @classmethod
    def load(cls, path, device: str = "auto", n_threads: int | None = None) -> CNNClassifier:
        """Load a ``.aacnn`` file; never unpickles. Bad files raise :class:`ModelFileError`."""
        return load_cnn(path, device=device, n_threads=n_threads)


__all__ = [
    "CNNClassifier",
    "CNNConfig",
    "CNN_SUFFIX",
    "MissingDependencyError",
    "is_cnn_file",
    "load_cnn",
    "predict_dask",
]
