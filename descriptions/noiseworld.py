"""What an LLM reads about NoiseWorld: observation, actions, reward and horizon, as Python.

Everything between a `# <context ...>` and `# </context>` marker is shown to the LLM verbatim (a `when=` tag
keeps a block only in the variants that use it, `{name}` placeholders are filled in per board); the rest of
this file only chooses the variant. It imports nothing but NumPy, so the sandbox can load it.

Variants (the first is the default):
- `paper`: the paper's information. The board codes that can occur are listed, not explained; the reward is
  told in words only; on milestone boards the two trailing flags are named but not explained.
- `paper-key-info`: the paper's `--use_key_info`: adds the milestone rule and what the two flags mean
  (milestone boards only; on other boards it is the same text as `paper`).
- `explained`: ours, for ablations: every code's dynamics explained and the reward as exact Python.
"""

from __future__ import annotations

VARIANTS = {
    "paper": "codes listed, not explained; reward in words (the paper's default)",
    "paper-key-info": "paper + the milestone rule and the two flags (the paper's --use_key_info; boards 4-6)",
    "explained": "codes' dynamics explained, reward as Python (ours, for ablations)",
}

# <context>
import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Observation:
    """What the agent sees at each step of NoiseWorld, an n x n grid (n = {n}).

    Rows are numbered 0..n-1 from top to bottom and columns 0..n-1 from left to right. Positions are given
    divided by (n - 1), so they lie in [0, 1]: the cell (row, col) is
    (round(agent_row * (n - 1)), round(agent_col * (n - 1))).
    """

    agent_row: float  # agent's row / (n - 1)
    agent_col: float  # agent's column / (n - 1)
    goal_row: float  # goal's row / (n - 1), fixed for the board
    goal_col: float  # goal's column / (n - 1), fixed for the board
    board: np.ndarray  # the n*n integer cell labels (stored as float64), row-major: cell (r, c) is board[r * n + c]
    prereq_first_done: bool | None = None  # {flag_first}
    prereq_second_done: bool | None = None  # {flag_second}

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat float32 array."""
        values = np.array(array, dtype=np.float64)  # a copy: the policy may keep or change it
        size = len(values) - 4
        n = math.isqrt(size)
        flags = (None, None)
        if n * n != size:  # two flags follow the board
            n = math.isqrt(size - 2)
            flags = (bool(values[-2] > 0.5), bool(values[-1] > 0.5))
        agent_row, agent_col, goal_row, goal_col = values[:4].tolist()
        return cls(agent_row, agent_col, goal_row, goal_col, values[4:4 + n * n], *flags)


# Actions: an integer in {0, 1, 2, 3}; each asks for one step in its direction.
ACTIONS = {
    0: "up: row - 1",
    1: "down: row + 1",
    2: "left: col - 1",
    3: "right: col + 1",
}
# The environment applies its own rules to produce the next observation: an action does not always reach the
# cell it asks for; the outcome may be stochastic.
# </context>

# <context when="unexplained">
# Board labels: only the integers {codes} can appear in `board`; no other values occur.
# </context>

# <context when="key_info">
# Labels 6 and 7 each mark exactly one cell: the first and the second milestone. Reaching the goal gives the
# large positive reward only if the agent has first stepped onto the 6 cell and later onto the 7 cell, in
# that order; stepping onto 7 before 6 does not count until 6 has been visited.
# prereq_first_done: True once the agent has stepped onto the 6 cell in this episode.
# prereq_second_done: True once the agent has stepped onto the 7 cell after prereq_first_done became True.
# </context>

# <context when="reward_in_words">
REWARD = """The reward is not given as code. Its structure:
- every step carries the same negative step cost;
- on the step where the agent meets the task's condition for reaching the goal, a large positive increment
  is added;
- the environment may add a large negative increment if the agent ends the episode in a catastrophic
  failure mode.
Maximise the expected total reward of an episode."""

# Episode: it ends when the environment terminates it, or at the time limit of {horizon} steps.
# </context>

# <context when="explained">
# A move off the grid or into a wall leaves the agent where it is.
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
# The codes that occur on this board: {codes}. How likely a move out of a code-1 or code-2 cell is to fail
# differs between cells and is not given. The agent starts at (0, 0).{milestone_rule}


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


# Episode: it ends when the agent reaches the goal (code 4), or enters a negative terminal (code 5), or after
# {horizon} steps (the horizon, n * n).
# </context>

_MILESTONE_RULE = ("\n# Milestones: reaching the goal pays only if the agent has first visited the first milestone "
                   "(6) and afterwards\n# the second (7); the flags prereq_first_done and prereq_second_done "
                   "record this progress.")


def context_variables(env, variant: str) -> tuple[set[str], dict[str, str]]:
    """The blocks to show and the placeholder values for the board of `env` (an unwrapped NoiseWorldEnv).

    As in the paper, the labels listed are those that can occur on a board of its kind (0-5, or 0-7 with
    milestones), not those that happen to occur, and boards without milestones ignore the key info.
    """
    board = env.board
    key_info = variant == "paper-key-info" and board.milestones
    if board.milestones:
        flags = [f"the {which} of two scalars that follow the board" + ("; see below" if key_info else "")
                 for which in ("first", "second")]
    else:
        flags = ["always None on this board"] * 2
    values = {"n": str(board.n), "horizon": str(board.horizon),
              "codes": "0, 1, 2, 3, 4, 5, 6, and 7" if board.milestones else "0, 1, 2, 3, 4, and 5",
              "flag_first": flags[0], "flag_second": flags[1],
              "milestone_rule": _MILESTONE_RULE if board.milestones else ""}
    if variant == "explained":
        values["codes"] = ", ".join(str(c) for c in sorted({int(c) for c in board.codes}))
        values["flag_first"] = "milestone boards only: first milestone visited"
        values["flag_second"] = "milestone boards only: second milestone visited after the first"
        return {"explained"}, values
    return {"unexplained", "reward_in_words"} | ({"key_info"} if key_info else set()), values
