"""algorithms/promptpo.py's decisions, in seconds: which candidate a round keeps, which policy the run outputs (the
best so far, scored on held-out seeds), what every environment step and token costs, and when a budget stops it.

The LLM is the scripted OpenAI-compatible server on 127.0.0.1 (a test double); candidates run in the real sandbox.
tests/e2e/test_promptpo.py runs the whole script as a user does (minutes); these call its pieces in-process.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from algorithm_files import load_algorithm
from scripted_server import Scripted, ScriptedLLMServer
from test_promptpo import (ALWAYS_UP, CRASHES_ON_FOURTH_STEP, DOWN_THEN_RIGHT, FEEDBACK, code_of, comparable, kind,
                           scripted_policies)

from promptpo_bench.errors import BenchError
from promptpo_bench.llm import ContextLengthError, Journal, LLMClient, LLMConfig, LLMError, Reply
from promptpo_bench.progress import Progress
from promptpo_bench.records import load_record
from promptpo_bench.rollout import HELDOUT_SEED_BASE, RolloutFailure
from promptpo_bench.sandbox import PolicyFailure

promptpo = load_algorithm("promptpo")

UP_AGAIN = ALWAYS_UP.replace("# bumps", "# the same plan, written again: bumps")  # other code, the same returns
NO_FEEDBACK = "No Feedback class from me."  # the run goes on without one (no Feedback sandbox to wait for)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")  # the scripted server takes any key


def make_args(**overrides) -> promptpo.Args:
    args = dict(env_id="NoiseWorld-v0", num_rounds=1, num_candidates=1, num_episodes=5, reflection=False,
                policy_lifetime="episode", max_repairs=0, max_feedback_repairs=0)
    return promptpo.Args(**{**args, **overrides})


def make_algo(tmp_path, server: ScriptedLLMServer | None = None, **overrides) -> promptpo.PromptPO:
    args = make_args(**overrides)
    client = LLMClient(LLMConfig(base_url=server.base_url if server else "http://127.0.0.1:9/v1"),
                       Journal(tmp_path / "llm.jsonl"))
    return promptpo.PromptPO(args, tmp_path, client, promptpo.Budget(args))


def attempt(request_id: str, returns: list[float], successes: list[bool] | None = None, **fields) -> promptpo.Attempt:
    return promptpo.Attempt(request_id, f"# code of {request_id}", returns=returns, lengths=[10] * len(returns),
                            successes=successes, env_steps=10 * len(returns), episodes=len(returns), **fields)


class TerminalDouble(io.StringIO):
    """TEST DOUBLE: a terminal in memory, so that the live progress bar is kept."""

    def isatty(self) -> bool:
        return True


def reply(prompt_tokens: int, completion_tokens: int) -> Reply:
    return Reply("text", prompt_tokens, completion_tokens, latency_s=0.0, cached=False)


# --- the selection key and the round's choice ----------------------------------------------------------------------

def test_success_rate_ranks_before_mean_return():
    sure = attempt("sure", [-5.0, -7.0], successes=[True, True])
    rich = attempt("rich", [100.0, 300.0], successes=[True, False])
    assert sure.key() == (1.0, -6.0) and rich.key() == (0.5, 200.0)
    assert sure.key() > rich.key()
    assert attempt("no-success-defined", [1.0, 2.0]).key() == (0.0, 1.5)
    assert attempt("never", [1.0, 2.0], successes=[False, False]).key() == (0.0, 1.5)


def test_ok_means_code_that_ran_without_failure():
    assert attempt("a", [1.0]).ok
    assert not attempt("a", [1.0], failure={"kind": "crash", "message": "boom"}).ok
    assert not promptpo.Attempt("a", None).ok


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)])
def test_the_round_keeps_its_best_candidate_in_any_order(tmp_path, order):
    """A poor, a good, a failed candidate whose partial episodes looked best, and an answer without code."""
    candidates = [attempt("poor", [-100.0] * 3), attempt("good", [900.0, 950.0, 1000.0]),
                  attempt("failed", [5000.0], failure={"kind": "crash", "message": "boom"}),
                  promptpo.Attempt("no-code", None, failure={"kind": "no_code", "message": "no block"})]
    attempts = [candidates[i] for i in order]
    result, returned = make_algo(tmp_path).select(3, [], attempts, worker=None)
    assert result.best.request_id == "good" and result.round == 3
    assert result.feedback == ["(no Feedback class)"] and result.reflection is None
    assert returned == attempts  # every candidate, failed ones too, for the record


def test_equal_candidates_go_to_the_lower_index(tmp_path):
    result, _ = make_algo(tmp_path).select(0, [], [attempt("first", [1.0, 3.0]), attempt("second", [2.0, 2.0])],
                                           worker=None)
    assert result.best.request_id == "first"


def test_a_round_with_no_working_candidate_has_no_best(tmp_path):
    failed = [attempt("a", [1.0], failure={"kind": "timeout", "message": "slow"}), promptpo.Attempt("b", None)]
    assert make_algo(tmp_path).select(0, [], failed, worker=None) == (None, failed)


def test_reflection_is_asked_about_the_round_and_an_llm_failure_only_skips_it(tmp_path):
    answers = iter([" It went well. \n", Scripted(status=400, text="bad request")])
    with ScriptedLLMServer(lambda request, _: next(answers)) as server:
        algo = make_algo(tmp_path, server, reflection=True)
        first, _ = algo.select(0, [], [attempt("poor", [-1.0]), attempt("good", [2.0])], worker=None)
        second, _ = algo.select(1, [first], [attempt("other", [1.0])], worker=None)
        asked = [request["messages"][1]["content"] for request in server.requests]
    assert first.reflection == "It went well." and second.reflection is None
    assert "round 0" in asked[0] and "# code of good" in asked[0] and "# code of poor" not in asked[0]
    assert "### Round 0" in asked[1] and "### Round 1" in asked[1] and "round 1" in asked[1]
    assert algo.budget.tokens()["llm_calls"] == 1  # the refused request paid nothing


def test_a_replay_that_misses_the_reflection_stops_the_run(tmp_path):
    args = make_args(reflection=True)
    client = LLMClient(LLMConfig(), Journal(tmp_path / "llm.jsonl"), replay=Journal(tmp_path / "empty.jsonl"))
    algo = promptpo.PromptPO(args, tmp_path, client, promptpo.Budget(args))
    with pytest.raises(LLMError, match="r0/reflection"):
        algo.select(0, [], [attempt("good", [2.0])], worker=None)


def test_the_prompt_marks_the_best_round_from_the_chosen_round_on(tmp_path):
    algo = make_algo(tmp_path, mark_best_from_round=3)
    rounds = [promptpo.RoundResult(0, attempt("r0", [5.0]), ["fine"]),
              promptpo.RoundResult(1, attempt("r1", [9.0]), ["better"]),
              promptpo.RoundResult(2, attempt("r2", [7.0]), ["worse"])]
    assert algo.history_text([]) == ""
    assert "best attempt so far" not in algo.history_text(rounds[:2])
    text = algo.history_text(rounds)
    assert "The best attempt so far is round 1.\n" in text and "### Round 2" in text


def test_a_prompt_too_long_drops_the_oldest_rounds_first(tmp_path):
    rounds = [promptpo.RoundResult(r, attempt(f"r{r}", [float(r)]), ["ok"]) for r in range(3)]

    def respond(request, _):  # this "model" holds at most one round of history, and no novel
        user = request["messages"][1]["content"]
        if user.count("### Round") > 1 or user.startswith("A novel."):
            return Scripted(status=400, error_code="context_length_exceeded", text="maximum context length is 9")
        return "an answer"

    with ScriptedLLMServer(respond) as server:
        algo = make_algo(tmp_path, server)
        assert algo.ask("r3/c0/a0", "Write a policy.{history}", rounds) == "an answer"
        sent = [request["messages"][1]["content"] for request in server.requests]
        with pytest.raises(ContextLengthError):  # nothing left to drop
            algo.ask("r3/c0/a1", "A novel.{history}")
    assert [[r for r in range(3) if f"### Round {r}" in text] for text in sent[:3]] == [[0, 1, 2], [1, 2], [2]]
    assert algo.budget.tokens()["llm_calls"] == 1 and len(rounds) == 3  # the caller's history is left alone


def test_the_feedback_the_llm_reads_is_on_the_winner_s_episodes(tmp_path):
    algo = make_algo(tmp_path)
    seeds = promptpo.round_seeds(algo.args, 0)
    poor = algo.evaluate("r0/c0/a0", code_of(ALWAYS_UP), seeds)
    good = algo.evaluate("r0/c1/a0", code_of(DOWN_THEN_RIGHT), seeds)
    algo.feedback_code = code_of(FEEDBACK)
    result, _ = algo.select(0, [], [poor, good], worker=None)
    assert result.best is good
    assert [line.split(" steps,")[0] for line in result.feedback] == [str(n) for n in good.lengths]


# --- the budget: steps, episodes, tokens, cost, and when to stop ---------------------------------------------------

def test_budget_adds_up_steps_episodes_and_every_reply():
    budget = promptpo.Budget(make_args())
    budget.add(120, 3)
    budget.add(7, 1)
    budget.add_reply(reply(1000, 20))
    budget.add_reply(reply(500, 3))
    assert (budget.env_steps, budget.episodes) == (127, 4)
    assert budget.tokens() == {"llm_calls": 2, "prompt_tokens": 1500, "completion_tokens": 23}
    assert budget.cost() is None and budget.so_far() == {"tokens": "1,523"}


def test_budget_costs_both_kinds_of_token_at_their_prices():
    budget = promptpo.Budget(make_args(price_prompt_per_mtok=2.0, price_completion_per_mtok=8.0))
    budget.add_reply(reply(3_000_000, 500_000))
    assert budget.cost() == 10.0
    assert budget.so_far() == {"tokens": "3,500,000", "cost": "$10.00"}
    assert promptpo.Budget(make_args(price_prompt_per_mtok=2.0)).cost() is None
    assert promptpo.Budget(make_args(price_completion_per_mtok=8.0)).cost() is None


def test_budget_is_exhausted_when_a_limit_is_reached_not_before():
    budget = promptpo.Budget(make_args(max_env_steps=100))
    budget.add(99, 1)
    assert budget.exhausted() is None
    budget.add(1, 0)
    assert budget.exhausted() == "max_env_steps 100 reached"
    tokens = promptpo.Budget(make_args(max_tokens=50))
    tokens.add_reply(reply(30, 19))
    assert tokens.exhausted() is None
    tokens.add_reply(reply(0, 1))  # prompt and completion tokens together
    assert tokens.exhausted() == "max_tokens 50 reached"
    unlimited = promptpo.Budget(make_args())
    unlimited.add(10**9, 10**6)
    unlimited.add_reply(reply(10**9, 10**9))
    assert unlimited.exhausted() is None


# --- episode seeds ---------------------------------------------------------------------------------------------------

def test_round_seeds_are_fixed_by_the_run_seed_and_never_held_out():
    args = make_args(seed=1, num_episodes=5)
    seeds = {r: promptpo.round_seeds(args, r) for r in range(-1, 20)}
    # pinned: the same run seed must give the same episodes in every version (resume and replay rely on it)
    assert seeds[0] == [189033389 + i for i in range(5)] and seeds[-1][0] == 335504127
    assert all(s == list(range(s[0], s[0] + 5)) for s in seeds.values())
    assert all(type(x) is int for s in seeds.values() for x in s)  # records store them as JSON integers
    assert all(0 <= s[0] < HELDOUT_SEED_BASE // 2 for s in seeds.values())  # room for any number of episodes
    assert len({s[0] for s in seeds.values()}) == len(seeds)  # every round (and the probe) its own episodes
    assert promptpo.round_seeds(make_args(seed=2, num_episodes=5), 0) != seeds[0]
    assert promptpo.round_seeds(make_args(seed=0, num_episodes=5), 0) != seeds[0]
    assert promptpo.round_seeds(make_args(seed=1, num_episodes=2), 3) == seeds[3][:2]
    assert promptpo.round_seeds(make_args(seed=-1, num_episodes=2), 0) == [489230592, 489230593]  # any int seeds


# --- one candidate: its rollout, its failures and what they cost ----------------------------------------------------

def test_a_candidate_that_crashes_mid_episode_still_pays_for_its_steps(tmp_path):
    algo = make_algo(tmp_path)
    result = algo.evaluate("r0/c0/a0", code_of(CRASHES_ON_FOURTH_STEP), promptpo.round_seeds(algo.args, 0))
    assert result.failure["kind"] == "crash" and "lost track of the board" in result.failure["traceback"]
    assert (result.env_steps, result.episodes) == (5 * 3, 5)  # 5 episodes side by side, 3 steps each
    assert (algo.budget.env_steps, algo.budget.episodes) == (15, 5)
    saved = json.loads((tmp_path / "candidates" / "r0_c0_a0.json").read_text())
    assert saved["env_steps"] == 15 and saved["failure"]["kind"] == "crash"


def test_a_working_candidate_records_every_episode(tmp_path, monkeypatch):
    rolled = []

    def spy(env_id, policy, seeds, *args, **kwargs):  # TEST DOUBLE: the real rollout, its seeds noted
        rolled.append(list(seeds))
        return real(env_id, policy, seeds, *args, **kwargs)

    real = promptpo.run_episodes
    monkeypatch.setattr(promptpo, "run_episodes", spy)
    algo = make_algo(tmp_path)
    seeds = promptpo.round_seeds(algo.args, 4)
    good = algo.evaluate("r4/c1/a0", code_of(DOWN_THEN_RIGHT), seeds)
    assert rolled == [seeds] and good.ok and good.code == code_of(DOWN_THEN_RIGHT)
    assert len(good.returns) == len(good.lengths) == good.episodes == 5 and np.mean(good.returns) > 0
    assert good.env_steps == sum(good.lengths) > 0 and good.successes is None  # NoiseWorld defines no success
    assert (algo.budget.env_steps, algo.budget.episodes) == (good.env_steps, 5)
    trajectories = algo.trajectories(good)
    assert [len(t) for t in trajectories] == [n + 1 for n in good.lengths]
    poor = algo.evaluate("r4/c2/a0", code_of(ALWAYS_UP), seeds)
    assert poor.returns == [-100.0] * 5 and poor.lengths == [100] * 5
    assert algo.budget.env_steps == good.env_steps + 500 and algo.budget.episodes == 10


@pytest.mark.parametrize("code, failure", [(None, "no_code"),
                                           ("class Policy:\n    def act(self, obs)\n", "load_error")])
def test_a_candidate_that_never_acts_costs_no_step(tmp_path, code, failure):
    algo = make_algo(tmp_path)
    result = algo.evaluate("r0/c0/a0", code, promptpo.round_seeds(algo.args, 0))
    assert result.failure["kind"] == failure and not result.ok
    assert (result.env_steps, result.episodes, result.returns) == (0, 0, [])
    assert (algo.budget.env_steps, algo.budget.episodes) == (0, 0)


def test_a_resumed_run_reuses_an_evaluation_and_counts_it_again(tmp_path, monkeypatch):
    first = make_algo(tmp_path)
    seeds = promptpo.round_seeds(first.args, 0)
    done = first.evaluate("r0/c0/a0", code_of(CRASHES_ON_FOURTH_STEP), seeds)
    resumed = make_algo(tmp_path)

    def no_sandbox(*args, **kwargs):  # TEST DOUBLE: a resumed run must not roll out again what it has
        raise AssertionError("rolled out again")

    monkeypatch.setattr(promptpo, "SandboxedPolicy", no_sandbox)
    assert resumed.evaluate("r0/c0/a0", code_of(CRASHES_ON_FOURTH_STEP), seeds) == done
    assert (resumed.budget.env_steps, resumed.budget.episodes) == (15, 5)
    with pytest.raises(AssertionError, match="rolled out again"):  # other code under the same id is new work
        resumed.evaluate("r0/c0/a0", code_of(ALWAYS_UP), seeds)


def test_repairs_until_a_candidate_works_and_every_attempt_is_paid_for(tmp_path):
    answers = iter(["I would go right.", CRASHES_ON_FOURTH_STEP, DOWN_THEN_RIGHT])
    with ScriptedLLMServer(lambda request, _: next(answers)) as server:
        algo = make_algo(tmp_path, server, max_repairs=2)
        algo.progress = Progress(1, "round 2", stream=TerminalDouble())
        final = algo.candidate(2, 1, [])
        usage, requests = server.reported_usage, server.requests
    assert final.ok and final.request_id == "r2/c1/a2" and final.code == code_of(DOWN_THEN_RIGHT)
    assert "no ```python code block" in requests[1]["messages"][-1]["content"]
    crashed = json.loads((tmp_path / "candidates" / "r2_c1_a1.json").read_text())["failure"]
    assert requests[2]["messages"][-1]["content"] == promptpo.REPAIR.format(**crashed)
    assert "lost track of the board" in crashed["traceback"]
    assert requests[2]["messages"][-2]["content"] == CRASHES_ON_FOURTH_STEP
    assert (algo.budget.env_steps, algo.budget.episodes) == (15 + final.env_steps, 5 + 5)
    fields = algo.progress.fields  # what the live bar shows
    assert (fields["answered"], fields["rolled_out"], fields["failed"]) == (3, 1, 2)
    assert algo.budget.tokens() == {"llm_calls": 3, "prompt_tokens": sum(u["prompt_tokens"] for u in usage),
                                    "completion_tokens": sum(u["completion_tokens"] for u in usage)}


def test_the_last_failed_repair_is_what_the_candidate_returns(tmp_path):
    with ScriptedLLMServer(lambda request, _: CRASHES_ON_FOURTH_STEP) as server:
        algo = make_algo(tmp_path, server, max_repairs=1)
        final = algo.candidate(0, 0, [])
        sent = len(server.requests)
    assert sent == 2 and final.request_id == "r0/c0/a1" and final.failure["kind"] == "crash"
    assert algo.budget.env_steps == 2 * 15


def test_no_answer_fails_the_candidate_and_a_replay_miss_stops_the_run(tmp_path):
    with ScriptedLLMServer(lambda request, _: Scripted(status=400, text="bad request")) as server:
        algo = make_algo(tmp_path, server, max_repairs=3)
        algo.progress = Progress(1, "round 0", stream=TerminalDouble())
        failed = algo.candidate(0, 0, [])
        sent = len(server.requests)
    assert sent == 1 and failed.failure["kind"] == "llm" and failed.request_id == "r0/c0/a0" and failed.code is None
    assert algo.progress.fields == {"failed": 1}
    args = make_args()
    replaying = promptpo.PromptPO(args, tmp_path / "replay", LLMClient(
        LLMConfig(), Journal(tmp_path / "replay.jsonl"), replay=Journal(tmp_path / "empty.jsonl")),
        promptpo.Budget(args))
    with pytest.raises(LLMError, match="r0/c0/a0"):
        replaying.candidate(0, 0, [])


def test_a_spent_budget_stops_a_candidate_before_it_asks(tmp_path):
    with ScriptedLLMServer(lambda request, _: CRASHES_ON_FOURTH_STEP) as server:
        algo = make_algo(tmp_path, server, max_repairs=3, max_env_steps=20)
        crashed = algo.candidate(0, 0, [])  # its first attempt spends 15 steps, its repair 15 more: then no more
        stopped = make_algo(tmp_path / "spent", server, max_env_steps=20)
        stopped.budget.add(20, 1)
        never = stopped.candidate(0, 0, [])
        sent = len(server.requests)
    assert crashed.request_id == "r0/c0/a1" and crashed.failure["kind"] == "crash"  # its own failure is kept
    assert never.failure == {"kind": "budget", "message": "max_env_steps 20 reached"} and never.code is None
    assert sent == 2 and algo.budget.env_steps == 30


# --- whole runs, in-process: the output is the best policy so far, scored on held-out seeds -------------------------

class RecordingWandb:
    """TEST DOUBLE: a W&B run that keeps the rows it is given."""

    def __init__(self):
        self.rows, self.finished = [], False

    def log(self, row: dict) -> None:
        self.rows.append(dict(row))

    def finish(self) -> None:
        self.finished = True


class ClockDouble:
    """TEST DOUBLE of the `time` module main reads: `time()` gives the readings it was made with, in order."""

    def __init__(self, *readings: float):
        self.readings = iter(readings)

    def time(self) -> float:
        return next(self.readings)


def run_main(tmp_path, answers: list[str], feedback: str = NO_FEEDBACK, then=None,
             **overrides) -> tuple[dict, dict, list]:
    """promptpo.main with one candidate per round, handed `answers` in order, then `then(server)` while the server is
    up; the record, summary.json and the usage the server reported. The run directory's parent does not exist yet."""
    def respond(request, index):
        return feedback if kind(request) == "feedback" else policies(request, index)

    policies = scripted_policies(*answers)
    with ScriptedLLMServer(respond) as server:
        args = make_args(**{"num_rounds": len(answers), "num_episodes": 2, "eval_episodes": 3,
                            "run_dir": str(tmp_path / "runs" / "run"), "llm_base_url": server.base_url, **overrides})
        assert promptpo.main(args) == 0
        usage = list(server.reported_usage)
        run = tmp_path / "runs" / "run"
        record, summary = load_record(run), json.loads((run / "summary.json").read_text())
        if then is not None:
            then(server)
    return record, summary, usage


def test_a_final_evaluation_that_fails_is_printed_and_logged_as_no_score(tmp_path, monkeypatch, capsys):
    """A policy that crashes on the held-out seeds (the red team's recognised them by replaying Reacher's reset)
    leaves partial returns, 0 for the episodes never played: the record keeps them with the failure, and neither the
    final line nor W&B shows them as a score."""
    real = promptpo.run_episodes

    def failing_on_held_out_seeds(env_id, policy, seeds, *args, **kwargs):  # a test double around the real rollout
        episodes = real(env_id, policy, seeds, *args, **kwargs)
        if seeds[0] >= HELDOUT_SEED_BASE:
            raise RolloutFailure(PolicyFailure("crash", "boom", episode_id=1), episodes)
        return episodes

    monkeypatch.setattr(promptpo, "run_episodes", failing_on_held_out_seeds)
    wandb = RecordingWandb()
    monkeypatch.setattr(promptpo, "start_wandb", lambda *args: wandb)
    record, _, _ = run_main(tmp_path, [DOWN_THEN_RIGHT], track=True)
    assert record["final_eval"]["failure"]["kind"] == "crash"
    final_line = [line for line in capsys.readouterr().out.splitlines() if line.startswith("final policy")]
    assert final_line[0].startswith("final policy (r0/c0/a0) on 3 held-out episodes: failed (crash: boom): no score | ")
    assert wandb.finished and not any("charts/final_eval_return" in row for row in wandb.rows)


def test_a_worse_later_round_never_replaces_the_best_so_far(tmp_path, monkeypatch, capsys):
    wandb = RecordingWandb()
    monkeypatch.setattr(promptpo, "start_wandb", lambda *args: wandb)
    monkeypatch.setattr(promptpo, "time", ClockDouble(100.0, 100.0, 100.5))  # the start, then each round's end
    record, summary, usage = run_main(tmp_path, [DOWN_THEN_RIGHT, ALWAYS_UP, DOWN_THEN_RIGHT], feedback=FEEDBACK,
                                      max_env_steps=300, track=True)
    run = tmp_path / "runs" / "run"
    candidates = {p.stem: json.loads(p.read_text()) for p in (run / "candidates").glob("r*_c0_a0.json")}
    good, poor = candidates["r0_c0_a0"], candidates["r1_c0_a0"]
    good_mean = float(np.mean(good["returns"]))
    assert summary["best_request_id"] == "r0/c0/a0" and (run / "policy.py").read_text() == code_of(DOWN_THEN_RIGHT)
    assert [p["mean_return"] for p in record["curve"]] == [good_mean] * 2 and poor["returns"] == [-100.0] * 2
    final = record["final_eval"]
    assert final["episode_seeds"] == [HELDOUT_SEED_BASE + i for i in range(3)] and final["mean_return"] > 0

    # the probe (one random episode) and round 0 stay under 300 steps; round 1's 200 pass them: round 2 never runs
    probe = json.loads((run / "candidates" / "feedback_probe.json").read_text())["env_steps"]
    steps = [probe + good["env_steps"], probe + good["env_steps"] + 200]
    assert summary["stopped"] == "max_env_steps 300 reached" and set(candidates) == {"r0_c0_a0", "r1_c0_a0"}
    assert [p["env_steps"] for p in record["curve"]] == steps
    assert record["totals"]["env_steps"] == steps[-1] and record["totals"]["episodes"] == 1 + 2 + 2
    assert record["totals"]["llm_calls"] == len(usage) == 3  # the Feedback request and two candidates
    assert record["totals"]["prompt_tokens"] == sum(u["prompt_tokens"] for u in usage)
    assert record["config"]["description_variant"] == "paper"
    assert summary["feedback_sha256"] == hashlib.sha256((run / "feedback.py").read_bytes()).hexdigest()
    assert summary["feedback_repairs_in_rounds"] == 0

    out = capsys.readouterr()
    tokens = [f"{p['prompt_tokens']}+{p['completion_tokens']}" for p in record["curve"]]
    lines = out.out.splitlines()
    assert lines[0].startswith("PromptPO on NoiseWorld-v0: 3 rounds x 1 candidates x 2 episodes (flags), paper "
                               "description, LLM gpt-4o-mini at http://127.0.0.1:")
    assert lines[1:3] == [
        f"round 0: 1/1 candidates ran, round best {good_mean:.2f}, best so far {good_mean:.2f} | env steps "
        f"{steps[0]}, tokens {tokens[0]}",
        f"round 1: 1/1 candidates ran, round best -100.00, best so far {good_mean:.2f} | env steps {steps[1]}, "
        f"tokens {tokens[1]}"]
    assert lines[3].startswith(f"final policy (r0/c0/a0) on 3 held-out episodes: mean return "
                               f"{final['mean_return']:.2f}")
    tokens_used = sum(u["prompt_tokens"] + u["completion_tokens"] for u in usage)
    assert lines[3].endswith(f" | {steps[1]} env steps, {tokens_used} tokens | stopped: max_env_steps 300 reached")
    assert "WARNING" not in out.err

    # W&B: one row per round and the final score; steps/s by the clock, also for a round quicker than it can tell
    assert [row["global_step"] for row in wandb.rows] == steps + [steps[-1]] and wandb.finished
    assert wandb.rows[0]["charts/SPS"] > 10**9 * steps[0] // 2 and wandb.rows[1]["charts/SPS"] == 2 * steps[1]
    assert [row["charts/episodic_return"] for row in wandb.rows[:2]] == [good_mean, -100.0]
    assert [row["charts/best_return"] for row in wandb.rows[:2]] == [good_mean, good_mean]
    assert [row["charts/failed_candidates"] for row in wandb.rows[:2]] == [0, 0]
    assert wandb.rows[2] == {"global_step": steps[-1], "charts/final_eval_return": final["mean_return"]}


