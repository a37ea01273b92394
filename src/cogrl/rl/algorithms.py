"""RL objectives as small pure torch functions: advantage estimators (in a registry), KL estimators, the
clipped policy and value losses, entropy, and one loss aggregation.

Every function works on padded ``[batch, response_len]`` tensors plus a ``response_mask`` (1 on real
response tokens, 0 on padding) and never looks at a model. The learner (``cogrl.rl.learner``) wires them
together; a new estimator is one decorated function (the layout of veRL's ``core_algos.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import torch

LossAggregation = Literal["token_mean", "seq_mean", "token_sum_norm"]
KLEstimator = Literal["k1", "k3"]


class AdvantageEstimator(Protocol):
    def __call__(
        self,
        token_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        *,
        group: torch.Tensor,
        values: torch.Tensor | None,
        gamma: float,
        lam: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(advantages, returns)``, both ``[batch, response_len]`` and zero on padding."""
        ...


ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {}
"""Advantage estimators by name (the values of ``AlgorithmConfig.advantage``)."""


def register_advantage(name: str) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    def register(fn: AdvantageEstimator) -> AdvantageEstimator:
        if name in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return register


def _group_stats(scores: torch.Tensor, group: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-sequence size, sum and unbiased std of the sequence's group (std 0 for a group of one)."""
    _, inverse = torch.unique(group, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if inverse.numel() else 0
    size = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, inverse, torch.ones_like(scores))
    total = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, inverse, scores)
    mean = total / size
    sq_dev = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, inverse, (scores - mean[inverse]) ** 2)
    std = torch.where(size > 1, sq_dev / (size - 1).clamp(min=1), torch.zeros_like(size)).sqrt()
    return size[inverse], total[inverse], std[inverse]


