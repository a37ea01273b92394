"""LoRA (`model.lora`): the learner trains adapters only, its reference is the base with adapters off, a sync
moves adapter tensors into HF and vLLM workers, and checkpoints are adapter directories that resume exactly
and merge into plain models (the priming SFT's adapters: tests/priming/test_sft.py; a killed LoRA run of
`cogrl train`: tests/rl/test_train_e2e.py, mid-epoch-lora)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_learner import (
    MAX_NEW_TOKENS,
    _free_port,
    assert_same_parameters,
    make_batch,
    make_learner,
    sequence_logprob,
)

from cogrl.config import AlgorithmConfig, LoraConfig, ModelConfig, RolloutConfig, TrainerConfig
from cogrl.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, FILE_PREFIX
from cogrl.models import resolve_model
from cogrl.rl.learner import Learner
from cogrl.rl.learner_group import shard_by_group

LORA = LoraConfig(rank=4, alpha=8.0)


def lora_learner(model_dir: Path, lora: LoraConfig = LORA, **algorithm) -> Learner:
    defaults = {"kl_coef": 0.0, "entropy_coef": 0.0}
    trainer = TrainerConfig(lr=1e-2, critic_lr=1e-3)
    return Learner(
        model_dir, AlgorithmConfig(**(defaults | algorithm)), trainer, MAX_NEW_TOKENS, seed=0, lora=lora
    )


def test_lora_trains_the_adapters_only(model_dir):
    learner, full = lora_learner(model_dir), make_learner(model_dir)
    batch = make_batch()
    # B = 0 at the start: the adapted policy is the base model, exactly.
    before = [sequence_logprob(learner, e) for e in batch]
    assert before == [sequence_logprob(full, e) for e in batch]
    trained = {name for name, p in learner.policy.named_parameters() if p.requires_grad}
    assert trained and all(".lora_A." in name or ".lora_B." in name for name in trained)
    assert sum(len(g["params"]) for g in learner.optimizer.param_groups) == len(trained)
    frozen = {n: p.detach().clone() for n, p in learner.policy.named_parameters() if not p.requires_grad}

    learner.update(batch)
    after = [sequence_logprob(learner, e) for e in batch]
    for i in range(len(batch)):  # the first response of each group is the rewarded one
        assert after[i] > before[i] if i % 2 == 0 else after[i] < before[i], i
    for name, param in learner.policy.named_parameters():
        if not param.requires_grad:
            assert torch.equal(param, frozen[name]), name

    state = learner.policy_state()
    assert set(state) == {
        FILE_PREFIX + n.replace(".default.", ".") for n in trained
    }  # PEFT's file names: what vLLM and PEFT load
    assert all(t.dtype == torch.float32 for t in state.values())
    lora_bytes = sum(t.numel() * t.element_size() for t in state.values())
    full_bytes = sum(t.numel() * t.element_size() for t in full.policy_state().values())
    assert lora_bytes < full_bytes / 5


def test_lora_reference_is_the_base_with_adapters_off(model_dir):
    learner = lora_learner(model_dir, kl_coef=0.1)
    assert learner.reference is None and learner.has_reference  # no second copy of the weights
    batch = make_batch()
    base = make_learner(model_dir).prepare(batch).old_logprobs  # the base model's log-probs
    assert learner.update(batch)["kl"] == 0.0  # policy == reference before the first step
    prepared = learner.prepare(batch)
    torch.testing.assert_close(prepared.ref_logprobs, base, rtol=0, atol=1e-6)
    assert not torch.allclose(prepared.old_logprobs, base, atol=1e-4)  # while the policy has moved
    # The adapters are back on after the reference pass.
    torch.testing.assert_close(learner.prepare(batch).old_logprobs, prepared.old_logprobs, rtol=0, atol=1e-6)
    assert learner.update(batch)["kl"] != 0.0


def test_lora_checkpoint_resumes_exactly_and_merges_into_a_plain_model(model_dir, tmp_path):
    config = {"advantage": "gae", "kl_coef": 0.01, "entropy_coef": 0.001}
    batch1, batch2 = make_batch(seed=1), make_batch(seed=2)
    first = lora_learner(model_dir, **config)
    first.update(batch1)
    first.save(tmp_path / "ckpt")
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {ADAPTER_CONFIG, ADAPTER_WEIGHTS, "tokenizer.json", "learner_state.pt"} <= files
    assert "config.json" not in files and "model.safetensors" not in files  # the adapter only
    saved = json.loads((tmp_path / "ckpt" / ADAPTER_CONFIG).read_text())
    assert saved["r"] == 4 and saved["base_model_name_or_path"] == str(model_dir.resolve())

    resumed = lora_learner(model_dir, **config)
    resumed.load(tmp_path / "ckpt")
    first.update(batch2)
    resumed.update(batch2)
    assert_same_parameters(first.policy_state(), resumed.policy_state())
    assert_same_parameters(first.critic.state_dict(), resumed.critic.state_dict())

    # Any stage can start from the checkpoint: it resolves to the base with the adapter merged in.
    first.save(tmp_path / "ckpt2")
    merged = resolve_model(ModelConfig(path=str(tmp_path / "ckpt2")), cache_dir=tmp_path / "cache")
    assert (merged / "config.json").is_file()
    assert resolve_model(ModelConfig(path=str(tmp_path / "ckpt2")), cache_dir=tmp_path / "cache") == merged
    plain = make_learner(merged)
    for e in batch2:
        assert sequence_logprob(plain, e) == pytest.approx(sequence_logprob(first, e), abs=1e-4)


def test_lora_load_rejects_an_adapter_that_does_not_fit(model_dir, tmp_path):
    lora_learner(model_dir).save(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="shape"):
        lora_learner(model_dir, LoraConfig(rank=8, alpha=8.0)).load(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="missing"):
        lora_learner(model_dir, LoraConfig(rank=4, target_modules=["q_proj", "up_proj"])).load(
            tmp_path / "ckpt"
        )


def test_lora_config_errors_name_the_field(model_dir):
    with pytest.raises(ValueError, match="lm_head cannot take an adapter"):
        LoraConfig(target_modules=["q_proj", "lm_head"])
    with pytest.raises(ValueError, match=r"model.lora.target_modules \['qkv'\]"):
        lora_learner(model_dir, LoraConfig(target_modules=["qkv"]))


def _fsdp_main(rank: int, url: str, model_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    trainer = TrainerConfig(lr=1e-2, strategy="fsdp")
    config = AlgorithmConfig(kl_coef=0.01, kl_in_reward=False, kl_estimator="k3", entropy_coef=0.0)
    learner = Learner(model_dir, config, trainer, MAX_NEW_TOKENS, 0, rank, 2, url, lora=LORA)
    learner.update(shard_by_group(make_batch(), 2)[rank])
    stats = learner.update(shard_by_group(make_batch(seed=1), 2)[rank])
    policy = learner.policy_state()  # every rank takes part in the gather
    if rank == 0:
        torch.save({"policy": policy, "stats": stats}, out)
    learner.close()


@pytest.mark.slow
def test_lora_under_fsdp_on_two_ranks_equals_one_rank(model_dir, tmp_path):
    """FSDP2 over gloo shards a frozen base with float32 adapters (only trainable parameters must share a
    dtype); two ranks compute the one-rank update."""
    single = Learner(
        model_dir,
        AlgorithmConfig(kl_coef=0.01, kl_in_reward=False, kl_estimator="k3", entropy_coef=0.0),
        TrainerConfig(lr=1e-2),
        MAX_NEW_TOKENS,
        seed=0,
        lora=LORA,
    )
    single.update(make_batch())
    single_stats = single.update(make_batch(seed=1))
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_fsdp_main, args=(f"tcp://127.0.0.1:{_free_port()}", str(model_dir), out), nprocs=2)
    result = torch.load(out, weights_only=True)
    assert_same_parameters(single.policy_state(), result["policy"], atol=1e-5)
    for key in ("pg_loss", "kl", "grad_norm"):
        assert result["stats"][key] == pytest.approx(single_stats[key], rel=1e-5, abs=1e-7), key


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_lora_sync_puts_the_learners_adapter_into_every_worker(ray_session, tiny_model_dir, backend):
    """After a push of adapter tensors only, a worker's probe and sampled tokens have the learner's log-probs;
    a worker restarted after a crash comes back on the same adapter."""
    from processes import kill_worker

    from cogrl.rl.rollout import RolloutPool
    from cogrl.rl.sync import SyncError, probe_tokens, push_weights

    learner = lora_learner(tiny_model_dir)
    learner.update(make_batch())
    pool = RolloutPool(
        1, backend, tiny_model_dir, RolloutConfig(max_new_tokens=12, samples_per_prompt=2), seed=0, lora=LORA
    )
    try:
        prompt, response = probe_tokens(pool)
        reference = learner.logprobs([prompt], [response])[0]
        assert (
            max(abs(a - b) for a, b in zip(pool.score([prompt], [response])[0][0], reference, strict=True))
            > 1e-3
        )
        state = learner.policy_state()
        report = push_weights(pool, state, reference)
        assert report.bytes == sum(t.numel() * t.element_size() for t in state.values())
        assert max(abs(a - b) for a, b in zip(report.probe_logprobs, reference, strict=True)) < 1e-4

        def assert_generates_with_the_adapter() -> None:
            for g in pool.generate(["Using the numbers [3, 7, 12]", "<think>"], seed=3):
                got = learner.logprobs([list(g.prompt_ids)], [list(g.response_ids)])[0]
                assert max(abs(a - b) for a, b in zip(g.logprobs, got, strict=True)) < 1e-4

        assert_generates_with_the_adapter()
        learner.update(make_batch(seed=1))  # a second sync replaces the adapter in place
        reference = learner.logprobs([prompt], [response])[0]
        push_weights(pool, learner.policy_state(), reference)
        assert_generates_with_the_adapter()
        kill_worker(ray_session, pool, 0)
        assert_generates_with_the_adapter()
        assert pool.restarts == 1
        with pytest.raises(SyncError, match="differ from the learner"):  # a stale learner is caught
            push_weights(pool, state, reference)
    finally:
        pool.shutdown()
