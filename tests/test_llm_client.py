"""The shared OpenAI-compatible client and its config, against the shared fake server (tests/servers).

The judge's tests (tests/behaviors/test_judge.py) cover retries, timeouts and unreadable bodies in depth;
these cover what is particular to the client being shared: per-role configs and key variables, both APIs,
and secrecy in what the client returns, logs and raises."""

from __future__ import annotations

import asyncio
import logging

import pytest
from servers.fake_openai import ScriptedOpenAIServer

from cogrl.config import EndpointConfig, JudgeConfig, LLMSourceConfig
from cogrl.files import InputError
from cogrl.llm_client import ClientStats, EndpointError, LLMClient

KEY = "sk-shared-client-4d2c"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hi"}]


def _complete(config: EndpointConfig, messages=MESSAGES) -> tuple[str | None, str | None, ClientStats]:
    async def run() -> tuple[str | None, str | None, ClientStats]:
        async with LLMClient(config, "test") as client:
            return client.model, await client.complete(messages), client.stats

    return asyncio.run(run())


def test_config_errors_name_the_knob_and_roles_keep_their_defaults() -> None:
    with pytest.raises(InputError, match=r"endpoint: .*http\(s\) URL"):
        EndpointConfig(endpoint="127.0.0.1:8000")
    with pytest.raises(InputError, match="concurrency"):
        JudgeConfig(endpoint="http://x", concurrency=0)
    with pytest.raises(InputError, match="unknown key 'batchsize'; did you mean 'batch_size'"):
        JudgeConfig(endpoint="http://x", batchsize=4)
    judge, writer = JudgeConfig(endpoint="http://x"), LLMSourceConfig(endpoint="http://x/v1/")
    assert (judge.temperature, judge.max_tokens) == (0.0, 256)  # greedy: a cached judgment is reproducible
    assert (writer.temperature, writer.max_tokens) == (1.0, 1024)
    assert judge.api_key_variables[0] == "COGRL_JUDGE_API_KEY"
    assert writer.api_key_variables[0] == "COGRL_LLM_API_KEY" and writer.base_url == "http://x"


def test_key_from_the_configured_variable_is_sent_and_redacted_everywhere(monkeypatch, caplog) -> None:
    monkeypatch.setenv("MY_LAB_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-this-one")
    caplog.set_level(logging.DEBUG)
    script = lambda prompt, attempt: "500" if attempt == 0 else f"reply:echo {KEY}"  # noqa: E731
    with ScriptedOpenAIServer(script, model="m1") as server:
        variables = ("MY_LAB_KEY", "OPENAI_API_KEY")
        model, reply, stats = _complete(
            EndpointConfig(endpoint=server.url, api_key_variables=variables, backoff_s=0.01)
        )
    assert model == "m1" and reply == "echo ***"
    assert server.authorizations == {f"Bearer {KEY}"}
    assert (stats.requests, stats.retries, stats.failed) == (2, 1, 0)
    assert "retry 1/5" in caplog.text and KEY not in caplog.text


def test_completions_api_sends_the_messages_as_one_prompt() -> None:
    with ScriptedOpenAIServer(lambda prompt, attempt: "reply:hi") as server:
        config = EndpointConfig(endpoint=server.url + "/v1", api="completions", model="base", max_tokens=7)
        assert _complete(config)[:2] == ("base", "hi")
    (body,) = server.bodies
    assert body == {"prompt": "be brief\n\nsay hi\n\n", "model": "base", "max_tokens": 7, "temperature": 0.0}


def test_a_rejected_request_is_none_and_a_rejected_key_stops(monkeypatch) -> None:
    with ScriptedOpenAIServer(lambda prompt, attempt: "400") as server:
        _, reply, stats = _complete(EndpointConfig(endpoint=server.url, model="m"))
    assert reply is None and stats.failed == 1 and server.total() == 1 and "HTTP 400" in stats.errors[0]
    with (
        ScriptedOpenAIServer(lambda prompt, attempt: "403") as server,
        pytest.raises(EndpointError, match="403"),
    ):
        _complete(EndpointConfig(endpoint=server.url, model="m"))
