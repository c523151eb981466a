"""Where a sandboxed step goes, one observation per message (the paper's one `Policy()` per rollout): the same
worker and NoiseWorld board 1 driven six ways, from a bare loop to `run_episodes`, side by side in one run.

- bare: the message written and the reply read by hand (`os.write`, `poll`, `os.read`), none of the checks: the
  floor that the worker, the pipe and `env.step` set for any parent;
- send / receive: `SandboxedPolicy.send` or `.receive` in place of one bare half (its checks, deadlines, tokens);
- act: both halves of `SandboxedPolicy`;
- act_group: its short path for the same episodes step after step (the same checks, without the batch's arrays);
- run_episodes: the rollout harness around it, as PromptPO's candidates run.

The differences say how much of a step the trusted side's Python costs, and so what a faster channel could gain.

With --one-cpu, instead: this process and its worker on one CPU, a busy process on the other (what `promptpo_speed.py
--busy 1` comes to): each process's CPU time a step at five and at one episode per message, beside the in-process
loops and a bare two-process rollout (no checks, no isolation) whose policy runs in a forked child, and in a newly
started interpreter: the floors of a sandbox that runs the policy in a process of its own, the second the one for a
worker that, like the sandbox's, shares no memory pages with its caller; for NoiseWorld board 1 and for
HalfCheetah-v5 as a run plays it (a tenth of the steps). Then a bare pipe round trip between two Python processes on
that CPU and one through a shared page where each side hands the CPU over with `sched_yield` (the floor of a channel
without system calls to wait).
Reproduce with:  .venv/bin/python benchmarks/sandbox_overhead.py [--steps N] [--repeats K] [--one-cpu
[--reference-checkout DIR]]
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import json
import mmap
import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gymnasium.spaces import Discrete

from promptpo_bench.rollout import make_rollout_env
from promptpo_bench.sandbox import SandboxedPolicy
from promptpo_bench.sandbox_worker import ACT_HEADER, REPLY
from promptpo_speed import (MESSAGE_SIZES, NOISEWORLD_OBS, TRIVIAL, ZERO_TORQUE,  # this folder's: the same
                            busy, cpu_name, in_process_sps, reference_sps, run_observation,  # policies, load,
                            sandboxed_sps, spread)  # timings

TASK = "NoiseWorld-Board1-v0"
CHEETAH = "HalfCheetah-v5"
WAYS = ("bare", "send", "receive", "act", "act_group", "run_episodes")


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
        one = [0]  # act_group's episode ids
        start = time.perf_counter()
        for _ in range(steps):
            if way == "act_group":
                obs, _, terminated, truncated, _ = env.step(policy.act_group(one, obs[None])[0])
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


def _fork(child: Callable[[], None]) -> int:
    """Run `child()` in a forked copy of this process, which then exits; the copy's pid."""
    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(0)  # never back into this process's code, even after an error
    return pid


def _round_trip_us(child: Callable[[], None], parent: Callable[[int], None], count: int) -> float:
    """Microseconds per round trip: a forked copy of this process runs `child()` (its side of all `count` round
    trips), while this one times `parent(i)` for each i."""
    pid = _fork(child)
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


def serve_rows(code: str, observation: str, dtype: str, shape: tuple[int, ...], discrete: bool, read_fd: int,
               write_fd: int) -> None:
    """The policy's side of `bare_rollout_us`: loads `code` and the `observation` class ("module:Class"), writes one
    byte once ready, then answers each message of raw rows with the raw actions of `act` on each row's
    `Observation`, until the pipe closes; no checks, limits or isolation."""
    module, name = observation.split(":")
    from_array = getattr(importlib.import_module(module), name).from_array
    namespace: dict = {}
    exec(code, namespace)
    policy = namespace["Policy"]()
    os.write(write_fd, b".")
    while message := os.read(read_fd, 1 << 16):  # one whole message: at most 4 KiB, written at once
        rows = np.frombuffer(message, dtype).reshape(-1, *shape)
        actions = [policy.act(from_array(row)) for row in rows]
        os.write(write_fd, np.asarray(actions, np.int64 if discrete else np.float64).tobytes())


