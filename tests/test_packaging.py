"""The wheel, installed (not editable) into a fresh virtual environment, is a
working napari plugin: npe2 validates it, napari discovers its contributions,
the manifest is the top-level napari.yaml, and the sample data ships with it.

The venv sees the heavy dependencies (numpy, napari, ...) of this interpreter's
environment (a system Python or a virtual environment) through a ``.pth`` file
but gets napari-active-annotator itself only from the wheel; every check asserts that the modules come from the venv, not
from the source tree or an editable install.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DIST = "napari-active-annotator"
JUNK = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".venv*",
                              ".pytest_cache", ".hypothesis", "active-annotator-demo", "out",
                              "*.pyc")


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the working tree (the tree stays untouched)."""
    work = tmp_path_factory.mktemp("build")
    src = work / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=JUNK)
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", work / "dist",
          src], env=_clean_env())
    wheels = sorted((work / "dist").glob("napari_active_annotator-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed; returns its python, bin and site-packages."""
    root = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", root])
    python = root / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   env=_clean_env()).stdout.strip()
    # The heavy dependencies come from *this* interpreter's environment. When pytest
    # itself runs in a virtual environment, ``--system-site-packages`` would show the
    # base Python's packages instead, so the new venv adds this environment's site
    # folders after its own (processing their .pth files, as a site folder does).
    outer = [p for p in site.getsitepackages() + [site.getusersitepackages()]
             if p in sys.path and Path(p).is_dir()]
    (Path(purelib) / "_outer_environment.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in outer))
    # --no-index: the package's own dependencies must already be satisfied, nothing downloads
    _run([python, "-m", "pip", "install", "--no-index", "--no-cache-dir", wheel],
         env=_clean_env())
    return {"python": python, "bin": root / "bin", "site": Path(purelib), "root": root}


def _in_venv(venv, code: str, cwd: Path) -> dict:
    """Run ``code`` with the venv's python outside the repository; it prints one JSON line."""
    out = _run([venv["python"], "-c", code], cwd=cwd, env=_clean_env()).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_wheel_carries_manifest_and_sample_data_as_files(wheel):
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        manifest = z.read("active_annotator_napari/napari.yaml").decode()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        entry_points = z.read(entry_points).decode()
    assert manifest == (REPO / "napari.yaml").read_text()
    for f in (REPO / "sample_data").glob("*.tif"):
        assert f"active_annotator/sample_data/{f.name}" in names
    assert "active_annotator_napari:napari.yaml" in entry_points
    assert "active_annotator.cli:main" in entry_points
    assert not any(n.startswith(("tests/", "scripts/")) for n in names)


def test_installed_package_comes_from_the_venv_not_the_source_tree(venv, tmp_path):
    got = _in_venv(venv, (
        "import json, active_annotator, active_annotator_napari\n"
        "from importlib.metadata import distribution\n"
        "d = distribution('napari-active-annotator')\n"
        "print(json.dumps({'core': active_annotator.__file__,\n"
        "  'plugin': active_annotator_napari.__file__,\n"
        "  'direct_url': d.read_text('direct_url.json') or ''}))\n"
    ), cwd=tmp_path)
    for key in ("core", "plugin"):
        assert Path(got[key]).is_relative_to(venv["site"]), got
        assert not Path(got[key]).resolve().is_relative_to(REPO), got
    assert '"editable": true' not in got["direct_url"]


def test_venv_takes_the_dependencies_from_this_environment(venv, tmp_path):
    # from a virtual environment too: the base Python's copies (or none) would not be tested
    import numpy
    import sklearn

    got = _in_venv(venv, "import json, numpy, sklearn\n"
                         "print(json.dumps([numpy.__file__, sklearn.__file__]))\n", cwd=tmp_path)
    assert got == [numpy.__file__, sklearn.__file__]


def test_npe2_validates_the_installed_plugin(venv, tmp_path):
    done = _run([venv["python"], "-m", "npe2", "validate", "--imports", DIST], cwd=tmp_path,
                env=_clean_env())
    assert "valid" in done.stdout.lower() + done.stderr.lower()


def test_napari_discovers_widget_samples_reader_and_writer(venv, tmp_path):
    got = _in_venv(venv, (
        "import json\n"
        "from npe2 import PluginManager\n"
        "pm = PluginManager()\n"
        "pm.discover()\n"
        "mf = pm.get_manifest('napari-active-annotator')\n"
        "c = mf.contributions\n"
        "from napari.plugins import _initialize_plugins\n"
        "_initialize_plugins()\n"
        "from napari.plugins import _npe2 as n2\n"
        "widgets = [w.display_name for w in c.widgets or []]\n"
        "print(json.dumps({\n"
        "  'dist_location': str(mf.package_metadata and __import__('importlib.metadata').metadata.distribution(mf.name).locate_file('')),\n"
        "  'widgets': widgets,\n"
        "  'samples': [s.key for s in c.sample_data or []],\n"
        "  'readers': [p for r in c.readers or [] for p in r.filename_patterns],\n"
        "  'writers': [e for w in c.writers or [] for e in w.filename_extensions],\n"
        "  'napari_widgets': [w for _kind, (plugin, ws) in n2.widget_iterator() if plugin == 'napari-active-annotator' for w in ws],\n"
        "}))\n"
    ), cwd=tmp_path)
    assert Path(got["dist_location"]).is_relative_to(venv["site"]), got["dist_location"]
    # everything the top-level manifest declares is discovered, and nothing else
    declared = yaml.safe_load((REPO / "napari.yaml").read_text())["contributions"]
    widgets = [w["display_name"] for w in declared["widgets"]]
    assert "Pixel classifier" in widgets
    assert got["widgets"] == widgets
    assert got["napari_widgets"] == widgets
    assert "nuclei2d" in got["samples"]
    assert sorted(got["samples"]) == sorted(s["key"] for s in declared["sample_data"])
    assert "*.aalabels" in got["readers"]
    assert got["readers"] == [p for r in declared["readers"] for p in r["filename_patterns"]]
    assert ".aalabels" in got["writers"]
    assert got["writers"] == [e for w in declared["writers"] for e in w["filename_extensions"]]


def test_installed_manifest_is_the_top_level_napari_yaml(venv, tmp_path):
    got = _in_venv(venv, (
        "import json\n"
        "from importlib import resources\n"
        "f = resources.files('active_annotator_napari') / 'napari.yaml'\n"
        "print(json.dumps({'path': str(f), 'text': f.read_text()}))\n"
    ), cwd=tmp_path)
    installed = Path(got["path"])
    assert installed.is_relative_to(venv["site"]) and not installed.is_symlink()
    assert got["text"] == (REPO / "napari.yaml").read_text()


def test_sample_data_opens_from_the_installed_package(venv, tmp_path):
    got = _in_venv(venv, (
        "import json\n"
        "from active_annotator import data\n"
        "d2, d3 = data.nuclei2d(), data.nuclei3d()\n"
        "print(json.dumps({'dir': str(data.sample_dir()),\n"
        "  'shapes2d': {k: list(v.shape) for k, v in d2.items()},\n"
        "  'shapes3d': {k: list(v.shape) for k, v in d3.items()}}))\n"
    ), cwd=tmp_path)
    assert Path(got["dir"]).is_relative_to(venv["site"]), got["dir"]
    assert got["shapes2d"] == {k: [512, 512] for k in ("image", "labels", "truth", "objects")}
    assert got["shapes3d"] == {k: [31, 61, 57] for k in ("image", "truth", "labels")}


def test_installed_command_runs_the_headless_demo(venv, tmp_path):
    done = _run([venv["bin"] / "active-annotator", "demo", "--headless", "--output", "out",
                 "--n-estimators", "20"], cwd=tmp_path, env=_clean_env())
    assert "Jaccard" in done.stdout
    assert (tmp_path / "out" / "overview.png").is_file()


def test_ci_runs_the_test_command_that_readme_gives():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = "bash scripts/run-tests.sh"
    assert f"```bash\n{command}\n```" in readme
    assert [ln for ln in ci.splitlines() if ln and not ln.startswith(("#", "set ", "cd "))] \
        == [command]
    assert '```bash\npip install ".[gui]" && active-annotator demo\n```' in readme
