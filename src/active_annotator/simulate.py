"""Simulated annotation: compare sampling strategies as learning curves.

An oracle annotator labels the suggested candidates from a ground-truth mask,
round after round; the classifier is retrained every round and scored on
pixels nobody labels. The result is Jaccard against labelled pixels per
strategy, over several seeds, and the number of labelled pixels each strategy
needs to reach 95 % of the Jaccard of dense labelling.

The protocol (identical for every strategy, so the comparison is fair):

* **Regions.** The image is cut in two along its longest spatial axis: the
  first ``1 - holdout`` part is the *annotation region* (candidates, labels),
  the rest the *test region* (scoring only; never labelled). Features are
  computed once on the whole image (they depend on the image, not on labels).
* **Start.** For each seed, one dab per class at a random pixel of that class
  in the annotation region (the same start for every strategy of that seed).
* **Oracle.** For each suggested candidate the oracle paints dabs of a small
  brush: the pixels of a disk (ball in 3-D) of ``radius`` pixels around a
  centre pixel that have the centre's true class and lie in the candidate
  (with radius 2 at most 13 pixels in 2-D, 33 in 3-D: one click of a small
  brush). People paint inside a region, not on its ambiguous border, so
  centres prefer pixels up to ``radius + 1`` pixels deep inside their class.
  Three modes, the same for every strategy of a run:

  - ``classes`` (default): one dab on each class the candidate shows, each at
    a random pixel of that class. A person shown a place paints a quick
    stroke on each kind of thing in it, without studying the prediction.
  - ``passive``: one dab at a random pixel of the candidate.
  - ``correct``: one dab on the worst visible mistake: among the
    misclassified unlabelled pixels (all of them if there is none), the
    deepest, then the most wrong (lowest probability of the true class).
    This annotator searches the candidate for the model's errors itself, so
    even randomly placed candidates get labelled where the model is weakest.
* **Score.** Jaccard of the prediction in the test region against the truth,
  for the foreground class when there are two classes (the larger value, e.g.
  2 = nucleus) and averaged over classes otherwise.
* **Dense reference.** The same classifier trained on *every* truth pixel of
  the annotation region and scored on the test region: what labelling all of
  the annotation region would give. Training and scoring on the same pixels
  would measure memorisation (a forest scores ~1.0 on its own training
  pixels), not what labelling buys.
* **Target.** ``0.95 x`` dense Jaccard; a strategy's *pixels to target* is the
  labelled-pixel count of the first round at which it reaches the target,
  per seed; the summary reports the mean over seeds.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from . import candidates as cand
from .classifier import PixelClassifier
from .errors import InputError
from .features import FeatureSet, compute
from .sampling import STRATEGIES, suggest

DEFAULT_PATCH = {1: 256, 2: 32, 3: 8}
ORACLE_MODES = ("correct", "passive", "classes", "stroke")


def _ball(radius: int, ndim: int) -> np.ndarray:
    r = int(radius)
    grid = np.indices((2 * r + 1,) * ndim) - r
    return (grid ** 2).sum(axis=0) <= r * r


@dataclass
class Oracle:
    """Labels a candidate from the truth the way a person would: a dab of a small brush.

    Parameters
    ----------
    radius : int
        Brush radius in pixels: the dab is a disk (ball in 3-D) clipped to the
        true class of its centre pixel and to the candidate.
    mode : {"classes", "passive", "correct"}
        ``classes`` (default): one dab on each class the candidate shows, at a
        random pixel of that class (preferring its inside), ignoring the
        prediction: a person shown a place paints a quick stroke on each kind
        of thing in it. ``passive``: one dab at a random pixel of the
        candidate, ignoring the prediction. ``correct``: one dab on the worst
        visible mistake (see the module docstring); this annotator does the
        searching itself, so it hides what the ranking is worth. ``stroke``:
        like ``classes``, but each mark is a short straight stroke (``4 *
        radius + 1`` px long in a random direction, 3 px wide, clipped to the
        class and the candidate), as people paint. With the ``random``
        strategy, ``classes``, ``stroke`` and ``passive`` are classic random
        sampling.
    seed : int or None
        Random state of the ``passive`` mode.
    """

    radius: int = 2
    mode: str = "classes"
    seed: int | None = 0

    def __post_init__(self):
        if self.mode not in ORACLE_MODES:
            raise InputError(f"Unknown oracle mode {self.mode!r}; choose from {list(ORACLE_MODES)}.")
        if int(self.radius) < 0:
            raise InputError(f"The oracle's brush radius must be >= 0, got {self.radius}.")
        self._rng = np.random.default_rng(self.seed)

    def label(self, candidate: cand.Candidate, truth: np.ndarray, proba: np.ndarray,
              classes: np.ndarray, labels: np.ndarray) -> int:
        """Paint a dab (one per class shown, in ``classes`` mode) inside ``candidate`` (in place).

        Parameters
        ----------
        truth : int array ``(*shape)``, 0 = unknown (never painted)
        proba : float array ``(n_classes, *shape)`` in ``classes`` order
        classes : class values of ``proba``'s rows
        labels : int array ``(*shape)``, modified in place

        Returns
        -------
        Number of newly labelled pixels (0 if the candidate has nothing left).
        """
        key = candidate.key
        t = truth[key]
        lab = labels[key]
        ok = (t != 0) & (lab == 0)
        if candidate.mask is not None:
            ok &= candidate.mask
        if not ok.any():
            return 0
        # probability of the true class at every pixel of the candidate
        row = np.searchsorted(classes, t)
        seen = (row < len(classes)) & (classes[np.minimum(row, len(classes) - 1)] == t)
        p = proba[(slice(None),) + key]
        p_true = np.where(seen, np.take_along_axis(p, np.minimum(row, len(classes) - 1)[None], 0)[0], 0.0)
        wrong = 1.0 - p_true
        # the pixels a person would correct: the visible mistakes, or if there are
        # none, the whole unlabelled candidate
        pool = ok & (p_true < 0.5) if self.mode == "correct" else ok
        if not pool.any():
            pool = ok
        if self.mode in ("passive", "classes", "stroke"):
            # not looking at the prediction: a random pixel, ties below broken at random
            wrong = self._rng.random(t.shape)
        # people paint inside a region, not on its ambiguous border: among the pool,
        # prefer pixels more than `radius` from another class, then the most wrong
        depth = np.zeros(t.shape)
        for k in np.unique(t[t != 0]):
            inside = t == k
            depth[inside] = ndi.distance_transform_edt(inside)[inside]
        key = np.minimum(depth, self.radius + 1) * 2.0 + wrong
        if self.mode in ("classes", "stroke"):
            # one dab on each kind of thing the candidate shows
            return sum(self._dab(t, lab, ok, np.where(pool & (t == k), key, -1.0))
                       for k in np.unique(t[ok]))
        return self._dab(t, lab, ok, np.where(pool, key, -1.0))

    def _dab(self, t, lab, ok, key) -> int:
        """Paint the brush around the best pixel of ``key`` (views of the candidate)."""
        centre = np.unravel_index(int(np.argmax(key)), key.shape)
        if self.mode == "stroke":
            return self._stroke(t, lab, ok, centre)
        ball = _ball(self.radius, t.ndim)
        r = self.radius
        lo = [c - r for c in centre]
        sl_local, sl_ball = [], []
        for a, (l, n) in enumerate(zip(lo, t.shape)):
            s0, s1 = max(l, 0), min(l + 2 * r + 1, n)
            sl_local.append(slice(s0, s1))
            sl_ball.append(slice(s0 - l, s1 - l))
        sl_local, sl_ball = tuple(sl_local), tuple(sl_ball)
        paint = ball[sl_ball] & ok[sl_local] & (t[sl_local] == t[centre])
        lab[sl_local][paint] = t[centre]
        return int(paint.sum())


    def _stroke(self, t, lab, ok, centre) -> int:
        """A straight stroke through ``centre``, 3 px wide, staying in the centre's class."""
        nd = t.ndim
        half = 2 * max(int(self.radius), 1)
        d = self._rng.normal(size=nd)
        d /= np.linalg.norm(d) or 1.0
        steps = np.arange(-half, half + 1)[:, None] * d[None]
        pts = np.rint(np.asarray(centre)[None] + steps).astype(int)
        line = np.zeros(t.shape, bool)
        inside = np.all((pts >= 0) & (pts < np.array(t.shape)), axis=1)
        line[tuple(pts[inside].T)] = True
        line = ndi.binary_dilation(line, ndi.generate_binary_structure(nd, 1))
        # stay in the one region of the centre's class that holds the centre
        same, _ = ndi.label(t == t[centre])
        paint = line & ok & (same == same[centre])
        lab[paint] = t[centre]
        return int(paint.sum())


