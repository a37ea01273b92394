"""Every RL objective against numbers worked out by hand (comments show the arithmetic)."""

from __future__ import annotations

import math

import pytest
import torch

from cogrl.config import AlgorithmConfig
from cogrl.rl.algorithms import (
    ADVANTAGE_ESTIMATORS,
    aggregate_loss,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    kl_penalty,
    masked_moments,
    masked_whiten,
    moments_to_mean_var,
    token_rewards,
)


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual, t(expected), rtol=1e-6, atol=1e-6)


def test_registry_covers_every_configurable_estimator():
    assert set(ADVANTAGE_ESTIMATORS) == set(AlgorithmConfig.model_fields["advantage"].annotation.__args__)


def outcome(name: str, scores: list[float], group: list[int]) -> torch.Tensor:
    mask = t([[1, 1, 0]] * len(scores))
    rewards = token_rewards(t(scores), mask)
    adv, _ = ADVANTAGE_ESTIMATORS[name](rewards, mask, group=torch.tensor(group), values=None, gamma=1, lam=1)
    # broadcast to every valid token, 0 on padding
    assert torch.equal(adv[:, 0], adv[:, 1]) and torch.all(adv[:, 2] == 0)
    return adv[:, 0]


def test_grpo_group_normalised():
    # group 0: [1, 0] -> mean 0.5, unbiased std sqrt(0.25 + 0.25) = 0.7071 -> +-0.7071
    # group 7: a single sample -> 0 (no baseline); group 3: [2, 2] -> std 0 -> 0 / eps = 0
    adv = outcome("grpo", [1.0, 0.0, 0.3, 2.0, 2.0], [0, 0, 7, 3, 3])
    s = math.sqrt(0.5)
    assert adv.tolist() == pytest.approx([0.5 / s, -0.5 / s, 0.0, 0.0, 0.0], abs=1e-5)


def test_dr_grpo_mean_centred_without_std():
    # [1, 0, 0.5] -> mean 0.5 -> [0.5, -0.5, 0]; a single sample is its own mean -> 0
    adv = outcome("dr_grpo", [1.0, 0.0, 0.5, 0.9], [1, 1, 1, 2])
    assert adv.tolist() == pytest.approx([0.5, -0.5, 0.0, 0.0])


def test_rloo_leave_one_out():
    # [1, 0, 0.5]: 1 - (0 + .5)/2 = .75; 0 - (1 + .5)/2 = -.75; .5 - (1 + 0)/2 = 0; singleton -> 0
    adv = outcome("rloo", [1.0, 0.0, 0.5, 0.9], [4, 4, 4, 5])
    assert adv.tolist() == pytest.approx([0.75, -0.75, 0.0, 0.0])


def test_outcome_estimators_sum_token_rewards_including_kl():
    # scores [1, 0] with kl 0.1 per token on 2 tokens, coef 1: sums 0.8 and -0.2 -> dr_grpo: +-0.5
    mask = t([[1, 1], [1, 1]])
    rewards = token_rewards(t([1.0, 0.0]), mask, kl=torch.full((2, 2), 0.1, dtype=torch.float64), kl_coef=1.0)
    adv, _ = ADVANTAGE_ESTIMATORS["dr_grpo"](
        rewards, mask, group=torch.tensor([0, 0]), values=None, gamma=1, lam=1
    )
    assert adv[:, 0].tolist() == pytest.approx([0.5, -0.5])


def test_gae_gamma_lambda_one_is_return_minus_value():
    # reward 1 on the last valid token; returns are 1 everywhere, A_t = 1 - V_t; padding stays 0
    mask = t([[1, 1, 1, 0]])
    rewards = token_rewards(t([1.0]), mask)
    values = t([[0.5, 0.6, 0.7, 9.9]])
    adv, ret = ADVANTAGE_ESTIMATORS["gae"](rewards, mask, group=None, values=values, gamma=1.0, lam=1.0)
    close(adv, [[0.5, 0.4, 0.3, 0.0]])
    close(ret, [[1.0, 1.0, 1.0, 0.0]])


def test_gae_discounted():
    # gamma .9, lam .5: d2 = 1 - .7 = .3, A2 = .3; d1 = .9*.7 - .6 = .03, A1 = .03 + .45*.3 = .165;
    # d0 = .9*.6 - .5 = .04, A0 = .04 + .45*.165 = .11425; returns = A + V
    mask = t([[1, 1, 1]])
    values = t([[0.5, 0.6, 0.7]])
    adv, ret = ADVANTAGE_ESTIMATORS["gae"](
        token_rewards(t([1.0]), mask), mask, group=None, values=values, gamma=0.9, lam=0.5
    )
    close(adv, [[0.11425, 0.165, 0.3]])
    close(ret, [[0.61425, 0.765, 1.0]])


def test_gae_skips_masked_positions():
    # position 1 is masked: it neither adds its reward 5 nor breaks the chain: A2 = 1 - .7 = .3,
    # A0 = (0 + .7 - .5) + .3 = .5
    mask = t([[1, 0, 1]])
    rewards = t([[0.0, 5.0, 1.0]])
    values = t([[0.5, 9.0, 0.7]])
    adv, _ = ADVANTAGE_ESTIMATORS["gae"](rewards, mask, group=None, values=values, gamma=1.0, lam=1.0)
    close(adv, [[0.5, 0.0, 0.3]])


