"""Speed of the classical baselines: training steps per second (SPS) of each file, as its record reports it.

SPS = training environment steps / training wall time (periodic evaluations excluded; they are also made
rare here). Each configuration runs as its own niced subprocess, one after another, so they share the
machine equally. The default configurations:
  ppo.py CartPole-v1   CleanRL's ppo.py defaults (4 envs x 128 steps), with and without our obs/reward
                       normalisation (CleanRL's ppo.py has none, so "--no-norm-*" is the like-for-like run)
  dqn.py CartPole-v1   CleanRL's dqn.py defaults (learning from step 10000, an update every 10 steps)
  ppo.py Hopper-v5     CleanRL's ppo_continuous_action.py defaults (1 env x 2048 steps)
  sac.py Hopper-v5     CleanRL's sac_continuous_action.py defaults, learning from step 1000
With --compare-threads each one also runs with torch's default thread count (--torch-threads 0).

CleanRL's own files: the only CleanRL on PyPI (cleanrl 0.4.8, 2021) is written for gym<0.22 (it imports
gym.wrappers.Monitor and stable_baselines3's VecEnvs), which cannot run beside Gymnasium 1.x and NumPy 2
in this environment, so no CleanRL figure is produced here. To compare, run CleanRL's current file in its
own environment on the same machine right after this benchmark, e.g.
    python cleanrl/ppo.py --env-id CartPole-v1 --total-timesteps 50000   (its last "SPS:" line)

Reproduce:
    .venv/bin/python benchmarks/baselines_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET_EVAL = ["--eval-every", str(10**9), "--periodic-eval-episodes", "1", "--eval-episodes", "1"]
CONFIGS = [
    ("ppo", "CartPole-v1", ["--total-timesteps", "50000"], "CleanRL ppo.py defaults, with norm obs/reward"),
    ("ppo", "CartPole-v1", ["--total-timesteps", "50000", "--no-norm-obs", "--no-norm-reward"],
     "CleanRL ppo.py defaults, like-for-like (no normalisation)"),
    ("dqn", "CartPole-v1", ["--total-timesteps", "30000"], "CleanRL dqn.py defaults (learning from 10k)"),
    ("ppo", "Hopper-v5", ["--total-timesteps", "20480"], "CleanRL ppo_continuous_action.py defaults"),
    ("sac", "Hopper-v5", ["--total-timesteps", "4000", "--learning-starts", "1000"],
     "CleanRL sac_continuous_action.py defaults, learning from step 1000"),
]


def run(algo: str, env_id: str, extra: list[str], threads: int) -> tuple[int | None, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["nice", "-n", "19", sys.executable, str(ROOT / "algorithms" / f"{algo}.py"), "--env-id", env_id,
               *extra, *QUIET_EVAL, "--torch-threads", str(threads), "--run-dir", str(Path(tmp) / "run")]
        start = time.time()
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        wall = time.time() - start
        if result.returncode != 0:
            return None, wall, (result.stderr.strip().splitlines() or ["?"])[-1]
        record = json.loads((Path(tmp) / "run" / "record.json").read_text())
        return int(record["totals"]["sps"]), wall, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare-threads", action="store_true", help="also run with torch's default threads")
    parser.add_argument("--only", nargs="*", help="only these algorithms")
    args = parser.parse_args()
    print("reproduce: " + shlex.join([".venv/bin/python", "benchmarks/baselines_speed.py", *sys.argv[1:]]))
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "?"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}, torch {torch_version}, Python {platform.python_version()}")
    print("CleanRL's own files: not run (PyPI's cleanrl 0.4.8 needs gym<0.22; see the docstring)\n")
    rows = []
    for algo, env_id, extra, note in CONFIGS:
        if args.only and algo not in args.only:
            continue
        for threads in ([1, 0] if args.compare_threads else [1]):
            sps, wall, error = run(algo, env_id, extra, threads)
            rows.append((f"{algo}.py", env_id, "1" if threads == 1 else "default", str(sps) if sps else "FAILED",
                         f"{wall:.0f}s", error or note))
            print("  " + "  ".join(rows[-1]), flush=True)
    header = ("file", "env", "torch threads", "SPS", "wall", "configuration")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print()
    for row in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    main()