@dataclass
class SimulationResult:
    """Rows of a simulation (one per strategy, seed and round) and the reference.

    Attributes
    ----------
    rows : list of dict
        ``strategy, seed, round, labelled_pixels, labels_class_<k>, jaccard,
        mean_jaccard, accuracy, seconds``.
    dense_jaccard : float
        Test-region Jaccard of the classifier trained on the whole annotation region.
    target : float
        ``target_fraction * dense_jaccard``.
    settings : dict
    """

    rows: list = field(default_factory=list)
    dense_jaccard: float = float("nan")
    target: float = float("nan")
    settings: dict = field(default_factory=dict)

    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r["strategy"] for r in self.rows))

    def curves(self, strategy: str):
        """``(pixels, jaccard)`` arrays ``(n_seeds, n_rounds + 1)`` of one strategy."""
        rows = [r for r in self.rows if r["strategy"] == strategy]
        seeds = sorted({r["seed"] for r in rows})
        n = max(r["round"] for r in rows) + 1
        px = np.full((len(seeds), n), np.nan)
        jac = np.full((len(seeds), n), np.nan)
        for r in rows:
            i = seeds.index(r["seed"])
            px[i, r["round"]] = r["labelled_pixels"]
            jac[i, r["round"]] = r["jaccard"]
        return px, jac

    def summary(self) -> list[dict]:
        """Per strategy: pixels to reach the target (per seed and mean), final Jaccard, savings.

        ``pixels_to_target``: per seed, labelled pixels at the first round that
        reaches the target; ``pixels_to_stay_at_target``: at the first round
        after which every later round stays at or above it (None if the last
        round is below); ``pixels_to_target_mean_curve``: where the mean curve
        over seeds first reaches it.
        ``pixels_to_target_mean`` is None when some seed never reached the
        target; ``reached`` says how many did. ``savings_vs_random`` is
        random's mean pixels to target divided by this strategy's. When random
        missed the target in some seed, that seed counts with its final pixel
        count (it needs more), which makes the saving a lower bound, marked
        with ``savings_is_lower_bound``; ``pixels_to_target_lower_bound`` is
        that mean.
        """
        out = []
        for s in self.strategies():
            px, jac = self.curves(s)
            per_seed, stay = [], []
            for p, j in zip(px, jac):
                hit = np.flatnonzero(j >= self.target)
                per_seed.append(float(p[hit[0]]) if hit.size else None)
                below = np.flatnonzero(~(j >= self.target))
                first_stay = 0 if below.size == 0 else below[-1] + 1
                stay.append(float(p[first_stay]) if first_stay < len(j) else None)
            reached = [v for v in per_seed if v is not None]
            # a seed that never reached the target needs more than its final count
            bound = [v if v is not None else float(p[~np.isnan(p)][-1]) for v, p in zip(per_seed, px)]
            mean_curve = np.nanmean(jac, axis=0)
            hit = np.flatnonzero(mean_curve >= self.target)
            out.append({
                "strategy": s,
                "seeds": len(per_seed),
                "reached": len(reached),
                "pixels_to_target": per_seed,
                "pixels_to_target_mean": float(np.mean(reached)) if len(reached) == len(per_seed) else None,
                "pixels_to_target_lower_bound": float(np.mean(bound)),
                "pixels_to_stay_at_target": stay,
                "pixels_to_stay_at_target_mean": (float(np.mean(stay)) if all(v is not None for v in stay)
                                                  else None),
                "pixels_to_target_mean_curve": float(np.nanmean(px, axis=0)[hit[0]]) if hit.size else None,
                "max_labelled_pixels": float(np.nanmean(px[:, -1])),
                "final_jaccard_mean": float(np.nanmean(jac[:, -1])),
                "final_jaccard_sd": float(np.nanstd(jac[:, -1])),
            })
        rnd = next((o for o in out if o["strategy"] == "random"), None)
        for o in out:
            o["savings_vs_random"] = None
            o["savings_is_lower_bound"] = False
            if rnd is None or o["pixels_to_target_mean"] is None:
                continue
            if rnd["pixels_to_target_mean"] is not None:
                o["savings_vs_random"] = rnd["pixels_to_target_mean"] / o["pixels_to_target_mean"]
            else:
                # random missed the target in some seed: a lower bound of its need
                o["savings_vs_random"] = rnd["pixels_to_target_lower_bound"] / o["pixels_to_target_mean"]
                o["savings_is_lower_bound"] = True
        return out

    def to_csv(self, path) -> None:
        write_rows_csv(self.rows, path)

    def figure(self, title: str | None = None, ax=None):
        """Jaccard against labelled pixels: per strategy the mean over seeds and its min-max band.

        Draws into ``ax`` (a matplotlib Axes) when given, else into a new
        figure. Returns the ``matplotlib.figure.Figure``.
        """
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(6.4, 4.2), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        for s in self.strategies():
            px, jac = self.curves(s)
            x = np.nanmean(px, axis=0)
            line, = ax.plot(x, np.nanmean(jac, axis=0), "-", lw=1.8, label=f"{s} (mean of {len(px)} seeds)")
            ax.fill_between(x, np.nanmin(jac, axis=0), np.nanmax(jac, axis=0), color=line.get_color(), alpha=0.2)
        if np.isfinite(self.dense_jaccard):
            ax.axhline(self.dense_jaccard, color="k", lw=1, label=f"dense labelling {self.dense_jaccard:.3f}")
            ax.axhline(self.target, color="k", lw=1, ls="--", label=f"95% of dense {self.target:.3f}")
        log_pixel_axis(ax)
        ax.set_xlabel("labelled pixels")
        ax.set_ylabel("Jaccard (test region)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
        if title:
            ax.set_title(title)
        return fig


def log_pixel_axis(ax) -> None:
    """Log-scaled x axis of pixel counts with short, plain tick labels (30, 100, 2000).

    matplotlib's default labels the minor ticks of a short log range as
    ``3x10^1 4x10^1 ...``, which run into each other.
    """
    from matplotlib.ticker import LogFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _regions(shape: Sequence[int], holdout: float):
    """Annotation and test regions: cut the longest axis at ``1 - holdout``."""
    if not 0 < holdout < 1:
        raise InputError(f"holdout must be a fraction between 0 and 1, got {holdout}.")
    axis = int(np.argmax(shape))
    cut = int(round(shape[axis] * (1 - holdout)))
    if not 0 < cut < shape[axis]:
        raise InputError(f"The image is too small along axis {axis} (size {shape[axis]}) to hold out {holdout}.")
    full = [slice(0, n) for n in shape]
    ann, test = list(full), list(full)
    ann[axis] = slice(0, cut)
    test[axis] = slice(cut, shape[axis])
    return tuple(ann), tuple(test)


def write_rows_csv(rows: Sequence[dict], path) -> None:
    """Rows (dicts) as CSV; columns in order of first appearance."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def class_jaccards(truth: np.ndarray, pred: np.ndarray, classes) -> np.ndarray:
    """Jaccard of every class of ``classes`` (sorted) at pixels where ``truth != 0``.

    A bincount confusion matrix: the same numbers as
    :func:`active_annotator.evaluation.metrics` (tested), ~50x faster, which
    matters when it runs every round of every seed.
    """
    classes = np.asarray(classes)
    m = truth != 0
    k = len(classes)
    ti = np.searchsorted(classes, truth[m])
    pi = np.searchsorted(classes, pred[m])
    cm = np.bincount(ti * k + pi, minlength=k * k).reshape(k, k).astype(np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    return np.divide(tp, union, out=np.zeros(k), where=union > 0)


def _score(truth: np.ndarray, pred: np.ndarray, classes) -> tuple[float, float, float]:
    """(jaccard, mean_jaccard, accuracy) at pixels where truth != 0 (protocol 1's score)."""
    js = class_jaccards(truth, pred, classes)
    main = js[-1] if len(js) == 2 else js.mean()
    m = truth != 0
    acc = float(np.mean(truth[m] == pred[m])) if m.any() else 0.0
    return float(main), float(js.mean()), acc


def dense_reference(feats: np.ndarray, truth: np.ndarray, annotation, test, n_estimators=50,
                    random_state=0, n_jobs=1, max_pixels: int | None = None) -> float:
    """Test-region Jaccard of a classifier trained on every truth pixel of the annotation region.

    Parameters
    ----------
    feats : float32 ``(n_features, *spatial)``; truth : int ``(*spatial)``
    annotation, test : tuples of slices (see :func:`simulate`)
    max_pixels : int, optional
        Train on a random subset of this many pixels (None: all).
    """
    t = truth[annotation]
    m = t != 0
    X = feats[(slice(None),) + annotation][:, m].T
    y = t[m]
    if max_pixels is not None and y.size > max_pixels:
        sel = np.random.default_rng(random_state).choice(y.size, max_pixels, replace=False)
        X, y = X[sel], y[sel]
    fs = FeatureSet.default(ndim=truth.ndim)
    clf = PixelClassifier(fs, n_estimators=n_estimators, random_state=random_state, n_jobs=n_jobs)
    clf.fit_features(np.ascontiguousarray(X), y, n_channels=feats.shape[0] // fs.n_features(1))
    p = clf.predict_proba_features(feats[(slice(None),) + test])
    pred = clf.classes_[np.argmax(p, axis=0)]
    classes = np.unique(truth[truth != 0])
    return _score(truth[test], pred, classes)[0]


def _start_labels(truth_ann: np.ndarray, radius: int, seed: int, prefer=None) -> np.ndarray:
    """One dab per class at a random pixel of that class (seeded).

    ``prefer`` (bool, the truth's shape): draw the centre among these pixels
    of the class when it has any (protocol 2 passes the class interiors).
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(truth_ann.shape, np.uint8 if truth_ann.max() < 256 else np.uint16)
    ball = _ball(radius, truth_ann.ndim)
    r = int(radius)
    for k in np.unique(truth_ann[truth_ann != 0]):
        where = np.argwhere((truth_ann == k) & prefer) if prefer is not None else np.empty((0,))
        if len(where) == 0:
            where = np.argwhere(truth_ann == k)
        c = where[rng.integers(len(where))]
        sl = tuple(slice(max(x - r, 0), min(x + r + 1, n)) for x, n in zip(c, truth_ann.shape))
        bl = tuple(slice(s.start - (x - r), s.stop - (x - r)) for s, x in zip(sl, c))
        paint = ball[bl] & (truth_ann[sl] == k)
        labels[sl][paint] = k
    return labels


def check_truth(image, truth, channel_axis: int | None):
    """``(image, truth, spatial shape, classes)`` after checking the truth fits the image.

    ``truth`` must be non-negative integers of the image's spatial shape with
    at least two classes (0 = unknown).
    """
    truth = np.asarray(truth)
    image = np.asarray(image)
    spatial = image.shape if channel_axis is None else tuple(
        n for a, n in enumerate(image.shape) if a != channel_axis % image.ndim)
    if truth.shape != spatial:
        raise InputError(f"truth has shape {truth.shape} but the image's spatial shape is {spatial}.")
    if not np.issubdtype(truth.dtype, np.integer) or truth.min() < 0:
        raise InputError("truth must be non-negative integers: classes 1..K, 0 = unknown.")
    classes = np.unique(truth[truth != 0])
    if classes.size < 2:
        raise InputError(f"truth must contain at least two classes, found {classes.tolist()}.")
    return image, truth, spatial, classes


def simulate(image, truth, strategies: Sequence[str] = ("hybrid", "entropy", "random"),
             rounds: int = 20, batch: int = 5, seeds: int | Sequence[int] = 5, patch=None,
             radius: int = 2, holdout: float = 0.5, n_estimators: int = 50, n_jobs: int = 1,
             features: FeatureSet | None = None, channel_axis: int | None = None,
             dense: bool = True, target_fraction: float = 0.95, progress: bool = True,
             dense_max_pixels: int | None = None, oracle: str = "classes",
             distance_scale: float | None = None,
             hybrid_avoid: str = "labels_and_picks",
             label_scale: float = 1.0) -> SimulationResult:
    """Run the oracle annotator for each strategy and seed.

    Parameters
    ----------
    image : array ``(*spatial)`` (1-3 axes) with an optional channel axis
    truth : int array ``(*spatial)``; classes 1..K, 0 = unknown (never scored)
    strategies : names from :data:`active_annotator.sampling.STRATEGIES`
    rounds : int
        Suggestion rounds after the start; each adds ``batch`` dabs.
    batch : int
        Suggestions labelled per round.
    seeds : int or list of int
        Number of seeds (0..seeds-1) or the seeds themselves.
    patch : int or tuple, optional
        Candidate patch size; default 256 (1-D), 32 (2-D), 8 (3-D).
    radius : int
        Oracle brush radius (see :class:`Oracle`).
    oracle : {"correct", "passive"}
        Oracle mode (see :class:`Oracle`); the same for every strategy.
    distance_scale, label_scale : float, optional
        ``hybrid``'s distance scales from the batch's picks and from labelled
        pixels (see :func:`~active_annotator.sampling.suggest`).
    hybrid_avoid : {"labels_and_picks", "picks"}
        ``hybrid``'s ``avoid`` (see :func:`~active_annotator.sampling.suggest`).
    holdout : float
        Fraction of the longest axis kept as the test region.
    n_estimators, n_jobs : forest size and training threads.
    features : FeatureSet, optional; default ``FeatureSet.default(ndim)``.
    dense : bool
        Also compute the dense-labelling reference and target.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    SimulationResult
    """
    from tqdm.auto import tqdm

    image, truth, spatial, classes = check_truth(image, truth, channel_axis)
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad:
        raise InputError(f"Unknown strategies {bad}; choose from {list(STRATEGIES)}.")
    if rounds < 0 or batch < 1:
        raise InputError(f"rounds must be >= 0 and batch >= 1, got {rounds} and {batch}.")
    seed_list = list(range(int(seeds))) if np.isscalar(seeds) else [int(s) for s in seeds]
    ndim = len(spatial)
    fs = features or FeatureSet.default(ndim=ndim)
    feats = compute(image, fs, channel_axis=channel_axis)
    n_ch = feats.shape[0] // fs.n_features(1)
    annotation, test = _regions(spatial, holdout)
    feats_ann = np.ascontiguousarray(feats[(slice(None),) + annotation])
    truth_ann = truth[annotation]
    truth_test = truth[test]
    ann_shape = truth_ann.shape
    size = patch if patch is not None else DEFAULT_PATCH[ndim]
    cands = cand.describe(cand.patches(ann_shape, size), feats_ann)
    Oracle(radius, oracle)  # validate before the long work

    result = SimulationResult(settings=dict(
        strategies=list(strategies), rounds=rounds, batch=batch, seeds=seed_list, patch=size,
        radius=radius, oracle=oracle, distance_scale=distance_scale,
        hybrid_avoid=hybrid_avoid, label_scale=label_scale, holdout=holdout, n_estimators=n_estimators, shape=list(spatial),
        annotation_region=[[s.start, s.stop] for s in annotation],
        test_region=[[s.start, s.stop] for s in test], n_candidates=len(cands),
        features=fs.to_dict(), target_fraction=target_fraction,
    ))
    if dense:
        result.dense_jaccard = dense_reference(feats, truth, annotation, test, n_estimators,
                                               0, max(n_jobs, 1), dense_max_pixels)
        result.target = target_fraction * result.dense_jaccard

    bar = tqdm(total=len(strategies) * len(seed_list) * (rounds + 1), desc="simulate",
               disable=not progress, unit="round")
    for strategy in strategies:
        for seed in seed_list:
            annotator = Oracle(radius, oracle, seed=seed)
            labels = _start_labels(truth_ann, annotator.radius, seed)
            clf = PixelClassifier(fs, n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
            for r in range(rounds + 1):
                t0 = time.perf_counter()
                m = labels != 0
                clf.fit_features(np.ascontiguousarray(feats_ann[:, m].T), labels[m], n_channels=n_ch)
                proba = clf.predict_proba_features(feats)
                pred_test = clf.classes_[np.argmax(proba[(slice(None),) + test], axis=0)]
                jac, mjac, acc = _score(truth_test, pred_test, classes)
                row = {"strategy": strategy, "seed": seed, "round": r, "labelled_pixels": int(m.sum())}
                for k in classes:
                    row[f"labels_class_{int(k)}"] = int((labels == k).sum())
                row.update(jaccard=jac, mean_jaccard=mjac, accuracy=acc)
                if r < rounds:
                    p_ann = proba[(slice(None),) + annotation]
                    picks = suggest(cands, labelled=labels, strategy=strategy, n=batch,
                                    seed=seed * 100003 + r, proba=p_ann, distance_scale=distance_scale,
                                    avoid=hybrid_avoid, label_scale=label_scale)
                    for s in picks:
                        annotator.label(s.candidate, truth_ann, p_ann, clf.classes_, labels)
                row["seconds"] = round(time.perf_counter() - t0, 4)
                result.rows.append(row)
                bar.update(1)
    bar.close()
    return result


__all__ = ["Oracle", "SimulationResult", "simulate", "dense_reference"]