def bare_rollout_us(task: str, code: str, steps: int, batch: int, spawned: bool = False) -> float:
    """Microseconds per env step of the least a rollout with its policy in another process can do: `batch` episodes
    side by side, their observations' raw rows through a pipe to `serve_rows` (as a PromptPO run observes `task`),
    the actions back as raw rows; no checks, limits or isolation on either side. The policy's process is a forked
    copy of this one, or with `spawned` a new interpreter, as the sandbox's worker must be (a fork would carry this
    process's memory, API key included; the pages a fork shares with its parent make the forked floor optimistic)."""
    _, path, variant = run_observation(task)
    envs = [make_rollout_env(task, None, variant) for _ in range(batch)]
    first = envs[0].reset(seed=0)[0]
    discrete = isinstance(envs[0].action_space, Discrete)
    to_child, from_child = os.pipe(), os.pipe()
    serving = (code, path, first.dtype.str, first.shape, discrete, to_child[0], from_child[1])
    if spawned:
        child = subprocess.Popen([sys.executable, "-E", "-s", "-c", SPAWNED_CHILD, str(Path(__file__).parent),
                                  json.dumps(serving)], pass_fds=(to_child[0], from_child[1]), cwd="/",
                                 env={"PATH": "/usr/bin:/bin"})
    else:
        def serve() -> None:
            os.close(to_child[1])  # so that the parent's close ends the loop
            serve_rows(*serving)

        pid = _fork(serve)
    os.read(from_child[0], 1)  # loaded
    rows, done, seed = np.empty((batch, *first.shape), first.dtype), 0, 0
    start = time.perf_counter()
    while done < steps:
        live = envs
        for k, env in enumerate(live):
            rows[k] = env.reset(seed=seed + k)[0]
        seed += batch
        while live:
            os.write(to_child[1], rows[:len(live)].tobytes())
            reply = np.frombuffer(os.read(from_child[0], 1 << 16), np.int64 if discrete else np.float64)
            actions = reply.tolist() if discrete else reply.reshape(len(live), -1)
            ended = []
            for k, (env, action) in enumerate(zip(live, actions)):
                rows[k], _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    ended.append(k)
            done += len(live)
            if ended:
                kept = [k for k in range(len(live)) if k not in ended]
                rows[:len(kept)], live = rows[kept], [live[k] for k in kept]
    elapsed = time.perf_counter() - start
    os.close(to_child[1])
    if spawned:
        child.wait()
    else:
        os.waitpid(pid, 0)
    for fd in (to_child[0], *from_child):
        os.close(fd)
    for env in envs:
        env.close()
    return elapsed / done * 1e6


# `bare_rollout_us`'s spawned child: this folder on the path, then `serve_rows` with the parent's arguments
SPAWNED_CHILD = "import json, sys; sys.path.insert(0, sys.argv[1]); import sandbox_overhead; " \
                "sandbox_overhead.serve_rows(*json.loads(sys.argv[2]))"


