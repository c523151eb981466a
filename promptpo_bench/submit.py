"""Verified leaderboard submissions: check a run directory, re-evaluate its policy, write a self-contained entry.

A run is accepted only when it is on a task of the suite, its record is valid, its policy file has the recorded
sha256, its curve is consistent, it is not already on the board, and its policy, re-evaluated here on the record's
own held-out episode seeds, reproduces the claimed `final_eval`:

* exactly: every episode's return within `EPISODE_RTOL`/`EPISODE_ATOL` (and the same successes; torch policies
  run with the record's `config.torch_threads`, default 1, so their float sums happen in the same order), or
* statistically, only when the policy or task is stochastic (two re-evaluations here differ): Welch's
  two-sided t-test of the claimed against the 2n re-evaluated episode returns must give p >= `ALPHA`.
  A policy that is deterministic here (both re-evaluations identical) must reproduce exactly.

An entry (its layout: entries.py) is written into a scratch directory and renamed into place, so a rejected or
interrupted submission leaves the board as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from . import registry
from .entries import DEFAULT_BOARD, entry_dir, find_duplicate
from .errors import BenchError
from .progress import Progress
from .records import atomic_write_json, code_version, load_record, sha256_file
from .rollout import RolloutFailure, heldout_seeds, make_env, run_episodes
from .tracking import start_wandb

EPISODE_RTOL, EPISODE_ATOL = 1e-9, 1e-6  # float tolerance of one episode's return in an exact reproduction
ALPHA = 1e-3  # significance level of the statistical reproduction test (false rejections of honest runs: 0.1%)
MIN_EPISODES = 10  # fewer held-out episodes are not a final evaluation anyone should rank by
ALGORITHM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")  # part of the entry's directory name
LIMIT_CAPS = {"act_timeout": 10.0, "episode_timeout": 1200.0, "memory_mb": 8192}  # what a re-evaluation grants at most


class Rejected(BenchError):
    """A submission that fails verification; the message is the one-line reason."""

    def __init__(self, reason: str):
        super().__init__(f"rejected: {reason}")


def _policy_path(run_dir: Path, record: dict[str, Any]) -> Path:
    """The policy file the record names, which must lie inside the run directory (links too) and have the recorded
    sha256."""
    relative = PurePosixPath(record["policy"]["path"])
    if relative.is_absolute() or ".." in relative.parts:
        raise Rejected(f"policy.path {str(relative)!r} must be a path inside the run directory")
    path = run_dir / relative
    if not path.is_file():
        raise Rejected(f"the policy file {relative} named by record.json is missing")
    if not path.resolve().is_relative_to(run_dir.resolve()):  # a link: the entry would copy what it points at
        raise Rejected(f"the policy file {relative} is a link out of the run directory")
    if sha256_file(path) != record["policy"]["sha256"]:
        raise Rejected(f"{relative} does not match the sha256 in record.json (the policy file was changed)")
    return path


def _check_final_eval(record: dict[str, Any]) -> None:
    """The claimed final evaluation is well formed: the held-out seeds, the mean of its returns, and where the task
    reports success (the board may rank by it) one success per episode and their mean as its success rate."""
    final = record["final_eval"]
    seeds, returns = final["episode_seeds"], final["returns"]
    if len(seeds) != len(returns):
        raise Rejected(f"final_eval has {len(seeds)} episode seeds but {len(returns)} returns")
    if len(seeds) < MIN_EPISODES:
        raise Rejected(f"final_eval has {len(seeds)} episodes; at least {MIN_EPISODES} are required")
    if seeds != heldout_seeds(len(seeds)):
        raise Rejected("final_eval.episode_seeds are not the held-out seeds 1000000000, 1000000001, ...")
    if not np.isclose(final["mean_return"], np.mean(returns), rtol=EPISODE_RTOL, atol=EPISODE_ATOL):
        raise Rejected(f"final_eval.mean_return {final['mean_return']:.6g} is not the mean of its returns "
                       f"({np.mean(returns):.6g})")
    successes = final.get("successes")
    if successes is None:
        env_id = record["env_id"]
        if registry.is_registered(env_id) and registry.get(env_id).success_key:
            raise Rejected(f"final_eval has no successes, but {env_id} reports success per episode")
        if final.get("success_rate") is not None:
            raise Rejected("final_eval has a success_rate but no successes")
    else:
        if len(successes) != len(returns):
            raise Rejected(f"final_eval has {len(successes)} successes for {len(returns)} episodes")
        if final.get("success_rate") is None or not np.isclose(final["success_rate"], np.mean(successes)):
            raise Rejected(f"final_eval.success_rate {final.get('success_rate')} is not the mean of its successes")


def _check_curve(record: dict[str, Any]) -> None:
    curve, totals = record["curve"], record["totals"]
    if not curve:
        raise Rejected("the curve is empty")
    for key in ("env_steps", "prompt_tokens", "completion_tokens"):
        values = [point[key] for point in curve if key in point]
        for i in range(1, len(values)):
            if values[i] < values[i - 1]:
                raise Rejected(f"the curve goes backwards: {key} falls from {values[i - 1]} to {values[i]} "
                               f"at point {i}")
        if values and values[-1] > totals[key]:
            raise Rejected(f"the curve's last point has {key} {values[-1]} but totals.{key} is only {totals[key]}")


def _check_early_stop(record: dict[str, Any]) -> None:
    """A run that stopped early counts on the board at its planned budget, so its claim must hold: the stop rule was
    on, the planned budget is its command's, and the evaluations just before its final one reached the rule's target."""
    totals = record["totals"]
    if not totals.get("stopped_early"):
        return
    config = record.get("config") or {}
    fraction, evals = config.get("early_stop_fraction"), config.get("early_stop_evals")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1 and isinstance(evals, int) and evals >= 1):
        raise Rejected("totals.stopped_early is set, but the run's config has no early stop (early_stop_fraction, "
                       "early_stop_evals)")
    planned = totals.get("planned_env_steps")
    if planned != config.get("total_timesteps") or not planned > totals["env_steps"]:
        raise Rejected(f"totals.stopped_early is set, but totals.planned_env_steps {planned} is not the run's "
                       f"--total-timesteps {config.get('total_timesteps')} beyond its {totals['env_steps']} steps")
    try:
        target = registry.fraction_of_optimum(record["env_id"], fraction, **record["env_kwargs"])
    except BenchError as e:
        raise Rejected(f"totals.stopped_early is set, but an early stop {e}") from None
    held = record["curve"][-evals - 1:-1]  # the last point is the final evaluation
    key = registry.score_key(record["env_id"])  # the return, or the success rate where the task is scored by it
    if len(held) < evals or any(point.get(key) is None or point[key] < target for point in held):
        what = "the optimal success rate" if key == "success_rate" else "the optimum"  # registry.target_return
        raise Rejected(f"totals.stopped_early is set, but the {evals} evaluations before the final one do not all "
                       f"reach {target:.6g} ({fraction:g} of {what})")


def check_run(run_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """Everything that needs no rollout: schema, policy sha256, final_eval and curve consistency."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BenchError(f"{run_dir} is not a run directory")
    try:
        record = load_record(run_dir)
    except (BenchError, ValueError, RecursionError) as e:
        raise Rejected((str(e).splitlines() or [type(e).__name__])[0]) from None
    if not ALGORITHM_NAME.fullmatch(record["algorithm"]):
        raise Rejected(f"algorithm {record['algorithm'][:80]!r} is not a name (letters, digits and _.+-, at most 64)")
    policy = _policy_path(run_dir, record)
    if (record.get("config") or {}).get("unsafe_sandbox"):
        raise Rejected("the run was made with --unsafe-sandbox: its generated code may have run unconfined")
    _check_final_eval(record)
    _check_curve(record)
    _check_early_stop(record)
    return record, policy


