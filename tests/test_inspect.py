"""`promptpo-bench plot` and `show` on run directories the tests make, and live progress only on a terminal."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from promptpo_bench import cli
from promptpo_bench.progress import Progress
from promptpo_bench.records import RunRecorder, load_record
from promptpo_bench.rollout import heldout_seeds
from promptpo_bench.statistics import ci95

ROOT = Path(__file__).resolve().parents[1]


def synthetic_run(run_dir: Path, algorithm: str, env_id: str, seed: int, curve: list[tuple[int, float]],
                  final_returns: list[float], tokens_per_point: int = 0) -> Path:
    """A schema-valid run directory with the given curve and held-out returns (its policy file is a placeholder)."""
    recorder = RunRecorder(run_dir, algorithm=algorithm, env_id=env_id, env_kwargs={}, seed=seed, config={},
                           command=f"python algorithms/{algorithm}.py --env-id {env_id} --seed {seed}")  # not pytest's
    for i, (steps, mean_return) in enumerate(curve):
        extra = {"prompt_tokens": tokens_per_point * (i + 1), "completion_tokens": 0} if tokens_per_point else {}
        recorder.add_point(steps, mean_return, **extra)
    (run_dir / "policy.py").write_text("class Policy:\n    def act(self, obs):\n        return 0\n")
    tokens = tokens_per_point * len(curve)
    recorder.finish(totals={"env_steps": curve[-1][0], "episodes": 10, "llm_calls": len(curve) if tokens else 0,
                            "prompt_tokens": tokens, "completion_tokens": 0, "cost_usd": None},
                    final_eval={"episode_seeds": heldout_seeds(len(final_returns)), "returns": final_returns,
                                "mean_return": float(np.mean(final_returns)), "successes": None,
                                "success_rate": None},
                    policy_path="policy.py", policy_kind="python")
    return run_dir


@pytest.fixture
def runs(tmp_path) -> Path:
    """Board0: dqn and ppo, 3 seeds each, budgets 1k and 100k (decades apart), and a random reference;
    Board1: ppo only, 2 seeds."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "runs"
    for algorithm in ("dqn", "ppo"):
        for seed in (1, 2, 3):
            budget = 1_000 if seed == 1 else 100_000
            steps = np.linspace(0, budget, 6).astype(int)
            synthetic_run(folder / f"NoiseWorld-Board0-v0__{algorithm}__{seed}", algorithm, "NoiseWorld-Board0-v0",
                          seed, [(int(s), float(-25 + (30 if algorithm == "dqn" else 60) * s / budget + rng.normal()))
                           for s in steps],
                          list(rng.normal(30, 2, 10)))
    for seed in (1, 2):
        synthetic_run(folder / f"NoiseWorld-Board1-v0__ppo__{seed}", "ppo", "NoiseWorld-Board1-v0", seed,
                      [(0, -100.0), (5_000, 500.0), (10_000, 900.0 + seed)], list(rng.normal(900, 5, 10)))
    synthetic_run(folder / "NoiseWorld-Board0-v0__random", "random", "NoiseWorld-Board0-v0", 0, [(0, -890.0)],
                  list(rng.normal(-890, 50, 10)))
    return folder


def series_colors(png: Path, colors: list[str]) -> list[bool]:
    """Whether each colour (a line's, up to anti-aliasing) is drawn somewhere in the image; the bands' pale blends
    with white are too far from it to count."""
    import matplotlib.colors
    import matplotlib.image

    pixels = (matplotlib.image.imread(png)[..., :3] * 255).round().reshape(-1, 3)
    present = []
    for color in colors:
        rgb = np.array(matplotlib.colors.to_rgb(color)) * 255
        present.append(bool((np.abs(pixels - rgb).max(axis=1) <= 40).sum() >= 30))
    return present


def test_plot_draws_one_line_per_method_and_task_with_iqm_over_seeds(runs, capsys):
    assert cli.main(["plot", str(runs)]) == 0
    out = capsys.readouterr().out.splitlines()
    png = runs / "curves_env_steps.png"  # next to the runs, and its path printed
    assert out[-1] == str(png) and png.is_file()
    assert "NoiseWorld-Board0-v0: dqn (3 runs), ppo (3 runs), random (reference)" in out
    assert "NoiseWorld-Board1-v0: ppo (2 runs)" in out
    # dqn = C0, ppo = C1, random = C2 in matplotlib's cycle; nothing else is drawn in a series colour
    assert series_colors(png, ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]) == [True, True, True, False,
                                                                                           False]


