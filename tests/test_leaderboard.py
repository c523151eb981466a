"""`promptpo-bench leaderboard build`: statistics agree with rliable, tables and plots come from the entries, and the
HTML page renders in headless Chromium with its tables and images visible (checked on a screenshot)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from promptpo_bench import cli, leaderboard
from promptpo_bench.leaderboard import RunResult, aggregate, iqm_ci, score_matrix
from promptpo_bench.registry import ReferenceScores

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "leaderboard"


def fake_run(task: str, seed: int, curve: list[tuple[int, float]], reference=ReferenceScores(-100.0, 100.0, "test"),
             algorithm: str = "ppo", flags: str = "") -> RunResult:
    """A RunResult from a hand-written record (only the fields the board reads)."""
    record = {"algorithm": algorithm, "env_id": task, "env_kwargs": {}, "seed": seed, "llm": None,
              "command": f"python algorithms/{algorithm}.py --env-id {task} --seed {seed} {flags}",
              "totals": {"env_steps": curve[-1][0], "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None},
              "curve": [{"env_steps": s, "mean_return": r} for s, r in curve],
              "final_eval": {"mean_return": curve[-1][1]}}
    return RunResult(Path(task), record, {"mode": "exact"}, reference, "test")


@pytest.mark.filterwarnings("ignore:random_state is deprecated:FutureWarning")  # arch, called by rliable
def test_aggregate_matches_rliable_on_a_fixed_example():
    from rliable import library as rly
    from rliable import metrics

    scores = {"a": np.array([[0.1, 0.5, 0.9, 0.2], [0.3, 0.6, 1.2, 0.0], [0.2, 0.4, 0.8, 0.1]]),
              "b": np.array([[1.0, 0.9], [0.7, 0.8], [0.95, 0.6], [0.5, 0.55], [0.2, 1.1]])}
    result = aggregate(scores, reps=300)
    for method, matrix in scores.items():
        flat = np.sort(matrix.ravel())
        assert result[method]["iqm"][0] == pytest.approx(metrics.aggregate_iqm(matrix))
        assert result[method]["iqm"][0] == pytest.approx(stats.trim_mean(flat, 0.25))
        assert result[method]["mean"][0] == pytest.approx(matrix.mean())
        assert result[method]["optimality_gap"][0] == pytest.approx(np.mean(1 - np.minimum(matrix, 1)))
    func = lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_optimality_gap(x)])
    np.random.seed(0)  # arch's bootstrap also draws from NumPy's global RNG; the board seeds both
    points, intervals = rly.get_interval_estimates(scores, func, reps=300, random_state=np.random.RandomState(0))
    for method in scores:
        for i, name in enumerate(("iqm", "mean", "optimality_gap")):
            assert result[method][name] == pytest.approx((points[method][i], *intervals[method][:, i]))
            assert result[method][name][1] <= result[method][name][0] <= result[method][name][2]


def test_iqm_curve_and_bootstrap_band():
    rng = np.random.default_rng(0)
    values = np.array([[0.0, 1.0, 5.0], [1.0, 2.0, np.nan], [2.0, 9.0, np.nan], [3.0, 4.0, np.nan]])
    point, low, high = iqm_ci(values, rng)
    from rliable import metrics

    assert point[0] == pytest.approx(metrics.aggregate_iqm(values[:, :1]))  # (1 + 2) / 2
    assert point[1] == pytest.approx(stats.trim_mean([1.0, 2.0, 9.0, 4.0], 0.25))
    assert point[2] == 5.0 and low[2] == high[2] == 5.0  # only one run reached that far
    assert np.all(low[:2] <= point[:2]) and np.all(point[:2] <= high[:2]) and np.all(low[:2] < high[:2])


def test_score_matrix_normalises_and_keeps_the_same_seeds_per_task():
    runs = [fake_run("A", 1, [(0, -100.0), (10_000, 0.0), (99_840, 100.0)]),
            fake_run("A", 2, [(0, -100.0), (99_840, 50.0)]),
            fake_run("A", 3, [(0, -100.0), (50_000, 100.0)]),  # does not reach 100k
            fake_run("B", 5, [(0, 0.0), (100_000, 20.0)]),
            fake_run("B", 4, [(0, 0.0), (100_000, 60.0)]),
            fake_run("C", 1, [(0, 0.0), (100_000, 30.0)], reference=None)]  # no references: not aggregated
    matrix, tasks = score_matrix(runs, 100_000)
    assert tasks == ["A", "B"]
    np.testing.assert_allclose(matrix, [[1.0, 0.8], [0.75, 0.6]])  # rows: seeds in order; B's seeds 4, 5
    matrix, _ = score_matrix(runs, 10_000)
    np.testing.assert_allclose(matrix[:, 0], [0.5, 0.0])  # seed 1 at 10k; seed 2 still at its first point
    assert runs[0].steps_to(0.5) == 99_840 and runs[1].steps_to(0.9) == np.inf  # fractions of the optimum, 100
    assert runs[2].steps_to(0.9) == 50_000 and np.isnan(runs[5].steps_to(0.5))


def test_runs_that_read_different_description_variants_never_share_a_row():
    runs = []
    for seed, variant in enumerate(["paper", "paper", "explained", None]):
        run = fake_run("NoiseWorld-Board1-v0", seed, [(0, 0.0), (100, 50.0)], algorithm="promptpo")
        run.record["llm"] = {"model": "m"}
        run.record["config"] = {} if variant is None else {"description_variant": variant}
        runs.append(run)
    groups = leaderboard._groups(runs)
    assert {method: len(group) for (method, _), group in groups.items()} == {
        "promptpo (m, paper description)": 2, "promptpo (m, explained description)": 1,
        "promptpo (m, unrecorded description)": 1}


def test_runs_with_other_hyperparameters_never_share_a_row():
    """A tuned configuration is a method of its own: its flags name the row; run flags (budget, seed, bookkeeping)
    do not split rows."""
    runs = [fake_run("T", 1, [(0, 0.0), (100, 50.0)], flags="--run-dir /a --eval-every 10 --no-track"),
            fake_run("T", 2, [(0, 0.0), (100, 50.0)], flags="--total-timesteps 100 --torch-threads 2"),
            fake_run("T", 1, [(0, 0.0), (100, 60.0)], flags="--learning-rate 1e-3"),
            fake_run("T", 2, [(0, 0.0), (100, 60.0)], flags="--learning_rate=1e-3 --save-model"),
            fake_run("T", 1, [(0, 0.0), (100, 60.0)], flags="--learning-rate 1e-3 --hidden-sizes 64 64 --no-norm-obs")]
    groups = leaderboard._groups(runs)
    assert {method: len(group) for (method, _), group in groups.items()} == {
        "ppo": 2, "ppo (learning-rate 1e-3)": 2, "ppo (learning-rate 1e-3, hidden-sizes 64 64, no-norm-obs)": 1}


def test_run_flags_are_the_shared_baseline_flags():
    """Every flag all baselines share is a run flag, so that only an algorithm's own hyperparameters name a row."""
    from dataclasses import fields

    from promptpo_bench.baselines import BaselineArgs
    from promptpo_bench.records import RUN_FLAGS

    shared = {f.name.replace("_", "-") for f in fields(BaselineArgs)} | {"env-id", "total-timesteps"}
    assert shared == RUN_FLAGS


