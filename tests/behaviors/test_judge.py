"""The LLM judge: reply parsing, rubric prompts, and fault tolerance against a real misbehaving HTTP server."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from fake_openai_server import FakeOpenAIServer, always

from cogrl.behaviors.judge import (
    MAX_COUNT,
    RUBRICS,
    JudgeCache,
    LLMJudge,
    Trajectory,
    parse_count,
    rubric_prompt,
    subject_text,
)
from cogrl.behaviors.types import BEHAVIORS
from cogrl.config import JudgeConfig
from cogrl.llm_client import EndpointError


# ----------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("It checks 55+4 against the target.\nCOUNT: 2", 2),
        ("COUNT: 0", 0),
        ("**Count:** 3", 3),
        ("count = 4.", 4),
        ("Final count: three", 3),
        ("COUNT: [5]", 5),
        ("COUNT: 1\n...on reflection...\nCOUNT: 2", 2),  # the last COUNT line wins
        ("7", 7),
        ("  **7**  ", 7),
        ("The response contains 3 distinct instances of verification: 30 + 25 = 55.", 3),
        ("There are no instances of backtracking.", 0),
        ("Two instances: first ..., second ...; so two instances in all.", 2),
    ],
)
def test_parse_count_reads_the_final_count(reply: str, expected: int) -> None:
    assert parse_count(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "The response verifies its result twice.",  # no COUNT line: unknown, never 0
        "COUNT: <n>",
        "COUNT: -1",
        "COUNT: 2.5",
        "COUNT: 3/5",
        f"COUNT: {MAX_COUNT + 1}",
        "COUNT: many",
        "There are 2 checks and 3 switches.",
        "One instance here, and 2 instances there.",  # inconsistent free text: unknown
        "Several instances.",
    ],
)
def test_parse_count_returns_unknown_when_no_count_can_be_read(reply: str) -> None:
    assert parse_count(reply) is None


def test_parse_count_bounds_the_text_it_reads() -> None:
    assert parse_count("x" * 1_000_000 + "\nCOUNT: 2") is None


def test_one_rubric_per_behavior_and_the_subject_is_bounded() -> None:
    assert set(RUBRICS) == set(BEHAVIORS)
    subject = subject_text(
        Trajectory("a" * 100, problem="Puzzle: use the numbers [1, 2, 3] to make 6."), max_chars=10
    )
    assert "[1, 2, 3]" in subject and "a" * 11 not in subject and "truncated" in subject
    prompts = {b: rubric_prompt(b, subject) for b in BEHAVIORS}
    assert len(set(prompts.values())) == 4 and all("COUNT: <n>" in p for p in prompts.values())


def test_config_rejects_a_non_url_endpoint() -> None:
    with pytest.raises(ValueError, match="http"):
        JudgeConfig(endpoint="localhost:8000")
    assert JudgeConfig(endpoint="https://api.example.com/v1/").base_url == "https://api.example.com"


# ----------------------------------------------------------------------------------------------------------
# Against a real HTTP server
# ----------------------------------------------------------------------------------------------------------
def _config(server: FakeOpenAIServer, **overrides: object) -> JudgeConfig:
    options = {"timeout_s": 2.0, "max_retries": 3, "backoff_s": 0.01, "backoff_cap_s": 0.05, "concurrency": 4}
    return JudgeConfig(endpoint=server.url, **{**options, **overrides})


def test_judge_counts_every_behavior_and_names_the_served_model(tmp_path) -> None:
    counts = {"verification": 3, "backtracking": 0, "subgoal_setting": 1, "backward_chaining": 2}
    with FakeOpenAIServer(lambda text, b, attempt: f"count:{counts[b]}") as server:
        judge = LLMJudge(_config(server), JudgeCache(tmp_path / "cache.sqlite"))
        tags = judge.tag_many([Trajectory("t1"), Trajectory("t2", hints={"numbers": [1, 2], "target": 3})])
    assert [dict(t.counts) for t in tags] == [counts, counts]
    assert tags[0].source == "llm:fake-judge" and not tags[0].spans
    assert server.total() == 8 and set(server.requests.values()) == {1}
    assert all(body["temperature"] == 0.0 and body["max_tokens"] == 256 for body in server.bodies)


def test_transient_failures_are_retried_and_unknowns_stay_unknown(tmp_path) -> None:
    scripts = {
        "flaky": ["500", "429", "garbage", "count:2"],
        "hangs": ["hang", "count:1"],
        "broken": ["500"] * 10,
        "mute": ["reply:I cannot tell."],
        "absurd": ["count:100000"],
        "empty": ["no_choices", "count:4"],
    }
    script = lambda text, b, attempt: scripts[text][min(attempt, len(scripts[text]) - 1)]  # noqa: E731
    cache = JudgeCache(tmp_path / "cache.sqlite")
    with FakeOpenAIServer(script, hang_s=5.0) as server:
        judge = LLMJudge(_config(server, timeout_s=0.5), cache)
        tags = judge.tag_many([Trajectory(text) for text in scripts])
    got = {text: t.counts["verification"] for text, t in zip(scripts, tags, strict=True)}
    assert got == {"flaky": 2, "hangs": 1, "broken": None, "mute": None, "absurd": None, "empty": 4}
    assert all(len(set(t.counts.values())) == 1 for t in tags)  # each behavior scripted alike
    assert server.requests[("flaky", "backtracking")] == 4
    assert server.requests[("hangs", "subgoal_setting")] == 2
    assert server.requests[("broken", "verification")] == 4  # 1 + max_retries, then unknown
    assert server.requests[("mute", "verification")] == 1  # a readable reply without a count is not retried
    assert judge.stats.failed == 4 and judge.stats.unparsable == 8
    # Unreadable replies are finished judgments (cached as NULL); failed requests are not cached.
    assert len(cache) == 5 * 4


def test_cache_prevents_paying_twice_and_is_keyed_by_model(tmp_path) -> None:
    items = [Trajectory(f"text {i}") for i in range(5)]
    with FakeOpenAIServer(always("count:1")) as server:
        first = LLMJudge(_config(server, model="judge-a"), JudgeCache(tmp_path / "c.sqlite")).tag_many(items)
        again = LLMJudge(_config(server, model="judge-a"), JudgeCache(tmp_path / "c.sqlite"))
        second = again.tag_many(items)
        assert server.total() == 20 and again.stats.cache_hits == 20 and again.stats.requests == 0
        LLMJudge(_config(server, model="judge-b"), JudgeCache(tmp_path / "c.sqlite")).tag_many(items)
        assert server.total() == 40
    assert first == second


def test_a_repeated_response_is_judged_once() -> None:
    with FakeOpenAIServer(always("count:3")) as server:
        tags = LLMJudge(_config(server, model="m")).tag_many(
            [Trajectory("same"), Trajectory("other"), Trajectory("same")]
        )
    assert server.total() == 8 and tags[0] == tags[2] and tags[0].counts["verification"] == 3


def test_completions_api_for_base_models(tmp_path) -> None:
    with FakeOpenAIServer(always("count:2")) as server:
        tags = LLMJudge(_config(server, api="completions", model="base")).tag_many([Trajectory("t")])
    assert tags[0].counts["backward_chaining"] == 2
    assert all("prompt" in body and "messages" not in body for body in server.bodies)


def test_a_rejected_request_is_unknown_and_asked_again_next_time(tmp_path) -> None:
    with FakeOpenAIServer(lambda text, b, attempt: "400" if attempt == 0 else "count:2") as server:
        first = LLMJudge(_config(server, model="m"), JudgeCache(tmp_path / "c.sqlite")).tag_many(
            [Trajectory("t")]
        )
        assert server.total() == 4 and all(c is None for c in first[0].counts.values())  # no retry on a 400
        second = LLMJudge(_config(server, model="m"), JudgeCache(tmp_path / "c.sqlite")).tag_many(
            [Trajectory("t")]
        )
    assert server.total() == 8 and all(c == 2 for c in second[0].counts.values())


def test_a_rejected_key_stops_the_job(tmp_path) -> None:
    with FakeOpenAIServer(always("401")) as server, pytest.raises(EndpointError, match="401"):
        LLMJudge(_config(server, model="m")).tag_many([Trajectory("t")])


def test_api_key_is_sent_but_never_logged_cached_or_returned(tmp_path, monkeypatch, caplog) -> None:
    key = "sk-test-7f3a9c1e5b"
    monkeypatch.setenv("COGRL_JUDGE_API_KEY", key)
    # A server that echoes the key back in a reply and fails once, so that retries get logged too.
    script = lambda text, b, attempt: "500" if attempt == 0 else f"reply:echo {key}\nCOUNT: 1"  # noqa: E731
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(script) as server:
        judge = LLMJudge(_config(server), JudgeCache(tmp_path / "cache.sqlite"))
        tags = judge.tag_many([Trajectory("t")])
    assert tags[0].counts["verification"] == 1
    assert set(server.authorizations) == {f"Bearer {key}"}
    assert "retry" in caplog.text and key not in caplog.text
    assert key not in repr(tags) + repr(judge.stats) + repr(judge.config)
    for path in tmp_path.iterdir():
        assert key.encode() not in path.read_bytes(), path
    replies = sqlite3.connect(tmp_path / "cache.sqlite").execute("SELECT reply FROM judgments").fetchall()
    assert replies and all("***" in r for (r,) in replies)


def test_a_nested_or_odd_unicode_reply_never_crashes_the_job(tmp_path) -> None:
    """JSON nested past the parser's recursion limit is an unreadable body (retried, then unknown with its
    reason); a reply holding a lone surrogate is stored and returned as valid text."""
    scripts = {"deep": "nested", "odd": "reply:a\ud800 COUNT: 2", "fine": "count:1"}
    cache = JudgeCache(tmp_path / "cache.sqlite")
    with FakeOpenAIServer(lambda text, b, attempt: scripts[text]) as server:
        judge = LLMJudge(_config(server, max_retries=1), cache)
        tags = judge.tag_many([Trajectory(text) for text in scripts])
    assert [set(t.counts.values()) for t in tags] == [{None}, {2}, {1}]
    assert server.requests[("deep", "verification")] == 2 and judge.stats.failed == 4
    assert all("nested too deeply" in error for error in judge.stats.errors)
    assert len(cache) == 8
