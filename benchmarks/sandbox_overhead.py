"""Where a sandboxed step goes, one observation per message (the paper's one `Policy()` per rollout): the same
worker and NoiseWorld board 1 driven five ways, from a bare loop to `run_episodes`, side by side in one run.

- bare: the message written and the reply read by hand (`os.write`, `poll`, `os.read`), none of the checks: the
  floor that the worker, the pipe and `env.step` set for any parent;
- send / receive: `SandboxedPolicy.send` or `.receive` in place of one bare half (its checks, deadlines, tokens);
- act: both halves of `SandboxedPolicy`;
- run_episodes: the rollout harness around them, as PromptPO's candidates run.

The differences say how much of a step the trusted side's Python costs, and so what a faster channel could gain.
Reproduce with:  .venv/bin/python benchmarks/sandbox_overhead.py [--steps N] [--repeats K]
"""

from __future__ import annotations

import argparse
import os
import select
import time

import numpy as np
from gymnasium.spaces import Discrete

from promptpo_bench.rollout import make_env
from promptpo_bench.sandbox import SandboxedPolicy
from promptpo_bench.sandbox_worker import ACT_HEADER, REPLY
from promptpo_speed import NOISEWORLD_OBS, TRIVIAL, sandboxed_sps  # this folder's: the same policy and rollout timing

TASK = "NoiseWorld-Board1-v0"
WAYS = ("bare", "send", "receive", "act", "run_episodes")


def step_us(way: str, steps: int) -> float:
    """Microseconds per env step, the policy's action asked for one observation at a time in the given way."""
    if way == "run_episodes":  # as benchmarks/promptpo_speed.py times it, one episode per message
        return 1e6 / sandboxed_sps(TASK, TRIVIAL, NOISEWORLD_OBS, steps, 1, "rollout")[0]
    with SandboxedPolicy(TRIVIAL, NOISEWORLD_OBS, Discrete(4), lifetime="rollout") as policy:
        env = make_env(TASK)
        obs, _ = env.reset(seed=0)
        ids = np.zeros(1, dtype=np.int64)
        policy.act(ids, obs[None])  # the layout sent, the Policy() built
        ready = select.poll()
        ready.register(policy._read_fd, select.POLLIN)
        header, token = ACT_HEADER.pack(1, 0, 1), bytes(8)  # one row, layout unchanged, spin
        bare_send, bare_receive = way in ("bare", "receive"), way in ("bare", "send")
        start = time.perf_counter()
        for _ in range(steps):
            if bare_send:
                os.write(policy._write_fd, header + token + obs.tobytes())
                if not bare_receive:
                    policy._pending.append(([0], 0, time.monotonic()))  # what send would have queued
            else:
                policy.send(ids, obs[None])
            if bare_receive:
                while not ready.poll(0):
                    pass
                action = int.from_bytes(os.read(policy._read_fd, 64)[REPLY.size:REPLY.size + 8], "little")
                if not bare_send:
                    policy._pending.popleft()
            else:
                action = int(policy.receive()[0])
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()
        return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the five ways, alternating; medians shown")
    args = parser.parse_args()
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(args.repeats):
        for way in WAYS:
            times[way].append(step_us(way, args.steps))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {TASK}, one observation per message, "
          f"median of {args.repeats} alternating rounds")
    bare = float(np.median(times["bare"]))
    for way in WAYS:
        median = float(np.median(times[way]))
        print(f"{way:>12}: {median:6.2f} us/step ({1e6 / median:>9,.0f} steps/s), {median - bare:+6.2f} us over bare")
    print(f"reproduce: .venv/bin/python benchmarks/sandbox_overhead.py --steps {args.steps} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