def test_a_later_round_as_good_as_the_best_does_not_replace_it_and_a_resumed_run_ends_the_same(tmp_path, monkeypatch,
                                                                                                capsys):
    """Two candidates a round, one without code; round 1's working one plays exactly as round 0's."""
    bars = []

    def terminal_progress(*args, **kwargs):  # the live bars, drawn on a test-double terminal
        bars.append(Progress(*args, stream=TerminalDouble(), **kwargs))
        return bars[-1]

    def resume(server):
        sent = len(server.requests)
        assert promptpo.main(promptpo.Args(resume=str(tmp_path / "runs" / "run"))) == 0
        assert len(server.requests) == sent  # every answer and evaluation was kept

    monkeypatch.setattr(promptpo, "Progress", terminal_progress)
    record, summary, usage = run_main(tmp_path, [ALWAYS_UP, NO_FEEDBACK, UP_AGAIN, NO_FEEDBACK], num_rounds=2,
                                      num_candidates=2, num_episodes=None, then=resume)  # the recipe's 5 episodes
    assert summary["best_request_id"].startswith("r0/") and summary["stopped"] is None
    assert (tmp_path / "runs" / "run" / "policy.py").read_text() == code_of(ALWAYS_UP)
    assert [p["round"] for p in record["curve"]] == [0, 1] and record["final_eval"]["mean_return"] == -100.0
    assert record["config"]["num_episodes"] == 5 and record["totals"]["episodes"] == 1 + 2 * 5
    out = capsys.readouterr().out.split("run directory:")[0]  # the first run's output
    assert "2 rounds x 2 candidates x 5 episodes (flags and the paper's recipe for this task)" in out
    assert "round 1: 1/2 candidates ran, round best -100.00, best so far -100.00 | " in out and "stopped" not in out
    rounds = bars[0].fields  # the first run's live bar, as its last round left it
    assert (rounds["answered"], rounds["rolled_out"], rounds["failed"], rounds["best"]) == (2, 1, 1, "-100")
    resumed = load_record(tmp_path / "runs" / "run")
    assert comparable(resumed) == comparable(record) and resumed["started_at"] == record["started_at"]


def test_a_final_policy_that_fails_on_held_out_episodes_is_recorded_with_its_failure(tmp_path):
    """Round 0's two episodes end by step 18; the second held-out episode (seed 1,000,000,001) takes 35 steps."""
    gives_up = DOWN_THEN_RIGHT.replace("    def act(self, obs):\n", "    t = 0\n\n    def act(self, obs):\n"
                                       "        self.t += 1\n        assert self.t < 20, 'too far'\n")
    record, summary, _ = run_main(tmp_path, [gives_up])
    final = record["final_eval"]
    assert summary["best_request_id"] == "r0/c0/a0" and final["failure"]["kind"] == "crash"
    assert "too far" in final["failure"]["traceback"] and final["lengths"][:2] == [19, 19]


def test_a_run_where_no_candidate_works_outputs_nothing(tmp_path, capsys):
    with ScriptedLLMServer(lambda request, _: NO_FEEDBACK) as server:
        args = make_args(num_rounds=2, run_dir=str(tmp_path / "runs" / "run"), llm_base_url=server.base_url)
        assert promptpo.main(args) == 1
    assert "no candidate ran successfully" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "run" / "policy.py").exists()
    assert not (tmp_path / "runs" / "run" / "record.json").exists()


def test_a_missing_replay_file_is_an_error_before_any_work(tmp_path):
    args = make_args(run_dir=str(tmp_path / "run"), llm_replay=str(tmp_path / "nowhere.jsonl"))
    with pytest.raises(BenchError, match="nowhere.jsonl does not exist"):
        promptpo.main(args)
    assert not (tmp_path / "run").exists()
