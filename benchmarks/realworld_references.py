"""Measure the reference scores stored in promptpo_bench/tasks/realworld/__init__.py.

Mean return of the uniform random policy (action space seeded with 0) and of each task's hand-written
expert, with default kwargs, episode i on reset seed i, through the same harness as `promptpo-bench rollout`;
for Traffic also of zero acceleration (SUMO's human driver), which the expert must beat seed by seed (README,
"Real-world tasks"): the paired per-seed comparison is printed too.
Reproduce with:  .venv/bin/python benchmarks/realworld_references.py [--episodes N] [--env-id ID ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import promptpo_bench
from promptpo_bench.rollout import RandomPolicy, episode_seeds, make_env, run_episodes
from promptpo_bench.statistics import ci95

EPISODES = {"Glucose-Adult-v0": 5, "Pandemic-Town-v0": 10, "Traffic-Merge-v0": 10}
PASSIVE = {"Traffic-Merge-v0"}  # tasks whose zero action is printed too: passive driving


class ZeroPolicy:
    """All-zero actions (passive driving on Traffic)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        return np.zeros((len(episode_ids), *self.shape), dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", nargs="*", default=list(EPISODES))
    parser.add_argument("--episodes", type=int, default=None, help="episodes per policy (default: per task, see EPISODES)")
    args = parser.parse_args()
    for env_id in args.env_id:
        env = make_env(env_id)
        seeds = episode_seeds(0, args.episodes or EPISODES[env_id])
        policies = [("random", RandomPolicy(env.action_space, seed=0)), ("expert", promptpo_bench.get(env_id).expert(env.unwrapped))]
        if env_id in PASSIVE:
            policies.append(("zero", ZeroPolicy(env.action_space.shape)))
        returns = {}
        for name, policy in policies:
            start = time.perf_counter()
            episodes = run_episodes(env_id, policy, seeds, batch_size=1)
            returns[name] = episodes.returns
            print(f"{env_id}  {name:6s}  mean return {episodes.mean_text()}, "
                  f"std {episodes.returns.std():.2f}, over seeds {seeds[0]}..{seeds[-1]}; lengths "
                  f"{episodes.lengths.tolist()}; {time.perf_counter() - start:.0f} s", flush=True)
        if "zero" in returns:
            diff = returns["expert"] - returns["zero"]
            print(f"{env_id}  expert - zero per seed: {np.round(diff, 2).tolist()}; mean {diff.mean():+.2f} "
                  f"± {ci95(diff):.2f} (95% CI), std {diff.std():.2f}; expert ahead on {(diff > 0).sum()}/{len(diff)} seeds")
        env.close()


if __name__ == "__main__":
    main()