@pytest.mark.filterwarnings("ignore:random_state is deprecated:FutureWarning")  # arch, called by rliable
def test_family_aggregate_shows_a_ci_only_with_several_runs_per_task():
    """rliable resamples runs within each task: with one run per task its interval is degenerate, so none is shown."""
    one = [fake_run(task, 1, [(0, 0.0), (100_000, value)]) for task, value in (("A", 10.0), ("B", 80.0))]
    three = [fake_run(task, seed, [(0, 0.0), (100_000, value + seed)], flags="--learning-rate 1e-3")
             for task, value in (("A", 10.0), ("B", 80.0)) for seed in (1, 2, 3)]
    table, _ = leaderboard.family_table("test", one + three)
    cells = {row[0][0]: [text for text, _ in row[4:]] for row in table.rows}
    assert all("[" not in text for text in cells["ppo"])
    assert all("[" in text for text in cells["ppo (learning-rate 1e-3)"])


@pytest.mark.filterwarnings("ignore:random_state is deprecated:FutureWarning")  # arch, called by rliable
def test_methods_are_also_compared_where_their_runs_end():
    """A 200k-step SAC run is aggregated at 200k beside PPO's 1M curve read at 200k (not only at 10k and 100k, which
    left SAC's final score out of every family aggregate); PPO stopping at 98,304 of 100k adds no column of its own."""
    sac = [fake_run(task, seed, [(0, 0.0), (100_000, 10.0), (200_000, value)], algorithm="sac")
           for task, value in (("A", 50.0), ("B", 70.0)) for seed in (1, 2)]
    ppo = [fake_run(task, seed, [(0, 0.0), (98_304, 5.0), (200_000, 20.0), (1_000_000, 90.0)])
           for task in ("A", "B") for seed in (1, 2)]
    short = [fake_run(task, 3, [(0, 0.0), (98_304, 5.0)]) for task in ("A", "B")]
    assert leaderboard.checkpoints(sac + ppo + short) == [10_000, 100_000, 200_000, 1_000_000]
    table, matrices = leaderboard.family_table("test", sac + ppo + short)
    at_200k = {row[0][0]: row[4][1] for row in table.rows if row[1][1] == 200_000}
    assert at_200k == pytest.approx({"sac": 0.8, "ppo": 0.6})  # returns 50/70 and 20 on the scale -100..100
    assert sorted(matrices) == [10_000, 100_000, 200_000, 1_000_000]
    headers = leaderboard.task_table("A", sac + ppo, np.random.default_rng(0)).headers
    assert [h for h in headers if h.startswith("score @")] == ["score @ 10k", "score @ 100k", "score @ 200k",
                                                               "score @ 1M"]


