"""The leaderboard: verified entries to curves, tables and aggregates (rliable), rendered as README, HTML and PNGs.

Scores are normalised per task with the registry's reference returns (random = 0, optimal/expert = 1), or are the
success rate where the registry scores a task by success (Meta-World, as the paper ranks it); a task without either
shows raw returns and stays out of the family aggregates until the registry has references.
Curves and per-task numbers are interquartile means (IQM) over seeds with 95% percentile-bootstrap bands;
family aggregates are rliable's IQM, mean and optimality gap with stratified-bootstrap CIs and its
performance profiles (all computed in statistics.py). Everything is rebuilt from `entries/` alone, with fixed
bootstrap seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import registry, statistics
from .errors import BenchError
from .registry import ReferenceScores
from .entries import DEFAULT_BOARD, entries, task_key
from .records import hyperparameter_flags
from .render import Table, pages
from .statistics import CI_LEVEL, aggregate, balanced_matrix, iqm, iqm_ci, median_ci
from .tracking import start_wandb

BUDGETS = (10_000, 100_000, 1_000_000)  # environment steps at which the tables always compare methods
BUDGET_SLACK = 0.95  # a run "reaches" budget B with at least 0.95 B steps (runs stop at a whole batch: PPO 98,304)
REFERENCE_ALGORITHMS = ("random", "oracle", "expert")  # rows that anchor the scale; no learning curve
THRESHOLDS = (0.5, 0.9)  # "steps to reach" these fractions of the optimum (registry.target_return), or success rates
PROFILE_TAUS = np.linspace(-0.1, 1.1, 41)
DPI = 100


@dataclass
class RunResult:
    """One verified entry (or, for `promptpo-bench plot`, any finished run directory), with what the board needs
    from its record."""

    entry: Path
    record: dict[str, Any]
    verification: dict[str, Any]
    reference: ReferenceScores | None
    family: str

    @property
    def task(self) -> str:
        return task_key(self.record["env_id"], self.record["env_kwargs"])

    @property
    def algorithm(self) -> str:
        return self.record["algorithm"]

    @property
    def method(self) -> str:
        """The algorithm, and for LLM methods the model that answered and the description variant it read; for
        the others the hyperparameters their command set (e.g. "ppo (learning-rate 1e-3)").

        Runs that read different information, or learn with other hyperparameters, never share a row.
        """
        llm = self.record.get("llm") or {}
        if not llm.get("model"):
            flags = [] if self.is_reference else hyperparameter_flags(self.record["command"])
            return f"{self.algorithm} ({', '.join(flags)})" if flags else self.algorithm
        variant = self.record["config"].get("description_variant") or "unrecorded"
        return f"{self.algorithm} ({llm['model']}, {variant} description)"

    @property
    def is_reference(self) -> bool:
        return self.algorithm in REFERENCE_ALGORITHMS

    @property
    def seed(self) -> int:
        return int(self.record["seed"])

    @property
    def total_steps(self) -> int:
        return int(self.record["totals"]["env_steps"])

    @property
    def stopped_early(self) -> bool:
        """Whether the run's early stop ended it before its budget, its policy holding the target (baselines.py)."""
        return bool(self.record["totals"].get("stopped_early"))

    @property
    def end_steps(self) -> int:
        """How far the run counts: its planned budget if it stopped early (its last evaluation stands for the rest of
        it, as a converged run's would), else the steps it ran."""
        return int(self.record["totals"]["planned_env_steps"]) if self.stopped_early else self.total_steps

    @property
    def budget(self) -> int:
        """The run's step budget to two significant digits (99,840 steps of PPO -> 100k), 0 for references."""
        return 0 if self.is_reference else int(float(f"{self.end_steps:.2g}"))

    @property
    def total_tokens(self) -> int:
        totals = self.record["totals"]
        return int(totals["prompt_tokens"] + totals["completion_tokens"])

    @property
    def cost_usd(self) -> float | None:
        return self.record["totals"].get("cost_usd")

    @property
    def final_return(self) -> float:
        return float(self.record["final_eval"]["mean_return"])

    @property
    def final_success(self) -> float | None:
        return self.record["final_eval"].get("success_rate")

    @cached_property
    def curve(self) -> dict[str, np.ndarray]:
        """Curve columns: env_steps, tokens (prompt + completion), mean_return, success_rate (NaN where absent)."""
        points = self.record["curve"]
        column = lambda key: np.array([np.nan if p.get(key) is None else p[key] for p in points], dtype=np.float64)
        return {"env_steps": column("env_steps"), "mean_return": column("mean_return"),
                "success_rate": column("success_rate"),
                "tokens": np.array([p.get("prompt_tokens", 0) + p.get("completion_tokens", 0) for p in points],
                                   dtype=np.float64)}

    def end(self, x: str = "env_steps") -> int:
        """How far the run counts along the x-axis `x` (env_steps or tokens)."""
        return self.end_steps if x == "env_steps" else self.total_tokens

    def values_at(self, grid: np.ndarray, y: str = "mean_return", x: str = "env_steps") -> np.ndarray:
        """The curve as a step function of `x` on `grid`: the latest point at or before each x, NaN outside the run."""
        return statistics.step_values(self.curve[x], self.curve[y], grid, self.end(x))

    @property
    def score_key(self) -> str:
        """The final-evaluation and curve field the run is scored by: success_rate or mean_return (registry)."""
        return registry.score_key(self.record["env_id"])

    @property
    def scored(self) -> bool:
        """Whether the run has a score on a common scale (a success rate, or references to normalise its return)."""
        return self.score_key == "success_rate" or self.reference is not None

    @property
    def final_score(self) -> float:
        """The score of the final evaluation (NaN where a task scored by success has no success rate)."""
        value = self.record["final_eval"].get(self.score_key)
        return np.nan if value is None else float(self.score(value))

    def score(self, value: float | np.ndarray) -> float | np.ndarray:
        """Score of a value of the run's `score_key`: a success rate as it is, a return normalised (random = 0,
        optimal = 1), or the return itself without references."""
        if self.score_key == "success_rate" or self.reference is None:
            return value
        return registry.normalised(value, self.reference)

    def shown_return(self, value: float | np.ndarray) -> float | np.ndarray:
        """A return as the return panel shows it: normalised where the run is scored by it, else raw."""
        return self.score(value) if self.score_key == "mean_return" else value

    def reaches(self, budget: int) -> bool:
        return self.end_steps >= BUDGET_SLACK * budget

    def score_at(self, budget: int) -> float:
        """Score (or return) of the run's curve at `budget` steps (at its end if it stopped just short)."""
        return float(self.score(statistics.score_at(self.curve["env_steps"], self.curve[self.score_key], budget,
                                                    self.end_steps)))

    def steps_to(self, fraction: float) -> float:
        """First curve env_steps whose score reaches `fraction` of the optimum: a return of
        `registry.target_return`, or a success rate of `fraction` (inf if never; NaN where the task has no reference
        or an optimum no better than random, of which a fraction would mean nothing)."""
        if self.score_key == "success_rate":
            return statistics.steps_to(self.curve["env_steps"], self.curve["success_rate"], fraction)
        target = None if self.reference is None else registry.target_return(fraction, self.reference)
        if target is None:
            return np.nan
        return statistics.steps_to(self.curve["env_steps"], self.curve["mean_return"], target)


