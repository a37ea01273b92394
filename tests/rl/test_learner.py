"""The learner on a tiny model, on CPU: direction of the update, the paper's PPO, micro-batching,
determinism, save/load, and 2 data-parallel ranks == 1 rank."""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from cogrl.config import AlgorithmConfig, TrainerConfig, validate_recipe
from cogrl.models import load_causal_lm
from cogrl.rl.batch import Experience
from cogrl.rl.forward import pad_batch
from cogrl.rl.learner import Learner
from cogrl.rl.learner_group import LearnerGroup, shard_by_group

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MAX_NEW_TOKENS = 8


def make_batch(
    num_groups: int = 4, group_size: int = 2, seed: int = 0, rollout_logprob: float | None = None
) -> list[Experience]:
    """Groups of varied lengths; in each group the first response is rewarded 1, the others 0 (+ noise).
    ``rollout_logprob``: every token's rollout log-prob (none by default); responses of the full
    MAX_NEW_TOKENS are marked truncated."""
    g = torch.Generator().manual_seed(seed)
    batch = []
    for group in range(num_groups):
        prompt = tuple(
            torch.randint(10, 290, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
        )
        for k in range(group_size):
            length = int(torch.randint(1, MAX_NEW_TOKENS + 1, (1,), generator=g))
            response = tuple(torch.randint(10, 290, (length,), generator=g).tolist())
            reward = (1.0 if k == 0 else 0.0) + 0.1 * float(torch.rand(1, generator=g))
            rollout = () if rollout_logprob is None else (rollout_logprob,) * length
            batch.append(Experience(prompt, response, rollout, reward, group, length == MAX_NEW_TOKENS))
    return batch


def make_learner(model_dir: Path, **algorithm) -> Learner:
    defaults = {"kl_coef": 0.0, "entropy_coef": 0.0}
    trainer = TrainerConfig(lr=1e-3, critic_lr=1e-3)
    return Learner(model_dir, AlgorithmConfig(**(defaults | algorithm)), trainer, MAX_NEW_TOKENS, seed=0)


def sequence_logprob(learner: Learner, e: Experience) -> float:
    return sum(learner.logprobs([e.prompt_ids], [e.response_ids])[0])


def assert_same_parameters(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    """Exact by default. Sums in another order differ by ~1e-9, and Adam's first step (lr * g / |g|) turns a
    near-zero gradient's rounding into up to ~2e-6 here (lr 1e-3): equivalence tests use atol 1e-5. Adam is
    scale-invariant, so those tests also compare the losses and the gradient norm, which are not."""
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=atol, msg=name)


def test_logprobs_of_padded_batch_match_a_plain_forward(model_dir):
    learner = make_learner(model_dir)
    prompts, responses = [[5, 6, 7], [8]], [[9, 10], [11, 12, 13, 14]]
    got = learner.logprobs(prompts, responses)
    for prompt, response, row in zip(prompts, responses, got, strict=True):
        ids = torch.tensor([prompt + response])
        with torch.no_grad():
            logp = torch.log_softmax(learner.policy(input_ids=ids).logits[0], -1)
        expected = [logp[len(prompt) - 1 + j, tok].item() for j, tok in enumerate(response)]
        assert row == pytest.approx(expected, abs=1e-5)


def test_pad_batch_rejects_an_empty_prompt():
    with pytest.raises(ValueError, match="empty prompt"):
        pad_batch([((), (1, 2))], torch.device("cpu"))


@pytest.mark.parametrize(
    "advantage", ["grpo", "dr_grpo", "rloo", "reinforce_plus_plus", "reinforce_plus_plus_baseline"]
)
def test_update_raises_logprob_of_rewarded_responses(model_dir, advantage):
    learner = make_learner(model_dir, advantage=advantage)
    batch = make_batch()
    before = [sequence_logprob(learner, e) for e in batch]
    stats = learner.update(batch)
    after = [sequence_logprob(learner, e) for e in batch]
    for i, e in enumerate(batch):
        moved = after[i] - before[i]
        assert moved > 0 if i % 2 == 0 else moved < 0, (i, e.reward, moved)
    assert stats["grad_norm"] > 0 and stats["clip_frac"] == 0.0  # first pass is exactly on-policy
    assert stats["num_sequences"] == len(batch) and stats["kl"] == 0.0


def test_kl_coef_zero_skips_the_reference(model_dir):
    assert make_learner(model_dir, kl_coef=0.0).reference is None
    learner = make_learner(model_dir, kl_coef=0.1)
    assert learner.reference is not None
    assert not any(p.requires_grad for p in learner.reference.parameters())
    batch = make_batch()
    assert learner.update(batch)["kl"] == 0.0  # policy == reference before the first step
    assert learner.update(batch)["kl"] != 0.0


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean", "token_sum_norm"])
def test_micro_batches_accumulate_to_the_big_batch(model_dir, loss_agg):
    batch = make_batch()
    whole = make_learner(
        model_dir, loss_agg=loss_agg, micro_batch_size=len(batch), kl_coef=0.01, kl_in_reward=False
    )
    micro = make_learner(model_dir, loss_agg=loss_agg, micro_batch_size=3, kl_coef=0.01, kl_in_reward=False)
    stats_whole, stats_micro = whole.update(batch), micro.update(batch)
    assert_same_parameters(whole.policy_state(), micro.policy_state(), atol=1e-5)
    for key in ("pg_loss", "entropy", "grad_norm"):
        assert stats_whole[key] == pytest.approx(stats_micro[key], rel=1e-5, abs=1e-7), key


def test_critic_takes_its_own_mini_batches(model_dir):
    """The paper's structure: the critic steps on smaller mini-batches than the actor; the actor's update is
    untouched by it, and a critic mini-batch equal to the actor's is the default."""
    batch = make_batch()  # 8 sequences
    base = {"advantage": "gae", "kl_coef": 0.01, "mini_batch_size": 8}
    default = make_learner(model_dir, **base)
    same = make_learner(model_dir, critic_mini_batch_size=8, **base)
    small = make_learner(model_dir, critic_mini_batch_size=2, **base)
    stats = [learner.update(batch) for learner in (default, same, small)]
    assert [s["optimizer_steps"] for s in stats] == [1, 1, 1]
    assert [s["critic_optimizer_steps"] for s in stats] == [1, 1, 4]
    assert_same_parameters(default.policy_state(), small.policy_state())
    assert_same_parameters(default.critic.state_dict(), same.critic.state_dict())
    moved = [
        not torch.equal(a, b)
        for a, b in zip(default.critic.state_dict().values(), small.critic.state_dict().values(), strict=True)
    ]
    assert any(moved)


@pytest.mark.parametrize("advantage", ["grpo", "gae"])
def test_token_budget_micro_batches_give_the_same_update(model_dir, advantage):
    """Packing by padded tokens (shortest together, out of batch order) changes memory, not the update."""
    batch = make_batch()
    config = {"advantage": advantage, "kl_coef": 0.01, "kl_in_reward": advantage == "gae"}
    whole = make_learner(model_dir, micro_batch_size=len(batch), **config)
    packed = make_learner(model_dir, max_tokens_per_micro_batch=24, **config)
    cuts = packed._micro_batches(batch, range(len(batch)))
    assert len(cuts) > 1 and sorted(i for cut in cuts for i in cut) == list(range(len(batch)))
    for cut in cuts:
        longest = max(len(batch[i].prompt_ids) + len(batch[i].response_ids) for i in cut)
        assert len(cut) == 1 or len(cut) * longest <= 24
    stats_whole, stats_packed = whole.update(batch), packed.update(batch)
    assert_same_parameters(whole.policy_state(), packed.policy_state(), atol=1e-5)
    for key in ("pg_loss", "vf_loss", "entropy", "grad_norm", "kl"):
        assert stats_whole[key] == pytest.approx(stats_packed[key], rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize("advantage", ["grpo", "gae"])
def test_old_logprobs_from_the_training_pass_give_the_same_update(model_dir, advantage):
    batch = make_batch()
    reuse, recompute = (
        make_learner(model_dir, advantage=advantage),
        make_learner(model_dir, advantage=advantage),
    )
    recompute.old_logprobs_in_training = lambda num_mini_batches: False
    assert reuse.old_logprobs_in_training(1) and not reuse.old_logprobs_in_training(2)
    stats_reuse, stats_recompute = reuse.update(batch), recompute.update(batch)
    assert_same_parameters(reuse.policy_state(), recompute.policy_state(), atol=1e-7)
    assert stats_reuse["pg_loss"] == pytest.approx(stats_recompute["pg_loss"], abs=1e-7)
    assert make_learner(model_dir, kl_coef=0.01).old_logprobs_in_training(1) is False


def test_same_inputs_same_update(model_dir):
    batch = make_batch()
    a, b = make_learner(model_dir, advantage="gae"), make_learner(model_dir, advantage="gae")
    a.update(batch)
    b.update(batch)
    assert_same_parameters(a.policy_state(), b.policy_state())
    assert_same_parameters(a.critic.state_dict(), b.critic.state_dict())


def test_mini_batches_and_epochs_take_several_optimizer_steps(model_dir):
    learner = make_learner(model_dir, mini_batch_size=4, ppo_epochs=2)
    stats = learner.update(make_batch())
    assert stats["optimizer_steps"] == 4
    assert stats["clip_frac"] > 0 or stats["approx_kl"] != 0  # later steps are off-policy


PAPER_PPO = {
    "name": "paper-ppo",
    "model": {"path": "unused"},
    "rollout": {"samples_per_prompt": 4, "max_new_tokens": MAX_NEW_TOKENS, "temperature": 1.0},
    "algorithm": {
        "advantage": "gae",
        "gamma": 1.0,
        "lam": 1.0,
        "kl_coef": 0.001,
        "kl_in_reward": True,
        "kl_estimator": "k1",
        "entropy_coef": 0.001,
        "clip_low": 0.2,
        "clip_high": 0.2,
    },
    "trainer": {"lr": 1e-6, "critic_lr": 1e-5, "grad_clip": 1.0},
}


def test_the_papers_ppo(model_dir):
    """Gandhi et al. (veRL PPO): GAE with gamma = lam = 1, k1 KL 0.001 in the reward, critic from the policy."""
    from cogrl.config import TrainRecipe

    raw = PAPER_PPO | {"model": {"path": str(model_dir)}}
    recipe = validate_recipe(raw, TrainRecipe)
    learner = Learner(model_dir, recipe.algorithm, recipe.trainer, recipe.rollout.max_new_tokens, seed=0)
    # critic initialised from the policy, own optimizer at 1e-5; actor at 1e-6; frozen reference for the KL
    policy_backbone = learner.policy.model.state_dict()
    for name, tensor in learner.critic.backbone.state_dict().items():
        assert torch.equal(tensor, policy_backbone[name]), name
    assert learner.optimizer.param_groups[0]["lr"] == 1e-6
    assert learner.critic_optimizer.param_groups[0]["lr"] == 1e-5
    assert learner.reference is not None

    # move the policy away from the reference so the KL term is non-zero, then check the step's inputs
    learner.optimizer.param_groups[0]["lr"] = 1e-3
    batch = make_batch(group_size=4)
    learner.update(batch)
    p = learner.prepare(batch)
    mask = p.response_mask
    kl = (p.old_logprobs - p.ref_logprobs) * mask
    assert kl.abs().sum() > 0
    expected_rewards = -0.001 * kl
    lengths = mask.sum(-1).long()
    for i, e in enumerate(batch):
        expected_rewards[i, lengths[i] - 1] += e.reward
    torch.testing.assert_close(p.rewards, expected_rewards)
    # gamma = lam = 1: the return is the reward-to-go; the advantage is return - value, whitened over tokens
    reward_to_go = torch.flip(torch.cumsum(torch.flip(p.rewards, [1]), 1), [1]) * mask
    torch.testing.assert_close(p.returns, reward_to_go)
    raw_adv = (reward_to_go - p.values)[mask.bool()]
    torch.testing.assert_close(
        p.advantages[mask.bool()], (raw_adv - raw_adv.mean()) / raw_adv.std(), atol=1e-4, rtol=0
    )

    stats = learner.update(batch)
    assert stats["vf_loss"] > 0 and stats["critic_grad_norm"] > 0 and stats["entropy"] > 0


def test_grad_clip_bounds_the_step(model_dir):
    """With grad_clip tiny, one SGD-like Adam step still moves; the reported norm is the pre-clip norm."""
    learner = Learner(
        model_dir,
        AlgorithmConfig(kl_coef=0.0),
        TrainerConfig(lr=1e-3, grad_clip=1e-3),
        MAX_NEW_TOKENS,
        seed=0,
    )
    before = learner.policy_state()
    stats = learner.update(make_batch())
    assert stats["grad_norm"] > 1e-3
    assert any(not torch.equal(before[k], v) for k, v in learner.policy_state().items())


def test_save_then_load_continues_bit_identically(model_dir, tmp_path):
    config = {"advantage": "gae", "kl_coef": 0.01, "entropy_coef": 0.001}
    batch1, batch2 = make_batch(seed=1), make_batch(seed=2)
    first = make_learner(model_dir, **config)
    first.update(batch1)
    first.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "config.json").is_file() and (tmp_path / "ckpt" / "tokenizer.json").is_file()
    load_causal_lm(tmp_path / "ckpt")  # a checkpoint is a plain model directory

    resumed = make_learner(model_dir, **config)
    resumed.load(tmp_path / "ckpt")
    first.update(batch2)
    resumed.update(batch2)
    assert_same_parameters(first.policy_state(), resumed.policy_state())
    assert_same_parameters(first.critic.state_dict(), resumed.critic.state_dict())
    # the reference stays the initial policy, not the checkpoint's
    assert_same_parameters(first.reference.state_dict(), resumed.reference.state_dict())


@pytest.mark.parametrize("advantage", ["grpo", "gae"])
def test_an_empty_shard_still_steps(model_dir, advantage):
    """A rank with no groups (fewer groups than ranks) joins every collective and leaves weights as they were
    (zero gradients; AdamW without weight decay does not move)."""
    learner = make_learner(model_dir, advantage=advantage)
    before = learner.policy_state()
    stats = learner.update([])
    assert stats["num_sequences"] == 0 and stats["optimizer_steps"] == 1
    assert_same_parameters(before, learner.policy_state())


def test_shard_by_group_keeps_groups_whole_and_balances_tokens():
    batch = make_batch(num_groups=9, group_size=3)
    shards = shard_by_group(batch, 2)
    assert sorted(map(id, shards[0] + shards[1])) == sorted(map(id, batch))
    assert not {e.group for e in shards[0]} & {e.group for e in shards[1]}
    assert all(shard == [e for e in batch if e in shard] for shard in shards)  # batch order kept
    tokens = [sum(len(e.prompt_ids) + len(e.response_ids) for e in shard) for shard in shards]
    biggest_group = max(
        sum(len(e.prompt_ids) + len(e.response_ids) for e in batch if e.group == g) for g in range(9)
    )
    assert abs(tokens[0] - tokens[1]) <= biggest_group
    assert shard_by_group(batch[:3], 2) == [batch[:3], []]


# ---- policy losses, rollout/learner mismatch correction, DAPO's length handling, KL estimators ----------
@pytest.mark.parametrize(("policy_loss", "loss_agg"), [("cispo", "token_mean"), ("gspo", "seq_mean")])
def test_on_policy_the_new_losses_step_exactly_like_ppo(model_dir, policy_loss, loss_agg):
    """At ratio 1 (one optimizer step on fresh rollouts) CISPO's and GSPO's gradients are PPO's."""
    batch = make_batch()
    ppo, other = (
        make_learner(model_dir, loss_agg=loss_agg),
        make_learner(model_dir, loss_agg=loss_agg, policy_loss=policy_loss),
    )
    stats_ppo, stats_other = ppo.update(batch), other.update(batch)
    assert_same_parameters(ppo.policy_state(), other.policy_state(), atol=1e-6)
    assert stats_other["grad_norm"] == pytest.approx(stats_ppo["grad_norm"], rel=1e-5)


@pytest.mark.parametrize("policy_loss", ["ppo", "gspo", "cispo"])
def test_every_policy_loss_trains_off_policy(model_dir, policy_loss):
    """Two epochs of two mini-batches: later steps are off-policy, so ratios move and clipping can act."""
    loss_agg = "seq_mean" if policy_loss == "gspo" else "token_mean"
    learner = make_learner(
        model_dir, policy_loss=policy_loss, loss_agg=loss_agg, mini_batch_size=4, ppo_epochs=2
    )
    before = learner.policy_state()
    stats = learner.update(make_batch())
    assert stats["optimizer_steps"] == 4 and stats["approx_kl"] != 0.0
    assert all(math.isfinite(stats[k]) for k in ("pg_loss", "grad_norm", "clip_frac"))
    assert any(not torch.equal(before[k], v) for k, v in learner.policy_state().items())


def with_rollout_logprobs(
    learner: Learner, batch: list[Experience], shift=lambda i, j: 0.0
) -> list[Experience]:
    """The batch with rollout log-probs = the learner's minus ``shift(i, j)``: token j of response i then has
    the rollout/learner ratio exp(shift(i, j))."""
    rows = learner.logprobs([e.prompt_ids for e in batch], [e.response_ids for e in batch])
    return [
        dataclasses.replace(e, rollout_logprobs=tuple(lp - shift(i, j) for j, lp in enumerate(row)))
        for i, (e, row) in enumerate(zip(batch, rows, strict=True))
    ]


CORRECTED = {
    "rollout_is_cap": 2.0,
    "rollout_mask": "token",
    "rollout_mask_low": 0.5,
    "rollout_mask_high": 2.0,
}


def test_rollout_correction_changes_nothing_when_engine_and_learner_agree(model_dir):
    plain, corrected = make_learner(model_dir), make_learner(model_dir, **CORRECTED)
    assert plain.old_logprobs_in_training(1) and not corrected.old_logprobs_in_training(1)
    batch = with_rollout_logprobs(plain, make_batch())
    stats_plain, stats = plain.update(batch), corrected.update(batch)
    assert_same_parameters(plain.policy_state(), corrected.policy_state(), atol=1e-6)
    for key in ("rollout_is_ratio_mean", "rollout_is_ratio_min", "rollout_is_ratio_max"):
        assert stats[key] == pytest.approx(1.0, abs=1e-5) and stats_plain[key] == pytest.approx(1.0, abs=1e-5)
    assert stats["rollout_is_clipped_frac"] == 0.0 and stats["rollout_is_masked_frac"] == 0.0


def test_truncated_is_caps_every_tokens_weight(model_dir):
    """Every ratio 3, cap 2: each token's policy-gradient term is doubled, so are the loss and the gradient
    (no entropy or KL terms here); the log reports all tokens clipped."""
    plain, capped = make_learner(model_dir), make_learner(model_dir, rollout_is_cap=2.0)
    batch = with_rollout_logprobs(plain, make_batch(), shift=lambda i, j: math.log(3.0))
    stats_plain, stats = plain.update(batch), capped.update(batch)
    assert stats["grad_norm"] == pytest.approx(2 * stats_plain["grad_norm"], rel=1e-5)
    assert stats["pg_loss"] == pytest.approx(2 * stats_plain["pg_loss"], rel=1e-5)
    assert stats["rollout_is_clipped_frac"] == 1.0 and stats_plain["rollout_is_clipped_frac"] == 0.0
    assert stats["rollout_is_ratio_min"] == pytest.approx(3.0, rel=1e-5)
    assert stats["rollout_is_ratio_max"] == pytest.approx(3.0, rel=1e-5)


def test_masked_is_drops_a_response_as_overlong_filtering_does(model_dir):
    """Response 2's ratios are all 3 (outside [0.5, 2]): geometric MIS drops it from the loss, which is the
    update overlong filtering gives when response 2 is the truncated one (the rest of the batch agrees)."""
    probe = make_learner(model_dir)
    batch = [dataclasses.replace(e, truncated=False) for e in make_batch()]
    shifted = with_rollout_logprobs(probe, batch, shift=lambda i, j: math.log(3.0) if i == 2 else 0.0)
    exact = with_rollout_logprobs(probe, batch)
    exact[2] = dataclasses.replace(exact[2], truncated=True)
    masked = make_learner(model_dir, rollout_mask="geometric")
    filtered = make_learner(model_dir, overlong_filter=True)
    stats_masked, stats_filtered = masked.update(shifted), filtered.update(exact)
    assert_same_parameters(masked.policy_state(), filtered.policy_state(), atol=1e-6)
    assert stats_masked["grad_norm"] == pytest.approx(stats_filtered["grad_norm"], rel=1e-5)
    tokens = sum(len(e.response_ids) for e in batch)
    assert stats_masked["rollout_is_masked_frac"] == pytest.approx(len(batch[2].response_ids) / tokens)
    assert stats_filtered["overlong_filtered_frac"] == pytest.approx(1 / len(batch))
    assert stats_masked["rollout_is_ratio_max"] == pytest.approx(3.0, rel=1e-5)
    unfiltered = make_learner(model_dir)
    unfiltered.update(exact)
    with pytest.raises(AssertionError):
        assert_same_parameters(unfiltered.policy_state(), filtered.policy_state(), atol=1e-6)


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean", "token_sum_norm"])
def test_every_response_truncated_and_filtered_leaves_the_policy_alone(model_dir, loss_agg):
    """No token and no sequence left in the loss: a zero gradient, not 0/0 (an untrained model's responses
    often all hit the cap)."""
    learner = make_learner(model_dir, overlong_filter=True, loss_agg=loss_agg)
    before = learner.policy_state()
    stats = learner.update([dataclasses.replace(e, truncated=True) for e in make_batch()])
    assert stats["grad_norm"] == 0.0 and stats["overlong_filtered_frac"] == 1.0
    assert_same_parameters(before, learner.policy_state())


def test_rollout_correction_needs_the_engines_logprobs(model_dir):
    with pytest.raises(
        ValueError, match=r"rollout_is_cap / rollout_mask need .* 8 of 8 responses came without"
    ):
        make_learner(model_dir, rollout_is_cap=2.0).update(make_batch())


def test_soft_overlong_punishment_lowers_the_reward_of_long_responses(model_dir):
    # cap 8 tokens, buffer 4: a response of L tokens loses max(L - 4, 0) / 4 (all 1 at 8 tokens)
    learner = make_learner(model_dir, overlong_buffer=4)
    batch = make_batch()
    prepared = learner.prepare(batch)
    expected = [e.reward - max(len(e.response_ids) - 4, 0) / 4 for e in batch]
    assert prepared.rewards.sum(-1).tolist() == pytest.approx(expected)
    assert any(len(e.response_ids) > 4 for e in batch)
    stats = learner.update(batch)
    assert stats["overlong_penalty_mean"] == pytest.approx(
        sum(expected) / 8 - sum(e.reward for e in batch) / 8
    )


@pytest.mark.parametrize("kl_in_reward", [True, False])
@pytest.mark.parametrize("estimator", ["k2", "low_var_kl"])
def test_new_kl_estimators_in_reward_and_in_loss(model_dir, estimator, kl_in_reward):
    learner = make_learner(model_dir, kl_coef=0.1, kl_estimator=estimator, kl_in_reward=kl_in_reward)
    batch = make_batch()
    assert learner.update(batch)["kl"] == 0.0  # policy == reference before the first step
    assert learner.update(batch)["kl"] > 0.0  # both estimators are non-negative, and 0 only at equality


# ---- data parallel ------------------------------------------------------------------------------------
DP_CONFIGS = {
    "gae": {"advantage": "gae", "kl_coef": 0.01, "micro_batch_size": 3, "entropy_coef": 0.01},
    "grpo": {
        "advantage": "grpo",
        "kl_coef": 0.01,
        "kl_in_reward": False,
        "kl_estimator": "k3",
        "loss_agg": "seq_mean",
    },
    "corrected": {
        "advantage": "reinforce_plus_plus_baseline",
        "policy_loss": "gspo",
        "loss_agg": "seq_mean",
        "kl_coef": 0.0,
        "rollout_is_cap": 1.05,
        "rollout_mask": "token",
        "rollout_mask_low": 0.9,
        "rollout_mask_high": 1.1,
        "overlong_filter": True,
        "overlong_buffer": 4,
    },
}
ROLLOUT_LOGPROB = -5.7
"""About the tiny model's log-prob of a random token (log 300): ratios near 1 on both sides."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(
    rank: int, world_size: int, url: str, model_dir: str, config: dict, strategy: str, groups: int, out: str
) -> None:
    torch.set_num_threads(1)
    batch = make_batch(num_groups=groups, group_size=2, rollout_logprob=ROLLOUT_LOGPROB)
    learner = Learner(
        model_dir,
        AlgorithmConfig(**config),
        TrainerConfig(lr=1e-3, critic_lr=1e-3, strategy=strategy),
        MAX_NEW_TOKENS,
        seed=0,
        rank=rank,
        world_size=world_size,
        dist_url=url,
    )
    stats = learner.update(shard_by_group(batch, world_size)[rank])
    policy = learner.policy_state()  # under fsdp every rank takes part in the gather
    if rank == 0:
        torch.save({"policy": policy, "stats": stats}, out)
    learner.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "strategy", "ranks", "groups"),
    [
        ("gae", "ddp", 2, 4),
        ("grpo", "ddp", 2, 4),
        ("gae", "fsdp", 2, 4),
        ("grpo", "fsdp", 2, 4),
        ("gae", "fsdp", 1, 4),
        ("gae", "fsdp", 2, 1),  # one group for two ranks: rank 0 runs empty lockstep slots
        ("corrected", "ddp", 2, 4),
    ],
)
def test_data_parallel_ranks_equal_one_rank(model_dir, tmp_path, name, strategy, ranks, groups):
    """ddp and FSDP2 over gloo give the update one plain learner computes on the whole batch."""
    config = DP_CONFIGS[name]
    batch = make_batch(num_groups=groups, group_size=2, rollout_logprob=ROLLOUT_LOGPROB)
    single = Learner(
        model_dir, AlgorithmConfig(**config), TrainerConfig(lr=1e-3, critic_lr=1e-3), MAX_NEW_TOKENS, seed=0
    )
    single_stats = single.update(batch)

    out = str(tmp_path / "rank0.pt")
    url = f"tcp://127.0.0.1:{_free_port()}"
    args = (ranks, url, str(model_dir), config, strategy, groups, out)
    mp.spawn(_rank_main, args=args, nprocs=ranks, join=True)
    result = torch.load(out, weights_only=True)
    assert_same_parameters(single.policy_state(), result["policy"], atol=1e-5)
    for key in (
        "pg_loss",
        "vf_loss",
        "kl",
        "entropy",
        "grad_norm",
        "critic_grad_norm",
        "adv_mean",
        "adv_std",
        "rollout_is_ratio_mean",
        "rollout_is_ratio_min",
        "rollout_is_ratio_max",
        "rollout_is_clipped_frac",
        "rollout_is_masked_frac",
        "overlong_filtered_frac",
        "overlong_penalty_mean",
    ):
        assert result["stats"][key] == pytest.approx(single_stats[key], rel=1e-5, abs=1e-7), key
    if name == "corrected":  # the correction acted, on some tokens and not all
        assert (
            0 < single_stats["rollout_is_masked_frac"] < 1 and 0 < single_stats["rollout_is_clipped_frac"] < 1
        )
        assert 0 < single_stats["overlong_filtered_frac"] < 1
    assert result["stats"]["num_response_tokens"] == single_stats["num_response_tokens"]


def _bf16_offload_main(rank: int, url: str, model_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    trainer = TrainerConfig(lr=1e-3, strategy="fsdp", cpu_offload=True)
    learner = Learner(
        model_dir, AlgorithmConfig(kl_coef=0.01), trainer, MAX_NEW_TOKENS, 0, rank, 2, url, dtype="bfloat16"
    )
    masters = {p.dtype for p in learner.policy.parameters()}
    stats = learner.update(shard_by_group(make_batch(), 2)[rank])
    policy = learner.policy_state()
    if rank == 0:
        torch.save({"masters": [str(d) for d in masters], "policy": policy, "stats": stats}, out)
    learner.close()


@pytest.mark.slow
def test_fsdp_bfloat16_with_cpu_offload_tracks_the_float32_update(model_dir, tmp_path):
    """The 40 GB recipes' settings on CPU: bfloat16 compute over float32 sharded masters, offloaded; the
    update follows the plain float32 learner's (Adam steps of lr 1e-3, within bfloat16 rounding)."""
    single = Learner(model_dir, AlgorithmConfig(kl_coef=0.01), TrainerConfig(lr=1e-3), MAX_NEW_TOKENS, seed=0)
    single_stats = single.update(make_batch())
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_bf16_offload_main, args=(f"tcp://127.0.0.1:{_free_port()}", str(model_dir), out), nprocs=2)
    result = torch.load(out, weights_only=True)
    assert result["masters"] == ["torch.float32"]
    assert {t.dtype for t in result["policy"].values()} == {torch.bfloat16}
    assert result["stats"]["pg_loss"] == pytest.approx(single_stats["pg_loss"], abs=0.05)
    for name, tensor in single.policy_state().items():
        torch.testing.assert_close(result["policy"][name].float(), tensor, rtol=0.02, atol=4e-3, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_learner_group_on_ray_matches_one_learner_and_resumes_exactly(model_dir, tmp_path, strategy):
    """Two ranks as Ray actors update like one learner; a fresh group loaded from their checkpoint (fsdp:
    per-rank optimizer and critic shards) continues exactly as the one learner does."""
    import ray

    config = AlgorithmConfig(**DP_CONFIGS["gae"])
    trainer = TrainerConfig(lr=1e-3, critic_lr=1e-3, num_learners=2, strategy=strategy)
    first, second = make_batch(num_groups=4, group_size=2), make_batch(num_groups=4, group_size=2, seed=1)
    single = Learner(model_dir, config, TrainerConfig(lr=1e-3, critic_lr=1e-3), MAX_NEW_TOKENS, seed=0)
    single.update(first)

    def group() -> LearnerGroup:
        return LearnerGroup(
            2, model_dir=model_dir, algorithm=config, trainer=trainer, max_new_tokens=MAX_NEW_TOKENS, seed=0
        )

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        before = group()
        stats = before.update(first)
        assert stats["num_sequences"] == len(first)
        assert_same_parameters(single.policy_state(), before.policy_state(), atol=1e-5)
        before.save(tmp_path / "ckpt")
        before.shutdown()
        assert (tmp_path / "ckpt" / "sharded").is_dir() == (strategy == "fsdp")

        resumed = group()
        resumed.load(tmp_path / "ckpt")
        assert_same_parameters(single.policy_state(), resumed.policy_state(), atol=1e-5)
        single_stats, resumed_stats = single.update(second), resumed.update(second)
        assert_same_parameters(single.policy_state(), resumed.policy_state(), atol=1e-5)
        assert resumed_stats["vf_loss"] == pytest.approx(single_stats["vf_loss"], rel=1e-5)
        probe = [[5, 6, 7]], [[9, 10]]
        assert resumed.logprobs(*probe)[0] == pytest.approx(single.logprobs(*probe)[0], abs=1e-5)
        resumed.shutdown()
    finally:
        ray.shutdown()
