"""One client for every OpenAI-compatible server the lab talks to (the behavior judge, the priming writer).

Any local vLLM server, cluster server or hosted API will do. The client is what makes such a server safe to
lean on for hours: at most `concurrency` requests in flight, every attempt bounded in time and in body
size, transient faults retried with jittered exponential backoff, and faults that no retry can fix (a wrong
URL, model or key) stopping the job at once. A request that still fails is reported as None; deciding what
that means (unknown, not cached; a rejected row) is the caller's business, as are its prompts and parsing.

Every exchange, the `/v1/models` lookup included, runs under one overall deadline (`timeout_s`) that covers
connecting, waiting and streaming the whole body: httpx's own timeout bounds each read only, so a server that
trickles a byte a second would otherwise hold a job forever. A body that cannot be read (not JSON, nested
too deeply for the parser, cut off) is a transient fault like any other, never an exception out of the job.

The API key comes from the environment only (`EndpointConfig.api_key_variables`), stripped of surrounding
whitespace (a key file saved with CRLF) and refused, by variable name, if it could not be a bearer token.
It is replaced by `***` in every reply, log line and error message, in each form a server or library may
print it (raw, repr- or JSON-escaped, URL-encoded, bytes repr), so an echo cannot leak it into outputs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx

from cogrl.config import EndpointConfig
from cogrl.files import InputError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
"""A response body larger than this is abandoned mid-read: a misbehaving server cannot exhaust memory."""

MAX_NOTES = 20
"""Error messages kept in `ClientStats.errors` (all of them are logged)."""

Message = dict[str, str]
"""A chat message, `{"role": "system" | "user" | "assistant", "content": text}`."""


class EndpointError(InputError):
    """A fault no retry can fix (bad URL, model or key): the whole job stops with this message."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class ClientStats:
    """What the requests cost: attempts sent (retries included), retries, and requests that failed for good
    (retries exhausted or rejected with a 4xx), with the first few reasons."""

    requests: int = 0
    retries: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


_KEY_FLAWS = (
    ("non-ASCII characters", lambda char: not char.isascii()),
    ("inner whitespace", str.isspace),
    ("a control character", lambda char: not char.isprintable()),
)


def api_key_from_env(variables: tuple[str, ...]) -> str | None:
    """The first non-empty value among ``variables``, stripped of surrounding whitespace (a key file saved
    with CRLF); a value that could not be a bearer token raises `InputError` naming the variable, never the
    value (httpx would print it in full, or fail with a traceback on a non-ASCII one)."""
    for name in variables:
        key = os.environ.get(name, "").strip()
        if not key:
            continue
        for flaw, test in _KEY_FLAWS:
            if any(test(char) for char in key):
                raise InputError(
                    f"environment variable {name} holds an API key with {flaw}; fix the variable"
                )
        return key
    return None


def _printed_forms(key: str) -> list[str]:
    """How ``key`` may appear in text: raw (as in its Authorization header), repr-escaped, JSON-escaped
    (also with an escaped ``/``), URL-encoded, and as in a bytes repr; longest first, so that no form is left
    half-replaced by a shorter one."""
    escaped = json.dumps(key)[1:-1]
    forms = {
        key,
        repr(key)[1:-1],
        escaped,
        escaped.replace("/", "\\/"),
        urllib.parse.quote(key, safe=""),
        urllib.parse.quote(key),
        urllib.parse.quote_plus(key),
        repr(key.encode())[2:-1],
    }
    return sorted(forms, key=len, reverse=True)


def _check_url(base_url: str) -> None:
    """Refuse an endpoint no request could reach (httpx would raise a bare InvalidURL mid-job, or retry a
    host-less URL as if the network were down)."""
    try:
        host = httpx.URL(base_url).host
    except httpx.InvalidURL as exc:
        raise EndpointError(f"endpoint {base_url!r} is not a valid URL ({exc})") from None
    if not host or any(char.isspace() or not char.isprintable() for char in base_url):
        raise EndpointError(f"endpoint {base_url!r} is not a valid URL (no host, or spaces in it)")