@lru_cache(maxsize=None)
def _reference(env_id: str, kwargs_json: str) -> ReferenceScores | None:
    if not registry.is_registered(env_id):
        return None
    return registry.reference_scores(env_id, **json.loads(kwargs_json))


def load_run(directory: str | Path, verification: dict[str, Any] | None = None) -> RunResult:
    """A board entry or finished run directory, with the registry's reference scores and family of its task."""
    directory = Path(directory)
    record = json.loads((directory / "record.json").read_text())
    env_id = record["env_id"]
    reference = _reference(env_id, json.dumps(record["env_kwargs"], sort_keys=True))
    return RunResult(directory, record, verification or {}, reference,
               registry.get(env_id).family if registry.is_registered(env_id) else "other")


def load_runs(board: str | Path = DEFAULT_BOARD) -> list[RunResult]:
    """Every entry of the board, with the registry's reference scores and family of its task."""
    return [load_run(entry, json.loads((entry / "verification.json").read_text())) for entry in entries(board)]


def checkpoints(runs: list[RunResult]) -> list[int]:
    """Steps at which tables and aggregates compare methods: the fixed BUDGETS and every run's own budget (SAC's
    200k, MiniGrid's 20k), so each method is also compared where its runs end; a budget within the slack of one
    already there (PPO's 98,304 steps of 100k) is that one."""
    points = list(BUDGETS)
    for budget in sorted({r.budget for r in runs if not r.is_reference}):
        if not any(BUDGET_SLACK * point <= budget <= point / BUDGET_SLACK for point in points):
            points.append(budget)
    return sorted(points)


