"""The learner's forward pass (cogrl.rl.forward) and its precision: the chunked response log-probs equal the
plain full-logits computation in value and gradient, keep far fewer bytes for backward, and the bfloat16
path keeps float32 masters that move at the paper's lr 1e-6."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cogrl.config import AlgorithmConfig, TinyModelSpec, TrainerConfig
from cogrl.models import build_tiny_model, load_causal_lm
from cogrl.rl.batch import Experience
from cogrl.rl.forward import pad_batch, response_logprobs
from cogrl.rl.learner import Learner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CORPUS = ["Using the numbers [3, 7, 12], make 24. <think> 3 * 7 = 21 </think> <answer> 12 </answer>"]
PAIRS = [([5, 6, 7], [9, 10, 11]), ([8], [11, 12, 13, 14, 15]), ([20, 21], [30])]


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def model_dir(request, tmp_path_factory) -> Path:
    """Qwen2 (untied head) and Llama (tied embeddings), the two families of the paper."""
    spec = TinyModelSpec(
        arch=request.param, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=300
    )
    return build_tiny_model(spec, CORPUS, tmp_path_factory.mktemp(request.param))


def plain_logprobs(model, batch):
    """The textbook computation: full logits for every position, log-softmax, gather (the old learner)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()
    rows = torch.arange(logits.shape[0])[:, None]
    logits = logits[rows, batch.logit_index]
    logprobs = torch.log_softmax(logits, -1).gather(-1, batch.response_ids[..., None]).squeeze(-1)
    probs = torch.softmax(logits, -1)
    entropy = torch.logsumexp(logits, -1) - (probs * logits).sum(-1)
    return logprobs * batch.response_mask, entropy * batch.response_mask


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_chunked_logprobs_and_gradients_equal_the_plain_computation(model_dir, chunk):
    model = load_causal_lm(model_dir).train()
    batch = pad_batch(PAIRS, torch.device("cpu"))
    weights = torch.randn(batch.response_mask.shape, generator=torch.Generator().manual_seed(0))

    def grads(fn):
        model.zero_grad(set_to_none=True)
        logprobs, entropy = fn(model, batch)
        ((logprobs * weights).sum() + (entropy * weights).sum()).backward()
        return logprobs.detach(), entropy.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    want = grads(plain_logprobs)
    got = grads(lambda m, b: response_logprobs(m, b, chunk_tokens=chunk))
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-5)
    assert got[2].keys() == want[2].keys()
    for name in want[2]:
        torch.testing.assert_close(got[2][name], want[2][name], rtol=0, atol=1e-5, msg=name)


def saved_bytes(model, fn) -> int:
    """Bytes of the tensors autograd saves for backward while `fn` runs, parameters aside (activations)."""
    total = 0
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor):
        nonlocal total
        if tensor.untyped_storage().data_ptr() not in weights:
            total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_chunking_and_checkpointing_cut_the_bytes_saved_for_backward(tmp_path):
    spec = TinyModelSpec(hidden_size=32, num_layers=4, num_heads=2, intermediate_size=64, vocab_size=2000)
    corpus = [" ".join(f"w{i}" for i in range(k, k + 400)) for k in range(0, 4000, 400)]
    model_dir = build_tiny_model(spec, corpus, tmp_path)
    pairs = [(list(range(5, 25)), list(range(30, 94))) for _ in range(4)]
    batch = pad_batch(pairs, torch.device("cpu"))

    def measure(model, fn):
        return saved_bytes(model, lambda: sum(x.sum() for x in fn(model, batch)))

    model = load_causal_lm(model_dir).train()
    plain = measure(model, plain_logprobs)
    chunked = measure(model, lambda m, b: response_logprobs(m, b, chunk_tokens=32))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpointed = measure(model, lambda m, b: response_logprobs(m, b, chunk_tokens=32))
    # The plain path keeps [4, 84, 2000] float32 logits (and their softmax) for every position; the chunked
    # path keeps hidden states only, and checkpointing keeps one hidden state per layer (measured here:
    # 16.7 MB, 4.4 MB, 0.34 MB).
    assert chunked < plain / 3, (plain, chunked)
    assert checkpointed < chunked / 4, (chunked, checkpointed)


def _experiences() -> list[Experience]:
    return [
        Experience(tuple(p), tuple(r), (), reward, group)
        for (p, r), reward, group in zip(PAIRS + PAIRS[:1], (1.0, 0.0, 1.0, 0.0), (0, 0, 1, 1), strict=True)
    ]


def test_bfloat16_learner_keeps_float32_masters_that_move_at_lr_1e_6(model_dir):
    trainer = TrainerConfig(lr=1e-6)
    algorithm = AlgorithmConfig(kl_coef=0.001, entropy_coef=0.0)
    learner = Learner(model_dir, algorithm, trainer, max_new_tokens=8, seed=0, dtype="bfloat16")
    assert all(p.dtype == torch.float32 for p in learner.policy.parameters())
    assert learner.reference is not None
    assert all(p.dtype == torch.bfloat16 for p in learner.reference.parameters())
    before = {n: p.detach().clone() for n, p in learner.policy.named_parameters()}
    learner.update(_experiences())
    moved = {n for n, p in learner.policy.named_parameters() if not torch.equal(p, before[n])}
    assert len(moved) > len(before) // 2

    # The same AdamW step on pure-bfloat16 weights rounds away: nothing of magnitude >= 2**-6 can move by
    # ~1e-6 (bfloat16 keeps 8 significant bits).
    pure = {n: t.to(torch.bfloat16).requires_grad_() for n, t in before.items()}
    optimizer = torch.optim.AdamW(pure.values(), lr=1e-6, weight_decay=0.0)
    for p in pure.values():
        p.grad = torch.ones_like(p)
    optimizer.step()
    big = [n for n, t in before.items() if t.abs().min() >= 2**-6]
    assert big, "the tiny model has no weight tensor without small entries"
    assert all(torch.equal(pure[n], before[n].to(torch.bfloat16)) for n in big)


def test_bfloat16_learner_logprobs_track_float32(model_dir):
    prompts, responses = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    full = Learner(model_dir, AlgorithmConfig(kl_coef=0.0), TrainerConfig(), 8, seed=0)
    half = Learner(model_dir, AlgorithmConfig(kl_coef=0.0), TrainerConfig(), 8, seed=0, dtype="bfloat16")
    assert half.policy_state()["model.embed_tokens.weight"].dtype == torch.bfloat16
    for a, b in zip(full.logprobs(prompts, responses), half.logprobs(prompts, responses), strict=True):
        assert a == pytest.approx(b, abs=0.05)


def test_training_forward_is_deterministic_even_with_dropout_in_the_config(tmp_path):
    from transformers import AutoConfig

    spec = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=300)
    model_dir = build_tiny_model(spec, CORPUS, tmp_path)
    config = AutoConfig.from_pretrained(model_dir)
    config.attention_dropout = 0.5
    config.save_pretrained(model_dir)
    learner = Learner(model_dir, AlgorithmConfig(kl_coef=0.0), TrainerConfig(), 8, seed=0)
    assert learner.policy.training
    batch = pad_batch(PAIRS, torch.device("cpu"))
    first = response_logprobs(learner.policy, batch)[0]
    second = response_logprobs(learner.policy, batch)[0]
    torch.testing.assert_close(first, second, rtol=0, atol=0)
