"""The shared OpenAI-compatible client and its config, against the shared fake server (tests/servers).

The judge's tests (tests/behaviors/test_judge.py) cover retries, timeouts and unreadable bodies in depth;
these cover what is particular to the client being shared: per-role configs and key variables, both APIs,
and secrecy in what the client returns, logs and raises."""

from __future__ import annotations

import asyncio
import logging

import pytest
from servers.fake_openai import ScriptedOpenAIServer, assert_key_absent, key_forms

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


# ----------------------------------------------------------------------------------------------------------
# Key hygiene: read stripped, refused when malformed, redacted in every printed form
# ----------------------------------------------------------------------------------------------------------
ODD_KEY = "sk-Se\"cr\\et/+k=y%41'~"
"""A usable key whose repr, JSON, URL and bytes forms all differ from the raw text."""


@pytest.mark.parametrize("raw", [f"{KEY}\r\n", f"  {KEY}\n", f"\t{KEY} "])
def test_a_key_read_from_a_crlf_file_is_stripped(monkeypatch, raw: str) -> None:
    monkeypatch.setenv("MY_LAB_KEY", raw)
    with ScriptedOpenAIServer(lambda prompt, attempt: "reply:hi") as server:
        config = EndpointConfig(endpoint=server.url, api_key_variables=("MY_LAB_KEY",), max_retries=0)
        assert _complete(config)[:2] == ("fake-model", "hi")
    assert server.authorizations == {f"Bearer {KEY}"}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("sk-two words", "whitespace"),
        ("sk-a\r\nsk-b", "whitespace"),
        ("sk-bell\x07", "control character"),
        ("sk-caf\u00e9-\u4e2d", "non-ASCII"),
    ],
)
def test_a_malformed_key_is_refused_by_name_without_being_shown(monkeypatch, raw: str, why: str) -> None:
    monkeypatch.setenv("MY_LAB_KEY", raw)
    config = EndpointConfig(endpoint="http://127.0.0.1:9", model="m", api_key_variables=("MY_LAB_KEY",))
    with pytest.raises(InputError) as info:
        _complete(config)
    message = str(info.value)
    assert "MY_LAB_KEY" in message and why in message and "\n" not in message
    assert_key_absent([raw, raw.strip()], [message, repr(info.value)])


def test_redact_replaces_every_printed_form_of_the_key(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ODD_KEY)
    client = LLMClient(EndpointConfig(endpoint="http://127.0.0.1:9", model="m"))
    for form in key_forms(ODD_KEY):
        assert client.redact(f"<{form}>") in ("<***>", "<Bearer ***>"), form
    assert_key_absent([ODD_KEY], [client.redact(" ".join(key_forms(ODD_KEY)))])


# ----------------------------------------------------------------------------------------------------------
# Deadlines, bad bodies, bad URLs
# ----------------------------------------------------------------------------------------------------------
def test_a_trickling_models_lookup_stops_at_the_deadline() -> None:
    """One byte a second never trips a 2 s per-read timeout; the overall deadline stops the lookup."""
    with ScriptedOpenAIServer(lambda p, a: "reply:hi", models_action="trickle", trickle_s=1.0) as server:
        config = EndpointConfig(endpoint=server.url, timeout_s=2.0)
        with pytest.raises(EndpointError, match=rf"{server.url}/v1/models.*2s deadline.*pass --model"):
            _complete(config)
        assert server.trickled < 10  # of a 60-byte reply: cut off, not waited out


def test_a_trickling_reply_is_retried_then_fails_naming_the_endpoint_and_deadline() -> None:
    with ScriptedOpenAIServer(lambda p, a: "trickle", trickle_s=0.3, after_hang="reply:hi") as server:
        config = EndpointConfig(endpoint=server.url, model="m", timeout_s=1.0, max_retries=1, backoff_s=0)
        _, reply, stats = _complete(config)
    assert reply is None and server.total() == 2 and stats.failed == 1
    assert f"{server.url}/v1/chat/completions" in stats.errors[0] and "1s deadline" in stats.errors[0]


def test_the_priming_writer_gets_the_same_deadline() -> None:
    from cogrl.envs import make_env
    from cogrl.priming.conditions import get_condition
    from cogrl.priming.llm import build_llm

    env = make_env("countdown", {"preset": "priming", "n_train": 8, "n_test": 0})
    with ScriptedOpenAIServer(lambda p, a: "reply:hi", models_action="trickle", trickle_s=1.0) as server:
        config = LLMSourceConfig(endpoint=server.url, timeout_s=2.0)
        with pytest.raises(EndpointError, match="2s deadline"):
            build_llm(env, get_condition("no_behavior"), 1, 0, config, log=lambda m: None)


@pytest.mark.parametrize("action", ["nested", "garbage", "no_choices", "truncate", "drop"])
def test_an_unreadable_reply_is_retried_then_a_failed_request_with_a_reason(action: str) -> None:
    with ScriptedOpenAIServer(lambda p, a: action) as server:
        config = EndpointConfig(endpoint=server.url, model="m", max_retries=2, backoff_s=0)
        _, reply, stats = _complete(config)
    assert reply is None and server.total() == 3 and (stats.retries, stats.failed) == (2, 1)
    assert f"{server.url}/v1/chat/completions" in stats.errors[0]
    if action == "nested":
        assert "nested too deeply" in stats.errors[0]


@pytest.mark.parametrize("action", ["nested", "garbage", "404", "drop"])
def test_an_unreadable_models_list_stops_the_job_clearly(action: str) -> None:
    with (
        ScriptedOpenAIServer(lambda p, a: "reply:hi", models_action=action) as server,
        pytest.raises(EndpointError, match=rf"{server.url}/v1/models.*pass --model"),
    ):
        _complete(EndpointConfig(endpoint=server.url))


def test_a_reply_with_a_lone_surrogate_comes_back_as_valid_text() -> None:
    with ScriptedOpenAIServer(lambda p, a: "reply:a\ud800b") as server:
        _, reply, _ = _complete(EndpointConfig(endpoint=server.url, model="m"))
    assert reply == "a?b" and reply.encode("utf-8")


@pytest.mark.parametrize("endpoint", ["http://[::1", "http://", "http://exa mple.com:80"])
def test_a_bad_url_stops_the_job_with_one_line(endpoint: str) -> None:
    with pytest.raises(EndpointError, match="endpoint") as info:
        _complete(EndpointConfig(endpoint=endpoint, model="m", max_retries=0, timeout_s=2))
    assert "\n" not in str(info.value)
