"""PromptPO: an LLM writes Python policies from a task's description and improves them from rollout feedback.

The loop of Hatgis-Kessell & Brunskill (2026), "When are LLMs Sufficient Policy Optimizers for Sequential RL
Tasks?", told top to bottom in the manner of CleanRL:

  round 0   ask once for a `Feedback` class (repaired up to --max-feedback-repairs times), then for
            --num-candidates independent `Policy` classes (rounds, candidates and episodes: the task's recipe,
            the paper's budget on it, unless flags say otherwise);
  each      every candidate is rolled out for --num-episodes episodes in the sandbox; an answer without code, a
  round     missing class, a crash, a timeout or an invalid action goes back to the LLM with the error (up to
            --max-repairs times); the best candidate (success rate first where the task defines success, then
            mean return) joins the history, with its per-episode returns, its Feedback lines (a Feedback
            class that fails on them is repaired, as in round 0, and the repair serves later rounds) and, with
            --reflection, a short reflection the LLM writes comparing it with earlier attempts;
  later     the prompt shows the whole history and asks for a better re-implementation; from round
  rounds    --mark-best-from-round on, the best attempt so far is marked.

Where this improves on the reference: generated code runs only in sandboxed worker processes; the best policy
*so far* (not the last round's) is the run's output and is scored on held-out episode seeds; every environment
step and every token is counted; all candidates of a round roll out on the same episode seeds (common random
numbers make the comparison fairer); every LLM exchange is journaled in llm.jsonl, which makes runs resumable
(--resume) and exactly replayable without an endpoint (--llm-replay).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

import promptpo_bench  # noqa: F401  (registers the suite's tasks)
from promptpo_bench import registry
from promptpo_bench.errors import BenchError
from promptpo_bench.llm import ContextLengthError, Journal, LLMClient, LLMConfig, LLMError, Reply, extract_code
from promptpo_bench.progress import Progress
from promptpo_bench.records import RunRecorder, atomic_write_json, final_eval, run_dir_of, sha256_file
from promptpo_bench.rollout import (HELDOUT_SEED_BASE, RandomPolicy, RolloutFailure, heldout_seeds, reusing_envs,
                                    run_episodes)
from promptpo_bench.sandbox import (Limits, PolicyFailure, SandboxedFeedback, SandboxedPolicy, check_sandbox,
                                    discard_worker, spawn_worker)
from promptpo_bench.tracking import start_wandb


# what `promptpo-bench sweep` needs to know about this file; it reads this literal without importing the file
SWEEP_TRAITS = {"budget_flag": "--max-env-steps", "uses_llm": True, "resumable": True}


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the default run directory)"""
    env_id: str = "NoiseWorld-v0"
    """the task id (see `promptpo-bench tasks`)"""
    env_kwargs: str = "{}"
    """kwargs of the task as JSON, e.g. '{"board": 3}'"""
    seed: int = 1
    """seed of the run: it fixes the episode seeds of every rollout"""
    run_dir: str | None = None
    """where the run is written (default: runs/{env_id}__{exp_name}__{seed}__{unix_time})"""
    description_variant: str | None = None
    """what the LLM is told: a variant of the task's description (default: the paper's information; list them with
    `promptpo-bench describe ID --list-variants`, e.g. NoiseWorld: paper, paper-key-info, explained)"""
    track: bool = False
    """log to Weights & Biases (WANDB_MODE=offline works without an account)"""
    wandb_project_name: str = "promptpo-bench"
    """the W&B project"""
    wandb_entity: str | None = None
    """the W&B entity (team)"""
    wandb_group: str | None = None
    """the W&B group of the run (`promptpo-bench sweep --track` groups a sweep's runs)"""

    llm_base_url: str | None = None
    """an OpenAI-compatible endpoint (default: $OPENAI_BASE_URL, else OpenAI); the key comes from $OPENAI_API_KEY"""
    llm_model: str = "gpt-4o-mini"
    """the model name the endpoint serves"""
    llm_temperature: float = 1.0
    """sampling temperature"""
    llm_timeout: float = 300.0
    """seconds one HTTP request may take before it is retried"""
    llm_max_concurrency: int = 32
    """LLM requests in flight at once (a round sends num_candidates of them, round 0 one more for Feedback)"""
    llm_replay: str | None = None
    """answer every request from this llm.jsonl instead of an endpoint (an exact rerun; a miss is an error)"""
    resume: str | None = None
    """continue the run in this directory: answers and evaluations already made are reused, not paid again"""

    num_rounds: int | None = None
    """optimisation rounds (default: the task's recipe, the paper's rounds on it: 5, 10 or 20)"""
    num_candidates: int | None = None
    """independent policies asked for in each round, the paper's N (default: the task's recipe, 10)"""
    num_episodes: int | None = None
    """episodes each candidate is rolled out for (default: the task's recipe, 5)"""
    eval_episodes: int = 50
    """held-out episodes the final policy is scored on"""
    max_repairs: int = 10
    """times a failing candidate is sent back with its error"""
    max_feedback_repairs: int = 3
    """times a failing Feedback class is sent back with its error (in round 0 and again in every round, as in the paper)"""
    reflection: bool = True
    """ask for a short reflection after each round and show it in later prompts"""
    mark_best_from_round: int = 10
    """from this round on, the prompt marks the best attempt so far (the paper: 10)"""
    num_workers: int = os.cpu_count() or 1
    """candidates rolled out at the same time (each in its own sandbox process)"""

    max_env_steps: int | None = None
    """stop cleanly once this many environment steps were taken"""
    max_tokens: int | None = None
    """stop cleanly once this many tokens (prompt + completion) were used"""
    price_prompt_per_mtok: float | None = None
    """USD per million prompt tokens, to report cost_usd"""
    price_completion_per_mtok: float | None = None
    """USD per million completion tokens, to report cost_usd"""

    act_timeout: float = 1.0
    """seconds a policy may take for one act call (a Feedback class: for one summarize_trajectory call)"""
    episode_timeout: float = 120.0
    """seconds of act calls a policy may take in one episode"""
    memory_mb: int = 2048
    """address-space limit of a sandboxed policy process"""
    policy_lifetime: Literal["rollout", "episode"] = "rollout"
    """how long one Policy() lives: rollout (the paper's: one object plays a rollout's episodes in order, the final
    evaluation's too) or episode (a new object per episode, episodes side by side)"""
    unsafe_sandbox: bool = False
    """run generated code even where a sandbox layer is unavailable here (the run is marked and cannot be submitted)"""


