"""A real HTTP server on 127.0.0.1 that speaks a sliver of the OpenAI API and misbehaves on purpose.

Every client of an OpenAI-compatible endpoint (the behavior judge, the priming writer) is tested against it.
A test identifies each request by what it asks about (``identify(body)``, e.g. the judged text and rubric)
and scripts what the server does on the k-th request with that identity (``script(key, k)``): answer with a
reply, fail with an HTTP status, hang past the client's timeout, or send a body that is not an OpenAI reply.
The server counts the requests per identity, so tests can tell a retry, a cache hit and a duplicate apart,
and keeps every request body and every Authorization header seen.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = Callable[[Any, int], str]
"""(request identity, attempt) -> action: "reply:<text>" | an HTTP status ("500", "429", "401") | "hang" |
"garbage" (not JSON) | "no_choices" (JSON without a reply)."""


def last_message(body: dict) -> str:
    """The prompt of a request: the last chat message, or the plain-text prompt of `/v1/completions`."""
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


class ScriptedOpenAIServer:
    """Serves `/v1/models` (one model, ``model``), `/v1/chat/completions` and `/v1/completions` until the
    `with` block ends. The script runs under a lock, in arrival order; ``delay_s`` delays every reply and a
    "hang" lasts ``hang_s`` (or until the server stops), then answers like ``after_hang``."""

    def __init__(
        self,
        script: Script,
        identify: Callable[[dict], Hashable] = last_message,
        model: str = "fake-model",
        delay_s: float = 0.0,
        hang_s: float = 5.0,
        after_hang: str = "reply:ok",
    ) -> None:
        self.script = script
        self.identify = identify
        self.model = model
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.after_hang = after_hang
        self.requests: Counter[Hashable] = Counter()
        self.authorizations: set[str | None] = set()
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> ScriptedOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def _act(self, body: dict, authorization: str | None) -> str:
        key = self.identify(body)
        with self._lock:
            attempt = self.requests[key]
            self.requests[key] += 1
            self.authorizations.add(authorization)
            self.bodies.append(body)
            action = self.script(key, attempt)
        if self.delay_s:
            time.sleep(self.delay_s)
        if action == "hang":
            self._stopping.wait(self.hang_s)
            action = self.after_hang
        return action

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [{"id": server.model}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                action = server._act(body, self.headers.get("Authorization"))
                if action.isdigit():
                    self._send(
                        int(action), b'{"error": {"message": "scripted failure"}}', {"Retry-After": "0"}
                    )
                elif action == "garbage":
                    self._send(200, b"<html>502 Bad Gateway</html>")
                elif action == "no_choices":
                    self._send(200, b'{"choices": []}')
                else:
                    kind, _, reply = action.partition(":")
                    assert kind == "reply", f"unknown scripted action {action!r}"
                    if "messages" in body:
                        choice = {"index": 0, "message": {"role": "assistant", "content": reply}}
                    else:
                        choice = {"index": 0, "text": reply}
                    self._send(
                        200, json.dumps({"id": "x", "model": body["model"], "choices": [choice]}).encode()
                    )

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) before the reply

        return Handler
