"""What an LLM reads about NoiseWorld: observation, actions, reward and horizon, as Python.

Everything between a `# <context ...>` and `# </context>` marker is shown to the LLM verbatim (the
`when=` tag selects the with/without-key-info variant, `{name}` placeholders are filled in per board);
the rest of this file only chooses the variant. It imports nothing but NumPy, so the sandbox can load it.
"""

from __future__ import annotations

# <context>
import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Observation:
    """What the agent sees at each step of NoiseWorld, an n x n grid.

    Rows are numbered 0..n-1 from top to bottom and columns 0..n-1 from left to right. The agent
    starts at (0, 0) in the top-left corner; the goal is at (n-1, n-1) in the bottom-right corner.
    Positions are given divided by (n - 1), so they lie in [0, 1]: the cell (row, col) is
    (round(agent_row * (n - 1)), round(agent_col * (n - 1))).
    """

    agent_row: float  # agent's row / (n - 1)
    agent_col: float  # agent's column / (n - 1)
    goal_row: float  # goal's row / (n - 1), always 1.0
    goal_col: float  # goal's column / (n - 1), always 1.0
    board: np.ndarray  # the n*n cell codes, row-major (cell (r, c) is board[r * n + c]), float64
    prereq_first_done: bool | None = None  # boards with milestones only: first milestone visited
    prereq_second_done: bool | None = None  # boards with milestones only: second milestone visited after the first

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat float32 array."""
        values = np.array(array, dtype=np.float64)  # a copy: the policy may keep or change it
        size = len(values) - 4
        n = math.isqrt(size)
        flags = (None, None)
        if n * n != size:  # two milestone flags follow the board
            n = math.isqrt(size - 2)
            flags = (bool(values[-2] > 0.5), bool(values[-1] > 0.5))
        agent_row, agent_col, goal_row, goal_col = values[:4].tolist()
        return cls(agent_row, agent_col, goal_row, goal_col, values[4:4 + n * n], *flags)


# Actions: an integer in {0, 1, 2, 3}.
ACTIONS = {
    0: "up: row - 1",
    1: "down: row + 1",
    2: "left: col - 1",
    3: "right: col + 1",
}
# A move off the grid or into a wall leaves the agent where it is.
# </context>

# <context when="key_info">
# The board codes: what each cell is.
BOARD_CODES = {
    0: "free cell; a move out of it always succeeds",
    1: "free cell; a move out of it may fail, and then the agent stays where it is",
    2: "free cell; a move out of it may fail, and then the agent is sent back to the start (0, 0)",
    3: "wall; cannot be entered",
    4: "goal; entering it ends the episode",
    5: "negative terminal; entering it ends the episode with a very large penalty",
    6: "first milestone",
    7: "second milestone",
}
# How likely a move out of a code-1 or code-2 cell is to fail differs between cells and is not given.


def reward(obs: Observation, action: int, next_obs: Observation) -> float:
    """The reward of one step from `obs` to `next_obs` (n is the side of the grid)."""
    n = int(round(len(obs.board) ** 0.5))
    row = int(round(next_obs.agent_row * (n - 1)))
    col = int(round(next_obs.agent_col * (n - 1)))
    code = int(next_obs.board[row * n + col])
    r = -1.0  # every step costs 1
    if code == 4 and (obs.prereq_second_done is None or obs.prereq_second_done):
        r += n**3  # reaching the goal (on milestone boards: only after milestone 1, then milestone 2)
    if code == 5:
        r += -(n**5)  # entering a negative terminal
    return r
# </context>

# <context when="no_key_info">
# The board codes that occur on this board: {codes}. What they mean is not given: find out from
# experience.
REWARD = """Every step costs -1. Reaching the goal gives a large positive reward{milestone_rule}.
Some cells end the episode with a very large negative reward."""
# </context>

# <context>
# Episode: it ends when the agent reaches the goal, or enters a cell that ends the episode, or
# after {horizon} steps (the horizon, n * n).
# </context>

_MILESTONE_RULE = (", but only if the agent has first visited the first milestone and afterwards the "
                   "second milestone; reaching the goal without them ends the episode without the reward")


def context_variables(env, key_info: bool | None = None) -> tuple[set[str], dict[str, str]]:
    """The context variant and placeholder values for the board of `env` (an unwrapped NoiseWorldEnv).

    By default the board codes are explained, except on milestone boards (the paper's boards 4-6),
    whose description leaves them unexplained as in the paper.
    """
    board = env.board
    if key_info is None:
        key_info = not board.milestones
    codes = ", ".join(str(c) for c in sorted({int(c) for c in board.codes}))
    values = {"horizon": str(board.horizon), "codes": codes,
              "milestone_rule": _MILESTONE_RULE if board.milestones else ""}
    return {"key_info" if key_info else "no_key_info"}, values