def score_matrix(runs: list[RunResult], budget: int) -> tuple[np.ndarray, list[str]]:
    """(runs x tasks) scores at `budget` of one method over the tasks with scores where it has runs.

    rliable needs the same number of runs on every task: the k lowest seeds of each task are used, k the smallest
    count over the tasks.
    """
    by_task: dict[str, list[float]] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        if run.scored and run.reaches(budget):
            by_task.setdefault(run.task, []).append(run.score_at(budget))
    return balanced_matrix(by_task)


# ---------------------------------------------------------------- tables

def _steps(x: float) -> str:
    if not np.isfinite(x):
        return "not reached" if x == np.inf else "—"
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if x >= 0.9995 * scale:  # 999,936 steps is "1M", not "1e+03k"
            return f"{x / scale:.3g}{unit}"
    return f"{x:.0f}"


def _num(x: float | None, digits: int = 3) -> tuple[str, Any]:
    if x is None or not np.isfinite(x):
        return "—", None
    return (f"{x:.{digits}f}" if abs(x) < 100 else f"{x:,.0f}"), float(x)


def _with_ci(point: float, low: float, high: float, n: int, digits: int = 3) -> tuple[str, Any]:
    text, key = _num(point, digits)
    if key is not None and n > 1:
        text += f" [{_num(low, digits)[0]}, {_num(high, digits)[0]}]"
    return text, key


def _groups(runs: list[RunResult]) -> dict[tuple[str, int], list[RunResult]]:
    """Rows of a task table: runs of one method with one budget."""
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for run in sorted(runs, key=lambda r: (not r.is_reference, r.method, r.budget, r.seed)):
        groups.setdefault((run.method, run.budget), []).append(run)
    return groups


def task_table(task: str, runs: list[RunResult], rng: np.random.Generator) -> Table:
    """One row per method and budget: final score, scores at the checkpoints, steps to 50%/90%, tokens, seeds."""
    normalised = runs[0].scored
    budgets = [b for b in checkpoints(runs) if any(r.reaches(b) for r in runs)]
    has_success = any(r.final_success is not None for r in runs)
    has_llm = any(r.total_tokens > 0 for r in runs)
    unit = "score" if normalised else "return"
    headers = ["method", "budget", "seeds", "final return (IQM, 95% CI)"]
    headers += ["final score (IQM, 95% CI)"] if normalised else []
    headers += ["success rate"] if has_success else []
    headers += [f"{unit} @ {_steps(b)}" for b in budgets]
    headers += [f"steps to {t:.0%}" for t in THRESHOLDS] if normalised else []
    headers += ["tokens (median)", "cost USD (median)"] if has_llm else []
    headers += ["verified"]
    table = Table(f"{task}", headers, anchor=task)
    for (method, budget), group in _groups(runs).items():
        finals = np.array([r.final_return for r in group])
        row = [(method, method), (_steps(budget) if budget else "reference", budget), (str(len(group)), len(group)),
               _with_ci(*(v[0] for v in iqm_ci(finals, rng)), len(group))]
        if normalised:
            scores = np.array([r.final_score for r in group])
            row.append(_with_ci(*(v[0] for v in iqm_ci(scores, rng)), len(group)))
        if has_success:
            rates = [r.final_success for r in group if r.final_success is not None]
            row.append(_num(float(np.mean(rates)) if rates else None, 2))
        for b in budgets:
            covering = [r for r in group if r.reaches(b)]
            values = np.array([r.score_at(b) for r in covering])
            row.append(_num(float(iqm(values))) if covering and not group[0].is_reference
                       else ("", None))
        if normalised:
            for t in THRESHOLDS:
                if group[0].is_reference:
                    row.append(("", None))
                    continue
                steps, low, high = median_ci([r.steps_to(t) for r in group], rng)
                spread = len(group) > 1 and not np.isnan(steps) and low != high  # all seeds alike: no interval
                ci = f" [{_steps(low)}, {_steps(high)}]" if spread else ""
                row.append((_steps(steps) + ci, steps))
        if has_llm:
            tokens = float(np.median([r.total_tokens for r in group]))
            costs = [r.cost_usd for r in group if r.cost_usd is not None]
            row += [_num(tokens, 0) if tokens else ("—", None), _num(float(np.median(costs)) if costs else None, 2)]
        modes = sorted({r.verification["mode"] for r in group})
        row.append(("/".join(modes), "/".join(modes)))
        table.rows.append(row)
    return table


