"""Learning benchmark of the classical baselines: final held-out return as a fraction of the exact optimum.

Runs `algorithms/{ppo,dqn,sac}.py` (one subprocess per task x algorithm x seed, niced), keeps every
run directory (record.json, curve.jsonl, model.pt: the first leaderboard entries), then prints per run
the final evaluation (50 held-out episodes), the fraction of the optimum (final / optimal), the
normalised score ((final - random) / (optimal - random)) and the environment steps at which a periodic
evaluation (10 held-out episodes) first reached 90% of the optimum ("-" if never).

Reproduce (what was run for the README):
    .venv/bin/python benchmarks/baselines_learning.py --suite noiseworld --steps 100000 --seeds 1 2 3
Others:
    .venv/bin/python benchmarks/baselines_learning.py --suite noiseworld --steps 1000000
    .venv/bin/python benchmarks/baselines_learning.py --suite mujoco --steps 100000
    .venv/bin/python benchmarks/baselines_learning.py --suite minigrid --steps 20000 --seeds 1
    .venv/bin/python benchmarks/baselines_learning.py --summarize-only --out benchmarks/results/learning
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = {
    "noiseworld": [(algo, f"NoiseWorld-Board{b}-v0") for b in range(4) for algo in ("ppo", "dqn")],
    "mujoco": [(algo, env) for env in ("InvertedDoublePendulum-v5", "Hopper-v5") for algo in ("sac", "ppo")],
    "minigrid": [(algo, f"MiniGrid-{task}") for task in ("Empty-8x8-v0", "FourRooms-v0", "DoorKey-8x8-v0",
                 "MultiRoom-N4-S5-v1", "LavaCrossingS9N2-v0", "KeyCorridorS3R3-v0", "Unlock-v0") for algo in ("ppo", "dqn")],
}


def run_dir(out: Path, algo: str, env_id: str, steps: int, seed: int) -> Path:
    return out / f"{env_id}__{algo}__{steps}__seed{seed}"


def command(algo: str, env_id: str, steps: int, seed: int, directory: Path, extra: list[str]) -> list[str]:
    return ["nice", "-n", "19", sys.executable, str(ROOT / "algorithms" / f"{algo}.py"), "--env-id", env_id,
            "--seed", str(seed), "--total-timesteps", str(steps), "--run-dir", str(directory), *extra]


def run_one(job) -> tuple[Path, int, float]:
    cmd, directory = job
    if (directory / "record.json").is_file():
        return directory, 0, 0.0
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("curve.jsonl",):  # a rerun of an interrupted run starts its curve afresh
        (directory / stale).unlink(missing_ok=True)
    start = time.time()
    with open(directory / "stdout.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return directory, rc, time.time() - start


def reference(env_id: str):
    try:
        import promptpo_bench
        from promptpo_bench import registry

        if registry.is_registered(env_id):
            return promptpo_bench.reference_scores(env_id)
    except Exception:  # noqa: BLE001
        pass
    return None


def summarize(directories: list[Path]) -> None:
    rows = []
    for d in directories:
        record_path = d / "record.json"
        if not record_path.is_file():
            rows.append((d.name, "not finished", "", "", "", "", ""))
            continue
        rec = json.loads(record_path.read_text())
        ref = reference(rec["env_id"])
        final = rec["final_eval"]["mean_return"]
        frac = norm = reach = "n/a"
        if ref is not None:
            frac = f"{final / ref.optimal:.3f}"
            norm = f"{(final - ref.random) / (ref.optimal - ref.random):.3f}"
            hit = [p["env_steps"] for p in rec["curve"] if p["mean_return"] >= 0.9 * ref.optimal]
            reach = str(hit[0]) if hit else "-"
        size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
        rows.append((str(d.relative_to(ROOT) if d.is_relative_to(ROOT) else d), f"{final:.2f}", frac, norm, reach,
                     f"{rec['totals'].get('sps', '')}", f"{size / 1024:.0f} KiB"))
    header = ("run directory", "final return", "frac of optimum", "normalised", "steps to 90%", "train SPS", "size")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    # per task x algorithm: mean over seeds
    groups: dict[tuple[str, str], list[dict]] = {}
    for d in directories:
        if (d / "record.json").is_file():
            rec = json.loads((d / "record.json").read_text())
            groups.setdefault((rec["env_id"], rec["algorithm"]), []).append(rec)
    print("\nmean over seeds:")
    for (env_id, algo), recs in groups.items():
        ref = reference(env_id)
        finals = [r["final_eval"]["mean_return"] for r in recs]
        mean = sum(finals) / len(finals)
        extra = ""
        if ref is not None:
            extra = (f"  frac of optimum {mean / ref.optimal:.3f}  normalised "
                     f"{(mean - ref.random) / (ref.optimal - ref.random):.3f}  (optimal {ref.optimal:.2f}, "
                     f"random {ref.random:.2f})")
        print(f"  {env_id:28s} {algo:4s} seeds={len(recs)} final return {mean:10.2f}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="noiseworld")
    parser.add_argument("--algos", nargs="*", help="only these algorithms (default: the suite's)")
    parser.add_argument("--envs", nargs="*", help="only these env ids (default: the suite's)")
    parser.add_argument("--steps", type=int, default=100_000, help="--total-timesteps of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "learning")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (each uses one torch thread)")
    parser.add_argument("--summarize-only", action="store_true", help="print the table of finished runs only")
    parser.add_argument("extra", nargs="*", help="extra flags for every run, after --")
    args = parser.parse_args()
    jobs = []
    for algo, env_id in SUITES[args.suite]:
        if (args.algos and algo not in args.algos) or (args.envs and env_id not in args.envs):
            continue
        for seed in args.seeds:
            d = run_dir(args.out.resolve(), algo, env_id, args.steps, seed)
            jobs.append((command(algo, env_id, args.steps, seed, d, args.extra), d))
    print("reproduce: " + shlex.join([".venv/bin/python", "benchmarks/baselines_learning.py", *sys.argv[1:]]))
    if not args.summarize_only:
        start = time.time()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for directory, rc, seconds in pool.map(run_one, jobs):
                status = "ok" if rc == 0 else f"FAILED rc={rc} (see {directory / 'stdout.log'})"
                print(f"  {directory.name}: {status} in {seconds:.0f}s", flush=True)
        print(f"all runs: {time.time() - start:.0f}s wall on {os.cpu_count()} cores")
    summarize([d for _, d in jobs])


if __name__ == "__main__":
    main()
