"""Speed of the classical baselines beside CleanRL's own files: steps per second (SPS), side by side in one run.

Each pair runs CleanRL's file (from a local clone, `--cleanrl DIR`) and ours (algorithms/*.py) on the same task,
budget, seed and torch threads, one program after the other (alternating, so both see the same machine load), at
each thread setting of `--threads` ("1", "2", ..., or "default": torch's default, what CleanRL's files use). Per
file the best thread setting is kept and the ratio ours / CleanRL is printed at the best settings and per setting.

SPS as each file reports it: CleanRL's last "SPS:" line (global_step / time since its start, after set-up); ours
record.json's totals.sps (training steps / training time; evaluations are excluded and made rare here, CleanRL's
files have none). Both count every environment step.

Pairs (the budgets are CleanRL's defaults cut to a timed window):
  ppo-cartpole     CleanRL ppo.py   vs ppo.py --no-norm-obs --no-norm-reward (CleanRL's ppo.py has no normalisation)
  ppo-noiseworld   the same on NoiseWorld-v0 (CleanRL: gym.make("promptpo_bench:NoiseWorld-v0") in a SyncVectorEnv;
                   ours: the task's NumPy vector env)
  dqn-cartpole     CleanRL dqn.py   vs dqn.py (learning from step 10,000, an update every 10 steps)
  sac-hopper       CleanRL sac_continuous_action.py vs sac.py, learning from step 1,000
ppo-cartpole also runs ours with its default observation/reward normalisation, as an extra row.

CleanRL's files are copied into a temporary directory (never into this repository) and patched there, only
mechanically for Gymnasium 1.x (PATCHES below, printed in every run). They import torch.utils.tensorboard, so
`pip install tensorboard` into the environment that runs this benchmark (the suite itself does not need it).

--learning-seeds N also runs PPO on CartPole-v1 (--learning-steps steps) with both files for seeds 1..N and prints
each file's mean training episodic return over its last 20 episodes per seed, with the mean over seeds and its 95%
t-interval: the same algorithm should give the same learning curve within seed noise.

Reproduce:
    git clone https://github.com/vwxyzjn/cleanrl /tmp/cleanrl   # measured at commit fe8d8a03
    .venv/bin/python -m pip install tensorboard
    .venv/bin/python benchmarks/baselines_speed.py --cleanrl /tmp/cleanrl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLEANRL_FILES = {"ppo": "ppo.py", "dqn": "dqn.py", "sac": "sac_continuous_action.py"}
QUIET_EVAL = ["--eval-every", str(10**9), "--periodic-eval-episodes", "1", "--eval-episodes", "1"]

# (what it fixes, old text, new text): each must match in every CleanRL file that has `old`, at least once overall.
FINAL_INFOS = '''
def _final_infos(infos):  # patched by promptpo-bench: Gymnasium 1.x's final_info is a dict of arrays
    final, ended = infos["final_info"], infos["_final_info"]
    mask = final.get("_episode", [False] * len(ended))
    return [{"episode": {k: final["episode"][k][i] for k in ("r", "l", "t")}} if mask[i] else None
            for i in range(len(ended))]
'''
PATCHES = [
    ("Gymnasium 1.x vector envs autoreset on the next step by default; CleanRL's files assume 0.29's same-step "
     "autoreset (final observation in the step's infos)",
     "gym.vector.SyncVectorEnv(",
     "gym.vector.SyncVectorEnv(autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, env_fns="),
    ("Gymnasium 1.x renamed infos['final_observation'] to infos['final_obs']",
     'infos["final_observation"]', 'infos["final_obs"]'),
    ("Gymnasium 1.x's infos['final_info'] is a dict of arrays, not 0.29's list of per-env dicts: a 5-line helper "
     "turns it back into the list (after the imports)",
     "from torch.utils.tensorboard import SummaryWriter\n", "from torch.utils.tensorboard import SummaryWriter\n"
     + FINAL_INFOS),
    ("... and the loop over final infos uses it",
     'for info in infos["final_info"]:', "for info in _final_infos(infos):"),
]


@dataclass
class Pair:
    name: str
    algo: str
    cleanrl_args: list[str]
    ours_args: list[str]
    extra_ours: list[tuple[str, list[str]]] = field(default_factory=list)  # (label, args) of extra rows of ours


PAIRS = {
    "ppo-cartpole": Pair("ppo-cartpole", "ppo", ["--env-id", "CartPole-v1", "--total-timesteps", "100000"],
                         ["--env-id", "CartPole-v1", "--total-timesteps", "100000", "--no-norm-obs",
                          "--no-norm-reward"],
                         [("ours with obs/reward normalisation (our default)",
                           ["--env-id", "CartPole-v1", "--total-timesteps", "100000"])]),
    "ppo-noiseworld": Pair("ppo-noiseworld", "ppo", ["--env-id", "promptpo_bench:NoiseWorld-v0",
                                                     "--total-timesteps", "100000"],
                           ["--env-id", "NoiseWorld-v0", "--total-timesteps", "100000", "--no-norm-obs",
                            "--no-norm-reward"]),
    "dqn-cartpole": Pair("dqn-cartpole", "dqn", ["--env-id", "CartPole-v1", "--total-timesteps", "50000"],
                         ["--env-id", "CartPole-v1", "--total-timesteps", "50000"]),
    "sac-hopper": Pair("sac-hopper", "sac", ["--env-id", "Hopper-v5", "--total-timesteps", "4000",
                                             "--learning-starts", "1000"],
                       ["--env-id", "Hopper-v5", "--total-timesteps", "4000", "--learning-starts", "1000"]),
}


def fail(message: str) -> None:
    print(f"baselines_speed.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def prepare_cleanrl(clone: Path, work: Path) -> str:
    """Copy CleanRL's three files and cleanrl_utils into `work`, patch them; return the clone's commit."""
    if not (clone / "cleanrl" / "ppo.py").is_file():
        fail(f"{clone} is not a CleanRL checkout (no cleanrl/ppo.py); git clone https://github.com/vwxyzjn/cleanrl")
    shutil.copytree(clone / "cleanrl_utils", work / "cleanrl_utils")
    used = [0] * len(PATCHES)
    for name in CLEANRL_FILES.values():
        text = (clone / "cleanrl" / name).read_text()
        for i, (_, old, new) in enumerate(PATCHES):
            used[i] += text.count(old)
            text = text.replace(old, new)
        (work / name).write_text(text)
    for (why, old, _), count in zip(PATCHES, used):
        if count == 0:
            fail(f"CleanRL's files have changed: patch {old!r} ({why}) matches nothing; use commit fe8d8a03")
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return commit or "unknown commit"


def thread_env(threads: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
        if threads != "default":
            env[var] = threads
    return env


def run_cleanrl(work: Path, algo: str, args: list[str], threads: str, seed: int) -> tuple[int | None, str]:
    cmd = ["nice", "-n", "19", sys.executable, CLEANRL_FILES[algo], *args, "--seed", str(seed)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=thread_env(threads))
    sps = re.findall(r"^SPS: (\d+)", result.stdout, re.M)
    if result.returncode != 0 or not sps:
        return None, (result.stderr.strip().splitlines() or ["no SPS line"])[-1]
    return int(sps[-1]), ""


def run_ours(algo: str, args: list[str], threads: str, seed: int) -> tuple[int | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["nice", "-n", "19", sys.executable, str(ROOT / "algorithms" / f"{algo}.py"), *args, *QUIET_EVAL,
               "--seed", str(seed), "--torch-threads", "0" if threads == "default" else threads,
               "--run-dir", str(Path(tmp) / "run")]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=thread_env(threads))
        if result.returncode != 0:
            return None, (result.stderr.strip().splitlines() or ["?"])[-1]
        return int(json.loads((Path(tmp) / "run" / "record.json").read_text())["totals"]["sps"]), ""


def median(values: list[int]) -> int | None:
    return int(statistics.median(values)) if values else None


def speed(work: Path, pairs: list[Pair], threads: list[str], repeats: int) -> None:
    rows: list[tuple[str, ...]] = []
    summary: list[tuple[str, ...]] = []
    for pair in pairs:
        programs = [("CleanRL " + CLEANRL_FILES[pair.algo], lambda t, p=pair: run_cleanrl(work, p.algo, p.cleanrl_args,
                                                                                            t, 1)),
                    (f"ours {pair.algo}.py", lambda t, p=pair: run_ours(p.algo, p.ours_args, t, 1))]
        programs += [(label, lambda t, p=pair, a=a: run_ours(p.algo, a, t, 1)) for label, a in pair.extra_ours]
        sps: dict[tuple[str, str], list[int]] = {}
        for threads in threads:
            for _ in range(repeats):
                for label, fn in programs:  # alternating: each program sees the load the others see
                    start = time.time()
                    value, error = fn(threads)
                    if value is not None:
                        sps.setdefault((label, threads), []).append(value)
                    print(f"  {pair.name:15} {label:42} threads={threads:7} "
                          f"{'SPS ' + str(value) if value is not None else 'FAILED: ' + error}  "
                          f"({time.time() - start:.0f}s wall, load {os.getloadavg()[0]:.1f})", flush=True)
        best = {}
        for label, _ in programs:
            by_threads = {t: median(sps.get((label, t), [])) for t in threads}
            done = {t: v for t, v in by_threads.items() if v is not None}
            best[label] = max(done.items(), key=lambda kv: kv[1]) if done else (None, None)
            rows.append((pair.name, label, *[str(by_threads[t] or "FAILED") for t in threads],
                         str(best[label][0])))
        cleanrl = best[programs[0][0]]
        for label, _ in programs[1:]:
            if cleanrl[1] and best[label][1]:
                per_setting = []
                for t in threads:
                    a, b = median(sps.get((label, t), [])), median(sps.get((programs[0][0], t), []))
                    per_setting.append(f"{a / b:.2f}x" if a and b else "-")
                summary.append((pair.name, label, f"{best[label][1] / cleanrl[1]:.2f}x",
                                f"{best[label][1]} (threads {best[label][0]}) / {cleanrl[1]} (threads {cleanrl[0]})",
                                *per_setting))
    print()
    print_table(("pair", "file", *[f"SPS threads={t}" for t in threads], "best threads"), rows)
    print()
    print_table(("pair", "file", "ours/CleanRL at best threads", "SPS (best threads)",
                 *[f"ratio threads={t}" for t in threads]), summary)


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


# --- learning: the same algorithm gives the same curve ----------------------------------------------------------

# Ours prints CleanRL's per-episode line, from the episode statistics its Run sees (the benchmark watches, the
# algorithm is unchanged).
OURS_WITH_EPISODE_LINES = """
import runpy, sys
from promptpo_bench import baselines
log_episodes = baselines.Run.log_episodes
def log_and_print(self, infos, global_step):
    if "episode" in infos:
        for r in infos["episode"]["r"][infos["_episode"]]:
            print(f"global_step={global_step}, episodic_return={r}")
    log_episodes(self, infos, global_step)
