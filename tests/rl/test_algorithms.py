"""Every RL objective against numbers worked out by hand (comments show the arithmetic)."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from cogrl.config import AlgorithmConfig
from cogrl.rl.algorithms import (
    ADVANTAGE_ESTIMATORS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    aggregate_loss,
    cispo_policy_loss,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    gspo_policy_loss,
    kl_penalty,
    masked_is_keep,
    masked_moments,
    masked_whiten,
    moments_to_mean_var,
    overlong_penalty,
    rollout_log_ratio,
    token_rewards,
    truncated_is_weights,
)


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual, t(expected), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("field", "registry"),
    [("advantage", ADVANTAGE_ESTIMATORS), ("policy_loss", POLICY_LOSSES), ("kl_estimator", KL_ESTIMATORS)],
)
def test_config_accepts_exactly_the_registered_names(field, registry):
    for name in registry:
        extra = {"loss_agg": POLICY_LOSSES[name].aggregation} if field == "policy_loss" else {}
        assert (
            getattr(AlgorithmConfig(**{field: name}, **{k: v for k, v in extra.items() if v}), field) == name
        )
    with pytest.raises(
        ValidationError, match=f"unknown {field} 'nope' \\(registered: {', '.join(registry)}\\)"
    ):
        AlgorithmConfig(**{field: "nope"})


def test_registry_properties_drive_the_config_checks():
    assert [n for n, spec in ADVANTAGE_ESTIMATORS.items() if spec.needs_critic] == ["gae"]
    with pytest.raises(
        ValidationError, match="gamma and lam apply only to an advantage with a critic \\(gae\\)"
    ):
        AlgorithmConfig(advantage="reinforce_plus_plus", gamma=0.9)
    with pytest.raises(ValidationError, match="policy_loss gspo is defined with loss_agg: seq_mean"):
        AlgorithmConfig(policy_loss="gspo")
    with pytest.raises(ValidationError, match="rollout_mask_low must be below"):
        AlgorithmConfig(rollout_mask_low=2.0, rollout_mask_high=2.0)


def outcome(name: str, scores: list[float], group: list[int]) -> torch.Tensor:
    mask = t([[1, 1, 0]] * len(scores))
    rewards = token_rewards(t(scores), mask)
    adv, _ = ADVANTAGE_ESTIMATORS[name].fn(
        rewards, mask, group=torch.tensor(group), values=None, gamma=1, lam=1
    )
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
    adv, _ = ADVANTAGE_ESTIMATORS["dr_grpo"].fn(
        rewards, mask, group=torch.tensor([0, 0]), values=None, gamma=1, lam=1
    )
    assert adv[:, 0].tolist() == pytest.approx([0.5, -0.5])


def test_gae_gamma_lambda_one_is_return_minus_value():
    # reward 1 on the last valid token; returns are 1 everywhere, A_t = 1 - V_t; padding stays 0
    mask = t([[1, 1, 1, 0]])
    rewards = token_rewards(t([1.0]), mask)
    values = t([[0.5, 0.6, 0.7, 9.9]])
    adv, ret = ADVANTAGE_ESTIMATORS["gae"].fn(rewards, mask, group=None, values=values, gamma=1.0, lam=1.0)
    close(adv, [[0.5, 0.4, 0.3, 0.0]])
    close(ret, [[1.0, 1.0, 1.0, 0.0]])


def test_gae_discounted():
    # gamma .9, lam .5: d2 = 1 - .7 = .3, A2 = .3; d1 = .9*.7 - .6 = .03, A1 = .03 + .45*.3 = .165;
    # d0 = .9*.6 - .5 = .04, A0 = .04 + .45*.165 = .11425; returns = A + V
    mask = t([[1, 1, 1]])
    values = t([[0.5, 0.6, 0.7]])
    adv, ret = ADVANTAGE_ESTIMATORS["gae"].fn(
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
    adv, _ = ADVANTAGE_ESTIMATORS["gae"].fn(rewards, mask, group=None, values=values, gamma=1.0, lam=1.0)
    close(adv, [[0.5, 0.0, 0.3]])


def test_gae_needs_values():
    with pytest.raises(ValueError, match="critic"):
        ADVANTAGE_ESTIMATORS["gae"].fn(t([[1.0]]), t([[1]]), group=None, values=None, gamma=1, lam=1)


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
    # k2 = (log p - log q)^2 / 2 = 0.5 in both directions
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5)
    assert kl_penalty(ref, logp, "k2").item() == pytest.approx(0.5)
    # low_var_kl is k3 where k3 is small ...
    assert kl_penalty(logp, ref, "low_var_kl").item() == pytest.approx(math.exp(-1))
    # ... and clamped: logp -30, ref 0 -> q - p = 30 clamped to 20 -> e^20 - 21 clamped to 10
    assert kl_penalty(t([-30.0]), t([0.0]), "low_var_kl").item() == 10.0
    # the other way: q - p = -30 clamped to -20 -> e^-20 + 20 - 1 = 19 clamped to 10
    assert kl_penalty(t([0.0]), t([-30.0]), "low_var_kl").item() == 10.0
    with pytest.raises(ValueError, match="unknown KL estimator 'k9'"):
        kl_penalty(logp, ref, "k9")


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


def test_reinforce_plus_plus_is_the_reward_to_go():
    # scores [1, 0], KL in the reward (coef 1): row 0 kl .1 on 3 tokens -> rewards [-.1, -.1, .9];
    # row 1 kl .2 on 2 tokens -> [-.2, -.2, 0]. Reward-to-go: [.7, .8, .9] and [-.4, -.2, 0].
    # Groups play no part (two different groups, one sample each, still get advantages).
    mask = t([[1, 1, 1], [1, 1, 0]])
    kl = t([[0.1, 0.1, 0.1], [0.2, 0.2, 0.2]])
    rewards = token_rewards(t([1.0, 0.0]), mask, kl=kl, kl_coef=1.0)
    spec = ADVANTAGE_ESTIMATORS["reinforce_plus_plus"]
    adv, ret = spec.fn(rewards, mask, group=torch.tensor([0, 1]), values=None, gamma=1, lam=1)
    close(adv, [[0.7, 0.8, 0.9], [-0.4, -0.2, 0.0]])
    close(ret, [[0.7, 0.8, 0.9], [-0.4, -0.2, 0.0]])
    assert spec.whitened and not spec.needs_groups and not spec.needs_critic


def test_reinforce_plus_plus_baseline_subtracts_the_group_mean():
    # [1, 0, .5] -> mean .5 -> [.5, -.5, 0]; the singleton group is its own mean -> 0. The learner then
    # whitens over the batch (whitened), which GRPO, normalising per group, does not.
    adv = outcome("reinforce_plus_plus_baseline", [1.0, 0.0, 0.5, 0.9], [1, 1, 1, 2])
    assert adv.tolist() == pytest.approx([0.5, -0.5, 0.0, 0.0])
    spec = ADVANTAGE_ESTIMATORS["reinforce_plus_plus_baseline"]
    assert spec.whitened and spec.needs_groups
    assert not ADVANTAGE_ESTIMATORS["grpo"].whitened


def test_ppo_loss_weights_each_tokens_term():
    # ratios [1, 1.5], advantages [1, 1], clip .2/.28: terms [-1, -1.28]; weights [.5, 2] -> [-.5, -2.56]
    old = t([[-1.0, -1.0]])
    new = old + torch.log(t([[1.0, 1.5]]))
    loss, clip_frac, _ = clipped_policy_loss(
        new, old, t([[1.0, 1.0]]), torch.ones_like(old), clip_low=0.2, clip_high=0.28, weights=t([[0.5, 2.0]])
    )
    assert loss.item() == pytest.approx((-0.5 - 2.56) / 2)
    assert clip_frac.item() == pytest.approx(0.5)  # the weights do not change what was clipped


def gspo_inputs():
    # row 0: token log-ratios [.1, .3] -> sequence ratio e^.2 = 1.2214, A = +1
    # row 1: token log-ratios [-.1, .1] (third token padding) -> sequence ratio e^0 = 1, A = -1
    old = t([[-1.0, -2.0, -1.0], [-1.5, -0.5, -3.0]])
    new = (old + t([[0.1, 0.3, 0.0], [-0.1, 0.1, 0.0]])).requires_grad_()
    adv = t([[1.0, 1.0, 0.0], [-1.0, -1.0, 0.0]])
    mask = t([[1, 1, 0], [1, 1, 0]])
    return new, old, adv, mask


def test_gspo_clips_whole_sequences():
    new, old, adv, mask = gspo_inputs()
    loss, clip_frac, _ = gspo_policy_loss(new, old, adv, mask, clip_low=0.2, clip_high=0.2, mode="seq_mean")
    # row 0: 1.2214 > 1.2 and A > 0: both tokens take the clipped -1.2; row 1: -A * 1 = 1 on both tokens.
    # seq_mean: (-1.2 + 1) / 2 = -.1; clipped tokens 2 of 4
    assert loss.item() == pytest.approx(-0.1)
    assert clip_frac.item() == pytest.approx(0.5)
    loss.backward()
    # row 0 clipped as a whole: no gradient. Row 1: each token's value is s = 1 and its gradient
    # -A * s = 1, divided by 2 tokens and 2 sequences -> .25 on both, whatever the tokens' own ratios
    close(new.grad, [[0.0, 0.0, 0.0], [0.25, 0.25, 0.0]])


def test_ppo_on_the_same_inputs_clips_and_weighs_token_by_token():
    new, old, adv, mask = gspo_inputs()
    loss, clip_frac, _ = clipped_policy_loss(
        new, old, adv, mask, clip_low=0.2, clip_high=0.2, mode="seq_mean"
    )
    loss.backward()
    # row 0: e^.1 = 1.1052 unclipped (gradient -A r / 4), e^.3 = 1.3499 clipped (0);
    # row 1: A = -1, ratios e^-.1, e^.1 inside the range -> gradients r / 4
    r = [math.exp(0.1), math.exp(-0.1)]
    close(new.grad, [[-r[0] / 4, 0.0, 0.0], [r[1] / 4, r[0] / 4, 0.0]])
    assert clip_frac.item() == pytest.approx(0.25)


def test_cispo_clips_the_weight_but_keeps_the_gradient():
    # ratios [1, 1.5, .5], advantages [1, 1, -1], clip .2/.28 -> stop-gradient weights [1, 1.28, .8]
    old = t([[-1.0, -1.0, -1.0]])
    new = (old + torch.log(t([[1.0, 1.5, 0.5]]))).requires_grad_()
    adv = t([[1.0, 1.0, -1.0]])
    loss, clip_frac, _ = cispo_policy_loss(new, old, adv, torch.ones_like(old), clip_low=0.2, clip_high=0.28)
    # per token -w A logp: -1*1*(-1) = 1; -1.28*(-1 + ln 1.5) = .761; -.8*(-1)*(-1 + ln .5) = -1.35452
    logp = [-1.0, -1.0 + math.log(1.5), -1.0 + math.log(0.5)]
    expected = (-1.0 * logp[0] - 1.28 * logp[1] + 0.8 * logp[2]) / 3
    assert loss.item() == pytest.approx(expected)
    assert clip_frac.item() == pytest.approx(2 / 3)
    loss.backward()
    # d/dlogp = -w A / 3: the clipped token 1 still gets -1.28 / 3 (PPO would give it 0)
    close(new.grad, [[-1 / 3, -1.28 / 3, 0.8 / 3]])


@pytest.mark.parametrize("name", ["ppo", "gspo", "cispo"])
def test_every_policy_loss_has_ppos_gradient_on_policy(name):
    # at ratio 1 (the first pass over fresh rollouts) all three objectives are -A grad logp (seq_mean)
    g = torch.Generator().manual_seed(0)
    logp = (-torch.rand(3, 4, generator=g, dtype=torch.float64)).requires_grad_()
    adv = torch.randn(3, 4, generator=g, dtype=torch.float64)
    mask = t([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    grads = []
    for fn in (clipped_policy_loss, POLICY_LOSSES[name].fn):
        logp.grad = None
        loss, clip_frac, _ = fn(logp, logp.detach(), adv, mask, clip_low=0.2, clip_high=0.2, mode="seq_mean")
        loss.backward()
        grads.append(logp.grad.clone())
        assert clip_frac.item() == 0.0
    close(grads[1], grads[0].tolist())


def test_truncated_importance_sampling_caps_the_ratio():
    # learner old log-probs minus rollout log-probs: ratios [.5, 1, 3] (padding 0) -> weights [.5, 1, 2]
    rollout = t([[-1.0, -1.0, -1.0, -7.0]])
    old = rollout + torch.log(t([[0.5, 1.0, 3.0, 1.0]]))
    log_ratio = rollout_log_ratio(old, rollout, t([[1, 1, 1, 0]]))
    close(log_ratio, [[math.log(0.5), 0.0, math.log(3.0), 0.0]])
    close(truncated_is_weights(log_ratio, cap=2.0), [[0.5, 1.0, 2.0, 1.0]])


def test_masked_importance_sampling_by_token_sequence_and_geometric_mean():
    # band [.5, 2]. Rows (ratios, padding after |): [1.5 1.5 | .], [.6 .6 .6], [.45 | . .], [1.2 .9 | .]
    # token:     [1 1 0], [1 1 1], [0 0 0], [1 1 0]
    # sequence:  products 2.25 (out), .216 (out), .45 (out), 1.08 (in)
    # geometric: means 1.5 (in), .6 (in), .45 (out), 1.039 (in)
    mask = t([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]])
    ratios = t([[1.5, 1.5, 1.0], [0.6, 0.6, 0.6], [0.45, 1.0, 1.0], [1.2, 0.9, 1.0]])
    log_ratio = torch.log(ratios) * mask
    keep = {
        level: masked_is_keep(log_ratio, mask, low=0.5, high=2.0, level=level)
        for level in ("off", "token", "sequence", "geometric")
    }
    close(keep["off"], mask.tolist())
    close(keep["token"], [[1, 1, 0], [1, 1, 1], [0, 0, 0], [1, 1, 0]])
    close(keep["sequence"], [[0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 1, 0]])
    close(keep["geometric"], [[1, 1, 0], [1, 1, 1], [0, 0, 0], [1, 1, 0]])
    # no overflow: a product of a thousand ratios of 3 is compared in log space
    long = torch.full((1, 1000), math.log(3.0), dtype=torch.float64)
    assert masked_is_keep(long, torch.ones_like(long), low=0.5, high=2.0, level="sequence").sum() == 0


def test_overlong_penalty_is_linear_over_the_buffer():
    # cap 10, buffer 4: free up to 6 tokens, then -1/4 per token, -1 at the cap (and no further)
    lengths = t([5, 6, 8, 10, 11])
    close(overlong_penalty(lengths, max_len=10, buffer=4), [0.0, 0.0, -0.5, -1.0, -1.0])
    close(overlong_penalty(lengths, max_len=10, buffer=4, factor=0.5), [0.0, 0.0, -0.25, -0.5, -0.5])
