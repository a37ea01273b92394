"""cogrl.models: tiny models are deterministic, cached and loadable; packaged SmolLM2 converts."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from cogrl.config import ModelConfig
from cogrl.files import InputError
from cogrl.models import (
    CHAR_VOCAB_SIZE,
    REASONING_TAGS,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
    tiny_config,
    weights_digest,
)

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


def test_bpe_cache_key_predates_the_tokenizer_field(tmp_path):
    """Adding `tokenizer` to the spec must not move existing BPE caches (names computed with the code before
    the field existed)."""
    assert (
        resolve_model(ModelConfig(tiny=SPEC), _Env(), cache_dir=tmp_path).name
        == "tiny-qwen2-f406fc6f04ee0aaa"
    )
    explicit = ModelConfig(tiny={**SPEC, "tokenizer": "bpe"})
    assert resolve_model(explicit, None, cache_dir=tmp_path).name == "tiny-qwen2-c294a3734e927a78"


COUNTDOWN_TEXT = (
    "Using the numbers [25, 30, 3, 4], create an equation that equals 32.\n"
    "<think> try 30 - 25 = 5, 5 * 4 = 20, 20 + 3 = 23; 23 != 32. back to [25, 30, 3, 4]\n"
    "need 32 = 8 * 4; 30 + 3 = 33, 33 - 25 = 8, 8 * 4 = 32; 32 == 32 </think>\n"
    "<answer>(30 + 3 - 25) * 4</answer>"
)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_char_tokenizer_one_token_per_character(tmp_path, arch):
    """Reloaded as transformers (and vLLM) load it: `Qwen2Tokenizer` for qwen2, which rebuilds the pipeline."""
    spec = {**SPEC, "tokenizer": "char", "arch": arch}
    path = resolve_model(ModelConfig(tiny=spec), _Env(), cache_dir=tmp_path)
    tokenizer = load_tokenizer(path)
    assert len(tokenizer) == CHAR_VOCAB_SIZE < SPEC["vocab_size"]
    ids = tokenizer(COUNTDOWN_TEXT, add_special_tokens=False).input_ids
    assert len(ids) == len(COUNTDOWN_TEXT) - sum(
        COUNTDOWN_TEXT.count(tag) * (len(tag) - 1) for tag in REASONING_TAGS
    )
    assert tokenizer.decode(ids) == COUNTDOWN_TEXT
    assert tokenizer.decode(tokenizer("ünïcode\t", add_special_tokens=False).input_ids) == "ünïcode\t"
    for tag in REASONING_TAGS:
        assert len(tokenizer(tag, add_special_tokens=False).input_ids) == 1
    for char in "0123456789+-*/=()[], !<>":
        assert len(tokenizer(char, add_special_tokens=False).input_ids) == 1
    assert len(tokenizer("12345", add_special_tokens=False).input_ids) == 5
    assert tokenizer.eos_token == "<|eos|>" and tokenizer.pad_token == "<|pad|>"
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert chat == "<|bos|>user: hi\n"
    # the char vocabulary replaces the spec's vocab_size, also for the memory planner (no tokenizer)
    assert json.loads((path / "config.json").read_text())["vocab_size"] == CHAR_VOCAB_SIZE
    assert tiny_config(ModelConfig(tiny=spec).tiny).vocab_size == CHAR_VOCAB_SIZE


def test_char_cache_key_follows_the_tokenizer_not_the_corpus(tmp_path):
    char = ModelConfig(tiny={**SPEC, "tokenizer": "char"})
    path = resolve_model(char, _Env(), cache_dir=tmp_path)
    assert path != resolve_model(ModelConfig(tiny=SPEC), _Env(), cache_dir=tmp_path)
    assert resolve_model(char, None, cache_dir=tmp_path) == path  # the corpus does not change a char model


def test_char_tiny_model_trains_one_step(tmp_path):
    path = resolve_model(ModelConfig(tiny={**SPEC, "tokenizer": "char"}), None, cache_dir=tmp_path)
    tokenizer, model = load_tokenizer(path), load_causal_lm(path)
    model.train()
    batch = tokenizer([COUNTDOWN_TEXT, "12 + 3 = 15"], return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    before = model.lm_head.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model(**batch, labels=labels).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.lm_head.weight)


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
