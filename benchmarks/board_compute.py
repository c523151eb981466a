"""How long the board's baseline runs took: per sweep and algorithm, the runs and their one-core hours.

    python benchmarks/board_compute.py [--leaderboard leaderboard]

Reads every learning entry on the board (what `submit` accepted; reference rows are left out) and groups it by the
sweep whose run directory made it (`benchmarks/results/sweeps/NAME/`; any other run is grouped under its task
family). Training is `totals.train_time_s` summed; "with evaluations" is `wall_time_s` summed, the run from start
to its final evaluation. Both are one-core hours: the runs went two at a time on a 2-core machine.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

from promptpo_bench.leaderboard import RunResult, load_runs


def group_of(run: RunResult) -> str:
    """The sweep whose run directory holds this run, else `other (FAMILY)`."""
    match = re.search(r"results/sweeps/([\w-]+)/", run.record["command"])
    return match.group(1) if match else f"other ({run.family})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaderboard", type=Path, default=Path("leaderboard"), help="the board's folder")
    args = parser.parse_args()
    groups: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for run in load_runs(args.leaderboard):
        if run.is_reference:
            continue
        group = groups[(group_of(run), run.algorithm)]
        group[0] += 1
        group[1] += run.record["totals"]["train_time_s"] / 3600
        group[2] += run.record["wall_time_s"] / 3600
    print("| sweep | algorithm | runs | one-core hours of training | with evaluations |")
    print("| --- | --- | --- | --- | --- |")
    for (sweep, algorithm), (runs, train, wall) in sorted(groups.items()):
        print(f"| {sweep} | {algorithm} | {runs} | {train:.2f} | {wall:.2f} |")
    runs, train, wall = (sum(group[i] for group in groups.values()) for i in range(3))
    print(f"| all | | {runs} | {train:.2f} | {wall:.2f} |")
    print(f"reproduce: python benchmarks/board_compute.py --leaderboard {args.leaderboard}")


if __name__ == "__main__":
    main()
