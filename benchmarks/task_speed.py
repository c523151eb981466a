"""Task speed: raw environment steps/s of every registered task, and the same task driven by a trivial code
policy in-process and through the PromptPO sandbox.

raw: one env from `gym.make`, uniformly random actions (drawn before the clock starts), resets included.
in-process / sandboxed: the loops of benchmarks/promptpo_speed.py (Observation.from_array, act, step, the
observation as the task's default description variant reads it; the sandboxed one is `SandboxedPolicy` +
`rollout.run_episodes`, 5 episodes per message as PromptPO does), with a policy that returns one fixed valid action
(the middle of a Box, the first of a Discrete).
Reproduce with:  .venv/bin/python benchmarks/task_speed.py [--family mujoco] [--ids Hopper-v5 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from promptpo_speed import in_process_sps, run_observation, sandboxed_sps  # noqa: E402

from promptpo_bench import registry  # noqa: E402
from promptpo_bench.errors import BenchError  # noqa: E402


def fixed_action_policy(space: gym.Space) -> str:
    """Source of a `Policy` that always returns one valid action of `space`."""
    if isinstance(space, gym.spaces.Box):
        action = ((space.low.astype(np.float64) + space.high) / 2).tolist()
    elif isinstance(space, gym.spaces.Discrete):
        action = int(space.start)
    else:
        space.seed(0)
        action = gym.spaces.utils.flatten(space, space.sample()).tolist()
    return f"ACTION = {json.dumps(action)}\n\nclass Policy:\n    def act(self, obs):\n        return ACTION\n"


def raw_sps(env_id: str, seconds: float) -> float:
    """Random-action steps per second of one env from `gym.make`, resets included (best of 3 timings)."""
    env = registry.make(env_id)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(1000)]
    env.reset(seed=0)
    best, steps, episode = 0.0, 0, 0
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3 or done < 100:
            for k in range(100):
                _, _, terminated, truncated, _ = env.step(actions[(steps + k) % len(actions)])
                if terminated or truncated:
                    episode += 1
                    env.reset(seed=episode)
            steps, done = steps + 100, done + 100
        best = max(best, done / elapsed)
    env.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", help="only this family (e.g. mujoco, noiseworld)")
    parser.add_argument("--ids", nargs="+", help="only these task ids")
    parser.add_argument("--seconds", type=float, default=1.0, help="rough time per measurement")
    parser.add_argument("--no-sandbox", action="store_true", help="raw steps/s only")
    args = parser.parse_args()
    specs = [s for s in registry.specs()
             if (not args.family or s.family == args.family) and (not args.ids or s.id in args.ids)]
    if not specs:
        known = ", ".join(s.id for s in registry.specs())
        raise SystemExit(f"task_speed.py: error: no registered task matches (known: {known})")

    header = f"{'id':<28} {'family':<11} {'raw steps/s':>12} {'in-process':>11} {'sandboxed':>10} {'ratio':>6}"
    print(header + "\n" + "-" * len(header))
    for spec in specs:
        try:
            raw = raw_sps(spec.id, args.seconds)
        except BenchError as error:  # e.g. a simulator that is not installed
            print(f"{spec.id:<28} {spec.family:<11} skipped: {error}")
            continue
        row = f"{spec.id:<28} {spec.family:<11} {raw:>12,.0f}"
        if not args.no_sandbox:
            env = registry.make(spec.id)
            code = fixed_action_policy(env.action_space)
            env.close()
            steps = int(min(max(raw * args.seconds / 4, 2_000), 200_000))
            observation, path, variant = run_observation(spec.id)
            local = in_process_sps(spec.id, code, observation, steps, variant)
            sandboxed = sandboxed_sps(spec.id, code, path, min(steps, 20_000), 5, variant=variant).sps
            row += f" {local:>11,.0f} {sandboxed:>10,.0f} {sandboxed / local:>6.2f}"
        print(row, flush=True)
    print("\nraw: random actions, one env from gym.make; in-process: Observation + act + step in one process;\n"
          "sandboxed: the same policy in PromptPO's sandbox, 5 episodes per message; ratio = sandboxed / in-process")
    print("reproduce: .venv/bin/python benchmarks/task_speed.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