def test_plot_normalised_svg_and_log_axis(runs, tmp_path):
    from promptpo_bench.plot import plot_runs

    assert plot_runs([runs]).log_x == ["NoiseWorld-Board0-v0"]  # its runs end at 1k and 100k steps; Board1's at 10k
    figure = plot_runs([runs / "NoiseWorld-Board1-v0__ppo__1", runs / "NoiseWorld-Board1-v0__ppo__2"],
                       out=tmp_path / "board1.svg", normalised=True)
    svg = figure.path.read_text()
    assert figure.lines == {"NoiseWorld-Board1-v0": ["ppo (2 runs)"]} and "normalised score" in svg
    assert "stroke: #1f77b4" in svg and "stroke: #ff7f0e" not in svg and figure.log_x == []


def test_plot_errors_are_one_line(runs, tmp_path, capsys):
    assert cli.main(["plot", str(runs), "--x", "tokens"]) == 2
    assert "no run to plot against tokens" in capsys.readouterr().err
    assert cli.main(["plot", str(runs), "--out", str(tmp_path / "x.txt")]) == 2
    assert cli.main(["plot", str(tmp_path / "nothing")]) == 2
    (tmp_path / "empty").mkdir()
    assert cli.main(["plot", str(tmp_path / "empty")]) == 2
    assert "holds none" in capsys.readouterr().err


def test_plot_against_tokens_skips_runs_without_llm(runs, tmp_path, capsys):
    synthetic_run(runs / "NoiseWorld-Board1-v0__promptpo__1", "promptpo", "NoiseWorld-Board1-v0", 1,
                  [(100, 10.0), (200, 700.0)], [800.0] * 10, tokens_per_point=5_000)
    assert cli.main(["plot", str(runs), "--x", "tokens", "--out", str(tmp_path / "t.png")]) == 0
    captured = capsys.readouterr()
    assert "NoiseWorld-Board1-v0: promptpo" in captured.out and "no tokens" in captured.err


