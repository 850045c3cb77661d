#!/usr/bin/env bash
# The project's test command, for a fresh Debian/Ubuntu machine (run as root,
# or as a user with sudo): installs the system libraries napari needs on a
# virtual display, the CPU build of torch, the package with its [dev] extra,
# then runs the whole test suite under Xvfb. Extra arguments go to pytest,
# e.g. `bash scripts/run-tests.sh -m "not slow"` or `... tests/test_demo.py`.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

echo "== system packages: Xvfb, Mesa (software OpenGL) and the X/Qt libraries napari needs"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    xvfb xauth libgl1 libgl1-mesa-dri libglx-mesa0 libegl1 libglib2.0-0 libfontconfig1 \
    libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
    libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 \
    libxcb-xkb1 libdbus-1-3 >/dev/null

echo "== torch (CPU build) first, so that the [cnn] extra does not pull a multi-GB CUDA build"
TORCH="torch==2.13.0"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
if python3 -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '2.13.0' or torch.version.cuda is not None)" 2>/dev/null; then
    echo "   $TORCH is installed, CPU build"
else
    # Ask pip which file "$TORCH" resolves to before installing it: on Linux, PyPI's
    # wheel is the CUDA build (it requires nvidia-* packages, several GB); the CPU
    # build is a local "+cpu" wheel (pip's find-links) or PyTorch's own index.
    report="$(mktemp)"
    python3 -m pip install --quiet --dry-run --ignore-installed --no-deps --report "$report" "$TORCH"
    if python3 - "$report" <<'PY'
import json, sys
pick = json.load(open(sys.argv[1]))["install"][0]
cuda = any(d.startswith("nvidia-") for d in pick["metadata"].get("requires_dist") or [])
print(f"   {pick['metadata']['version']}: {pick['download_info']['url']}")
sys.exit(1 if cuda else 0)
PY
    then
        python3 -m pip install --quiet "$TORCH"
    else
        echo "== WARNING: no CPU wheel of $TORCH found locally; PyPI's is the CUDA build (several GB)."
        echo "   Trying PyTorch's CPU index: pip install $TORCH --index-url $TORCH_CPU_INDEX"
        if ! python3 -m pip install --quiet --timeout 30 --retries 1 "$TORCH" --index-url "$TORCH_CPU_INDEX"; then
            echo "== WARNING: $TORCH_CPU_INDEX is not reachable: installing the CUDA build from PyPI"
            python3 -m pip install --quiet "$TORCH"
        fi
    fi
    rm -f "$report"
fi
python3 -c "import torch; print('   torch', torch.__version__, '(CUDA ' + torch.version.cuda + ')' if torch.version.cuda else '(CPU build)')"

echo "== napari-active-annotator with its [dev] extra (editable)"
# An uninstalled regular install can leave site-packages/active_annotator/ with only
# caches in it (older versions compiled numba kernels there); Python would import that
# leftover as an empty namespace package instead of the editable one. Remove such
# folders: they hold no source file.
python3 - <<'PY'
import shutil, sysconfig
from pathlib import Path
for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
    for name in ("active_annotator", "active_annotator_napari"):
        folder = Path(site) / name
        if folder.is_dir() and not folder.is_symlink() and not any(
                p.suffix in (".py", ".yaml", ".tif") for p in folder.rglob("*")):
            print(f"   removing {folder}: left over from an earlier install, caches only")
            shutil.rmtree(folder)
PY
python3 -m pip install --quiet -e ".[dev]"
if ! (cd /tmp && python3 -c "import active_annotator, sys; sys.exit(active_annotator.__version__ is None)"); then
    echo "== FAILED: active_annotator does not import after the install; a folder named"
    echo "   active_annotator without __init__.py on sys.path shadows it:"
    (cd /tmp && python3 -c "import active_annotator; print(list(active_annotator.__path__))") || true
    exit 1
fi

echo "== pytest under Xvfb"
log="$(mktemp)"
set +e
xvfb-run -a -s "-screen 0 1280x1024x24" \
    python3 -m pytest -W error::FutureWarning "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

summary="$(grep -E '^=+ .*( in [0-9.]+s|no tests ran).*=+$' "$log" | tail -n 1 || true)"
rm -f "$log"
echo "== pytest summary: ${summary:-(none printed)}"
if [ "$status" -eq 5 ]; then
    echo "== FAILED: pytest collected no tests (exit code 5)"
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "== FAILED: pytest exit code $status"
else
    echo "== OK"
fi
exit "$status"
