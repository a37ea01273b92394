"""One client for every OpenAI-compatible server the lab talks to (the behavior judge, the priming writer).

Any local vLLM server, cluster server or hosted API will do. The client is what makes such a server safe to
lean on for hours: at most `concurrency` requests in flight, every attempt bounded in time and in body
size, transient faults retried with jittered exponential backoff, and faults that no retry can fix (a wrong
URL, model or key) stopping the job at once. A request that still fails is reported as None; deciding what
that means (unknown, not cached; a rejected row) is the caller's business, as are its prompts and parsing.

The API key comes from the environment only (`EndpointConfig.api_key_variables`) and is replaced by `***` in
every reply, log line and error message, so a server that echoes it cannot leak it into outputs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
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


def api_key_from_env(variables: tuple[str, ...]) -> str | None:
    """The first non-empty value among ``variables``."""
    for name in variables:
        if value := os.environ.get(name):
            return value
    return None


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
        self._api_key = api_key_from_env(config.api_key_variables)
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
        async with self._semaphore:
            for attempt in range(self.config.max_retries + 1):
                try:
                    async with asyncio.timeout(self.config.timeout_s):
                        return await self._request(messages)
                except (_Retryable, httpx.RequestError, TimeoutError) as exc:
                    reason = self.redact(str(exc) or type(exc).__name__)
                    if attempt == self.config.max_retries:
                        self._fail(f"{self.name} request failed after {attempt + 1} attempts: {reason}")
                        return None
                    cap = self.config.backoff_cap_s
                    delay = random.uniform(0, min(cap, self.config.backoff_s * 2**attempt))
                    if isinstance(exc, _Retryable) and exc.retry_after is not None:
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
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self._api_key, "***") if self._api_key else text

    async def _served_model(self) -> str:
        assert self._http is not None
        try:
            response = await self._http.get("/v1/models", timeout=self.config.timeout_s)
            response.raise_for_status()
            return response.json()["data"][0]["id"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            reason = self.redact(str(exc) or type(exc).__name__)
            raise EndpointError(
                f"{self.config.base_url}/v1/models did not name a model ({reason}); pass --model"
            ) from None

    async def _request(self, messages: list[Message]) -> str | None:
        """Send one attempt; return the reply text, None for a per-request client error, or raise."""
        assert self._http is not None
        if self.config.api == "chat":
            path = "/v1/chat/completions"
            payload: dict[str, Any] = {"messages": messages}
        else:
            path = "/v1/completions"
            payload = {"prompt": "".join(f"{m['content']}\n\n" for m in messages)}
        payload.update(
            model=self.model, max_tokens=self.config.max_tokens, temperature=self.config.temperature
        )
        self.stats.requests += 1
        async with self._http.stream("POST", path, json=payload, timeout=self.config.timeout_s) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise _Retryable(f"response body from {path} exceeds {MAX_BODY_BYTES} bytes")
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise _Retryable(f"HTTP {status} from {path}", _retry_after(response.headers.get("retry-after")))
        text = body.decode("utf-8", errors="replace")
        if status in (401, 403, 404):
            raise EndpointError(
                f"{self.config.base_url}: HTTP {status} for {path} (check the endpoint, model and API key): "
                f"{self.redact(text)[:300]}"
            )
        if status >= 400:
            self._fail(
                f"{self.name} request rejected with HTTP {status} for {path}: {self.redact(text)[:300]}"
            )
            return None
        try:
            choice = json.loads(text)["choices"][0]
            reply = choice["message"]["content"] if self.config.api == "chat" else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retryable(f"unreadable response body from {path}: {self.redact(text)[:100]!r}") from None
        if not isinstance(reply, str):
            raise _Retryable(f"response from {path} has no text content")
        return self.redact(reply)

    def _fail(self, message: str) -> None:
        self.stats.failed += 1
        log.warning("%s", message)
        if len(self.stats.errors) < MAX_NOTES:
            self.stats.errors.append(message)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