def family_table(family: str, runs: list[RunResult]) -> tuple[Table, dict[int, dict[str, np.ndarray]]]:
    """rliable aggregates per method and budget over the family's tasks with references; also the score matrices."""
    table = Table(f"{family}: aggregate over tasks", ["method", "at steps", "tasks", "runs per task",
                                                      "IQM (95% CI)", "mean (95% CI)", "optimality gap (95% CI)"],
                  anchor=f"family-{family}")
    matrices: dict[int, dict[str, np.ndarray]] = {}
    methods = sorted({r.method for r in runs if not r.is_reference})
    for budget in checkpoints(runs):
        score_dict, tasks = {}, {}
        for method in methods:
            matrix, names = score_matrix([r for r in runs if r.method == method], budget)
            if len(names):
                score_dict[method], tasks[method] = matrix, names
        if not score_dict:
            continue
        matrices[budget] = score_dict
        for method, result in aggregate(score_dict).items():
            n_runs = score_dict[method].shape[0]
            table.rows.append([(method, method), (_steps(budget), budget), (str(len(tasks[method])), len(tasks[method])),
                               (str(n_runs), n_runs),
                               *(_with_ci(*result[name], n_runs)  # one run per task: the bootstrap has no spread
                                 for name in ("iqm", "mean", "optimality_gap"))])
    return table, matrices


# ---------------------------------------------------------------- plots

