"""`promptpo-bench` as a user types it: tables, descriptions, rollouts and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import promptpo_bench


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "promptpo_bench.cli", *args], capture_output=True, text=True,
                            timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_tasks_lists_every_task_with_reference_scores():
    out = cli("tasks").stdout
    for spec in promptpo_bench.specs():
        assert spec.id in out
    line = next(l for l in out.splitlines() if l.startswith("NoiseWorld-Board1-v0"))
    assert "974.91" in line and "-1858.30" in line and "Discrete(4)" in line and "100" in line


def test_describe_prints_the_llm_context():
    out = cli("describe", "NoiseWorld-Board4-v0").stdout
    assert out == promptpo_bench.describe("NoiseWorld-Board4-v0")
    assert "class Observation" in out and "BOARD_CODES" not in out and "6 cell" not in out
    assert "6 cell" in cli("describe", "NoiseWorld-Board4-v0", "--variant", "paper-key-info").stdout
    assert "BOARD_CODES" in cli("describe", "NoiseWorld-Board0-v0", "--variant", "explained").stdout
    assert cli("describe", "NoiseWorld-Board4-v0", "--list-variants").stdout.splitlines()[0].startswith("paper: ")


def test_describe_board1_explains_no_code():
    """The paper's NoiseWorld point: the LLM must discover what the codes do; the default context never says."""
    out = cli("describe", "NoiseWorld-Board1-v0").stdout
    assert "only the integers 0, 1, 2, 3, 4, and 5 can appear" in out
    for word in ("BOARD_CODES", "stays where", "sent back", "wall", "terminal", "succeeds", "def reward", "goal;"):
        assert word not in out, word


def test_rollout_optimal_reaches_the_exact_optimum_within_its_ci():
    out = json.loads(cli("rollout", "NoiseWorld-v0", "--policy", "optimal", "--episodes", "400", "--json").stdout)
    assert len(out["returns"]) == 400 and out["episode_seeds"][:2] == [0, 1]
    assert abs(out["mean_return"] - 974.91) <= max(out["ci95"], 0.5)
    assert out["normalised_score"] == pytest.approx(1.0, abs=0.01)


def test_rollout_reports_the_success_rate_where_the_task_defines_success():
    args = ("rollout", "MiniGrid-Empty-8x8-v0", "--policy", "optimal", "--episodes", "3")
    assert json.loads(cli(*args, "--json").stdout)["success_rate"] == 1.0
    assert "success rate 1.00, 48 env steps" in cli(*args).stdout
    assert json.loads(cli("rollout", "NoiseWorld-v0", "--episodes", "2", "--json").stdout)["success_rate"] is None


def test_rollout_text_output_and_generated_board():
    """The text report shows the JSON report's numbers, on the generated 6 x 6 board with its exact references."""
    import re

    import numpy as np

    from promptpo_bench.tasks.noiseworld.board import generate_board
    from promptpo_bench.tasks.noiseworld.oracle import solution

    args = ("rollout", "NoiseWorld-v0", "--kwarg", "size=6", "--kwarg", "layout_seed=3", "--policy", "random",
            "--episodes", "5", "--seed", "9")
    text, report = cli(*args).stdout, json.loads(cli(*args, "--json").stdout)
    exact = solution(generate_board(6, 3))
    assert report["env_kwargs"] == {"size": 6, "layout_seed": 3} and report["episode_seeds"] == [9, 10, 11, 12, 13]
    assert report["reference"] == {"random": pytest.approx(exact.random_return),
                                   "optimal": pytest.approx(exact.optimal_return)}
    assert max(report["lengths"]) <= 36  # the 6 x 6 board's horizon
    assert report["mean_return"] == pytest.approx(np.mean(report["returns"]))
    assert report["normalised_score"] == pytest.approx(
        (report["mean_return"] - exact.random_return) / (exact.optimal_return - exact.random_return))
    numbers = lambda line: [float(x) for x in re.findall(r"-?\d+\.\d+|-?\d+", line)]  # noqa: E731
    lines = text.splitlines()
    assert "seeds 9..13" in lines[0]
    assert numbers(lines[1]) == pytest.approx(report["returns"], abs=0.005)
    mean, ci, _, steps = numbers(lines[2])[:4]
    assert (mean, ci) == (pytest.approx(report["mean_return"], abs=0.005), pytest.approx(report["ci95"], abs=0.005))
    assert steps == sum(report["lengths"])
    random, optimal, normalised = (numbers(lines[3])[i] for i in (0, 1, 2))
    assert (random, optimal, normalised) == (pytest.approx(exact.random_return, abs=0.005),
                                             pytest.approx(exact.optimal_return, abs=0.005),
                                             pytest.approx(report["normalised_score"], abs=0.0005))