SYSTEM_PROMPT = """You are an expert in reinforcement learning and Python. You write policies as Python code for a \
task that is described to you in Python. The transition dynamics are not given: infer them from the returns and \
the feedback you are shown. Use only the Python standard library and numpy. Answer with exactly one fenced \
```python code block that holds the complete code."""

FEEDBACK_REQUEST = """{context}
Write a class `Feedback` with a method `summarize_trajectory(self, traj) -> str`, where `traj` is the list of \
`Observation` objects of one episode (the first is the initial observation). Return a short text, a few lines at \
most, that summarises what happened in the episode in a way that helps to improve a policy for this task."""

POLICY_REQUEST = """{context}
Write a class `Policy`, constructed with no arguments, with a method `act(self, obs)` that takes an `Observation` \
and returns {action}. {lifetime} Aim for the highest expected total reward of an episode.{history}"""

LIFETIME = {"rollout": "One `Policy()` object plays all the episodes of a rollout, one after another, so it may keep "
                       "state between steps and between episodes.",
            "episode": "A new `Policy()` is created for every episode, so it may keep state between steps."}

HISTORY = """

Your best policy of each earlier round, with the returns of its episodes and the Feedback on each episode:
{rounds}
{mark}Write a new, complete implementation of `Policy` that attains a higher return than all previous attempts."""

REPAIR = """Your code failed: {kind}: {message}
{traceback}
Fix it and answer with the complete corrected code in one ```python block."""

REFLECTION_REQUEST = """{context}
{rounds}
In 3-4 sentences, reflect on the latest attempt (round {round}) compared with the earlier ones: what changed, \
what helped or hurt, and what to try next. Answer in plain text, without code."""


