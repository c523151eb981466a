"""Exact finite-horizon solution of a NoiseWorld board.

Backward value iteration over (steps left, milestone phase, cell) on the board's own transition
tables gives the optimal non-stationary policy and the exact expected return of the optimal and of
the uniform random policy from the start state. These are the suite's reference scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .board import Board


@dataclass(frozen=True)
class Solution:
    """Exact values of one board. Arrays are indexed [steps_left, phase, cell]."""

    optimal_values: np.ndarray  # (H+1, 3, n*n)
    random_values: np.ndarray  # (H+1, 3, n*n)
    policy: np.ndarray  # (H+1, 3, n*n) int64, optimal action with that many steps left (row 0 unused)
    optimal_return: float  # expected return of the optimal policy from the start
    random_return: float  # expected return of the uniform random policy from the start


def _action_values(board: Board, values: np.ndarray) -> np.ndarray:
    """Q[phase, cell, action] given V (3, n*n) of the next step (steps left minus one)."""
    next_phase = board.next_phase  # (3, S)
    phases = np.arange(3)[:, None]
    cells = np.arange(board.n * board.n)[None, :]
    # Value of *entering* each cell from each phase: its reward plus, unless terminal, what follows.
    rewards = board.entry_reward(next_phase)[phases, next_phase, cells]  # (3, S)
    follow = np.where(board.terminal[None, :], 0.0, values[next_phase, cells])
    enter = rewards + follow  # (3, S)

    moves, q, fail = board.moves, board.success[:, None], board.fail_to[:, None]  # (S, 4), (S, 1), (S, 1)
    stay_here = np.arange(board.n * board.n)[:, None]
    moved = q * enter[:, moves] + (1.0 - q) * enter[:, np.broadcast_to(fail, moves.shape)]
    blocked = enter[:, np.broadcast_to(stay_here, moves.shape)]
    return np.where(moves == stay_here, blocked, moved)  # (3, S, 4)


def solve(board: Board) -> Solution:
    """Backward induction over the board's horizon (n*n steps)."""
    horizon, cells = board.horizon, board.n * board.n
    v_opt = np.zeros((horizon + 1, 3, cells))
    v_rand = np.zeros((horizon + 1, 3, cells))
    policy = np.zeros((horizon + 1, 3, cells), dtype=np.int64)
    for left in range(1, horizon + 1):
        q_opt = _action_values(board, v_opt[left - 1])
        policy[left] = np.argmax(q_opt, axis=-1)
        v_opt[left] = np.max(q_opt, axis=-1)
        v_rand[left] = _action_values(board, v_rand[left - 1]).mean(axis=-1)
    start = (horizon, board.start_phase, 0)
    return Solution(v_opt, v_rand, policy, float(v_opt[start]), float(v_rand[start]))


@lru_cache(maxsize=64)
def _solve_cached(board: Board) -> Solution:
    return solve(board)


def solution(board: Board) -> Solution:
    """The board's exact solution, computed once per board object."""
    return _solve_cached(board)


class OptimalPolicy:
    """The exact optimal (non-stationary) policy, as a trusted batch policy for the rollout harness."""

    def __init__(self, board: Board):
        self.board, self.solution = board, solution(board)

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        n = self.board.n
        cell = np.rint(obs[:, 0] * (n - 1)).astype(np.int64) * n + np.rint(obs[:, 1] * (n - 1)).astype(np.int64)
        if self.board.milestones:
            phase = (obs[:, -2] > 0.5).astype(np.int64) + (obs[:, -1] > 0.5)
        else:
            phase = np.full(len(obs), self.board.start_phase)
        return self.solution.policy[self.board.horizon - np.asarray(steps), phase, cell]


POLICY_TEMPLATE = '''"""The exact optimal policy of {name}, from promptpo_bench's value iteration (not written by an LLM).

ACTIONS[phase][steps_left] is a string with the optimal action (0-3) of every cell, row-major.
"""

N, HORIZON, MILESTONES, START_PHASE = {n}, {horizon}, {milestones}, {start_phase}
ACTIONS = {table}


class Policy:
    def __init__(self):
        self.steps = 0

    def act(self, obs):
        cell = round(obs.agent_row * (N - 1)) * N + round(obs.agent_col * (N - 1))
        phase = int(bool(obs.prereq_first_done)) + int(bool(obs.prereq_second_done)) if MILESTONES else START_PHASE
        action = int(ACTIONS[phase][HORIZON - self.steps][cell])
        self.steps += 1
        return action
'''


def policy_code(board: Board) -> str:
    """The optimal policy as a policy.py (the LLM answer contract), so it runs in the sandbox like any code policy."""
    policy = solution(board).policy
    phases = range(3) if board.milestones else [board.start_phase]
    table = {int(p): ["".join(map(str, row)) for row in policy[:, p, :]] for p in phases}
    lines = "\n".join(f"    {p}: [\n" + "".join(f"        {row!r},\n" for row in rows) + "    ]," for p, rows in table.items())
    return POLICY_TEMPLATE.format(name=board.name, n=board.n, horizon=board.horizon, milestones=board.milestones,
                                  start_phase=board.start_phase, table="{\n" + lines + "\n}")
