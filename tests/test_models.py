"""cogrl.models: tiny models are deterministic, cached and loadable; packaged SmolLM2 converts."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from cogrl.config import ModelConfig
from cogrl.files import InputError
from cogrl.models import REASONING_TAGS, load_causal_lm, load_tokenizer, resolve_model, weights_digest

SPEC = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "vocab_size": 300}


@dataclass
class _Task:
    prompt: str


class _Env:
    """The one thing resolve_model asks of an environment: its training prompts."""

    def tasks(self, split: str) -> list[_Task]:
        assert split == "train"
        return [
            _Task(f"Using the numbers [{i}, {i + 7}, 3], create an equation that equals {i * 2}.")
            for i in range(50)
        ]


def test_tiny_build_is_deterministic_and_cached(tmp_path):
    config = ModelConfig(tiny=SPEC)
    first = resolve_model(config, _Env(), cache_dir=tmp_path / "a")
    second = resolve_model(config, _Env(), cache_dir=tmp_path / "b")
    assert first.name == second.name
    assert weights_digest(first) == weights_digest(second)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(config, _Env(), cache_dir=tmp_path / "a") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]


def test_tiny_cache_key_follows_spec_and_corpus(tmp_path):
    base = resolve_model(ModelConfig(tiny=SPEC), _Env(), cache_dir=tmp_path)
    assert resolve_model(ModelConfig(tiny={**SPEC, "arch": "llama"}), _Env(), cache_dir=tmp_path) != base
    assert resolve_model(ModelConfig(tiny=SPEC), None, cache_dir=tmp_path) != base


def test_tiny_model_loads_with_hf(tmp_path):
    path = resolve_model(ModelConfig(tiny={**SPEC, "arch": "llama"}), _Env(), cache_dir=tmp_path)
    config = json.loads((path / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["model_type"] == "llama"
    tokenizer = load_tokenizer(path)
    assert len(tokenizer) <= SPEC["vocab_size"]
    for tag in REASONING_TAGS:
        assert len(tokenizer(tag, add_special_tokens=False).input_ids) == 1
    text = "<think> 12 * 2 = 24 </think> <answer>12*2</answer> ünïcode"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids) == text
    model = load_causal_lm(path)
    ids = tokenizer(["<think> 1 + 2", "3"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape[-1] == model.config.vocab_size >= len(tokenizer)
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()


def test_local_path_must_be_a_model_dir(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        resolve_model(ModelConfig(path=str(tmp_path)))


@pytest.mark.slow
def test_packaged_smollm2_converts_to_a_loadable_dir(tmp_path):
    path = resolve_model(ModelConfig(path="package:smollm2"), cache_dir=tmp_path)
    assert resolve_model(ModelConfig(path="package:smollm2"), cache_dir=tmp_path) == path
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    tokenizer = load_tokenizer(path)
    model = load_causal_lm(path)
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 3
    assert model.config.tie_word_embeddings  # as shipped
