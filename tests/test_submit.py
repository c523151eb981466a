"""`promptpo-bench submit`: genuine runs are accepted after re-evaluation; tampered ones are rejected in one line,
and a rejection leaves the board exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from promptpo_bench import cli
from promptpo_bench import submit as submit_module
from promptpo_bench.errors import BenchError
from promptpo_bench.records import sha256_file
from promptpo_bench.registry import reference_scores
from promptpo_bench.reference_runs import write_reference_run
from promptpo_bench.rollout import Episodes, RolloutFailure, heldout_seeds
from promptpo_bench.sandbox import PolicyFailure
from promptpo_bench.submit import ALPHA, EPISODE_ATOL, EPISODE_RTOL, Rejected, check_run, welch_p_value

REPO = Path(__file__).resolve().parents[1]
PPO_RUN = REPO / "benchmarks/results/learning/NoiseWorld-Board0-v0__ppo__100000__seed1"  # a real 100k-step run


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory) -> Path:
    """A real code-policy run: the exact optimal policy of board 0 as policy.py, scored in the sandbox."""
    run_dir = tmp_path_factory.mktemp("runs") / "oracle"
    assert cli.main(["reference", "NoiseWorld-Board0-v0", "--policy", "optimal", "--run-dir", str(run_dir)]) == 0
    assert json.loads((run_dir / "record.json").read_text())["algorithm"] == "oracle"
    return run_dir


@pytest.fixture(scope="module")
def random_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "random"
    write_reference_run("NoiseWorld-Board0-v0", "random", run_dir)
    return run_dir


@pytest.fixture
def board(tmp_path, oracle_run) -> Path:
    """A board that already holds one entry, so a rejection can be seen not to change it."""
    board = tmp_path / "board"
    assert cli.main(["submit", str(oracle_run), "--leaderboard", str(board)]) == 0
    return board


def snapshot(board: Path) -> dict[str, str]:
    return {str(p.relative_to(board)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(board.rglob("*")) if p.is_file()}


def copy_run(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / f"copy-{source.name}"
    shutil.copytree(source, target)
    return target


def edit_record(run_dir: Path, change) -> None:
    record = json.loads((run_dir / "record.json").read_text())
    change(record)
    (run_dir / "record.json").write_text(json.dumps(record))


# check_run, verify and submit's bookkeeping without a rollout: fast, so that they come first


@pytest.fixture
def ppo_copy(tmp_path) -> Path:
    return copy_run(PPO_RUN, tmp_path)


def rejection(run: Path) -> str:
    with pytest.raises(Rejected) as error:
        check_run(run)
    return str(error.value)


def test_a_policy_file_that_links_out_of_the_run_is_rejected(ppo_copy, tmp_path):
    """Even with the sha256 right (the attacker knows the file): the entry would copy a file from outside the run."""
    outside = tmp_path / "outside.pt"
    (ppo_copy / "model.pt").rename(outside)
    (ppo_copy / "model.pt").symlink_to(outside)
    assert rejection(ppo_copy) == "rejected: the policy file model.pt is a link out of the run directory"
    (ppo_copy / "model.pt").unlink()
    (ppo_copy / "inside.pt").write_bytes(outside.read_bytes())
    (ppo_copy / "model.pt").symlink_to(ppo_copy / "inside.pt")  # a link within the run is its own file
    check_run(ppo_copy)


def test_check_run_accepts_the_genuine_record(ppo_copy):
    record, policy = check_run(ppo_copy)
    assert policy == ppo_copy / "model.pt" and record["algorithm"] == "ppo"
    with pytest.raises(BenchError, match="is not a run directory"):
        check_run(ppo_copy / "nothere")


def _set(path: list, value):
    def change(record):
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _with_successes(successes, rate):
    def change(record):
        record["final_eval"]["successes"], record["final_eval"]["success_rate"] = successes, rate
    return change


def _shorten(n):
    def change(record):
        final = record["final_eval"]
        final["episode_seeds"], final["returns"] = final["episode_seeds"][:n], final["returns"][:n]
    return change


def _curve_key(key, values, total):
    def change(record):
        for point, value in zip(record["curve"], values):
            point[key] = value
        record["totals"][key] = total
    return change


@pytest.mark.parametrize("change, reason", [
    (_set(["policy", "path"], "/tmp/model.pt"), "policy.path '/tmp/model.pt' must be a path inside the run directory"),
    (_set(["policy", "path"], "../model.pt"), "policy.path '../model.pt' must be a path inside the run directory"),
    (_set(["policy", "path"], "other.pt"), "the policy file other.pt named by record.json is missing"),
    (_set(["policy", "sha256"], "0" * 64), "model.pt does not match the sha256 in record.json"),
    (_set(["config", "unsafe_sandbox"], True), "the run was made with --unsafe-sandbox"),
    (_set(["final_eval", "returns"], [-25.0] * 49), "final_eval has 50 episode seeds but 49 returns"),
    (_shorten(9), "final_eval has 9 episodes; at least 10 are required"),
    (_set(["final_eval", "episode_seeds"], list(range(1, 51))), "are not the held-out seeds"),
    (_set(["final_eval", "mean_return"], -25.00001), "final_eval.mean_return -25 is not the mean of its returns"),
    (_with_successes([True] * 49, 1.0), "final_eval has 49 successes for 50 episodes"),
    (_with_successes([True] * 50, None), "final_eval.success_rate None is not the mean of its successes"),
    (_with_successes([True] * 25 + [False] * 25, 0.52), "final_eval.success_rate 0.52 is not the mean"),
    (_with_successes(None, 1.0), "final_eval has a success_rate but no successes"),
    (lambda record: record.update(env_id="MetaWorld-ButtonPress-v0"),  # ranked by success: a claim without them
     "final_eval has no successes, but MetaWorld-ButtonPress-v0 reports success per episode"),
    (_set(["algorithm"], "../../../../tmp/planted/x"), "algorithm '../../../../tmp/planted/x' is not a name"),
    (_set(["algorithm"], ""), "algorithm '' is not a name"),
    (_set(["algorithm"], "a" * 90), f"algorithm {'a' * 80!r} is not a name"),  # too long; quoted to 80 characters
    (_set(["curve"], []), "the curve is empty"),
    (_curve_key("prompt_tokens", [0, 5, 4], 10), "prompt_tokens falls from 5 to 4 at point 2"),
    (_curve_key("completion_tokens", [3, 2], 10), "completion_tokens falls from 3 to 2 at point 1"),
    (_curve_key("prompt_tokens", [0, 5, 11], 10), "the curve's last point has prompt_tokens 11 but totals."
                                                  "prompt_tokens is only 10"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_check_run_rejects(ppo_copy, change, reason):
    edit_record(ppo_copy, change)
    message = rejection(ppo_copy)
    assert message.startswith("rejected: ") and reason in message, message


@pytest.mark.parametrize("change", [
    _shorten(10),  # the fewest episodes allowed
    _set(["final_eval", "mean_return"], -25.0000000001),  # within the tolerance
    _with_successes([True] * 25 + [False] * 25, 0.5),
    _curve_key("prompt_tokens", [0, 5, 5], 5),  # flat is not backwards; the last point may equal the totals
    _set(["config", "unsafe_sandbox"], False),
])
def test_check_run_accepts_the_edge_cases(ppo_copy, change):
    edit_record(ppo_copy, change)
    check_run(ppo_copy)


def _stopped_early(fraction=0.5, evals=3, planned=200_000, held=(20.0, 20.0, 20.0), total=200_000):
    """The record of a run that --early-stop-fraction ended: board 0's optimum is 34.914, so 0.5 of it is 17.457."""
    def change(record):
        record["config"].update(early_stop_fraction=fraction, early_stop_evals=evals, total_timesteps=total)
        record["totals"].update(planned_env_steps=planned, stopped_early=True)
        for point, value in zip(record["curve"][-len(held) - 1:-1], held):
            point["mean_return"] = value
    return change


def _success_scored(record, rates):
    """`_stopped_early` at 0.9 on Meta-World, its held evaluations with these success rates (returns far above the
    expert's 562, so a return target would hold)."""
    _stopped_early(fraction=0.9, held=(10_000.0,) * len(rates))(record)
    record["env_id"] = "MetaWorld-ButtonPress-v0"
    _with_successes([False] * 50, 0.0)(record)  # a task that reports success has successes in its final_eval
    for point, rate in zip(record["curve"][-len(rates) - 1:-1], rates):
        point["success_rate"] = rate


@pytest.mark.parametrize("change, reason", [
    (_stopped_early(fraction=0), "totals.stopped_early is set, but the run's config has no early stop"),
    (_stopped_early(fraction=1.5), "totals.stopped_early is set, but the run's config has no early stop"),
    (_stopped_early(fraction="0.5"), "totals.stopped_early is set, but the run's config has no early stop"),
    (_stopped_early(evals=None), "totals.stopped_early is set, but the run's config has no early stop"),
    (_stopped_early(evals=0), "totals.stopped_early is set, but the run's config has no early stop"),
    (_stopped_early(planned=5_000_000), "totals.planned_env_steps 5000000 is not the run's --total-timesteps 200000"),
    (_stopped_early(planned=99_840), "totals.planned_env_steps 99840 is not the run's --total-timesteps"),
    (_stopped_early(planned=99_840, total=99_840), "totals.planned_env_steps 99840 is not the run's --total-timesteps "
                                                   "99840 beyond its 99840 steps"),
    (_stopped_early(held=(20.0, 17.0, 20.0)), "the 3 evaluations before the final one do not all reach 17.457"),
    (_stopped_early(evals=4), "the 4 evaluations before the final one do not all reach 17.457"),  # one was -25
    (lambda record: _success_scored(record, (1.0, 0.8, 1.0)),  # Meta-World holds a success rate, not a return
     "the 3 evaluations before the final one do not all reach 0.9 (0.9 of the optimal success rate)"),
    (lambda record: _success_scored(record, (1.0, None, 1.0)),
     "the 3 evaluations before the final one do not all reach 0.9 (0.9 of the optimal success rate)"),
    (lambda record: _stopped_early(held=(-20.0, -30.0, -20.0))(record) or record.update(env_id="Reacher-v5"),
     "do not all reach -23.675 (0.5 of the optimum)"),  # optimum -4.44, random -42.91: half way up from random
    (lambda record: _stopped_early()(record) or record.update(env_id="CartPole-v1"),
     "totals.stopped_early is set, but an early stop needs a suite task with a known optimal return; CartPole-v1"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_check_run_rejects_an_early_stop_the_curve_does_not_bear_out(ppo_copy, change, reason):
    """A stopped run counts at its planned budget on the board, so submit checks the claim against the run's own
    config, the task's optimum and the evaluations that should have held the target."""
    edit_record(ppo_copy, change)
    message = rejection(ppo_copy)
    assert message.startswith("rejected: ") and reason in message, message


@pytest.mark.parametrize("fraction, evals, held", [
    (0.5, 3, (17.46, 20.0, 17.5)),
    (0.5, 3, ("target", 20.0, "target")),  # the target itself is reached
    (1.0, 1, (35.0,)),  # the whole optimum, held once
])
def test_check_run_accepts_an_early_stop_its_curve_bears_out(ppo_copy, fraction, evals, held):
    target = fraction * reference_scores("NoiseWorld-Board0-v0").optimal  # as baselines.early_stop_target has it
    edit_record(ppo_copy, _stopped_early(fraction, evals, held=[target if h == "target" else h for h in held]))
    check_run(ppo_copy)
    edit_record(ppo_copy, _set(["totals", "stopped_early"], False))  # a run that ran out its budget: nothing to check
    edit_record(ppo_copy, _set(["config", "early_stop_fraction"], 0))
    check_run(ppo_copy)


def test_check_run_accepts_an_early_stop_that_held_a_success_rate(ppo_copy):
    edit_record(ppo_copy, lambda record: _success_scored(record, (0.9, 1.0, 0.95)))
    check_run(ppo_copy)


def test_a_record_that_does_not_load_is_rejected_in_one_line(ppo_copy, tmp_path):
    (ppo_copy / "record.json").write_text("{}")
    message = rejection(ppo_copy)
    assert message == "rejected: record.json is invalid at (top level): 'schema_version' is a required property"
    (ppo_copy / "record.json").write_text("[" * 100_000)  # nested beyond the JSON decoder's recursion limit
    assert rejection(ppo_copy).startswith("rejected: maximum recursion depth exceeded")
    odd = tmp_path / "odd\nname"  # a directory name with a line break: the first line of the reason is kept
    odd.mkdir()
    assert rejection(odd) == f"rejected: {tmp_path}/odd"


class EvaluateDouble:
    """Test double of `_evaluate`: hands out the given re-evaluations (returns, successes) in turn."""

    def __init__(self, *outcomes):
        self.outcomes, self.calls = list(outcomes), 0

    def __call__(self, policy_file, record):
        returns, successes = self.outcomes[self.calls]
        self.calls += 1
        seeds = record["final_eval"]["episode_seeds"]
        return Episodes(seeds, np.asarray(returns, dtype=np.float64), np.ones(len(seeds), dtype=np.int64),
                        None if successes is None else np.asarray(successes, dtype=bool))


CLAIMED = [-25.0] * 50


def test_verify_accepts_an_exact_reproduction_after_one_evaluation(ppo_copy, monkeypatch):
    evaluate = EvaluateDouble(([r + 5e-7 for r in CLAIMED], [True] * 50))  # within EPISODE_ATOL; the record has
    # no successes to compare with
    monkeypatch.setattr(submit_module, "_evaluate", evaluate)
    record, policy, verification = submit_module.verify(ppo_copy)
    assert evaluate.calls == 1 and verification["mode"] == "exact" and verification["p_value"] is None
    assert verification["reevaluated_returns"] == pytest.approx(CLAIMED, abs=1e-6)
    assert len(verification["reevaluated_returns"]) == 50 and verification["claimed_mean_return"] == -25.0
    assert verification["episode_seeds"] == heldout_seeds(50) and verification["reevaluated_success_rate"] == 1.0
    assert verification["policy_sha256"] == record["policy"]["sha256"] and policy == ppo_copy / "model.pt"
    assert verification["tolerance"]["episode_rtol"] == EPISODE_RTOL
    assert verification["tolerance"]["episode_atol"] == EPISODE_ATOL


def test_verify_rejects_a_deterministic_policy_that_misses_one_episode(ppo_copy, monkeypatch):
    returns = list(CLAIMED)
    returns[7] = -24.99
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble((returns, None), (returns, None)))
    with pytest.raises(Rejected, match=r"deterministic here and episode seed 1000000007 returns -24\.99, the record "
                                       r"claims -25$"):
        submit_module.verify(ppo_copy)


def test_verify_rejects_different_successes_of_a_deterministic_policy(ppo_copy, monkeypatch):
    successes = [True] * 50
    edit_record(ppo_copy, _with_successes(successes, 1.0))
    other = [False] + successes[1:]
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble((CLAIMED, other), (CLAIMED, other)))
    with pytest.raises(Rejected, match=r"claims -25 \(or its successes differ\)$"):
        submit_module.verify(ppo_copy)
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble((CLAIMED, successes)))
    assert submit_module.verify(ppo_copy)[2]["reevaluated_success_rate"] == 1.0


def test_verify_judges_a_stochastic_policy_by_welchs_test(ppo_copy, monkeypatch):
    rng = np.random.default_rng(0)
    claimed = rng.normal(0, 1, 50)

    def claim(record):
        record["final_eval"]["returns"] = claimed.tolist()
        record["final_eval"]["mean_return"] = float(claimed.mean())

    edit_record(ppo_copy, claim)
    first, second = rng.normal(0, 1, 50), rng.normal(0, 1, 50)
    evaluate = EvaluateDouble((first, None), (second, None))
    monkeypatch.setattr(submit_module, "_evaluate", evaluate)
    _, _, verification = submit_module.verify(ppo_copy)
    both = np.concatenate([first, second])
    assert evaluate.calls == 2 and verification["mode"] == "statistical"
    assert verification["reevaluated_returns"] == both.tolist()
    assert verification["reevaluated_mean_return"] == pytest.approx(both.mean())
    assert verification["p_value"] == pytest.approx(welch_p_value(claimed, both)) and verification["p_value"] >= ALPHA
    monkeypatch.setattr(submit_module, "welch_p_value", lambda claimed, reevaluated: ALPHA)  # the edge: accepted
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble((first, None), (second, None)))
    assert submit_module.verify(ppo_copy)[2]["p_value"] == ALPHA
    monkeypatch.setattr(submit_module, "welch_p_value", welch_p_value)
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble((first - 1, None), (second - 1, None)))
    with pytest.raises(Rejected, match=r"over 100 episodes \(Welch's t-test p = .* < 0\.001\)"):
        submit_module.verify(ppo_copy)
    # the returns reproduce, the claimed success rate does not: Welch's test of the successes too
    edit_record(ppo_copy, _with_successes([True] * 50, 1.0))
    half = [True, False] * 25
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble((first, half), (second, half)))
    with pytest.raises(Rejected, match=r"claimed success rate 1, re-evaluated 0\.5 over 100 episodes"):
        submit_module.verify(ppo_copy)
    mostly = [False] + [True] * 49
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble((first, [True] * 50), (second, mostly)))
    assert submit_module.verify(ppo_copy)[2]["mode"] == "statistical"  # 99 of 100 against 50 of 50: p > 0.001
    monkeypatch.setattr(submit_module, "welch_p_value", lambda claimed, reevaluated: ALPHA)  # the edge, both tests
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble((first, half), (second, half)))
    assert submit_module.verify(ppo_copy)[2]["p_value"] == ALPHA


def test_verify_of_a_task_without_successes_tests_only_the_returns(ppo_copy, monkeypatch):
    """NoiseWorld reports no success: the record has none, and a re-evaluation that had some is not held to them."""
    rng = np.random.default_rng(1)
    claimed = rng.normal(0, 1, 50)
    edit_record(ppo_copy, lambda record: record["final_eval"].update(returns=claimed.tolist(),
                                                                     mean_return=float(claimed.mean())))
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble((rng.normal(0, 1, 50), [True] * 50),
                                                                   (rng.normal(0, 1, 50), [False] * 50)))
    assert submit_module.verify(ppo_copy)[2]["mode"] == "statistical"


def test_submit_writes_the_entry_in_one_rename(ppo_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(submit_module, "_evaluate", EvaluateDouble(*[(CLAIMED, None)] * 4))
    board = tmp_path / "board"
    entry = submit_module.submit(ppo_copy, board)
    assert entry.parent == board / "entries" / "NoiseWorld-Board0-v0"
    assert sorted(p.name for p in entry.iterdir()) == ["model.pt", "record.json", "verification.json"]
    assert (entry / "record.json").read_bytes() == (ppo_copy / "record.json").read_bytes()
    assert sha256_file(entry / "model.pt") == sha256_file(ppo_copy / "model.pt")
    assert json.loads((entry / "verification.json").read_text())["mode"] == "exact"
    sha = json.loads((ppo_copy / "record.json").read_text())["policy"]["sha256"]
    with pytest.raises(Rejected, match=rf"the same policy \(sha256 {sha[:12]}\) on the same task is already on "
                                       f"the board as {entry}"):
        submit_module.submit(ppo_copy, board)

    def failing_rename(source, target):
        raise OSError("disk full")

    nested = copy_run(PPO_RUN, tmp_path / "nested")  # a policy file in a folder of a folder of the run
    (nested / "models" / "final").mkdir(parents=True)
    (nested / "model.pt").rename(nested / "models" / "final" / "model.pt")
    edit_record(nested, _set(["policy", "path"], "models/final/model.pt"))
    entry = submit_module.submit(nested, tmp_path / "board2")
    assert sha256_file(entry / "models" / "final" / "model.pt") == sha256_file(ppo_copy / "model.pt")

    monkeypatch.setattr(submit_module.os, "rename", failing_rename)
    other = tmp_path / "other"
    with pytest.raises(BenchError, match="could not write the entry .*: disk full"):
        submit_module.submit(ppo_copy, other)
    assert [p.name for p in (other / "entries" / "NoiseWorld-Board0-v0").iterdir()] == []  # no scratch left


def test_submit_refuses_a_task_outside_the_suite(ppo_copy, tmp_path, monkeypatch):
    evaluate = EvaluateDouble(*[(CLAIMED, None)] * 4)
    monkeypatch.setattr(submit_module, "_evaluate", evaluate)
    edit_record(ppo_copy, _set(["env_id"], "Walker2d-v5"))  # a Gymnasium task, not one of the suite's
    with pytest.raises(Rejected, match=r"^rejected: Walker2d-v5 is not a task of the suite: the board ranks only "):
        submit_module.submit(ppo_copy, tmp_path / "board")
    assert evaluate.calls == 0 and not (tmp_path / "board").exists()


class PolicyDouble:
    """Test double of a loaded policy: remembers how it was loaded and whether it was closed."""

    def __init__(self, path, env_id, env, act_seconds=1.0, memory_mb=2048, lifetime="episode",
                 episodes_per_worker=None, episode_seconds=120.0):
        self.lifetime, self.episodes_per_worker, self.closed = lifetime, episodes_per_worker, False
        self.limits = (act_seconds, episode_seconds, memory_mb)

    def close(self):
        self.closed = True


@pytest.fixture
def evaluate_doubles(monkeypatch):
    """`_evaluate` with its policy and rollout replaced by test doubles; returns what they saw."""
    from promptpo_bench import policies

    seen = {}

    def load(*args, **kwargs):
        seen["policy"] = PolicyDouble(*args, **kwargs)
        return seen["policy"]

    def rollout_double(env_id, policy, seeds, env_kwargs, on_episode_end=None, variant=None):
        import torch

        seen["threads"], seen["variant"] = torch.get_num_threads(), variant
        if "fail" in seen:
            raise seen["fail"]
        return Episodes(list(seeds), np.zeros(len(seeds)), np.ones(len(seeds), dtype=np.int64), None)

    monkeypatch.setattr(policies, "load_policy", load)
    monkeypatch.setattr(submit_module, "run_episodes", rollout_double)
    return seen


def test_evaluate_uses_the_runs_threads_lifetime_and_workers(ppo_copy, evaluate_doubles):
    import torch

    record, policy = check_run(ppo_copy)
    before = torch.get_num_threads()
    record["config"]["torch_threads"] = before + 1
    record["config"]["eval_episodes_per_worker"] = 7
    assert submit_module._evaluate(policy, record).returns.tolist() == [0.0] * 50
    assert evaluate_doubles["threads"] == before + 1 and torch.get_num_threads() == before
    assert evaluate_doubles["variant"] is None  # a model.pt acts on the env's own observation
    assert evaluate_doubles["policy"].lifetime == "episode" and evaluate_doubles["policy"].episodes_per_worker == 7
    assert evaluate_doubles["policy"].closed
    record["config"]["torch_threads"] = None
    record["config"]["policy_lifetime"] = "rollout"
    submit_module._evaluate(policy, record)
    assert evaluate_doubles["threads"] == 1 and torch.get_num_threads() == before
    record["config"]["torch_threads"] = -2  # nonsense: at least one thread
    submit_module._evaluate(policy, record)
    assert evaluate_doubles["threads"] == 1
    assert evaluate_doubles["policy"].lifetime == "rollout"


def test_evaluate_gives_a_code_policy_the_observation_of_the_description_it_read(ppo_copy, evaluate_doubles):
    """A code policy is re-evaluated on the observation its run's description variant gave it (MuJoCo's "paper"
    variant appends simulator state); a model.pt always acts on the env's own observation."""
    record, policy = check_run(ppo_copy)
    record["config"]["description_variant"] = "paper"
    submit_module._evaluate(policy, record)
    assert evaluate_doubles["variant"] is None
    record["policy"]["kind"] = "python"
    submit_module._evaluate(policy, record)
    assert evaluate_doubles["variant"] == "paper"


def test_evaluate_gives_a_code_policy_the_limits_of_its_run(ppo_copy, evaluate_doubles):
    """A policy can read its own limits (its memory as RLIMIT_AS): it gets those of its run's final evaluation, so
    they cannot tell it that submit is scoring it, and an honest run made with more time or memory is not refused."""
    record, policy = check_run(ppo_copy)
    submit_module._evaluate(policy, record)
    assert evaluate_doubles["policy"].limits == (1.0, 120.0, 2048)  # PromptPO's defaults, for records without them
    record["config"].update(act_timeout=2.5, episode_timeout=300.0, memory_mb=4096)
    submit_module._evaluate(policy, record)
    assert evaluate_doubles["policy"].limits == (2.5, 300.0, 4096)
    record["config"].update(act_timeout=10.0, episode_timeout=1200, memory_mb=8192)  # the caps themselves: granted
    submit_module._evaluate(policy, record)
    assert evaluate_doubles["policy"].limits == (10.0, 1200, 8192)
    for name, value in (("memory_mb", 1 << 20), ("act_timeout", 0), ("episode_timeout", "120")):
        with pytest.raises(Rejected, match=f"config.{name} .* is not a limit a re-evaluation grants"):
            submit_module._evaluate(policy, {**record, "config": {**record["config"], name: value}})


@pytest.mark.parametrize("failure, reason", [
    (PolicyFailure("crash", "boom"), "the policy failed on re-evaluation: crash: boom"),
    (ValueError("lifetime must be one of ('rollout', 'episode'), not 'forever'"),
     "rejected: lifetime must be one of ('rollout', 'episode'), not 'forever'"),
    (RolloutFailure(PolicyFailure("timeout", "too slow", episode_id=3),
                    Episodes([], np.zeros(0), np.zeros(0, dtype=np.int64), None)),
     "the policy failed on re-evaluation: timeout: too slow (episode 3)"),
    (BenchError("NoiseWorld-v0: no such board"), "rejected: NoiseWorld-v0: no such board"),
])
def test_evaluate_turns_failures_into_rejections(ppo_copy, evaluate_doubles, failure, reason):
    import torch

    record, policy = check_run(ppo_copy)
    before = torch.get_num_threads()
    evaluate_doubles["fail"] = failure
    with pytest.raises(Rejected) as error:
        submit_module._evaluate(policy, record)
    assert reason in str(error.value) and evaluate_doubles["policy"].closed and torch.get_num_threads() == before


def test_accepts_a_genuine_code_policy_run(board, oracle_run):
    (entry,) = (board / "entries" / "NoiseWorld-Board0-v0").iterdir()
    assert entry.name.startswith("oracle__0steps__seed0__")
    assert {p.name for p in entry.iterdir()} == {"record.json", "policy.py", "verification.json"}
    assert sha256_file(entry / "policy.py") == sha256_file(oracle_run / "policy.py")
    verification = json.loads((entry / "verification.json").read_text())
    record = json.loads((oracle_run / "record.json").read_text())
    assert verification["mode"] == "exact"
    assert verification["reevaluated_returns"] == record["final_eval"]["returns"]
    assert verification["episode_seeds"][0] == 1_000_000_000
    assert verification["tolerance"]["alpha"] == ALPHA
    assert verification["code_version"]["package_version"]


def test_accepts_a_baseline_model_run(board, tmp_path, capsys):
    run = copy_run(PPO_RUN, tmp_path)
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 0
    (entry,) = (board / "entries" / "NoiseWorld-Board0-v0").glob("ppo__*")
    assert capsys.readouterr().out.startswith(f"accepted: {entry} (exact reproduction")
    assert (entry / "model.pt").is_file()
    assert json.loads((entry / "verification.json").read_text())["mode"] == "exact"


def test_a_stochastic_policy_is_verified_statistically(board, random_run):
    assert cli.main(["submit", str(random_run), "--leaderboard", str(board)]) == 0
    (entry,) = (board / "entries" / "NoiseWorld-Board0-v0").glob("random__*")
    verification = json.loads((entry / "verification.json").read_text())
    assert verification["mode"] == "statistical"
    assert len(verification["reevaluated_returns"]) == 100 and verification["p_value"] >= ALPHA


def _tamper_return(record):
    record["final_eval"]["returns"][3] += 10.0
    record["final_eval"]["mean_return"] = float(np.mean(record["final_eval"]["returns"]))


def _tamper_mean(record):
    record["final_eval"]["mean_return"] += 1.0


def _curve_backwards(record):
    record["curve"][2]["env_steps"], record["curve"][3]["env_steps"] = (record["curve"][3]["env_steps"],
                                                                        record["curve"][2]["env_steps"])


def _curve_beyond_totals(record):
    record["totals"]["env_steps"] = record["curve"][-1]["env_steps"] - 1


def _not_heldout(record):
    record["final_eval"]["episode_seeds"] = list(range(len(record["final_eval"]["returns"])))


@pytest.mark.parametrize("tamper, reason", [
    (_tamper_return, "final_eval does not reproduce: the policy is deterministic here and episode seed 1000000003"),
    (_tamper_mean, "is not the mean of its returns"),
    (_curve_backwards, "the curve goes backwards: env_steps falls"),
    (_curve_beyond_totals, "but totals.env_steps is only"),
    (_not_heldout, "are not the held-out seeds"),
], ids=["tampered-return", "tampered-mean", "curve-backwards", "curve-beyond-totals", "not-heldout-seeds"])
def test_rejects_a_tampered_record(board, tmp_path, capsys, tamper, reason):
    run = copy_run(PPO_RUN, tmp_path)
    edit_record(run, tamper)
    before = snapshot(board)
    capsys.readouterr()
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("promptpo-bench: error: rejected: ") and err.count("\n") == 1, err
    assert reason in err
    assert snapshot(board) == before


def test_rejects_a_tampered_policy(board, tmp_path, oracle_run, capsys):
    run = copy_run(oracle_run, tmp_path)
    policy = run / "policy.py"
    policy.write_text(policy.read_text() + "\n\nclass Policy:\n    def act(self, obs):\n        return 1\n")
    before = snapshot(board)
    capsys.readouterr()
    # a changed file no longer matches the record's sha256 ...
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
    assert "policy.py does not match the sha256 in record.json" in capsys.readouterr().err
    # ... and with the sha256 updated too, the changed policy does not reproduce the claimed returns
    edit_record(run, lambda record: record["policy"].update(sha256=sha256_file(policy)))
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
    assert "final_eval does not reproduce" in capsys.readouterr().err
    assert snapshot(board) == before


def test_rejects_inflated_returns_of_a_stochastic_policy(board, tmp_path, random_run, capsys):
    run = copy_run(random_run, tmp_path)

    def inflate(record):
        record["final_eval"]["returns"] = [r + 2000.0 for r in record["final_eval"]["returns"]]
        record["final_eval"]["mean_return"] = float(np.mean(record["final_eval"]["returns"]))

    edit_record(run, inflate)
    before = snapshot(board)
    assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
    assert "Welch's t-test p =" in capsys.readouterr().err
    assert snapshot(board) == before


def test_rejects_a_duplicate(board, oracle_run, tmp_path, capsys):
    before = snapshot(board)
    capsys.readouterr()
    renamed = copy_run(oracle_run, tmp_path)  # same policy on the same task, from another directory
    edit_record(renamed, lambda record: record.update(seed=7))
    for run in (oracle_run, renamed):
        assert cli.main(["submit", str(run), "--leaderboard", str(board)]) == 2
        err = capsys.readouterr().err
        assert "rejected: duplicate: the same policy" in err and err.count("\n") == 1
    assert snapshot(board) == before


def test_welch_p_value():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 50), rng.normal(0, 1, 100)
    assert welch_p_value(a, b) > ALPHA
    assert welch_p_value(a + 3, b) < ALPHA
    assert welch_p_value(np.ones(5), np.ones(10)) == 1.0
    assert welch_p_value(np.ones(5), np.zeros(10)) == 0.0
    assert welch_p_value(np.ones(1), np.ones(3)) == welch_p_value(np.ones(3), np.ones(1)) == 1.0


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy on a zero-variance sample
def test_welch_p_value_does_not_assume_equal_variances():
    """Welch's t and Welch-Satterthwaite's degrees of freedom, by hand: unequal variances and sizes (Student's
    pooled test gives another p)."""
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 1.0, 20), rng.normal(0.8, 6.0, 200)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    assert welch_p_value(a, b) == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
    constant = np.full(10, 0.5)  # one constant sample is still a t-test (a deterministic claim, a stochastic policy)
    for x, y in ((constant, a), (a, constant)):
        assert welch_p_value(x, y) == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue, rel=1e-9)
        assert 0.0 < welch_p_value(x, y) < 1.0


