"""Print the markdown tables of docs/active_learning.md from simulation outputs.

Reads ``<name>.csv`` and ``<name>_summary.json`` written by
``active-annotator simulate --output DIR --name NAME`` and recomputes the
summary (pixels to target per seed, to stay at target, mean-curve crossing,
final Jaccard, savings against random)::

    python scripts/simulation_table.py docs/results nuclei2d_classes micronuclei2d_classes
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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__)
        return 2
    folder = Path(argv[0])
    for name in argv[1:]:
        print(table(load(folder, name), name), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
