"""bioimage.io export of the fine-tuned CNN: bioimageio.spec validates it, bioimageio.core runs it
to the tool's own probabilities, offline (every proxy points at a closed port)."""

import zipfile

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("bioimageio.spec")
pytest.importorskip("bioimageio.core")

from active_annotator.bioimage import export_cnn, validate
from active_annotator.cnn import CNNClassifier, CNNConfig
from active_annotator.errors import InputError

DEAD = "http://127.0.0.1:9"  # discard port: any download attempt fails at once


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, DEAD)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("BIOIMAGEIO_CACHE_PATH", str(tmp_path / "bioimageio-cache"))


def _train(channels=1):
    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (64, 64, channels)).astype(np.float32)
    img[:32] += 3.0
    lab = np.zeros((64, 64), np.uint8)
    lab[2:10, ::3] = 2
    lab[50:60, ::3] = 1
    cfg = CNNConfig(epochs=2, batches_per_epoch=2, batch_size=4, warm_start_epochs=0)
    return CNNClassifier(cfg, device="cpu", n_threads=1).fit(img, lab, channel_axis=-1)


@pytest.fixture(scope="module")
def cnn():
    return _train()


@pytest.fixture(scope="module")
def package(cnn, tmp_path_factory):
    return export_cnn(cnn, tmp_path_factory.mktemp("pkg") / "cnn.zip", class_names={1: "background", 2: "cell"})


def test_package_holds_rdf_weights_and_test_tensors_with_axes_and_halo(package, cnn):
    with zipfile.ZipFile(package) as z:
        names = set(z.namelist())
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        test_out = np.load(z.open("test_output.npy"))
    assert {"rdf.yaml", "weights.pt", "test_input.npy", "test_output.npy", "README.md"} <= names
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5")
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a["type"] for a in inp["axes"]] == ["batch", "channel", "space", "space"]
    assert [a.get("halo") for a in out["axes"][2:]] == [cnn.halo, cnn.halo]
    assert out["axes"][1]["channel_names"] == ["background", "cell"]
    assert inp["axes"][2]["size"]["step"] == cnn.config_.multiple
    assert "torchscript" in rdf["weights"]
    assert test_out.shape[:2] == (1, 2)
    np.testing.assert_allclose(test_out.sum(axis=1), 1.0, atol=1e-5)


def test_bioimageio_spec_validates_and_core_test_passes_offline(package):
    from bioimageio.core import test_model

    assert validate(package) == "valid-format"
    summary = test_model(str(package))
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    assert any("Reproduce test outputs" in d.name and d.status == "passed" for d in summary.details)


@pytest.mark.parametrize("shape", [(150, 133), (300, 280)])  # odd sizes; 300x280 spans several tool tiles
def test_bioimageio_core_reproduces_the_tools_probabilities(package, cnn, shape):
    from bioimageio.core import Tensor, load_model_description, predict

    img = np.random.default_rng(5).normal(1.0, 2.0, shape).astype(np.float32)
    descr = load_model_description(str(package))
    out = predict(model=descr, inputs={"raw": Tensor(img[None, None], dims=("batch", "channel", "y", "x"))})
    got = np.asarray(out.members["probabilities"].data)[0]
    np.testing.assert_allclose(got, cnn.predict_proba(img), rtol=0, atol=1e-5)


def test_two_channel_cnn_exports_and_runs(tmp_path):
    from bioimageio.core import Tensor, load_model_description, predict

    clf = _train(channels=2)
    pkg = export_cnn(clf, tmp_path / "two")
    assert pkg.name == "two.zip"
    img = np.random.default_rng(2).normal(0, 1, (2, 80, 72)).astype(np.float32)
    out = predict(model=load_model_description(str(pkg)),
                  inputs={"raw": Tensor(img[None], dims=("batch", "channel", "y", "x"))})
    np.testing.assert_allclose(np.asarray(out.members["probabilities"].data)[0],
                               clf.predict_proba(img, channel_axis=0), atol=1e-5)


def test_bad_test_input_and_1d_cnn_are_refused(cnn, tmp_path):
    with pytest.raises(InputError, match="twice the CNN's halo"):
        export_cnn(cnn, tmp_path / "x.zip", test_input=np.zeros((20, 20), np.float32))
    with pytest.raises(InputError, match="channels=1"):
        export_cnn(cnn, tmp_path / "x.zip", test_input=np.zeros((3, 80, 80), np.float32))
    sig = CNNClassifier(CNNConfig(dims=1, epochs=1, batches_per_epoch=1, batch_size=2, warm_start_epochs=0),
                        device="cpu", n_threads=1)
    x = np.random.default_rng(0).normal(size=400).astype(np.float32)
    y = np.zeros(400, np.uint8)
    y[:50], y[300:350] = 1, 2
    sig.fit(x, y)
    with pytest.raises(InputError, match="1-D"):
        export_cnn(sig, tmp_path / "s.zip")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cli_export_bioimageio(cnn, tmp_path, capsys):
    from active_annotator.cli import main

    model = cnn.save(tmp_path / "m.aacnn")
    assert main(["export-bioimageio", "--model", str(model), "--output", str(tmp_path / "out.zip")]) == 0
    assert "bioimageio.spec: valid-format" in capsys.readouterr().out
    assert main(["export-bioimageio", "--model", str(tmp_path / "missing.aacnn"),
                 "--output", str(tmp_path / "o.zip")]) == 1
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_3d_cnn_exports_with_zyx_axes_and_runs(tmp_path):
    """About a minute on 2 cores: the smallest 3-D input with a core left is 68^3 (halo 32)."""
    from bioimageio.core import Tensor, load_model_description, predict

    rng = np.random.default_rng(0)
    vol = rng.normal(0, 1, (24, 32, 32)).astype(np.float32)
    vol[:12] += 3.0
    lab = np.zeros(vol.shape, np.uint8)
    lab[2:6, ::4, ::4] = 2
    lab[18:22, ::4, ::4] = 1
    cfg = CNNConfig(dims=3, widths=[4, 8, 16], epochs=1, batches_per_epoch=1, batch_size=2,
                    warm_start_epochs=0, patch_size=16)
    clf = CNNClassifier(cfg, device="cpu", n_threads=1).fit(vol, lab)
    pkg = export_cnn(clf, tmp_path / "c3.zip")
    with zipfile.ZipFile(pkg) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
    assert [a.get("id") for a in rdf["inputs"][0]["axes"][2:]] == ["z", "y", "x"]
    img = rng.normal(1.0, 2.0, (70, 68, 69)).astype(np.float32)
    out = predict(model=load_model_description(str(pkg)),
                  inputs={"raw": Tensor(img[None, None], dims=("batch", "channel", "z", "y", "x"))})
    np.testing.assert_allclose(np.asarray(out.members["probabilities"].data)[0], clf.predict_proba(img),
                               atol=1e-5)
