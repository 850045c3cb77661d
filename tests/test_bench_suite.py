"""The active-learning suite's own logic: the crop rule and the rule that picks the default."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_active_learning as suite  # noqa: E402

from active_annotator import protocol  # noqa: E402


def test_crop_keeps_the_rarest_class_of_interest():
    truth = np.ones((400, 400), np.uint8)
    truth[380:390, 380:390] = 3  # a rare class only in one corner
    truth[:200, :200] = 2
    d = {"truth": truth, "image": truth.astype(np.float32)[..., None].repeat(3, -1), "channel_axis": 2,
         "classes_of_interest": [2, 3]}
    out = suite.crop_case(d, 100 * 100)
    assert out["truth"].shape == (100, 100) and out["image"].shape == (100, 100, 3)
    assert (out["truth"] == 3).sum() == 100
    np.testing.assert_array_equal(out["image"][..., 0], out["truth"])
    assert suite.crop_case(d, 10**6) is d  # small enough: untouched


def _result(scores: dict, n_seeds=6):
    rows = []
    for name, (a, b) in scores.items():
        for s in range(n_seeds):
            for r, (px, v) in enumerate([(20, a), (200, b + 0.001 * s)]):
                rows.append({"strategy": name, "seed": s, "split": 0, "round": r,
                             "labelled_pixels": px, "score": v})
    res = protocol.ProtocolResult(rows, {"0": {"dense": 1.0}}, {})
    res.finish_references()
    return res


def test_choose_default_prefers_the_strategy_that_meets_both_goals_everywhere(tmp_path, capsys):
    cases = {
        # steady wins everywhere by a little; spiky wins big once and loses to entropy once
        "a_classes": {"steady": (0.5, 0.9), "spiky": (0.7, 0.95), "entropy": (0.45, 0.88), "random": (0.3, 0.8)},
        "b_classes": {"steady": (0.5, 0.9), "spiky": (0.3, 0.8), "entropy": (0.45, 0.88), "random": (0.3, 0.8)},
    }
    suite_json = {}
    for key, sc in cases.items():
        (tmp_path / f"{key}.json").write_text(_result(sc).to_json())
        suite_json[key] = {"case": key[0], "oracle": "classes", "kind": "2d-gray"}
    (tmp_path / "suite.json").write_text(json.dumps(suite_json))
    assert suite.choose_default(tmp_path) == "steady"
    table = capsys.readouterr().out
    assert "| steady | 2 | 0 |" in table and "| spiky | 1 |" in table
