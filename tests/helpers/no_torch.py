"""Run Python code in a child interpreter with torch hidden, as if it were not installed.

The child gets a finder that refuses torch: a None entry in ``sys.modules``
would also be seen by scipy's array-API probe, which no real install has.
"""

import subprocess
import sys

HIDE_TORCH = (
    "import sys, importlib.abc\n"
    "class NoTorch(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    "sys.meta_path.insert(0, NoTorch())\n"
)


def run_without_torch(code: str, *args) -> str:
    """``python -c code *args`` with torch hidden; its stdout (it must exit 0)."""
    out = subprocess.run([sys.executable, "-c", HIDE_TORCH + code, *map(str, args)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
