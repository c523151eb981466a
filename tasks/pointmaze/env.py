"""PointMaze (gymnasium-robotics v3) with a flat observation and a horizon the environment enforces itself.

Imported only when an env is made: gymnasium-robotics and MuJoCo load here, not on `import promptpo_bench`.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import gymnasium as gym
from gymnasium import spaces

with contextlib.redirect_stderr(io.StringIO()):  # its import prints a notice about Adroit envs, which we do not use
    from gymnasium_robotics.envs.maze.maps import LARGE_MAZE_DIVERSE_G
    from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv

# The paper's custom Large map (1 wall, 0 free; rows top to bottom). With no "r"/"g"/"c" cells,
# gymnasium-robotics draws the goal and the start uniformly from the free cells.
PAPER_LARGE = [
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 0, 0, 0, 1, 0, 0, 0, 0, 1],
    [1, 0, 1, 0, 1, 0, 1, 1, 0, 1],
    [1, 0, 0, 0, 0, 0, 0, 1, 0, 1],
    [1, 0, 1, 1, 1, 1, 0, 1, 0, 1],
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [1, 0, 1, 0, 1, 1, 1, 1, 0, 1],
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
]
MAPS = {"large": PAPER_LARGE, "large_diverse_g": LARGE_MAZE_DIVERSE_G}  # the latter as gymnasium-robotics ships it

OBS_FIELDS = ("x", "y", "vx", "vy", "achieved_x", "achieved_y", "goal_x", "goal_y")


class FlatPointMazeEnv(gym.Env):
    """gymnasium-robotics' PointMazeEnv (held as `sim`) with its dict observation flattened to `OBS_FIELDS`.

    Layout (float64): the dict's `observation` (x, y, vx, vy), then `achieved_goal` (x, y), then
    `desired_goal` (x, y). The defaults are the paper's: gymnasium-robotics' `PointMaze_Large-v3` with its own map,
    sparse reward and `continuing_task=False` (the episode ends when the ball comes within 0.45 m of the goal,
    so the return is 0 or 1); `continuing_task=True` is gymnasium-robotics' own default (the episode goes on
    and every step at the goal pays 1). The episode is truncated after `horizon` steps.
    """

    metadata = PointMazeEnv.metadata

    def __init__(self, maze: str = "large", horizon: int = 800, reward_type: str = "sparse",
                 continuing_task: bool = False, reset_target: bool = False, render_mode: str | None = None):
        if maze not in MAPS:
            raise ValueError(f"maze must be one of {', '.join(MAPS)}, got {maze!r}")
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        if not (isinstance(horizon, int) and horizon >= 1):
            raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
        self.sim = PointMazeEnv(maze_map=MAPS[maze], render_mode=render_mode, reward_type=reward_type,
                                continuing_task=continuing_task, reset_target=reset_target)
        # gymnasium-robotics writes the maze's MJCF to /tmp/ant_maze<time>.xml and leaves it there; the model is
        # loaded by now, so the file goes (a long sweep had left thousands behind)
        Path(self.sim.tmp_xml_file_path).unlink(missing_ok=True)
        self.maze_name, self.horizon, self.render_mode, self._steps = maze, horizon, render_mode, 0
        self.reward_type, self.continuing_task, self.reset_target = reward_type, continuing_task, reset_target
        self.action_space = self.sim.action_space
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(len(OBS_FIELDS),), dtype=np.float64)

    @property
    def maze(self):
        """gymnasium-robotics' Maze: the map, its scaling and the cell <-> (x, y) conversions."""
        return self.sim.maze

    @staticmethod
    def flatten(obs: dict[str, np.ndarray]) -> np.ndarray:
        """The flat observation in `OBS_FIELDS` order."""
        return np.concatenate([obs["observation"], obs["achieved_goal"], obs["desired_goal"]]).astype(np.float64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self.sim.reset(seed=seed, options=options)
        self._steps = 0
        return self.flatten(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.sim.step(action)
        self._steps += 1
        return self.flatten(obs), float(reward), bool(terminated), bool(truncated or self._steps >= self.horizon), info

    def render(self):
        return self.sim.render()

    def close(self):
        self.sim.close()