def test_a_run_stopped_early_counts_at_its_planned_budget_with_its_last_evaluation():
    """--early-stop-fraction: a run that held its target ends there, and the board reads its last evaluation as
    holding to its planned budget (as a converged run's would): one row with the seeds that ran the whole budget,
    and a value in every budget column; without the stop the same record is a shorter run."""
    full = fake_run("A", 1, [(0, -100.0), (1_000_000, 60.0), (4_999_872, 90.0)])
    stopped = fake_run("A", 2, [(0, -100.0), (200_000, 95.0), (300_000, 96.0), (300_000, 98.0)])
    short = fake_run("A", 3, [(0, -100.0), (200_000, 95.0), (300_000, 96.0), (300_000, 98.0)])
    stopped.record["totals"].update(planned_env_steps=5_000_000, stopped_early=True)
    short.record["totals"].update(planned_env_steps=5_000_000, stopped_early=False)
    assert (stopped.budget, short.budget) == (5_000_000, 300_000) and stopped.reaches(5_000_000)
    assert not short.reaches(1_000_000)
    assert stopped.score_at(1_000_000) == stopped.score_at(5_000_000) == pytest.approx(0.99)  # (98 + 100) / 200
    np.testing.assert_array_equal(stopped.values_at(np.array([100_000, 300_000, 5_000_000, 5_000_001])),
                                  [-100.0, 98.0, 98.0, np.nan])
    np.testing.assert_array_equal(short.values_at(np.array([300_000, 300_001])), [98.0, np.nan])
    table = leaderboard.task_table("A", [full, stopped, short], np.random.default_rng(0))
    rows = {(row[0][0], row[1][1]): row for row in table.rows}
    assert sorted(rows) == [("ppo", 300_000), ("ppo", 5_000_000)] and rows["ppo", 5_000_000][2][1] == 2
    at_1m = rows["ppo", 5_000_000][table.headers.index("score @ 1M")][1]
    assert at_1m == pytest.approx(np.mean([0.8, 0.99]))  # the IQM of two seeds is their mean


def test_step_counts_read_like_budgets():
    assert [leaderboard._steps(x) for x in (0, 512, 99_840, 480_000, 999_936, np.inf)] == \
        ["0", "512", "99.8k", "480k", "1M", "not reached"]


@pytest.fixture(scope="module")
def small_board(tmp_path_factory) -> Path:
    """Board 0's shipped entries (random, oracle, PPO, DQN) and three of Hopper's (random, PPO 98k, SAC 100k), rebuilt
    here: a fixed set, so the page these tests look at does not change as reported runs join the shipped board."""
    board = tmp_path_factory.mktemp("board")
    shutil.copytree(SHIPPED / "entries" / "NoiseWorld-Board0-v0", board / "entries" / "NoiseWorld-Board0-v0")
    for entry in (SHIPPED / "entries" / "Hopper-v5").iterdir():
        if entry.name.startswith(("random__", "ppo__98304steps__", "sac__100000steps__")):
            shutil.copytree(entry, board / "entries" / "Hopper-v5" / entry.name)
    assert cli.main(["leaderboard", "build", "--leaderboard", str(board)]) == 0
    return board


