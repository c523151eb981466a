"""NoiseWorld as a Gymnasium environment, step for step the paper's grid MDP.

The hot path is plain Python over precomputed tables (moves, success probabilities, observations per
(phase, cell)) and a buffer of uniforms drawn from Gymnasium's `np_random`, which keeps
`gym.make("NoiseWorld-v0")` several times faster than the paper's implementation.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .board import (FINAL_PHASE, GOAL, MILESTONE_1, MILESTONE_2, TRAP, WALL, Board,
                    resolve_board)

# Uniforms are drawn 32 at a time after a seed, twice as many at each refill, up to 1024: an evaluation seeds every
# episode and most episodes are short, and `Generator.random` draws sequentially, so the values are the same
# whatever the sizes (one draw of 1024 cost a seeded 31-step episode 15 us).
_FIRST_UNIFORMS, _UNIFORM_BUFFER = 32, 1024


def observation_space(board: Board) -> spaces.Box:
    """Box(0, [1, 1, 1, 1, 7 x n*n (, 1, 1)], float32), as in the paper."""
    high = np.concatenate([np.ones(4), np.full(board.n * board.n, 7.0), np.ones(2 if board.milestones else 0)])
    return spaces.Box(low=0.0, high=high.astype(np.float32), dtype=np.float32)


@lru_cache(maxsize=64)
def observation_table(board: Board) -> np.ndarray:
    """(3, n*n, obs_dim) float32, read-only: the observation for every (milestone phase, agent cell)."""
    n, cells = board.n, board.n * board.n
    rows, cols = np.divmod(np.arange(cells), n)
    scale = float(n - 1)
    head = np.stack([rows / scale, cols / scale, np.ones(cells), np.ones(cells)], axis=1)
    board_part = np.broadcast_to(board.codes.astype(np.float32), (cells, cells))
    parts = [head, board_part]
    table = []
    for phase in range(3):
        flags = [np.full((cells, 2), [phase >= 1, phase >= 2], dtype=np.float32)] if board.milestones else []
        table.append(np.concatenate(parts + flags, axis=1))
    table = np.stack(table).astype(np.float32)
    table.flags.writeable = False
    return table


def render_rgb(board: Board, cell: int, reveal_dynamics: bool = False, cell_px: int = 32) -> np.ndarray:
    """A picture of the board: codes as colours, the agent as a dot (dynamics shaded only if asked)."""
    palette = {0: (235, 235, 235), 1: (200, 220, 245), 2: (250, 225, 190), WALL: (60, 60, 60),
               GOAL: (80, 190, 90), TRAP: (210, 60, 60), MILESTONE_1: (245, 215, 70), MILESTONE_2: (240, 160, 40)}
    n = board.n
    img = np.zeros((n * cell_px, n * cell_px, 3), dtype=np.uint8)
    for c in range(n * n):
        r, col = divmod(c, n)
        colour = np.array(palette[int(board.codes[c])], dtype=np.float64)
        if reveal_dynamics and board.codes[c] <= 2:
            colour = colour * (0.55 + 0.45 * board.success[c])
        img[r * cell_px:(r + 1) * cell_px, col * cell_px:(col + 1) * cell_px] = colour.astype(np.uint8)
    img[::cell_px, :] = img[:, ::cell_px] = 120  # grid lines
    r, col = divmod(cell, n)
    yy, xx = np.mgrid[0:cell_px, 0:cell_px]
    disc = (yy - cell_px / 2) ** 2 + (xx - cell_px / 2) ** 2 <= (cell_px * 0.32) ** 2
    img[r * cell_px:(r + 1) * cell_px, col * cell_px:(col + 1) * cell_px][disc] = (40, 80, 220)
    return img


def render_ansi(board: Board, cell: int, phase: int) -> str:
    """A text picture: A agent, G goal, # wall, X negative terminal, 1/2 milestones, . - ~ free codes 0/1/2."""
    glyph = {0: ".", 1: "-", 2: "~", WALL: "#", GOAL: "G", TRAP: "X", MILESTONE_1: "1", MILESTONE_2: "2"}
    n = board.n
    lines = ["".join("A" if r * n + c == cell else glyph[int(board.codes[r * n + c])] for c in range(n))
             for r in range(n)]
    if board.milestones:
        lines.append(f"milestones done: {min(phase, FINAL_PHASE)}/2")
    return "\n".join(lines) + "\n"


