"""Run Python code in a child process with its memory capped.

Crafted files can make a regression allocate tens of GiB or crash the
interpreter; in a capped child that becomes a failed assertion (a
MemoryError or a non-zero exit code) instead of taking the machine or the
test run down.
"""

import os
import resource
import subprocess
import sys
from pathlib import Path

import active_annotator

SRC = Path(active_annotator.__file__).resolve().parents[1]
HELPERS = Path(__file__).resolve().parent


def run_capped(code: str, *, mem_gib: float = 3.0, timeout: float = 300, env: dict | None = None,
               args=()) -> subprocess.CompletedProcess:
    """Run ``python -c code`` with the address space limited to ``mem_gib`` GiB."""
    limit = int(mem_gib * (1 << 30))

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(SRC), str(HELPERS)] + [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p])
    full_env.setdefault("OMP_NUM_THREADS", "1")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=cap, env=full_env)


def crashed(r: subprocess.CompletedProcess) -> str:
    """A readable account of a child's exit for assertion messages."""
    return f"exit {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}"
