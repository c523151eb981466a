"""The suite's statistics, as functions of arrays (in the manner of rliable's library.py): arrays in, estimates out.

The leaderboard and `promptpo-bench plot`/`show` use these and nothing else, so a number means the same wherever it
appears. Per-task estimates are interquartile means (IQM) over seeds with 95% percentile-bootstrap CIs; family
aggregates and performance profiles are rliable's, with stratified-bootstrap CIs and fixed bootstrap draws.
A curve is a step function: its value at x is that of its latest point at or before x.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Sequence

import numpy as np

CI_LEVEL = 95
BOOTSTRAP_REPS = 2000  # per-task bootstrap (vectorised here)
AGGREGATE_REPS, PROFILE_REPS = 1000, 500  # rliable's bootstraps (its Python loops dominate the leaderboard's build)


def ci95(values: Sequence[float]) -> float | None:
    """Half-width of the 95% Student-t confidence interval of the mean of `values`; None for fewer than two (one
    value has no spread to estimate)."""
    values = np.asarray(values, dtype=np.float64)
    k = len(values)
    if k < 2:
        return None
    from scipy import stats  # here, not at the top: scipy.stats takes ~1 s to import, and `tasks` needs none of it

    return float(stats.t.ppf(0.975, k - 1) * values.std(ddof=1) / np.sqrt(k))


def iqm(values: np.ndarray, axis: int | None = 0) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% (scipy's 25%-trimmed mean, as rliable's aggregate_iqm)."""
    from scipy import stats

    return stats.trim_mean(np.asarray(values, dtype=np.float64), 0.25, axis=axis)


def iqm_ci(values: np.ndarray, rng: np.random.Generator, reps: int = BOOTSTRAP_REPS) -> tuple[np.ndarray, ...]:
    """IQM over runs (axis 0) of each column, with the 95% percentile-bootstrap CI over runs; NaNs are skipped."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    point, low, high = (np.full(values.shape[1], np.nan) for _ in range(3))
    valid = ~np.isnan(values)
    for mask in np.unique(valid.T, axis=0):  # columns with the same runs present are bootstrapped together
        if not mask.any():
            continue
        cols = np.nonzero((valid.T == mask).all(axis=1))[0]
        sample = values[mask][:, cols]
        point[cols] = iqm(sample, axis=0)
        boot = iqm(sample[rng.integers(0, len(sample), (reps, len(sample)))], axis=1)
        low[cols], high[cols] = np.percentile(boot, [(100 - CI_LEVEL) / 2, (100 + CI_LEVEL) / 2], axis=0)
    return point, low, high


def median_ci(values: Sequence[float], rng: np.random.Generator, reps: int = BOOTSTRAP_REPS) -> tuple[float, ...]:
    """Median over runs with its 95% percentile-bootstrap CI. Values may be inf (e.g. steps to a target never
    reached); the CI's ends are bootstrap medians themselves, never interpolated towards inf."""
    values = np.asarray(values, dtype=np.float64)
    boot = np.median(values[rng.integers(0, len(values), (reps, len(values)))], axis=1)
    low, high = np.percentile(boot, [(100 - CI_LEVEL) / 2, (100 + CI_LEVEL) / 2], method="nearest")
    return float(np.median(values)), float(low), float(high)


def step_values(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray, end: float) -> np.ndarray:
    """A curve (points `xs`, `ys`, xs sorted) as a step function on `grid`: NaN before its first point and past
    `end` (where the run stopped, or its last point if later)."""
    xs, ys, grid = np.asarray(xs), np.asarray(ys), np.asarray(grid)
    index = np.searchsorted(xs, grid, side="right") - 1
    values = np.where(index >= 0, ys[np.clip(index, 0, None)], np.nan)
    return np.where(grid <= max(end, xs[-1]), values, np.nan)


def score_at(xs: np.ndarray, ys: np.ndarray, budget: float, end: float) -> float:
    """The curve's value at `budget` (at `end` if the run stopped before it)."""
    return float(step_values(xs, ys, np.array([min(budget, end)]), end)[0])


def steps_to(xs: np.ndarray, ys: np.ndarray, target: float) -> float:
    """The first x whose y reaches `target` (inf if none does)."""
    hit = np.nonzero(np.asarray(ys) >= target)[0]
    return float(np.asarray(xs)[hit[0]]) if len(hit) else np.inf


def balanced_matrix(scores_by_task: dict[str, list[float]]) -> tuple[np.ndarray, list[str]]:
    """(runs x tasks) matrix from per-task score lists: rliable needs the same number of runs on every task, so the
    first k of each list are kept, k the shortest list's length."""
    tasks = sorted(scores_by_task)
    if not tasks:
        return np.empty((0, 0)), []
    k = min(len(v) for v in scores_by_task.values())
    return np.array([scores_by_task[t][:k] for t in tasks]).T, tasks


@contextmanager
def _rliable_seeded():
    """Fixed bootstrap draws for rliable: arch's bootstraps also read NumPy's global RNG. The caller's state is kept."""
    state = np.random.get_state()
    np.random.seed(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch's notice about random_state
            yield
    finally:
        np.random.set_state(state)


def aggregate(score_dict: dict[str, np.ndarray], reps: int = AGGREGATE_REPS) -> dict[str, dict[str, tuple]]:
    """rliable's IQM, mean and optimality gap of (runs x tasks) normalised scores, with stratified-bootstrap CIs."""
    from rliable import library as rly
    from rliable import metrics

    def func(scores: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_mean(scores),
                         metrics.aggregate_optimality_gap(scores)])

    with _rliable_seeded():
        points, intervals = rly.get_interval_estimates(score_dict, func, reps=reps,
                                                       random_state=np.random.RandomState(0))
    return {method: {name: (points[method][i], intervals[method][0, i], intervals[method][1, i])
                     for i, name in enumerate(("iqm", "mean", "optimality_gap"))} for method in score_dict}


def performance_profiles(score_dict: dict[str, np.ndarray], taus: np.ndarray,
                         reps: int = PROFILE_REPS) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable's performance profiles (fraction of runs with score > tau) and their 95% CIs, per method."""
    from rliable import library as rly

    with _rliable_seeded():
        return rly.create_performance_profile(score_dict, taus, reps=reps)