def test_a_records_strings_stay_plain_text_in_the_markdown_tables():
    """A submitted record's model name (or algorithm, flags) is text in its cell: it cannot end the cell, start a
    forged row, or put a link, an image, HTML or emphasis on the board's README."""
    import re

    from promptpo_bench.render import Table, markdown_table

    model = "gpt-4o | 1k |\n| FORGED *SOTA* | [![v](https://evil.example/p.png)](https://evil.example/x) <b>_x_</b> `c`"
    text = markdown_table(Table("t", ["method", "score"], [[(f"promptpo ({model})", None), ("1.000", 1.0)]]))
    header, rule, row = text.split("\n")
    assert len(re.findall(r"(?<!\\)\|", row)) == 3  # its two cells' edges: every pipe of the name is escaped
    assert "](" not in row and "<b>" not in row and re.search(r"(?<!\\)[*_`]", row) is None
    assert row.endswith("| 1.000 |") and "FORGED" in row and "evil.example" in row  # all of it, as text


def test_build_writes_tables_and_plots_from_the_entries(small_board):
    readme = (small_board / "README.md").read_text()
    assert "### NoiseWorld-Board0-v0" in readme and "### noiseworld: aggregate over tasks" in readme
    assert "| oracle | reference | 1 | 31.020 | 0.996 |" in readme
    assert "| ppo | 1M | 1 | 31.020 | 0.996 |" in readme
    hopper = readme[readme.index("### Hopper-v5"):]
    assert "| sac | 100k | 1 | 928 |" in hopper and "score @ 100k" in hopper.split("\n\n")[1]
    for image in ("plots/NoiseWorld-Board0-v0.png", "plots/Hopper-v5.png", "plots/noiseworld__profiles.png",
                  "plots/mujoco__profiles.png"):
        assert f"({image})" in readme and (small_board / image).stat().st_size > 5000
    page = (small_board / "index.html").read_text()
    assert page.count('<table class="sortable">') == 4 and 'onclick="sortTable(this)"' in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_a_run_landing_on_one_task_leaves_every_other_tasks_bootstrap_alone(tmp_path, monkeypatch):
    """Board 0's CIs are drawn from the same random stream whether or not another family's runs come first."""
    board = tmp_path / "board"
    shutil.copytree(SHIPPED / "entries" / "NoiseWorld-Board0-v0", board / "entries" / "NoiseWorld-Board0-v0")
    seen: list[tuple[str, dict]] = []
    for name in ("task_table", "plot_task"):
        real = getattr(leaderboard, name)

        def spy(task, runs, *rest, _real=real, _name=name):
            if task == "NoiseWorld-Board0-v0":
                seen.append((_name, rest[-1].bit_generator.state))
            return _real(task, runs, *rest)
        monkeypatch.setattr(leaderboard, name, spy)
    leaderboard.build(board)
    for entry in (SHIPPED / "entries" / "Hopper-v5").iterdir():  # mujoco is built before noiseworld
        if entry.name.startswith("ppo__999424steps__"):
            shutil.copytree(entry, board / "entries" / "Hopper-v5" / entry.name)
    assert "### Hopper-v5" in leaderboard.build(board)["readme"].read_text()
    assert len(seen) == 4 and seen[:2] == seen[2:]


def test_a_task_without_references_shows_raw_returns_and_gets_scores_once_it_has_them(small_board, tmp_path,
                                                                                    monkeypatch):
    board = tmp_path / "board"
    shutil.copytree(small_board / "entries" / "Hopper-v5", board / "entries" / "Hopper-v5")
    real = leaderboard._reference
    monkeypatch.setattr(leaderboard, "_reference", lambda env_id, kwargs: None
                        if env_id == "Hopper-v5" else real(env_id, kwargs))
    readme = leaderboard.build(board)["readme"].read_text()
    assert "return @ 100k" in readme and "score @" not in readme[readme.index("### Hopper-v5"):].split("\n\n")[1]
    monkeypatch.setattr(leaderboard, "_reference", lambda env_id, kwargs: ReferenceScores(0.0, 1000.0, "test")
                        if env_id == "Hopper-v5" else real(env_id, kwargs))
    readme = leaderboard.build(board)["readme"].read_text()
    assert "score @ 100k" in readme and "| sac | 100k | 1 | 928 | 0.928 |" in readme


def test_shipped_board_entries_are_complete():
    """Every committed entry is self-contained and its policy file still has the verified sha256."""
    from promptpo_bench.records import sha256_file

    entries = sorted(p.parent for p in SHIPPED.glob("entries/*/*/verification.json"))
    assert len(entries) >= 52
    for entry in entries:
        record = json.loads((entry / "record.json").read_text())
        verification = json.loads((entry / "verification.json").read_text())
        assert sha256_file(entry / record["policy"]["path"]) == record["policy"]["sha256"] == verification["policy_sha256"]
        assert verification["mode"] in ("exact", "statistical")
    readme = (SHIPPED / "README.md").read_text()
    assert f"{len(entries)} verified entries" in readme


