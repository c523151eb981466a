"""PromptPO (against the scripted test server, a test double), PPO and DQN on a MiniGrid task.

A short `max_steps` keeps every run to a few hundred steps; each writes a valid record.
"""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("minigrid")
pytest.importorskip("torch")

from scripted_server import ScriptedLLMServer  # noqa: E402
from test_baselines import check_reload, check_run, dqn, ppo  # noqa: E402
from test_promptpo import kind, run  # noqa: E402

from promptpo_bench.records import load_record  # noqa: E402

ENV_ID, KWARGS = "MiniGrid-Empty-8x8-v0", '{"max_steps": 40}'
# What an LLM might write for Empty-8x8 from the description: walk to the goal once the view shows it.
TO_THE_GOAL = """```python
import numpy as np

GOAL, EMPTY = 8, 1
LEFT, RIGHT, FORWARD = 0, 1, 2


class Policy:
    def act(self, obs):
        seen = np.argwhere(obs.objects == GOAL)
        if len(seen):
            x, y = seen[0]
            if x == 3:
                return FORWARD
            if y == 6:
                return LEFT if x < 3 else RIGHT
        return FORWARD if obs.objects[3, 5] in (EMPTY, GOAL) else RIGHT
```"""
SPIN = """```python
class Policy:
    def act(self, obs):
        return 0
```"""
FEEDBACK = """```python
class Feedback:
    def summarize_trajectory(self, traj):
        return f"{len(traj) - 1} steps, facing {traj[-1].direction} at the end"
```"""


def test_promptpo_minigrid_keeps_the_policy_that_reaches_the_goal(tmp_path):
    policies, lock = itertools.cycle([SPIN, TO_THE_GOAL]), threading.Lock()

    def respond(request, _):
        what = kind(request)
        if what == "policy":
            assert "OBJECT_TO_IDX" in request["messages"][1]["content"]  # the MiniGrid description is the context
            with lock:
                return next(policies)
        return FEEDBACK if what == "feedback" else "Walk to the goal instead of turning."

    with ScriptedLLMServer(respond) as server:
        out = run("--env-id", ENV_ID, "--env-kwargs", KWARGS, "--num-rounds", "2", "--num-candidates", "2",
                  "--num-episodes", "2", "--eval-episodes", "3", "--run-dir", str(tmp_path / "run"),
                  base_url=server.base_url)
    record = load_record(tmp_path / "run")
    attempts = [json.loads(p.read_text()) for p in (tmp_path / "run" / "candidates").glob("r0_c*_a0.json")]
    assert sorted(any(a["successes"]) for a in attempts) == [False, True]
    assert (tmp_path / "run" / "policy.py").read_text().strip() in TO_THE_GOAL
    assert record["final_eval"]["success_rate"] == 1.0 and min(record["final_eval"]["returns"]) > 0.5
    assert "final policy" in out.stdout


def test_ppo_and_dqn_write_valid_records(tmp_path: Path):
    out = ppo.main(ppo.Args(env_id=ENV_ID, env_kwargs=KWARGS, total_timesteps=256, num_envs=2, num_steps=64,
                            num_minibatches=2, update_epochs=1, eval_every=10_000, periodic_eval_episodes=1,
                            eval_episodes=2, run_dir=str(tmp_path / "ppo")))
    record = check_run(out, ENV_ID, 256, eval_episodes=2)
    check_reload(tmp_path / "ppo", record, ENV_ID, {"max_steps": 40})
    out = dqn.main(dqn.Args(env_id=ENV_ID, env_kwargs=KWARGS, total_timesteps=300, learning_starts=100,
                            buffer_size=300, eval_every=10_000, periodic_eval_episodes=1, eval_episodes=2,
                            run_dir=str(tmp_path / "dqn")))
    record = check_run(out, ENV_ID, 300, eval_episodes=2)
    check_reload(tmp_path / "dqn", record, ENV_ID, {"max_steps": 40})
