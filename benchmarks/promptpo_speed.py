"""PromptPO speed: a whole run against a zero-latency scripted server, sandboxed vs in-process rollouts, and a
round's wall time against its slowest answer.

With --reference-checkout DIR (a local clone of github.com/Stephanehk/PromptPO, never copied here) the rollouts are
also set beside the reference's own in-process loop on board 1: its NoiseWorld env, its observation object filled by
`fill_from_env`, a trivial `act` and `env.step`, run in a separate process (its gym id clashes with ours).

The LLM here is the test double `tests/scripted_server.py` (a scripted OpenAI-compatible server on 127.0.0.1):
no model runs, so these figures measure the suite's own overhead only.
Reproduce with:  .venv/bin/python benchmarks/promptpo_speed.py [--reference-checkout DIR] [--busy 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import types
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


from promptpo_bench import registry  # importing the package registers the tasks
from promptpo_bench.records import cpu_fields
from promptpo_bench.rollout import RandomPolicy, make_env, make_rollout_env, reusing_envs, run_episodes
from promptpo_bench.sandbox import SandboxedPolicy

ROOT = Path(__file__).resolve().parents[1]


def _test_double() -> types.ModuleType:
    """tests/scripted_server.py, the scripted OpenAI-compatible server of the tests, loaded from its file."""
    spec = importlib.util.spec_from_file_location("scripted_server", ROOT / "tests" / "scripted_server.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_server = _test_double()
Scripted, ScriptedLLMServer = _server.Scripted, _server.ScriptedLLMServer

REFERENCE_LOOP = """
import sys, time
sys.path.insert(0, sys.argv[1])
from direct_policy_learning.env_utils import rollout_python_policy as r
from direct_policy_learning.observations.noise_world_observation import NoiseWorldObservation
env = r._make_env("noise_world_board_1", None, None, None, None, None)
class Policy:
    def act(self, obs):
        return 1 if obs.agent_row < 1.0 else 3
policy, steps = Policy(), int(sys.argv[2])
obs_np, _ = env.reset(seed=0)
start = time.perf_counter()
for _ in range(steps):
    obs = NoiseWorldObservation()
    obs.fill_from_env(env, obs_np)
    obs_np, _, terminated, truncated, _ = env.step(policy.act(obs))
    if terminated or truncated:
        obs_np, _ = env.reset()
print(steps / (time.perf_counter() - start))
"""
TRIVIAL = "class Policy:\n    def act(self, obs):\n        return 1 if obs.agent_row < 1.0 else 3\n"
ZERO_TORQUE = "class Policy:\n    def act(self, obs):\n        return [0.0] * 6\n"
NOISEWORLD_OBS = "promptpo_bench.descriptions.noiseworld:Observation"
FEEDBACK = ("```python\nclass Feedback:\n    def summarize_trajectory(self, traj):\n"
            "        return f'{len(traj) - 1} steps'\n```")


def answer(delay_s: float):
    def respond(request: dict, _: int) -> Scripted:
        user = request["messages"][1]["content"]
        text = FEEDBACK if "class `Feedback`" in user else (
            "It worked." if "reflect on the latest attempt" in user else f"```python\n{TRIVIAL}```")
        return Scripted(text=text, delay_s=delay_s)
    return respond


def promptpo(run_dir: Path, base_url: str, *args: str) -> dict:
    env = {**os.environ, "OPENAI_API_KEY": "scripted"}
    subprocess.run([sys.executable, str(ROOT / "algorithms" / "promptpo.py"), "--run-dir", str(run_dir),
                    "--llm-base-url", base_url, *args], check=True, env=env, capture_output=True)
    return json.loads((run_dir / "record.json").read_text())


def in_process_sps(env_id: str, code: str, observation: type, steps: int, variant: str | None = None) -> float:
    """The paper's loop: build the observation object, call act, step, all in one process (the env as the rollout
    harness makes it, observed as the description `variant` reads it)."""
    namespace: dict = {}
    exec(code, namespace)
    policy = namespace["Policy"]()
    env = make_rollout_env(env_id, None, variant)
    try:
        obs, _ = env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step(policy.act(observation.from_array(obs)))
            if terminated or truncated:
                obs, _ = env.reset()
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def reference_sps(checkout: Path, steps: int) -> float:
    """The reference's own in-process loop on board 1 (see the module docstring), in a separate process."""
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(checkout.resolve(), Path(tmp) / "direct_policy_learning")  # the package name it imports itself by
        out = subprocess.run([sys.executable, "-c", REFERENCE_LOOP, tmp, str(steps)], check=True, capture_output=True,
                             text=True, cwd=tmp)
    return float(out.stdout.strip().splitlines()[-1])


