"""Meta-World v3 MT1 tasks whose goal and object placement are a fixed function of the reset seed.

`gym.make("Meta-World/MT1", env_name=..., seed=...)` picks one of MT1's 50 tasks at every reset from a
generator seeded once at construction, before the reset runs, and SawyerXYZEnv.reset ignores its seed:
`reset(seed=s)` does not decide the episode there. Here the reset seed does: episode seed `s` plays task
`s % 50` of `metaworld.MT1(env_name, seed=task_set_seed)` (a `reset()` without a seed plays the next
task). Everything else is metaworld's own: the env class, reward v2, the 500-step horizon. Imported only
when an env is made, so `import promptpo_bench` does not load MuJoCo.
"""

from __future__ import annotations

from functools import lru_cache

import gymnasium as gym
import metaworld
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS

NUM_TASKS = 50  # MT1 draws 50 goal / object placements per environment


@lru_cache(maxsize=None)
def mt1_tasks(env_name: str, task_set_seed: int) -> tuple:
    """MT1's 50 tasks (pickled goal and object placements) for `env_name`, drawn with `task_set_seed`."""
    return tuple(metaworld.MT1(env_name, seed=task_set_seed).train_tasks)


class MetaWorldEnv(gym.Env):
    """One Meta-World v3 environment (held as `sim`), task `seed % 50` of MT1 at `reset(seed=seed)`."""

    def __init__(self, env_name: str = "button-press-v3", task_set_seed: int = 0, horizon: int = 500,
                 render_mode: str | None = None):
        if env_name not in ALL_V3_ENVIRONMENTS:
            raise ValueError(f"env_name must be a Meta-World v3 environment such as 'button-press-v3', got {env_name!r}")
        if not (isinstance(horizon, int) and 1 <= horizon <= 500):
            raise ValueError(f"horizon must be an int in 1..500, got {horizon!r}")
        self.env_name, self.task_set_seed, self.horizon, self.render_mode = env_name, task_set_seed, horizon, render_mode
        self.tasks = mt1_tasks(env_name, task_set_seed)
        self.sim = ALL_V3_ENVIRONMENTS[env_name](reward_function_version="v2", render_mode=render_mode)
        self.sim.max_path_length = horizon  # the simulator truncates itself at this many steps
        self.sim.set_task(self.tasks[0])  # MT1 tasks show the goal: this sets the observation bounds
        self.observation_space = self.sim.sawyer_observation_space
        self.action_space = self.sim.action_space
        self.metadata = {"render_modes": self.sim.metadata["render_modes"], "render_fps": self.sim.metadata["render_fps"]}
        self.task_index = -1

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.task_index = seed % NUM_TASKS if seed is not None else (self.task_index + 1) % NUM_TASKS
        self.sim.set_task(self.tasks[self.task_index])
        obs, info = self.sim.reset()
        return obs, {**info, "task_index": self.task_index}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.sim.step(np.asarray(action, dtype=np.float64))
        return obs, float(reward), bool(terminated), bool(truncated), info

    def render(self):
        return self.sim.render()

    def close(self):
        self.sim.close()
