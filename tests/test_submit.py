"""`promptpo-bench submit`: genuine runs are accepted after re-evaluation; tampered ones are rejected in one line,
and a rejection leaves the board exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from promptpo_bench import cli
from promptpo_bench.records import sha256_file
from promptpo_bench.reference_runs import write_reference_run
from promptpo_bench.submit import ALPHA, welch_p_value

REPO = Path(__file__).resolve().parents[1]
PPO_RUN = REPO / "benchmarks/results/learning/NoiseWorld-Board0-v0__ppo__100000__seed1"  # a real 100k-step run


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory) -> Path:
    """A real code-policy run: the exact optimal policy of board 0 as policy.py, scored in the sandbox."""
    run_dir = tmp_path_factory.mktemp("runs") / "oracle"
    assert cli.main(["reference", "NoiseWorld-Board0-v0", "--policy", "optimal", "--run-dir", str(run_dir)]) == 0
    assert json.loads((run_dir / "record.json").read_text())["algorithm"] == "oracle"
    return run_dir


@pytest.fixture(scope="module")
def random_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "random"
    write_reference_run("NoiseWorld-Board0-v0", "random", run_dir)
    return run_dir


@pytest.fixture
def board(tmp_path, oracle_run) -> Path:
    """A board that already holds one entry, so a rejection can be seen not to change it."""
    board = tmp_path / "board"
    assert cli.main(["submit", str(oracle_run), "--leaderboard", str(board)]) == 0
    return board


def snapshot(board: Path) -> dict[str, str]:
    return {str(p.relative_to(board)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(board.rglob("*")) if p.is_file()}


def copy_run(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / f"copy-{source.name}"
    shutil.copytree(source, target)
    return target


def edit_record(run_dir: Path, change) -> None:
    record = json.loads((run_dir / "record.json").read_text())
    change(record)
    (run_dir / "record.json").write_text(json.dumps(record))


def test_accepts_a_genuine_code_policy_run(board, oracle_run):
    (entry,) = (board / "entries" / "NoiseWorld-Board0-v0").iterdir()
    assert entry.name.startswith("oracle__0steps__seed0__")
    assert {p.name for p in entry.iterdir()} == {"record.json", "policy.py", "verification.json"}
    assert sha256_file(entry / "policy.py") == sha256_file(oracle_run / "policy.py")
    verification = json.loads((entry / "verification.json").read_text())
    record = json.loads((oracle_run / "record.json").read_text())
    assert verification["mode"] == "exact"
    assert verification["reevaluated_returns"] == record["final_eval"]["returns"]
    assert verification["episode_seeds"][0] == 1_000_000_000
    assert verification["tolerance"]["alpha"] == ALPHA
    assert verification["code_version"]["package_version"]


def test_accepts_a_baseline_model_run(board, tmp_path, capsys):
    run = copy_run(PPO_RUN, tmp_path)
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 0
    (entry,) = (board / "entries" / "NoiseWorld-Board0-v0").glob("ppo__*")
    assert capsys.readouterr().out.startswith(f"accepted: {entry} (exact reproduction")
    assert (entry / "model.pt").is_file()
    assert json.loads((entry / "verification.json").read_text())["mode"] == "exact"


def test_a_stochastic_policy_is_verified_statistically(board, random_run):
    assert cli.main(["submit", str(random_run), "--leaderboard", str(board)]) == 0
    (entry,) = (board / "entries" / "NoiseWorld-Board0-v0").glob("random__*")
    verification = json.loads((entry / "verification.json").read_text())
    assert verification["mode"] == "statistical"
    assert len(verification["reevaluated_returns"]) == 100 and verification["p_value"] >= ALPHA


def _tamper_return(record):
    record["final_eval"]["returns"][3] += 10.0
    record["final_eval"]["mean_return"] = float(np.mean(record["final_eval"]["returns"]))


def _tamper_mean(record):
    record["final_eval"]["mean_return"] += 1.0


def _curve_backwards(record):
    record["curve"][2]["env_steps"], record["curve"][3]["env_steps"] = (record["curve"][3]["env_steps"],
                                                                        record["curve"][2]["env_steps"])


def _curve_beyond_totals(record):
    record["totals"]["env_steps"] = record["curve"][-1]["env_steps"] - 1


def _not_heldout(record):
    record["final_eval"]["episode_seeds"] = list(range(len(record["final_eval"]["returns"])))


@pytest.mark.parametrize("tamper, reason", [
    (_tamper_return, "final_eval does not reproduce: the policy is deterministic here and episode seed 1000000003"),
    (_tamper_mean, "is not the mean of its returns"),
    (_curve_backwards, "the curve goes backwards: env_steps falls"),
    (_curve_beyond_totals, "but totals.env_steps is only"),
    (_not_heldout, "are not the held-out seeds"),
], ids=["tampered-return", "tampered-mean", "curve-backwards", "curve-beyond-totals", "not-heldout-seeds"])
def test_rejects_a_tampered_record(board, tmp_path, capsys, tamper, reason):
    run = copy_run(PPO_RUN, tmp_path)
    edit_record(run, tamper)
    before = snapshot(board)
    capsys.readouterr()
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("promptpo-bench: error: rejected: ") and err.count("\n") == 1, err
    assert reason in err
    assert snapshot(board) == before


def test_rejects_a_tampered_policy(board, tmp_path, oracle_run, capsys):
    run = copy_run(oracle_run, tmp_path)
    policy = run / "policy.py"
    policy.write_text(policy.read_text() + "\n\nclass Policy:\n    def act(self, obs):\n        return 1\n")
    before = snapshot(board)
    capsys.readouterr()
    # a changed file no longer matches the record's sha256 ...
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
    assert "policy.py does not match the sha256 in record.json" in capsys.readouterr().err
    # ... and with the sha256 updated too, the changed policy does not reproduce the claimed returns
    edit_record(run, lambda record: record["policy"].update(sha256=sha256_file(policy)))
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
    assert "final_eval does not reproduce" in capsys.readouterr().err
    assert snapshot(board) == before


def test_rejects_inflated_returns_of_a_stochastic_policy(board, tmp_path, random_run, capsys):
    run = copy_run(random_run, tmp_path)

    def inflate(record):
        record["final_eval"]["returns"] = [r + 2000.0 for r in record["final_eval"]["returns"]]
        record["final_eval"]["mean_return"] = float(np.mean(record["final_eval"]["returns"]))

    edit_record(run, inflate)
    before = snapshot(board)
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
    assert "Welch's t-test p =" in capsys.readouterr().err
    assert snapshot(board) == before


def test_rejects_a_duplicate(board, oracle_run, tmp_path, capsys):
    before = snapshot(board)
    capsys.readouterr()
    renamed = copy_run(oracle_run, tmp_path)  # same policy on the same task, from another directory
    edit_record(renamed, lambda record: record.update(seed=7))
    for run in (oracle_run, renamed):
        assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
        err = capsys.readouterr().err
        assert "rejected: duplicate: the same policy" in err and err.count("\n") == 1
    assert snapshot(board) == before


def test_welch_p_value():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 50), rng.normal(0, 1, 100)
    assert welch_p_value(a, b) > ALPHA
    assert welch_p_value(a + 3, b) < ALPHA
    assert welch_p_value(np.ones(5), np.ones(10)) == 1.0
    assert welch_p_value(np.ones(5), np.zeros(10)) == 0.0


def test_rollout_re_evaluates_a_code_policy_run_directory(oracle_run, capsys):
    assert cli.main(["rollout", "NoiseWorld-Board0-v0", "--policy", str(oracle_run), "--episodes", "3",
                     "--seed", "1000000000", "--json"]) == 0
    record = json.loads((oracle_run / "record.json").read_text())
    assert json.loads(capsys.readouterr().out)["returns"] == record["final_eval"]["returns"][:3]


def test_submit_track_logs_to_wandb_offline(tmp_path, oracle_run):
    pytest.importorskip("wandb")
    from wandb_offline import history

    # in a process of its own, as users run it: W&B has written everything when that process has exited
    subprocess.run([sys.executable, "-m", "promptpo_bench.cli", "submit", str(oracle_run), "--leaderboard",
                    str(tmp_path / "board"), "--track"], cwd=tmp_path, env={**os.environ, "WANDB_MODE": "offline"},
                   check=True, capture_output=True, timeout=300)
    rows = history(tmp_path)
    record = json.loads((oracle_run / "record.json").read_text())
    assert [json.loads(row["charts/episodic_return"]) for row in rows] == [p["mean_return"] for p in record["curve"]]
    assert not list((tmp_path / "board").rglob("wandb"))  # W&B files stay out of the board
