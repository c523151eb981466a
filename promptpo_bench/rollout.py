"""The rollout harness: run a batch policy for whole episodes, one episode per seed.

The environments live here, in the trusted process; a policy only maps a batch of observations of
the live episodes to actions. Built-in policies, a user's `policy.py` in the sandbox and (later)
LLM candidates all go through `run_episodes`, so every score in the suite is measured the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import gymnasium as gym
import numpy as np
from scipy import stats

from . import registry


class BatchPolicy(Protocol):
    """Maps the observations of several live episodes to one action each."""

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """`episode_ids` name the episodes (a new id starts a fresh episode), `steps` count steps taken in each."""


class RandomPolicy:
    """Uniformly random actions from the action space, seeded."""

    def __init__(self, action_space: gym.Space, seed: int | None = None):
        self.space = action_space
        self.space.seed(seed)

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        return np.stack([self.space.sample() for _ in episode_ids])


@dataclass(frozen=True)
class Episodes:
    """Per-episode outcomes of one rollout."""

    seeds: list[int]
    returns: np.ndarray  # float64
    lengths: np.ndarray  # int64
    successes: np.ndarray | None  # bool, where the task defines success

    @property
    def env_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    def ci95(self) -> float:
        """Half-width of the 95% Student-t confidence interval of the mean return (0 for one episode)."""
        k = len(self.returns)
        if k < 2:
            return 0.0
        return float(stats.t.ppf(0.975, k - 1) * self.returns.std(ddof=1) / np.sqrt(k))


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """The reset seeds of a rollout: `seed`, `seed + 1`, ... (one per episode)."""
    return [seed + i for i in range(episodes)]


def run_episodes(env_id: str, policy: BatchPolicy, seeds: Sequence[int],
                 env_kwargs: dict[str, Any] | None = None, batch_size: int = 64) -> Episodes:
    """Roll `policy` out for one episode per seed, `batch_size` episodes side by side."""
    spec = registry.get(env_id)
    returns = np.zeros(len(seeds))
    lengths = np.zeros(len(seeds), dtype=np.int64)
    successes = np.zeros(len(seeds), dtype=bool) if spec.success_key else None
    for start in range(0, len(seeds), batch_size):
        ids = np.arange(start, min(start + batch_size, len(seeds)))
        envs = [registry.make(env_id, **(env_kwargs or {})) for _ in ids]
        try:
            obs = [env.reset(seed=int(seeds[i]))[0] for env, i in zip(envs, ids)]
            live = list(range(len(ids)))
            while live:
                actions = policy.act(ids[live], np.stack([obs[j] for j in live]), lengths[ids[live]])
                still = []
                for j, action in zip(live, actions):
                    obs[j], reward, terminated, truncated, info = envs[j].step(action)
                    i = ids[j]
                    returns[i] += reward
                    lengths[i] += 1
                    if successes is not None and info.get(spec.success_key):
                        successes[i] = True
                    if not (terminated or truncated):
                        still.append(j)
                live = still
        finally:
            for env in envs:
                env.close()
    return Episodes(list(seeds), returns, lengths, successes)
