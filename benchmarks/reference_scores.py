"""Measure the random and expert reference scores of the PointMaze, Meta-World and MiniGrid tasks.

Exactly what `promptpo-bench rollout ENV_ID --policy random|expert --episodes K --seed 0` measures: reset
seeds 0..K-1 (Meta-World: K = 50 plays each MT1 task once), random actions seeded 0. Prints one line per
policy and the `ReferenceScores` to store in tasks/<family>/__init__.py. Reproduce with:
    .venv/bin/python benchmarks/reference_scores.py [ENV_ID ...] [--kwargs '{"continuing_task": true}']
"""

from __future__ import annotations

import argparse
import time

from promptpo_bench import registry
from promptpo_bench.rollout import RandomPolicy, episode_seeds, run_episodes

EPISODES = {"pointmaze": 100, "metaworld": 50, "minigrid": 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_ids", nargs="*", help="default: every PointMaze, Meta-World and MiniGrid task")
    parser.add_argument("--kwargs", default="{}", help="env kwargs as JSON (default: the task's defaults)")
    args = parser.parse_args()
    kwargs = registry.parse_kwargs(args.kwargs)
    env_ids = args.env_ids or [s.id for s in registry.specs() if s.family in EPISODES]
    for env_id in env_ids:
        spec = registry.get(env_id)
        seeds = episode_seeds(0, EPISODES[spec.family])
        env = registry.make(env_id, **kwargs)
        means = {}
        for label, policy in (("random", RandomPolicy(env.action_space, 0)), ("expert", spec.expert(env.unwrapped))):
            start = time.perf_counter()
            episodes = run_episodes(env_id, policy, seeds, kwargs)
            means[label] = (episodes.mean_return, episodes.success_rate)
            print(f"{env_id} {kwargs or ''} {label}: mean return {episodes.mean_text()}, "
                  f"success rate {episodes.success_rate:.2f}, {len(seeds)} episodes, seeds {seeds[0]}..{seeds[-1]}, "
                  f"{episodes.env_steps / (time.perf_counter() - start):.0f} steps/s", flush=True)
        env.close()
        (random_return, random_success), (expert_return, expert_success) = means["random"], means["expert"]
        print(f"    ReferenceScores(random={random_return:.4f}, optimal={expert_return:.4f}, source=... "
              f"success rate random {random_success:.2f}, expert {expert_success:.2f})", flush=True)


if __name__ == "__main__":
    main()
