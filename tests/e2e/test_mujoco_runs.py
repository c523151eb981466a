"""MuJoCo end to end: a policy file in the sandbox, PromptPO with the scripted test server, PPO and SAC runs
and the CLI's re-evaluation of a baseline's run directory, all on Gymnasium's own v5 ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")

from scripted_server import ScriptedLLMServer  # noqa: E402  (test double)

import promptpo_bench  # noqa: E402
from promptpo_bench import cli  # noqa: E402
from promptpo_bench.descriptions import mujoco as description  # noqa: E402
from promptpo_bench.records import load_record  # noqa: E402
from promptpo_bench.rollout import run_episodes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# a PD controller on the hopper's named fields: what an LLM could write after reading the description
HOPPER_POLICY = """
class Policy:
    def act(self, obs):
        lean = -2.0 * obs.rooty - 0.2 * obs.rooty_vel
        return [max(-1.0, min(1.0, lean)), -0.5 * obs.leg_joint, -0.5 * obs.foot_joint]
"""
# Feedback and policy read what only the paper variant (the default) carries: qpos, qvel, dt
FEEDBACK = ("```python\nclass Feedback:\n    def summarize_trajectory(self, traj):\n"
            "        return f'{len(traj) - 1} steps, torso moved {traj[-1].qpos[0] - traj[0].qpos[0]:.2f} m'\n```")
CHEETAH_POLICY = ("```python\nclass Policy:\n    def act(self, obs):\n"
                  "        return [0.5 if obs.qvel[2] * obs.dt < 0 else -0.5] * 6\n```")


class InProcess:
    """The same policy code run in this process (reference for the sandboxed run)."""

    def __init__(self, code: str):
        namespace: dict = {}
        exec(code, namespace)
        self.policy = namespace["Policy"]()

    def act(self, episode_ids, obs, steps):
        return np.array([self.policy.act(description.Observation.from_array(o)) for o in obs], dtype=np.float32)


def test_policy_file_in_the_sandbox_reads_named_fields(tmp_path, capsys):
    path = tmp_path / "policy.py"
    path.write_text(HOPPER_POLICY)
    assert cli.main(["rollout", "Hopper-v5", "--policy", str(path), "--episodes", "3", "--json"]) == 0
    sandboxed = json.loads(capsys.readouterr().out)
    local = run_episodes("Hopper-v5", InProcess(HOPPER_POLICY), [0, 1, 2])
    np.testing.assert_allclose(sandboxed["returns"], local.returns, rtol=1e-9)
    assert sandboxed["lengths"] == local.lengths.tolist()


def test_promptpo_tiny_run_on_half_cheetah(tmp_path, capsys):
    prompts = []

    def respond(request, _):
        user = request["messages"][1]["content"]
        prompts.append(user)
        if "class `Feedback`" in user:
            return FEEDBACK
        return "Steady." if "reflect on the latest attempt" in user else CHEETAH_POLICY

    env = {**os.environ, "OPENAI_API_KEY": "test-key"}
    with ScriptedLLMServer(respond) as server:
        result = subprocess.run(
            [sys.executable, str(ROOT / "algorithms" / "promptpo.py"), "--env-id", "HalfCheetah-v5",
             "--env-kwargs", '{"max_episode_steps": 25}', "--num-rounds", "1", "--num-candidates", "2",
             "--num-episodes", "1", "--eval-episodes", "10", "--run-dir", str(tmp_path / "run"),
             "--llm-base-url", server.base_url], capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    record = load_record(tmp_path / "run")  # schema-valid
    assert record["env_id"] == "HalfCheetah-v5" and len(record["final_eval"]["returns"]) == 10
    assert all(length == 25 for length in json.loads((tmp_path / "run" / "candidates" / "r0_c0_a0.json")
                                                     .read_text())["lengths"])
    assert any("class HalfCheetahObservation(Observation)" in p and "def half_cheetah_reward" in p for p in prompts)
    assert any("class HalfCheetahObservationWithState(HalfCheetahObservation)" in p for p in prompts)
    assert not any("HopperObservation" in p for p in prompts)  # only the task's own part
    assert record["config"]["description_variant"] == "paper"
    assert any("torso moved" in p for p in prompts)  # the Feedback read qpos on the candidates' episodes
    # `promptpo-bench rollout` of the run re-evaluates it on the observation its policy read, with its returns
    seeds = record["final_eval"]["episode_seeds"]
    args = ["rollout", "HalfCheetah-v5", "--policy", str(tmp_path / "run"), "--episodes", "10", "--seed", str(seeds[0]),
            "--json"]
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out)["returns"] == record["final_eval"]["returns"]
    assert cli.main(["submit", str(tmp_path / "run"), "--leaderboard", str(tmp_path / "board")]) == 0  # re-evaluated
    capsys.readouterr()
    record_path = tmp_path / "run" / "record.json"  # had it read the suite's description, it would get no qpos
    record_path.write_text(record_path.read_text().replace('"description_variant": "paper"',
                                                           '"description_variant": "suite"'))
    assert cli.main(args) == 1
    assert "'HalfCheetahObservation' object has no attribute 'qvel'" in capsys.readouterr().err


def test_ppo_writes_a_valid_record_on_mujoco(tmp_path, capsys):
    """PPO on `--env-id HalfCheetah-v5` (SAC on Hopper-v5: tests/e2e/test_baselines.py), re-evaluated by the CLI."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "algorithms" / "ppo.py"), "--env-id", "HalfCheetah-v5", "--total-timesteps", "256",
         "--env-kwargs", '{"max_episode_steps": 50}', "--num-steps", "128", "--num-minibatches", "2", "--update-epochs", "1", "--eval-every", "100000",
         "--periodic-eval-episodes", "1", "--eval-episodes", "1", "--hidden-sizes", "16", "16",
         "--run-dir", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    record = load_record(tmp_path)
    assert record["env_id"] == "HalfCheetah-v5" and record["algorithm"] == "ppo"
    assert 0 < record["totals"]["env_steps"] <= 256
    # the CLI re-evaluates the run directory on the same held-out seed to the same return
    seed = record["final_eval"]["episode_seeds"][0]
    assert cli.main(["rollout", "HalfCheetah-v5", "--policy", str(tmp_path), "--episodes", "1", "--seed", str(seed),
                     "--kwarg", "max_episode_steps=50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["returns"] == pytest.approx(record["final_eval"]["returns"], rel=1e-9)


def test_rollout_of_a_stored_mujoco_baseline_run(capsys):
    run_dir = ROOT / "benchmarks" / "results" / "learning" / "Hopper-v5__sac__100000__seed1"
    if not (run_dir / "model.pt").is_file():
        pytest.skip("stored Hopper-v5 SAC run not present")
    assert cli.main(["rollout", "Hopper-v5", "--policy", str(run_dir), "--episodes", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mean_return"] > promptpo_bench.reference_scores("Hopper-v5").random
    assert cli.main(["rollout", "HalfCheetah-v5", "--policy", str(run_dir)]) == 2  # wrong task: one-line error
    assert "Box(3,)" in capsys.readouterr().err