@pytest.mark.parametrize("args,expected", [
    (("rollout", "NoiseWorld-v1"), "unknown env id 'NoiseWorld-v1'; did you mean NoiseWorld-v0"),
    (("describe", "NoiseWorld-Board9-v0"), "unknown env id 'NoiseWorld-Board9-v0'; did you mean"),
    (("rollout", "NoiseWorld-v0", "--kwarg", "board=9"), "board must be an integer in 0..6, got 9"),
    (("rollout", "NoiseWorld-v0", "--kwarg", "boardd=1"), "valid kwargs: board: int in 0..6"),
    (("rollout", "NoiseWorld-v0", "--policy", "nothere.py"), "nothere.py does not exist"),
    (("rollout", "NoiseWorld-v0", "--episodes", "0"), "--episodes must be at least 1"),
])
def test_bad_input_gives_one_line_errors(args, expected):
    result = cli(*args, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("promptpo-bench: error: ") and expected in lines[0], result.stderr


POLICY = """
class Policy:
    def act(self, obs):  # down to the last row, then right: a fair plan on board 1
        n = int(round(len(obs.board) ** 0.5))
        return 1 if round(obs.agent_row * (n - 1)) < n - 1 else 3
"""


def test_rollout_of_a_policy_file_runs_in_the_sandbox(tmp_path):
    path = tmp_path / "policy.py"
    path.write_text(POLICY)
    out = json.loads(cli("rollout", "NoiseWorld-Board1-v0", "--policy", str(path), "--episodes", "20", "--json").stdout)
    assert len(out["returns"]) == 20 and 900 < out["mean_return"] <= 974.91 + 30


@pytest.mark.parametrize("name", ["../outside.py", "/etc/passwd", "linked.py"])
def test_rollout_of_a_run_directory_reads_no_policy_outside_it(tmp_path, name):
    """A downloaded run directory whose record names a policy outside it (or links to one) is refused in one line:
    its code would otherwise be the user's own file, sent to the sandbox and echoed back in a failure."""
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "outside.py").write_text(POLICY)
    (run / "linked.py").symlink_to(tmp_path / "outside.py")
    (run / "record.json").write_text(json.dumps({"policy": {"path": name, "kind": "python"}}))
    result = cli("rollout", "NoiseWorld-Board1-v0", "--policy", str(run), "--episodes", "1", check=False)
    assert result.returncode == 2 and f"policy.path {name!r} must be a file inside the run directory" in result.stderr


@pytest.mark.parametrize("code,kind", [
    ("class Policy:\n    def act(self, obs):\n        return 1 / 0\n", "crash"),
    ("class Policy:\n    def act(self, obs):\n        return 7\n", "invalid_action"),
    ("class Policy:\n    def act(self, obs):\n        while True:\n            pass\n", "timeout"),
    ("class Agent:\n    pass\n", "missing_class"),
])
def test_a_failing_policy_is_reported_in_one_line(tmp_path, code, kind):
    path = tmp_path / "policy.py"
    path.write_text(code)
    result = cli("rollout", "NoiseWorld-v0", "--policy", str(path), "--act-timeout", "0.3", check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"promptpo-bench: policy failed ({kind}): "), result.stderr


def test_rollout_policy_lifetime_flag(tmp_path):
    """`--policy-lifetime rollout` (the default for a policy file) builds one Policy() for all the episodes."""
    path = tmp_path / "policy.py"
    path.write_text("class Policy:\n    made = 0\n\n    def __init__(self):\n        Policy.made += 1\n\n"
                    "    def act(self, obs):\n        assert Policy.made == 1, 'a second Policy()'\n        return 1\n")
    assert cli("rollout", "NoiseWorld-Board0-v0", "--policy", str(path), "--episodes", "3").returncode == 0
    result = cli("rollout", "NoiseWorld-Board0-v0", "--policy", str(path), "--episodes", "3",
                 "--policy-lifetime", "episode", check=False)
    assert result.returncode == 1 and "a second Policy()" in result.stderr
