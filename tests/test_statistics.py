"""statistics.py: the estimates every table, plot and summary of the suite uses, on arrays worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from promptpo_bench.statistics import balanced_matrix, ci95, iqm, median_ci, score_at, step_values, steps_to


def test_a_curve_is_a_step_function_that_ends_where_the_run_ended():
    xs, ys = np.array([0.0, 10.0, 20.0]), np.array([1.0, 2.0, 3.0])
    values = step_values(xs, ys, np.array([-1, 0, 5, 10, 19, 25, 26]), end=25)
    np.testing.assert_array_equal(values, [np.nan, 1, 1, 2, 2, 3, np.nan])
    assert score_at(xs, ys, budget=15, end=25) == 2.0
    assert score_at(xs, ys, budget=100, end=25) == 3.0  # a run that stopped short is read at its end
    # a last point past `end` (an evaluation after the final step) still counts up to that point
    np.testing.assert_array_equal(step_values(xs, ys, np.array([15, 20, 21]), end=12), [2, 3, np.nan])


def test_steps_to_is_the_first_point_that_reaches_the_target():
    xs, ys = np.array([0, 100, 200, 300]), np.array([-5.0, 4.0, 9.0, 3.0])
    assert steps_to(xs, ys, 4.0) == 100 and steps_to(xs, ys, 8.5) == 200 and steps_to(xs, ys, 10.0) == np.inf


def test_median_ci_of_steps_with_targets_never_reached():
    rng = np.random.default_rng(0)
    point, low, high = median_ci([100.0, 200.0, 300.0, np.inf, np.inf], rng)
    assert point == 300.0 and low in (100.0, 200.0) and high == np.inf  # ends are bootstrap medians
    assert median_ci([50.0], rng) == (50.0, 50.0, 50.0)  # one run: a point; the board shows it without an interval
    assert median_ci([np.inf, np.inf], rng) == (np.inf, np.inf, np.inf)  # no NaN from inf - inf


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm(np.array([0, 1, 2, 3, 4, 5, 6, 1000.0])) == pytest.approx(3.5)
    runs_by_tasks = np.array([[0.0, 10.0], [1.0, 10.0], [2.0, 10.0], [1000.0, 10.0]])  # (runs x tasks)
    np.testing.assert_allclose(iqm(runs_by_tasks), [1.5, 10.0])  # by default over runs, one IQM per task


def test_ci95_needs_two_values():
    assert ci95([3.0]) is None
    assert ci95([0.0, 2.0]) == pytest.approx(12.7062, abs=1e-4)  # t(0.975, 1) * s / sqrt(2), s = sqrt(2)


def test_balanced_matrix_keeps_the_same_number_of_runs_per_task():
    matrix, tasks = balanced_matrix({"b": [4.0, 5.0], "a": [1.0, 2.0, 3.0]})
    assert tasks == ["a", "b"] and matrix.tolist() == [[1.0, 4.0], [2.0, 5.0]]
    assert balanced_matrix({})[1] == []