baselines.Run.log_episodes = log_and_print
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def last_returns(stdout: str, last: int) -> float | None:
    returns = [float(r) for r in re.findall(r"episodic_return=\[?([-0-9.e+]+)", stdout)]
    return sum(returns[-last:]) / len(returns[-last:]) if returns else None


def learning(work: Path, seeds: int, steps: int, threads: str) -> None:
    from promptpo_bench.statistics import ci95

    results: dict[str, list[float]] = {"CleanRL ppo.py": [], "ours ppo.py": []}
    for seed in range(1, seeds + 1):
        common = ["--env-id", "CartPole-v1", "--total-timesteps", str(steps), "--seed", str(seed)]
        crl = subprocess.run(["nice", "-n", "19", sys.executable, "ppo.py", *common], capture_output=True, text=True,
                             cwd=work, env=thread_env(threads))
        with tempfile.TemporaryDirectory() as tmp:
            ours = subprocess.run(["nice", "-n", "19", sys.executable, "-c", OURS_WITH_EPISODE_LINES,
                                   str(ROOT / "algorithms" / "ppo.py"), *common, "--no-norm-obs", "--no-norm-reward",
                                   *QUIET_EVAL, "--torch-threads", "0" if threads == "default" else threads,
                                   "--run-dir", str(Path(tmp) / "run")], capture_output=True, text=True, cwd=tmp,
                                  env=thread_env(threads))
        for label, result in (("CleanRL ppo.py", crl), ("ours ppo.py", ours)):
            value = last_returns(result.stdout, 20)
            if result.returncode != 0 or value is None:
                fail(f"{label} seed {seed} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
            results[label].append(value)
        print(f"  seed {seed}: CleanRL {results['CleanRL ppo.py'][-1]:.1f}, ours {results['ours ppo.py'][-1]:.1f} "
              "(mean training return of the last 20 episodes)", flush=True)
    print(f"\nPPO CartPole-v1, {steps} steps, seeds 1..{seeds}: mean training return of the last 20 episodes")
    for label, values in results.items():
        half = ci95(values)
        print(f"  {label:15} {statistics.mean(values):7.1f} +- {half:.1f} (95% t-interval over {len(values)} seeds)"
              if half is not None else f"  {label:15} {statistics.mean(values):7.1f} (one seed: no interval)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cleanrl", type=Path, required=True, help="a local clone of github.com/vwxyzjn/cleanrl")
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS), help="which pairs to run")
    parser.add_argument("--threads", nargs="+", default=["1", "default"],
                        help='torch thread settings to run each file at ("default": torch\'s default)')
    parser.add_argument("--repeats", type=int, default=1, help="runs per file and setting (the median is kept)")
    parser.add_argument("--learning-seeds", type=int, default=0,
                        help="also compare PPO's learning on CartPole-v1 over this many seeds (0: no)")
    parser.add_argument("--learning-steps", type=int, default=100_000, help="steps of each learning run")
    parser.add_argument("--no-speed", action="store_true", help="only the learning comparison")
    args = parser.parse_args()
    if args.repeats < 1:
        fail("--repeats must be at least 1")
    for threads in args.threads:
        if threads != "default" and not (threads.isdigit() and int(threads) > 0):
            fail(f"--threads takes positive integers or 'default', got {threads!r}")
    try:
        import torch.utils.tensorboard  # noqa: F401  (CleanRL's files log to TensorBoard)
    except ImportError:
        fail("CleanRL's files import torch.utils.tensorboard: pip install tensorboard (only this benchmark needs it)")
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        commit = prepare_cleanrl(args.cleanrl.resolve(), work)
        print("reproduce: " + shlex.join([".venv/bin/python", "benchmarks/baselines_speed.py", *sys.argv[1:]]))
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start; torch {torch.__version__} "
              f"(default threads {torch.get_num_threads()}), Python {platform.python_version()}")
        print(f"CleanRL {commit} from {args.cleanrl}, copied to a temporary directory with these patches:")
        for why, old, new in PATCHES:
            print(f"  - {why}: {old.strip()!r} -> {new.strip().splitlines()[0]!r}{' ...' if new.count(chr(10)) > 1 else ''}")
        print()
        if not args.no_speed:
            speed(work, [PAIRS[p] for p in args.pairs], args.threads, args.repeats)
        if args.learning_seeds:
            print()
            learning(work, args.learning_seeds, args.learning_steps, args.threads[0])
        print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
