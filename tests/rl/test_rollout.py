"""Rollout workers: backends (shapes, seeds, finish reasons, raw log-probs) and the Ray pool (order, restarts)."""

from __future__ import annotations

import pytest
import torch
from processes import kill_worker

from cogrl.config import RolloutConfig
from cogrl.models import load_causal_lm
from cogrl.rl.backends import sample_seed
from cogrl.rl.rollout import RolloutPool, RolloutWorker, split_evenly

PROMPTS = ["Using the numbers [3, 7, 12]", "<think> 1 + 2", "Assistant: Let me solve", "24"]


def hf_forward_logprobs(model_dir, generations) -> list[list[float]]:
    """Log-probs of each generation's response under a fresh HF model at temperature 1 (the reference)."""
    model = load_causal_lm(model_dir)
    result = []
    with torch.no_grad():
        for g in generations:
            ids = torch.tensor([g.prompt_ids + g.response_ids])
            logp = torch.log_softmax(model(ids).logits[0, :-1], dim=-1)
            positions = range(len(g.prompt_ids) - 1, ids.shape[1] - 1)
            result.append([float(logp[p, ids[0, p + 1]]) for p in positions])
    return result


def assert_generations_valid(generations, n_prompts, n, max_new_tokens):
    assert [g.prompt_index for g in generations] == [i for i in range(n_prompts) for _ in range(n)]
    for g in generations:
        assert 1 <= len(g.response_ids) <= max_new_tokens
        assert len(g.logprobs) == len(g.response_ids)
        assert all(lp <= 0.0 for lp in g.logprobs)
        assert g.finish_reason in ("stop", "length")
        assert (g.finish_reason == "length") == (len(g.response_ids) == max_new_tokens)


def assert_logprobs_match(generations, reference, tol=1e-3):
    for g, ref in zip(generations, reference, strict=True):
        assert max(abs(a - b) for a, b in zip(g.logprobs, ref, strict=True)) < tol


