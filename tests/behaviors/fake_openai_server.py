"""A real HTTP server on 127.0.0.1 that speaks a sliver of the OpenAI API and misbehaves on purpose.

Each request is identified by the response text it asks about (the part between ``<<<`` and ``>>>`` in the
prompt) and by the behavior its rubric names; a script maps (text, behavior, attempt) to what the server
does: answer with a count, send a raw reply, fail with 500 or 429, hang past the client's timeout, or send a
body that is not JSON. The server counts every request per (text, behavior), so tests can tell a retry, a
cache hit and a duplicate apart.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cogrl.behaviors.judge import RUBRICS

# "count:3" | "reply:<raw text>" | an HTTP status ("500", "429", "401") | "hang" | "garbage" | "no_choices"
Script = Callable[[str, str, int], str]


def always(action: str) -> Script:
    return lambda text, behavior, attempt: action


class FakeOpenAIServer:
    def __init__(self, script: Script = always("count:1"), delay_s: float = 0.0, hang_s: float = 5.0) -> None:
        self.script = script
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.requests: Counter[tuple[str, str]] = Counter()
        self.authorizations: list[str | None] = []
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "fake-judge"}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
                text = prompt.split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
                behavior = next(b for b, rubric in RUBRICS.items() if rubric in prompt)
                with server._lock:
                    attempt = server.requests[(text, behavior)]
                    server.requests[(text, behavior)] += 1
                    server.authorizations.append(self.headers.get("Authorization"))
                    server.bodies.append(body)
                action = server.script(text, behavior, attempt)
                if server.delay_s:
                    time.sleep(server.delay_s)
                if action == "hang":
                    server._stopping.wait(server.hang_s)
                    action = "count:1"
                if action.isdigit():
                    self._send(
                        int(action), b'{"error": {"message": "scripted failure"}}', {"Retry-After": "0"}
                    )
                elif action == "garbage":
                    self._send(200, b"<html>502 Bad Gateway</html>")
                elif action == "no_choices":
                    self._send(200, b'{"choices": []}')
                else:
                    kind, _, value = action.partition(":")
                    reply = f"The response does this.\nCOUNT: {value}" if kind == "count" else value
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