class LLMClient:
    """An open connection pool to one server; use as ``async with LLMClient(config, "judge") as client``.

    ``name`` labels log lines. ``stats`` may be shared with the caller (e.g. `JudgeStats`, which extends
    `ClientStats`), so counts accumulate over several sessions. On entry the model name is resolved from
    ``/v1/models`` when the config gives none."""

    def __init__(self, config: EndpointConfig, name: str = "llm", stats: ClientStats | None = None) -> None:
        self.config = config
        self.name = name
        self.stats = stats if stats is not None else ClientStats()
        self.model = config.model
        _check_url(config.base_url)
        self._api_key = api_key_from_env(config.api_key_variables)
        self._secret_forms = _printed_forms(self._api_key) if self._api_key else []
        self._http: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None

    async def __aenter__(self) -> LLMClient:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limits = httpx.Limits(max_connections=self.config.concurrency)
        self._http = httpx.AsyncClient(base_url=self.config.base_url, headers=headers, limits=limits)
        self._semaphore = asyncio.Semaphore(self.config.concurrency)
        try:
            if self.model is None:
                self.model = await self._served_model()
        except BaseException:
            await self._http.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._http is not None
        await self._http.aclose()

    async def complete(self, messages: list[Message]) -> str | None:
        """The reply to ``messages`` (key redacted), or None when every attempt failed or the server rejected
        this request with a 4xx other than 401/403/404 (e.g. a prompt longer than its context).

        Raises `EndpointError` on 401/403/404, which would fail every request alike."""
        assert self._semaphore is not None, "use the client inside `async with`"
        if self.config.api == "chat":
            path = "/v1/chat/completions"
            payload: dict[str, Any] = {"messages": messages}
        else:
            path = "/v1/completions"
            payload = {"prompt": "".join(f"{m['content']}\n\n" for m in messages)}
        payload.update(
            model=self.model, max_tokens=self.config.max_tokens, temperature=self.config.temperature
        )
        async with self._semaphore:
            for attempt in range(self.config.max_retries + 1):
                try:
                    return await self._request(path, payload)
                except _Retryable as exc:
                    reason = self.redact(str(exc))
                    if attempt == self.config.max_retries:
                        self._fail(f"{self.name} request failed after {attempt + 1} attempts: {reason}")
                        return None
                    cap = self.config.backoff_cap_s
                    delay = random.uniform(0, min(cap, self.config.backoff_s * 2**attempt))
                    if exc.retry_after is not None:
                        delay = min(cap, max(delay, exc.retry_after))
                    self.stats.retries += 1
                    log.warning(
                        "%s: %s; retry %d/%d in %.2fs",
                        self.name,
                        reason,
                        attempt + 1,
                        self.config.max_retries,
                        delay,
                    )
                    await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def redact(self, text: str) -> str:
        """``text`` with every printed form of the API key replaced by ``***``."""
        for form in self._secret_forms:
            text = text.replace(form, "***")
        return text

    async def _served_model(self) -> str:
        url = f"{self.config.base_url}/v1/models"
        try:
            response, text = await self._exchange("GET", "/v1/models")
            if not response.is_success:
                raise _Retryable(f"HTTP {response.status_code} from {url}: {self._snippet(text)}")
            model = json.loads(text)["data"][0]["id"]
            if not isinstance(model, str):
                raise TypeError("the model id is not a string")
            return model
        except (_Retryable, ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            raise EndpointError(
                self.redact(f"{url} did not name a model ({_why(exc)}); pass --model")
            ) from None

    async def _exchange(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, str]:
        """One HTTP exchange and its whole body (at most `MAX_BODY_BYTES`), under the overall deadline.

        Raises `_Retryable`, naming the URL, for a deadline passed, a transport fault or an oversized body."""
        assert self._http is not None
        url = f"{self.config.base_url}{path}"
        deadline = self.config.timeout_s
        try:
            async with (
                asyncio.timeout(deadline),
                self._http.stream(method, path, timeout=deadline, **kwargs) as response,
            ):
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise _Retryable(f"response body from {url} exceeds {MAX_BODY_BYTES} bytes")
        except TimeoutError:
            raise _Retryable(f"no complete answer from {url} within the {deadline:g}s deadline") from None
        except httpx.RequestError as exc:
            raise _Retryable(f"{_why(exc)} ({url})") from None
        return response, body.decode("utf-8", errors="replace")

    async def _request(self, path: str, payload: dict[str, Any]) -> str | None:
        """Send one attempt; return the reply text, None for a per-request client error, or raise."""
        url = f"{self.config.base_url}{path}"
        self.stats.requests += 1
        response, text = await self._exchange("POST", path, json=payload)
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise _Retryable(f"HTTP {status} from {url}", _retry_after(response.headers.get("retry-after")))
        if status in (401, 403, 404):
            raise EndpointError(
                self.redact(
                    f"{self.config.base_url}: HTTP {status} for {path} (check the endpoint, model and API "
                    f"key): {self._snippet(text)}"
                )
            )
        if status >= 400:
            self._fail(f"{self.name} request rejected with HTTP {status} for {url}: {self._snippet(text)}")
            return None
        try:
            choice = json.loads(text)["choices"][0]
            reply = choice["message"]["content"] if self.config.api == "chat" else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            raise _Retryable(
                f"unreadable response body from {url} ({_why(exc)}): {self._snippet(text, 100)}"
            ) from None
        if not isinstance(reply, str):
            raise _Retryable(f"response from {url} has no text content")
        # A lone surrogate (JSON allows a "\ud800" escape) would fail whoever stores or prints the reply.
        return self.redact(reply.encode("utf-8", errors="replace").decode("utf-8"))

    def _snippet(self, text: str, limit: int = 300) -> str:
        """The start of a body for an error message: redacted before it is cut, on one line."""
        return repr(self.redact(text)[:limit])

    def _fail(self, message: str) -> None:
        message = self.redact(message)
        self.stats.failed += 1
        log.warning("%s", message)
        if len(self.stats.errors) < MAX_NOTES:
            self.stats.errors.append(message)


def _why(exc: BaseException) -> str:
    """One line on what went wrong, for exceptions whose text may be empty or name no cause."""
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    text = " ".join(str(exc).split())
    if isinstance(exc, _Retryable):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