def test_split_evenly_is_contiguous_and_balanced():
    assert split_evenly(5, 2) == [(0, 3), (3, 5)]
    assert split_evenly(1, 3) == [(0, 1), (1, 1), (1, 1)]
    for total in range(12):
        bounds = split_evenly(total, 4)
        assert bounds[0][0] == 0 and bounds[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert max(s - a for a, s in bounds) - min(s - a for a, s in bounds) <= 1


def test_sample_seed_depends_on_every_part():
    seeds = {sample_seed(s, i, j) for s in range(3) for i in range(3) for j in range(3)}
    assert len(seeds) == 27 and all(0 <= s < 2**31 for s in seeds)


@pytest.fixture(scope="module")
def hf_worker(tiny_model_dir):
    return RolloutWorker("hf", tiny_model_dir, RolloutConfig(max_new_tokens=16), seed=0)


@pytest.mark.slow
def test_hf_backend_shapes_seeds_and_logprobs(hf_worker, tiny_model_dir):
    generations = hf_worker.generate(PROMPTS, 2, 1.0, 1.0, 16, seed=7)
    assert_generations_valid(generations, len(PROMPTS), 2, 16)
    assert generations == hf_worker.generate(PROMPTS, 2, 1.0, 1.0, 16, seed=7)
    assert generations != hf_worker.generate(PROMPTS, 2, 1.0, 1.0, 16, seed=8)
    # A sample depends on its position in the whole batch, not on the share a worker got.
    tail = hf_worker.generate(PROMPTS[2:], 2, 1.0, 1.0, 16, seed=7, first_index=2)
    assert [g.response_ids for g in tail] == [g.response_ids for g in generations[4:]]
    assert_logprobs_match(generations, hf_forward_logprobs(tiny_model_dir, generations))


@pytest.mark.slow
def test_hf_backend_reports_raw_policy_logprobs_at_any_temperature(hf_worker, tiny_model_dir):
    generations = hf_worker.generate(PROMPTS[:2], 2, 0.6, 0.8, 8, seed=1)
    assert_logprobs_match(generations, hf_forward_logprobs(tiny_model_dir, generations))
    greedy = hf_worker.generate(PROMPTS[:1], 2, 0.0, 1.0, 8, seed=1)
    assert greedy[0].response_ids == greedy[1].response_ids


@pytest.mark.slow
def test_hf_backend_stops_at_stop_strings(tiny_model_dir):
    free = RolloutWorker("hf", tiny_model_dir, RolloutConfig(), seed=0)
    texts = [g.text for g in free.generate(PROMPTS, 4, 1.0, 1.0, 24, seed=3)]
    # Pick a two-character string some sample produces after its first token, and stop on it.
    stop = next(t[2:4] for t in texts if len(t) >= 4 and t[2:4].strip() == t[2:4])
    worker = RolloutWorker("hf", tiny_model_dir, RolloutConfig(stop=[stop]), seed=0)
    for g in worker.generate(PROMPTS, 4, 1.0, 1.0, 24, seed=3):
        if stop in g.text:
            assert g.finish_reason == "stop"
            assert stop not in worker.backend.tokenizer.decode(list(g.response_ids[:-1]))
    assert any(stop in g.text for g in worker.generate(PROMPTS, 4, 1.0, 1.0, 24, seed=3))


@pytest.mark.slow
def test_long_prompt_is_rejected(hf_worker):
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        hf_worker.generate(["1 " * 300], 1, 1.0, 1.0, 4, seed=0)


@pytest.mark.slow
def test_vllm_backend_shapes_seeds_and_logprobs(vllm_pool, tiny_model_dir):
    generations = vllm_pool.generate(PROMPTS, seed=11)
    assert_generations_valid(generations, len(PROMPTS), 3, 24)
    assert generations == vllm_pool.generate(PROMPTS, seed=11)
    assert generations != vllm_pool.generate(PROMPTS, seed=12)
    reference = hf_forward_logprobs(tiny_model_dir, generations)
    assert_logprobs_match(generations, reference)
    # The engine's own scoring of given continuations agrees too (the weight-sync probe relies on it).
    scores = vllm_pool.score(
        [list(g.prompt_ids) for g in generations[:3]], [list(g.response_ids) for g in generations[:3]]
    )
    for got, ref in zip(scores[0], reference[:3], strict=True):
        assert max(abs(a - b) for a, b in zip(got, ref, strict=True)) < 1e-3


@pytest.mark.slow
def test_vllm_batch_larger_than_one_prefill_chunk(vllm_pool):
    """A step's batch is often more tokens than vLLM prefills at once; with seeded requests on CPU this used
    to fail ("CPU Generator does not use offset") when a prompt was prefilled in two chunks."""
    prompts = [
        f"Using the numbers [{i}, {i + 1}, {i + 2}], create an equation that equals {i}. " * 4
        for i in range(60)
    ]
    generations = vllm_pool.generate(prompts, seed=5, n=2)
    assert_generations_valid(generations, len(prompts), 2, 24)
    assert sum(len(g.prompt_ids) for g in generations) > 8192


@pytest.mark.slow
def test_vllm_and_hf_backends_sample_the_same_quantity(vllm_pool, tiny_model_dir):
    """Below temperature 1 both still report the raw policy log-prob (vLLM logprobs_mode=raw_logprobs)."""
    ray = pytest.importorskip("ray")
    vllm_worker = vllm_pool.workers[0]
    generations = ray.get(vllm_worker.generate.remote(PROMPTS[:2], 2, 0.5, 0.9, 12, 4, 0))
    assert_logprobs_match(generations, hf_forward_logprobs(tiny_model_dir, generations))


@pytest.mark.slow
def test_pool_order_and_restart_after_a_worker_is_killed(ray_session, tiny_model_dir):
    rollout = RolloutConfig(max_new_tokens=8, samples_per_prompt=2, max_restarts=2)
    prompts = PROMPTS + ["7", "12 - 3"]
    pool = RolloutPool(2, "hf", tiny_model_dir, rollout, seed=0, cpus_per_worker=0.25)
    try:
        baseline = pool.generate(prompts, seed=5)
        assert [g.prompt_index for g in baseline] == [i for i in range(len(prompts)) for _ in range(2)]
        single = RolloutWorker("hf", tiny_model_dir, rollout, seed=0).generate(
            prompts, 2, 1.0, 1.0, 8, seed=5
        )
        assert [g.response_ids for g in baseline] == [g.response_ids for g in single]

        kill_worker(ray_session, pool, 1)  # between calls
        assert pool.generate(prompts, seed=5) == baseline
        assert pool.restarts == 1

        calls = pool.workers[0].generate.remote(prompts * 8, 2, 1.0, 1.0, 8, 0, 0)  # keeps worker 0 busy
        ray_session.kill(pool.workers[0], no_restart=True)  # mid-run
        with pytest.raises(ray_session.exceptions.RayActorError):
            ray_session.get(calls)
        assert pool.generate(prompts, seed=5) == baseline
        assert pool.restarts == 2

        kill_worker(ray_session, pool, 1)
        with pytest.raises(RuntimeError, match="max_restarts"):
            pool.generate(prompts, seed=5)
    finally:
        pool.shutdown()
