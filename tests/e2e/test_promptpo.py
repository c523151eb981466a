"""algorithms/promptpo.py end to end, against a scripted OpenAI-compatible server on 127.0.0.1 (a test double)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scripted_server import Scripted, ScriptedLLMServer
from wandb_offline import history

import promptpo_bench
from promptpo_bench.records import load_record
from promptpo_bench.tasks.noiseworld.board import paper_board
from promptpo_bench.tasks.noiseworld.oracle import solution

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "algorithms" / "promptpo.py"

FEEDBACK = """Here is the feedback class.
```python
class Feedback:
    def summarize_trajectory(self, traj):
        last = traj[-1]
        return f"{len(traj) - 1} steps, ended at row {last.agent_row:.2f} col {last.agent_col:.2f}"
```"""
DOWN_THEN_RIGHT = """```python
class Policy:
    def act(self, obs):
        n = int(round(len(obs.board) ** 0.5))
        return 1 if round(obs.agent_row * (n - 1)) < n - 1 else 3
```"""
REFLECTION = "The latest attempt repeats the plan. It works. Try to avoid slow cells next."


def oracle_answer(board_id: int) -> str:
    """A policy whose code holds the exact optimal action table of a paper board (what a perfect LLM could write)."""
    board = paper_board(board_id)
    table = solution(board).policy[:, board.start_phase, :].tolist()
    return f"""```python
TABLE = {table}

class Policy:
    def __init__(self):
        self.t = 0

    def act(self, obs):
        n = {board.n}
        cell = round(obs.agent_row * (n - 1)) * n + round(obs.agent_col * (n - 1))
        action = TABLE[{board.horizon} - self.t][cell]
        self.t += 1
        return action
```"""


def kind(request: dict) -> str:
    user = request["messages"][1]["content"]
    if "class `Feedback`" in user:
        return "feedback"
    if "reflect on the latest attempt" in user:
        return "reflection"
    return "policy"


def run(*args: str, base_url: str | None = None, env: dict | None = None, timeout: float = 240,
        check: bool = True) -> subprocess.CompletedProcess:
    environ = {**os.environ, "OPENAI_API_KEY": "test-key", "WANDB_MODE": "offline", **(env or {})}
    if "--policy-lifetime" not in args:  # the scripted answers (the oracle's table) count an episode's steps
        args = (*args, "--policy-lifetime", "episode")
    command = [sys.executable, str(SCRIPT), *args] + (["--llm-base-url", base_url] if base_url else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environ, cwd=ROOT)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def comparable(record: dict) -> dict:
    """A record without what legitimately differs between reruns (times, the command, where it ran)."""
    out = {k: v for k, v in record.items() if k not in ("wall_time_s", "started_at", "command", "code_version")}
    out["curve"] = [{k: v for k, v in p.items() if k != "wall_time_s"} for p in record["curve"]]
    out["config"] = {k: v for k, v in record["config"].items()
                     if k not in ("run_dir", "resume", "llm_replay", "llm_base_url")}
    out["llm"] = {k: v for k, v in record["llm"].items() if k != "base_url"}
    return out


def test_happy_path_reaches_the_exact_optimum(tmp_path):
    def respond(request, _):
        return {"feedback": FEEDBACK, "reflection": REFLECTION, "policy": oracle_answer(0)}[kind(request)]

    with ScriptedLLMServer(respond) as server:
        out = run("--env-id", "NoiseWorld-Board0-v0", "--num-rounds", "2", "--num-candidates", "2",
                  "--eval-episodes", "500", "--run-dir", str(tmp_path / "run"), base_url=server.base_url)
    record = load_record(tmp_path / "run")  # schema-valid
    final = record["final_eval"]
    returns = np.array(final["returns"])
    half_width = 1.96 * returns.std(ddof=1) / np.sqrt(len(returns))
    assert abs(final["mean_return"] - 34.91) <= half_width
    assert min(final["episode_seeds"]) >= 1_000_000_000  # held out
    assert record["policy"]["kind"] == "python" and (tmp_path / "run" / "policy.py").is_file()
    assert [p["round"] for p in record["curve"]] == [0, 1]
    assert "final policy" in out.stdout and "normalised" in out.stdout
    assert "2 rounds x 2 candidates x 5 episodes (flags and the paper's recipe for this task), paper description" \
        in out.stdout
    assert record["config"]["description_variant"] == "paper" and record["config"]["num_episodes"] == 5
    lines = [json.loads(l) for l in (tmp_path / "run" / "llm.jsonl").read_text().splitlines()]
    assert {l["request_id"] for l in lines} == {"feedback/a0", "r0/c0/a0", "r0/c1/a0", "r0/reflection",
                                                "r1/c0/a0", "r1/c1/a0", "r1/reflection"}
    # round 1's prompt shows round 0's winner: code, returns, Feedback lines and reflection
    later = next(l for l in lines if l["request_id"] == "r1/c0/a0")["messages"][1]["content"]
    assert "### Round 0" in later and "Feedback on episode 1: " in later and REFLECTION in later


def test_repairs_no_code_then_crash_then_success(tmp_path):
    answers = iter(["I would go right.", "```python\nclass Policy:\n    def act(self, obs):\n        return 1 / 0\n```",
                    DOWN_THEN_RIGHT])

    def respond(request, _):
        return {"feedback": FEEDBACK, "reflection": REFLECTION}.get(kind(request)) or next(answers)

    with ScriptedLLMServer(respond) as server:
        run("--num-rounds", "1", "--num-candidates", "1", "--eval-episodes", "5", "--run-dir", str(tmp_path / "r"),
            base_url=server.base_url)
        policy_requests = [r for r in server.requests if kind(r) == "policy"]
    candidates = tmp_path / "r" / "candidates"
    assert json.loads((candidates / "r0_c0_a0.json").read_text())["failure"]["kind"] == "no_code"
    crash = json.loads((candidates / "r0_c0_a1.json").read_text())["failure"]
    assert crash["kind"] == "crash" and "ZeroDivisionError" in crash["traceback"]
    assert json.loads((candidates / "r0_c0_a2.json").read_text())["failure"] is None
    assert len(policy_requests) == 3
    assert "no ```python code block" in policy_requests[1]["messages"][-1]["content"]
    assert "ZeroDivisionError" in policy_requests[2]["messages"][-1]["content"]
    assert load_record(tmp_path / "r")["final_eval"]["mean_return"] > 900


GOAL_SHY_FEEDBACK = """```python
class Feedback:
    def summarize_trajectory(self, traj):
        if traj[-1].agent_row == 1.0 and traj[-1].agent_col == 1.0:
            raise ValueError("this Feedback never expected the goal")
        return "never at the goal"
```"""


def test_feedback_failing_in_a_later_round_is_repaired_and_serves_later_rounds(tmp_path):
    """As in the paper: the Feedback passes its first check (a random episode) but fails on a round's winner."""
    repairs = iter(["No code, sorry.", FEEDBACK])

    def respond(request, _):
        if kind(request) == "feedback":
            return GOAL_SHY_FEEDBACK if len(request["messages"]) == 2 else next(repairs)
        return {"reflection": REFLECTION, "policy": DOWN_THEN_RIGHT}[kind(request)]

    with ScriptedLLMServer(respond) as server:
        run("--num-rounds", "2", "--num-candidates", "1", "--eval-episodes", "3", "--run-dir", str(tmp_path / "r"),
            base_url=server.base_url)
    lines = [json.loads(l) for l in (tmp_path / "r" / "llm.jsonl").read_text().splitlines()]
    ids = [l["request_id"] for l in lines]
    assert ids.count("feedback/a0") == 1 and "r0/feedback/a1" in ids and "r0/feedback/a2" in ids
    assert not any(i.startswith("r1/feedback") for i in ids)  # the repaired Feedback serves round 1
    repair = next(l for l in lines if l["request_id"] == "r0/feedback/a1")["messages"]
    assert "this Feedback never expected the goal" in repair[-1]["content"]
    later = next(l for l in lines if l["request_id"] == "r1/c0/a0")["messages"][1]["content"]
    assert "Feedback on episode 1: 18 steps, ended at row 1.00 col 1.00" in later or \
        "steps, ended at row 1.00 col 1.00" in later
    assert (tmp_path / "r" / "feedback.py").read_text().strip().endswith('col {last.agent_col:.2f}"')
    assert (tmp_path / "r" / "candidates" / "r0_feedback_a2.py").is_file()
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["feedback_repairs_in_rounds"] == 2
    assert load_record(tmp_path / "r")["totals"]["llm_calls"] == len(lines)  # repairs are counted


