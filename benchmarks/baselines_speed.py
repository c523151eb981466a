"""Speed of the classical baselines beside CleanRL's own files: steps per second (SPS), side by side in one run.

Each pair runs CleanRL's file (from a local clone, `--cleanrl DIR`) and ours (algorithms/*.py) on the same task,
budget, seed and torch threads, one program after the other (alternating, so both see the same machine load; at
normal priority, since a niced program on a busy machine measures the others' work), at each thread setting of
`--threads` ("1", "2", ..., or "default": torch's default, what CleanRL's files use), `--repeats` times. Per file
the median of each setting is kept, and the ratio ours / CleanRL is printed at each file's best setting.

Three measures of speed, all printed:
  wall SPS  as each file reports it: CleanRL's last "SPS:" line (global_step / time since its start, after set-up);
            ours record.json's totals.sps (training steps / training time; evaluations are excluded and made rare
            here, CleanRL's files have none). What a user sees, but it counts the steps before learning starts (half
            of sac-hopper's, a third of dqn-cartpole's), and on a shared machine it measures the load too.
  phase SPS environment steps per wall-second beyond a short run of the same program (the pair's short budget:
            start-up, set-up, and for DQN and SAC the steps before learning starts): the wall time of the short run
            is subtracted from the timed run's, so it is the speed of the learning phase, as in a long run.
  CPU SPS   the same with CPU time (user + system time of all its threads) in place of wall time. Robust to load
            for one thread; with more threads it is the cost, not the speed.

Pairs (CleanRL's defaults; budgets: timed run / short run):
  ppo-cartpole     CleanRL ppo.py vs ppo.py --no-norm-obs --no-norm-reward (CleanRL's ppo.py has no normalisation);
                   50,000 / 2,048 steps
  ppo-noiseworld   the same on NoiseWorld-v0 (CleanRL: gym.make("promptpo_bench:NoiseWorld-v0") in a SyncVectorEnv;
                   ours: the task's NumPy vector env); 50,000 / 2,048 steps
  dqn-cartpole     CleanRL dqn.py vs dqn.py (learning from step 10,000, an update every 10 steps); 30,000 / 10,000
  sac-hopper       CleanRL sac_continuous_action.py vs sac.py, learning from step 1,000; 2,000 / 1,000
ppo-cartpole also runs ours with its default observation/reward normalisation, as an extra row; sac-hopper ours
with --bf16 (matrix products in bfloat16).

sac-hopper also prints SAC's arithmetic floor at each thread setting: the floating-point operations of one update of
sac.py (its own loss functions, counted by torch's FlopCounterMode: the matrix products, Hopper's shapes) divided by
this machine's float32 rate for a 256x256x256 product at that setting (the best of 5 blocks of 500), i.e. the time
no code can go below without changing the arithmetic, beside the time a step may take for 1.5x CleanRL's best phase
SPS.

CleanRL's files are copied into a temporary directory (never into this repository) and patched there, only
mechanically for Gymnasium 1.x (PATCHES below, printed in every run). They import torch.utils.tensorboard, so
`pip install tensorboard` into the environment that runs this benchmark (the suite itself does not need it).

--learning-seeds N also runs a learning comparison (--learning: PPO on CartPole-v1, or SAC on Pendulum-v1 with ours
in float32 and with --bf16) for seeds 1..N, --learning-steps steps each, and prints each file's mean training
episodic return over all its episodes (the area under its learning curve) and over its last 20, per seed, with the
mean over seeds and its 95% t-interval: the same algorithm should give the same learning curve within seed noise.

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
import resource
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
    steps: int  # the budget (--total-timesteps) of the timed run
    short_steps: int  # the budget of the run whose CPU time is subtracted (start-up, set-up, the same phases)
    extra_ours: list[tuple[str, list[str]]] = field(default_factory=list)  # (label, args) of extra rows of ours

    def steps_done(self, budget: int) -> int:
        """Environment steps a run with this budget takes (PPO: whole iterations of 4 x 128 steps)."""
        return budget // 512 * 512 if self.algo == "ppo" else budget


HOPPER = ["--env-id", "Hopper-v5", "--learning-starts", "1000"]  # both files, and ours --bf16
PAIRS = {
    "ppo-cartpole": Pair("ppo-cartpole", "ppo", ["--env-id", "CartPole-v1"],
                         ["--env-id", "CartPole-v1", "--no-norm-obs", "--no-norm-reward"], 50_000, 2048,
                         [("ours with obs/reward normalisation (our default)", ["--env-id", "CartPole-v1"])]),
    "ppo-noiseworld": Pair("ppo-noiseworld", "ppo", ["--env-id", "promptpo_bench:NoiseWorld-v0"],
                           ["--env-id", "NoiseWorld-v0", "--no-norm-obs", "--no-norm-reward"], 50_000, 2048),
    "dqn-cartpole": Pair("dqn-cartpole", "dqn", ["--env-id", "CartPole-v1"], ["--env-id", "CartPole-v1"],
                         30_000, 10_000),  # the difference: 20,000 steps with an update every 10
    "sac-hopper": Pair("sac-hopper", "sac", HOPPER, HOPPER, 2000, 1000,  # 1,000 updates
                       [("ours --bf16 (bfloat16 products, a named variant)", [*HOPPER, "--bf16"])]),
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


def timed(cmd: list[str], cwd: Path, threads: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a program to its end; also return the CPU time (user + system, all its threads) and wall time it took."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=thread_env(threads))
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def run_cleanrl(work: Path, algo: str, args: list[str], steps: int,
                threads: str) -> tuple[int | None, float, float, str]:
    """CleanRL's file: its last "SPS:" line, and the CPU and wall time of the whole program."""
    command = [sys.executable, CLEANRL_FILES[algo], *args, "--total-timesteps", str(steps), "--seed", "1"]
    result, cpu, wall = timed(command, work, threads)
    sps = re.findall(r"^SPS: (\d+)", result.stdout, re.M)
    if result.returncode != 0:
        return None, cpu, wall, (result.stderr.strip().splitlines() or ["?"])[-1]
    return ((int(sps[-1]) if sps else None), cpu, wall,
            "" if sps else "no SPS line (dqn.py and sac.py print it once learning)")