def test_rollout_re_evaluates_a_code_policy_run_directory(oracle_run, capsys):
    assert cli.main(["rollout", "NoiseWorld-Board0-v0", "--policy", str(oracle_run), "--episodes", "3",
                     "--seed", "1000000000", "--json"]) == 0
    record = json.loads((oracle_run / "record.json").read_text())
    assert json.loads(capsys.readouterr().out)["returns"] == record["final_eval"]["returns"][:3]


def test_submit_track_logs_to_wandb_offline(tmp_path, oracle_run):
    pytest.importorskip("wandb")
    from wandb_offline import history

    # in a process of its own, as users run it: W&B has written everything when that process has exited
    subprocess.run([sys.executable, "-m", "promptpo_bench.cli", "submit", str(oracle_run), "--leaderboard",
                    str(tmp_path / "board"), "--track"], cwd=tmp_path, env={**os.environ, "WANDB_MODE": "offline"},
                   check=True, capture_output=True, timeout=300)
    rows = history(tmp_path)
    record = json.loads((oracle_run / "record.json").read_text())
    assert [json.loads(row["charts/episodic_return"]) for row in rows] == [p["mean_return"] for p in record["curve"]]
    assert not list((tmp_path / "board").rglob("wandb"))  # W&B files stay out of the board