def _broadcast(
    seq_advantages: torch.Tensor, response_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    advantages = seq_advantages[:, None] * response_mask
    return advantages, advantages


@register_advantage("grpo")
def grpo_advantages(
    token_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    group: torch.Tensor,
    values: torch.Tensor | None = None,
    gamma: float = 1.0,
    lam: float = 1.0,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO (Shao et al., 2024, DeepSeekMath): ``(r - mean_group) / (std_group + eps)`` on every token.

    ``r`` is the sum of the sequence's token rewards (the score, minus any in-reward KL). The std is the
    unbiased sample std, as in veRL. A group of one has no baseline to compare with: its advantage is 0
    (so it contributes no policy gradient), rather than an arbitrary sign.
    """
    scores = (token_rewards * response_mask).sum(-1)
    size, total, std = _group_stats(scores, group)
    seq_adv = torch.where(size > 1, (scores - total / size) / (std + eps), torch.zeros_like(scores))
    return _broadcast(seq_adv, response_mask)


@register_advantage("dr_grpo")
def dr_grpo_advantages(
    token_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    group: torch.Tensor,
    values: torch.Tensor | None = None,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dr. GRPO (Liu et al., 2025): ``r - mean_group``, no std scaling (which over-weights easy/hard
    prompts). The other half of the fix, no length normalisation, is ``token_sum_norm`` aggregation.
    A group of one gets 0 (it is its own mean)."""
    scores = (token_rewards * response_mask).sum(-1)
    size, total, _ = _group_stats(scores, group)
    return _broadcast(scores - total / size, response_mask)


@register_advantage("rloo")
def rloo_advantages(
    token_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    group: torch.Tensor,
    values: torch.Tensor | None = None,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RLOO (Ahmadian et al., 2024): ``r_i - mean of the other members of the group`` (an unbiased
    baseline, since it does not depend on the sample itself). A group of one has no others: 0."""
    scores = (token_rewards * response_mask).sum(-1)
    size, total, _ = _group_stats(scores, group)
    others_mean = (total - scores) / (size - 1).clamp(min=1)
    seq_adv = torch.where(size > 1, scores - others_mean, torch.zeros_like(scores))
    return _broadcast(seq_adv, response_mask)


@register_advantage("gae")
def gae_advantages(
    token_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    group: torch.Tensor | None = None,
    values: torch.Tensor | None,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al., 2016): ``delta_t = r_t + gamma V_{t+1} - V_t``,
    ``A_t = delta_t + gamma lam A_{t+1}``, returns ``A_t + V_t`` (the critic's targets).

    The reverse scan steps over valid tokens only: a masked position neither contributes nor breaks the
    chain, and the value after the last valid token is 0 (the episode ends there). Whitening, when
    wanted, is the caller's job (``masked_whiten``) because its statistics span all data-parallel ranks.
    """
    if values is None:
        raise ValueError("gae needs values from a critic")
    mask = response_mask.to(token_rewards.dtype)
    next_value = token_rewards.new_zeros(token_rewards.shape[0])
    next_adv = token_rewards.new_zeros(token_rewards.shape[0])
    advantages = torch.zeros_like(token_rewards)
    for t in reversed(range(token_rewards.shape[1])):
        m = mask[:, t]
        delta = token_rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = adv * m
        next_value = m * values[:, t] + (1 - m) * next_value
        next_adv = m * adv + (1 - m) * next_adv
    returns = (advantages + values) * mask
    return advantages, returns


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / sqrt(var + 1e-8)`` on valid tokens, 0 on padding. ``mean``/``var`` are passed in so
    the learner can compute them over every data-parallel rank (``masked_moments`` + all-reduce)."""
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def masked_moments(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[count, sum, sum of squares]`` of the valid entries: summable across ranks, then ``moments_to_mean_var``."""
    m = mask.to(x.dtype)
    return torch.stack([m.sum(), (x * m).sum(), (x * x * m).sum()])


def moments_to_mean_var(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance (as veRL's ``masked_whiten``) from ``masked_moments`` totals."""
    count, total, total_sq = moments
    mean = total / count
    var = (total_sq - count * mean * mean) / (count - 1).clamp(min=1)
    return mean, var


def token_rewards(
    scores: torch.Tensor, response_mask: torch.Tensor, kl: torch.Tensor | None = None, kl_coef: float = 0.0
) -> torch.Tensor:
    """Per-token rewards: the sequence's score on its last valid token, minus ``kl_coef * kl`` on every
    valid token when the KL penalty lives in the reward (Ziegler et al., 2019; the paper's veRL PPO)."""
    mask = response_mask.to(scores.dtype)
    rewards = torch.zeros_like(mask)
    if mask.numel() == 0:
        return rewards
    last = (mask * torch.arange(mask.shape[1], dtype=scores.dtype)).argmax(-1)
    has_tokens = mask.sum(-1) > 0
    rewards[has_tokens, last[has_tokens]] = scores[has_tokens]
    if kl is not None and kl_coef:
        rewards = rewards - kl_coef * kl * mask
    return rewards


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator) -> torch.Tensor:
    """Per-token KL(policy || reference) estimate from sampled tokens (Schulman, 2020, "Approximating KL
    divergence"). ``k1 = log p - log q``: unbiased, noisy, can be negative (the paper's in-reward KL).
    ``k3 = exp(q - p) - (q - p) - 1``: unbiased and never negative (GRPO's KL loss)."""
    if estimator == "k1":
        return logprobs - ref_logprobs
    if estimator == "k3":
        log_ratio = ref_logprobs - logprobs
        return torch.exp(log_ratio) - log_ratio - 1
    raise ValueError(f"unknown KL estimator {estimator!r} (expected k1 or k3)")


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax over the last dimension, ``logsumexp(z) - sum softmax(z) z`` (stable)."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)


def aggregate_loss(
    per_token: torch.Tensor,
    response_mask: torch.Tensor,
    mode: LossAggregation,
    *,
    constant: float | None = None,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Turn a per-token loss into one number.

    - ``token_mean``: sum over all valid tokens / number of valid tokens (DAPO, Yu et al., 2025).
    - ``seq_mean``: mean over sequences of each sequence's token mean (the original GRPO).
    - ``token_sum_norm``: mean over sequences of (sum over the sequence's tokens / ``constant``)
      (Dr. GRPO, Liu et al., 2025: no per-sequence length normalisation, so no length bias).

    ``num_tokens``/``num_seqs`` override the denominators: a micro-batch passes the totals of its whole
    mini-batch (across data-parallel ranks), so summing the micro-batch results, and summing gradients over
    ranks, gives exactly the loss of the one big batch. Defaults: this batch's own counts.
    """
    mask = response_mask.to(per_token.dtype)
    if num_seqs is None:
        num_seqs = mask.shape[0]
    if mode == "token_mean":
        if num_tokens is None:
            num_tokens = mask.sum()
        return (per_token * mask).sum() / num_tokens
    if mode == "seq_mean":
        seq_means = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return seq_means.sum() / num_seqs
    if mode == "token_sum_norm":
        if constant is None:
            raise ValueError("token_sum_norm needs a constant (default: max_new_tokens)")
        return (per_token * mask).sum() / constant / num_seqs
    raise ValueError(f"unknown loss aggregation {mode!r}")


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    mode: LossAggregation = "token_mean",
    constant: float | None = None,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (Schulman et al., 2017) with an asymmetric range ``[1 - clip_low,
    1 + clip_high]`` ("clip-higher", DAPO: a larger upper bound keeps low-probability tokens rising).

    Per token: ``max(-A r, -A clip(r))`` with ``r = exp(logp - old_logp)``. Returns ``(loss, clip_frac,
    approx_kl)``: the aggregated loss, the fraction of valid tokens where the clipped term won, and the
    mean ``old_logp - logp`` (k1 KL of old vs new policy, a drift monitor); the last two carry no grad.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    loss = aggregate_loss(
        per_token, response_mask, mode, constant=constant, num_tokens=num_tokens, num_seqs=num_seqs
    )
    with torch.no_grad():
        mask = response_mask.to(logprobs.dtype)
        count = mask.sum().clamp(min=1)
        clip_frac = ((clipped > unclipped).to(mask.dtype) * mask).sum() / count
        approx_kl = (-log_ratio * mask).sum() / count
    return loss, clip_frac, approx_kl


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    clip: float,
    mode: LossAggregation = "token_mean",
    constant: float | None = None,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped value loss: ``0.5 * max((V - R)^2, (V_clip - R)^2)`` with ``V_clip = V_old +
    clamp(V - V_old, -clip, clip)`` (as in OpenAI baselines and veRL). Returns ``(loss, clip_frac)``."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped_sq = (values - returns) ** 2
    clipped_sq = (clipped_values - returns) ** 2
    per_token = 0.5 * torch.maximum(unclipped_sq, clipped_sq)
    loss = aggregate_loss(
        per_token, response_mask, mode, constant=constant, num_tokens=num_tokens, num_seqs=num_seqs
    )
    with torch.no_grad():
        mask = response_mask.to(values.dtype)
        clip_frac = ((clipped_sq > unclipped_sq).to(mask.dtype) * mask).sum() / mask.sum().clamp(min=1)
    return loss, clip_frac