def ours_command(algo: str, args: list[str], threads: str, run_dir: Path) -> list[str]:
    """Our algorithm file with `args`, its evaluations made rare, `threads` torch threads, into `run_dir`."""
    return [str(ROOT / "algorithms" / f"{algo}.py"), *args, *QUIET_EVAL,
            "--torch-threads", "0" if threads == "default" else threads, "--run-dir", str(run_dir)]


def run_ours(algo: str, args: list[str], steps: int, threads: str) -> tuple[int | None, float, float, str]:
    """Ours: record.json's SPS, and the CPU and wall time of the whole program."""
    with tempfile.TemporaryDirectory() as tmp:
        budget = [*args, "--total-timesteps", str(steps), "--seed", "1"]
        command = ours_command(algo, budget, threads, Path(tmp) / "run")
        result, cpu, wall = timed([sys.executable, *command], Path(tmp), threads)
        if result.returncode != 0:
            return None, cpu, wall, (result.stderr.strip().splitlines() or ["?"])[-1]
        return int(json.loads((Path(tmp) / "run" / "record.json").read_text())["totals"]["sps"]), cpu, wall, ""


FLOOR_SCRIPT = """
import importlib.util, json, sys, time
import gymnasium as gym, numpy as np, torch
from torch.utils.flop_counter import FlopCounterMode
from promptpo_bench.torch_policy import HandGradMLP
spec = importlib.util.spec_from_file_location("sac", sys.argv[1])
sac = sys.modules["sac"] = importlib.util.module_from_spec(spec)  # registered first: its dataclasses need it
spec.loader.exec_module(sac)
args = sac.Args()
torch.manual_seed(1)
obs_dim, act_dim, n = 11, 3, args.batch_size  # Hopper-v5
space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
actor = sac.Actor(obs_dim, space, args.hidden_sizes)
qf1, qf2, qf1_target, qf2_target = (sac.SoftQNetwork(obs_dim, act_dim, args.hidden_sizes) for _ in range(4))
batch = (torch.randn(n, obs_dim), torch.rand(n, act_dim) * 2 - 1, torch.randn(n, obs_dim), torch.randn(n, 1),
         torch.zeros(n, 1))
log_alpha = torch.zeros(1, requires_grad=True)
nets = [HandGradMLP(net.network) for net in (actor, qf1, qf2, qf1_target, qf2_target)]
scale, bias = actor.action_scale, actor.action_bias
with FlopCounterMode(display=False) as counter:  # one update: a critic, an actor and a temperature step on average
    sac.critic_step(*nets, batch, 0.2, args.gamma, scale, bias)
    sac.actor_step(*nets[:3], batch[0], 0.2, scale, bias)
    sac.alpha_step(nets[0], log_alpha, batch[0], -act_dim, scale, bias)
a, b = torch.randn(256, 256), torch.randn(256, 256)
out = torch.empty(256, 256)
for _ in range(200):
    torch.mm(a, b, out=out)
blocks = []
for _ in range(5):
    start = time.perf_counter()
    for _ in range(500):
        torch.mm(a, b, out=out)
    blocks.append((time.perf_counter() - start) / 500)
print(json.dumps({"flop": counter.get_total_flops(), "product_flops_per_s": 2 * 256**3 / min(blocks),
                  "threads": torch.get_num_threads()}))
"""


