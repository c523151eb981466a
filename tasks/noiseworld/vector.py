"""NoiseWorld vectorised natively: all copies step at once in NumPy, with the board's own tables.

Created by `gym.make_vec("NoiseWorld-v0", num_envs=K)` (the `vector_entry_point` mode). Same dynamics
as `NoiseWorldEnv`; autoreset follows Gymnasium 1.x (`autoreset_mode`: NEXT_STEP by default,
SAME_STEP with `info["final_obs"]`, or DISABLED with `reset(options={"reset_mask": ...})`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .board import resolve_board
from .env import observation_space, observation_table, render_rgb


class NoiseWorldVectorEnv(VectorEnv):
    """`num_envs` independent NoiseWorld episodes on one board, stepped as arrays."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, board: int = 1, size: int | None = None, layout_seed: int | None = None,
                 milestones: bool = False, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 render_mode: str | None = None, render_dynamics: bool = False):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.board = b = resolve_board(board, size, layout_seed, milestones)
        self.num_envs = int(num_envs)
        self.render_mode, self.render_dynamics = render_mode, render_dynamics
        self.single_observation_space = observation_space(b)
        self.single_action_space = spaces.Discrete(4)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self._obs_table = observation_table(b)  # (3, S, D)
        self._moves, self._success, self._fail_to = b.moves, b.success, b.fail_to
        self._terminal, self._next_phase = b.terminal, b.next_phase
        self._reward = b.entry_reward(np.arange(3))  # (3, S): reward of entering a cell, by phase after it
        self._cell = np.zeros(self.num_envs, dtype=np.int64)
        self._phase = np.full(self.num_envs, b.start_phase, dtype=np.int64)
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._np_random, self._np_random_seed = seeding.np_random(None)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        """Reset every copy (or those in `options["reset_mask"]`); an int seed seeds one shared stream."""
        if seed is not None:
            seed = int(np.random.SeedSequence(seed).generate_state(1)[0]) if isinstance(seed, (list, tuple)) else seed
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        mask = np.ones(self.num_envs, dtype=bool) if not options or "reset_mask" not in options \
            else np.asarray(options["reset_mask"], dtype=bool)
        if mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
        self._cell[mask], self._phase[mask], self._t[mask] = 0, self.board.start_phase, 0
        self._needs_reset[mask] = False
        return self._obs_table[self._phase, self._cell], {}

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer) \
                or actions.min() < 0 or actions.max() > 3:
            raise ValueError(f"actions must be {self.num_envs} integers in 0..3, got {actions!r}")
        cell, phase = self._cell, self._phase
        nxt = self._moves[cell, actions]
        fail = (nxt != cell) & (self._np_random.random(self.num_envs) >= self._success[cell])
        nxt = np.where(fail, self._fail_to[cell], nxt)
        phase = self._next_phase[phase, nxt]
        reward = self._reward[phase, nxt]
        terminated = self._terminal[nxt]
        self._t += 1
        truncated = ~terminated & (self._t >= self.board.horizon)
        self._cell, self._phase = nxt, phase

        info: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._needs_reset.any():
            done = self._needs_reset
            self._cell[done], self._phase[done], self._t[done] = 0, self.board.start_phase, 0
            reward[done], terminated[done], truncated[done] = 0.0, False, False
        elif self.autoreset_mode == AutoresetMode.DISABLED and self._needs_reset.any():
            raise RuntimeError("autoreset is disabled: reset finished copies with reset(options={'reset_mask': ...})")
        ended = terminated | truncated
        obs = self._obs_table[self._phase, self._cell]
        if self.autoreset_mode == AutoresetMode.SAME_STEP and ended.any():
            final_obs = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(ended):
                final_obs[i] = obs[i].copy()
            info = {"final_obs": final_obs, "_final_obs": ended.copy(),
                    "final_info": {}, "_final_info": ended.copy()}
            self._cell[ended], self._phase[ended], self._t[ended] = 0, self.board.start_phase, 0
            obs[ended] = self._obs_table[self.board.start_phase, 0]
        else:
            self._needs_reset = ended
        return obs, reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return tuple(render_rgb(self.board, int(c), self.render_dynamics) for c in self._cell)
        return None

    def __repr__(self) -> str:
        return f"NoiseWorldVectorEnv({self.board.name}, num_envs={self.num_envs})"