def _colors(methods: list[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {m: cycle[i % len(cycle)] for i, m in enumerate(methods)}


def plot_task(task: str, runs: list[RunResult], path: Path, rng: np.random.Generator) -> bool:
    """Return (and success rate, and return vs tokens for LLM methods) vs env steps; False if nothing learns here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learners = [r for r in runs if not r.is_reference]
    if not learners:
        return False
    unit = "normalised score" if runs[0].reference is not None and runs[0].score_key == "mean_return" else "return"
    panels = [("env_steps", "mean_return", "environment steps", unit)]
    if any(np.isfinite(r.curve["success_rate"]).any() for r in learners):
        panels.append(("env_steps", "success_rate", "environment steps", "success rate"))
    if any(r.total_tokens > 0 for r in learners):
        panels.append(("tokens", "mean_return", "tokens (prompt + completion)", unit))
    methods = sorted({r.method for r in runs})
    colors = _colors(methods)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, (x, y, xlabel, ylabel) in zip(axes[0], panels):
        for method in methods:
            group = [r for r in runs if r.method == method]
            if group[0].is_reference:
                if y == "mean_return":
                    level = float(iqm([r.shown_return(r.final_return) for r in group]))
                    ax.axhline(level, color=colors[method], linestyle="--", linewidth=1, label=f"{method} (reference)")
                continue
            group = [r for r in group if x == "env_steps" or r.total_tokens > 0]
            if not group:
                continue
            grid = np.unique(np.concatenate([r.curve[x] for r in group]))
            values = np.array([r.values_at(grid, y, x) for r in group])
            point, low, high = iqm_ci(values if y == "success_rate" else group[0].shown_return(values), rng)
            label = f"{method} ({len(group)} run{'s' if len(group) > 1 else ''})"
            ax.step(grid, point, where="post", color=colors[method], label=label)
            if len(group) > 1:  # one run has no spread to show
                ax.fill_between(grid, low, high, step="post", color=colors[method], alpha=0.2, linewidth=0)
        if x == "env_steps":  # interactions span decades (a PromptPO run, 1M-step baselines): log axis
            first = min((r.curve[x][r.curve[x] > 0].min() for r in learners if (r.curve[x] > 0).any()), default=None)
            if first is not None:
                ax.set_xscale("log")
                ax.set_xlim(left=first / 2)  # the step from the evaluation at 0 shows as the curve's left end
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ylabel == "normalised score":  # a few catastrophic early evaluations would flatten everything else
            low_end = max(ax.get_ylim()[0], -1.0)
            ax.set_ylim(low_end, max(ax.get_ylim()[1], 1.1))
    axes[0][0].set_title(f"{task}: IQM over seeds, {CI_LEVEL}% bootstrap band", fontsize=9)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def plot_profiles(family: str, matrices: dict[int, dict[str, np.ndarray]], path: Path, scale: str) -> None:
    """rliable performance profiles (fraction of runs with score > tau, 95% CIs), one panel per budget; `scale`
    names the scores' scale in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = _colors(sorted({m for score_dict in matrices.values() for m in score_dict}))
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.2 * len(matrices), 3.4), squeeze=False)
    for ax, (budget, score_dict) in zip(axes[0], matrices.items()):
        profiles, cis = statistics.performance_profiles(score_dict, PROFILE_TAUS)
        for method in sorted(score_dict):
            ax.plot(PROFILE_TAUS, profiles[method], color=colors[method], label=method)
            ax.fill_between(PROFILE_TAUS, cis[method][0], cis[method][1], color=colors[method], alpha=0.2,
                            linewidth=0)
        ax.set_xlabel("score τ")
        ax.set_title(f"at {_steps(budget)} steps", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of runs with score > τ")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{family}: performance profiles ({scale})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def build(board: str | Path = DEFAULT_BOARD, track: bool = False, wandb_project: str = "promptpo-bench",
          wandb_entity: str | None = None) -> dict[str, Any]:
    """Render README.md, index.html and plots/*.png of a board from its entries; optionally log them to W&B."""
    board = Path(board)
    runs = load_runs(board)
    if not runs:
        raise BenchError(f"{board} has no entries (submit a run first: promptpo-bench submit RUN_DIR)")
    plots = board / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    for old in plots.glob("*.png"):
        old.unlink()
    sections: list[tuple[str, list[tuple[Table, str | None]]]] = []  # (family, [(table, image)])
    tables: list[Table] = []
    for family in sorted({r.family for r in runs}):
        family_runs = [r for r in runs if r.family == family]
        items: list[tuple[Table, str | None]] = []
        aggregate_table, matrices = family_table(family, family_runs)
        if aggregate_table.rows:
            image = f"plots/{family}__profiles.png"
            by_success = {r.score_key == "success_rate" for r in family_runs}
            scale = ("success rate" if by_success == {True} else "random = 0, optimal = 1" if by_success == {False}
                     else "success rate, or return with random = 0, optimal = 1")
            plot_profiles(family, matrices, board / image, scale)
            items.append((aggregate_table, image))
        for task in sorted({r.task for r in family_runs}):
            task_runs = [r for r in family_runs if r.task == task]
            rng = np.random.default_rng(0)  # one per task: a run landing on one task never moves another's CIs
            table = task_table(task, task_runs, rng)
            image = f"plots/{task}.png"
            items.append((table, image if plot_task(task, task_runs, board / image, rng) else None))
        tables += [t for t, _ in items if t.headers]
        sections.append((family, items))
    n_tasks = len({r.task for r in runs})
    intro = (f"{len(runs)} verified entries on {n_tasks} tasks. Generated by `promptpo-bench leaderboard build` "
             "from `entries/`; do not edit by hand.")
    markdown, page = pages(intro, sections)
    (board / "README.md").write_text(markdown)
    (board / "index.html").write_text(page)
    images = sorted(str(p.relative_to(board)) for p in plots.glob("*.png"))
    if track:
        _track(board, tables, images, wandb_project, wandb_entity)
    return {"readme": board / "README.md", "html": board / "index.html", "plots": images, "entries": len(runs),
            "tables": tables}


def _track(board: Path, tables: list[Table], images: list[str], project: str, entity: str | None) -> None:
    """Log every table and plot of the board to W&B (WANDB_MODE=offline works)."""
    import wandb

    run = start_wandb(project, f"leaderboard-{board.name}", {}, entity=entity, job_type="leaderboard")
    logged: dict[str, Any] = {}
    for table in tables:
        logged[f"leaderboard/{table.anchor}"] = wandb.Table(columns=table.headers,
                                                            data=[[text for text, _ in row] for row in table.rows])
    for image in images:
        logged[f"plots/{Path(image).stem}"] = wandb.Image(str(board / image))
    run.log(logged)
    run.finish()