def test_show_a_baseline_run_in_text_and_json(runs, capsys):
    run_dir = runs / "NoiseWorld-Board1-v0__ppo__2"
    assert cli.main(["show", str(run_dir)]) == 0
    text = capsys.readouterr().out
    record = load_record(run_dir)
    returns = record["final_eval"]["returns"]
    assert f"held-out mean return {np.mean(returns):,.2f} ± {ci95(returns):.2f} (95% CI) over 10 episodes" in text
    assert "normalised (random -1,858.30 = 0, optimal 974.91 = 1)" in text and "10,000 env steps" in text
    assert cli.main(["show", str(run_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["final_eval"]["ci95"] == pytest.approx(ci95(returns))
    assert summary["final_eval"]["normalised_score"] == pytest.approx((np.mean(returns) + 1858.3) / (974.91 + 1858.3),
                                                                      abs=1e-3)
    assert "promptpo" not in summary and summary["verification"] is None and "verified" not in text
    (run_dir / "verification.json").write_text(json.dumps({"mode": "exact", "verified_at": "2026-12-04T00:00:00+00:00",
                                                           "reevaluated_mean_return": 901.5}))
    assert cli.main(["show", str(run_dir)]) == 0
    assert "verified   exact reproduction on 2026-12-04T00:00:00+00:00: re-evaluated mean return 901.50" in \
        capsys.readouterr().out
    assert cli.main(["show", str(runs)]) == 2  # a folder of runs is not a run
    assert "no record.json" in capsys.readouterr().err


def test_show_gives_no_score_to_a_final_evaluation_that_failed(runs, capsys):
    """Partial returns with 0 for the episodes never played are no score (on Reacher they beat the optimum)."""
    run_dir = runs / "NoiseWorld-Board1-v0__ppo__2"
    record = load_record(run_dir)
    record["final_eval"]["failure"] = {"kind": "crash", "message": "boom", "traceback": None, "episode_id": 3}
    (run_dir / "record.json").write_text(json.dumps(record))
    assert cli.main(["show", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["final_eval"]["normalised_score"] is None
    assert cli.main(["show", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert "normalised" not in text and "the final policy failed during evaluation: crash: boom" in text


def test_show_a_promptpo_run_made_against_the_scripted_server(tmp_path, capsys):
    from scripted_server import ScriptedLLMServer
    from test_promptpo import DOWN_THEN_RIGHT, FEEDBACK, REFLECTION, kind, run

    answers = iter(["I would go right.", "```python\nclass Policy:\n    def act(self, obs):\n        return 1 / 0\n```"]
                   + [DOWN_THEN_RIGHT] * 10)

    def respond(request, _):
        return {"feedback": FEEDBACK, "reflection": REFLECTION}.get(kind(request)) or next(answers)

    run_dir = tmp_path / "run"
    with ScriptedLLMServer(respond) as server:
        run("--env-id", "NoiseWorld-Board1-v0", "--num-rounds", "2", "--num-candidates", "1", "--num-workers", "1",
            "--run-dir", str(run_dir), base_url=server.base_url)
    assert cli.main(["show", str(run_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rounds = summary["promptpo"]["rounds"]
    assert [(r["round"], r["attempts"], r["ran"], r["failures"]) for r in rounds] == \
        [(0, 3, 1, {"crash": 1, "no_code": 1}), (1, 1, 1, {})]
    journal = [json.loads(line) for line in (run_dir / "llm.jsonl").read_text().splitlines()]
    tokens = {r: sum(e["usage"]["prompt_tokens"] + e["usage"]["completion_tokens"] for e in journal
                     if e["request_id"].startswith(f"r{r}/")) for r in (0, 1)}
    assert [r["tokens"] for r in rounds] == [tokens[0], tokens[1]]
    winner = json.loads((run_dir / "summary.json").read_text())["best_request_id"]
    assert summary["promptpo"]["winner"] == winner and summary["promptpo"]["code_head"][0] == "class Policy:"
    assert cli.main(["show", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert f"winner {winner}" in text and "crash 1, no_code 1" in text and "promptpo (gpt-4o-mini)" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal():
    for stream, drawn in ((io.StringIO(), False), (_Terminal(), True)):
        with Progress(10, "work", unit="episode", stream=stream) as progress:
            for _ in range(10):
                progress.advance()
            progress.set(best=1.5)  # redraws now (advance redraws at most every 0.1 s)
        assert ("work" in stream.getvalue() and "best=1.5" in stream.getvalue()) == drawn


def _stderr_of(command: list[str], terminal: bool) -> tuple[str, str]:
    """stdout and stderr of a command whose stderr is a pipe, or a pseudo-terminal of 160 columns."""
    env = {**os.environ, "COLUMNS": "160"}
    if not terminal:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        return result.stdout, result.stderr
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(master)
    stdout = process.stdout.read().decode()
    assert process.wait() == 0
    return stdout, b"".join(chunks).decode(errors="replace")


def test_rollout_progress_on_a_terminal_and_not_in_a_log():
    command = [sys.executable, "-m", "promptpo_bench.cli", "rollout", "NoiseWorld-Board0-v0", "--episodes", "2000"]
    out_log, err_log = _stderr_of(command, terminal=False)
    out_tty, err_tty = _stderr_of(command, terminal=True)
    assert err_log == "" and "episode/s" in err_tty and "rollout NoiseWorld-Board0-v0" in err_tty
    assert out_log == out_tty  # the printed result is the same either way


def test_baseline_prints_its_evaluation_lines_and_no_progress_in_a_log(tmp_path):
    pytest.importorskip("torch")
    command = [sys.executable, str(ROOT / "algorithms" / "dqn.py"), "--env-id", "NoiseWorld-Board0-v0",
               "--total-timesteps", "600", "--eval-every", "300", "--learning-starts", "100",
               "--run-dir", str(tmp_path / "run")]
    out, err = _stderr_of(command, terminal=False)
    assert err == "" and out.count("eval_mean_return=") == 3  # at 0, 300 and the final one