def _run_limits(config: dict[str, Any]) -> dict[str, float]:
    """The sandbox limits the run's own final evaluation had (PromptPO's --act-timeout, --episode-timeout,
    --memory-mb; the defaults where a record has none): a policy can read its limits, so it gets the same here, or the
    run is refused where they exceed what a re-evaluation grants (`LIMIT_CAPS`)."""
    from .sandbox import Limits  # here, not at the top: only code policies need the sandbox

    default = Limits()  # PromptPO's defaults are the sandbox's
    limits = {"act_timeout": config.get("act_timeout", default.act_seconds),
              "episode_timeout": config.get("episode_timeout", default.episode_seconds),
              "memory_mb": config.get("memory_mb", default.memory_mb)}
    for name, value in limits.items():
        if type(value) not in (int, float) or not 0 < value <= LIMIT_CAPS[name]:
            raise Rejected(f"config.{name} {value!r} is not a limit a re-evaluation grants (0 < {name} <= "
                           f"{LIMIT_CAPS[name]:g})")
    return limits


def _evaluate(policy_file: Path, record: dict[str, Any]):
    """One re-evaluation of the policy on the record's episode seeds, with a fresh policy object that lives as long
    as the run's did (`config.policy_lifetime`; "episode" for records older than that field) and a fresh worker per
    `config.eval_episodes_per_worker` episodes, as the run's final evaluation had."""
    from .policies import load_policy, recorded_variant
    from .sandbox import PolicyFailure

    env_id, kwargs = record["env_id"], record["env_kwargs"]
    env = make_env(env_id, kwargs)
    policy, threads = None, None
    try:
        if record["policy"]["kind"] == "torch":  # the run's own intra-op thread count: the same float sums
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(max(1, int(record["config"].get("torch_threads") or 1)))
        config = record.get("config") or {}
        limits = _run_limits(config)
        policy = load_policy(policy_file, env_id, env, limits["act_timeout"], limits["memory_mb"],
                             lifetime=config.get("policy_lifetime") or "episode",
                             episodes_per_worker=config.get("eval_episodes_per_worker"),
                             episode_seconds=limits["episode_timeout"])
        seeds = record["final_eval"]["episode_seeds"]
        variant = recorded_variant(config, record["policy"]["kind"], env_id)  # the observation it was scored on
        with Progress(len(seeds), f"re-evaluating {env_id}", unit="episode") as progress:
            return run_episodes(env_id, policy, seeds, kwargs, on_episode_end=progress.advance, variant=variant)
    except (PolicyFailure, RolloutFailure) as error:
        failure = getattr(error, "failure", error)
        raise Rejected(f"the policy failed on re-evaluation: {failure}") from None
    except (BenchError, ValueError) as error:  # ValueError: a config the sandbox refuses (a lifetime, a chunk size)
        raise Rejected(str(error)) from None
    finally:
        getattr(policy, "close", lambda: None)()
        env.close()
        if threads is not None:
            torch.set_num_threads(threads)