def test_gae_needs_values():
    with pytest.raises(ValueError, match="critic"):
        ADVANTAGE_ESTIMATORS["gae"](t([[1.0]]), t([[1]]), group=None, values=None, gamma=1, lam=1)


def test_whitening_uses_unbiased_variance_over_valid_tokens():
    # [1, 2, 3] (9 is padding): mean 2, unbiased var 1 -> [-1, 0, 1]
    x, mask = t([[1, 2], [3, 9]]), t([[1, 1], [1, 0]])
    mean, var = moments_to_mean_var(masked_moments(x, mask))
    assert (mean.item(), var.item()) == pytest.approx((2.0, 1.0))
    close(masked_whiten(x, mask, mean, var), [[-1, 0], [1, 0]])


def test_token_rewards_score_on_last_token_minus_kl():
    # scores [1, .1]; kl_coef .5: row 0 -> [-.05, 1 - .1, 0]; row 1 -> [.1 - .2, 0, 0]; empty row -> 0
    mask = t([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    kl = t([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [1, 1, 1]])
    rewards = token_rewards(t([1.0, 0.1, 3.0]), mask, kl=kl, kl_coef=0.5)
    close(rewards, [[-0.05, 0.9, 0.0], [-0.1, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_kl_estimators():
    # logp -1, ref -2: k1 = 1; k3 = e^(-1) - (-1) - 1 = 0.36788
    logp, ref = t([-1.0]), t([-2.0])
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(1.0)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(math.exp(-1))
    assert kl_penalty(ref, ref, "k3").item() == 0.0
    with pytest.raises(ValueError):
        kl_penalty(logp, ref, "k2")  # type: ignore[arg-type]


def test_entropy_from_logits():
    assert entropy_from_logits(t([0.0, 0.0, 0.0, 0.0])).item() == pytest.approx(math.log(4))
    # probs [.25, .75]
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert entropy_from_logits(t([0.0, math.log(3)])).item() == pytest.approx(expected)


def test_aggregation_modes():
    per_token = t([[1, 2, 3], [4, 7, 7]])
    mask = t([[1, 1, 1], [1, 0, 0]])
    assert aggregate_loss(per_token, mask, "token_mean").item() == pytest.approx(10 / 4)
    assert aggregate_loss(per_token, mask, "seq_mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate_loss(per_token, mask, "token_sum_norm", constant=4).item() == pytest.approx(
        (6 / 4 + 4 / 4) / 2
    )
    with pytest.raises(ValueError, match="constant"):
        aggregate_loss(per_token, mask, "token_sum_norm")


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean", "token_sum_norm"])
def test_micro_batches_with_global_denominators_sum_to_the_big_batch(mode):
    per_token = t([[1, 2, 3], [4, 7, 7], [5, 6, 0]])
    mask = t([[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    full = aggregate_loss(per_token, mask, mode, constant=3)
    parts = sum(
        aggregate_loss(
            per_token[i : i + 1], mask[i : i + 1], mode, constant=3, num_tokens=mask.sum(), num_seqs=3
        )
        for i in range(3)
    )
    assert parts.item() == pytest.approx(full.item())


def test_clipped_policy_loss_asymmetric():
    # ratios [1, 1.5, .5, .5], advantages [1, 1, 1, -1], clip [0.8, 1.28]:
    #   -1*1 = -1 | max(-1.5, -1.28) = -1.28 (clipped) | max(-.5, -.8) = -.5 | max(.5, .8) = .8 (clipped)
    old = t([[-1.0, -1.0, -1.0, -1.0]])
    new = old + torch.log(t([[1.0, 1.5, 0.5, 0.5]]))
    adv = t([[1.0, 1.0, 1.0, -1.0]])
    mask = torch.ones_like(old)
    loss, clip_frac, approx_kl = clipped_policy_loss(new, old, adv, mask, clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx((-1 - 1.28 - 0.5 + 0.8) / 4)
    assert clip_frac.item() == pytest.approx(0.5)
    assert approx_kl.item() == pytest.approx(-(math.log(1.5) + 2 * math.log(0.5)) / 4)


def test_clipped_policy_loss_gradient_is_zero_where_clipped():
    old = t([[0.0, 0.0]])
    new = torch.log(t([[1.5, 1.1]])).requires_grad_()
    loss, _, _ = clipped_policy_loss(
        new, old, t([[1.0, 1.0]]), torch.ones_like(old), clip_low=0.2, clip_high=0.2
    )
    loss.backward()
    # token 0 clipped (no gradient); token 1: d/dlogp (-r/2) = -r/2 = -0.55
    close(new.grad, [[0.0, -0.55]])


def test_clipped_value_loss():
    # V [1, 0], V_old [.5, .5], R [2, 0], clip .2 -> V_clip [.7, .3]
    # token 0: .5 * max(1, 1.69) = .845; token 1: .5 * max(0, .09) = .045; mean .445
    loss, clip_frac = clipped_value_loss(
        t([[1.0, 0.0]]), t([[0.5, 0.5]]), t([[2.0, 0.0]]), t([[1, 1]]), clip=0.2
    )
    assert loss.item() == pytest.approx(0.445)
    assert clip_frac.item() == 1.0
