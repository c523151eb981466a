"""The LLM client: OpenAI-compatible chat completions with retries, journaled so runs can resume and be replayed.

Every attempt, successful or not, becomes one line of `llm.jsonl`, written before its answer is used.
A request is identified by a caller-chosen `request_id` (e.g. "r0/c3/a1") together with its messages: a resumed run
finds its earlier answers in its own journal and never pays for them twice, and `--llm-replay` answers a whole run
from another run's journal without any endpoint.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import openai

from .errors import BenchError, clean_text, one_line

LLM_ERROR_KINDS = ("no_api_key", "unreachable", "http", "timeout", "connection", "bad_response", "replay_miss",
                   "context_length")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_API_KEY_MESSAGE = ("OPENAI_API_KEY is not set: export it (any value works for local servers such as vLLM, Ollama "
                      "or llama.cpp) or pass --llm-replay PATH/llm.jsonl")
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0  # also caps a server's Retry-After
_PROBE_TIMEOUT_S = 5.0
_CODE_BLOCK = re.compile(r"```python[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CONTEXT_LENGTH = re.compile(r"context.length|maximum context|context (size|window)|too many tokens", re.IGNORECASE)


def extract_code(answer: str) -> str | None:
    """The answer contract: the content of the last fenced block opened with ```python (None if there is none)."""
    blocks = _CODE_BLOCK.findall(answer)
    return blocks[-1] if blocks else None


@dataclass(frozen=True)
class LLMConfig:
    base_url: str | None = None  # None: env OPENAI_BASE_URL, else OpenAI's default
    model: str = "gpt-4o-mini"
    temperature: float = 1.0
    timeout: float = 120.0  # seconds per HTTP request
    max_retries: int = 6  # retries of 429 / 5xx / timeouts / connection errors
    max_completion_tokens: int | None = None


class LLMError(Exception):
    """An LLM request that could not be answered, in one line; `kind` says why (one of LLM_ERROR_KINDS)."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        if kind not in LLM_ERROR_KINDS:
            raise ValueError(f"unknown LLMError kind {kind!r}")
        super().__init__(one_line(message))
        self.kind = kind
        self.status = status


class ContextLengthError(LLMError):
    """The prompt is too long for the model: the caller drops the oldest history and tries again."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__("context_length", message, status)


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached: bool  # answered from the journal (resume) or a replay file, not from the endpoint


def messages_sha256(messages: list[dict]) -> str:
    """sha256 of the canonical JSON of `messages`: equal messages, equal hash."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _succeeded(entry: dict) -> bool:
    return entry.get("error") is None and isinstance(entry.get("response"), str)


class Journal:
    """llm.jsonl: one JSON line per exchange, written to the OS before the answer is used. Thread-safe.

    A written line survives the process being killed (SIGKILL included); it is not fsynced, which would add a disk
    round trip to every answer: after an OS crash the last lines may be missing and are simply requested again.

    A last line without its newline is a write cut short (SIGKILL): it is ignored, and cut off before the next append.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._index: dict[tuple[str, str], dict] = {}
        self._totals = {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._complete_bytes = 0  # length of the file up to its last newline
        self._torn_tail = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        self._complete_bytes = data.rfind(b"\n") + 1
        self._torn_tail = self._complete_bytes < len(data)
        for number, line in enumerate(data[:self._complete_bytes].decode().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchError(f"{self.path} line {number} is damaged (not valid JSON: {exc})") from None
            self._add(entry)

    def _add(self, entry: dict) -> None:
        if not _succeeded(entry):
            return
        self._index[(entry["request_id"], entry["messages_sha256"])] = entry
        usage = entry.get("usage") or {}
        self._totals["llm_calls"] += 1
        self._totals["prompt_tokens"] += usage.get("prompt_tokens", 0)
        self._totals["completion_tokens"] += usage.get("completion_tokens", 0)

    def lookup(self, request_id: str, messages: list[dict]) -> dict | None:
        """The latest successful entry for this request id with equal messages, or None."""
        key = (request_id, messages_sha256(messages))
        with self._lock:
            return self._index.get(key)

    def append(self, entry: dict) -> None:
        """Write one line, so that an answer is recorded before anyone uses it."""
        line = json.dumps(entry) + "\n"
        with self._lock:
            if self._torn_tail:
                os.truncate(self.path, self._complete_bytes)
                self._torn_tail = False
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(line)
                file.flush()
            self._add(entry)

    def totals(self) -> dict:
        """{"llm_calls", "prompt_tokens", "completion_tokens"} summed over the successful exchanges."""
        with self._lock:
            return dict(self._totals)


def _reply(entry: dict, cached: bool) -> Reply:
    usage = entry.get("usage") or {}
    return Reply(text=clean_text(entry["response"]), prompt_tokens=usage.get("prompt_tokens", 0),
                 completion_tokens=usage.get("completion_tokens", 0), latency_s=entry["latency_s"], cached=cached)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _retry_after(headers: Any) -> float | None:
    """A Retry-After header in seconds, or None when absent or not a number."""
    try:
        seconds = float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class LLMClient:
    """Answers chat requests from the run's journal, else a replay journal, else the endpoint (with retries).

    `sleep` waits between retries; tests pass one that does not really sleep.
    """

    def __init__(self, config: LLMConfig, journal: Journal, replay: Journal | None = None, *,
                 sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.journal = journal
        self.replay = replay
        self.base_url = (config.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._sleep = sleep
        self._params = {"model": config.model, "temperature": config.temperature,
                        "max_completion_tokens": config.max_completion_tokens, "base_url": self.base_url}
        self._openai: openai.OpenAI | None = None
        self._openai_lock = threading.Lock()

    def check(self) -> None:
        """Fail fast, before any work, when there is no API key or the endpoint cannot be reached (not with replay)."""
        if self.replay is not None:
            return
        api_key = os.environ.get("OPENAI_API_KEY")
        if not api_key:
            raise LLMError("no_api_key", NO_API_KEY_MESSAGE)
        url = f"{self.base_url}/models"
        try:
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})
            with urllib.request.urlopen(request, timeout=min(_PROBE_TIMEOUT_S, self.config.timeout)):
                pass
        except urllib.error.HTTPError as exc:  # any HTTP status (404, 401, ...) means something answered
            exc.close()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise LLMError("unreachable", f"cannot reach the LLM endpoint {self.base_url}: {reason}") from None
        self._client().chat.completions  # build the HTTP client now, not while the first requests wait on it

    def chat(self, request_id: str, messages: list[dict]) -> Reply:
        """One chat completion for a deterministic `request_id`; a request answered before is never sent again."""
        entry = self.journal.lookup(request_id, messages)
        if entry is not None:
            return _reply(entry, cached=True)
        if self.replay is not None:
            entry = self.replay.lookup(request_id, messages)
            if entry is None:
                raise LLMError("replay_miss", f"no recorded answer for request {request_id} in {self.replay.path}")
            self.journal.append({**entry, "replayed_from": str(self.replay.path)})
            return _reply(entry, cached=True)
        return self._request(request_id, messages)

    def _client(self) -> openai.OpenAI:
        with self._openai_lock:
            if self._openai is None:
                api_key = os.environ.get("OPENAI_API_KEY")
                if not api_key:
                    raise LLMError("no_api_key", NO_API_KEY_MESSAGE)
                self._openai = openai.OpenAI(base_url=self.base_url, api_key=api_key, timeout=self.config.timeout,
                                             max_retries=0)  # retries happen here, so that each one is journaled
            return self._openai

    def _request(self, request_id: str, messages: list[dict]) -> Reply:
        """Send the request, retrying 429 / 5xx / timeouts / connection errors with backoff; journal every attempt."""
        client = self._client()
        request = {"request_id": request_id, "messages_sha256": messages_sha256(messages), "messages": messages,
                   "params": self._params}
        attempts = self.config.max_retries + 1
        for attempt in range(1, attempts + 1):
            start = time.perf_counter()
            try:
                text, usage = self._post(client, messages)
            except _Failure as failure:
                self.journal.append({**request, "response": None, "usage": None,
                                     "latency_s": time.perf_counter() - start,
                                     "error": {"kind": failure.kind, "message": failure.message,
                                               "status": failure.status},
                                     "attempt": attempt, "time": _now()})
                if not failure.retryable or attempt == attempts:
                    tries = f" failed after {attempt} attempts" if attempt > 1 else ""
                    raise failure.llm_error(f"request {request_id}{tries}") from None
                self._sleep(self._backoff(attempt, failure.retry_after))
                continue
            entry = {**request, "response": text, "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0},
                     "latency_s": time.perf_counter() - start, "error": None, "attempt": attempt, "time": _now()}
            if usage is None:
                entry["usage_missing"] = True  # the endpoint reported no usage: counted as 0 tokens
            self.journal.append(entry)
            return _reply(entry, cached=False)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _post(self, client: openai.OpenAI, messages: list[dict]) -> tuple[str, dict | None]:
        """One HTTP attempt: the reply text and usage, or a _Failure saying whether to retry."""
        kwargs: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                  "temperature": self.config.temperature}
        if self.config.max_completion_tokens is not None:
            kwargs["max_completion_tokens"] = self.config.max_completion_tokens
        try:
            completion = client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            raise _classify(exc, self.config) from None
        choices = getattr(completion, "choices", None)
        if not choices:
            raise _Failure("bad_response", "the endpoint answered without any choices")
        text = getattr(getattr(choices[0], "message", None), "content", None)
        if not isinstance(text, str):
            raise _Failure("bad_response", "the endpoint answered without message content")
        usage = getattr(completion, "usage", None)
        if usage is None:
            return text, None
        return text, {"prompt_tokens": usage.prompt_tokens or 0, "completion_tokens": usage.completion_tokens or 0}

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: the server's Retry-After, else exponential backoff with full jitter."""
        if retry_after is not None:
            return min(retry_after, BACKOFF_CAP_S)
        return random.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


class _Failure(Exception):
    """A failed attempt: what went wrong and whether (and after how long) to try again."""

    def __init__(self, kind: str, message: str, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(one_line(message))
        self.kind, self.message, self.status = kind, one_line(message), status
        self.retryable, self.retry_after = retryable, retry_after

    def llm_error(self, where: str) -> LLMError:
        """The error the caller sees, with `where` in front of the message."""
        message = f"{where}: {self.message}"
        if self.kind == "context_length":
            return ContextLengthError(message, self.status)
        return LLMError(self.kind, message, self.status)


def _classify(exc: openai.APIError, config: LLMConfig) -> _Failure:
    """Map an openai exception to an error kind and a retry decision."""
    if isinstance(exc, openai.APITimeoutError):
        return _Failure("timeout", f"no answer within {config.timeout:g} s", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return _Failure("connection", f"connection error: {exc.__cause__ or exc}", retryable=True)
    if not isinstance(exc, openai.APIStatusError):
        return _Failure("bad_response", f"malformed reply: {exc}")
    status = exc.status_code
    detail = exc.body.get("message") if isinstance(exc.body, dict) else None
    detail = detail if isinstance(detail, str) and detail else exc.message
    if status == 400 and (exc.code == "context_length_exceeded" or _CONTEXT_LENGTH.search(detail)):
        return _Failure("context_length", f"the prompt is too long for {config.model}: {detail}", status)
    retryable = status == 429 or status >= 500
    return _Failure("http", f"HTTP {status}: {detail}", status, retryable=retryable,
                    retry_after=_retry_after(exc.response.headers) if retryable else None)