def welch_p_value(claimed: np.ndarray, reevaluated: np.ndarray) -> float:
    """Two-sided Welch t-test p-value; two constant samples give 1 if equal, else 0."""
    if np.ptp(claimed) == 0 and np.ptp(reevaluated) == 0:
        return 1.0 if claimed[0] == reevaluated[0] else 0.0
    from scipy import stats  # here, not at the top: a slow import the other commands do without

    with warnings.catch_warnings():  # one constant sample (all successes) is exact: no "precision loss" to report
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(claimed, reevaluated, equal_var=False).pvalue)


def verify(run_dir: str | Path) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    """Check and re-evaluate a run; returns (record, policy file, verification) or raises `Rejected`."""
    record, policy = check_run(run_dir)
    final = record["final_eval"]
    claimed = np.asarray(final["returns"], dtype=np.float64)
    first = _evaluate(policy, record)
    claimed_successes = final.get("successes")  # present wherever the task reports success (check_run)
    same_successes = (claimed_successes is None or first.successes is None
                      or np.array_equal(first.successes, claimed_successes))
    p_value, reevaluated = None, first.returns
    if np.allclose(first.returns, claimed, rtol=EPISODE_RTOL, atol=EPISODE_ATOL) and same_successes:
        mode = "exact"
    else:
        second = _evaluate(policy, record)
        if np.array_equal(first.returns, second.returns):
            bad = int(np.argmax(~np.isclose(first.returns, claimed, rtol=EPISODE_RTOL, atol=EPISODE_ATOL)))
            raise Rejected(f"final_eval does not reproduce: the policy is deterministic here and episode seed "
                           f"{final['episode_seeds'][bad]} returns {first.returns[bad]:.6g}, the record claims "
                           f"{claimed[bad]:.6g}" + ("" if same_successes else " (or its successes differ)"))
        reevaluated = np.concatenate([first.returns, second.returns])
        p_value = welch_p_value(claimed, reevaluated)
        if not p_value >= ALPHA:
            raise Rejected(f"final_eval does not reproduce: claimed mean {claimed.mean():.6g}, re-evaluated mean "
                           f"{reevaluated.mean():.6g} over {len(reevaluated)} episodes (Welch's t-test p = "
                           f"{p_value:.2g} < {ALPHA})")
        if claimed_successes is not None and first.successes is not None:  # the success rate: the board's score
            rate = np.concatenate([first.successes, second.successes]).astype(np.float64)
            if not welch_p_value(np.asarray(claimed_successes, dtype=np.float64), rate) >= ALPHA:
                raise Rejected(f"final_eval does not reproduce: claimed success rate {np.mean(claimed_successes):.3g}"
                               f", re-evaluated {rate.mean():.3g} over {len(rate)} episodes (Welch's t-test)")
        mode = "statistical"
    verification = {
        "verified_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": mode, "episode_seeds": final["episode_seeds"], "claimed_mean_return": float(claimed.mean()),
        "reevaluated_returns": reevaluated.tolist(), "reevaluated_mean_return": float(reevaluated.mean()),
        "reevaluated_success_rate": first.success_rate, "p_value": p_value,
        "tolerance": {"episode_rtol": EPISODE_RTOL, "episode_atol": EPISODE_ATOL, "alpha": ALPHA,
                      "test": "exact per episode; else, for policies that are stochastic here, Welch's two-sided "
                              "t-test of claimed vs 2n re-evaluated episode returns"},
        "policy_sha256": record["policy"]["sha256"], "code_version": code_version(),
    }
    return record, policy, verification


def submit(run_dir: str | Path, board: str | Path = DEFAULT_BOARD) -> Path:
    """Verify `run_dir` and add it to the board; returns the new entry directory or raises `Rejected`."""
    record, _ = check_run(run_dir)
    if not registry.is_registered(record["env_id"]):
        raise Rejected(f"{record['env_id']} is not a task of the suite: the board ranks only the tasks "
                       f"`promptpo-bench tasks` lists")
    duplicate = find_duplicate(board, record)
    if duplicate is not None:
        raise Rejected(f"duplicate: the same policy (sha256 {record['policy']['sha256'][:12]}) on the same task is "
                       f"already on the board as {duplicate}")
    record, policy, verification = verify(run_dir)
    entry = entry_dir(board, record)
    task_dir = entry.parent
    task_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".incoming-", dir=task_dir))
    try:
        shutil.copy2(Path(run_dir) / "record.json", scratch / "record.json")
        target = scratch / record["policy"]["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(policy, target)
        atomic_write_json(scratch / "verification.json", verification)
        os.rename(scratch, entry)  # atomic; fails if a concurrent submission of the same entry won
    except OSError as e:
        shutil.rmtree(scratch, ignore_errors=True)
        raise BenchError(f"could not write the entry {entry}: {e}") from None
    return entry


def track_entry(entry: Path, project: str, wandb_entity: str | None = None) -> None:
    """Log an accepted entry to W&B (under WANDB_DIR or ./wandb): its curve against global_step = env steps."""
    record = json.loads((entry / "record.json").read_text())
    verification = json.loads((entry / "verification.json").read_text())
    run = start_wandb(project, entry.name, {k: record[k] for k in ("algorithm", "env_id", "env_kwargs", "seed")},
                      entity=wandb_entity, job_type="submit")
    for point in record["curve"]:
        run.log({"global_step": point["env_steps"], "charts/episodic_return": point["mean_return"]})
    run.summary.update({"final_eval/mean_return": record["final_eval"]["mean_return"],
                        "verification/mode": verification["mode"],
                        "verification/reevaluated_mean_return": verification["reevaluated_mean_return"]})
    run.finish()