class NoiseWorldEnv(gym.Env[np.ndarray, np.int64]):
    """An n x n grid with hidden stochastic dynamics per cell; reach the goal, avoid negative terminals.

    Kwargs: `board` (paper board 0-6, default 1) or `size` + `layout_seed` (+ `milestones`) for a
    generated board; `render_mode` "ansi" or "rgb_array"; `render_dynamics` shades cells by their
    hidden success probability in rgb_array (off by default: the picture shows only what the agent sees).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, board: int = 1, size: int | None = None, layout_seed: int | None = None,
                 milestones: bool = False, render_mode: str | None = None, render_dynamics: bool = False):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.board = resolve_board(board, size, layout_seed, milestones)
        self.render_mode, self.render_dynamics = render_mode, render_dynamics
        self.observation_space = observation_space(self.board)
        self.action_space = spaces.Discrete(4)
        b = self.board
        # Python-level tables for the hot path.
        self._moves = b.moves.tolist()
        self._success = b.success.tolist()
        self._fail_to = b.fail_to.tolist()
        self._codes = b.codes.tolist()
        table = observation_table(b)
        self._obs = [list(rows) for rows in table]  # [phase][cell] -> row; copied on return
        self._horizon, self._bonus, self._penalty = b.horizon, b.goal_bonus, b.trap_penalty
        self._uniforms: list[float] = []
        self._next_uniform = 0
        self._cell, self._phase, self._t = 0, b.start_phase, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:  # a new seed starts a new random stream
            self._uniforms, self._next_uniform = [], 0
        self._cell, self._phase, self._t = 0, self.board.start_phase, 0
        return self._obs[self._phase][0].copy(), {}

    def step(self, action):
        if not 0 <= action < 4:
            raise ValueError(f"action must be 0, 1, 2 or 3, got {action!r}")
        cell = self._cell
        nxt = self._moves[cell][action]
        if nxt != cell:
            success = self._success[cell]
            if success < 1.0:
                i = self._next_uniform
                if i == len(self._uniforms):
                    size = min(_UNIFORM_BUFFER, max(_FIRST_UNIFORMS, 2 * len(self._uniforms)))
                    self._uniforms, i = self.np_random.random(size).tolist(), 0
                self._next_uniform = i + 1
                if self._uniforms[i] >= success:
                    nxt = self._fail_to[cell]
        self._cell = nxt
        self._t += 1
        reward, terminated = -1.0, False
        code = self._codes[nxt]
        if code >= GOAL:
            if code == GOAL:
                terminated = True
                if self._phase == FINAL_PHASE:
                    reward += self._bonus
            elif code == TRAP:
                terminated = True
                reward += self._penalty
            elif code == MILESTONE_1 and self._phase == 0:
                self._phase = 1
            elif code == MILESTONE_2 and self._phase == 1:
                self._phase = 2
        truncated = not terminated and self._t >= self._horizon
        return self._obs[self._phase][nxt].copy(), reward, terminated, truncated, {}

    def render(self):
        if self.render_mode == "ansi":
            return render_ansi(self.board, self._cell, self._phase)
        if self.render_mode == "rgb_array":
            return render_rgb(self.board, self._cell, self.render_dynamics)
        return None

    @property
    def state(self) -> tuple[int, int, int]:
        """(cell, milestone phase, steps taken): what the agent's next step depends on."""
        return self._cell, self._phase, self._t

    def __repr__(self) -> str:
        return f"NoiseWorldEnv({self.board.name})"


__all__ = ["NoiseWorldEnv", "observation_space", "observation_table"]