def one_cpu(steps: int, checkout: Path | None, repeats: int) -> None:
    """Print where a sandboxed step's CPU goes when this process and its worker share one CPU, a busy process on the
    other: then the two processes' CPU times add up, and the sum is what a loaded machine's figures come to. Beside
    it, the in-process loops and `bare_rollout_us` (forked and spawned), the floors of any two-process rollout;
    NoiseWorld board 1, then HalfCheetah-v5 as a run plays it at a tenth of the steps; medians of `repeats`
    alternating rounds."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("--one-cpu needs two CPUs (one for the busy process)")
        return
    tasks = [(TASK, TRIVIAL, steps)] + ([(CHEETAH, ZERO_TORQUE, steps // 10)]
                                       if importlib.util.find_spec("mujoco") is not None else [])
    got: dict[tuple, list[float]] = collections.defaultdict(list)
    os.sched_setaffinity(0, {cpus[0]})  # the worker, started later, inherits it
    try:
        with busy(1) as (hog,):
            os.sched_setaffinity(hog.pid, {cpus[1]})
            for _ in range(repeats):
                if checkout:
                    got["reference"].append(1e6 / reference_sps(checkout, steps))
                for task, code, count in tasks:
                    observation, path, variant = run_observation(task)
                    got[task].append(1e6 / in_process_sps(task, code, observation, count, variant))
                    for batch, lifetime in MESSAGE_SIZES:
                        got[task, "forked", batch].append(bare_rollout_us(task, code, count, batch))
                        got[task, "spawned", batch].append(bare_rollout_us(task, code, count, batch, spawned=True))
                        timing = sandboxed_sps(task, code, path, count, batch, lifetime, variant)
                        got[task, batch].append(1e6 / timing.sps)
                        got[task, "parent", batch].append(timing.parent_us)
                        got[task, "worker", batch].append(timing.worker_us)
            pipe, handed = pipe_round_trip_us(), yield_round_trip_us()
    finally:
        os.sched_setaffinity(0, cpus)
    print(f"{cpu_name()}: CPU {cpus[0]} for this process and its worker, the busy process on CPU {cpus[1]}; medians of "
          f"{repeats} alternating rounds, their range in brackets; the ratios are steps/s against the loop named, in "
          "each round")
    if checkout:
        print(f"the reference's in-process loop, {TASK}: {spread(got['reference'], 2, ' us/step')}")
    for task, _, count in tasks:
        against = "the reference's loop" if task == TASK and checkout else "our in-process loop"
        base = got["reference"] if task == TASK and checkout else got[task]
        print(f"{task}, {count:,} steps a timing: our in-process loop {spread(got[task], 2, ' us/step')}")
        for batch, _ in MESSAGE_SIZES:
            for what in ("forked", "spawned", "sandboxed"):
                times = got[task, batch] if what == "sandboxed" else got[task, what, batch]
                ratios = [b / t for b, t in zip(base, times)]
                cpu = "" if what != "sandboxed" else (f"; CPU a step: this process "
                                                      f"{statistics.median(got[task, 'parent', batch]):.2f} us, the "
                                                      f"worker {statistics.median(got[task, 'worker', batch]):.2f} us")
                print(f"  {what:>9}, {batch} per message: {spread(times, 2, ' us/step')} = {spread(ratios)} "
                      f"{against}{cpu}")
    print(f"a bare pipe round trip between two Python processes on one CPU: {pipe:.2f} us; through a shared page, "
          f"handing the CPU over with sched_yield: {handed:.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per timing")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the six ways (with --one-cpu: of its timings), alternating; medians shown")
    parser.add_argument("--one-cpu", action="store_true",
                        help="instead: this process and its worker on one CPU, a busy process on the other; each "
                             "process's CPU time a step beside a bare two-process rollout (NoiseWorld board 1, then "
                             "HalfCheetah-v5)")
    parser.add_argument("--reference-checkout", type=Path, default=None,
                        help="with --one-cpu: a local clone of github.com/Stephanehk/PromptPO, to time its in-process "
                             "loop on the same CPU")
    args = parser.parse_args()
    if args.one_cpu:
        one_cpu(args.steps, args.reference_checkout, args.repeats)
        checkout = f" --reference-checkout {args.reference_checkout}" if args.reference_checkout else ""
        print(f"reproduce: .venv/bin/python benchmarks/sandbox_overhead.py --one-cpu --steps {args.steps} "
              f"--repeats {args.repeats}{checkout}")
        return
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(args.repeats):
        for way in WAYS:
            times[way].append(step_us(way, args.steps))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {cpu_name()}; {TASK}, one observation per "
          f"message, median of {args.repeats} alternating rounds")
    bare = float(np.median(times["bare"]))
    for way in WAYS:
        median = float(np.median(times[way]))
        print(f"{way:>12}: {median:6.2f} us/step ({1e6 / median:>9,.0f} steps/s), {median - bare:+6.2f} us over bare")
    print(f"reproduce: .venv/bin/python benchmarks/sandbox_overhead.py --steps {args.steps} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
