"""Measure the reference scores stored in promptpo_bench/tasks/realworld/__init__.py.

Mean return of the uniform random policy (action space seeded with 0) and of each task's hand-written
expert, with default kwargs, episode i on reset seed i, through the same harness as `promptpo-bench rollout`.
Reproduce with:  .venv/bin/python benchmarks/realworld_references.py [--episodes N] [--env-id ID ...]
"""

from __future__ import annotations

import argparse
import time

import promptpo_bench
from promptpo_bench.rollout import RandomPolicy, episode_seeds, make_env, run_episodes

EPISODES = {"Glucose-Adult-v0": 5, "Pandemic-Town-v0": 10, "Traffic-Merge-v0": 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", nargs="*", default=list(EPISODES))
    parser.add_argument("--episodes", type=int, default=None, help="episodes per policy (default: per task, see EPISODES)")
    args = parser.parse_args()
    for env_id in args.env_id:
        env = make_env(env_id)
        seeds = episode_seeds(0, args.episodes or EPISODES[env_id])
        for name, policy in (("random", RandomPolicy(env.action_space, seed=0)),
                             ("expert", promptpo_bench.get(env_id).expert(env.unwrapped))):
            start = time.perf_counter()
            episodes = run_episodes(env_id, policy, seeds, batch_size=1)
            print(f"{env_id}  {name:6s}  mean return {episodes.mean_return:.2f} ± {episodes.ci95():.2f} (95% CI) "
                  f"over seeds {seeds[0]}..{seeds[-1]}; lengths {episodes.lengths.tolist()}; "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
        env.close()


if __name__ == "__main__":
    main()
