"""NoiseWorld speed: single-env steps/s per paper board (through gym.make) and vector-env steps/s.

Random actions are drawn before the clock starts; episodes reset as they end; observations are
produced on every step. Reproduce with:  .venv/bin/python benchmarks/noiseworld_speed.py
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np

import promptpo_bench  # noqa: F401  (registers the tasks)
from promptpo_bench.tasks.noiseworld.env import NoiseWorldEnv

PAPER_SINGLE_SPS = 240_000  # the paper's own NoiseWorld on board 1, raw, measured on this kind of machine
GOAL_SINGLE_SPS = 3 * PAPER_SINGLE_SPS  # through gym.make
GOAL_VECTOR_SPS = 10_000_000  # at 4096 copies


def single_sps(env: gym.Env, steps: int, repeats: int) -> float:
    """Best of `repeats` timings of `steps` random steps (the machine is shared: best is least noisy)."""
    actions = np.random.default_rng(0).integers(0, 4, size=steps).tolist()
    best = 0.0
    for _ in range(repeats):
        env.reset(seed=0)
        step, reset = env.step, env.reset
        start = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = step(a)
            if terminated or truncated:
                reset()
        best = max(best, steps / (time.perf_counter() - start))
    return best


def vector_sps(num_envs: int, steps: int, repeats: int) -> float:
    venv = gym.make_vec("NoiseWorld-Board1-v0", num_envs=num_envs, vectorization_mode="vector_entry_point")
    iterations = max(10, steps // num_envs)
    actions = np.random.default_rng(0).integers(0, 4, size=(iterations, num_envs))
    best = 0.0
    for _ in range(repeats):
        venv.reset(seed=0)
        start = time.perf_counter()
        for a in actions:
            venv.step(a)
        best = max(best, iterations * num_envs / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per figure (best is reported)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, gymnasium {gym.__version__}")
    print(f"single env, random actions, {args.steps:,} steps, best of {args.repeats}:")
    raw = single_sps(NoiseWorldEnv(board=1), args.steps, args.repeats)
    print(f"  board 1 raw (no wrappers)        {raw:>12,.0f} steps/s")
    made = {}
    for board in range(7):
        made[board] = single_sps(gym.make(f"NoiseWorld-Board{board}-v0"), args.steps, args.repeats)
        print(f"  board {board} through gym.make      {made[board]:>12,.0f} steps/s")
    print(f"  goal: >= {GOAL_SINGLE_SPS:,} through gym.make (3x the paper's {PAPER_SINGLE_SPS:,} raw): "
          f"board 1 at {made[1] / PAPER_SINGLE_SPS:.1f}x -> {'met' if made[1] >= GOAL_SINGLE_SPS else 'NOT met'}")
    print("vector env (NoiseWorldVectorEnv, board 1, observations included):")
    for num_envs in (1, 64, 1024, 4096):
        sps = vector_sps(num_envs, 4 * args.steps, args.repeats)
        print(f"  {num_envs:>5} copies                     {sps:>12,.0f} steps/s")
    print(f"  goal: >= {GOAL_VECTOR_SPS:,} at 4096 copies -> {'met' if sps >= GOAL_VECTOR_SPS else 'NOT met'}")
    print("reproduce: .venv/bin/python benchmarks/noiseworld_speed.py")


if __name__ == "__main__":
    main()
