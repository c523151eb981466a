"""PromptPO speed: a whole run against a zero-latency scripted server, sandboxed vs in-process rollouts, and a
round's wall time against its slowest answer.

The LLM here is the test double `tests/scripted_server.py` (a scripted OpenAI-compatible server on 127.0.0.1):
no model runs, so these figures measure the suite's own overhead only.
Reproduce with:  .venv/bin/python benchmarks/promptpo_speed.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import promptpo_bench  # noqa: E402
from promptpo_bench.descriptions.noiseworld import Observation  # noqa: E402
from promptpo_bench.rollout import RandomPolicy, make_env, reusing_envs, run_episodes  # noqa: E402
from promptpo_bench.sandbox import SandboxedPolicy  # noqa: E402
from promptpo_bench.sandbox_worker import RawObservation  # noqa: E402
from scripted_server import Scripted, ScriptedLLMServer  # noqa: E402  (test double)

PAPER_IN_PROCESS_SPS = 170_000  # the paper's in-process loop on board 1, measured on this kind of machine
TRIVIAL = "class Policy:\n    def act(self, obs):\n        return 1 if obs.agent_row < 1.0 else 3\n"
ZERO_TORQUE = "class Policy:\n    def act(self, obs):\n        return [0.0] * 6\n"
NOISEWORLD_OBS = "promptpo_bench.descriptions.noiseworld:Observation"
RAW_OBS = "promptpo_bench.sandbox_worker:RawObservation"
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


def in_process_sps(env_id: str, code: str, observation: type, steps: int) -> float:
    """The paper's loop: build the observation object, call act, step, all in one process."""
    namespace: dict = {}
    exec(code, namespace)
    policy = namespace["Policy"]()
    env = make_env(env_id)
    obs, _ = env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(policy.act(observation.from_array(obs)))
        if terminated or truncated:
            obs, _ = env.reset()
    return steps / (time.perf_counter() - start)


def sandboxed_sps(env_id: str, code: str, observation: str, steps: int, episodes_per_batch: int) -> float:
    """The same policy in the sandbox through the rollout harness, `episodes_per_batch` episodes side by side."""
    env = make_env(env_id)
    env.reset(seed=0)
    typical = run_episodes(env_id, RandomPolicy(env.action_space, 0), [0]).env_steps  # steps per episode, roughly
    seeds = list(range(max(episodes_per_batch, steps // max(typical, 1))))
    with reusing_envs():
        # make the envs first (PromptPO's candidates after the first find them made), then time the rollout only
        run_episodes(env_id, RandomPolicy(env.action_space, 0), seeds[:episodes_per_batch],
                     batch_size=episodes_per_batch)
        with SandboxedPolicy(code, observation, env.action_space) as policy:
            start = time.perf_counter()
            done = run_episodes(env_id, policy, seeds, batch_size=episodes_per_batch).env_steps
            return done / (time.perf_counter() - start)


def rollout_speeds(steps: int) -> None:
    """Print sandboxed vs in-process rollout speeds on board 1 and HalfCheetah-v5, measured side by side."""
    raw = in_process_sps("NoiseWorld-Board1-v0", TRIVIAL, Observation, steps)
    print(f"in-process loop (Observation, act, step), board 1:  {raw:>9,.0f} steps/s "
          f"(the paper's loop: ~{PAPER_IN_PROCESS_SPS:,} measured on this kind of machine)")
    for batch in (5, 50):
        sps = sandboxed_sps("NoiseWorld-Board1-v0", TRIVIAL, NOISEWORLD_OBS, steps, batch)
        print(f"sandboxed, {batch:>2} episodes per message:            {sps:>9,.0f} steps/s  = "
              f"{sps / raw:.2f}x in-process, {sps / PAPER_IN_PROCESS_SPS:.2f}x the paper's loop (goal >= 0.5x)")
    if importlib.util.find_spec("mujoco") is None:
        print("HalfCheetah-v5: skipped (pip install mujoco)")
    else:
        raw = in_process_sps("HalfCheetah-v5", ZERO_TORQUE, RawObservation, steps // 10)
        sps = sandboxed_sps("HalfCheetah-v5", ZERO_TORQUE, RAW_OBS, steps // 10, 5)
        print(f"HalfCheetah-v5, in-process {raw:,.0f} steps/s, sandboxed (5 episodes per message) {sps:,.0f} "
              f"steps/s = {sps / raw:.2f}x in-process (goal >= 0.7x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000, help="env steps per rollout timing")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds each scripted answer takes")
    parser.add_argument("--busy", type=int, default=0,
                        help="also time the rollouts with this many busy-looping processes running (a loaded machine)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        with ScriptedLLMServer(answer(0.0)) as server:
            start = time.perf_counter()
            record = promptpo(Path(tmp) / "run", server.base_url, "--env-id", "NoiseWorld-Board1-v0",
                              "--num-rounds", "3", "--num-candidates", "10")
            run_s = time.perf_counter() - start
        print(f"3 rounds x 10 candidates on NoiseWorld board 1, zero-latency scripted server: {run_s:.1f} s wall "
              f"(process start-up and the 50-episode final evaluation included; {record['totals']['env_steps']} "
              f"env steps, {record['totals']['llm_calls']} LLM calls)")

        rollout_speeds(args.steps)
        if args.busy:
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
            try:
                print(f"with {args.busy} busy-looping process(es) beside:")
                rollout_speeds(args.steps)
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()

        with ScriptedLLMServer(answer(args.latency)) as server:
            record = promptpo(Path(tmp) / "slow", server.base_url, "--env-id", "NoiseWorld-Board1-v0",
                              "--num-rounds", "1", "--num-candidates", "10", "--no-reflection")
        round_s = record["curve"][0]["wall_time_s"]
        print(f"one round of 10 candidates whose answers take {args.latency:g} s each: {round_s:.2f} s = "
              f"{round_s / args.latency:.2f}x the slowest answer (goal <= 1.3x)")
    print("reproduce: .venv/bin/python benchmarks/promptpo_speed.py" + (f" --busy {args.busy}" if args.busy else ""))


if __name__ == "__main__":
    main()
