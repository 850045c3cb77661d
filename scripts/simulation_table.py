"""Print the markdown tables of docs/active_learning.md from simulation outputs.

Reads ``<name>.csv`` and ``<name>_summary.json`` written by
``active-annotator simulate --output DIR --name NAME`` and recomputes the
summary (pixels to target per seed, to stay at target, mean-curve crossing,
final Jaccard, savings against random)::

    python scripts/simulation_table.py docs/results nuclei2d_classes micronuclei2d_classes

``--figure OUT.png`` also draws the learning curves of the runs side by side
(the README's figure).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from active_annotator.simulate import SimulationResult


def load(folder: Path, name: str) -> SimulationResult:
    with open(folder / f"{name}.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("seed", "round", "labelled_pixels"):
            r[k] = int(r[k])
        r["jaccard"] = float(r["jaccard"])
    d = json.loads((folder / f"{name}_summary.json").read_text())
    return SimulationResult(rows, d["dense_jaccard"], d["target"], d["settings"])


def _px(v) -> str:
    return "—" if v is None else f"{v:.0f}"


def table(res: SimulationResult, name: str) -> str:
    out = [f"**{name}**: dense Jaccard {res.dense_jaccard:.3f}, target {res.target:.3f}", "",
           "| strategy | seeds reaching target | pixels to target, mean (per seed) | pixels to stay at "
           "target, mean | mean curve reaches target at | final Jaccard (mean ± sd) at px | "
           "savings vs random |",
           "|---|---|---|---|---|---|---|"]
    for s in res.summary():
        sav = s["savings_vs_random"]
        sav = "—" if sav is None else ("≥" if s["savings_is_lower_bound"] else "") + f"{sav:.1f}×"
        per = ", ".join(_px(v) for v in s["pixels_to_target"])
        out.append(f"| {s['strategy']} | {s['reached']}/{s['seeds']} | {_px(s['pixels_to_target_mean'])} "
                   f"({per}) | {_px(s['pixels_to_stay_at_target_mean'])} | "
                   f"{_px(s['pixels_to_target_mean_curve'])} | {s['final_jaccard_mean']:.3f} ± "
                   f"{s['final_jaccard_sd']:.3f} at {s['max_labelled_pixels']:.0f} | {sav} |")
    return "\n".join(out)


def figure(results: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0 * len(results), 4.2), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, res) in zip(axes, results.items()):
        res.figure(title=name, ax=ax)
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("names", nargs="+")
    ap.add_argument("--figure", type=Path, help="also draw the curves side by side into this PNG")
    args = ap.parse_args(argv)
    results = {name: load(args.folder, name) for name in args.names}
    for name, res in results.items():
        print(table(res, name), end="\n\n")
    if args.figure:
        figure(results, args.figure)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