def test_leaderboard_track_logs_tables_offline(small_board, tmp_path):
    pytest.importorskip("wandb")
    from wandb_offline import history

    board = tmp_path / "board"
    shutil.copytree(small_board / "entries", board / "entries")
    # in a process of its own, as users run it: W&B has written everything when that process has exited
    subprocess.run([sys.executable, "-m", "promptpo_bench.cli", "leaderboard", "build", "--leaderboard", str(board),
                    "--track"], cwd=tmp_path, env={**os.environ, "WANDB_MODE": "offline"}, check=True,
                   capture_output=True, timeout=300)
    (row,) = history(tmp_path)
    for table in ("NoiseWorld-Board0-v0", "family-noiseworld", "Hopper-v5"):
        assert json.loads(row[f"leaderboard/{table}/_type"]) == "table-file"
    for plot in ("NoiseWorld-Board0-v0", "noiseworld__profiles", "Hopper-v5"):
        assert json.loads(row[f"plots/{plot}/_type"]) == "image-file"
    section = (small_board / "README.md").read_text().split("### NoiseWorld-Board0-v0")[1].split("![")[0]
    table_rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # less the header
    assert json.loads(row["leaderboard/NoiseWorld-Board0-v0/nrows"]) == len(table_rows) >= 6  # every row of the page


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium (make test installs Debian's chromium package)")


def screenshot(page: Path, out: Path, profile: Path) -> np.ndarray:
    """A headless Chromium screenshot of `page` as an (H, W, 3) float array in [0, 1]."""
    import matplotlib.image

    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1280,1800",
                    "--hide-scrollbars", page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    return matplotlib.image.imread(out)[..., :3]


def near(image: np.ndarray, rgb: tuple[int, int, int], tol: float = 6 / 255) -> np.ndarray:
    return (np.abs(image - np.array(rgb) / 255) <= tol).all(axis=-1)


def test_page_renders_tables_and_images_in_headless_chromium(small_board, tmp_path):
    shot = screenshot(small_board / "index.html", tmp_path / "page.png", tmp_path / "profile1")
    assert shot.shape[:2] == (1800, 1280)
    header = near(shot, (0xdd, 0xe6, 0xf3))  # the tables' header background
    rows = np.nonzero(header.sum(axis=1) > 200)[0]
    assert len(rows) >= 30, "no table header row visible"
    top = rows[0]  # under the first header: dark table text on light rows
    assert (shot[top + 20:top + 120, :700].mean(axis=-1) < 0.4).mean() > 0.01
    plot_blue, plot_orange = near(shot, (0x1f, 0x77, 0xb4), 0.1), near(shot, (0xff, 0x7f, 0x0e), 0.1)
    assert plot_blue.sum() > 500 and plot_orange.sum() > 500, "plot lines not visible"

    # control: the same page with its images missing shows the tables but no plot pixels
    broken = tmp_path / "broken"
    shutil.copytree(small_board, broken, ignore=shutil.ignore_patterns("*.png", "entries"))
    control = screenshot(broken / "index.html", tmp_path / "control.png", tmp_path / "profile2")
    assert near(control, (0xdd, 0xe6, 0xf3)).sum() > 0.5 * header.sum()
    assert near(control, (0x1f, 0x77, 0xb4), 0.1).sum() < 0.1 * plot_blue.sum()


def test_an_llm_run_gets_tokens_columns_and_a_tokens_panel(tmp_path):
    """A PromptPO run against the tests' scripted server (a test double, not an LLM) through submit and build."""
    from scripted_server import ScriptedLLMServer
    from test_promptpo import DOWN_THEN_RIGHT, FEEDBACK, REFLECTION, kind, run

    def respond(request, _):
        return {"feedback": FEEDBACK, "reflection": REFLECTION, "policy": DOWN_THEN_RIGHT}[kind(request)]

    with ScriptedLLMServer(respond) as server:
        run("--env-id", "NoiseWorld-Board0-v0", "--num-rounds", "2", "--num-candidates", "2", "--eval-episodes", "10",
            "--llm-model", "scripted-test-double", "--run-dir", str(tmp_path / "run"), base_url=server.base_url)
    board = tmp_path / "board"
    assert cli.main(["submit", str(tmp_path / "run"), "--leaderboard", str(board)]) == 0
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    tokens = record["totals"]["prompt_tokens"] + record["totals"]["completion_tokens"]
    assert tokens > 0
    table = leaderboard.build(board)["tables"][-1]
    assert "tokens (median)" in table.headers
    (row,) = table.rows
    assert row[0][0] == "promptpo (scripted-test-double, paper description)"
    assert row[table.headers.index("tokens (median)")][1] == tokens
    import matplotlib.image

    height, width = matplotlib.image.imread(board / "plots" / "NoiseWorld-Board0-v0.png").shape[:2]
    assert width > 1.5 * height  # two panels: return vs environment steps and vs tokens


def test_task_table_reports_iqms_that_an_outlier_seed_cannot_drag():
    """Four seeds, one far out: the row's final return/score and its "score @ budget" are IQMs (rliable's), not means."""
    from rliable import metrics

    finals = [0.0, 20.0, 40.0, 5000.0]  # normalised with random -100, optimal 100: 0.5, 0.6, 0.7, 25.5
    runs = [fake_run("A", seed, [(0, -100.0), (100_000, final)]) for seed, final in enumerate(finals)]
    table = leaderboard.task_table("A", runs, np.random.default_rng(0))
    (row,) = table.rows
    cell = lambda header: row[table.headers.index(header)][1]  # noqa: E731  (the numeric sort key)
    scores = (np.array(finals) + 100.0) / 200.0
    assert cell("seeds") == 4 and "tokens (median)" not in table.headers  # no LLM: no token columns
    assert cell("final return (IQM, 95% CI)") == pytest.approx(metrics.aggregate_iqm(np.array(finals)[:, None]))
    assert cell("final return (IQM, 95% CI)") == pytest.approx(30.0)
    assert cell("final score (IQM, 95% CI)") == pytest.approx(0.65)
    assert cell("score @ 100k") == pytest.approx(metrics.aggregate_iqm(scores[:, None])) == pytest.approx(0.65)


def test_steps_to_cells_show_an_interval_only_where_seeds_differ():
    """A steps-to cell is a median over seeds with a bootstrap interval: none for seeds that all agree, and none
    (a dash, not "— [nan, nan]") where the task's optimum is no better than random, so a fraction of it means
    nothing."""
    def cells(reaches: list[int], reference=ReferenceScores(-100.0, 100.0, "test")) -> list[str]:
        runs = [fake_run("A", seed, [(0, -100.0), (at, 100.0), (300_000, 100.0)], reference)
                for seed, at in enumerate(reaches)]
        table = leaderboard.task_table("A", runs, np.random.default_rng(0))
        (row,) = table.rows
        return [row[table.headers.index(f"steps to {t}")][0] for t in ("50%", "90%")]

    assert cells([100_000, 200_000]) == ["150k [100k, 200k]"] * 2  # two seeds that differ: the median and an interval
    assert cells([100_000] * 3) == ["100k"] * 2  # three seeds alike: the point only
    assert cells([100_000]) == ["100k"] * 2  # one seed: the point only
    assert cells([100_000], ReferenceScores(100.0, 50.0, "test")) == ["—"] * 2  # optimum below random: no target


def llm_run(seed: int, final: float, success: float, tokens: tuple[int, int], cost: float) -> RunResult:
    """A PromptPO-like run: two rounds with token counts on its curve, a success rate and a cost."""
    run = fake_run("A", seed, [(0, -100.0), (100_000, final)], algorithm="promptpo")
    prompt, completion = tokens
    run.record["curve"] = [{"env_steps": 500, "mean_return": -100.0, "prompt_tokens": prompt // 2,
                            "completion_tokens": completion // 2},
                           {"env_steps": 100_000, "mean_return": final, "prompt_tokens": prompt,
                            "completion_tokens": completion}]
    run.record["totals"].update(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)
    run.record["final_eval"]["success_rate"] = success
    return run


def test_task_table_every_column_of_a_learner_and_a_reference_row():
    oracle = fake_run("A", 0, [(200_000, 100.0)], algorithm="oracle")  # 200k evaluation steps: no budget columns
    oracle.record["final_eval"]["success_rate"] = 1.0
    learners = [llm_run(1, 20.0, 0.2, (40, 10), 0.5), llm_run(2, 60.0, 0.4, (60, 20), 1.5),
                llm_run(3, 100.0, 0.6, (80, 30), 2.5)]
    table = leaderboard.task_table("A", [*learners, oracle], np.random.default_rng(0))
    assert table.headers == ["method", "budget", "seeds", "final return (IQM, 95% CI)", "final score (IQM, 95% CI)",
                             "success rate", "score @ 10k", "score @ 100k", "steps to 50%", "steps to 90%",
                             "tokens (median)", "cost USD (median)", "verified"]
    reference, learner = ([text for text, _ in row] for row in table.rows)
    assert reference == ["oracle", "reference", "1", "100", "1.000", "1.00", "", "", "", "", "—", "—", "exact"]
    assert learner[:3] == ["promptpo", "100k", "3"] and learner[3].startswith("60.000 [")
    assert learner[4].startswith("0.800 [") and learner[5] == "0.40"
    assert learner[6:8] == ["0.000", "0.800"]  # at 10k the curves still show their first point, -100
    # medians over seeds with bootstrap CIs: two of three reach 50 (at 100k), one reaches 90
    assert learner[8:10] == ["100k [100k, not reached]", "not reached [100k, not reached]"]
    assert learner[10:] == ["80", "1.50", "exact"]  # medians of 50, 80 and 110 tokens, and of the costs
    (alone,) = leaderboard.task_table("A", [oracle], np.random.default_rng(0)).rows  # a task with one run
    assert alone[4][0] == "1.000"
    one_token = leaderboard.task_table("A", [llm_run(1, 0.0, 0.5, (1, 0), 0.0)], np.random.default_rng(0))
    assert "tokens (median)" in one_token.headers
    (single,) = one_token.rows
    assert all("[" not in text for text, _ in single)  # one seed: points without (degenerate) intervals


def test_curves_read_by_tokens_and_short_curves():
    run = llm_run(1, 20.0, 0.5, (80, 20), 1.0)
    np.testing.assert_array_equal(run.curve["tokens"], [50.0, 100.0])
    np.testing.assert_array_equal(run.values_at(np.array([0, 50, 99, 100, 101]), x="tokens"),
                                  [np.nan, -100.0, -100.0, 20.0, np.nan])  # NaN past the run's 100 tokens
    np.testing.assert_array_equal(fake_run("A", 1, [(0, 5.0)]).curve["tokens"], [0.0])  # no tokens: zero
    single = fake_run("A", 1, [(1_000, 5.0)])
    np.testing.assert_array_equal(single.values_at(np.array([999, 1_000, 1_001])), [np.nan, 5.0, np.nan])
    assert fake_run("A", 1, [(0, 0.0), (95_000, 1.0)]).reaches(100_000)  # 95% of a budget counts as reaching it
    assert not fake_run("A", 1, [(0, 0.0), (94_999, 1.0)]).reaches(100_000)
    unit = fake_run("A", 1, [(0, 0.0), (10, 0.6)], reference=ReferenceScores(0.0, 1.0, "success-like"))
    assert unit.steps_to(0.5) == 10  # an optimum of 1 is a scale like any other
    dip = fake_run("A", 1, [(0, -100.0), (10_000, 50.0), (20_000, 0.0), (30_000, 70.0)])
    assert dip.steps_to(0.5) == 10_000  # the first time it got there (50 of 100 is half)
    negative = fake_run("A", 1, [(0, -40.0), (10, -20.0), (20, -6.0)],
                        reference=ReferenceScores(-42.9, -4.4, "Reacher"))
    assert negative.steps_to(0.5) == 10 and negative.steps_to(0.9) == 20  # of the way up from random: -23.65, -8.25
    close = fake_run("A", 1, [(0, 600.0), (10, 620.0), (20, 630.0)],
                     reference=ReferenceScores(599.4, 632.3, "Traffic"))
    assert close.steps_to(0.5) == 10 and close.steps_to(0.9) == 20  # not 0: random already holds 0.9 x 632.3
    flat = fake_run("A", 1, [(0, -1.0), (10, 0.0)], reference=ReferenceScores(0.0, 0.0, "optimum = random"))
    assert np.isnan(flat.steps_to(0.5))  # no optimum above random: a fraction of the way means nothing


def test_a_task_scored_by_success_ranks_runs_by_their_success_rate_not_their_return():
    """Meta-World: the paper ranks by success, and the expert's return that anchors its scale is no upper bound."""
    def run(seed: int, points: list[tuple[int, float, float]], reference=ReferenceScores(188.65, 562.21, "expert")):
        result = fake_run("MetaWorld-ButtonPress-v0", seed, [(s, ret) for s, ret, _ in points], reference=reference)
        for point, (_, _, rate) in zip(result.record["curve"], points):
            point["success_rate"] = rate
        result.record["final_eval"]["success_rate"] = points[-1][2]
        return result

    hoarder = run(1, [(0, 190.0, 0.0), (50_000, 4_000.0, 0.2), (100_000, 4_378.0, 0.6)])  # return 10x the expert's
    assert hoarder.score_key == "success_rate" and fake_run("A", 1, [(0, 1.0)]).score_key == "mean_return"
    assert hoarder.final_score == 0.6 and hoarder.score_at(100_000) == 0.6 and hoarder.score_at(50_000) == 0.2
    assert hoarder.steps_to(0.5) == 100_000 and hoarder.steps_to(0.9) == np.inf  # the return passed 0.9 at 50k
    assert hoarder.shown_return(4_378.0) == 4_378.0  # its return panel shows raw returns, not ~11 "optima"
    assert fake_run("A", 1, [(0, 1.0)]).shown_return(0.0) == 0.5  # a task scored by return shows it normalised
    no_reference = run(2, [(0, 0.0, 0.0), (100_000, 10.0, 1.0)], reference=None)  # success needs no reference
    matrix, tasks = score_matrix([hoarder, no_reference], 100_000)
    assert tasks == ["MetaWorld-ButtonPress-v0"] and matrix.ravel().tolist() == [0.6, 1.0]
    table = leaderboard.task_table("MetaWorld-ButtonPress-v0", [hoarder], np.random.default_rng(0))
    (row,) = ([text for text, _ in row] for row in table.rows)
    assert dict(zip(table.headers, row))["final score (IQM, 95% CI)"] == "0.600"
    assert dict(zip(table.headers, row))["score @ 100k"] == "0.600"


def test_score_matrix_without_references_is_empty():
    matrix, tasks = score_matrix([fake_run("C", 1, [(0, 0.0), (100_000, 30.0)], reference=None)], 100_000)
    assert matrix.shape == (0, 0) and tasks == []


def test_iqm_band_is_the_central_95_percent_of_bootstrap_iqms():
    values = np.random.default_rng(3).normal(size=12)  # continuous: no ties between neighbouring percentiles
    point, low, high = iqm_ci(values, np.random.default_rng(7), reps=500)
    draws = np.random.default_rng(7).integers(0, 12, (500, 12))
    boot = stats.trim_mean(values[draws], 0.25, axis=1)
    assert point.shape == low.shape == high.shape == (1,)  # one column: the 12 runs are its rows
    with_empty = iqm_ci(np.stack([np.full(12, np.nan), values], axis=1), np.random.default_rng(7), reps=500)
    np.testing.assert_array_equal([v[0] for v in with_empty], [np.nan] * 3)  # a column no run reached
    assert [v[1] for v in with_empty] == [point[0], low[0], high[0]]  # does not hide the others
    assert point[0] == pytest.approx(stats.trim_mean(values, 0.25))
    assert (low[0], high[0]) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])))


