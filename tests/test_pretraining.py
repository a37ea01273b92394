"""Pretraining (cogrl.pretraining): packing, the schedule, exact resume after a crash, the content address."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from cogrl.config import PretrainConfig, PretrainRecipe
from cogrl.files import InputError
from cogrl.pretraining import (
    STATE_FILE,
    batch_indices,
    block_tensors,
    content_address,
    lr_factor,
    pack,
    pretrain,
)  # fmt: skip

ENV = dict(
    preset="priming", min_count=3, max_count=3, max_number=9, min_target=10, max_target=30, n_train=60,
    n_test=8, template="custom", custom_template="Use {numbers} to make {target}.\n<think>",
    trace_style="search", search_max_value=100, search_max_chars=200,
)  # fmt: skip
TINY = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, tokenizer="char")


def recipe(**pretrain) -> PretrainRecipe:
    settings = dict(epochs=1, seq_len=64, batch_size=4, lr=3e-3, checkpoint_every=3, log_every=1) | pretrain
    return PretrainRecipe(
        name="t", env={"name": "countdown", "options": ENV}, model={"tiny": TINY},
        corpus={"documents": 40, "probes": 8}, pretrain=settings, logging={"wandb_mode": "disabled"},
    )  # fmt: skip


class Crash(Exception):
    pass


class Chars:
    eos_token_id = 0

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) for c in text] for text in texts]}


def test_stream_packing_ends_documents_with_eos_and_keeps_only_full_blocks():
    # a b c EOS d e EOS f EOS: three full blocks; with "g" added, its "g EOS" is a partial block, dropped
    assert pack(Chars(), ["abc", "de", "f"], 3, "stream") == [[97, 98, 99], [0, 100, 101], [0, 102, 0]]
    assert pack(Chars(), ["abc", "de", "f", "g"], 3, "stream") == [[97, 98, 99], [0, 100, 101], [0, 102, 0]]


def test_aligned_packing_starts_every_block_at_a_document_and_fits_best():
    # "abcdef EOS" (7) is cut 4 + 3; then longest first, each into the fullest block it fits: "de EOS" and
    # "f EOS" (3) open blocks of their own, "f EOS" (2) opens one that "g EOS" (2) then fills
    assert pack(Chars(), ["de", "f", "abcdef", "g"], 4) == [
        [97, 98, 99, 100], [100, 101, 0], [101, 102, 0], [102, 0, 103, 0]
    ]  # fmt: skip
    assert pack(Chars(), ["a", "b"], 4) == [[97, 0, 98, 0]]
    documents = [chr(97 + i % 26) * (1 + i % 9) for i in range(200)]
    blocks = pack(Chars(), documents, 16)
    assert sorted(t for b in blocks for t in b) == sorted(t for d in documents for t in [*map(ord, d), 0])
    assert all(len(b) <= 16 for b in blocks) and sum(map(len, blocks)) / (16 * len(blocks)) > 0.95


def test_padding_is_neither_attended_nor_learned():
    tensors = block_tensors([[5, 6, 7], [8]], seq_len=3, pad_id=7)
    assert tensors["input_ids"].tolist() == [[5, 6, 7], [8, 7, 7]]
    assert tensors["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    # the pad id 7 is a real token in the first block (a pad id may equal EOS): only the mask decides
    assert tensors["labels"].tolist() == [[5, 6, 7], [8, -100, -100]]


def test_batches_visit_every_block_once_per_epoch_and_depend_only_on_the_step():
    seen = [i for step in range(1, 6) for i in batch_indices(10, step, 2, seed=3)]
    assert sorted(seen) == list(range(10))
    assert batch_indices(10, 4, 2, seed=3) == batch_indices(10, 4, 2, seed=3)
    assert batch_indices(10, 1, 2, seed=3) != batch_indices(10, 1, 2, seed=4)


def test_schedule_warms_up_then_decays_to_zero():
    config = PretrainConfig(warmup_ratio=0.1)
    assert lr_factor(0, 100, config) == pytest.approx(0.1)
    assert lr_factor(9, 100, config) == pytest.approx(1.0)
    assert lr_factor(10, 100, config) == pytest.approx(1.0)
    assert lr_factor(55, 100, config) == pytest.approx(0.5)
    assert lr_factor(100, 100, config) == pytest.approx(0.0)
    assert lr_factor(50, 100, PretrainConfig(lr_schedule="constant", warmup_ratio=0.0)) == 1.0


def test_content_address_follows_what_decides_the_model_only():
    base = recipe()
    assert content_address(base) == content_address(base.model_copy(update={"name": "other"}))
    assert content_address(base) != content_address(recipe(lr=1e-3))
    assert content_address(base) != content_address(base.model_copy(update={"corpus": {"documents": 41}}))


def test_pretraining_learns_and_a_crashed_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # tiny models are cached under ~/.cache
    whole = pretrain(recipe(), tmp_path / "whole", log=lambda line: None)
    meta = json.loads((whole / "pretrain.json").read_text())
    losses = [point["loss"] for point in meta["curve"]]
    assert losses[-1] < losses[0]
    assert set(meta["probes"]) == {"arithmetic", "unseen_equations"}
    assert meta["git_commit"] is not None and meta["packages"]["torch"]
    assert not (tmp_path / "whole.work").exists()

    def crash_after_step_4(line: str) -> None:
        if line.startswith("pretrain step 4/"):
            raise Crash

    with pytest.raises(Crash):
        pretrain(recipe(), tmp_path / "resumed", log=crash_after_step_4)
    assert not (tmp_path / "resumed").exists()
    assert torch.load(tmp_path / "resumed.work" / STATE_FILE, weights_only=False)["step"] == 3
    lines: list[str] = []
    pretrain(recipe(), tmp_path / "resumed", log=lines.append)
    assert any("resumed at step 3" in line for line in lines)
    a = load_file(whole / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    with pytest.raises(Crash):
        pretrain(recipe(), tmp_path / "other", log=crash_after_step_4)
    with pytest.raises(InputError, match="another recipe"):
        pretrain(recipe(lr=1e-3), tmp_path / "other", log=lambda line: None)
