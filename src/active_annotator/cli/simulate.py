"""``active-annotator simulate``: learning curves of sampling strategies with an oracle annotator.

The library functions are :func:`active_annotator.simulate.simulate` (protocol
1) and :func:`active_annotator.protocol.run` (protocol 2).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.arrays import read_array
from ..sampling import DEFAULT_STRATEGY, STRATEGIES
from ..simulate import ORACLE_MODES, SimulationResult, simulate
from ._args import add_channel_axis, add_trees, resolve_channel_axis

# -- command line ----------------------------------------------------------------


def _write_outputs(result: SimulationResult, out: Path, name: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{name}.csv"
    png_path = out / f"{name}.png"
    json_path = out / f"{name}_summary.json"
    result.to_csv(csv_path)
    result.figure(title=name).savefig(png_path, dpi=120)
    summary = {"dense_jaccard": result.dense_jaccard, "target": result.target,
               "settings": result.settings, "strategies": result.summary()}
    json_path.write_text(json.dumps(summary, indent=2))
    return {"csv": csv_path, "png": png_path, "summary": json_path, "data": summary}


def _to_target_text(s: dict) -> str:
    """How many labelled pixels a strategy needed to reach the target, in words."""
    if s["pixels_to_target_mean"] is not None:
        return f"{s['pixels_to_target_mean']:.0f} px to target ({s['reached']}/{s['seeds']} seeds)"
    if s["reached"] == 0:
        return (f"target not reached ({s['seeds']} seed{'s' if s['seeds'] != 1 else ''}, "
                f"{s['max_labelled_pixels']:.0f} px labelled at the end)")
    return (f"target reached in {s['reached']}/{s['seeds']} seeds only "
            f"(more than {s['pixels_to_target_lower_bound']:.0f} px on average)")


def _merge(truth: np.ndarray, rules: Sequence[str]) -> np.ndarray:
    """Apply ``FROM=TO`` class merges to a copy of ``truth``."""
    if not rules:
        return truth
    out = np.array(truth, copy=True)
    for rule in rules:
        try:
            a, b = (int(v) for v in rule.split("="))
        except ValueError:
            raise InputError(f"--merge expects FROM=TO with class numbers, e.g. 3=2; got {rule!r}.") from None
        if not (truth == a).any():
            raise InputError(f"--merge {rule}: the truth has no class {a} "
                             f"(it has {np.unique(truth[truth != 0]).tolist()}).")
        if b < 0:
            raise InputError(f"--merge {rule}: classes are non-negative integers.")
        out[truth == a] = b
    return out


def _run(args: argparse.Namespace) -> int:
    if args.sample:
        from .. import data

        d = data.load(args.sample)
        image, truth, name = d["image"], d["truth"], args.sample
    else:
        if not (args.image and args.truth):
            raise InputError("Give --image and --truth files, or --sample nuclei2d|micronuclei2d|nuclei3d.")
        image, truth = read_array(args.image), read_array(args.truth)
        name = Path(args.image).stem
    args.channel_axis = resolve_channel_axis(args.channel_axis, np.shape(image), np.shape(truth),
                                             "simulate")
    truth = _merge(truth, args.merge)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    stem = args.name or f"simulation_{name}"
    if args.protocol == 2:
        return _run_v2(args, image, truth, strategies, Path(args.output), stem)
    result = simulate(
        image, truth, strategies=strategies, rounds=args.rounds or 20, batch=args.batch, seeds=args.seeds or 5,
        patch=args.patch, radius=args.radius, holdout=args.holdout, n_estimators=args.trees,
        n_jobs=args.jobs, channel_axis=args.channel_axis, progress=not args.quiet, oracle=args.oracle,
        distance_scale=args.hybrid_scale, hybrid_avoid=args.hybrid_avoid,
        label_scale=args.label_scale,
    )
    files = _write_outputs(result, Path(args.output), stem)
    print(f"dense labelling Jaccard {result.dense_jaccard:.3f}; target (95%) {result.target:.3f}")
    for s in files["data"]["strategies"]:
        sav = s["savings_vs_random"]
        sav_txt = "" if sav is None else f", {'>' if s['savings_is_lower_bound'] else ''}{sav:.1f}x fewer than random"
        print(f"  {s['strategy']:>16}: {_to_target_text(s)}, "
              f"final Jaccard {s['final_jaccard_mean']:.3f}{sav_txt}")
    print(f"wrote {files['csv']}, {files['png']}, {files['summary']}")
    return 0


def _run_v2(args, image, truth, strategies, out: Path, stem: str) -> int:
    from .. import protocol

    classes = [int(c) for c in args.classes.split(",")] if args.classes else None
    res = protocol.run(image, truth, strategies, rounds=args.rounds or 25, batch=args.batch,
                       seeds=args.seeds or 10, patch=args.patch, radius=args.radius, oracle=args.oracle,
                       n_estimators=args.trees, n_jobs=args.jobs, channel_axis=args.channel_axis,
                       classes=classes, n_splits=args.splits, progress=not args.quiet,
                       candidates=args.candidates)
    out.mkdir(parents=True, exist_ok=True)
    summary = res.summary(strategies[0])
    res.to_csv(out / f"{stem}.csv")
    res.figure(title=stem).savefig(out / f"{stem}.png", dpi=120)
    (out / f"{stem}.json").write_text(res.to_json())
    (out / f"{stem}_summary.json").write_text(json.dumps({"settings": res.settings, **summary}, indent=2))
    print(protocol.format_summary(summary, f"{stem} (protocol v2; default = first strategy, {strategies[0]})"))
    print(f"wrote {out / (stem + '.csv')}, {out / (stem + '.png')}, {out / (stem + '_summary.json')}")
    return 0


def add_parser(subparsers) -> None:
    """Register ``active-annotator simulate``."""
    p = subparsers.add_parser(
        "simulate",
        help="compare sampling strategies with an oracle annotator (learning curves)",
        description="Label suggested candidates from a ground-truth mask round after round, "
                    "retrain, and write Jaccard against labelled pixels (CSV, PNG, summary JSON).",
    )
    p.add_argument("--image", help="image file (.tif or .npy)")
    p.add_argument("--truth", help="ground-truth mask (.tif or .npy): classes 1..K, 0 = unknown")
    p.add_argument("--sample", help="use bundled sample data instead: nuclei2d, micronuclei2d or nuclei3d")
    default_strategies = ",".join(dict.fromkeys([DEFAULT_STRATEGY, "entropy", "random"]))
    p.add_argument("--strategies", default=default_strategies,
                   help=f"comma-separated, from {','.join(STRATEGIES)} (default {default_strategies}; "
                        "protocol 2 tests the first against the others)")
    p.add_argument("--protocol", type=int, default=2, choices=(1, 2),
                   help="2 (default): checkerboard splits, ceiling reference, AULC, censored medians and "
                        "paired tests (docs/active_learning.md); 1: the earlier single split, to "
                        "reproduce older numbers")
    p.add_argument("--classes", default=None,
                   help="protocol 2: comma-separated classes scored (default: all but the largest)")
    p.add_argument("--splits", type=int, default=4, help="protocol 2: checkerboard splits (default 4)")
    p.add_argument("--candidates", default="patches", choices=("patches", "superpixels"),
                   help="protocol 2: candidate units (default patches)")
    p.add_argument("--rounds", type=int, default=None, help="suggestion rounds (default 25; protocol 1: 20)")
    p.add_argument("--batch", type=int, default=5, help="suggestions labelled per round (default 5)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 10; protocol 1: 5)")
    p.add_argument("--patch", type=int, default=None, help="candidate patch edge in pixels (default: protocol 2 sizes it to the image; "
                        "protocol 1: 32 in 2-D, 8 in 3-D)")
    p.add_argument("--radius", type=int, default=2, help="oracle brush radius in pixels (default 2)")
    p.add_argument("--oracle", default="classes", choices=ORACLE_MODES,
                   help="classes: one dab on each class the suggestion shows (default); "
                        "passive: one dab at a random pixel of it; "
                        "correct: one dab on the worst visible mistake in it")
    p.add_argument("--merge", action="append", default=[], metavar="FROM=TO",
                   help="relabel truth class FROM as TO before simulating, e.g. --merge 3=2 "
                        "(repeatable)")
    p.add_argument("--hybrid-scale", type=float, default=None,
                   help="hybrid's distance scale in pixels (default: the patch size)")
    p.add_argument("--hybrid-avoid", default="labels_and_picks", choices=("labels_and_picks", "picks"),
                   help="what hybrid keeps its distance from (default labels_and_picks)")
    p.add_argument("--label-scale", type=float, default=1.0,
                   help="hybrid's distance scale from labelled pixels, per pixel (default 1)")
    p.add_argument("--holdout", type=float, default=0.5,
                   help="protocol 1: test fraction of the longest axis (default 0.5)")
    add_trees(p, 50)
    p.add_argument("--jobs", type=int, default=1, help="training threads (default 1)")
    add_channel_axis(p)
    p.add_argument("--name", default=None, help="output file stem (default simulation_<image>)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