class Timing(NamedTuple):
    """A sandboxed rollout's steps/s, the share of its replies caught spinning (near 0 where the machine had no CPU
    free for each side: the channel blocked), and each process's CPU time a step in microseconds: this one's (the
    envs and its side of the channel) and the worker's (the policy and the other side)."""

    sps: float
    spun: float
    parent_us: float
    worker_us: float


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/PID/stat (read after the last ')': the name before it is the worker's)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sandboxed_sps(env_id: str, code: str, observation: str, steps: int, episodes_per_batch: int,
                  lifetime: str = "episode", variant: str | None = None) -> Timing:
    """The same policy in the sandbox through the rollout harness, `episodes_per_batch` episodes side by side
    (lifetime "rollout": one Policy() for all episodes, so one observation per message), the observations as the
    description `variant` reads them."""
    env = make_env(env_id)
    env.reset(seed=0)
    typical = run_episodes(env_id, RandomPolicy(env.action_space, 0), [0]).env_steps  # steps per episode, roughly
    seeds = list(range(max(episodes_per_batch, steps // max(typical, 1))))
    with reusing_envs():
        # make the envs first (PromptPO's candidates after the first find them made), then time the rollout only
        run_episodes(env_id, RandomPolicy(env.action_space, 0), seeds[:episodes_per_batch],
                     batch_size=episodes_per_batch, variant=variant)
        with SandboxedPolicy(code, observation, env.action_space, lifetime=lifetime) as policy:
            worker = policy._proc.child_pid  # the confined process that runs the policy
            worker_cpu, parent_cpu, start = _cpu_seconds(worker), time.process_time(), time.perf_counter()
            done = run_episodes(env_id, policy, seeds, batch_size=episodes_per_batch, variant=variant).env_steps
            wall, parent_cpu = time.perf_counter() - start, time.process_time() - parent_cpu
            worker_cpu = _cpu_seconds(worker) - worker_cpu
            return Timing(done / wall, policy.spun_share, parent_cpu / done * 1e6, worker_cpu / done * 1e6)


def cpu_name() -> str:
    """The CPU as /proc/cpuinfo names it, with its family and model: the figures depend on the host, so say which."""
    fields = cpu_fields()
    name = fields.get("model name") or platform.machine()
    return f"{name} (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else name


def spread(values: list[float], digits: int = 2, unit: str = "x") -> str:
    """A median, with the range where there was more than one repeat."""
    middle = f"{statistics.median(values):,.{digits}f}{unit}"
    return middle if len(values) == 1 else f"{middle} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


MESSAGE_SIZES = ((5, "episode"), (1, "rollout"))  # episodes per message, and the policy lifetime that sends them


class RunObservation(NamedTuple):
    """How a PromptPO run observes a task: its description's `Observation` class, that class as the sandbox names it,
    and the default (the paper's) description variant, whose observation it reads (HalfCheetah's carries the
    simulator state after the env's 17 numbers, 38 in all)."""

    observation: type
    path: str
    variant: str


def run_observation(task: str) -> RunObservation:
    """`task` observed as a PromptPO run observes it (see RunObservation)."""
    module = registry.get(task).description
    return RunObservation(registry.description_module(task).Observation, f"{module}:Observation",
                          registry.default_variant(task))


def time_task(got: dict[tuple, list[float]], task: str, code: str, steps: int) -> None:
    """One repeat of a task's timings, appended to `got`: the in-process loop, then the sandboxed rollout at each of
    MESSAGE_SIZES (steps/s, the ratio to this repeat's in-process loop, the share of replies caught spinning). Both
    as a PromptPO run plays the task (`run_observation`)."""
    observation, path, variant = run_observation(task)
    raw = in_process_sps(task, code, observation, steps, variant)
    got[task, "in-process"].append(raw)
    for batch, lifetime in MESSAGE_SIZES:
        timing = sandboxed_sps(task, code, path, steps, batch, lifetime, variant)
        for what, value in (("sps", timing.sps), ("ratio", timing.sps / raw), ("spun", timing.spun)):
            got[task, what, batch].append(value)


def rollout_speeds(steps: int, checkout: Path | None, repeats: int = 1) -> None:
    """Print sandboxed vs in-process rollout speeds on board 1 and HalfCheetah-v5, measured side by side `repeats`
    times (each ratio taken within one repeat; the median over repeats printed, and their range)."""
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {cpu_name()} (figures measured side by "
          "side in one run"
          + (f"; medians of {repeats} repeats, their range in brackets)" if repeats > 1 else ")"))
    board, cheetah = "NoiseWorld-Board1-v0", "HalfCheetah-v5"
    mujoco = importlib.util.find_spec("mujoco") is not None
    got: dict[tuple, list[float]] = collections.defaultdict(list)
    for _ in range(repeats):
        reference = reference_sps(checkout, steps) if checkout else None
        time_task(got, board, TRIVIAL, steps)
        if reference:
            got["reference"].append(reference)
            for batch, _ in MESSAGE_SIZES:
                got["reference", batch].append(got[board, "sps", batch][-1] / reference)
        if mujoco:
            time_task(got, cheetah, ZERO_TORQUE, steps // 10)
    print(f"in-process loop (Observation, act, step), board 1:  {spread(got[board, 'in-process'], 0, ' steps/s')}")
    if checkout:
        print(f"the reference's in-process loop, board 1:           {spread(got['reference'], 0, ' steps/s')}")
    for batch, lifetime in MESSAGE_SIZES:
        versus = f", {spread(got['reference', batch])} the reference's loop (goal >= {1.0 if batch > 1 else 0.5}x)" \
            if checkout else ""
        sps, spun = spread(got[board, "sps", batch], 0, " steps/s"), statistics.median(got[board, "spun", batch])
        print(f"sandboxed, {batch} episode(s) per message ({lifetime} lifetime): {sps} = "
              f"{spread(got[board, 'ratio', batch])} in-process{versus}; {spun:.0%} of replies caught spinning")
    if not mujoco:
        print("HalfCheetah-v5: skipped (pip install mujoco)")
        return
    for batch, _ in MESSAGE_SIZES:
        sps, spun = spread(got[cheetah, "sps", batch], 0, " steps/s"), statistics.median(got[cheetah, "spun", batch])
        inside = spread(got[cheetah, "in-process"], 0, " steps/s")
        print(f"HalfCheetah-v5 (its description's Observation), in-process {inside}, sandboxed ({batch} episode(s) "
              f"per message) {sps} = {spread(got[cheetah, 'ratio', batch])} in-process (goal >= 0.8x); {spun:.0%} "
              "caught spinning")


@contextlib.contextmanager
def busy(count: int) -> Iterator[list[subprocess.Popen]]:
    """`count` busy-looping processes beside the timings (a loaded machine); yields them."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    print(f"with {count} busy-looping process(es) beside:")
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000, help="env steps per rollout timing")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds each scripted answer takes")
    parser.add_argument("--busy", type=int, default=0,
                        help="also time the rollouts with this many busy-looping processes running (a loaded machine)")
    parser.add_argument("--reference-checkout", type=Path, default=None,
                        help="a local clone of github.com/Stephanehk/PromptPO: time its in-process loop beside ours")
    parser.add_argument("--rollouts-only", action="store_true", help="skip the PromptPO runs; time the rollouts only")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time the rollouts this many times, alternating, and print medians and ranges")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    print("reproduce: " + shlex.join([".venv/bin/python", "benchmarks/promptpo_speed.py", *sys.argv[1:]]))

    if args.rollouts_only:
        rollout_speeds(args.steps, args.reference_checkout, args.repeats)
        if args.busy:
            with busy(args.busy):
                rollout_speeds(args.steps, args.reference_checkout, args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        with ScriptedLLMServer(answer(0.0)) as server:
            start = time.perf_counter()
            record = promptpo(Path(tmp) / "run", server.base_url, "--env-id", "NoiseWorld-Board1-v0",
                              "--num-rounds", "3", "--num-candidates", "10")
            run_s = time.perf_counter() - start
        print(f"3 rounds x 10 candidates on NoiseWorld board 1, zero-latency scripted server: {run_s:.1f} s wall "
              f"(process start-up and the 50-episode final evaluation included; {record['totals']['env_steps']} "
              f"env steps, {record['totals']['llm_calls']} LLM calls)")

        rollout_speeds(args.steps, args.reference_checkout, args.repeats)
        if args.busy:
            with busy(args.busy):
                rollout_speeds(args.steps, args.reference_checkout, args.repeats)

        with ScriptedLLMServer(answer(args.latency)) as server:
            record = promptpo(Path(tmp) / "slow", server.base_url, "--env-id", "NoiseWorld-Board1-v0",
                              "--num-rounds", "1", "--num-candidates", "10", "--no-reflection")
        round_s = record["curve"][0]["wall_time_s"]
        print(f"one round of 10 candidates whose answers take {args.latency:g} s each: {round_s:.2f} s = "
              f"{round_s / args.latency:.2f}x the slowest answer (goal <= 1.3x)")


if __name__ == "__main__":
    main()
