import csv
import json

import numpy as np
import pytest

from active_annotator import candidates as cand
from active_annotator.cli import main
from active_annotator.errors import InputError
from active_annotator.simulate import Oracle, SimulationResult, simulate


def _blobs(shape=(64, 64), seed=0):
    """A noisy image of bright disks and its truth (1 = background, 2 = disk)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    truth = np.ones(shape, np.uint8)
    for _ in range(10):
        cy, cx = rng.integers(4, shape[0] - 4), rng.integers(4, shape[1] - 4)
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(9, 30)] = 2
    image = (truth * 100 + rng.normal(0, 30, shape)).astype(np.float32)
    return image, truth


def test_oracle_dabs_the_most_wrong_interior_pixel_within_its_class():
    truth = np.ones((16, 16), np.uint8)
    truth[:, 8:] = 2
    proba = np.zeros((2, 16, 16), np.float32)
    proba[0] = 0.9  # predicts class 1 everywhere
    proba[1] = 0.1
    proba[:, 5, 8] = [0.999, 0.001]  # worst mistake, but on the class border
    proba[:, 5, 12] = [0.99, 0.01]  # nearly as wrong, well inside class 2
    labels = np.zeros((16, 16), np.uint8)
    c = cand.patches((16, 16), 16)[0]
    n = Oracle(radius=2, mode="correct").label(c, truth, proba, np.array([1, 2]), labels)
    assert labels[5, 12] == 2 and labels[5, 8] == 0
    assert n == (labels == 2).sum() == 13  # a whole radius-2 disk
    # a thin mistake (nothing interior) is still corrected, the dab cut at the class border
    truth2 = np.ones((8, 16), np.uint8)
    truth2[:, 8:10] = 2
    lab2 = np.zeros((8, 16), np.uint8)
    p2 = np.zeros((2, 8, 16), np.float32)
    p2[0] = 1.0  # class 1 everywhere: only the stripe is wrong
    p2[:, 3, 9] = [0.9, 0.1]  # and (3, 9) is the least wrong of it
    Oracle(2, "correct").label(cand.patches((8, 16), 16)[0], truth2, p2, np.array([1, 2]), lab2)
    assert lab2[3, 9] == 0 and (lab2 != 0).sum() > 0
    assert set(np.unique(lab2[lab2 != 0])) == {2} and (lab2[:, 8:10] != 0).sum() == (lab2 != 0).sum()
    empty = cand.Candidate(0, "patch", (slice(0, 0), slice(0, 0)), (0, 0))
    assert Oracle(1).label(empty, truth, proba, np.array([1, 2]), labels) == 0


def test_classes_oracle_dabs_every_class_the_candidate_shows_without_looking_at_the_model():
    truth = np.ones((20, 30), np.uint8)
    truth[2:12, 2:12] = 2  # a big nucleus
    truth[15:18, 24:27] = 3  # a tiny micronucleus: no pixel is 3 px deep, still dabbed
    proba = np.full((3, 20, 30), 1 / 3, np.float32)
    c = cand.patches((20, 30), (20, 30))[0]
    for seed in (0, 1):
        labels = np.zeros((20, 30), np.uint8)
        n = Oracle(radius=2, mode="classes", seed=seed).label(c, truth, proba, np.array([1, 2, 3]), labels)
        assert set(np.unique(labels[labels != 0])) == {1, 2, 3}
        np.testing.assert_array_equal(labels[labels != 0], truth[labels != 0])  # labels agree with truth
        assert (labels == 1).sum() == (labels == 2).sum() == 13  # interior dabs: whole disks
        assert 0 < (labels == 3).sum() <= 9 and n == (labels != 0).sum()
    # the model plays no part: other probabilities, same dabs for the same seed
    a, b = np.zeros((20, 30), np.uint8), np.zeros((20, 30), np.uint8)
    Oracle(2, "classes", seed=3).label(c, truth, proba, np.array([1, 2, 3]), a)
    Oracle(2, "classes", seed=3).label(c, truth, np.roll(proba, 1, axis=0), np.array([1, 2, 3]), b)
    np.testing.assert_array_equal(a, b)


def test_small_simulation_writes_rows_and_reaches_sensible_scores():
    image, truth = _blobs()
    res = simulate(image, truth, strategies=["hybrid", "random"], rounds=3, batch=2, seeds=2,
                   patch=16, n_estimators=10, progress=False)
    assert len(res.rows) == 2 * 2 * 4
    r0 = [r for r in res.rows if r["strategy"] == "hybrid" and r["seed"] == 0]
    assert [r["round"] for r in r0] == [0, 1, 2, 3]
    px = [r["labelled_pixels"] for r in r0]
    assert all(b > a for a, b in zip(px, px[1:]))  # every round adds labels
    # the default oracle paints at most one disk of radius 2 per class shown (2 classes)
    assert px[-1] - px[0] <= 3 * 2 * 2 * 13
    assert 0 < res.dense_jaccard <= 1 and res.target == pytest.approx(0.95 * res.dense_jaccard)
    # the same start for every strategy of a seed (a fair comparison)
    starts = {(r["strategy"], r["seed"]): r["labelled_pixels"] for r in res.rows if r["round"] == 0}
    assert starts[("hybrid", 0)] == starts[("random", 0)]
    summ = {s["strategy"]: s for s in res.summary()}
    assert set(summ) == {"hybrid", "random"} and summ["random"]["seeds"] == 2


def test_summary_counts_pixels_to_target_and_savings():
    rows = []
    for s, curve in (("hybrid", [0.5, 0.9, 0.95]), ("random", [0.5, 0.6, 0.9])):
        for seed in (0, 1):
            for r, j in enumerate(curve):
                rows.append({"strategy": s, "seed": seed, "round": r,
                             "labelled_pixels": 100 * (r + 1) * (1 if s == "hybrid" else 5), "jaccard": j})
    res = SimulationResult(rows, dense_jaccard=0.9 / 0.95, target=0.9)
    summ = {s["strategy"]: s for s in res.summary()}
    assert summ["hybrid"]["pixels_to_target_mean"] == 200
    assert summ["random"]["pixels_to_target_mean"] == 1500
    assert summ["hybrid"]["savings_vs_random"] == pytest.approx(7.5)
    assert not summ["hybrid"]["savings_is_lower_bound"]


def test_savings_lower_bound_counts_a_missed_seed_at_its_final_pixels_only():
    rows = []
    curves = {("hybrid", 0): [0.5, 0.95, 0.95], ("hybrid", 1): [0.5, 0.95, 0.95],
              ("random", 0): [0.5, 0.95, 0.95],  # reached at 1000 px
              ("random", 1): [0.5, 0.6, 0.7]}  # missed: needs more than its final 1500 px
    for (s, seed), curve in curves.items():
        for r, j in enumerate(curve):
            rows.append({"strategy": s, "seed": seed, "round": r,
                         "labelled_pixels": (100 if s == "hybrid" else 500) * (r + 1), "jaccard": j})
    summ = {s["strategy"]: s for s in SimulationResult(rows, 0.9 / 0.95, 0.9).summary()}
    assert summ["random"]["pixels_to_target_mean"] is None and summ["random"]["reached"] == 1
    # random's mean need is at least (1000 + 1500) / 2, not its largest count
    assert summ["random"]["pixels_to_target_lower_bound"] == 1250
    assert summ["hybrid"]["savings_vs_random"] == pytest.approx(1250 / 200)
    assert summ["hybrid"]["savings_is_lower_bound"]


def test_cli_simulate_writes_csv_png_and_summary(tmp_path, capsys):
    image, truth = _blobs()
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "truth.npy", truth)
    out = tmp_path / "out"
    rc = main(["simulate", "--image", str(tmp_path / "img.npy"), "--truth", str(tmp_path / "truth.npy"),
               "--strategies", "hybrid,entropy,random", "--rounds", "2", "--batch", "2", "--seeds", "2",
               "--patch", "16", "--trees", "8", "--output", str(out), "--quiet", "--protocol", "1"])
    assert rc == 0
    with open(out / "simulation_img.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * 3
    assert {"strategy", "seed", "round", "labelled_pixels", "jaccard"} <= set(rows[0])
    png = (out / "simulation_img.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    summary = json.loads((out / "simulation_img_summary.json").read_text())
    assert [s["strategy"] for s in summary["strategies"]] == ["hybrid", "entropy", "random"]
    assert "dense labelling Jaccard" in capsys.readouterr().out


def test_cli_simulate_reports_bad_input(tmp_path, capsys):
    np.save(tmp_path / "img.npy", np.zeros((16, 16)))
    np.save(tmp_path / "truth.npy", np.ones((8, 8), np.uint8))
    rc = main(["simulate", "--image", str(tmp_path / "img.npy"), "--truth", str(tmp_path / "truth.npy"),
               "--output", str(tmp_path / "o")])
    assert rc == 1
    assert "truth has shape" in capsys.readouterr().err


def test_cli_simulate_merges_classes_and_names_a_missing_one(tmp_path, capsys):
    image, truth = _blobs()
    truth[truth == 2] = 3  # three-valued file: 1 background, 3 disk
    truth[:4, :4] = 2
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "truth.npy", truth)
    base = ["simulate", "--image", str(tmp_path / "img.npy"), "--truth", str(tmp_path / "truth.npy"),
            "--strategies", "random", "--rounds", "1", "--batch", "1", "--seeds", "1", "--patch", "16",
            "--trees", "4", "--output", str(tmp_path / "o"), "--quiet", "--protocol", "1"]
    assert main(base + ["--merge", "3=2"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "o" / "simulation_img.csv")))
    assert "labels_class_3" not in rows[0] and "labels_class_2" in rows[0]  # two classes left
    assert main(base + ["--merge", "4=2"]) == 1
    assert "has no class 4" in capsys.readouterr().err
    assert main(base + ["--merge", "three=2"]) == 1
    assert "FROM=TO" in capsys.readouterr().err


def test_simulate_rejects_unknown_strategy():
    image, truth = _blobs((32, 32))
    with pytest.raises(InputError, match="choose from"):
        simulate(image, truth, strategies=["clever"], progress=False)


@pytest.mark.parametrize("oracle", ["correct", "passive", "classes"])
def test_every_strategy_runs_in_a_simulation(oracle):
    image, truth = _blobs((48, 48))
    strategies = ["hybrid", "entropy", "margin", "least_confidence", "diversity", "cluster", "random"]
    res = simulate(image, truth, strategies=strategies, rounds=1, batch=2, seeds=1, patch=12,
                   n_estimators=5, dense=False, progress=False, oracle=oracle)
    assert [r["strategy"] for r in res.rows if r["round"] == 1] == strategies
    assert all(r["labelled_pixels"] > 0 for r in res.rows)


def test_cli_simulate_protocol_2_is_the_default_and_prints_the_table(tmp_path, capsys):
    image, truth = _blobs()
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "truth.npy", truth)
    out = tmp_path / "out"
    rc = main(["simulate", "--image", str(tmp_path / "img.npy"), "--truth", str(tmp_path / "truth.npy"),
               "--strategies", "clasp,random", "--rounds", "2", "--batch", "2", "--seeds", "2",
               "--patch", "8", "--trees", "8", "--output", str(out), "--quiet", "--oracle", "stroke"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "protocol v2" in text and "| clasp **(default)** |" in text and "Wilcoxon" in text
    summary = json.loads((out / "simulation_img_summary.json").read_text())
    assert summary["settings"]["protocol"] == 2 and summary["settings"]["oracle"] == "stroke"
    assert set(summary["strategies"]) == {"clasp", "random"}
    rows = list(csv.DictReader(open(out / "simulation_img.csv")))
    assert len(rows) == 2 * 2 * 3 and {"split", "score"} <= set(rows[0])


def _summary_row(**kw):
    row = {"strategy": "random", "seeds": 5, "reached": 5, "pixels_to_target_mean": 480.4,
           "pixels_to_target_lower_bound": 480.4, "max_labelled_pixels": 900.0}
    row.update(kw)
    return row


def test_protocol1_summary_says_in_words_when_the_target_was_not_reached():
    from active_annotator.cli.simulate import _to_target_text

    assert _to_target_text(_summary_row()) == "480 px to target (5/5 seeds)"
    never = _to_target_text(_summary_row(reached=0, pixels_to_target_mean=None))
    assert never == "target not reached (5 seeds, 900 px labelled at the end)"
    some = _to_target_text(_summary_row(reached=2, pixels_to_target_mean=None,
                                        pixels_to_target_lower_bound=812.0))
    assert some == "target reached in 2/5 seeds only (more than 812 px on average)"
    assert "not reached px" not in never + some


@pytest.mark.parametrize("x_range", [(25, 480), (40, 90), (10, 200_000)])
def test_log_pixel_axis_tick_labels_do_not_overlap(x_range):
    from matplotlib.figure import Figure

    from active_annotator.simulate import log_pixel_axis

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(np.geomspace(*x_range, 8), np.linspace(0.6, 0.8, 8))
    log_pixel_axis(ax)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    lo, hi = ax.get_xlim()
    labels = [t for t in ax.xaxis.get_ticklabels(which="both")
              if t.get_text() and t.get_visible() and lo <= t.get_position()[0] <= hi]
    assert len(labels) >= 2, [t.get_text() for t in labels]
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    for left, right in zip(boxes, boxes[1:]):
        assert left.x1 < right.x0, [t.get_text() for t in labels]
