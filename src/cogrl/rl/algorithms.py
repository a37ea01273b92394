"""RL objectives as small pure torch functions in registries: advantage estimators, policy losses and KL
estimators, plus the value loss, entropy, loss aggregation, rollout/learner mismatch correction and DAPO's
length penalty.

Every function works on padded ``[batch, response_len]`` tensors plus a ``response_mask`` (1 on real
response tokens, 0 on padding) and never looks at a model. The learner (``cogrl.rl.learner``) wires them
together, and the recipe's names (``algorithm.advantage``, ``policy_loss``, ``kl_estimator``) are checked
against these registries: a new estimator or loss is one decorated function here (the layout of veRL's
``core_algos.py``), with the properties the learner and the config checks read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import torch

LossAggregation = Literal["token_mean", "seq_mean", "token_sum_norm"]
RolloutMask = Literal["off", "token", "sequence", "geometric"]


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


class PolicyLoss(Protocol):
    def __call__(
        self,
        logprobs: torch.Tensor,
        old_logprobs: torch.Tensor,
        advantages: torch.Tensor,
        response_mask: torch.Tensor,
        *,
        clip_low: float,
        clip_high: float,
        weights: torch.Tensor | None = None,
        mode: LossAggregation = "token_mean",
        constant: float | None = None,
        num_tokens: float | torch.Tensor | None = None,
        num_seqs: float | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(loss, clip_frac, approx_kl)``. ``weights``: per-token factors on the policy-gradient
        term (truncated importance sampling of the rollout/learner mismatch), no grad."""
        ...


KLEstimatorFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Advantage:
    """A registered advantage estimator and what the learner must provide around it."""

    fn: AdvantageEstimator
    needs_critic: bool = False
    """It reads a learned value model's values (the learner builds and trains a critic; gamma/lam apply)."""
    needs_groups: bool = False
    """Its baseline comes from the other samples of the same prompt (rollout.samples_per_prompt >= 2)."""
    whitened: bool = False
    """The learner whitens its advantages over the whole batch, all ranks (``algorithm.whiten_advantages``)."""


@dataclass(frozen=True)
class PolicyLossSpec:
    """A registered policy loss and the one aggregation its objective is defined with, if any."""

    fn: PolicyLoss
    aggregation: LossAggregation | None = None


ADVANTAGE_ESTIMATORS: dict[str, Advantage] = {}
"""Advantage estimators by name (the values of ``AlgorithmConfig.advantage``)."""
POLICY_LOSSES: dict[str, PolicyLossSpec] = {}
"""Policy losses by name (the values of ``AlgorithmConfig.policy_loss``)."""
KL_ESTIMATORS: dict[str, KLEstimatorFn] = {}
"""Per-token KL estimators by name (the values of ``AlgorithmConfig.kl_estimator``)."""

_Entry = TypeVar("_Entry")


def _add(registry: dict[str, _Entry], kind: str, name: str, entry: _Entry) -> None:
    if name in registry:
        raise ValueError(f"{kind} {name!r} is already registered")
    registry[name] = entry


def register_advantage(
    name: str, *, needs_critic: bool = False, needs_groups: bool = False, whitened: bool = False
) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    def register(fn: AdvantageEstimator) -> AdvantageEstimator:
        _add(
            ADVANTAGE_ESTIMATORS,
            "advantage estimator",
            name,
            Advantage(fn, needs_critic, needs_groups, whitened),
        )
        return fn

    return register


def register_policy_loss(
    name: str, *, aggregation: LossAggregation | None = None
) -> Callable[[PolicyLoss], PolicyLoss]:
    def register(fn: PolicyLoss) -> PolicyLoss:
        _add(POLICY_LOSSES, "policy loss", name, PolicyLossSpec(fn, aggregation))
        return fn

    return register


def register_kl(name: str) -> Callable[[KLEstimatorFn], KLEstimatorFn]:
    def register(fn: KLEstimatorFn) -> KLEstimatorFn:
        _add(KL_ESTIMATORS, "KL estimator", name, fn)
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


@register_advantage("grpo", needs_groups=True)
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


@register_advantage("dr_grpo", needs_groups=True)
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


@register_advantage("rloo", needs_groups=True)
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


@register_advantage("gae", needs_critic=True, whitened=True)
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
    chain, and the value after the last valid token is 0 (the episode ends there). Whitening (``whitened``)
    is the learner's job (``masked_whiten``) because its statistics span all data-parallel ranks.
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


@register_advantage("reinforce_plus_plus", whitened=True)
def reinforce_plus_plus_advantages(
    token_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    group: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE++ (Hu, 2025): each token's advantage is its reward-to-go (the score plus the in-reward
    KL of the tokens from it on, undiscounted), then normalised over the whole batch (``whitened``) instead
    of per prompt, so it needs no groups and no critic."""
    returns, _ = gae_advantages(
        token_rewards, response_mask, values=torch.zeros_like(token_rewards), gamma=1.0, lam=1.0
    )
    return returns, returns


@register_advantage("reinforce_plus_plus_baseline", needs_groups=True, whitened=True)
def reinforce_plus_plus_baseline_advantages(
    token_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    group: torch.Tensor,
    values: torch.Tensor | None = None,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE++ with a group baseline (Hu, 2025; veRL's ``reinforce_plus_plus_baseline``): the sequence's
    reward minus its group's mean on every token, then normalised over the whole batch (``whitened``), so
    the prompt's difficulty is removed without GRPO's per-group std."""
    return dr_grpo_advantages(token_rewards, response_mask, group=group)


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


@register_kl("k1")
def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """``log p - log q``: unbiased, noisy, can be negative (the paper's in-reward KL)."""
    return logprobs - ref_logprobs


@register_kl("k2")
def kl_k2(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """``(log p - log q)^2 / 2``: biased but low-variance and never negative; as a loss its gradient is the
    true KL's gradient in expectation (Tang & Munos, 2025, "On a few pitfalls in KL divergence gradient
    estimation for RL")."""
    return 0.5 * (logprobs - ref_logprobs) ** 2


@register_kl("k3")
def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """``exp(q - p) - (q - p) - 1``: unbiased and never negative (GRPO's KL loss)."""
    log_ratio = ref_logprobs - logprobs
    return torch.exp(log_ratio) - log_ratio - 1


@register_kl("low_var_kl")
def kl_low_var(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k3 made safe as veRL's ``low_var_kl`` does: ``q - p`` clamped to [-20, 20] before the exponential and
    the result clamped to [-10, 10], so one token the policy has moved far from the reference cannot
    dominate (or overflow) the batch."""
    log_ratio = (ref_logprobs - logprobs).clamp(-20.0, 20.0)
    return (torch.exp(log_ratio) - log_ratio - 1).clamp(-10.0, 10.0)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(policy || reference) estimate from sampled tokens with a registered estimator
    (Schulman, 2020, "Approximating KL divergence")."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r} (registered: {', '.join(KL_ESTIMATORS)})")
    return KL_ESTIMATORS[estimator](logprobs, ref_logprobs)


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


def _policy_loss_result(
    per_token: torch.Tensor,
    clipped: torch.Tensor,
    log_ratio: torch.Tensor,
    response_mask: torch.Tensor,
    weights: torch.Tensor | None,
    **agg: object,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What every policy loss returns: the (weighted) per-token loss aggregated, the fraction of valid
    tokens where clipping acted, and the mean ``old_logp - logp`` (k1 KL of old vs new policy, a drift
    monitor); the last two carry no grad."""
    if weights is not None:
        per_token = per_token * weights
    loss = aggregate_loss(per_token, response_mask, **agg)  # type: ignore[arg-type]
    with torch.no_grad():
        mask = response_mask.to(log_ratio.dtype)
        count = mask.sum().clamp(min=1)
        clip_frac = (clipped.to(mask.dtype) * mask).sum() / count
        approx_kl = (-log_ratio * mask).sum() / count
    return loss, clip_frac, approx_kl


@register_policy_loss("ppo")
def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    weights: torch.Tensor | None = None,
    mode: LossAggregation = "token_mean",
    constant: float | None = None,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (Schulman et al., 2017) with an asymmetric range ``[1 - clip_low,
    1 + clip_high]`` ("clip-higher", DAPO: a larger upper bound keeps low-probability tokens rising).

    Per token: ``max(-A r, -A clip(r))`` with ``r = exp(logp - old_logp)``; ``clip_frac`` counts the tokens
    where the clipped term won.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    return _policy_loss_result(
        torch.maximum(unclipped, clipped),
        clipped > unclipped,
        log_ratio,
        response_mask,
        weights,
        mode=mode,
        constant=constant,
        num_tokens=num_tokens,
        num_seqs=num_seqs,
    )


@register_policy_loss("gspo", aggregation="seq_mean")
def gspo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    weights: torch.Tensor | None = None,
    mode: LossAggregation = "seq_mean",
    constant: float | None = None,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GSPO (Zheng et al., 2025, "Group Sequence Policy Optimization"): PPO's clipped objective on the
    sequence's length-normalised ratio ``s = exp(mean_t (logp_t - old_logp_t))``, so a whole response is
    clipped or not, and one noisy token's ratio cannot dominate its gradient.

    Written in the paper's token form, ``s_t = sg(s) * exp(logp_t - sg(logp_t))``: each token's value is
    ``s`` and its gradient ``s * grad logp_t``; averaged per sequence (``seq_mean``, the registered
    aggregation) this is the gradient of the sequence objective, and token-level advantages still work.
    The paper's clip ranges are far tighter than PPO's (3e-4 low, 4e-4 high).
    """
    log_ratio = logprobs - old_logprobs
    mask = response_mask.to(logprobs.dtype)
    seq_log_ratio = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    ratio = torch.exp(seq_log_ratio.detach()[:, None] + logprobs - logprobs.detach())
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    return _policy_loss_result(
        torch.maximum(unclipped, clipped),
        clipped > unclipped,
        log_ratio,
        response_mask,
        weights,
        mode=mode,
        constant=constant,
        num_tokens=num_tokens,
        num_seqs=num_seqs,
    )


@register_policy_loss("cispo")
def cispo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    weights: torch.Tensor | None = None,
    mode: LossAggregation = "token_mean",
    constant: float | None = None,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CISPO (MiniMax, 2025, "MiniMax-M1"): REINFORCE with a clipped, stop-gradient importance weight,
    ``-sg(clip(r, 1 - clip_low, 1 + clip_high)) * A * logp``. Unlike PPO, a token whose ratio left the
    range keeps its gradient (only its weight is capped), so rare tokens that matter to reflection keep
    being learned. MiniMax-M1 effectively dropped the lower bound (a large ``clip_low``, e.g. 1.0).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio.detach())
    weight = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    return _policy_loss_result(
        -weight * advantages * logprobs,
        weight != ratio,
        log_ratio,
        response_mask,
        weights,
        mode=mode,
        constant=constant,
        num_tokens=num_tokens,
        num_seqs=num_seqs,
    )


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


# ---- rollout/learner mismatch -------------------------------------------------------------------------
def rollout_log_ratio(
    old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """``log(pi_learner_old / pi_rollout)`` per token, 0 on padding. The rollout engine samples with its own
    kernels and precision, so its log-probs are not the learner's even for the same weights; this ratio
    is what corrects the gradient for it."""
    return (old_logprobs - rollout_logprobs) * response_mask.to(old_logprobs.dtype)


def truncated_is_weights(log_ratio: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance sampling (Yao et al., 2025, "Your efficient RL framework secretly brings you
    off-policy RL training"): per-token weight ``min(pi_learner_old / pi_rollout, cap)`` on the policy
    gradient, so tokens the engine over-sampled count for less and none counts for more than ``cap``."""
    return torch.exp(log_ratio).clamp(max=cap)


def masked_is_keep(
    log_ratio: torch.Tensor, response_mask: torch.Tensor, *, low: float, high: float, level: RolloutMask
) -> torch.Tensor:
    """Masked importance sampling (Liu et al., 2025, "When speed kills stability: demystifying RL collapse
    from the training-inference mismatch"): 1 on the valid tokens kept, 0 on those dropped from the loss
    because their ratio left ``[low, high]``.

    ``token``: each token by its own ratio. ``sequence``: a whole response by the product of its ratios
    (exact, but strict for long responses). ``geometric``: by the geometric mean of its ratios
    (length-normalised). Compared in log space, so no product overflows. ``off``: every valid token kept.
    """
    mask = response_mask.to(log_ratio.dtype)
    bounds = math.log(low), math.log(high)
    if level == "off":
        return mask
    if level == "token":
        inside = (log_ratio >= bounds[0]) & (log_ratio <= bounds[1])
        return inside.to(mask.dtype) * mask
    seq = (log_ratio * mask).sum(-1)
    if level == "geometric":
        seq = seq / mask.sum(-1).clamp(min=1)
    elif level != "sequence":
        raise ValueError(f"unknown rollout mask level {level!r}")
    inside = (seq >= bounds[0]) & (seq <= bounds[1])
    return inside.to(mask.dtype)[:, None] * mask


# ---- DAPO's length shaping ------------------------------------------------------------------------------
def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment (Yu et al., 2025): 0 up to ``max_len - buffer`` tokens, then falling
    linearly to ``-factor`` at ``max_len``, added to the reward; a response is told it is getting long
    before it is cut off, instead of getting the truncated answer's noisy 0."""
    return -factor * (lengths - (max_len - buffer)).clamp(0, buffer) / buffer
