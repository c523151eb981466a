"""Where a sandboxed step goes, one observation per message (the paper's one `Policy()` per rollout): the same
worker and NoiseWorld board 1 driven six ways, from a bare loop to `run_episodes`, side by side in one run.

- bare: the message written and the reply read by hand (`os.write`, `poll`, `os.read`), none of the checks: the
  floor that the worker, the pipe and `env.step` set for any parent;
- send / receive: `SandboxedPolicy.send` or `.receive` in place of one bare half (its checks, deadlines, tokens);
- act: both halves of `SandboxedPolicy`;
- act_one: its short path for one episode's observation (the same checks, without the batch's arrays);
- run_episodes: the rollout harness around it, as PromptPO's candidates run.

The differences say how much of a step the trusted side's Python costs, and so what a faster channel could gain.

With --one-cpu, instead: this process and its worker on one CPU, a busy process on the other (what `promptpo_speed.py
--busy 1` comes to): each process's CPU time a step at five and at one episode per message, beside the in-process
loops, a bare pipe round trip between two Python processes on that CPU (the floor of a pipe channel) and one through
a shared page where each side hands the CPU over with `sched_yield` (the floor of one without system calls to wait);
then the same split for HalfCheetah-v5 as a run plays it, at a tenth of the steps.
Reproduce with:  .venv/bin/python benchmarks/sandbox_overhead.py [--steps N] [--repeats K] [--one-cpu
[--reference-checkout DIR]]
"""

from __future__ import annotations

import argparse
import importlib.util
import mmap
import os
import select
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gymnasium.spaces import Discrete

from promptpo_bench.rollout import make_rollout_env
from promptpo_bench.sandbox import SandboxedPolicy
from promptpo_bench.sandbox_worker import ACT_HEADER, REPLY
from promptpo_bench.descriptions.noiseworld import Observation
from promptpo_speed import (MESSAGE_SIZES, NOISEWORLD_OBS, TRIVIAL, ZERO_TORQUE,  # this folder's: the same
                            busy, in_process_sps, reference_sps, run_observation,  # policies, load, timings
                            sandboxed_sps)

TASK = "NoiseWorld-Board1-v0"
CHEETAH = "HalfCheetah-v5"
WAYS = ("bare", "send", "receive", "act", "act_one", "run_episodes")


def step_us(way: str, steps: int) -> float:
    """Microseconds per env step, the policy's action asked for one observation at a time in the given way."""
    if way == "run_episodes":  # as benchmarks/promptpo_speed.py times it, one episode per message
        return 1e6 / sandboxed_sps(TASK, TRIVIAL, NOISEWORLD_OBS, steps, 1, "rollout").sps
    with SandboxedPolicy(TRIVIAL, NOISEWORLD_OBS, Discrete(4), lifetime="rollout") as policy:
        env = make_rollout_env(TASK)  # as run_episodes steps it
        obs, _ = env.reset(seed=0)
        ids = np.zeros(1, dtype=np.int64)
        policy.act(ids, obs[None])  # the layout sent, the Policy() built
        ready = select.poll()
        ready.register(policy._read_fd, select.POLLIN)
        header, token = ACT_HEADER.pack(1, 0, 1), bytes(8)  # one row, layout unchanged, spin
        bare_send, bare_receive = way in ("bare", "receive"), way in ("bare", "send")
        start = time.perf_counter()
        for _ in range(steps):
            if way == "act_one":
                obs, _, terminated, truncated, _ = env.step(policy.act_one(0, obs))
                if terminated or truncated:
                    obs, _ = env.reset()
                continue
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


def _round_trip_us(child: Callable[[], None], parent: Callable[[int], None], count: int) -> float:
    """Microseconds per round trip: a forked copy of this process runs `child()` (its side of all `count` round
    trips), while this one times `parent(i)` for each i."""
    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(0)  # never back into this process's code, even after an error
    start = time.perf_counter()
    for i in range(count):
        parent(i)
    elapsed = time.perf_counter() - start
    os.waitpid(pid, 0)
    return elapsed / count * 1e6


def pipe_round_trip_us(count: int = 50_000) -> float:
    """Microseconds per round trip of a few bytes through a pipe pair between this process and a forked copy that
    echoes them (blocking `os.read`, no checks): on one CPU, two process switches and four system calls."""
    to_child, from_child = os.pipe(), os.pipe()
    message = bytes(24)

    def echo() -> None:
        for _ in range(count):
            os.write(from_child[1], os.read(to_child[0], 64))

    def ask(_: int) -> None:
        os.write(to_child[1], message)
        os.read(from_child[0], 64)

    try:
        return _round_trip_us(echo, ask, count)
    finally:
        for fd in (*to_child, *from_child):
            os.close(fd)


