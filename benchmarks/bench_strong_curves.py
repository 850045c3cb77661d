"""Learning curves of the strongest configuration against the default, on the same labels.

Run (one command, from the repository root)::

    PYTHONPATH=src python benchmarks/bench_strong_curves.py                       # five image cases, 3 seeds
    PYTHONPATH=src python benchmarks/bench_strong_curves.py --cases quokka_photo --seeds 1   # quick look

Issue 13's goal: the strongest configuration's learning curve at or above
the default's at every budget. For every image case of ``benchmarks/datasets.py``
(cropped as the active-learning suite crops it,
``bench_active_learning.crop_case`` / ``MAX_PIXELS``) and every seed:

* **Split and labels as protocol v2 does it** (:mod:`active_annotator.protocol`):
  seed ``s`` uses checkerboard split ``s % 4`` (annotation region / test
  region), starts with one dab per class (``simulate._start_labels`` on the
  class interiors), then rounds of ``--batch`` candidates (the protocol's
  patches in the annotation region) picked by the ``random`` strategy and
  painted by the protocol's annotator model (``--oracle``: ``classes`` = one
  dab per class shown, ``stroke`` = one short stroke per class shown;
  :class:`active_annotator.simulate.Oracle`). Random picks need no model, so
  the label sequence is the same whichever configuration is measured: the
  comparison is paired (same labels, same forest seed).
* **Budgets.** The label set is frozen the first round it holds at least
  each of ``--budgets`` labelled pixels (the actual count is recorded).
* **Configurations** (``bench_quality._image_configs``): ``default`` = the
  default features, one stage, no class weights; ``strong`` = the default
  features (per-slice 2-D ones for thick-slice volumes), two stages,
  ``class_weight="auto"``, ``context_sigmas="auto"``.
* **Score.** Macro Jaccard over the case's classes of interest in the test
  region (never labelled). Medians and IQR over seeds.

Writes ``curves.json`` (every row and the summary), ``curves.md`` (the table)
and ``curves.png`` (median curves with IQR bands, one panel per case) into
``--out`` (default ``~/.cache/active-annotator/strong_curves``). Load average
and thread counts are printed; forests use ``--jobs`` threads (default 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets  # noqa: E402  (benchmarks/datasets.py)
from bench_active_learning import MAX_PIXELS, crop_case  # noqa: E402
from bench_quality import _image_configs  # noqa: E402

from active_annotator import protocol  # noqa: E402
from active_annotator.sampling import suggest  # noqa: E402
from active_annotator.simulate import Oracle, _start_labels, log_pixel_axis  # noqa: E402

IMAGE_CASES = ("micronuclei_hela", "quokka_photo", "ct_lung_lesion", "mri_brain_lesion", "mri_brain_tissue")
CONFIGS = ("default", "strong")
BUDGETS = (100, 300, 1000, 3000)


def label_sequence(truth, region, patch, budgets, seed, oracle="classes", batch=5, radius=2,
                   max_rounds=2000):
    """``[(budget, labels)]``: the random-strategy annotator's labels frozen at each budget.

    ``labels`` is the first label set holding at least ``budget`` pixels; a
    budget the annotation region cannot reach is left out.
    """
    truth_ann = np.where(region, truth, 0)
    cands = protocol.candidates_in(region, patch)
    annotator = Oracle(radius, oracle, seed=seed)
    labels = _start_labels(truth_ann, radius, seed, prefer=protocol._interior(truth_ann, radius))
    classes = np.unique(truth[truth != 0])
    # the classes/stroke annotators do not look at the prediction: a flat one is passed
    flat = np.full((len(classes),) + truth.shape, 1.0 / len(classes), np.float32)
    out, todo = [], sorted(budgets)
    for r in range(max_rounds):
        n = int((labels != 0).sum())
        while todo and n >= todo[0]:
            out.append((todo.pop(0), labels.copy()))
        if not todo:
            break
        picks = suggest(cands, labelled=labels, strategy="random", n=batch, seed=seed * 100003 + r)
        if not picks:
            break
        for s in picks:
            annotator.label(s.candidate, truth_ann, flat, classes, labels)
    return out


def score(case, labels, config, test, trees, jobs, seed):
    """``(macro Jaccard in the test region, seconds, extra)`` of one configuration."""
    from active_annotator.classifier import PixelClassifier

    fs, stages, cw, kw = _image_configs(case["spatial_ndim"], case.get("spacing"))[config]
    t0 = time.perf_counter()
    clf = PixelClassifier(fs, n_estimators=trees, n_jobs=jobs, random_state=seed, stages=stages,
                          class_weight=cw, **kw)
    clf.fit(case["image"], labels.astype(np.uint16), channel_axis=case["channel_axis"])
    pred = np.asarray(clf.predict(case["image"], channel_axis=case["channel_axis"]))
    truth_test = np.where(test, case["truth"], 0)
    jac = datasets.jaccard(truth_test, pred, case["classes_of_interest"])
    extra = {}
    if cw == "auto":
        extra = {"class_weight": clf.class_weight_, "context_sigmas": list(getattr(clf, "context_sigmas_", []))}
    return float(np.nanmean(list(jac.values()))), time.perf_counter() - t0, extra


def summarise(rows, budgets):
    """``{case: {budget: {config: {median, q25, q75, n}, "px": median px, "diff": ...}}}``."""
    out = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        out[case] = {}
        for b in budgets:
            sel = [r for r in rows if r["case"] == case and r["budget"] == b]
            if not sel:
                continue
            cell = {"px_median": float(np.median([r["labelled_pixels"] for r in sel if r["config"] == "default"]))}
            for c in CONFIGS:
                v = np.array([r["score"] for r in sel if r["config"] == c])
                cell[c] = {"median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)),
                           "q75": float(np.quantile(v, 0.75)), "n": int(v.size)}
            by_seed = {}
            for r in sel:
                by_seed.setdefault(r["seed"], {})[r["config"]] = r["score"]
            d = np.array([s["strong"] - s["default"] for s in by_seed.values() if len(s) == 2])
            cell["diff_of_medians"] = cell["strong"]["median"] - cell["default"]["median"]
            cell["paired_diff_median"] = float(np.median(d))
            cell["strong_wins"], cell["strong_losses"] = int((d > 0).sum()), int((d < 0).sum())
            cell["goal_met"] = bool(cell["diff_of_medians"] >= 0)
            out[case][b] = cell
    return out


def table(summary) -> str:
    lines = ["| case | budget (median px) | default median [IQR] | strong median [IQR] | strong - default "
             "(medians) | paired diff median (wins/losses) | at or above |",
             "|---|---|---|---|---|---|---|"]
    for case, cells in summary.items():
        for b, c in cells.items():
            fmt = {k: f"{c[k]['median']:.3f} [{c[k]['q25']:.3f}-{c[k]['q75']:.3f}]" for k in CONFIGS}
            lines.append(f"| {case} | {b} ({c['px_median']:.0f}) | {fmt['default']} | {fmt['strong']} | "
                         f"{c['diff_of_medians']:+.3f} | {c['paired_diff_median']:+.3f} "
                         f"({c['strong_wins']}/{c['strong_losses']}) | {'yes' if c['goal_met'] else 'no'} |")
    lines.append("")
    lines.append("| case | goal (strong >= default at every budget) | worst budget: strong - default |")
    lines.append("|---|---|---|")
    for case, cells in summary.items():
        worst = min(cells, key=lambda b: cells[b]["diff_of_medians"])
        ok = all(c["goal_met"] for c in cells.values())
        below = [str(b) for b, c in cells.items() if not c["goal_met"]]
        lines.append(f"| {case} | {'met' if ok else 'not met (below at ' + ', '.join(below) + ' px)'} | "
                     f"{worst}: {cells[worst]['diff_of_medians']:+.3f} |")
    return "\n".join(lines) + "\n"


def figure(rows, summary, title=""):
    from matplotlib.figure import Figure

    cases = list(summary)
    ncol = min(3, len(cases))
    nrow = (len(cases) + ncol - 1) // ncol
    fig = Figure(figsize=(4.6 * ncol, 3.6 * nrow), layout="constrained")
    colours = {"default": "tab:blue", "strong": "tab:red"}
    for i, case in enumerate(cases):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        cells = summary[case]
        bs = list(cells)
        px = [cells[b]["px_median"] for b in bs]
        for c in CONFIGS:
            med = [cells[b][c]["median"] for b in bs]
            ax.plot(px, med, "o-", color=colours[c], lw=1.8, label=f"{c} (median of {cells[bs[0]][c]['n']})")
            ax.fill_between(px, [cells[b][c]["q25"] for b in bs], [cells[b][c]["q75"] for b in bs],
                            color=colours[c], alpha=0.2)
        log_pixel_axis(ax)
        ax.set_xlabel("labelled pixels")
        ax.set_ylabel("macro Jaccard (test region)")
        ax.set_title(case, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(IMAGE_CASES))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
    p.add_argument("--oracle", default="classes", choices=("classes", "stroke"))
    p.add_argument("--batch", type=int, default=5)
    p.add_argument("--trees", type=int, default=50)
    p.add_argument("--jobs", type=int, default=1, help="forest threads (default 1)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="crop each case to this many pixels (default the suite's MAX_PIXELS)")
    p.add_argument("--out", default=str(Path.home() / ".cache/active-annotator/strong_curves"))
    a = p.parse_args(argv)
    budgets = [int(b) for b in a.budgets.split(",") if b]
    out = Path(a.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    threads = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    print(f"cpu cores {os.cpu_count()}, forest threads {a.jobs}, {threads}, load average {os.getloadavg()}")
    print(f"budgets {budgets}, seeds 0..{a.seeds - 1}, oracle {a.oracle}, batch {a.batch}, {a.trees} trees, "
          "random strategy\n", flush=True)
    rows = []
    t_all = time.perf_counter()
    for name in a.cases.split(","):
        t0 = time.perf_counter()
        case = crop_case(datasets.load(name), a.max_pixels)
        truth = case["truth"]
        patch = protocol.default_patch(truth.shape)
        regions = protocol.checkerboard_splits(truth.shape, patch)
        print(f"{name}: shape {truth.shape}, crop {case.get('crop')} (at most "
              f"{a.max_pixels or MAX_PIXELS[truth.ndim]} px), patch {patch}", flush=True)
        for seed in range(a.seeds):
            sp = seed % len(regions)
            region = regions[sp]
            test = ~region & (truth != 0)
            for b, labels in label_sequence(truth, region, patch, budgets, seed, a.oracle, a.batch):
                n = int((labels != 0).sum())
                for config in CONFIGS:
                    s, sec, extra = score(case, labels, config, test, a.trees, a.jobs, seed)
                    rows.append({"case": name, "seed": seed, "split": sp, "budget": b, "labelled_pixels": n,
                                 "config": config, "score": s, "seconds": round(sec, 2), **extra})
                    print(f"  {name} seed {seed} budget {b} ({n} px) {config}: {s:.3f} ({sec:.1f} s"
                          f"{', ' + str(extra) if extra else ''}) load {os.getloadavg()[0]:.2f}", flush=True)
        print(f"{name}: {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()}\n", flush=True)
        summ = summarise(rows, budgets)
        (out / "curves.json").write_text(json.dumps({"settings": vars(a) | {"threads": threads},
                                                     "rows": rows, "summary": summ}, indent=1, default=str))
    summ = summarise(rows, budgets)
    text = table(summ)
    (out / "curves.md").write_text(text)
    title = (f"strong vs default, same labels (random picks, {a.oracle} annotator, protocol v2 splits); "
             f"median and IQR over {a.seeds} seeds")
    figure(rows, summ, title).savefig(out / "curves.png", dpi=110)
    print(text)
    print(f"{time.perf_counter() - t_all:.0f} s in all; load average {os.getloadavg()}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
