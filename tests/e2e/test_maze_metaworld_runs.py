"""PromptPO (against the scripted test server, a test double), PPO and SAC on a PointMaze and a Meta-World task.

Short horizons (the `horizon` env kwarg) keep every run to a few hundred steps; each writes a valid record.
"""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("metaworld")
pytest.importorskip("gymnasium_robotics")
pytest.importorskip("torch")

from scripted_server import ScriptedLLMServer  # noqa: E402
from test_baselines import check_reload, check_run, ppo, sac  # noqa: E402
from test_promptpo import kind, run  # noqa: E402

from promptpo_bench.records import load_record  # noqa: E402

FEEDBACK = """```python
class Feedback:
    def summarize_trajectory(self, traj):
        return f"{len(traj) - 1} steps, last hand position {traj[-1].hand_pos.round(3).tolist()}"
```"""
# Two button-press policies: the first succeeds (presses the button fully) and then leaves, so its return is
# lower than the second's, which holds the button 3 cm short of pressed (never a success, higher return).
PRESS_THEN_LEAVE = """```python
import numpy as np


class Policy:
    def __init__(self):
        self.pressed = False

    def act(self, obs):
        if abs(obs.goal_pos[1] - obs.obj1_pos[1]) <= 0.015:
            self.pressed = True
        if self.pressed:
            return np.array([0.0, -1.0, 1.0, 0.0])
        target = obs.obj1_pos + np.array([0.0, 0.0, -0.07])
        aligned = np.allclose(obs.hand_pos[[0, 2]], target[[0, 2]], atol=0.02)
        target[1] = target[1] + 0.02 if aligned else obs.hand_pos[1] - 0.1
        return np.clip(np.append(25.0 * (target - obs.hand_pos), 0.0), -1.0, 1.0)
```"""
PRESS_HALFWAY = """```python
import numpy as np


class Policy:
    def act(self, obs):
        target = obs.obj1_pos + np.array([0.0, 0.0, -0.07])
        aligned = np.allclose(obs.hand_pos[[0, 2]], target[[0, 2]], atol=0.02)
        short = obs.goal_pos[1] - obs.obj1_pos[1] - 0.03
        target[1] = obs.hand_pos[1] + min(short, 0.02) if aligned else obs.hand_pos[1] - 0.1
        return np.clip(np.append(25.0 * (target - obs.hand_pos), 0.0), -1.0, 1.0)
```"""
TOWARD_GOAL = """```python
import numpy as np


class Policy:
    def act(self, obs):
        return np.clip(5.0 * (obs.desired_goal - obs.achieved_goal) - 0.5 * np.array([obs.vx, obs.vy]), -1, 1)
```"""
MAZE_FEEDBACK = """```python
class Feedback:
    def summarize_trajectory(self, traj):
        return f"ended at ({traj[-1].x:.2f}, {traj[-1].y:.2f}), goal {traj[-1].desired_goal.round(2).tolist()}"
```"""


def test_promptpo_meta_world_selects_by_success_rate_first(tmp_path):
    policies, lock = itertools.cycle([PRESS_HALFWAY, PRESS_THEN_LEAVE]), threading.Lock()

    def respond(request, _):
        what = kind(request)
        if what == "policy":
            with lock:
                return next(policies)
        return FEEDBACK if what == "feedback" else "Pressing fully matters more than holding."

    with ScriptedLLMServer(respond) as server:
        out = run("--env-id", "MetaWorld-ButtonPress-v0", "--env-kwargs", '{"horizon": 150}', "--num-rounds", "1",
                  "--num-candidates", "2", "--num-episodes", "2", "--eval-episodes", "2",
                  "--run-dir", str(tmp_path / "run"), base_url=server.base_url)
    record = load_record(tmp_path / "run")
    attempts = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "run" / "candidates").glob("r0_c*_a0.json")}
    by_success = {any(a["successes"]): a for a in attempts.values()}
    assert set(by_success) == {True, False}  # one candidate succeeded, the other did not
    assert sum(by_success[True]["returns"]) < sum(by_success[False]["returns"])  # ... with the lower return
    assert (tmp_path / "run" / "policy.py").read_text().strip() in PRESS_THEN_LEAVE  # success rate decided
    assert record["curve"][0]["success_rate"] == 1.0
    assert record["totals"]["env_steps"] == 2 * 2 * 150 + 150  # 2 candidates x 2 episodes + the Feedback probe
    assert "final policy" in out.stdout


def test_promptpo_pointmaze_tiny_run(tmp_path):
    def respond(request, _):
        return {"feedback": MAZE_FEEDBACK, "policy": TOWARD_GOAL}.get(kind(request), "Go around the walls.")

    with ScriptedLLMServer(respond) as server:
        run("--env-id", "PointMaze-Large-v0", "--env-kwargs", '{"horizon": 40}', "--num-rounds", "1",
            "--num-candidates", "1", "--num-episodes", "1", "--eval-episodes", "2",
            "--run-dir", str(tmp_path / "run"), base_url=server.base_url)
    record = load_record(tmp_path / "run")
    candidates = tmp_path / "run" / "candidates"
    probe, candidate = (json.loads((candidates / f"{name}.json").read_text()) for name in ("feedback_probe", "r0_c0_a0"))
    assert candidate["lengths"][0] <= 40  # the episode ends at the goal (continuing_task=False) or at the horizon
    assert record["env_id"] == "PointMaze-Large-v0"
    assert record["totals"]["env_steps"] == probe["env_steps"] + candidate["env_steps"] == probe["env_steps"] + \
        candidate["lengths"][0]
    assert len(record["final_eval"]["returns"]) == 2 and record["final_eval"]["success_rate"] is not None


@pytest.mark.parametrize("env_id", ["PointMaze-Large-v0", "MetaWorld-ButtonPress-v0"])
def test_ppo_and_sac_write_valid_records(env_id, tmp_path: Path):
    kwargs = '{"horizon": 50}'
    out = ppo.main(ppo.Args(env_id=env_id, env_kwargs=kwargs, total_timesteps=256, num_envs=2, num_steps=64,
                            num_minibatches=2, update_epochs=1, eval_every=10_000, periodic_eval_episodes=1,
                            eval_episodes=2, run_dir=str(tmp_path / "ppo")))
    record = check_run(out, env_id, 256, eval_episodes=2)
    check_reload(tmp_path / "ppo", record, env_id, {"horizon": 50})
    out = sac.main(sac.Args(env_id=env_id, env_kwargs=kwargs, total_timesteps=300, learning_starts=150, batch_size=32,
                            hidden_sizes=(32, 32), eval_every=10_000, periodic_eval_episodes=1, eval_episodes=2,
                            run_dir=str(tmp_path / "sac")))
    record = check_run(out, env_id, 300, eval_episodes=2)
    check_reload(tmp_path / "sac", record, env_id, {"horizon": 50})
