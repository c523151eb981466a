"""Real-world task speed: env steps/s per task (single env through gym.make, random actions, resets included),
Glucose's cache against simglucose as shipped, Traffic over TraCI (a second env in the process) and through
AsyncVectorEnv (one libsumo per worker).

Reproduce with:  .venv/bin/python benchmarks/realworld_speed.py [--steps N] [--repeats R] [--num-envs K] [--ids ID ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym

import promptpo_bench  # noqa: F401  (registers the tasks)

STEPS = {"Glucose-Adult-v0": 600, "Pandemic-Town-v0": 240, "Traffic-Merge-v0": 3000}


def single_sps(env_id: str, steps: int, repeats: int, **kwargs) -> float:
    """Best of `repeats` timings of `steps` random steps after a reset (resets of ended episodes included)."""
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    best = 0.0
    for _ in range(repeats):
        env.reset(seed=0)
        start = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        best = max(best, steps / (time.perf_counter() - start))
    env.close()
    return best


def traci_sps(env_id: str, steps: int, repeats: int) -> float:
    """`single_sps` of a second env of the process: the first holds libsumo, so this one runs SUMO over TraCI."""
    holder = gym.make(env_id)
    holder.reset(seed=0)
    try:
        return single_sps(env_id, steps, repeats)
    finally:
        holder.close()


def async_sps(env_id: str, num_envs: int, steps: int, repeats: int) -> float:
    """Best of `repeats` timings of `steps` vector steps of `num_envs` copies in AsyncVectorEnv (env steps/s)."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="async")
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(steps)]
    best = 0.0
    for _ in range(repeats):
        envs.reset(seed=list(range(num_envs)))
        start = time.perf_counter()
        for a in actions:
            envs.step(a)
        best = max(best, steps * num_envs / (time.perf_counter() - start))
    envs.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=float, default=1.0, help="scale of the step counts per task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=os.cpu_count() or 2, help="AsyncVectorEnv workers for Traffic")
    parser.add_argument("--ids", nargs="*", default=list(STEPS), choices=list(STEPS), help="tasks to time (default: all)")
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, best of {args.repeats}")
    for env_id in args.ids:
        n = max(int(STEPS[env_id] * args.steps), 1)
        print(f"{env_id:18s} single env: {single_sps(env_id, n, args.repeats):10,.0f} steps/s", flush=True)
    if "Glucose-Adult-v0" in args.ids:
        n = max(int(STEPS["Glucose-Adult-v0"] * args.steps) // 3, 1)
        cached = single_sps("Glucose-Adult-v0", n, args.repeats)
        naive = single_sps("Glucose-Adult-v0", n, args.repeats, cached=False)
        print(f"Glucose-Adult-v0   cached {cached:,.0f} vs simglucose as shipped {naive:,.0f} steps/s: {cached / naive:.1f}x")
    if "Traffic-Merge-v0" in args.ids:
        n = max(int(STEPS["Traffic-Merge-v0"] * args.steps), 1)
        print(f"Traffic-Merge-v0   single env over TraCI: {traci_sps('Traffic-Merge-v0', n, args.repeats):,.0f} steps/s",
              flush=True)
        n = max(n // args.num_envs, 1)
        print(f"Traffic-Merge-v0   AsyncVectorEnv x{args.num_envs}: "
              f"{async_sps('Traffic-Merge-v0', args.num_envs, n, args.repeats):,.0f} env steps/s")


if __name__ == "__main__":
    main()
