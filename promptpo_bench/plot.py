"""`promptpo-bench plot`: learning curves of any finished run directories, side by side, without a leaderboard.

One panel per task, one line per method (the algorithm, and for LLM methods the model): the IQM over seeds of the
return (or the board's score: normalised return, or success rate where a task is scored by success) at each x, with
its 95% percentile-bootstrap band, from the same statistics and the same run model as the leaderboard. Reference
runs (random, oracle, expert) are dashed horizontal lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BenchError
from .leaderboard import RunResult, load_run
from .statistics import CI_LEVEL, iqm, iqm_ci

X_AXES = {"env_steps": "environment steps", "tokens": "tokens (prompt + completion)"}
FORMATS = (".png", ".svg", ".pdf")
LOG_SPAN = 10.0  # a panel's x axis is logarithmic when its runs' ends differ by this factor or more
DPI = 110


@dataclass
class Figure:
    """What was drawn: the file, per task the labels of its lines, the tasks on a log x axis, the runs left out."""

    path: Path
    lines: dict[str, list[str]]
    log_x: list[str]
    skipped: list[str]


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Each path that is a finished run (has record.json), or the finished runs found anywhere below it."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise BenchError(f"{path} does not exist")
        if (path / "record.json").is_file():
            found.append(path)
            continue
        below = sorted(p.parent for p in path.rglob("record.json"))
        if not below:
            raise BenchError(f"{path} is not a run directory and holds none (no record.json in or below it)")
        found += below
    return list(dict.fromkeys(p.resolve() for p in found))


def default_out(run_dirs: list[Path], x: str, normalised: bool) -> Path:
    """A PNG next to the runs: in the folder that holds them all."""
    folder = Path(os.path.commonpath([str(d.parent) for d in run_dirs]))
    return folder / f"curves_{x}{'_normalised' if normalised else ''}.png"


def _use_log(runs: list[RunResult], x: str) -> bool:
    ends = np.array([r.end(x) for r in runs], dtype=float)
    ends = ends[ends > 0]
    return len(ends) > 1 and ends.max() / ends.min() >= LOG_SPAN


def plot_runs(paths: list[Path], x: str = "env_steps", out: Path | None = None, normalised: bool = False,
              log_x: bool | None = None, seed: int = 0) -> Figure:
    """Draw the runs found in `paths` into `out` (default: next to them); `log_x` None: log where ends span 10x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if x not in X_AXES:
        raise BenchError(f"--x must be one of {', '.join(X_AXES)}, got {x!r}")
    run_dirs = find_run_dirs(paths)
    out = Path(out) if out else default_out(run_dirs, x, normalised)
    if out.suffix.lower() not in FORMATS:
        raise BenchError(f"--out must end in {', '.join(FORMATS)}, got {out}")
    runs, skipped = [], [f"{p.parent.name} (unfinished: no record.json yet)" for path in paths if path.is_dir()
                         for p in sorted(path.rglob("curve.jsonl")) if not (p.parent / "record.json").is_file()]
    for run_dir in run_dirs:
        run = load_run(run_dir)
        if x == "tokens" and run.total_tokens == 0 and not run.is_reference:
            skipped.append(f"{run_dir.name} (no tokens: not an LLM run)")
        else:
            runs.append(run)
    learners = [r for r in runs if not r.is_reference]
    if not learners:
        raise BenchError("no run to plot" + (f" against {x} ({len(skipped)} runs used no tokens; try --x env_steps)"
                                             if skipped else " (only reference runs)"))
    tasks = sorted({r.task for r in learners})
    methods = sorted({r.method for r in runs})
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: cycle[i % len(cycle)] for i, m in enumerate(methods)}
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.7 * rows), squeeze=False)
    rng = np.random.default_rng(seed)
    lines: dict[str, list[str]] = {}
    logarithmic: list[str] = []
    for ax, task in zip(axes.flat, tasks):
        task_runs = [r for r in runs if r.task == task]
        scored = normalised and task_runs[0].scored
        y = task_runs[0].score_key if scored else "mean_return"  # a task scored by success plots its success rate
        lines[task] = []
        for method in methods:
            group = [r for r in task_runs if r.method == method]
            if not group:
                continue
            if group[0].is_reference:
                level = float(iqm([r.final_score if scored else r.final_return for r in group]))
                ax.axhline(level, color=colors[method], linestyle="--", linewidth=1.5, label=f"{method} (reference)")
                lines[task].append(f"{method} (reference)")
                continue
            grid = np.unique(np.concatenate([r.curve[x] for r in group]))
            values = np.array([r.values_at(grid, y, x) for r in group])
            point, low, high = iqm_ci(group[0].score(values) if scored else values, rng)
            label = f"{method} ({len(group)} run{'s' if len(group) > 1 else ''})"
            ax.step(grid, point, where="post", color=colors[method], label=label)
            ax.fill_between(grid, low, high, step="post", color=colors[method], alpha=0.2, linewidth=0)
            lines[task].append(label)
        if log_x if log_x is not None else _use_log([r for r in task_runs if not r.is_reference], x):
            ax.set_xscale("log")
            logarithmic.append(task)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel(X_AXES[x])
        ax.set_ylabel(("success rate" if y == "success_rate" else "normalised score") if scored
                      else "return" + (" (no reference scores)" if normalised else ""))
        if scored:  # a few catastrophic early evaluations would flatten everything else
            ax.set_ylim(max(ax.get_ylim()[0], -1.0), max(ax.get_ylim()[1], 1.1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    fig.suptitle(f"IQM over seeds, {CI_LEVEL}% bootstrap band", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return Figure(out, lines, logarithmic, skipped)