HOSTILE = {
    "loop": "class Policy:\n    def act(self, obs):\n        while True:\n            pass\n",
    "memory": "class Policy:\n    def act(self, obs):\n        return len(bytearray(10**11))\n",
    "fork": "import os\nclass Policy:\n    def act(self, obs):\n        os.fork()\n        return 0\n",
    "socket": ("import socket\nclass Policy:\n    def act(self, obs):\n"
               "        socket.create_connection(('127.0.0.1', {port}), timeout=1)\n        return 0\n"),
    "env": ("import gc\nclass Policy:\n    def act(self, obs):\n"
            "        for o in gc.get_objects():\n"
            "            try:\n"
            "                env_like = callable(getattr(o, 'step', None)) and callable(getattr(o, 'reset', None))\n"
            "            except Exception:\n"
            "                env_like = False\n"
            "            if env_like:\n"
            "                raise RuntimeError('found an environment')\n"
            "            if 'return' in type(o).__name__.lower() or 'episode' in type(o).__name__.lower():\n"
            "                raise RuntimeError('found the scores')\n"
            "        n = int(round(len(obs.board) ** 0.5))\n"
            "        return 1 if round(obs.agent_row * (n - 1)) < n - 1 else 3\n"),
    "import": "import gymnasium\nclass Policy:\n    def act(self, obs):\n        return 0\n",
}


