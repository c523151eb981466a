"""Build the shipped leaderboard: reference runs for every NoiseWorld task, then submit them and the baseline runs.

    python benchmarks/leaderboard_entries.py [--ids ID ...]   # writes runs/reference/ where needed, leaderboard/

A reference run (the random or the optimal/expert policy as policy.py, scored in the sandbox) is written into
runs/reference/ only for a task whose board has no entry of it yet; the board's entry is then the one committed
copy of its policy.py. Those runs and every run directory of benchmarks/results/learning/ are submitted
(re-evaluated) like any user's run; runs already on the board are skipped (submit refuses duplicates).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from promptpo_bench import registry
from promptpo_bench.leaderboard import build
from promptpo_bench.entries import task_key
from promptpo_bench.reference_runs import ALGORITHMS, write_reference_run
from promptpo_bench.submit import Rejected, submit

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_RUNS = Path("runs/reference")  # scratch: the board's entries keep what is accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaderboard", type=Path, default=Path("leaderboard"))
    parser.add_argument("--ids", nargs="+", help="write reference runs for these tasks only (default: every task; "
                        "Glucose-Adult-v0's 50 episodes of 5,760 steps take about 20 minutes here)")
    args = parser.parse_args()
    reference_runs = []
    for spec in [registry.get(env_id) for env_id in args.ids] if args.ids else registry.specs():
        for policy in ("random", "optimal") if spec.expert_code else ("random",):
            if any(args.leaderboard.glob(f"entries/{task_key(spec.id, {})}/{ALGORITHMS[policy]}__*/verification.json")):
                continue  # on the board already
            run_dir = REFERENCE_RUNS / f"{spec.id}__{policy}"
            if not (run_dir / "record.json").is_file():
                record = write_reference_run(spec.id, policy, run_dir)
                print(f"reference run {run_dir.name}: mean return {record['final_eval']['mean_return']:.2f}")
            reference_runs.append(run_dir)
    start = time.time()
    accepted = skipped = 0
    for run_dir in reference_runs + sorted((RESULTS / "learning").iterdir()):
        try:
            entry = submit(run_dir, args.leaderboard)
            accepted += 1
            print(f"accepted {run_dir.name} -> {entry}")
        except Rejected as rejected:
            if "duplicate" not in str(rejected):
                raise
            skipped += 1
    print(f"{accepted} accepted, {skipped} already on the board, {time.time() - start:.0f} s of verification")
    result = build(args.leaderboard)
    print(f"leaderboard: {result['readme']}, {result['html']} ({result['entries']} entries)")
    print(f"reproduce: python benchmarks/leaderboard_entries.py{' --ids ' + ' '.join(args.ids) if args.ids else ''}")


if __name__ == "__main__":
    main()
