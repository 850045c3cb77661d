"""Protocol v2: comparing sampling strategies so that a sceptic accepts the result.

:func:`active_annotator.simulate.simulate` (protocol v1) cuts the image once,
takes "dense labelling" as the reference and reports the first round of the
mean curve that reaches 95 % of it. Measured on real data, each of those
choices biased the comparison (issue 12). This module replaces them:

* **Splits.** A checkerboard of blocks (two patches wide) over the image; the
  blocks of one parity are the *annotation region* (candidates, labels), the
  others the *test region* (scored, never labelled). Four splits: both
  parities, on the grid and shifted by half a block. Seed ``s`` uses split
  ``s % n_splits``, so 10 seeds cover every split 2-3 times and every class
  appears in both regions of every split.
* **Candidates.** Patches sized so that the annotation region holds at least
  ``min_candidates`` of them (:func:`default_patch`), or SLIC superpixels.
* **Reference = a real ceiling.** Per split, the best of: the forest trained
  on every truth pixel of the annotation region ("dense"), trained on the
  class interiors only (pixels more than the brush radius from another class:
  what a person paints), and every strategy at its largest budget. Which one
  it was is stated.
* **Score.** Macro Jaccard over the classes a person cares about
  (``classes``; by default every class but the largest, the background),
  in the test region.
* **Metrics per seed.** Normalised area under the learning curve (AULC): the
  step curve of score / ceiling, averaged over a common, log-spaced grid of
  label counts that every run covers; Jaccard at fixed budgets (100, 300,
  1000, 3000 labelled pixels; missing when a run never had that many);
  labels to 95 % of the ceiling, *censored* at the run's last count when it
  never got there, the same for every strategy.
* **Summary.** Medians and interquartile ranges over seeds; the saving
  against random is the ratio of median labels-to-target, marked as a bound
  when a median is censored; a paired Wilcoxon signed-rank test over seeds
  (same seed = same split and start) of the default against each baseline,
  on AULC.

Seeds of all strategies share their split, start labels and forest seed, so
the comparison is paired.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from . import candidates as cand
from .errors import InputError
from .sampling import DESCRIPTOR_STRATEGIES, STRATEGIES, suggest
from .simulate import (ORACLE_MODES, Oracle, _start_labels, check_truth, class_jaccards, log_pixel_axis,
                       write_rows_csv)

#: Patch edges tried by :func:`default_patch`, largest first, per spatial ndim.
PATCH_OPTIONS = cand.PATCH_SIZES
#: Budgets (labelled pixels) at which the Jaccard is reported.
BUDGETS = (100, 300, 1000, 3000)
#: Fraction of the ceiling that counts as "reached".
TARGET_FRACTION = 0.95
#: Strategies computed here from the forest's trees rather than by :func:`suggest` alone.
PROTOCOL_STRATEGIES = ("bald",)


def default_patch(shape: Sequence[int], min_candidates: int = 96) -> int:
    """Largest patch edge of :data:`PATCH_OPTIONS` giving ``min_candidates`` in one half."""
    return cand.default_patch_size(shape, 2 * min_candidates)


def checkerboard_splits(shape: Sequence[int], patch: int, n_splits: int = 4,
                        block: int | None = None) -> list[np.ndarray]:
    """Annotation-region masks ``(*shape)`` bool of ``n_splits`` checkerboard splits.

    Split ``s`` takes the blocks of parity ``s % 2``, with the grid shifted by
    half a block when ``(s // 2) % 2`` is 1. The test region is the complement.
    ``block`` defaults to two patches, so that unshifted patches never straddle
    a block boundary in either grid.
    """
    shape = tuple(int(n) for n in shape)
    block = int(block or 2 * patch)
    if block < 2:
        raise InputError(f"block must be at least 2 pixels, got {block}.")
    if n_splits < 1:
        raise InputError(f"n_splits must be >= 1, got {n_splits}.")
    if any(n < 2 * block for n in shape if n > 1) and max(shape) < 2 * block:
        raise InputError(f"The image {shape} is too small for blocks of {block} px; use a smaller patch.")
    out = []
    for s in range(n_splits):
        parity, shift = s % 2, ((s // 2) % 2) * (block // 2)
        idx = np.zeros(shape, np.int64)
        for a, n in enumerate(shape):
            v = (np.arange(n) + shift) // block
            idx += v.reshape([-1 if b == a else 1 for b in range(len(shape))])
        out.append((idx % 2) == parity)
    return out


def candidates_in(region: np.ndarray, patch: int, kind: str = "patches", image=None,
                  channel_axis: int | None = None) -> list[cand.Candidate]:
    """Candidates inside an annotation region: patches, or SLIC superpixels (``kind="superpixels"``)."""
    if kind == "patches":
        out = []
        for c in cand.patches(region.shape, patch):
            m = region[c.key]
            if not m.any():
                continue
            out.append(cand.Candidate(len(out), c.kind, c.slices, c.centre, None, None if m.all() else m))
        return out
    if kind == "superpixels":
        return cand.superpixels(image, patch, channel_axis=channel_axis, mask=region)
    raise InputError(f"Unknown candidate kind {kind!r}; use 'patches' or 'superpixels'.")


def interest_classes(truth: np.ndarray, classes=None) -> list[int]:
    """Classes scored: ``classes`` if given, else every class but the largest (background)."""
    present = np.unique(truth[truth != 0])
    if classes is not None:
        chosen = [int(c) for c in classes]
        missing = sorted(set(chosen) - set(present.tolist()))
        if missing:
            raise InputError(f"classes {missing} do not occur in the truth (it has {present.tolist()}).")
        return chosen
    if present.size <= 1:
        raise InputError("The truth needs at least two classes.")
    counts = np.array([(truth == k).sum() for k in present])
    return [int(k) for k in present if k != present[np.argmax(counts)]]


def _interior(truth: np.ndarray, radius: int) -> np.ndarray:
    """Truth pixels more than ``radius`` px from another class (what a person paints)."""
    out = np.zeros(truth.shape, bool)
    for k in np.unique(truth[truth != 0]):
        inside = truth == k
        out |= inside & (ndi.distance_transform_edt(inside) > radius)
    return out


class _Forest:
    """scikit-learn's forest trained on feature rows, predicting with the compiled evaluator."""

    def __init__(self, n_estimators, seed, n_jobs):
        self.n_estimators, self.seed, self.n_jobs = n_estimators, seed, n_jobs

    def fit(self, X, y):
        from sklearn.ensemble import RandomForestClassifier

        from .forest import Forest

        self.rf = RandomForestClassifier(n_estimators=self.n_estimators, random_state=self.seed,
                                         n_jobs=self.n_jobs).fit(X, y)
        self.forest = Forest.from_sklearn(self.rf)
        self.classes_ = self.rf.classes_
        return self

    def proba(self, feats):
        """``(n_classes, *spatial)`` float32."""
        p = self.forest.predict_proba(feats.reshape(feats.shape[0], -1))
        return np.ascontiguousarray(p.T.astype(np.float32)).reshape((-1,) + feats.shape[1:])

    def tree_proba(self, feats, mask):
        """Per-tree probabilities ``(n_trees, n_classes, *spatial)`` (zero outside ``mask``)."""
        X = feats[:, mask].T
        out = np.zeros((len(self.rf.estimators_), len(self.classes_)) + mask.shape, np.float32)
        for t, tree in enumerate(self.rf.estimators_):
            p = np.zeros((X.shape[0], len(self.classes_)), np.float32)
            p[:, np.searchsorted(self.classes_, self.rf.classes_[tree.classes_.astype(int)])] = tree.predict_proba(X)
            out[t][:, mask] = p.T
        return out


def _fit_dense(feats, truth, region, mask, n_estimators, n_jobs, max_pixels, seed=0):
    m = region & mask & (truth != 0)
    X = feats[:, m].T
    y = truth[m]
    if max_pixels and y.size > max_pixels:
        sel = np.random.default_rng(seed).choice(y.size, int(max_pixels), replace=False)
        X, y = X[sel], y[sel]
    if np.unique(y).size < 2:
        return None
    return _Forest(n_estimators, seed, n_jobs).fit(np.ascontiguousarray(X), y)


def _step_at(px: np.ndarray, score: np.ndarray, x) -> np.ndarray:
    """A learning curve as a step function: the score of the last round with <= x labels."""
    i = np.searchsorted(px, x, side="right") - 1
    return np.where(i >= 0, score[np.clip(i, 0, len(score) - 1)], score[0])


def censored_median(values, censored) -> tuple[float, bool]:
    """Median of values some of which are only lower bounds.

    Returns ``(m, is_lower_bound)``: the true median lies between the median
    with censored values at their bounds (``m``) and with them at infinity;
    when the two agree ``m`` is exact, else it is a lower bound.
    """
    v = np.asarray(values, np.float64)
    c = np.asarray(censored, bool)
    if v.size == 0:
        return float("nan"), False
    lo = float(np.median(v))
    hi = float(np.median(np.where(c, np.inf, v)))
    return lo, not (hi == lo)


@dataclass
class ProtocolResult:
    """Rows of a protocol-v2 run (strategy, seed, round) and the references of each split."""

    rows: list = field(default_factory=list)
    references: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    # -- structure --------------------------------------------------------------
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r["strategy"] for r in self.rows))

    def runs(self, strategy: str) -> dict:
        """``{seed: (split, px array, score array)}`` of one strategy."""
        out: dict = {}
        for r in self.rows:
            if r["strategy"] == strategy:
                out.setdefault(r["seed"], (r["split"], [], []))
                out[r["seed"]][1].append(r["labelled_pixels"])
                out[r["seed"]][2].append(r["score"])
        return {s: (sp, np.array(px, float), np.array(sc, float)) for s, (sp, px, sc) in out.items()}

    def ceiling(self, split) -> float:
        return float(self.references[str(split)]["ceiling"])

    def finish_references(self) -> None:
        """Add every strategy's largest-budget score to each split's ceiling."""
        for key, ref in self.references.items():
            best, best_name = -1.0, None
            for s in self.strategies():
                finals = [sc[-1] for sp, _, sc in self.runs(s).values() if str(sp) == key]
                if finals and np.mean(finals) > best:
                    best, best_name = float(np.mean(finals)), s
            ref["best_strategy"] = best_name
            ref["best_strategy_score"] = best
            cands = {"dense": ref.get("dense"), "dense_interior": ref.get("dense_interior"),
                     f"{best_name} at its largest budget": best}
            cands = {k: v for k, v in cands.items() if v is not None and np.isfinite(v)}
            name = max(cands, key=cands.get)
            ref["ceiling"], ref["ceiling_from"] = float(cands[name]), name

    def grid(self, n: int = 40) -> np.ndarray:
        """Common log-spaced label counts: from the largest start to the smallest final count."""
        starts, ends = [], []
        for s in self.strategies():
            for _, px, _ in self.runs(s).values():
                starts.append(px[0])
                ends.append(px[-1])
        lo, hi = max(max(starts), 1.0), min(ends)
        if hi <= lo:
            return np.array([lo])
        return np.geomspace(lo, hi, n)

    # -- metrics ------------------------------------------------------------------
    def per_seed(self, strategy: str, grid=None) -> list[dict]:
        """AULC, Jaccard at :data:`BUDGETS` and labels to target of every seed of ``strategy``."""
        g = self.grid() if grid is None else grid
        frac = self.settings.get("target_fraction", TARGET_FRACTION)
        out = []
        for seed, (split, px, sc) in sorted(self.runs(strategy).items()):
            ceil = self.ceiling(split)
            rel = _step_at(px, sc, g) / ceil
            hit = np.flatnonzero(sc >= frac * ceil)
            out.append({
                "seed": seed, "split": split,
                "aulc": float(np.mean(rel)),
                "jaccard_at": {b: (float(_step_at(px, sc, b)) if px[-1] >= b else None) for b in BUDGETS},
                "px_to_target": float(px[hit[0]]) if hit.size else float(px[-1]),
                "reached": bool(hit.size),
                "final_px": float(px[-1]), "final_score": float(sc[-1]),
            })
        return out

    def summary(self, default: str | None = None, baselines: Sequence[str] = ("random", "entropy")) -> dict:
        """Medians, IQRs, savings against random and paired tests of ``default`` (first strategy)."""
        from scipy.stats import wilcoxon

        g = self.grid()
        names = self.strategies()
        default = default or names[0]
        per = {s: self.per_seed(s, g) for s in names}
        rows = {}
        for s in names:
            a = np.array([r["aulc"] for r in per[s]])
            px = [r["px_to_target"] for r in per[s]]
            cens = [not r["reached"] for r in per[s]]
            med, bound = censored_median(px, cens)
            jb = {}
            for b in BUDGETS:
                v = [r["jaccard_at"][b] for r in per[s] if r["jaccard_at"][b] is not None]
                jb[b] = float(np.median(v)) if len(v) == len(per[s]) and v else None
            rows[s] = {"seeds": len(a), "aulc_median": float(np.median(a)),
                       "aulc_q25": float(np.quantile(a, 0.25)), "aulc_q75": float(np.quantile(a, 0.75)),
                       "jaccard_at_median": jb, "px_to_target_median": med,
                       "px_to_target_is_lower_bound": bound, "reached": int(len(a) - sum(cens)),
                       "final_score_median": float(np.median([r["final_score"] for r in per[s]]))}
        if "random" in rows:
            r = rows["random"]
            for s, row in rows.items():
                if row["px_to_target_is_lower_bound"] and r["px_to_target_is_lower_bound"]:
                    row["saving_vs_random"], row["saving_bound"] = None, "unknown"
                else:
                    row["saving_vs_random"] = r["px_to_target_median"] / row["px_to_target_median"]
                    row["saving_bound"] = ("lower" if r["px_to_target_is_lower_bound"] else
                                           "upper" if row["px_to_target_is_lower_bound"] else "exact")
        tests = {}
        if default in per:
            for b in baselines:
                if b not in per or b == default:
                    continue
                da = {r["seed"]: r["aulc"] for r in per[default]}
                ba = {r["seed"]: r["aulc"] for r in per[b]}
                common = sorted(set(da) & set(ba))
                d = np.array([da[k] - ba[k] for k in common])
                if d.size and np.any(d != 0):
                    p = float(wilcoxon(d, zero_method="zsplit").pvalue)
                else:
                    p = 1.0
                tests[b] = {"n": int(d.size), "median_aulc_difference": float(np.median(d)) if d.size else None,
                            "wins": int((d > 0).sum()), "losses": int((d < 0).sum()), "p_value": p,
                            "significantly_worse": bool(d.size and np.median(d) < 0 and p < 0.05)}
        return {"default": default, "grid": [float(g[0]), float(g[-1]), len(g)],
                "references": self.references, "strategies": rows, "tests": tests}

    # -- files ----------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"rows": self.rows, "references": self.references, "settings": self.settings})

    @classmethod
    def from_json(cls, text: str) -> ProtocolResult:
        d = json.loads(text)
        return cls(d["rows"], d["references"], d["settings"])

    def to_csv(self, path) -> None:
        write_rows_csv(self.rows, path)

    def figure(self, title: str | None = None, ax=None):
        """Score / ceiling against labelled pixels: median over seeds and IQR band per strategy."""
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(6.4, 4.2), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        g = self.grid(60)
        for s in self.strategies():
            curves = np.array([_step_at(px, sc, g) / self.ceiling(sp) for sp, px, sc in self.runs(s).values()])
            line, = ax.plot(g, np.median(curves, axis=0), lw=1.8, label=f"{s} (median of {len(curves)})")
            ax.fill_between(g, np.quantile(curves, 0.25, axis=0), np.quantile(curves, 0.75, axis=0),
                            color=line.get_color(), alpha=0.18)
        frac = self.settings.get("target_fraction", TARGET_FRACTION)
        ax.axhline(1.0, color="k", lw=1, label="ceiling (per split)")
        ax.axhline(frac, color="k", lw=1, ls="--", label=f"{frac:.0%} of ceiling")
        log_pixel_axis(ax)
        ax.set_xlabel("labelled pixels")
        ax.set_ylabel("Jaccard / ceiling (test region)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
        if title:
            ax.set_title(title, fontsize=10)
        return fig


def _fmt_px(v, bound) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f">= {v:.0f}" if bound else f"{v:.0f}"


def _fmt_saving(row) -> str:
    v = row.get("saving_vs_random")
    if v is None:
        return "n/a (both missed)"
    return {"lower": ">= ", "upper": "<= ", "exact": ""}[row["saving_bound"]] + f"{v:.1f}x"


def format_summary(summary: dict, title: str = "") -> str:
    """A markdown table of :meth:`ProtocolResult.summary`."""
    lines = [f"### {title}" if title else ""]
    refs = summary["references"]
    ceil = ", ".join(f"split {k}: {v['ceiling']:.3f} ({v['ceiling_from']})" for k, v in refs.items())
    lines.append(f"Ceiling {ceil}.  AULC over {summary['grid'][0]:.0f}-{summary['grid'][1]:.0f} labelled px.\n")
    head = ("| strategy | AULC median [IQR] | " + " | ".join(f"J@{b}" for b in BUDGETS)
            + " | px to 95 % (median) | reached | saving vs random |")
    lines += [head, "|" + "---|" * (6 + len(BUDGETS) - 1)]
    for s, r in summary["strategies"].items():
        jb = " | ".join("-" if r["jaccard_at_median"][b] is None else f"{r['jaccard_at_median'][b]:.3f}"
                        for b in BUDGETS)
        mark = " **(default)**" if s == summary["default"] else ""
        lines.append(f"| {s}{mark} | {r['aulc_median']:.3f} [{r['aulc_q25']:.3f}-{r['aulc_q75']:.3f}] | {jb} | "
                     f"{_fmt_px(r['px_to_target_median'], r['px_to_target_is_lower_bound'])} | "
                     f"{r['reached']}/{r['seeds']} | {_fmt_saving(r) if 'saving_vs_random' in r else '-'} |")
    for b, t in summary["tests"].items():
        lines.append(f"\n{summary['default']} vs {b}: AULC median difference {t['median_aulc_difference']:+.3f}, "
                     f"{t['wins']} wins / {t['losses']} losses of {t['n']} seeds, Wilcoxon p = {t['p_value']:.3g}"
                     + (" (significantly worse)" if t["significantly_worse"] else ""))
    return "\n".join(lines) + "\n"


def _parse_strategy(name: str):
    """``"a"`` or ``"a>b"`` (``a`` for the first ``cold_start`` rounds, then ``b``)."""
    parts = name.split(">")
    if len(parts) > 2:
        raise InputError(f"Strategy {name!r}: use 'name' or 'first>then'.")
    bad = [p for p in parts if p not in STRATEGIES and p not in PROTOCOL_STRATEGIES]
    if bad:
        raise InputError(f"Unknown strategies {bad}; choose from {list(STRATEGIES) + list(PROTOCOL_STRATEGIES)}.")
    return parts[0], parts[-1]


def run(image, truth, strategies: Sequence[str] = ("hybrid", "entropy", "random"), *, rounds: int = 25,
        batch: int = 5, seeds: int | Sequence[int] = 10, patch: int | None = None, radius: int = 2,
        oracle: str = "classes", n_estimators: int = 50, n_jobs: int = 1, features=None,
        channel_axis: int | None = None, classes=None, n_splits: int = 4, block: int | None = None,
        dense_max_pixels: int | None = 200_000, feats: np.ndarray | None = None, cold_start: int = 2,
        candidates: str = "patches", min_candidates: int = 96, strategy_options: dict | None = None,
        target_fraction: float = TARGET_FRACTION, progress: bool = True) -> ProtocolResult:
    """Run protocol v2 (see the module docstring) for each strategy and seed.

    Parameters
    ----------
    image : array ``(*spatial)`` with an optional channel axis; signals ``(channels, time)``
        with ``channel_axis=0``.
    truth : int array ``(*spatial)``: classes 1..K, 0 = unknown (never scored or labelled).
    strategies : names of :data:`~active_annotator.sampling.STRATEGIES`, ``"bald"``
        (mutual information of the forest's trees), or ``"first>then"``: ``first``
        for ``cold_start`` rounds, then ``then``.
    rounds, batch : suggestion rounds after the start, and candidates labelled per round.
    seeds : number of seeds (0..seeds-1) or the seeds; seed ``s`` uses split ``s % n_splits``.
    patch : candidate edge (default :func:`default_patch`); superpixel size for superpixels.
    radius, oracle : the oracle's brush and mode (:class:`~active_annotator.simulate.Oracle`).
    features : FeatureSet, optional; ignored when ``feats`` (``(n_features, *spatial)``) is given.
    classes : classes scored (default: all but the largest).
    dense_max_pixels : training pixels of the dense references (a random subset; None: all).
    strategy_options : extra keyword arguments of :func:`~active_annotator.sampling.suggest`.

    Returns
    -------
    ProtocolResult
    """
    from tqdm.auto import tqdm

    from .features import FeatureSet, compute

    image, truth, spatial, all_classes = check_truth(image, truth, channel_axis)
    if oracle not in ORACLE_MODES:
        raise InputError(f"Unknown oracle mode {oracle!r}; choose from {list(ORACLE_MODES)}.")
    if rounds < 1 or batch < 1:
        raise InputError(f"rounds and batch must be >= 1, got {rounds} and {batch}.")
    parsed = {s: _parse_strategy(s) for s in strategies}
    interest = interest_classes(truth, classes)
    ci = np.searchsorted(all_classes, interest)
    seed_list = list(range(int(seeds))) if np.isscalar(seeds) else [int(s) for s in seeds]
    if feats is None:
        fs = features or FeatureSet.default(ndim=len(spatial))
        feats = compute(image, fs, channel_axis=channel_axis)
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    if feats.shape[1:] != spatial:
        raise InputError(f"feats have spatial shape {feats.shape[1:]}, expected {spatial}.")
    size = int(patch) if patch else default_patch(spatial, min_candidates)
    regions = checkerboard_splits(spatial, size, n_splits, block)
    opts = dict(strategy_options or {})
    result = ProtocolResult(settings=dict(
        protocol=2, strategies=list(strategies), rounds=rounds, batch=batch, seeds=seed_list, patch=size,
        block=int(block or 2 * size), n_splits=n_splits, radius=radius, oracle=oracle,
        n_estimators=n_estimators, shape=list(spatial), classes=[int(k) for k in all_classes],
        classes_scored=interest, candidates=candidates, cold_start=cold_start,
        target_fraction=target_fraction, n_features=int(feats.shape[0]), strategy_options=opts))

    inner = _interior(truth, radius)
    cand_cache: dict = {}
    used_splits = sorted({s % n_splits for s in seed_list})
    bar = tqdm(total=len(used_splits) * 2 + len(strategies) * len(seed_list) * (rounds + 1),
               desc="protocol v2", disable=not progress, unit="fit")
    for sp in used_splits:
        test = ~regions[sp] & (truth != 0)
        ref = {}
        for name, mask in (("dense", np.ones_like(inner)), ("dense_interior", inner)):
            model = _fit_dense(feats, truth, regions[sp], mask, n_estimators, max(n_jobs, 1), dense_max_pixels)
            if model is None:
                ref[name] = None
            else:
                p = model.proba(feats)
                pred = model.classes_[np.argmax(p, axis=0)]
                ref[name] = float(class_jaccards(truth[test], pred[test], all_classes)[ci].mean())
            bar.update(1)
        ref["annotation_pixels"] = int(regions[sp].sum())
        result.references[str(sp)] = ref
        cs = candidates_in(regions[sp], size, candidates, image, channel_axis)
        if any(p[0] in DESCRIPTOR_STRATEGIES or p[1] in DESCRIPTOR_STRATEGIES for p in parsed.values()):
            cs = cand.describe(cs, feats)
        cand_cache[sp] = cs
        result.settings.setdefault("n_candidates", {})[str(sp)] = len(cs)

    for strategy in strategies:
        first, then = parsed[strategy]
        for seed in seed_list:
            sp = seed % n_splits
            region, cs = regions[sp], cand_cache[sp]
            test = ~region & (truth != 0)
            truth_ann = np.where(region, truth, 0)
            annotator = Oracle(radius, oracle, seed=seed)
            labels = _start_labels(truth_ann, radius, seed, prefer=_interior(truth_ann, radius))
            model = _Forest(n_estimators, seed, n_jobs)
            for r in range(rounds + 1):
                t0 = time.perf_counter()
                m = labels != 0
                model.fit(np.ascontiguousarray(feats[:, m].T), labels[m])
                proba = model.proba(feats)
                pred = model.classes_[np.argmax(proba, axis=0)]
                js = class_jaccards(truth[test], pred[test], all_classes)
                row = {"strategy": strategy, "seed": seed, "split": sp, "round": r,
                       "labelled_pixels": int(m.sum()), "score": float(js[ci].mean())}
                for k, j in zip(all_classes, js):
                    row[f"jaccard_{int(k)}"] = float(j)
                if r < rounds:
                    name = first if r < cold_start else then
                    kw = dict(opts)
                    u = None
                    if name == "bald":
                        u = _bald_map(model, feats, region)
                        name = "uncertainty"
                    picks = suggest(cs, uncertainty=u, labelled=labels, strategy=name, n=batch,
                                    seed=seed * 100003 + r, proba=None if u is not None else proba, **kw)
                    for s in picks:
                        annotator.label(s.candidate, truth_ann, proba, model.classes_, labels)
                row["seconds"] = round(time.perf_counter() - t0, 4)
                result.rows.append(row)
                bar.update(1)
    bar.close()
    result.finish_references()
    return result


def _bald_map(model: _Forest, feats, region) -> np.ndarray:
    from .uncertainty import mutual_information

    return mutual_information(model.tree_proba(feats, region))


__all__ = ["run", "ProtocolResult", "default_patch", "checkerboard_splits", "candidates_in",
           "interest_classes", "class_jaccards", "censored_median", "format_summary", "write_rows_csv",
           "BUDGETS", "PATCH_OPTIONS", "TARGET_FRACTION"]