def test_hostile_candidates_are_contained_and_the_run_goes_on(tmp_path):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    codes = [HOSTILE[k].format(port=listener.getsockname()[1]) for k in HOSTILE]
    handed = iter(codes)

    def respond(request, _):
        return {"feedback": FEEDBACK, "reflection": REFLECTION}.get(kind(request)) or \
            f"```python\n{next(handed)}```"

    with ScriptedLLMServer(respond) as server:
        run("--num-rounds", "1", "--num-candidates", str(len(codes)), "--max-repairs", "0", "--act-timeout", "0.5",
            "--memory-mb", "512", "--eval-episodes", "5", "--run-dir", str(tmp_path / "r"), base_url=server.base_url)
    with pytest.raises(socket.timeout):
        listener.accept()  # no connection ever reached the test's server
    listener.close()
    outcomes = {}
    for path in (tmp_path / "r" / "candidates").glob("r0_c*_a0.json"):
        attempt = json.loads(path.read_text())
        name = next(k for k, c in zip(HOSTILE, codes) if c == attempt["code"])
        outcomes[name] = attempt["failure"] and attempt["failure"]["kind"]
    assert outcomes == {"loop": "timeout", "memory": "memory", "fork": "crash", "socket": "crash", "env": None,
                        "import": "load_error"}
    record = load_record(tmp_path / "r")
    assert (tmp_path / "r" / "policy.py").read_text() == codes[list(HOSTILE).index("env")]
    assert record["final_eval"]["mean_return"] > 900


def test_retries_and_honest_totals(tmp_path):
    failures = iter([Scripted(status=500), Scripted(status=429, headers={"Retry-After": "0"})])

    def respond(request, index):
        if index < 2:
            return next(failures)
        return {"feedback": FEEDBACK, "reflection": REFLECTION, "policy": DOWN_THEN_RIGHT}[kind(request)]

    with ScriptedLLMServer(respond) as server:
        run("--num-rounds", "2", "--num-candidates", "3", "--eval-episodes", "7", "--run-dir", str(tmp_path / "r"),
            base_url=server.base_url)
        usage = list(server.reported_usage)
    record = load_record(tmp_path / "r")
    totals = record["totals"]
    assert totals["prompt_tokens"] == sum(u["prompt_tokens"] for u in usage)
    assert totals["completion_tokens"] == sum(u["completion_tokens"] for u in usage)
    assert totals["llm_calls"] == len(usage) == 2 + 3 * 2 + 2 - 1  # feedback, 6 candidates, 2 reflections
    candidates = tmp_path / "r" / "candidates"
    steps = sum(json.loads(p.read_text())["env_steps"] for p in candidates.glob("*.json"))
    assert totals["env_steps"] == steps == record["curve"][-1]["env_steps"]
    assert totals["episodes"] == 1 + 6 * 5
    journal = [json.loads(l) for l in (tmp_path / "r" / "llm.jsonl").read_text().splitlines()]
    assert sorted(l["error"]["status"] for l in journal if l["error"]) == [429, 500]


