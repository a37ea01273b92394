"""Fixtures of the corpus tests: a fake OpenAI server that labels and rewrites the sample corpus's documents
(`corpus_helpers.script`), and a tiny model whose character tokenizer measures them."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_helpers import identify, script
from servers.fake_openai import ScriptedOpenAIServer

from cogrl.config import TinyModelSpec
from cogrl.models import build_tiny_model


@pytest.fixture
def fake_llm():
    with ScriptedOpenAIServer(script, identify=identify, model="fake-curator") as server:
        yield server


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A tiny model with a character tokenizer (one token per character): its directory."""
    spec = TinyModelSpec(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, tokenizer="char",
                         max_position_embeddings=512)  # fmt: skip
    return build_tiny_model(spec, [], tmp_path_factory.mktemp("models"))
