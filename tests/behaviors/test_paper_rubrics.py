"""The paper's rubric set for the judge, against a real local HTTP server: the prompts it sends, its own cache
entries, its tags' source, and its selection from the command line."""

from __future__ import annotations

import json

from clirunner import run_cli
from fake_openai_server import FakeOpenAIServer, always

from cogrl.behaviors.judge import PAPER_RUBRICS, RUBRIC_SETS, RUBRICS, JudgeCache, LLMJudge, Trajectory
from cogrl.behaviors.types import BEHAVIORS
from cogrl.config import JudgeConfig


def _config(server: FakeOpenAIServer, **overrides: object) -> JudgeConfig:
    return JudgeConfig(endpoint=server.url, backoff_s=0.01, concurrency=4, **overrides)


def test_two_rubric_sets_one_rubric_per_behavior_each():
    assert RUBRIC_SETS == {"cogrl": RUBRICS, "paper": PAPER_RUBRICS}
    assert set(PAPER_RUBRICS) == set(BEHAVIORS)
    assert all(PAPER_RUBRICS[b] != RUBRICS[b] for b in BEHAVIORS)
    # the paper's two definitions that make its counts higher than ours on equation lists
    assert "does not use the result of the computation just before it" in PAPER_RUBRICS["backtracking"]
    assert "too high" in PAPER_RUBRICS["verification"]


def test_the_paper_rubrics_are_sent_cached_apart_and_named_in_the_source(tmp_path):
    counts = {"verification": 4, "backtracking": 3, "subgoal_setting": 0, "backward_chaining": 1}
    with FakeOpenAIServer(lambda text, b, attempt: f"count:{counts[b]}") as server:
        cache = tmp_path / "c.sqlite"
        tags = LLMJudge(_config(server, rubrics="paper"), JudgeCache(cache)).tag_many(
            [Trajectory("t", hints={"numbers": [1, 2], "target": 3})]
        )
        assert dict(tags[0].counts) == counts and tags[0].source == "llm:fake-judge:paper"
        prompts = [body["messages"][-1]["content"] for body in server.bodies]
        assert sorted(p.split("\n\n", 1)[0] for p in prompts) == sorted(PAPER_RUBRICS.values())
        assert server.total() == 4
        # the same text under our rubrics is a different judgment: asked again, not read from the cache
        ours = LLMJudge(_config(server), JudgeCache(cache)).tag_many(
            [Trajectory("t", hints={"numbers": [1, 2], "target": 3})]
        )
        assert server.total() == 8 and ours[0].source == "llm:fake-judge"
        again = LLMJudge(_config(server, rubrics="paper"), JudgeCache(cache))
        again.tag_many([Trajectory("t", hints={"numbers": [1, 2], "target": 3})])
        assert server.total() == 8 and again.stats.cache_hits == 4


def test_cli_selects_the_rubric_set(tmp_path, capsys, monkeypatch):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"completion": "25 + 30 = 55, too high. 30 - 25 = 5", "target": 9}) + "\n")
    with FakeOpenAIServer(always("count:2")) as server:
        args = [
            "behaviors",
            "tag",
            "--method",
            "llm",
            "--endpoint",
            server.url,
            "--cache",
            str(tmp_path / "c"),
        ]
        code, out, err = run_cli([*args, "--rubrics", "paper", str(path)], capsys, monkeypatch)
        assert code == 0, err
        assert json.loads(out)["behavior_source"] == "llm:fake-judge:paper"
        assert any(PAPER_RUBRICS["backtracking"] in body["messages"][-1]["content"] for body in server.bodies)
        code, out, err = run_cli([*args, "--rubrics", "lenient", str(path)], capsys, monkeypatch)
        assert code == 2 and "rubrics" in err
