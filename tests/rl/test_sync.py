"""Weight sync: after a push, a worker's live log-probs equal an HF forward pass with the new weights."""

from __future__ import annotations

import pytest
import torch
from processes import kill_worker

from cogrl.config import AlgorithmConfig, RolloutConfig, TrainerConfig
from cogrl.models import load_causal_lm
from cogrl.rl.batch import Experience
from cogrl.rl.learner import Learner
from cogrl.rl.rollout import RolloutPool
from cogrl.rl.sync import SYNC_TOLERANCE, SyncError, SyncTimeoutError, probe_tokens, push_weights

pytestmark = pytest.mark.slow


def perturbed_state(model_dir, scale: float, seed: int) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A 'learner update': every weight moved by seeded noise. Returns the HF model holding it, and its state."""
    model = load_causal_lm(model_dir)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))
    return model, {name: tensor.clone() for name, tensor in model.state_dict().items()}


def hf_logprobs(model, prompt: list[int], response: list[int]) -> list[float]:
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1], dim=-1)
    return [float(logp[len(prompt) - 1 + k, token]) for k, token in enumerate(response)]


def check_sync(pool: RolloutPool, model_dir) -> None:
    prompt, response = probe_tokens(pool)
    before = pool.score([prompt], [response])[0][0]
    model, state = perturbed_state(model_dir, scale=0.05, seed=1)
    expected = hf_logprobs(model, prompt, response)
    assert max(abs(a - b) for a, b in zip(before, expected, strict=True)) > 1e-2  # the update is visible

    report = push_weights(pool, state, reference_logprobs=expected)
    assert max(abs(a - b) for a, b in zip(report.probe_logprobs, expected, strict=True)) < 1e-3
    # Generation uses the new weights: sampled tokens' log-probs match the new HF model.
    for g in pool.generate(["Using the numbers [3, 7, 12]", "<think>"], seed=3):
        got = hf_logprobs(model, list(g.prompt_ids), list(g.response_ids))
        assert max(abs(a - b) for a, b in zip(g.logprobs, got, strict=True)) < 1e-3

    # A learner that disagrees with what the workers hold is caught.
    _, other = perturbed_state(model_dir, scale=0.05, seed=2)
    with pytest.raises(SyncError, match="differ from the learner"):
        push_weights(pool, other, reference_logprobs=expected)


def test_vllm_sync_matches_hf_forward(vllm_pool, tiny_model_dir):
    check_sync(vllm_pool, tiny_model_dir)


def test_hf_sync_matches_hf_forward_and_survives_a_restart(ray_session, tiny_model_dir):
    pool = RolloutPool(
        2,
        "hf",
        tiny_model_dir,
        RolloutConfig(max_new_tokens=8, samples_per_prompt=2),
        seed=0,
        cpus_per_worker=0.25,
    )
    try:
        check_sync(pool, tiny_model_dir)
        synced = pool.score(*map(list, zip(probe_tokens(pool), strict=True)))
        kill_worker(ray_session, pool, 1)
        # The restarted worker comes back on the last pushed weights, not the model directory's.
        assert pool.score(*map(list, zip(probe_tokens(pool), strict=True))) == synced
        assert pool.restarts == 1
    finally:
        pool.shutdown()


def test_sync_timeout_raises(ray_session, tiny_model_dir):
    pool = RolloutPool(
        1, "hf", tiny_model_dir, RolloutConfig(max_new_tokens=64), seed=0, cpus_per_worker=0.25
    )
    try:
        _, state = perturbed_state(tiny_model_dir, scale=0.01, seed=4)
        busy = pool.workers[0].generate.remote(["1 + 2"] * 64, 4, 1.0, 1.0, 64, 0, 0)  # the actor is busy
        with pytest.raises(SyncTimeoutError, match="did not finish within 0.2 s"):
            push_weights(pool, state, reference_logprobs=[0.0], timeout_s=0.2)
        del busy  # shutdown() below kills the busy worker
    finally:
        pool.shutdown()


def test_bfloat16_learner_syncs_into_bfloat16_workers(ray_session, tiny_model_dir):
    """The GPU recipes' precision on CPU: a bfloat16 learner (float32 masters, autocast) after an update sends
    bfloat16 tensors, and the bfloat16 workers' probe agrees within the dtype's default tolerance."""
    learner = Learner(
        tiny_model_dir, AlgorithmConfig(kl_coef=0.0), TrainerConfig(lr=1e-3), 8, seed=0, dtype="bfloat16"
    )
    batch = [Experience((5, 6, 7), (9, 10, 11), (), float(k % 2), k // 2) for k in range(4)]
    learner.update(batch)
    pool = RolloutPool(
        1,
        "hf",
        tiny_model_dir,
        RolloutConfig(max_new_tokens=8),
        seed=0,
        dtype="bfloat16",
        cpus_per_worker=0.25,
    )
    try:
        prompt, response = probe_tokens(pool)
        state = learner.policy_state()
        assert {t.dtype for t in state.values()} == {torch.bfloat16}
        reference = learner.logprobs([prompt], [response])[0]
        report = push_weights(pool, state, reference_logprobs=reference)
        gap = sum(abs(a - b) for a, b in zip(report.probe_logprobs, reference, strict=True)) / len(reference)
        assert 0 < gap <= SYNC_TOLERANCE["bfloat16"]
    finally:
        pool.shutdown()


def test_broadcast_from_learner_rank_0_to_two_workers(ray_session, tiny_model_dir, tmp_path):
    """The default path: learner rank 0 -> both workers over a gloo group (no driver hop); the workers hold
    the learner's weights; a worker killed between syncs is restarted before the next broadcast."""
    from cogrl.rl.learner_group import LearnerGroup

    learners = LearnerGroup(
        1,
        model_dir=tiny_model_dir,
        algorithm=AlgorithmConfig(kl_coef=0.0),
        trainer=TrainerConfig(lr=1e-3),
        max_new_tokens=8,
        seed=0,
        num_cpus_per_learner=0.25,
    )
    pool = RolloutPool(
        2,
        "hf",
        tiny_model_dir,
        RolloutConfig(max_new_tokens=8, sync_bucket_mb=1),
        seed=0,
        cpus_per_worker=0.25,
    )
    try:
        batch = [Experience((5, 6, 7), (9, 10, 11), (), float(k % 2), k // 2) for k in range(4)]
        prompt, response = probe_tokens(pool)
        for _ in range(2):
            learners.update(batch)
            reference = learners.logprobs([prompt], [response])[0]
            report = push_weights(pool, learners, reference_logprobs=reference)
            assert report.path == "broadcast"
            assert all(
                probe == report.probe_logprobs for probe in (p[0] for p in pool.score([prompt], [response]))
            )
            assert max(abs(a - b) for a, b in zip(report.probe_logprobs, reference, strict=True)) < 1e-5

        kill_worker(ray_session, pool, 1)  # dies between syncs: restarted before the broadcast needs it
        learners.update(batch)
        reference = learners.logprobs([prompt], [response])[0]
        report = push_weights(pool, learners, reference_logprobs=reference)
        assert report.path == "broadcast" and pool.restarts == 1
        assert (
            max(abs(a - b) for a, b in zip(pool.score([prompt], [response])[1][0], reference, strict=True))
            < 1e-5
        )
    finally:
        pool.shutdown()
        learners.shutdown()


def test_broadcast_to_a_busy_worker_times_out_naming_it(ray_session, tiny_model_dir):
    from cogrl.rl.learner_group import LearnerGroup

    learners = LearnerGroup(
        1,
        model_dir=tiny_model_dir,
        algorithm=AlgorithmConfig(kl_coef=0.0),
        trainer=TrainerConfig(),
        max_new_tokens=8,
        seed=0,
        num_cpus_per_learner=0.25,
    )
    pool = RolloutPool(
        1, "hf", tiny_model_dir, RolloutConfig(max_new_tokens=64), seed=0, cpus_per_worker=0.25
    )
    try:
        busy = pool.workers[0].generate.remote(["1 + 2"] * 64, 4, 1.0, 1.0, 64, 0, 0)  # the actor is busy
        # the busy worker is late; on a loaded machine the learner may be late first: either way the error
        # names who did not answer
        with pytest.raises(SyncTimeoutError, match="worker 0|learner rank"):
            push_weights(pool, learners, reference_logprobs=[0.0], timeout_s=1.0)
        del busy
    finally:
        pool.shutdown()
        learners.shutdown()