def test_budget_stops_the_run_cleanly(tmp_path):
    def respond(request, _):
        return {"feedback": FEEDBACK, "reflection": REFLECTION, "policy": DOWN_THEN_RIGHT}[kind(request)]

    with ScriptedLLMServer(respond) as server:
        out = run("--num-rounds", "10", "--num-candidates", "2", "--max-env-steps", "150", "--eval-episodes", "3",
                  "--run-dir", str(tmp_path / "r"), base_url=server.base_url)
    record = load_record(tmp_path / "r")
    assert "stopped: max_env_steps 150 reached" in out.stdout
    assert len(record["curve"]) < 10 and record["totals"]["env_steps"] >= 150


def test_sigkill_then_resume_pays_no_request_twice_and_replay_reproduces(tmp_path):
    def respond(request, _):  # answers depend only on the request, so any rerun gets the same ones
        if kind(request) == "policy":
            return Scripted(text=DOWN_THEN_RIGHT, delay_s=0.15)
        return {"feedback": FEEDBACK, "reflection": REFLECTION}[kind(request)]

    args = ("--num-rounds", "3", "--num-candidates", "2", "--eval-episodes", "5", "--llm-max-concurrency", "1",
            "--policy-lifetime", "episode")
    with ScriptedLLMServer(respond) as server:
        run(*args, "--run-dir", str(tmp_path / "whole"), base_url=server.base_url)

    with ScriptedLLMServer(respond) as server:
        environ = {**os.environ, "OPENAI_API_KEY": "test-key"}
        proc = subprocess.Popen([sys.executable, str(SCRIPT), *args, "--run-dir", str(tmp_path / "cut"),
                                 "--llm-base-url", server.base_url], env=environ, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        journal = tmp_path / "cut" / "llm.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 5):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        answered = len(journal.read_text().splitlines())
        assert answered >= 5 and not (tmp_path / "cut" / "record.json").exists()
        sent_before = len(server.requests)
        run("--resume", str(tmp_path / "cut"), base_url=server.base_url)
        sent_after = len(server.requests) - sent_before
    total = len((tmp_path / "cut" / "llm.jsonl").read_text().splitlines())
    assert sent_after == total - answered  # nothing journaled was requested again
    whole, resumed = load_record(tmp_path / "whole"), load_record(tmp_path / "cut")
    assert comparable(resumed) == comparable(whole)

    # replay: no endpoint, no key; the same answers give the same record
    closed = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    run(*args, "--run-dir", str(tmp_path / "replayed"), "--llm-replay", str(tmp_path / "whole" / "llm.jsonl"),
        env=closed)
    assert comparable(load_record(tmp_path / "replayed")) == comparable(whole)
    miss = run("--num-rounds", "4", "--num-candidates", "2", "--eval-episodes", "5", "--run-dir",
               str(tmp_path / "miss"), "--llm-replay", str(tmp_path / "whole" / "llm.jsonl"), env=closed, check=False)
    assert miss.returncode == 2 and "no recorded answer for request r3/" in miss.stderr
    assert len(miss.stderr.strip().splitlines()) == 1


def test_one_line_errors_before_any_work(tmp_path):
    no_key = run("--run-dir", str(tmp_path / "a"), env={"OPENAI_API_KEY": ""}, check=False)
    assert no_key.returncode == 2 and no_key.stderr.strip().startswith("promptpo.py: error: OPENAI_API_KEY is not set")
    assert len(no_key.stderr.strip().splitlines()) == 1 and not (tmp_path / "a").exists()
    closed = run("--run-dir", str(tmp_path / "b"), base_url="http://127.0.0.1:9/v1", check=False)
    assert closed.returncode == 2 and "cannot reach the LLM endpoint" in closed.stderr
    unknown = run("--env-id", "NoiseWorld-v9", check=False)
    assert unknown.returncode == 2 and "unknown env id 'NoiseWorld-v9'" in unknown.stderr
    bad_kwargs = run("--env-kwargs", "board=3", check=False)
    assert bad_kwargs.returncode == 2 and "must be a JSON object" in bad_kwargs.stderr


def test_track_offline_logs_the_expected_keys(tmp_path):
    pytest.importorskip("wandb")

    def respond(request, _):
        return {"feedback": FEEDBACK, "reflection": REFLECTION, "policy": DOWN_THEN_RIGHT}[kind(request)]

    with ScriptedLLMServer(respond) as server:
        run("--num-rounds", "2", "--num-candidates", "2", "--eval-episodes", "3", "--track",
            "--run-dir", str(tmp_path / "r"), base_url=server.base_url, env={"WANDB_MODE": "offline"})
    rows = history(tmp_path / "r")
    assert len(rows) == 3  # two rounds and the final evaluation
    for key in ("global_step", "charts/episodic_return", "charts/SPS", "charts/best_return", "llm/prompt_tokens",
                "llm/completion_tokens"):
        assert key in rows[0] and key in rows[1], key
    record = load_record(tmp_path / "r")
    assert [int(r["global_step"]) for r in rows[:2]] == [p["env_steps"] for p in record["curve"]]
    assert int(rows[1]["llm/prompt_tokens"]) == record["curve"][1]["prompt_tokens"] == record["totals"]["prompt_tokens"]


def test_context_length_error_drops_the_oldest_history_first(tmp_path):
    def respond(request, _):
        if kind(request) != "policy":
            return {"feedback": FEEDBACK, "reflection": REFLECTION}[kind(request)]
        user = request["messages"][1]["content"]
        if "### Round 0" in user and "### Round 1" in user:  # this "model" holds at most one round of history
            return Scripted(status=400, error_code="context_length_exceeded",
                            text="This model's maximum context length is 100 tokens")
        return DOWN_THEN_RIGHT

    with ScriptedLLMServer(respond) as server:
        run("--num-rounds", "3", "--num-candidates", "1", "--eval-episodes", "3", "--run-dir", str(tmp_path / "r"),
            "--price-prompt-per-mtok", "2.0", "--price-completion-per-mtok", "8.0", base_url=server.base_url)
    lines = [json.loads(l) for l in (tmp_path / "r" / "llm.jsonl").read_text().splitlines()]
    round2 = [l for l in lines if l["request_id"] == "r2/c0/a0"]
    assert [bool(l["error"]) for l in round2] == [True, False]  # refused once, then sent without round 0
    sent = round2[-1]["messages"][1]["content"]
    assert "### Round 1" in sent and "### Round 0" not in sent
    totals = load_record(tmp_path / "r")["totals"]
    assert totals["cost_usd"] == pytest.approx((2.0 * totals["prompt_tokens"] + 8.0 * totals["completion_tokens"]) / 1e6)


def test_rollout_lifetime_one_policy_object_plays_every_episode_of_a_rollout(tmp_path):
    """The paper's lifetime: a candidate's episodes, and the final evaluation's, run in order through one Policy()."""
    single = ("```python\nclass Policy:\n    made = 0\n\n    def __init__(self):\n        Policy.made += 1\n\n"
              "    def act(self, obs):\n        assert Policy.made == 1, 'a second Policy() object'\n        return 1\n```")

    prompts = []

    def respond(request, _):
        prompts.append(request["messages"][1]["content"])
        return {"feedback": FEEDBACK, "reflection": REFLECTION, "policy": single}[kind(request)]

    with ScriptedLLMServer(respond) as server:
        run("--env-id", "NoiseWorld-Board0-v0", "--num-rounds", "1", "--num-candidates", "1", "--eval-episodes", "10",
            "--policy-lifetime", "rollout", "--run-dir", str(tmp_path / "run"), base_url=server.base_url)
        record = load_record(tmp_path / "run")
        assert record["config"]["policy_lifetime"] == "rollout" and record["final_eval"]["failure"] is None
        assert any("state between steps and between episodes" in prompt for prompt in prompts)
        run("--env-id", "NoiseWorld-Board0-v0", "--num-rounds", "1", "--num-candidates", "1", "--eval-episodes", "10",
            "--run-dir", str(tmp_path / "per-episode"), base_url=server.base_url, check=False)
    failed = json.loads((tmp_path / "per-episode" / "candidates" / "r0_c0_a0.json").read_text())["failure"]
    assert failed["kind"] == "crash" and "a second Policy() object" in failed["message"]


# --- selection and accounting when candidates differ ---------------------------------------------------------------

ALWAYS_UP = """```python
class Policy:
    def act(self, obs):
        return 0  # bumps into the top edge until the horizon: -1 per step, the worst plan that never ends early
```"""
CRASHES_ON_FOURTH_STEP = """```python
class Policy:
    def __init__(self):
        self.t = 0

    def act(self, obs):
        self.t += 1
        if self.t == 4:
            raise RuntimeError("lost track of the board")
        return 0
```"""


def scripted_policies(*answers: str):
    """A `respond` that hands out the policy answers in the order they are asked for (the same prompt in a round)."""
    import threading

    handed, lock = iter(answers), threading.Lock()

    def respond(request, _):
        if kind(request) != "policy":
            return {"feedback": FEEDBACK, "reflection": REFLECTION}[kind(request)]
        with lock:
            return next(handed)

    return respond


def code_of(answer: str) -> str:
    return answer.split("```python\n", 1)[1].rsplit("```", 1)[0]


def test_the_better_candidate_of_a_round_wins_and_a_mid_episode_crash_still_counts_its_steps(tmp_path):
    """One round: a poor policy, a good one and one that crashes on the 4th step of every episode (whichever
    order they are handed out in). The good one is the output; the crashed one's 5 x 3 steps are in the totals."""
    answers = (ALWAYS_UP, DOWN_THEN_RIGHT, CRASHES_ON_FOURTH_STEP)
    with ScriptedLLMServer(scripted_policies(*answers)) as server:
        run("--num-rounds", "1", "--num-candidates", "3", "--max-repairs", "0", "--eval-episodes", "10",
            "--run-dir", str(tmp_path / "r"), base_url=server.base_url)
    candidates = {code: json.loads(p.read_text()) for p in (tmp_path / "r" / "candidates").glob("r0_c*_a0.json")
                  for code in [json.loads(p.read_text())["code"]]}
    poor, good, crashed = (candidates[code_of(a)] for a in answers)
    assert np.mean(poor["returns"]) == -100.0 and np.mean(good["returns"]) > 900
    assert crashed["failure"]["kind"] == "crash" and "lost track of the board" in crashed["failure"]["traceback"]
    assert crashed["env_steps"] == 5 * 3  # the 5 episodes run side by side; each took 3 steps before the crash

    assert (tmp_path / "r" / "policy.py").read_text() == code_of(DOWN_THEN_RIGHT)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["best_request_id"] == good["request_id"]
    record = load_record(tmp_path / "r")
    assert record["final_eval"]["mean_return"] > 900
    assert record["curve"][0]["mean_return"] == pytest.approx(np.mean(good["returns"]))
    probe = json.loads((tmp_path / "r" / "candidates" / "feedback_probe.json").read_text())["env_steps"]
    assert record["totals"]["env_steps"] == probe + 5 * 100 + good["env_steps"] + 5 * 3
    assert record["curve"][-1]["env_steps"] == record["totals"]["env_steps"]


def test_a_worse_later_round_does_not_replace_the_best_policy_so_far(tmp_path):
    """Round 0 writes a good policy, round 1 a worse one: the output and its held-out score stay round 0's."""
    with ScriptedLLMServer(scripted_policies(DOWN_THEN_RIGHT, ALWAYS_UP)) as server:
        run("--num-rounds", "2", "--num-candidates", "1", "--eval-episodes", "10", "--run-dir", str(tmp_path / "r"),
            base_url=server.base_url)
        round1 = [r for r in server.requests if kind(r) == "policy"][1]["messages"][1]["content"]
    assert "### Round 0" in round1  # the worse answer came after seeing the good one
    assert (tmp_path / "r" / "policy.py").read_text() == code_of(DOWN_THEN_RIGHT)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["best_request_id"] == "r0/c0/a0"
    record = load_record(tmp_path / "r")
    assert record["final_eval"]["mean_return"] > 900
    best, second = (p["mean_return"] for p in record["curve"])
    assert best > 900 and second == best  # the curve is the best so far, not the round's best (-100)