def sac_floor(threads: str) -> dict:
    """One sac.py update's floating-point operations and this machine's float32 product rate at `threads` (a
    separate process, so the thread setting is the one the files run with)."""
    result = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT, str(ROOT / "algorithms" / "sac.py")],
                            capture_output=True, text=True, env=thread_env(threads), cwd=ROOT)
    if result.returncode != 0:
        fail(f"measuring SAC's arithmetic floor failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_sac_floor(threads: list[str], cleanrl_best_phase: float | None) -> None:
    """SAC's arithmetic floor per step at each thread setting, beside the step time 1.5x CleanRL's best allows."""
    print("\nsac-hopper, the arithmetic floor: one update of sac.py (a critic, an actor and a temperature step on "
          "average; Hopper's shapes, batch 256)")
    for t in threads:
        floor = sac_floor(t)
        rate = floor["product_flops_per_s"]
        print(f"  threads={t:7} {floor['flop'] / 1e6:.0f} MFLOP at {rate / 1e9:.0f} GFLOP/s (a 256x256x256 float32 "
              f"product, {floor['threads']} thread(s)) = {floor['flop'] / rate * 1e3:.2f} ms a step for its products "
              "alone")
    if cleanrl_best_phase:
        print(f"  1.5x CleanRL's best phase SPS ({cleanrl_best_phase:.0f}) allows "
              f"{1e3 / (1.5 * cleanrl_best_phase):.2f} ms a step, the environment step, acting, sampling and the "
              "optimizers included")


def median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


METRICS = {"wall": "wall SPS", "phase": "phase SPS", "cpu": "CPU SPS"}


def speed(work: Path, pairs: list[Pair], threads: list[str], repeats: int) -> None:
    """The three speeds per file and thread setting (medians over repeats), then the ratios at each file's best."""
    rows: list[tuple[str, ...]] = []
    summary: list[tuple[str, ...]] = []
    cleanrl_sac_best: float | None = None
    for pair in pairs:
        programs = [("CleanRL " + CLEANRL_FILES[pair.algo],
                     lambda n, t, p=pair: run_cleanrl(work, p.algo, p.cleanrl_args, n, t)),
                    (f"ours {pair.algo}.py", lambda n, t, p=pair: run_ours(p.algo, p.ours_args, n, t))]
        programs += [(label, lambda n, t, p=pair, a=a: run_ours(p.algo, a, n, t)) for label, a in pair.extra_ours]
        measured: dict[str, dict[tuple[str, str], list[float]]] = {metric: {} for metric in METRICS}
        steps = pair.steps_done(pair.steps) - pair.steps_done(pair.short_steps)
        for t in threads:
            for _ in range(repeats):
                for label, fn in programs:  # alternating: each program sees the load the others see
                    start = time.time()
                    sps, cpu_full, wall_full, error = fn(pair.steps, t)
                    _, cpu_short, wall_short, error_short = fn(pair.short_steps, t) if sps is not None \
                        else (None, 0.0, 0.0, "")
                    error_short = "" if error_short.startswith("no SPS line") else error_short  # none expected
                    if sps is not None and not error_short and cpu_full > cpu_short and wall_full > wall_short:
                        got = {"wall": sps, "phase": steps / (wall_full - wall_short),
                               "cpu": steps / (cpu_full - cpu_short)}
                        for metric, value in got.items():
                            measured[metric].setdefault((label, t), []).append(value)
                        shown = (f"SPS {sps}, {got['phase']:.0f} steps per wall-second and {got['cpu']:.0f} per "
                                 "CPU-second beyond the short run")
                    else:
                        shown = f"FAILED: {error or error_short or 'no time measured'}"
                    print(f"  {pair.name:15} {label:50} threads={t:7} {shown}  ({time.time() - start:.0f}s wall, "
                          f"load {os.getloadavg()[0]:.1f})", flush=True)
        best: dict[str, dict[str, tuple[str | None, float | None]]] = {}
        for label, _ in programs:
            best[label] = {}
            for metric, values in measured.items():
                by_threads = {t: median(values.get((label, t), [])) for t in threads}
                done = {t: v for t, v in by_threads.items() if v is not None}
                best[label][metric] = max(done.items(), key=lambda kv: kv[1]) if done else (None, None)
            rows.append((pair.name, label, *[" / ".join(f"{median(measured[m].get((label, t), [])) or 0:.0f}"
                                                        for m in METRICS) for t in threads]))
        cleanrl = programs[0][0]
        if pair.algo == "sac":
            cleanrl_sac_best = best[cleanrl]["phase"][1]
        for label, _ in programs[1:]:
            cells = []
            for metric in METRICS:
                (t_ours, ours), (t_theirs, theirs) = best[label][metric], best[cleanrl][metric]
                cells.append(f"{ours / theirs:.2f}x (threads {t_ours} vs {t_theirs})" if ours and theirs else "-")
            summary.append((pair.name, label, *cells))
    print("\nmedians over repeats; wall = SPS as each file reports it (all its steps, those before learning starts "
          "included); phase and CPU = steps per wall-second and per CPU-second beyond a short run of the same program "
          "(start-up, set-up and the steps before learning subtracted)")
    print_table(("pair", "file", *[f"wall / phase / CPU SPS, threads={t}" for t in threads]), rows)
    print()
    print_table(("pair", "file", *[f"ours/CleanRL, {name} (best threads)" for name in METRICS.values()]), summary)
    if any(pair.algo == "sac" for pair in pairs):
        print_sac_floor(threads, cleanrl_sac_best)


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
log_episodes = baselines.BaselineRun.log_episodes
def log_and_print(self, infos, global_step):
    if "episode" in infos:
        for r in infos["episode"]["r"][infos["_episode"]]:
            print(f"global_step={global_step}, episodic_return={r}")
    log_episodes(self, infos, global_step)
baselines.BaselineRun.log_episodes = log_and_print
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def episode_returns(stdout: str) -> list[float]:
    """The training episodes' returns in the order the program printed them (CleanRL's episodic_return lines)."""
    return [float(r) for r in re.findall(r"episodic_return=\[?([-0-9.e+]+)", stdout)]


# name: (algorithm, the task's arguments for both files, ours' rows as (label, extra arguments))
LEARNING = {
    "ppo-cartpole": ("ppo", ["--env-id", "CartPole-v1"], [("ours ppo.py", ["--no-norm-obs", "--no-norm-reward"])]),
    "sac-pendulum": ("sac", ["--env-id", "Pendulum-v1"], [("ours sac.py", []), ("ours sac.py --bf16", ["--bf16"])]),
}


def learning(work: Path, name: str, seeds: int, steps: int, threads: str) -> None:
    """Each file's mean training return over all its episodes and over its last 20, per seed, and the means over
    seeds with their 95% t-intervals (`--learning-seeds`)."""
    from promptpo_bench.statistics import ci95

    algo, task, ours_rows = LEARNING[name]
    cleanrl = "CleanRL " + CLEANRL_FILES[algo]
    labels = [cleanrl, *(label for label, _ in ours_rows)]
    # per file: the mean return of all training episodes (the area under the learning curve: how fast it learns)
    # and of the last 20 (where it got to), one value per seed
    results: dict[str, dict[str, list[float]]] = {label: {"all": [], "last 20": []} for label in labels}
    for seed in range(1, seeds + 1):
        common = [*task, "--total-timesteps", str(steps), "--seed", str(seed)]
        runs = [(cleanrl, subprocess.run([sys.executable, CLEANRL_FILES[algo], *common], capture_output=True,
                                         text=True, cwd=work, env=thread_env(threads)))]
        for label, extra in ours_rows:
            with tempfile.TemporaryDirectory() as tmp:
                runs.append((label, subprocess.run(
                    [sys.executable, "-c", OURS_WITH_EPISODE_LINES,
                     *ours_command(algo, [*common, *extra], threads, Path(tmp) / "run")],
                    capture_output=True, text=True, cwd=tmp, env=thread_env(threads))))
        for label, result in runs:
            returns = episode_returns(result.stdout)
            if result.returncode != 0 or not returns:
                fail(f"{label} seed {seed} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
            results[label]["all"].append(statistics.mean(returns))
            results[label]["last 20"].append(statistics.mean(returns[-20:]))
        print(f"  seed {seed}: " + ", ".join(f"{label} {r['all'][-1]:.1f} / {r['last 20'][-1]:.1f}"
                                             for label, r in results.items())
              + " (mean training return of all episodes / of the last 20)", flush=True)
    print(f"\n{name}, {steps} steps, seeds 1..{seeds}: mean training return per seed, then the mean over seeds and "
          "its 95% t-interval")
    width = max(map(len, labels))
    for which in ("all", "last 20"):
        print(f"  {which} episodes:")
        for label in labels:
            values = results[label][which]
            half = ci95(values)
            print(f"    {label:{width}} {statistics.mean(values):8.1f}"
                  + (f" +- {half:.1f}" if half is not None else " (one seed: no interval)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cleanrl", type=Path, required=True, help="a local clone of github.com/vwxyzjn/cleanrl")
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS), help="which pairs to run")
    parser.add_argument("--threads", nargs="+", default=["1", "default"],
                        help='torch thread settings to run each file at ("default": torch\'s default)')
    parser.add_argument("--repeats", type=int, default=1, help="runs per file and setting (the median is kept)")
    parser.add_argument("--learning-seeds", type=int, default=0,
                        help="also compare the files' learning (--learning) over this many seeds (0: no)")
    parser.add_argument("--learning", choices=list(LEARNING), default="ppo-cartpole",
                        help="which learning comparison: PPO on CartPole-v1, or SAC on Pendulum-v1 (with ours --bf16)")
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
            more = " ..." if new.count("\n") > 1 else ""
            print(f"  - {why}: {old.strip()!r} -> {new.strip().splitlines()[0]!r}{more}")
        print()
        if not args.no_speed:
            speed(work, [PAIRS[p] for p in args.pairs], args.threads, args.repeats)
        if args.learning_seeds:
            print()
            learning(work, args.learning, args.learning_seeds, args.learning_steps, args.threads[0])
        print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
