"""Shared measurement rules of the benchmarks (issue 18).

Every benchmark: a warm-up call, then at least 5 timed repeats; the median
and the spread (min-max) of wall time, and the CPU time *of the same
repeats* (median); the load average before and after (the dev machine is
shared); results as a Markdown table on stdout and, only with ``--out``, as
JSON in a file of the user's choosing (nothing is written into the
repository unless asked).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measure(fn, repeat: int = 5) -> dict:
    """Warm up once, then time ``repeat`` calls; returns medians, spread and the last output."""
    out = fn()
    walls, cpus = [], []
    for _ in range(max(1, repeat)):
        del out
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {"wall_median": float(np.median(walls)), "wall_min": float(min(walls)),
            "wall_max": float(max(walls)), "cpu_median": float(np.median(cpus)),
            "repeats": len(walls), "output": out}


def row(res: dict) -> str:
    return (f"{res['wall_median']:.3f} | {res['wall_min']:.3f}-{res['wall_max']:.3f} "
            f"| {res['cpu_median']:.3f}")


def header(what: str, threads: int, repeat: int) -> str:
    return (f"{what}; {threads} threads for every engine; median of {repeat} repeats after a "
            f"warm-up; load average {load()} on {os.cpu_count()} cores ({platform.processor() or 'cpu'})")


def write_json(path: str | None, payload: dict) -> None:
    """Write ``payload`` (plus the load average) as JSON to ``path`` atomically, if given."""
    if not path:
        return
    target = Path(path)
    payload = {**payload, "load_after": load(), "cpu_count": os.cpu_count()}
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    os.replace(tmp, target)
    print(f"wrote {target}")


def strip(res: dict) -> dict:
    return {k: v for k, v in res.items() if k != "output"}
