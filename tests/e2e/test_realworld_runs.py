"""PPO, SAC and PromptPO (against the scripted test server) run end to end on each real-world task, shortened by
the family's SHORT kwargs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from algorithm_files import ALGORITHMS, load_algorithm
from test_realworld import SHORT


EVAL = dict(periodic_eval_episodes=1, eval_episodes=2)


@pytest.mark.parametrize("env_id", list(SHORT))
def test_ppo_runs_a_few_hundred_steps(env_id, tmp_path):
    pytest.importorskip("torch")
    import json

    from promptpo_bench.records import load_record

    ppo = load_algorithm("ppo")
    out = ppo.main(ppo.Args(env_id=env_id, env_kwargs=json.dumps(SHORT[env_id]), num_envs=2, total_timesteps=256,
                            num_steps=64, num_minibatches=2, update_epochs=1, eval_every=128, run_dir=str(tmp_path), **EVAL))
    record = load_record(out["run_dir"])
    assert record["env_id"] == env_id and record["totals"]["env_steps"] == 256
    assert np.isfinite(record["final_eval"]["mean_return"])


@pytest.mark.parametrize("env_id", ["Glucose-Adult-v0", "Traffic-Merge-v0"])
def test_sac_runs_a_few_hundred_steps(env_id, tmp_path):
    pytest.importorskip("torch")
    import json

    from promptpo_bench.records import load_record

    sac = load_algorithm("sac")
    out = sac.main(sac.Args(env_id=env_id, env_kwargs=json.dumps(SHORT[env_id]), total_timesteps=200,
                            learning_starts=100, batch_size=32, eval_every=100, run_dir=str(tmp_path), **EVAL))
    record = load_record(out["run_dir"])
    assert record["env_id"] == env_id and record["totals"]["env_steps"] == 200
    assert np.isfinite(record["final_eval"]["mean_return"])


SCRIPTED_POLICIES = {  # what the scripted test server answers per task: simple, valid policies
    "Glucose-Adult-v0": "class Policy:\n    def act(self, obs):\n        return [0.02 + (0.01 if obs.cgm[-1] > 180 else 0.0)]\n",
    "Pandemic-Town-v0": "class Policy:\n    def act(self, obs):\n        return 2 if obs.infected[-1] > 0.02 else (0 if obs.infected[-1] < 0.005 else 1)\n",
    "Traffic-Merge-v0": "class Policy:\n    def act(self, obs):\n        return [0.5 if g > 30 else -0.5 for g in obs.leader_gap]\n",
}


@pytest.mark.parametrize("env_id", list(SHORT))
def test_promptpo_with_the_scripted_server(env_id, tmp_path):
    import json

    from scripted_server import ScriptedLLMServer

    from promptpo_bench.records import load_record

    feedback = "```python\nclass Feedback:\n    def summarize_trajectory(self, traj):\n        return f'{len(traj)} observations'\n```"

    def respond(request, _):
        user = request["messages"][1]["content"]
        if "class `Feedback`" in user:
            return feedback
        if "reflect on the latest attempt" in user:
            return "It ran. Try something else next."
        assert "def from_array" in user  # the task's own description reached the LLM
        return f"```python\n{SCRIPTED_POLICIES[env_id]}```"

    root = ALGORITHMS.parent
    with ScriptedLLMServer(respond) as server:
        result = subprocess.run(
            [sys.executable, str(root / "algorithms" / "promptpo.py"), "--env-id", env_id, "--env-kwargs",
             json.dumps(SHORT[env_id]), "--num-rounds", "1", "--num-candidates", "2", "--num-episodes", "2",
             "--eval-episodes", "2", "--num-workers", "2", "--run-dir", str(tmp_path / "run"), "--llm-base-url",
             server.base_url], capture_output=True, text=True, timeout=300, cwd=root,
            env={**__import__("os").environ, "OPENAI_API_KEY": "test-key", "WANDB_MODE": "offline"})
    assert result.returncode == 0, result.stdout + result.stderr
    record = load_record(tmp_path / "run")
    assert record["policy"]["kind"] == "python" and record["totals"]["env_steps"] > 0
    assert np.isfinite(record["final_eval"]["mean_return"])
