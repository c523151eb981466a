"""TEST DOUBLE: `ScriptedLLMServer`, a scripted OpenAI-compatible chat-completions server on 127.0.0.1.

No model runs here: a test hands it a `respond(request_json, call_index)` function whose answer (a reply text,
or a `Scripted` error, delay or malformed reply) the server sends back in the OpenAI response shape. Token counts
are deterministic so tests can check accounting exactly:

    prompt_tokens     = (total characters of all message contents) // 4 + 1
    completion_tokens = len(reply text) // 4 + 1
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Scripted:
    """One scripted answer: a reply text with status 200, or an HTTP error, a slow answer or a malformed reply."""

    text: str | None = None  # with status 200: None sends a malformed reply without choices
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"Retry-After": "0"}
    delay_s: float = 0.0  # sleep before answering (timeouts, latency benchmarks)
    error_code: str | None = None  # the error body's "code", e.g. "context_length_exceeded"
    usage: bool | dict = True  # False leaves `usage` out of a reply, as some local servers do; a dict is sent as is


def prompt_tokens(messages: list[dict]) -> int:
    """The server's deterministic prompt token count."""
    return sum(len(str(m.get("content") or "")) for m in messages) // 4 + 1


def completion_tokens(text: str) -> int:
    """The server's deterministic completion token count."""
    return len(text) // 4 + 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many concurrent clients connect at once


class ScriptedLLMServer:
    """TEST DOUBLE: a scripted OpenAI-compatible server on 127.0.0.1 (ThreadingHTTPServer in a daemon thread).

    Serves POST /v1/chat/completions and GET /v1/models; records every chat request body in `requests` and the
    usage of every reply it sent in `reported_usage` (including a delayed reply the client gave up waiting for),
    both in order and thread-safe.
    """

    model = "scripted-model"

    def __init__(self, respond: Callable[[dict, int], Scripted | str]):
        self.respond = respond
        self.requests: list[dict] = []
        self.reported_usage: list[dict] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ScriptedLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _answer(self, body: dict) -> tuple[Scripted, dict[str, Any]]:
        """Record the request, ask the script, and build the JSON body to send."""
        with self._lock:
            call_index = len(self.requests)
            self.requests.append(body)
        try:
            scripted = self.respond(body, call_index)
        except Exception as exc:  # a broken script shows up as a 500 the test will see
            scripted = Scripted(text=f"respond() raised {exc!r}", status=500)
        if isinstance(scripted, str):
            scripted = Scripted(text=scripted)
        if scripted.status != 200:
            error = {"message": scripted.text or f"scripted error {scripted.status}", "type": "scripted_error",
                     "param": None, "code": scripted.error_code}
            return scripted, {"error": error}
        reply: dict[str, Any] = {"id": f"chatcmpl-scripted-{call_index}", "object": "chat.completion",
                                 "created": int(time.time()), "model": body.get("model", self.model), "choices": []}
        if scripted.text is not None:
            reply["choices"] = [{"index": 0, "message": {"role": "assistant", "content": scripted.text},
                                 "finish_reason": "stop"}]
        if isinstance(scripted.usage, dict):
            reply["usage"] = scripted.usage
        elif scripted.usage and scripted.text is not None:
            usage = {"prompt_tokens": prompt_tokens(body.get("messages", [])),
                     "completion_tokens": completion_tokens(scripted.text)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            reply["usage"] = usage
            with self._lock:
                self.reported_usage.append(usage)
        return scripted, reply


def _handler(server: ScriptedLLMServer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `server`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model", "created": 0,
                                                             "owned_by": "scripted"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}", "code": None}})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}", "code": None}})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            scripted, reply = server._answer(body)
            time.sleep(scripted.delay_s)
            self._send(scripted.status, reply, scripted.headers)

        def _send(self, status: int, obj: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(obj).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test): nothing to do
                pass

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler
