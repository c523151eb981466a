"""What an LLM reads about PointMaze: observation, actions, maze, reward, horizon and success, as Python.

Everything between a `# <context ...>` and `# </context>` marker is shown to the LLM verbatim (`when=`
picks the sparse or dense reward and the variant's parts, `{name}` placeholders are filled in per maze); the rest
of this file only chooses. It imports nothing but NumPy, so the sandbox can load it.

The paper's context (env_contexts/point_maze_*_context.txt of its repository) draws no maze: it says which maze it
is (a custom one, not the published LARGE_MAZE; or the published LARGE_MAZE_DIVERSE_G), how starts and goals are
drawn, the action, the reward and when an episode ends. The `paper` variant (default) tells exactly that; `suite`
adds the maze as a grid, the cell <-> (x, y) helpers, the cell size, the ball's radius, the damping and the start
noise.
"""

from __future__ import annotations

VARIANTS = {
    "paper": "the paper's information: which maze (no layout), how starts and goals are drawn, action, reward, episode",
    "suite": "+ the maze drawn as a grid, cell <-> (x, y) helpers, cell size, ball radius, damping, start noise",
}

# <context>
from dataclasses import dataclass

import numpy as np


@dataclass
class Observation:
    """What the agent sees at each step: a ball (a point mass) in a 2-D maze, and the goal.

    Positions are in metres, velocities in metres per second, in the maze's world frame.
    """

    x: float  # ball position
    y: float
    vx: float  # ball velocity
    vy: float
    achieved_goal: np.ndarray  # (2,) the ball's (x, y) again
    desired_goal: np.ndarray  # (2,) the goal's (x, y); it does not move during an episode

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat float64 array of 8 numbers."""
        values = np.array(array, dtype=np.float64)  # a copy: the policy may keep or change it
        x, y, vx, vy = values[:4].tolist()
        return cls(x, y, vx, vy, values[4:6], values[6:8])


# Action: a NumPy array of 2 floats in [-1, 1]: the force pushing the ball along x and along y. Values
# outside [-1, 1] are clipped; each velocity component is clipped to [-5, 5] m/s. One step lasts 0.01 s of
# simulated time. Walls stop the ball.
# </context>

# <context when="paper">
# The maze: {maze_words}
# Start of an episode: {paper_start_rule}
# </context>

# <context when="suite">
# There is no gravity and the ball's joints are damped. x grows to the right (east) and y grows upward (north)
# in the maze drawing below.

# The maze, rows from top (north) to bottom (south): '1' wall, '0' free{cell_legend}.
# Every cell is a 1 m x 1 m square; the ball has radius 0.1 m.
MAZE = """
{maze}
"""
_ROWS = MAZE.split()


def cell_to_xy(row: int, col: int) -> tuple[float, float]:
    """The (x, y) centre of the maze cell in row `row` (0 = top) and column `col` (0 = left)."""
    return (col + 0.5) - len(_ROWS[0]) / 2, len(_ROWS) / 2 - (row + 0.5)


def xy_to_cell(x: float, y: float) -> tuple[int, int]:
    """The (row, col) of the maze cell containing the point (x, y)."""
    return int(np.floor(len(_ROWS) / 2 - y)), int(np.floor(x + len(_ROWS[0]) / 2))


# Start of an episode: {start_rule} Both positions get uniform noise of up to +-0.25 m in x and in y
# around their cells' centres. The ball starts at rest.
# </context>

# <context when="sparse">
def reward(obs: Observation) -> float:
    """The reward of the step that produced `obs`: 1 while the ball is within 0.45 m of the goal, else 0."""
    distance = np.linalg.norm(obs.achieved_goal - obs.desired_goal)
    return 1.0 if distance <= 0.45 else 0.0
# </context>

# <context when="dense">
def reward(obs: Observation) -> float:
    """The reward of the step that produced `obs`: exp(-distance between the ball and the goal)."""
    distance = np.linalg.norm(obs.achieved_goal - obs.desired_goal)
    return float(np.exp(-distance))
# </context>

# <context>
# Episode: {episode_end}
# Success: the ball is within 0.45 m of the goal at some step of the episode.
# </context>

_MAZE_WORDS = {
    "large": "a custom layout of gymnasium-robotics' PointMaze, not its published LARGE_MAZE (do not assume "
             "the published layout); its layout is not given here.",
    "large_diverse_g": "gymnasium-robotics' published LARGE_MAZE_DIVERSE_G, with 'r' (start) and 'g' (goal) cells.",
}
_PAPER_START_RULES = {
    "large": "the goal and the ball's start are drawn from the maze's free cells, with uniform noise around "
             "the cells' centres.",
    "large_diverse_g": "a goal cell is drawn from the 'g' cells and a start cell from the 'r' cells, then uniform "
                       "noise around the cells' centres is applied.",
}
_START_RULES = {
    "large": "the goal is placed in a free cell drawn uniformly at random, and the ball in another free "
             "cell drawn uniformly at random (never the goal's cell).",
    "large_diverse_g": "the ball starts in the 'r' cell; the goal is placed in one of the 'g' cells, drawn "
                       "uniformly at random.",
}


def context_variables(env, variant: str) -> tuple[set[str], dict[str, str]]:
    """The reward's and the variant's parts and placeholder values for `env` (an unwrapped FlatPointMazeEnv)."""
    rows = ["".join(str(cell) for cell in row) for row in env.maze.maze_map]
    legend = ", 'r' the ball's start cell, 'g' a possible goal cell" if any("g" in row for row in rows) else ""
    if not env.continuing_task:
        end = f"it ends when the ball comes within 0.45 m of the goal, or after {env.horizon} steps (the horizon)."
    elif env.reset_target:
        end = (f"it lasts exactly {env.horizon} steps (the horizon); reaching the goal does not end it: the goal "
               "then moves to a new random free cell.")
    else:
        end = (f"it lasts exactly {env.horizon} steps (the horizon); reaching the goal does not end it, so "
               "the ball should reach the goal fast and stay there.")
    values = {"maze": "\n".join(rows), "cell_legend": legend, "start_rule": _START_RULES[env.maze_name],
              "episode_end": end, "maze_words": _MAZE_WORDS[env.maze_name],
              "paper_start_rule": _PAPER_START_RULES[env.maze_name]}
    return {env.reward_type, variant}, values