def test_board_compute_sums_each_learners_hours_per_sweep(tmp_path):
    """benchmarks/board_compute.py counts learners only (no random or oracle rows) and sums their records' times."""
    board = tmp_path / "board"
    for entry in (SHIPPED / "entries" / "NoiseWorld-Board0-v0").iterdir():  # made before the sweeps existed
        if entry.name.startswith(("random__", "oracle__", "ppo__999936steps__", "dqn__1000000steps__")):
            shutil.copytree(entry, board / "entries" / "NoiseWorld-Board0-v0" / entry.name)
    entry = next((SHIPPED / "entries" / "Hopper-v5").glob("sac__200000steps__seed1__*"))
    shutil.copytree(entry, board / "entries" / "Hopper-v5" / entry.name)
    record = json.loads((entry / "record.json").read_text())
    out = subprocess.run([sys.executable, str(REPO / "benchmarks/board_compute.py"), "--leaderboard", str(board)],
                         capture_output=True, text=True, check=True).stdout
    hours = record["totals"]["train_time_s"] / 3600
    assert f"| mujoco-baselines | sac | 1 | {hours:.2f} | {record['wall_time_s'] / 3600:.2f} |" in out
    assert "| other (noiseworld) | ppo | 1 |" in out and "| other (noiseworld) | dqn | 1 |" in out
    assert "oracle" not in out and "random" not in out and "| all | | 3 |" in out
