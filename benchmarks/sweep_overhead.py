"""Sweep overhead: wall time of the same sweep on the local backend and on a Ray instance on this machine.

Each repeat runs the grid from scratch, local then Ray (alternating which goes first), into fresh
directories, and times the whole `promptpo-bench sweep` command (start-up of Ray included). Prints each
time, the best of each backend and the ratio ray / local.

Reproduce (what was run for the README):
    .venv/bin/python benchmarks/sweep_overhead.py --repeats 2
A larger grid:
    .venv/bin/python benchmarks/sweep_overhead.py --seeds 1-4 --budget 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from promptpo_bench.sweep import parse_seeds

ROOT = Path(__file__).resolve().parents[1]


def timed_sweep(backend: str, out: Path, args: argparse.Namespace) -> float:
    """Wall seconds of one whole sweep command; fails loudly if any run failed."""
    command = [sys.executable, "-m", "promptpo_bench.cli", "sweep", "--algos", args.algos, "--tasks", args.tasks,
               "--seeds", args.seeds, "--budget", str(args.budget), "--jobs", str(args.jobs), "--out", str(out),
               "--backend", backend]
    for algo in args.algos.split(","):
        command += ["--args", f"{algo}=--eval-episodes 5 --periodic-eval-episodes 2"]
    t0 = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        sys.exit(f"{backend} sweep failed:\n{result.stdout}\n{result.stderr}")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ran"] == len(list(p for p in out.iterdir() if p.is_dir())), "a run was skipped"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default="ppo,dqn")
    parser.add_argument("--tasks", default="NoiseWorld-Board0-v0,NoiseWorld-Board1-v0")
    parser.add_argument("--seeds", default="1-2")
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="sweep-overhead-") as tmp:
        for i in range(args.repeats):
            for backend in (("local", "ray") if i % 2 == 0 else ("ray", "local")):
                seconds = timed_sweep(backend, Path(tmp) / f"{backend}{i}", args)
                times[backend].append(seconds)
                print(f"repeat {i}: {backend:5} {seconds:6.1f} s", flush=True)
    local, ray = min(times["local"]), min(times["ray"])
    runs = len(args.algos.split(",")) * len(args.tasks.split(",")) * len(parse_seeds(args.seeds))
    print(f"\n{args.algos} x {args.tasks} x seeds {args.seeds} ({runs} runs), budget {args.budget} steps, "
          f"--jobs {args.jobs}, {os.cpu_count()} cores")
    print(f"best of {args.repeats}: local {local:.1f} s, ray {ray:.1f} s, ratio ray/local {ray / local:.2f}")
    print("reproduce: " + shlex.join([".venv/bin/python", "benchmarks/sweep_overhead.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
