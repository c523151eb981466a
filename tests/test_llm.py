"""The LLM client against the scripted test-double server: retries, journal, resume, replay, check(), threads."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from pathlib import Path

import pytest
from scripted_server import Scripted, ScriptedLLMServer, completion_tokens, prompt_tokens

from promptpo_bench.errors import BenchError
from promptpo_bench.llm import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    DEFAULT_BASE_URL,
    ContextLengthError,
    Journal,
    LLMClient,
    LLMConfig,
    LLMError,
    extract_code,
    messages_sha256,
)

MESSAGES = [{"role": "system", "content": "You write Python policies."},
            {"role": "user", "content": "Write a Policy class for NoiseWorld-v0."}]
POLICY = "class Policy:\n    def act(self, observation):\n        return 3\n"
ENTRY_KEYS = {"request_id", "messages_sha256", "messages", "params", "response", "usage", "latency_s", "error",
              "attempt", "time"}


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def closed_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class Sleeps(list):
    """Records the backoff delays instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(base_url: str, path: Path, replay: Journal | None = None, **config) -> tuple[LLMClient, Sleeps]:
    sleeps = Sleeps()
    config = {"model": "test-model", "temperature": 0.7, "timeout": 5.0, "max_retries": 3, **config}
    return LLMClient(LLMConfig(base_url=base_url, **config), Journal(path), replay, sleep=sleeps), sleeps


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_happy_path_reply_usage_and_journal_line(tmp_path):
    path = tmp_path / "llm.jsonl"
    with ScriptedLLMServer(lambda request, i: POLICY) as server:
        client, sleeps = make_client(server.base_url, path, max_completion_tokens=256)
        reply = client.chat("r0/c0/a1", MESSAGES)
    assert reply.text == POLICY and not reply.cached and reply.latency_s > 0
    usage = server.reported_usage[0]
    assert (reply.prompt_tokens, reply.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert (reply.prompt_tokens, reply.completion_tokens) == (prompt_tokens(MESSAGES), completion_tokens(POLICY))
    sent = server.requests[0]
    assert sent["model"] == "test-model" and sent["temperature"] == 0.7 and sent["messages"] == MESSAGES
    assert sent["max_completion_tokens"] == 256
    [entry] = lines(path)
    assert set(entry) == ENTRY_KEYS
    assert entry["request_id"] == "r0/c0/a1" and entry["messages"] == MESSAGES
    assert entry["messages_sha256"] == messages_sha256(MESSAGES)
    assert entry["params"] == {"model": "test-model", "temperature": 0.7, "max_completion_tokens": 256,
                               "base_url": server.base_url}
    assert entry["response"] == POLICY and entry["error"] is None and entry["attempt"] == 1
    assert entry["usage"] == {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
    assert entry["latency_s"] == reply.latency_s
    assert dt.datetime.fromisoformat(entry["time"]).tzinfo is not None
    assert client.journal.totals() == {"llm_calls": 1, "prompt_tokens": reply.prompt_tokens,
                                       "completion_tokens": reply.completion_tokens}
    assert sleeps == []


def test_a_lone_surrogate_in_an_answer_comes_back_escaped(tmp_path):
    """JSON can carry "\\ud800", which UTF-8 cannot encode: the answer's text escapes it, so its code can be written
    to a file and sent on in the next prompt (and hashed for the journal)."""
    with ScriptedLLMServer(lambda request, i: "```python\nx = '" + chr(0xD800) + "'\n```") as server:
        client, _ = make_client(server.base_url, tmp_path / "llm.jsonl")
        reply = client.chat("r0/c0/a1", MESSAGES)
    assert reply.text == "```python\nx = '\\ud800'\n```"
    (tmp_path / "policy.py").write_text(reply.text)
    messages_sha256(MESSAGES + [{"role": "assistant", "content": reply.text}])


@pytest.mark.parametrize("first, kind, status", [
    (Scripted(text="boom", status=500), "http", 500),
    (Scripted(text="slow down", status=429, headers={"Retry-After": "0"}), "http", 429),
    (Scripted(text="too late", delay_s=0.6), "timeout", None),
])
def test_transient_failure_is_retried_and_journaled(tmp_path, first, kind, status):
    path = tmp_path / "llm.jsonl"
    with ScriptedLLMServer(lambda request, i: first if i == 0 else POLICY) as server:
        client, sleeps = make_client(server.base_url, path, timeout=0.2)
        reply = client.chat("r0/c0/a1", MESSAGES)
    assert reply.text == POLICY and len(server.requests) == 2
    failed, succeeded = lines(path)
    assert failed["error"]["kind"] == kind and failed["error"]["status"] == status
    assert failed["response"] is None and failed["usage"] is None and failed["attempt"] == 1
    assert succeeded["error"] is None and succeeded["response"] == POLICY and succeeded["attempt"] == 2
    assert client.journal.totals() == {"llm_calls": 1, "prompt_tokens": reply.prompt_tokens,
                                       "completion_tokens": reply.completion_tokens}
    assert len(sleeps) == 1
    if status == 429:
        assert sleeps == [0.0]  # the server's Retry-After wins over the backoff
    else:
        assert 0.0 <= sleeps[0] <= BACKOFF_BASE_S


def test_exhausted_retries_raise_one_line_error_with_growing_backoff(tmp_path):
    path = tmp_path / "llm.jsonl"
    with ScriptedLLMServer(lambda request, i: Scripted(text="upstream\ndown", status=503)) as server:
        client, sleeps = make_client(server.base_url, path, max_retries=3)
        with pytest.raises(LLMError) as error:
            client.chat("r0/c0/a1", MESSAGES)
    assert error.value.kind == "http" and error.value.status == 503
    assert "\n" not in str(error.value) and "r0/c0/a1" in str(error.value) and "4 attempts" in str(error.value)
    assert len(server.requests) == 4
    assert [entry["attempt"] for entry in lines(path)] == [1, 2, 3, 4]
    assert all(entry["error"]["kind"] == "http" for entry in lines(path))
    assert len(sleeps) == 3 and all(0.0 <= s <= BACKOFF_BASE_S * 2 ** k for k, s in enumerate(sleeps))
    assert client.journal.totals() == {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}


def test_retry_after_is_capped(tmp_path):
    slow_down = Scripted(text="slow down", status=429, headers={"Retry-After": "3600"})
    with ScriptedLLMServer(lambda request, i: slow_down if i == 0 else POLICY) as server:
        client, sleeps = make_client(server.base_url, tmp_path / "llm.jsonl")
        client.chat("r0/c0/a1", MESSAGES)
    assert sleeps == [BACKOFF_CAP_S]


def test_connection_errors_are_retried_then_reported(tmp_path, closed_url):
    client, sleeps = make_client(closed_url, tmp_path / "llm.jsonl", max_retries=1)
    with pytest.raises(LLMError) as error:
        client.chat("r0/c0/a1", MESSAGES)
    assert error.value.kind == "connection" and "\n" not in str(error.value)
    assert str(error.value).startswith("request r0/c0/a1 failed after 2 attempts: connection error")
    assert len(sleeps) == 1 and len(lines(tmp_path / "llm.jsonl")) == 2


@pytest.mark.parametrize("scripted", [
    Scripted(text="Request too large", status=400, error_code="context_length_exceeded"),
    Scripted(text="This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.",
             status=400),
])
def test_context_length_error_is_not_retried(tmp_path, scripted):
    path = tmp_path / "llm.jsonl"
    with ScriptedLLMServer(lambda request, i: scripted) as server:
        client, sleeps = make_client(server.base_url, path)
        with pytest.raises(ContextLengthError) as error:
            client.chat("r0/c0/a1", MESSAGES)
    assert error.value.kind == "context_length" and "\n" not in str(error.value)
    assert len(server.requests) == 1 and sleeps == []
    [entry] = lines(path)
    assert entry["error"] == {"kind": "context_length", "message": entry["error"]["message"], "status": 400}


def test_other_client_errors_are_not_retried(tmp_path):
    with ScriptedLLMServer(lambda request, i: Scripted(text="invalid api key", status=401)) as server:
        client, sleeps = make_client(server.base_url, tmp_path / "llm.jsonl")
        with pytest.raises(LLMError) as error:
            client.chat("r0/c0/a1", MESSAGES)
    assert error.value.kind == "http" and error.value.status == 401 and "invalid api key" in str(error.value)
    assert str(error.value).startswith("request r0/c0/a1: HTTP 401")  # one attempt: no "failed after"
    assert not isinstance(error.value, ContextLengthError)
    assert len(server.requests) == 1 and sleeps == []


def test_reply_without_choices_is_bad_response_and_missing_usage_counts_zero(tmp_path):
    path = tmp_path / "llm.jsonl"
    script = {0: Scripted(text=None), 1: Scripted(text=POLICY, usage=False)}
    with ScriptedLLMServer(lambda request, i: script[i]) as server:
        client, _ = make_client(server.base_url, path)
        with pytest.raises(LLMError) as error:
            client.chat("r0/c0/a1", MESSAGES)
        reply = client.chat("r0/c0/a1", MESSAGES)
    assert error.value.kind == "bad_response" and len(server.requests) == 2
    assert reply.text == POLICY and (reply.prompt_tokens, reply.completion_tokens) == (0, 0)
    bad, no_usage = lines(path)
    assert bad["error"]["kind"] == "bad_response"
    assert no_usage["usage_missing"] is True and no_usage["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}
    assert client.journal.totals() == {"llm_calls": 1, "prompt_tokens": 0, "completion_tokens": 0}


def test_resume_answers_repeated_requests_from_the_journal(tmp_path):
    path = tmp_path / "llm.jsonl"
    with ScriptedLLMServer(lambda request, i: f"answer {i}") as server:
        first, _ = make_client(server.base_url, path)
        original = first.chat("r0/c0/a1", MESSAGES)
        resumed, _ = make_client(server.base_url, path)
        again = resumed.chat("r0/c0/a1", MESSAGES)
        assert len(server.requests) == 1  # nothing new was sent
        other_id = resumed.chat("r0/c1/a1", MESSAGES)
        other_messages = resumed.chat("r0/c0/a1", MESSAGES + [{"role": "user", "content": "Try again."}])
    assert again.cached and again.text == original.text == "answer 0"
    assert (again.prompt_tokens, again.completion_tokens) == (original.prompt_tokens, original.completion_tokens)
    assert not other_id.cached and other_id.text == "answer 1"
    assert not other_messages.cached and other_messages.text == "answer 2"
    assert len(server.requests) == 3 and len(lines(path)) == 3
    assert resumed.journal.totals()["llm_calls"] == 3


def test_journal_with_a_torn_last_line_still_loads(tmp_path):
    path = tmp_path / "llm.jsonl"
    with ScriptedLLMServer(lambda request, i: POLICY) as server:
        client, _ = make_client(server.base_url, path)
        client.chat("r0/c0/a1", MESSAGES)
        whole = path.read_text()
        with open(path, "a") as file:  # SIGKILL in the middle of a write
            file.write(whole[: len(whole) // 2])
        journal = Journal(path)
        assert journal.lookup("r0/c0/a1", MESSAGES)["response"] == POLICY
        assert journal.totals() == client.journal.totals()
        resumed = LLMClient(client.config, journal)
        resumed.chat("r0/c1/a1", MESSAGES)
        resumed.chat("r0/c2/a1", MESSAGES)  # cut off once, before the first append only
    assert [entry["request_id"] for entry in lines(path)] == ["r0/c0/a1", "r0/c1/a1", "r0/c2/a1"]  # torn line gone
    assert Journal(path).totals()["llm_calls"] == 3


def test_journal_damaged_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "llm.jsonl"
    path.write_text('{}\n{"request_id": "r0"\n{}\n')
    with pytest.raises(BenchError, match=f"^{path} line 2 is damaged"):
        Journal(path)


def test_journal_skips_blank_lines_and_counts_missing_usage_as_zero(tmp_path):
    path = tmp_path / "llm.jsonl"
    entry = {"request_id": "r0/c0/a1", "messages_sha256": messages_sha256(MESSAGES), "response": POLICY,
             "error": None, "latency_s": 1.5}
    later = {**entry, "request_id": "r0/c1/a1", "usage": {"prompt_tokens": 7}}
    path.write_text(json.dumps(entry) + "\n\n" + json.dumps(later) + "\n")
    journal = Journal(path)
    assert journal.totals() == {"llm_calls": 2, "prompt_tokens": 7, "completion_tokens": 0}
    assert journal.lookup("r0/c1/a1", MESSAGES)["usage"] == {"prompt_tokens": 7}
    reply = LLMClient(LLMConfig(), journal).chat("r0/c0/a1", MESSAGES)
    assert (reply.text, reply.prompt_tokens, reply.completion_tokens, reply.cached) == (POLICY, 0, 0, True)
    assert reply.latency_s == 1.5
    assert LLMClient(LLMConfig(), journal).chat("r0/c1/a1", MESSAGES).completion_tokens == 0


def test_a_journal_in_a_new_directory_is_created_with_its_parents(tmp_path):
    path = tmp_path / "runs" / "new" / "llm.jsonl"
    with ScriptedLLMServer(lambda request, i: POLICY) as server:
        client, _ = make_client(server.base_url, path)
        client.chat("r0/c0/a1", MESSAGES)
    assert lines(path)[0]["response"] == POLICY


def test_extract_code_takes_the_last_python_block():
    answer = ("Here:\n```python\nA = 1\n```\nor\n```\nnot python\n```\n```python title=policy.py\nC = 3\n```\n"
              "and, cut off:\n```python\nD = 4\n")
    assert extract_code(answer) == "D = 4\n"
    assert extract_code(answer.rsplit("and,", 1)[0]) == "C = 3\n"
    assert extract_code("```\nno language\n```") is None and extract_code("no code") is None


def test_usage_without_counts_is_zero_tokens(tmp_path):
    path = tmp_path / "llm.jsonl"
    nulls = Scripted(text=POLICY, usage={"prompt_tokens": None, "completion_tokens": 0, "total_tokens": 0})
    with ScriptedLLMServer(lambda request, i: nulls) as server:
        client, _ = make_client(server.base_url, path)
        reply = client.chat("r0/c0/a1", MESSAGES)
    assert (reply.prompt_tokens, reply.completion_tokens) == (0, 0)
    assert lines(path)[0]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}


class FakeClock:
    """Stands in for the llm module's `time`: perf_counter moves 0.25 s per reading, from 1000 s."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        self.now += 0.25
        return self.now


def test_every_attempt_journals_its_own_latency(tmp_path, monkeypatch):
    from promptpo_bench import llm

    path = tmp_path / "llm.jsonl"
    with ScriptedLLMServer(lambda request, i: Scripted(text="busy", status=503) if i == 0 else POLICY) as server:
        client, _ = make_client(server.base_url, path)
        monkeypatch.setattr(llm, "time", FakeClock())
        reply = client.chat("r0/c0/a1", MESSAGES)
    assert [entry["latency_s"] for entry in lines(path)] == [0.25, 0.25] and reply.latency_s == 0.25


def test_backoff_doubles_from_the_base_up_to_the_cap(tmp_path, monkeypatch):
    from promptpo_bench import llm

    monkeypatch.setattr(llm.random, "uniform", lambda low, high: (low, high))  # the range the jitter is drawn from
    client, _ = make_client("http://127.0.0.1:9/v1", tmp_path / "llm.jsonl")
    ranges = [client._backoff(attempt, None) for attempt in range(1, 10)]
    highs = [BACKOFF_BASE_S * 2 ** k for k in range(7)] + [BACKOFF_CAP_S] * 2
    assert ranges == [(0.0, min(h, BACKOFF_CAP_S)) for h in highs]
    assert client._backoff(3, 2.5) == 2.5 and client._backoff(3, 0.0) == 0.0


def test_replay_answers_without_an_endpoint_and_reports_misses(tmp_path, closed_url, monkeypatch):
    old = tmp_path / "old" / "llm.jsonl"
    conversations = [[{"role": "user", "content": f"task {k}"}] for k in range(3)]
    with ScriptedLLMServer(lambda request, i: f"policy {i}") as server:
        recorder, _ = make_client(server.base_url, old)
        recorded = [recorder.chat(f"r0/c{k}/a1", messages) for k, messages in enumerate(conversations)]
    monkeypatch.delenv("OPENAI_API_KEY")
    new = tmp_path / "new" / "llm.jsonl"
    client, _ = make_client(closed_url, new, replay=Journal(old))
    client.check()
    replies = [client.chat(f"r0/c{k}/a1", messages) for k, messages in enumerate(conversations)]
    assert [r.text for r in replies] == [r.text for r in recorded] and all(r.cached for r in replies)
    assert [e["response"] for e in lines(new)] == [r.text for r in recorded]
    assert client.journal.totals() == recorder.journal.totals()
    with pytest.raises(LLMError) as error:
        client.chat("r0/c9/a1", conversations[0])
    assert error.value.kind == "replay_miss" and str(old) in str(error.value) and "r0/c9/a1" in str(error.value)


def test_check_reports_missing_key_and_unreachable_endpoint(tmp_path, closed_url, monkeypatch):
    with ScriptedLLMServer(lambda request, i: POLICY) as server:
        client, _ = make_client(server.base_url, tmp_path / "llm.jsonl")
        client.check()
        monkeypatch.delenv("OPENAI_API_KEY")
        with pytest.raises(LLMError) as error:
            client.check()
        assert error.value.kind == "no_api_key" and "OPENAI_API_KEY" in str(error.value)
        assert "--llm-replay" in str(error.value)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    client, _ = make_client(closed_url, tmp_path / "llm.jsonl")
    with pytest.raises(LLMError) as error:
        client.check()
    assert error.value.kind == "unreachable" and "\n" not in str(error.value)
    assert str(error.value).startswith(f"cannot reach the LLM endpoint {closed_url}: [Errno")  # the reason itself


def test_check_accepts_an_endpoint_without_a_models_route(tmp_path):
    with ScriptedLLMServer(lambda request, i: POLICY) as server:
        client, _ = make_client(server.base_url.removesuffix("/v1") + "/other", tmp_path / "llm.jsonl")
        client.check()  # 404 still means something answered


def test_concurrent_requests_are_all_journaled_and_counted(tmp_path):
    path = tmp_path / "llm.jsonl"
    with ScriptedLLMServer(lambda request, i: "x" * (i * 7 % 50)) as server:
        client, _ = make_client(server.base_url, path)
        errors = []

        def worker(t: int) -> None:
            try:
                for k in range(5):
                    client.chat(f"r0/c{t}/a{k}", [{"role": "user", "content": "same prompt " * (t + 1)}])
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    entries = lines(path)
    assert len(entries) == 40 and all(entry["error"] is None for entry in entries)
    assert len({entry["request_id"] for entry in entries}) == 40
    assert client.journal.totals() == {
        "llm_calls": 40,
        "prompt_tokens": sum(u["prompt_tokens"] for u in server.reported_usage),
        "completion_tokens": sum(u["completion_tokens"] for u in server.reported_usage),
    }
    assert Journal(path).totals() == client.journal.totals()


def test_base_url_comes_from_the_config_else_the_environment_else_openai(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "llm.jsonl")
    assert LLMClient(LLMConfig(), journal).base_url == DEFAULT_BASE_URL
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1/")
    assert LLMClient(LLMConfig(), journal).base_url == "http://localhost:8000/v1"
    assert LLMClient(LLMConfig(base_url="http://other/v1"), journal).base_url == "http://other/v1"
