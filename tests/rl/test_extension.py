"""A new advantage estimator and a new policy loss are one decorated function each (in
src/cogrl/rl/algorithms.py, or anywhere imported before the recipe is read): the recipe check, the learner and
the plan read the registries, never copies of their names."""

from __future__ import annotations

import pytest
import torch
from test_learner import MAX_NEW_TOKENS, make_batch

from cogrl.config import AlgorithmConfig, TrainerConfig
from cogrl.rl import algorithms as algo
from cogrl.rl.learner import Learner


@pytest.fixture
def registries():
    """Registrations made by a test are removed afterwards (the registries are module-level dicts)."""
    saved = dict(algo.ADVANTAGE_ESTIMATORS), dict(algo.POLICY_LOSSES)
    yield
    for registry, before in zip((algo.ADVANTAGE_ESTIMATORS, algo.POLICY_LOSSES), saved, strict=True):
        registry.clear()
        registry.update(before)


def test_a_new_estimator_and_loss_are_one_function_each(registries, model_dir):
    @algo.register_advantage("group_mean_baseline", needs_groups=True)
    def group_mean_baseline(token_rewards, response_mask, *, group, values, gamma, lam):
        scores = token_rewards.sum(-1)
        sums = torch.zeros_like(scores).scatter_add_(0, group, scores)
        counts = torch.zeros_like(scores).scatter_add_(0, group, torch.ones_like(scores))
        advantages = (scores - sums[group] / counts[group])[:, None] * response_mask
        return advantages, advantages

    @algo.register_policy_loss("plain_reinforce")
    def plain_reinforce(logprobs, old_logprobs, advantages, response_mask, **aggregation):
        loss = algo.aggregate_loss(
            -advantages * logprobs,
            response_mask,
            aggregation.get("mode", "token_mean"),
            **{k: aggregation.get(k) for k in ("constant", "num_tokens", "num_seqs")},
        )
        zero = torch.zeros((), device=logprobs.device)
        return loss, zero, zero

    config = AlgorithmConfig(advantage="group_mean_baseline", policy_loss="plain_reinforce", kl_coef=0.0)
    learner = Learner(model_dir, config, TrainerConfig(lr=1e-3), MAX_NEW_TOKENS, seed=0)
    stats = learner.update(make_batch())
    assert stats["grad_norm"] > 0 and stats["num_sequences"] == 8
