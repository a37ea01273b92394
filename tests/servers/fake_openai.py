"""A real HTTP server on 127.0.0.1 that speaks a sliver of the OpenAI API and misbehaves on purpose.

Every client of an OpenAI-compatible endpoint (the behavior judge, the priming writer) is tested against it.
A test identifies each request by what it asks about (``identify(body)``, e.g. the judged text and rubric)
and scripts what the server does on the k-th request with that identity (``script(key, k)``): answer with a
reply, fail with an HTTP status, hang past the client's timeout, trickle the reply byte by byte, drop or cut
the connection, or send a body that is not an OpenAI reply. The server counts the requests per identity, so
tests can tell a retry, a cache hit and a duplicate apart, and keeps every request body and every
Authorization header seen. Error bodies echo the Authorization header back, as some hosted APIs echo the key
they rejected, so that tests can check the client never passes such an echo on.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Script = Callable[[Any, int], str]
"""(request identity, attempt) -> action: "reply:<text>" | an HTTP status ("500", "429", "401"; with
``retry_after`` as Retry-After) | "hang" | "trickle" | "drop" (close without a response) | "truncate" (close
half-way through the body) | "garbage" (not JSON) | "no_choices" (JSON without a reply) | "nested" (JSON
nested 100,000 deep)."""

NESTED = b"[" * 100_000 + b"]" * 100_000


def key_forms(key: str) -> set[str]:
    """Every way a library, a server or a log may print ``key``: raw (as in its Authorization header),
    repr-escaped, JSON-escaped (also with ``\\/``), URL-encoded, and as in a bytes repr. Each is searched
    for without its quotes, so a quoted or embedded occurrence is found too."""
    escaped = json.dumps(key)[1:-1]
    return {
        key,
        f"Bearer {key}",
        repr(key)[1:-1],
        escaped,
        escaped.replace("/", "\\/"),
        urllib.parse.quote(key, safe=""),
        urllib.parse.quote(key),
        urllib.parse.quote_plus(key),
        repr(key.encode())[2:-1],
    }


def assert_key_absent(keys: Iterable[str], texts: Iterable[str], files: Iterable[Path] = ()) -> None:
    """No form (`key_forms`) of any of ``keys`` occurs in ``texts`` or in the bytes of ``files``."""
    forms = {form for key in keys for form in key_forms(key)}
    for i, text in enumerate(texts):
        leaked = sorted(form for form in forms if form in text)
        assert not leaked, f"text {i} shows the key as {leaked}: {text[:2000]}"
    for path in files:
        data = path.read_bytes()
        leaked = sorted(form for form in forms if form.encode() in data)
        assert not leaked, f"{path} holds the key as {leaked}"


def last_message(body: dict) -> str:
    """The prompt of a request: the last chat message, or the plain-text prompt of `/v1/completions`."""
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # not 5: a client with 16 requests in flight must not wait on SYN retries


class ScriptedOpenAIServer:
    """Serves `/v1/models` (one model, ``model``), `/v1/chat/completions` and `/v1/completions` until the
    `with` block ends. The script runs under a lock, in arrival order; ``delay_s`` delays every reply. A
    "hang" lasts ``hang_s`` (or until the server stops), then answers like ``after_hang``; a "trickle" sends
    that answer one byte every ``trickle_s`` seconds (``trickled`` counts the bytes sent). ``models_action``
    is what `/v1/models` does (None: list ``model``; "reply:..." actions do the same)."""

    def __init__(
        self,
        script: Script,
        identify: Callable[[dict], Hashable] = last_message,
        model: str = "fake-model",
        delay_s: float = 0.0,
        hang_s: float = 5.0,
        after_hang: str = "reply:ok",
        trickle_s: float = 1.0,
        retry_after: str = "0",
        models_action: str | None = None,
    ) -> None:
        self.script = script
        self.identify = identify
        self.model = model
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.after_hang = after_hang
        self.trickle_s = trickle_s
        self.retry_after = retry_after
        self.models_action = models_action
        self.requests: Counter[Hashable] = Counter()
        self.actions: list[tuple[Hashable, str]] = []
        self.authorizations: set[str | None] = set()
        self.bodies: list[dict] = []
        self.trickled = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
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
            self.actions.append((key, action))
        if self.delay_s:
            time.sleep(self.delay_s)
        return action

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    self._send(404, b'{"error": "not found"}')
                    return
                with server._lock:
                    server.authorizations.add(self.headers.get("Authorization"))
                models = json.dumps({"object": "list", "data": [{"id": server.model}]}).encode()
                self._perform(server.models_action or "reply:", lambda reply: models)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                action = server._act(body, self.headers.get("Authorization"))

                def completion(reply: str) -> bytes:
                    if "messages" in body:
                        choice = {"index": 0, "message": {"role": "assistant", "content": reply}}
                    else:
                        choice = {"index": 0, "text": reply}
                    return json.dumps({"id": "x", "model": body["model"], "choices": [choice]}).encode()

                self._perform(action, completion)

            def _perform(self, action: str, answer: Callable[[str], bytes]) -> None:
                """Carry out ``action``; ``answer(reply)`` is the body of a successful reply."""
                if action in ("hang", "trickle"):
                    if action == "hang":
                        server._stopping.wait(server.hang_s)
                    kind, _, reply = server.after_hang.partition(":")
                    assert kind == "reply", f"after_hang must be a reply, got {server.after_hang!r}"
                    if action == "trickle":
                        self._trickle(answer(reply))
                        return
                    action = server.after_hang
                if action.isdigit():
                    echo = {"message": f"scripted failure for {self.headers.get('Authorization')}"}
                    self._send(int(action), json.dumps({"error": echo}).encode(), server.retry_after)
                elif action == "garbage":
                    self._send(
                        200, f"<html>502 Bad Gateway {self.headers.get('Authorization')}</html>".encode()
                    )
                elif action == "no_choices":
                    self._send(200, b'{"choices": []}')
                elif action == "nested":
                    self._send(200, NESTED)
                elif action == "drop":
                    self.close_connection = True  # no status line, no headers: the socket just closes
                elif action == "truncate":
                    payload = answer("truncated")
                    self._send(200, payload[: len(payload) // 2], length=len(payload))
                    self.close_connection = True
                else:
                    kind, _, reply = action.partition(":")
                    assert kind == "reply", f"unknown scripted action {action!r}"
                    self._send(200, answer(reply))

            def _trickle(self, payload: bytes) -> None:
                """Send ``payload`` one byte every ``trickle_s`` seconds: each read is quick, the reply never
                ends (until the client gives up or the server stops)."""
                self._send(200, b"", length=len(payload))
                for byte in payload:
                    if server._stopping.wait(server.trickle_s):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    with server._lock:
                        server.trickled += 1

            def _send(
                self, status: int, payload: bytes, retry_after: str | None = None, length: int | None = None
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload) if length is None else length))
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) before the reply

        return Handler