@dataclass
class Attempt:
    """One candidate answer and how it fared: its code, its episodes or its failure."""

    request_id: str
    code: str | None
    returns: list[float] = dataclasses.field(default_factory=list)
    lengths: list[int] = dataclasses.field(default_factory=list)
    successes: list[bool] | None = None
    env_steps: int = 0
    episodes: int = 0
    failure: dict | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and self.code is not None

    def key(self) -> tuple[float, float]:
        """Selection key: success rate first where the task defines success, then mean return."""
        return (float(np.mean(self.successes)) if self.successes else 0.0, float(np.mean(self.returns)))


@dataclass
class RoundResult:
    """The best candidate of a round and what the LLM is shown about it."""

    round: int
    best: Attempt
    feedback: list[str]
    reflection: str | None = None


class Budget:
    """Cumulative environment steps and tokens (shared by concurrent candidates) and the run's stopping limits.

    Tokens are counted as answers are used, cached ones included: a resumed run counts what the interrupted one
    paid for, round by round, exactly as a run that was never interrupted.
    """

    def __init__(self, args: Args):
        self.args = args
        self.env_steps, self.episodes = 0, 0
        self._tokens = {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()

    def add(self, env_steps: int, episodes: int) -> None:
        with self._lock:
            self.env_steps += env_steps
            self.episodes += episodes

    def add_reply(self, reply: Reply) -> None:
        with self._lock:
            self._tokens["llm_calls"] += 1
            self._tokens["prompt_tokens"] += reply.prompt_tokens
            self._tokens["completion_tokens"] += reply.completion_tokens

    def tokens(self) -> dict[str, int]:
        with self._lock:
            return dict(self._tokens)

    def cost(self) -> float | None:
        """USD so far at --price-*-per-mtok (None without both prices)."""
        if self.args.price_prompt_per_mtok is None or self.args.price_completion_per_mtok is None:
            return None
        tokens = self.tokens()
        return (tokens["prompt_tokens"] * self.args.price_prompt_per_mtok
                + tokens["completion_tokens"] * self.args.price_completion_per_mtok) / 1e6

    def so_far(self) -> dict[str, str]:
        """Tokens (and cost, with prices) so far, for the progress bar."""
        tokens, cost = self.tokens(), self.cost()
        return {"tokens": f"{tokens['prompt_tokens'] + tokens['completion_tokens']:,}",
                **({} if cost is None else {"cost": f"${cost:.2f}"})}

    def exhausted(self) -> str | None:
        """Why the run must stop now, or None."""
        tokens = self.tokens()
        if self.args.max_env_steps is not None and self.env_steps >= self.args.max_env_steps:
            return f"max_env_steps {self.args.max_env_steps} reached"
        if self.args.max_tokens is not None and \
                tokens["prompt_tokens"] + tokens["completion_tokens"] >= self.args.max_tokens:
            return f"max_tokens {self.args.max_tokens} reached"
        return None


def action_text(space) -> str:
    if hasattr(space, "n"):
        return f"an action: an integer in {int(space.start)}..{int(space.start) + int(space.n) - 1}"
    return (f"an action: a list or numpy array of shape {space.shape} with values in "
            f"[{space.low.min():g}, {space.high.max():g}] (per dimension: low {space.low.tolist()}, "
            f"high {space.high.tolist()})")


def round_seeds(args: Args, round_index: int) -> list[int]:
    """The optimisation episode seeds of a round (-1: the Feedback probe), shared by its candidates, never held out."""
    entropy = [args.seed % 2**32, round_index + 1]
    base = int(np.random.SeedSequence(entropy).generate_state(1)[0]) % (HELDOUT_SEED_BASE // 2)
    return [base + i for i in range(args.num_episodes)]


def describe_history(history: list[RoundResult]) -> str:
    parts = []
    for r in history:
        lines = [f"### Round {r.round}", "```python", r.best.code.rstrip(), "```",
                 f"Returns of its {len(r.best.returns)} episodes: {[round(x, 2) for x in r.best.returns]} "
                 f"(mean {np.mean(r.best.returns):.2f})"]
        if r.best.successes is not None:
            lines.append(f"Successes: {r.best.successes}")
        lines += [f"Feedback on episode {i + 1}: {text}" for i, text in enumerate(r.feedback)]
        if r.reflection:
            lines.append(f"Reflection: {r.reflection}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


class PromptPO:
    """The state of one run: the LLM, the sandboxed rollouts, the accounting and the run directory."""

    def __init__(self, args: Args, run_dir: Path, client: LLMClient, budget: Budget):
        self.args, self.run_dir, self.client, self.budget = args, run_dir, client, budget
        self.env_kwargs = registry.parse_kwargs(args.env_kwargs)
        self.spec = registry.get(args.env_id)
        env = registry.make(args.env_id, **self.env_kwargs)
        self.action_space = env.action_space
        env.close()
        self.context = registry.describe(args.env_id, args.description_variant, **self.env_kwargs)
        self.observation = f"{self.spec.description}:Observation"
        self.limits = Limits(act_seconds=args.act_timeout, episode_seconds=args.episode_timeout,
                             memory_mb=args.memory_mb)
        self.llm_slots = threading.Semaphore(args.llm_max_concurrency)
        self.rollout_slots = threading.Semaphore(args.num_workers)
        self.feedback_code: str | None = None  # the Feedback in use: round 0's, or its latest repair
        self.feedback_repairs = 0  # repairs asked for in rounds, after the first check (each one in llm.jsonl)
        self.progress = Progress(args.num_candidates, "round 0", unit="candidate")  # a live bar on a terminal only
        (run_dir / "candidates").mkdir(parents=True, exist_ok=True)

    # -- talking to the LLM ------------------------------------------------------------------------------------------

    def ask(self, request_id: str, prompt: str, history: list[RoundResult] | None = None,
            followup: list[dict] | None = None) -> str:
        """One answer; `{history}` in the prompt becomes the history, dropped oldest first if the prompt is too long."""
        history = list(history or [])
        while True:
            user = prompt.replace("{history}", self.history_text(history))
            messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
            try:
                with self.llm_slots:
                    reply = self.client.chat(request_id, messages + (followup or []))
                self.budget.add_reply(reply)
                self.progress.set(**self.budget.so_far())
                return reply.text
            except ContextLengthError:
                if not history:
                    raise
                history.pop(0)

    def history_text(self, history: list[RoundResult]) -> str:
        if not history:
            return ""
        best = max(history, key=lambda r: r.best.key())
        mark = (f"The best attempt so far is round {best.round}.\n"
                if history[-1].round + 1 >= self.args.mark_best_from_round else "")
        return HISTORY.format(rounds=describe_history(history), mark=mark)

    # -- one candidate: answer, rollout, repair ----------------------------------------------------------------------

    def candidate(self, round_index: int, index: int, history: list[RoundResult]) -> Attempt:
        """Ask for a policy and roll it out; send failures back for repair; the last attempt is returned."""
        prompt = POLICY_REQUEST.format(context=self.context, action=action_text(self.action_space),
                                       lifetime=LIFETIME[self.args.policy_lifetime], history="{history}")
        seeds = round_seeds(self.args, round_index)
        followup: list[dict] = []
        attempt = Attempt(request_id="", code=None)
        for repair in range(self.args.max_repairs + 1):
            request_id = f"r{round_index}/c{index}/a{repair}"
            stop = self.budget.exhausted()
            if stop:
                attempt.failure = attempt.failure or {"kind": "budget", "message": stop}
                return attempt
            worker = spawn_worker()  # its start-up overlaps the wait for the answer
            try:
                answer = self.ask(request_id, prompt, history, followup)
                self.progress.add(answered=1)
                attempt = self.evaluate(request_id, extract_code(answer), seeds, worker)
                self.progress.add(**{"rolled_out" if attempt.ok else "failed": 1})
            except LLMError as error:
                if error.kind == "replay_miss":
                    raise
                self.progress.add(failed=1)
                return Attempt(request_id, None, failure={"kind": "llm", "message": str(error)})
            finally:
                discard_worker(worker)  # a no-op when the sandbox used it (and killed it on closing)
            if attempt.ok:
                return attempt
            followup = [{"role": "assistant", "content": answer},
                        {"role": "user", "content": REPAIR.format(traceback=attempt.failure.get("traceback") or "",
                                                                  kind=attempt.failure["kind"],
                                                                  message=attempt.failure["message"])}]
        return attempt

    def evaluate(self, request_id: str, code: str | None, seeds: list[int], worker=None) -> Attempt:
        """Roll `code` out in the sandbox (or reuse a finished evaluation of the same code on resume)."""
        cache = self.run_dir / "candidates" / (request_id.replace("/", "_") + ".json")
        if cache.is_file():
            saved = json.loads(cache.read_text())
            if saved["code"] == code:
                attempt = Attempt(**{k: saved[k] for k in Attempt.__dataclass_fields__})
                self.budget.add(attempt.env_steps, attempt.episodes)
                return attempt
        attempt = Attempt(request_id, code)
        if code is None:
            attempt.failure = {"kind": "no_code", "message": "the answer has no ```python code block"}
        else:
            (cache.with_suffix(".py")).write_text(code)
            with self.rollout_slots:
                try:
                    with SandboxedPolicy(code, self.observation, self.action_space, self.limits, worker=worker,
                                         lifetime=self.args.policy_lifetime, unsafe=self.args.unsafe_sandbox) as policy:
                        episodes = run_episodes(self.args.env_id, policy, seeds, self.env_kwargs,
                                                record_observations=True, variant=self.args.description_variant)
                    np.save(cache.with_suffix(".npy"), np.concatenate([np.stack(t) for t in episodes.observations]))
                    attempt.returns, attempt.lengths = episodes.returns.tolist(), episodes.lengths.tolist()
                    attempt.successes = None if episodes.successes is None else episodes.successes.tolist()
                    attempt.env_steps, attempt.episodes = episodes.env_steps, len(seeds)
                except PolicyFailure as failure:  # failed while loading: no step taken
                    attempt.failure = failure.to_dict()
                except RolloutFailure as error:
                    attempt.failure = error.failure.to_dict()
                    attempt.env_steps = error.env_steps
                    attempt.episodes = int(np.count_nonzero(error.partial.lengths))
        self.budget.add(attempt.env_steps, attempt.episodes)
        atomic_write_json(cache, dataclasses.asdict(attempt))
        return attempt

    # -- the Feedback class ------------------------------------------------------------------------------------------

    def feedback_class(self) -> str | None:
        """Ask for Feedback and check it on one uniformly random episode (counted); repair failures."""
        probe = run_episodes(self.args.env_id, RandomPolicy(self.action_space, self.args.seed),
                             round_seeds(self.args, -1)[:1], self.env_kwargs, record_observations=True,
                             variant=self.args.description_variant)  # Feedback reads the policy's Observation
        self.budget.add(probe.env_steps, 1)
        atomic_write_json(self.run_dir / "candidates" / "feedback_probe.json",
                          {"seeds": probe.seeds, "env_steps": probe.env_steps, "returns": probe.returns.tolist()})
        followup: list[dict] = []
        for repair in range(self.args.max_feedback_repairs + 1):
            try:
                answer = self.ask(f"feedback/a{repair}", FEEDBACK_REQUEST.format(context=self.context),
                                  followup=followup)
            except LLMError as error:
                if error.kind == "replay_miss":
                    raise
                return None
            code = extract_code(answer)
            failure = {"kind": "no_code", "message": "the answer has no ```python code block"} if code is None \
                else self.summaries(code, probe.observations)[1]
            if failure is None:
                (self.run_dir / "feedback.py").write_text(code)
                return code
            followup = [{"role": "assistant", "content": answer},
                        {"role": "user", "content": REPAIR.format(kind=failure["kind"], message=failure["message"],
                                                                  traceback=failure.get("traceback") or "")}]
        return None

    def trajectories(self, attempt: Attempt) -> list[np.ndarray]:
        """The observations of each episode of a successful attempt (each has length + 1 rows)."""
        rows = np.load(self.run_dir / "candidates" / (attempt.request_id.replace("/", "_") + ".npy"))
        return np.split(rows, np.cumsum([n + 1 for n in attempt.lengths])[:-1])

    def summaries(self, code: str, trajectories: list, worker=None) -> tuple[list[str], dict | None]:
        """Feedback text per episode, run in the sandbox; on a failure, the failure instead of the lines."""
        try:
            with SandboxedFeedback(code, self.observation, self.limits, worker=worker,
                                   unsafe=self.args.unsafe_sandbox) as feedback:
                return [feedback.summarize(np.stack(t)) for t in trajectories], None
        except PolicyFailure as failure:
            return [], failure.to_dict()

    def round_feedback(self, round_index: int, trajectories: list, worker) -> list[str]:
        """The Feedback lines on a round's best episodes; a failing Feedback is repaired as in the paper, every round.

        Each repair is an LLM exchange (`r{round}/feedback/a{k}` in llm.jsonl, its tokens counted) and its code is
        kept in candidates/; a repair that works becomes the Feedback of this and later rounds (feedback.py).
        """
        code = self.feedback_code
        lines, failure = self.summaries(code, trajectories, worker)
        for repair in range(1, self.args.max_feedback_repairs + 1):
            if failure is None:
                break
            followup = [{"role": "assistant", "content": f"```python\n{code}\n```"},
                        {"role": "user", "content": REPAIR.format(kind=failure["kind"], message=failure["message"],
                                                                  traceback=failure.get("traceback") or "")}]
            self.feedback_repairs += 1
            try:
                answer = self.ask(f"r{round_index}/feedback/a{repair}", FEEDBACK_REQUEST.format(context=self.context),
                                  followup=followup)
            except LLMError as error:
                if error.kind == "replay_miss":
                    raise
                break
            code = extract_code(answer)
            if code is None:
                failure = {"kind": "no_code", "message": "the answer has no ```python code block"}
                continue
            (self.run_dir / "candidates" / f"r{round_index}_feedback_a{repair}.py").write_text(code)
            lines, failure = self.summaries(code, trajectories)
            if failure is None:
                self.feedback_code = code
                (self.run_dir / "feedback.py").write_text(code)
        if failure is not None:
            return [f"Feedback failed: {failure['kind']}: {failure['message']}"]
        return lines

    # -- a round -----------------------------------------------------------------------------------------------------

    def round(self, round_index: int, history: list[RoundResult], feedback: concurrent.futures.Future,
              pool: concurrent.futures.Executor) -> tuple[RoundResult | None, list[Attempt]]:
        """All candidates of a round, concurrently; the best one with its Feedback lines and reflection."""
        futures = [pool.submit(self.candidate, round_index, i, history) for i in range(self.args.num_candidates)]
        for future in futures:
            future.add_done_callback(lambda _: self.progress.advance())
        worker = spawn_worker()  # for the Feedback on the winner, started while the candidates run
        try:
            attempts = [f.result() for f in futures]
            if round_index == 0:
                self.feedback_code = feedback.result()
            return self.select(round_index, history, attempts, worker)
        finally:
            discard_worker(worker)

    def select(self, round_index: int, history: list[RoundResult], attempts: list[Attempt],
               worker) -> tuple[RoundResult | None, list[Attempt]]:
        """The round's best candidate, its Feedback lines and (with --reflection) the LLM's reflection on it."""
        ok = [a for a in attempts if a.ok]
        if not ok:
            return None, attempts
        best = max(ok, key=Attempt.key)  # max keeps the first of equals: ties go to the lower index
        feedback = ["(no Feedback class)"]
        if self.feedback_code is not None:
            feedback = self.round_feedback(round_index, self.trajectories(best), worker)
        result = RoundResult(round_index, best, feedback)
        if self.args.reflection:
            try:
                result.reflection = self.ask(
                    f"r{round_index}/reflection",
                    REFLECTION_REQUEST.format(context=self.context, rounds=describe_history(history + [result]),
                                              round=round_index)).strip()
            except LLMError as error:
                if error.kind == "replay_miss":
                    raise
        return result, attempts


def main(args: Args) -> int:
    # ---- set-up: run directory, journal, LLM endpoint checked before any work -----------------------------------
    if args.resume:
        run_dir = Path(args.resume)
        saved = json.loads((run_dir / "run.json").read_text())
        args = Args(**{**saved["args"], "resume": args.resume})
        command, started = saved["command"], saved["started_at"]
    else:
        run_dir = run_dir_of(args)
        command, started = None, None
    registry.get(args.env_id)  # a one-line error for an unknown id, before anything is written
    registry.parse_kwargs(args.env_kwargs)
    variants = registry.description_variants(args.env_id)
    args.description_variant = args.description_variant or next(iter(variants))  # recorded in record.json's config
    recipe = registry.get(args.env_id).recipe  # the paper's budget on this task, unless flags say otherwise
    given = (args.num_rounds, args.num_candidates, args.num_episodes)
    args.num_rounds = args.num_rounds or recipe.rounds
    args.num_candidates = args.num_candidates or recipe.candidates
    args.num_episodes = args.num_episodes or recipe.episodes
    source = "the paper's recipe for this task" if given == (None, None, None) else \
        ("flags" if None not in given else "flags and the paper's recipe for this task")
    journal = Journal(run_dir / "llm.jsonl")
    config = LLMConfig(base_url=args.llm_base_url, model=args.llm_model, temperature=args.llm_temperature,
                       timeout=args.llm_timeout)
    if args.llm_replay and not Path(args.llm_replay).is_file():
        raise BenchError(f"--llm-replay {args.llm_replay} does not exist")
    client = LLMClient(config, journal, Journal(args.llm_replay) if args.llm_replay else None)
    client.check()
    missing = check_sandbox(args.unsafe_sandbox)  # fails closed here, before anything is spent
    if missing:
        print(f"promptpo.py: WARNING: --unsafe-sandbox: generated code runs without {', '.join(missing)}",
              file=sys.stderr)
    run_dir.mkdir(parents=True, exist_ok=True)
    budget = Budget(args)
    algo = PromptPO(args, run_dir, client, budget)
    (run_dir / "curve.jsonl").unlink(missing_ok=True)  # on resume the curve is rebuilt from the saved rounds
    recorder = RunRecorder(run_dir, algorithm="promptpo", env_id=args.env_id, env_kwargs=algo.env_kwargs,
                           seed=args.seed, command=command,
                           config={**dataclasses.asdict(args), "eval_episodes_per_worker": args.num_episodes},
                           llm={"model": args.llm_model, "base_url": client.base_url,
                                "temperature": args.llm_temperature})
    if started:
        recorder.base["started_at"] = started
    atomic_write_json(run_dir / "run.json", {"args": dataclasses.asdict(args), "command": recorder.base["command"],
                                             "started_at": recorder.base["started_at"]})
    kwargs_text = f" {algo.env_kwargs}" if algo.env_kwargs else ""
    algo.progress.line(f"PromptPO on {args.env_id}{kwargs_text}: {args.num_rounds} rounds x {args.num_candidates} "
                       f"candidates x {args.num_episodes} episodes ({source}), {args.description_variant} description, "
                       f"LLM {args.llm_model} at {client.base_url}; writing {run_dir}")

    wandb = start_wandb(args.wandb_project_name, run_dir.name, dataclasses.asdict(args), args.wandb_entity,
                        args.wandb_group, run_dir) if args.track else None

    # ---- the rounds -----------------------------------------------------------------------------------------------
    history: list[RoundResult] = []
    best: Attempt | None = None
    stopped = None
    start = time.time()
    # reusing_envs: a candidate's rollout takes the envs an earlier one left (making a Meta-World env costs 0.6 s)
    with reusing_envs(), concurrent.futures.ThreadPoolExecutor(max_workers=args.num_candidates + 1) as pool:
        feedback = pool.submit(algo.feedback_class)  # asked for alongside round 0's candidates
        for round_index in range(args.num_rounds):
            stopped = budget.exhausted()
            if stopped:
                break
            algo.progress.restart(args.num_candidates, f"round {round_index}/{args.num_rounds}", answered=0,
                                  rolled_out=0, failed=0)
            result, attempts = algo.round(round_index, history, feedback, pool)
            failed = [a for a in attempts if not a.ok]
            if result is not None:
                history.append(result)
                if best is None or result.best.key() > best.key():
                    best = result.best
            tokens = budget.tokens()
            line = (f"round {round_index}: {len(attempts) - len(failed)}/{len(attempts)} candidates ran, "
                    f"round best {np.mean(result.best.returns):.2f}" if result else
                    f"round {round_index}: all {len(attempts)} candidates failed")
            algo.progress.line(f"{line}, best so far {np.mean(best.returns) if best else float('nan'):.2f} | env "
                               f"steps {budget.env_steps}, tokens {tokens['prompt_tokens']}+"
                               f"{tokens['completion_tokens']}")
            algo.progress.set(**({"best": f"{np.mean(best.returns):.4g}"} if best else {}))
            if best is not None:
                recorder.add_point(budget.env_steps, float(np.mean(best.returns)), round=round_index,
                                   prompt_tokens=tokens["prompt_tokens"],
                                   completion_tokens=tokens["completion_tokens"],
                                   success_rate=float(np.mean(best.successes)) if best.successes else None)
            if wandb:
                log = {"global_step": budget.env_steps, "charts/round": round_index,
                       "charts/SPS": int(budget.env_steps / max(time.time() - start, 1e-9)),
                       "llm/prompt_tokens": tokens["prompt_tokens"],
                       "llm/completion_tokens": tokens["completion_tokens"], "llm/calls": tokens["llm_calls"],
                       "charts/failed_candidates": len(failed)}
                if result:
                    log["charts/episodic_return"] = float(np.mean(result.best.returns))
                if best:
                    log["charts/best_return"] = float(np.mean(best.returns))
                wandb.log(log)

    algo.progress.close()
    # ---- the final policy on held-out seeds -----------------------------------------------------------------------
    if best is None:
        print(f"promptpo.py: no candidate ran successfully; nothing to evaluate (see {run_dir}/candidates)",
              file=sys.stderr)
        return 1
    (run_dir / "policy.py").write_text(best.code)
    seeds = heldout_seeds(args.eval_episodes)
    final_failure = None
    try:
        # a fresh worker and Policy() per num_episodes episodes, as many per message as a candidate's rollout had:
        # the policy cannot tell it is being scored (submit does the same: config.eval_episodes_per_worker)
        with SandboxedPolicy(best.code, algo.observation, algo.action_space, algo.limits,
                             lifetime=args.policy_lifetime, unsafe=args.unsafe_sandbox,
                             episodes_per_worker=args.num_episodes) as policy, \
                Progress(len(seeds), "held-out evaluation", unit="episode") as bar:
            episodes = run_episodes(args.env_id, policy, seeds, algo.env_kwargs, on_episode_end=bar.advance,
                                    variant=args.description_variant)
    except RolloutFailure as error:  # episodes end where the policy failed; the failure is part of the record
        episodes, final_failure = error.partial, error.failure.to_dict()
    tokens = budget.tokens()
    record = recorder.finish(
        totals={"env_steps": budget.env_steps, "episodes": budget.episodes, **tokens, "cost_usd": budget.cost()},
        final_eval=final_eval(episodes, final_failure), policy_path="policy.py", policy_kind="python")
    record_extra = {"stopped": stopped, "best_request_id": best.request_id,
                    "feedback_repairs_in_rounds": algo.feedback_repairs,
                    "feedback_sha256": sha256_file(run_dir / "feedback.py") if (run_dir / "feedback.py").exists()
                    else None}
    atomic_write_json(run_dir / "summary.json", record_extra)
    if final_failure:  # partial returns, 0 for the episodes never played: no score (on Reacher, above the optimum)
        outcome = f"failed ({final_failure['kind']}: {final_failure['message']}): no score"
    else:
        reference = registry.reference_scores(args.env_id, **algo.env_kwargs)
        success = "" if episodes.success_rate is None else f", success rate {episodes.success_rate:.2f}"
        outcome = (f"mean return {episodes.mean_text()}{success}, normalised "
                   f"{registry.normalised(episodes.mean_return, reference):.3f}")
    print(f"final policy ({best.request_id}) on {len(seeds)} held-out episodes: {outcome} | {budget.env_steps} env "
          f"steps, {tokens['prompt_tokens'] + tokens['completion_tokens']} tokens"
          + (f" | stopped: {stopped}" if stopped else ""))
    print(f"run directory: {run_dir}")
    if wandb:
        if not final_failure:
            wandb.log({"global_step": budget.env_steps, "charts/final_eval_return": episodes.mean_return})
        wandb.finish()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(tyro.cli(Args)))
    except (BenchError, LLMError) as error:
        print(f"promptpo.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("promptpo.py: interrupted; continue with --resume RUN_DIR (answers and evaluations are kept)",
              file=sys.stderr)
        sys.exit(130)
