"""A MiniGrid env with its dict observation flattened into one uint8 array, as the harness and an MLP take it.

Imported only when an env is made: MiniGrid loads here. The layout (read by descriptions/minigrid.py):
  [0] width and [1] height of the image in cells (7 x 7 for the egocentric view; the whole grid when fully
  observable), [2] the agent's direction (0 right, 1 down, 2 left, 3 up), then the image, MiniGrid's
  `image[x, y, (object, colour, state)]` flattened in C order, then, only for tasks whose mission varies,
  the mission's object colour and object type (MiniGrid's COLOR_TO_IDX and OBJECT_TO_IDX).
"""

from __future__ import annotations

import numpy as np
import gymnasium as gym
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.core.world_object import Lava
from minigrid.wrappers import FullyObsWrapper

HEADER = 3  # width, height, direction


class FlatMiniGridEnv(gym.Env):
    """One of MiniGrid's envs (held as `sim`, unwrapped) with a flat uint8 observation (see the module docstring).

    `fully_observable=True` shows the whole grid as MiniGrid's FullyObsWrapper encodes it (the agent's cell holds
    OBJECT_TO_IDX["agent"] with its direction as the state) instead of the 7 x 7 view. `reset(seed)` decides the
    whole episode: MiniGrid draws the layout from the env's seeded generator and the steps are deterministic.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, entry_point: str, env_kwargs: dict | None = None, mission: bool = False,
                 fully_observable: bool = False, max_steps: int | None = None, render_mode: str | None = None):
        if not isinstance(fully_observable, bool):
            raise ValueError(f"fully_observable must be True or False, got {fully_observable!r}")
        if max_steps is not None and not (isinstance(max_steps, int) and max_steps >= 1):
            raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
        extra = {} if max_steps is None else {"max_steps": max_steps}
        self.sim = load_env_creator(entry_point)(**(env_kwargs or {}), **extra, render_mode=render_mode)
        self._view = FullyObsWrapper(self.sim) if fully_observable else None
        self.fully_observable, self.mission, self.render_mode = fully_observable, mission, render_mode
        self.max_steps = self.sim.max_steps
        text = self.sim.mission  # MiniGrid sets one (a sample of the mission space) before the first reset
        self.objective = "pickup" if text.startswith("pick up") else "open" if text == "open the door" else "goal"
        self.lava = getattr(self.sim, "obstacle_type", None) is Lava  # LavaCrossing
        width, height = (self.sim.width, self.sim.height) if fully_observable else (self.sim.agent_view_size,) * 2
        self.shape = (width, height)
        size = HEADER + width * height * 3 + (2 if mission else 0)
        self.observation_space = spaces.Box(0, 255, shape=(size,), dtype=np.uint8)
        self.action_space = spaces.Discrete(len(self.sim.actions))

    def flatten(self, obs: dict) -> np.ndarray:
        """The flat observation of MiniGrid's dict observation (the full grid's when fully observable)."""
        image = self._view.observation(obs)["image"] if self._view is not None else obs["image"]
        parts = [np.array([*self.shape, obs["direction"]], dtype=np.uint8), image.reshape(-1)]
        if self.mission:
            target = self.sim.obj  # the object the mission names ("pick up the purple ball")
            parts.append(np.array([COLOR_TO_IDX[target.color], OBJECT_TO_IDX[target.type]], dtype=np.uint8))
        return np.concatenate(parts)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self.sim.reset(seed=seed, options=options)
        return self.flatten(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.sim.step(int(action))
        return self.flatten(obs), float(reward), bool(terminated), bool(truncated), {**info, "success": reward > 0}

    def render(self):
        return self.sim.render()

    def close(self):
        self.sim.close()