def yield_round_trip_us(count: int = 50_000) -> float:
    """Microseconds per round trip through a shared page between this process and a forked copy on the same CPU, each
    side handing the CPU over with `sched_yield` until the other's counter moves: two process switches and two system
    calls, the floor of a channel that keeps the pipe out of a busy machine's messages (not what the sandbox does)."""
    page = mmap.mmap(-1, mmap.PAGESIZE)  # shared with the child: [0] this process's counter, [1] the child's echo

    def echo() -> None:
        seen = 0
        for _ in range(count):
            while page[0] == seen:
                os.sched_yield()
            seen = page[1] = page[0]

    def ask(i: int) -> None:
        page[0] = i % 255 + 1
        while page[1] != page[0]:
            os.sched_yield()

    try:
        return _round_trip_us(echo, ask, count)
    finally:
        page.close()


def cheetah_cpu(steps: int) -> None:
    """HalfCheetah-v5 as a PromptPO run plays it (its description's `Observation`, its default variant), on the CPU
    `one_cpu` pinned: the in-process loop, and each process's CPU a step at five and at one episode per message."""
    observation, path, variant = run_observation(CHEETAH)
    in_process = 1e6 / in_process_sps(CHEETAH, ZERO_TORQUE, observation, steps, variant)
    print(f"{CHEETAH}, {steps:,} steps a timing: our in-process loop {in_process:.1f} us/step")
    for batch, lifetime in MESSAGE_SIZES:
        timing = sandboxed_sps(CHEETAH, ZERO_TORQUE, path, steps, batch, lifetime, variant)
        print(f"sandboxed, {batch} per message:        {1e6 / timing.sps:6.1f} us/step = "
              f"{in_process * timing.sps / 1e6:.2f}x in-process; CPU a step: this process {timing.parent_us:.1f} us, "
              f"the worker {timing.worker_us:.1f} us")


def one_cpu(steps: int, checkout: Path | None) -> None:
    """Print where a sandboxed step's CPU goes when this process and its worker share one CPU, a busy process on the
    other: then the two processes' CPU times add up, and the sum is what a loaded machine's figures come to."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("--one-cpu needs two CPUs (one for the busy process)")
        return
    os.sched_setaffinity(0, {cpus[0]})  # the worker, started later, inherits it
    try:
        with busy(1) as (hog,):
            os.sched_setaffinity(hog.pid, {cpus[1]})
            print(f"CPU {cpus[0]} for this process and its worker, the busy process on CPU {cpus[1]}; {TASK}, "
                  f"{steps:,} steps a timing")
            reference = 1e6 / reference_sps(checkout, steps) if checkout else None
            if reference:
                print(f"the reference's in-process loop:   {reference:6.2f} us/step")
            in_process = 1e6 / in_process_sps(TASK, TRIVIAL, Observation, steps)
            print(f"our in-process loop:               {in_process:6.2f} us/step")
            for batch, lifetime in MESSAGE_SIZES:
                timing = sandboxed_sps(TASK, TRIVIAL, NOISEWORLD_OBS, steps, batch, lifetime)
                versus = f" = {reference * timing.sps / 1e6:.2f}x the reference's loop" if reference else ""
                print(f"sandboxed, {batch} per message:        {1e6 / timing.sps:6.2f} us/step{versus}; CPU a step: "
                      f"this process {timing.parent_us:.2f} us, the worker {timing.worker_us:.2f} us")
            print(f"a bare pipe round trip between two Python processes on one CPU: {pipe_round_trip_us():.2f} us; "
                  f"through a shared page, handing the CPU over with sched_yield: {yield_round_trip_us():.2f} us")
            if importlib.util.find_spec("mujoco") is not None:
                cheetah_cpu(steps // 10)
    finally:
        os.sched_setaffinity(0, cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the six ways, alternating; medians shown")
    parser.add_argument("--one-cpu", action="store_true",
                        help="instead: this process and its worker on one CPU, a busy process on the other; each "
                             "process's CPU time a step (NoiseWorld board 1, then HalfCheetah-v5)")
    parser.add_argument("--reference-checkout", type=Path, default=None,
                        help="with --one-cpu: a local clone of github.com/Stephanehk/PromptPO, to time its in-process "
                             "loop on the same CPU")
    args = parser.parse_args()
    if args.one_cpu:
        one_cpu(args.steps, args.reference_checkout)
        checkout = f" --reference-checkout {args.reference_checkout}" if args.reference_checkout else ""
        print(f"reproduce: .venv/bin/python benchmarks/sandbox_overhead.py --one-cpu --steps {args.steps}{checkout}")
        return
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
