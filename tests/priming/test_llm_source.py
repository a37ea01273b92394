"""The LLM-written source against the shared fake OpenAI server (tests/servers) returning canned traces."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest
from servers.fake_openai import ScriptedOpenAIServer

from cogrl.config import LLMSourceConfig
from cogrl.envs import make_env
from cogrl.files import InputError
from cogrl.priming.card import row_task
from cogrl.priming.conditions import get_condition
from cogrl.priming.dataset import save_priming_set
from cogrl.priming.llm import build_llm, parse_reply, system_prompt
from cogrl_countdown.traces import write_countdown_trace

SECRET = "sk-test-secret-123"


def canned_reply(kind: str, numbers: list[int], target: int, rng: random.Random) -> str:
    """good: backtracking only; unwanted: also verification; wrong: a wrong answer that says so; lying: a
    wrong answer claimed to reach the target; unreadable: no tags."""
    if kind == "unreadable":
        return f"I would say {numbers[0]} + {numbers[1]} or so."
    if kind == "lying":
        wrong = write_countdown_trace(
            numbers, target, frozenset({"backtracking", "verification"}), False, rng
        )
        claim = f"{numbers[0]} + {numbers[1]} = {target}. That matches the target."
        return f"<think>\n{wrong.thought} {claim}\n</think>\n<answer>{wrong.answer}</answer>"
    behaviors = {
        "good": {"backtracking"},
        "unwanted": {"backtracking", "verification"},
        "wrong": {"backtracking"},
    }
    trace = write_countdown_trace(numbers, target, frozenset(behaviors[kind]), kind != "wrong", rng)
    return f"<think>\n{trace.thought}\n</think>\n<answer>{trace.answer}</answer>"


class CannedServer(ScriptedOpenAIServer):
    """Request k gets kind KINDS[k % 5]; "flaky" fails with 500 once and then answers like "good"."""

    KINDS = ("good", "unwanted", "unreadable", "wrong", "flaky")

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self._new_requests = 0
        self._flaky_seen: set[str] = set()
        super().__init__(self._answer, model="canned-writer")

    @property
    def system_prompts(self) -> set[str]:
        return {body["messages"][0]["content"] for body in self.bodies}

    def _answer(self, user: str, attempt: int) -> str:
        """Runs under the server's lock, in arrival order; ``user`` is the task's prompt."""
        if user in self._flaky_seen:
            kind = "good"
        else:
            kind = self.KINDS[self._new_requests % len(self.KINDS)]
            self._new_requests += 1
        self.kinds[kind] += 1
        if kind == "flaky":
            self._flaky_seen.add(user)
            return "500"
        numbers = [int(x) for x in re.search(r"\[([\d, ]+)\]", user).group(1).split(",")]
        target = int(re.search(r"Target: (\d+)", user).group(1))
        return "reply:" + canned_reply(kind, numbers, target, random.Random(user))


@pytest.fixture()
def env():
    return make_env("countdown", {"preset": "priming", "n_train": 80, "n_test": 0})


def test_only_replies_that_match_the_condition_are_kept(env, tmp_path, monkeypatch):
    monkeypatch.setenv("COGRL_LLM_API_KEY", SECRET)
    condition = get_condition("backtracking_only")
    logs: list[str] = []
    with CannedServer() as server:
        config = LLMSourceConfig(endpoint=server.url + "/v1", concurrency=4, backoff_s=0.01)
        dataset, report = build_llm(env, condition, 6, 2, config, seed=0, log=logs.append)
    assert (dataset["train"].num_rows, dataset["validation"].num_rows) == (6, 2)
    rows = dataset["train"].to_list() + dataset["validation"].to_list()
    assert all(r["correct"] and r["reward"] == 1.0 for r in rows)
    assert all(r["behaviors"]["backtracking"] >= 1 and r["behaviors"]["verification"] == 0 for r in rows)
    assert all(r["source"] == "llm:canned-writer" and r["condition"] == "backtracking_only" for r in rows)
    assert all(
        r["completion"].endswith("</answer>") and "</think>\n<answer>" in r["completion"] for r in rows
    )
    # Every rejection has its reason; the flaky request was retried and kept.
    assert report.rejections["unwanted:verification"] >= 1
    assert report.rejections["unreadable_format"] >= 1
    assert report.rejections["wrong_answer"] >= 1
    assert sum(report.rejections.values()) + report.accepted >= 8 and report.accepted == 8
    assert server.kinds["flaky"] >= 1 and server.kinds["good"] >= server.kinds["flaky"]
    assert server.authorizations == {f"Bearer {SECRET}"}
    assert len(server.system_prompts) == 1 and "go back" in next(iter(server.system_prompts))
    # The key never reaches the saved set or the logs.
    out = tmp_path / "set"
    save_priming_set(dataset, out, {"condition": condition.name, "rejections": dict(report.rejections)}, env)
    assert all(SECRET not in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())
    assert SECRET not in "\n".join(logs)
    assert "wrong_answer" in (out / "README.md").read_text()


def test_incorrect_condition_keeps_only_wrong_answers(env):
    with CannedServer() as server:
        config = LLMSourceConfig(endpoint=server.url, concurrency=2, backoff_s=0.01, max_requests=40)
        dataset, report = build_llm(
            env, get_condition("backtracking_only+incorrect"), 3, 0, config, log=lambda m: None
        )
    assert dataset["train"].num_rows == 3 and not any(dataset["train"]["correct"])
    assert report.rejections["answer_not_wrong"] >= 1


def test_a_short_set_stops_at_max_requests(env):
    with CannedServer() as server:
        config = LLMSourceConfig(endpoint=server.url, max_requests=4, backoff_s=0.01)
        dataset, report = build_llm(
            env, get_condition("backtracking_only"), 10, 0, config, log=lambda m: None
        )
    assert report.requests == 4 and dataset["train"].num_rows < 10


def test_unreachable_or_wrong_endpoints_fail_clearly(env):
    with pytest.raises(InputError, match="http"):
        LLMSourceConfig(endpoint="127.0.0.1:9")
    config = LLMSourceConfig(endpoint="http://127.0.0.1:9", max_retries=0, timeout_s=2)
    with pytest.raises(InputError, match="pass --model"):
        build_llm(env, get_condition("no_behavior"), 1, 0, config, log=lambda m: None)


def test_system_prompts_differ_per_condition_and_parse_reply_is_strict():
    prompts = {
        system_prompt(get_condition(n)) for n in ("all_strategies", "backtracking_only", "no_behavior")
    }
    assert len(prompts) == 3
    assert "WRONG" in system_prompt(get_condition("all_strategies+incorrect"))
    assert parse_reply("<think>a</think>\n<answer>1 + 2</answer> <answer>3 * 4</answer>") == ("a", "3 * 4")
    assert parse_reply("<think>a</think> no answer") is None
    assert parse_reply("<answer>1</answer>") is None


class HonestyServer(CannedServer):
    """Replies cycle through a right answer, an honest failure, a false success claim, an unreadable reply."""

    KINDS = ("good", "wrong", "lying", "unreadable")


def test_unfiltered_keeps_every_parsed_reply_and_reports_its_rates(env, tmp_path):
    """filter none (the paper's sets): right, wrong and off-condition replies alike; the card says how many."""
    with CannedServer() as server:
        config = LLMSourceConfig(endpoint=server.url, concurrency=1, backoff_s=0.01, filter="none")
        dataset, report = build_llm(env, get_condition("backtracking_only"), 8, 0, config, log=lambda m: None)
    rows = dataset["train"].to_list()
    assert len(rows) == 8 and set(report.rejections) == {"unreadable_format"}
    assert any(r["correct"] for r in rows) and not all(r["correct"] for r in rows)
    assert any(r["behaviors"]["verification"] for r in rows)  # "unwanted" replies are kept too
    out = tmp_path / "set"
    meta = {"condition": "backtracking_only", "filter": "none", "rejections": dict(report.rejections)}
    stats = save_priming_set(dataset, out, meta, env)["train"]
    assert stats["correct_rate"] == sum(r["correct"] for r in rows) / 8
    assert 0 < stats["behavior_rate"]["verification"] < 1 and stats["behavior_rate"]["backtracking"] == 1
    card = (out / "README.md").read_text()
    assert "| filter | `none` |" in card and f"| train | 8 | {stats['correct_rate']:.1%} |" in card


def test_natural_failures_are_wrong_answers_without_false_success_claims(env):
    with HonestyServer() as server:
        config = LLMSourceConfig(
            endpoint=server.url, concurrency=1, backoff_s=0.01, filter="natural_failure", max_requests=40
        )
        dataset, report = build_llm(
            env, get_condition("backtracking_only+incorrect"), 3, 0, config, log=lambda m: None
        )
    rows = dataset["train"].to_list()
    assert len(rows) == 3 and not any(r["correct"] for r in rows)
    assert all(env.check_claims(r["completion"], row_task(env, r)).false_success_claims == 0 for r in rows)
    assert report.rejections["false_success_claim"] >= 1 and report.rejections["answer_not_wrong"] >= 1
    # The writer is asked to solve the task (its failures are natural), not to be wrong.
    assert all("WRONG" not in prompt for prompt in server.system_prompts)
    with pytest.raises(InputError, match=r"\+incorrect"):
        build_llm(env, get_condition("backtracking_only"), 1, 0, config, log=lambda m: None)


def test_strict_incorrect_rejects_false_success_claims(env):
    with HonestyServer() as server:
        config = LLMSourceConfig(endpoint=server.url, concurrency=1, backoff_s=0.01, max_requests=40)
        condition = get_condition("backtracking_verification+incorrect")
        _, report = build_llm(env, condition, 1, 0, config, log=lambda m: None)
    assert report.rejections["false_success_claim"] >= 1
