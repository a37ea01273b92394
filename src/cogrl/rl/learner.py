"""The learner: policy, frozen reference, critic and their optimizers; one PPO/GRPO update per RL step.

`Learner` is one data-parallel rank, a plain class (tests use it directly); `cogrl.rl.learner_group` runs one
per rank as Ray actors (OpenRLHF style). Each rank trains on whole groups of the batch; gradients are summed over ranks and
every normaliser (token and sequence counts, GAE whitening moments) is summed first, so N ranks compute
exactly the update one rank would compute on the whole batch. With ``trainer.strategy: ddp`` ranks hold
replicas and gradients are all-reduced after the backward passes; with ``fsdp`` (FSDP2) each decoder layer
is sharded across the ranks, gathered around its forward and reduce-scattered in its backward, so ranks
must run their forward passes in lockstep (`_lockstep` pads a rank's micro-batches with empty ones).

Precision: trainable weights, gradients and AdamW state are float32; with ``model.dtype: bfloat16`` the
forward and backward passes run under bfloat16 autocast and the frozen reference is held in bfloat16
(``model.dtype`` in cogrl.config says why never pure-bfloat16 weights). Log-probs come from
`cogrl.rl.forward` (response positions only, chunked LM head). Models are in train mode (so gradient
checkpointing works) with dropout switched off: an RL update must be a deterministic function of its batch.
Under ``model.lora`` the base is frozen in the compute dtype and only the adapters train (`cogrl.lora`).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor

from cogrl import lora as lora_files
from cogrl.config import AlgorithmConfig, LoraConfig, TrainerConfig
from cogrl.rl import algorithms as algo
from cogrl.rl.batch import Experience
from cogrl.rl.forward import PaddedBatch, ResponseLogprobs, pad_batch, response_hidden, response_mask_of

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
)
"""Copied verbatim from the model directory into every saved policy, so a checkpoint is a model dir."""
LEARNER_STATE = "learner_state.pt"
SHARDED_STATE = "sharded"
"""fsdp checkpoints: the optimizer and critic state as torch.distributed.checkpoint shards, one file per rank."""
EMPTY_SLOT = ((0,), (0,))
"""The one-token sequence an empty micro-batch slot runs (with zero weight) so FSDP ranks stay in lockstep."""


@dataclass
class PreparedBatch:
    """What an update trains on (``[B, R]`` each, 0 on padding); see `Learner.prepare`."""

    response_mask: torch.Tensor
    old_logprobs: torch.Tensor
    ref_logprobs: torch.Tensor | None
    values: torch.Tensor | None
    kl: torch.Tensor | None
    """Per-token KL(current policy || reference) with the configured estimator (None without reference)."""
    rewards: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    loss_mask: torch.Tensor
    """``response_mask`` less what the policy loss leaves out: truncated responses (``overlong_filter``) and
    tokens or responses outside the masked-IS band (``rollout_mask``)."""
    is_weights: torch.Tensor | None
    """Truncated importance-sampling weights of the rollout/learner mismatch (``rollout_is_cap``), or None."""
    rollout_logprobs: torch.Tensor
    """The rollout engine's log-probs (0 where a response came without them, see ``has_rollout_logprobs``)."""
    has_rollout_logprobs: torch.Tensor
    """``[B]`` bool: the response's rollout log-probs came back, one per token."""
    overlong_penalty: torch.Tensor | None
    """``[B]`` soft overlong punishment added to each score (``overlong_buffer``), or None."""
    old_logprobs_in_training: bool = False
    """``old_logprobs`` are filled by the (single) training pass, see `Learner.old_logprobs_in_training`."""

    def counted_sequences(self) -> torch.Tensor:
        """``[B]`` bool: the sequences a ``seq_mean`` loss divides by (those left with no loss token by the
        filters are out; an empty response counts, as it always has)."""
        return (self.loss_mask.sum(-1) > 0) | (self.response_mask.sum(-1) == 0)


class ValueModel(nn.Module):
    """The critic: a causal LM's transformer backbone plus a scalar head (the LM head is dropped).

    Initialised from the policy's weights, as in the paper; the head starts small and random
    (std 1/(hidden+1), OpenRLHF's choice) from its own seeded generator.
    """

    def __init__(self, causal_lm: nn.Module, seed: int) -> None:
        super().__init__()
        self.backbone = getattr(causal_lm, causal_lm.base_model_prefix)
        hidden = causal_lm.config.get_text_config().hidden_size
        self.head = nn.Linear(hidden, 1, bias=False)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(1, hidden, generator=generator) / (hidden + 1))

    def forward(self, batch: PaddedBatch) -> torch.Tensor:
        """``[B, R]`` values of the states before each response token (0 on padding)."""
        values = torch.zeros(batch.response_mask.shape, device=batch.response_mask.device)
        head = self.head(response_hidden(self.backbone, batch)).squeeze(-1).float()
        return values.masked_scatter(batch.response_mask.bool(), head)


# --------------------------------------------------------------------------------------------------------
# The learner
# --------------------------------------------------------------------------------------------------------
class Learner:
    """One data-parallel rank: policy (+ reference if kl_coef > 0, + critic for gae) and optimizers."""

    def __init__(
        self,
        model_dir: str | Path,
        algorithm: AlgorithmConfig,
        trainer: TrainerConfig,
        max_new_tokens: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        dist_url: str | None = None,
        dtype: str = "float32",
        lora: LoraConfig | None = None,
    ) -> None:
        """``dtype``: the compute dtype (``model.dtype``); also the dtype of the weights sent to rollout workers.
        ``lora``: train adapters on the frozen model (`cogrl.lora`); the reference is the policy with its
        adapters off, and `policy_state`, `save` and `load` deal in adapter tensors only."""
        from cogrl.models import load_causal_lm

        self.model_dir = Path(model_dir)
        self.lora = lora
        self.dtype = getattr(torch, dtype)
        self.algorithm = algorithm
        self.trainer = trainer
        self.loss_constant = algorithm.loss_agg_constant or float(max_new_tokens)
        self.max_new_tokens = max_new_tokens
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(
            f"cuda:{torch.cuda.current_device()}" if trainer.device == "cuda" else "cpu"
        )
        self.fsdp = trainer.strategy == "fsdp"
        if world_size > 1 or self.fsdp:
            if dist_url is None:
                raise ValueError("world_size > 1 or strategy fsdp needs dist_url (tcp://host:port)")
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, init_method=dist_url, rank=rank, world_size=world_size)
        torch.manual_seed(seed)

        self.policy = _trainable(self.model_dir, trainer, dtype, lora).to(self.device)
        self._policy = self._shard(ResponseLogprobs(self.policy, trainer.logits_chunk_tokens))
        self.optimizer = torch.optim.AdamW(
            _trained(self.policy), lr=trainer.lr, weight_decay=trainer.weight_decay
        )
        self.reference: nn.Module | None = None
        self.has_reference = algorithm.kl_coef > 0
        if self.has_reference and lora is None:
            self.reference = load_causal_lm(self.model_dir, dtype).to(self.device).requires_grad_(False)
            self._reference = self._shard(ResponseLogprobs(self.reference, trainer.logits_chunk_tokens))
        self.critic: ValueModel | None = None
        self.critic_optimizer: torch.optim.Optimizer | None = None
        if algo.ADVANTAGE_ESTIMATORS[algorithm.advantage].needs_critic:
            # Under LoRA the critic is a second frozen backbone with adapters of its own and a float32 head.
            critic = ValueModel(_trainable(self.model_dir, trainer, dtype, lora), seed).to(self.device)
            self.critic = self._shard(critic)
            self.critic_optimizer = torch.optim.AdamW(
                _trained(self.critic), lr=trainer.critic_lr, weight_decay=trainer.weight_decay
            )
        self.updates = 0

    def _autocast(self) -> torch.autocast:
        """Mixed precision: matmuls in the compute dtype, float32 weights (a no-op for float32)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def _shard(self, model: nn.Module) -> nn.Module:
        """fsdp: shard each decoder layer (the classes HF lists in `_no_split_modules`), then the rest as the
        root unit; gradients are summed over ranks like ddp's (the losses carry the global normalisers)."""
        if not self.fsdp:
            return model
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, fully_shard

        options: dict[str, Any] = {
            "mesh": init_device_mesh(self.device.type, (self.world_size,)),
            "mp_policy": MixedPrecisionPolicy(param_dtype=self.dtype, reduce_dtype=torch.float32),
        }
        if self.trainer.cpu_offload:
            options["offload_policy"] = CPUOffloadPolicy(pin_memory=self.device.type == "cuda")
        layers = {name for m in model.modules() for name in getattr(m, "_no_split_modules", None) or ()}
        for module in list(model.modules()):
            if type(module).__name__ in layers:
                fully_shard(module, **options)
        fully_shard(model, **options)
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(1.0)
                module.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no PREMUL_SUM)
        return model

    def _logprobs(self, model: nn.Module, batch: PaddedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``model``: ``self._policy`` or ``self._reference`` (the wrappers FSDP shards)."""
        with self._autocast():
            return model(batch)

    def _values(self, batch: PaddedBatch) -> torch.Tensor:
        assert self.critic is not None
        with self._autocast():
            return self.critic(batch)

    # ---- collectives (no-ops on one rank) ----
    def _all_reduce(self, tensor: torch.Tensor, op: dist.ReduceOp = dist.ReduceOp.SUM) -> torch.Tensor:
        """Sum (or ``op``) over ranks, on this rank's device (nccl reduces CUDA tensors only), returned where
        it was."""
        if self.world_size == 1:
            return tensor
        on_device = tensor.to(self.device)
        dist.all_reduce(on_device, op=op)
        return on_device.to(tensor.device)

    def _reduce_gradients(self, model: nn.Module) -> None:
        """Sum gradients over ranks (losses are already divided by global counts; fsdp has reduce-scattered
        them in the backward pass); missing grads are 0 so every rank, and a single rank, steps the same
        parameters."""
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if self.world_size > 1 and not self.fsdp:
            flat = torch.cat([p.grad.reshape(-1) for p in params])
            dist.all_reduce(flat)
            offset = 0
            for p in params:
                p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    # ---- the update ----
    def _micro_batches(self, experiences: Sequence[Experience], indices: Sequence[int]) -> list[list[int]]:
        """``indices`` cut into micro-batches: ``micro_batch_size`` consecutive sequences each, or packed by
        length under ``max_tokens_per_micro_batch``; under fsdp padded with empty ones (`_lockstep`)."""
        budget = self.algorithm.max_tokens_per_micro_batch
        if budget is None:
            size = self.algorithm.micro_batch_size
            return self._lockstep([list(indices[i : i + size]) for i in range(0, len(indices), size)])
        micro_batches: list[list[int]] = []
        for i in sorted(indices, key=lambda i: experiences[i].length):
            # ascending lengths: the sequence being added is the longest of its micro-batch
            if micro_batches and (len(micro_batches[-1]) + 1) * experiences[i].length <= budget:
                micro_batches[-1].append(i)
            else:
                micro_batches.append([i])
        return self._lockstep(micro_batches)

    def _lockstep(self, micro_batches: list[list[int]]) -> list[list[int]]:
        """fsdp: every rank runs as many forward passes as the busiest (each one gathers weights with all
        ranks), so a rank with fewer sequences gets empty slots (`EMPTY_SLOT`, zero weight)."""
        if not self.fsdp or self.world_size == 1:
            return micro_batches
        most = self._all_reduce(torch.tensor([len(micro_batches)]), op=dist.ReduceOp.MAX).item()
        return micro_batches + [[] for _ in range(most - len(micro_batches))]

    def _pad(self, experiences: Sequence[Experience], indices: list[int]) -> PaddedBatch:
        pairs = [(experiences[i].prompt_ids, experiences[i].response_ids) for i in indices]
        return pad_batch(pairs or [EMPTY_SLOT], self.device)

    @torch.no_grad()
    def _score_batch(
        self, experiences: Sequence[Experience], indices: list[int], width: int, with_policy: bool
    ) -> dict[str, torch.Tensor]:
        """Old log-probs (current policy), reference log-probs and values of a micro-batch, ``[b, width]``
        (nothing for an empty lockstep slot)."""
        batch = self._pad(experiences, indices)
        out = {}
        if with_policy:
            out["old_logprobs"] = self._logprobs(self._policy, batch)[0]
        if self.reference is not None:
            out["ref_logprobs"] = self._logprobs(self._reference, batch)[0]
        elif self.has_reference:  # LoRA: the reference is the frozen base, the policy with adapters off
            with lora_files.adapters_disabled(self.policy):
                out["ref_logprobs"] = self._logprobs(self._policy, batch)[0]
        if self.critic is not None:
            out["values"] = self._values(batch)
        if not indices:
            return {}
        mask = nn.functional.pad(batch.response_mask, (0, width - batch.response_mask.shape[1]))
        return {k: nn.functional.pad(v, (0, width - v.shape[1])) * mask for k, v in out.items()}

    @torch.no_grad()
    def prepare(
        self, experiences: Sequence[Experience], old_logprobs_in_training: bool = False
    ) -> PreparedBatch:
        """Everything the update trains on, before any parameter moves: the current (= rollout) policy's
        log-probs, the reference's, the critic's values, per-token rewards, advantages and returns.

        ``old_logprobs_in_training``: skip the policy forward here; the single training pass fills
        ``old_logprobs`` with its own detached log-probs (valid only when nothing here needs them).
        """
        a = self.algorithm
        n = len(experiences)
        response_mask = response_mask_of([e.response_ids for e in experiences], self.device)
        width = response_mask.shape[1]
        scores = torch.tensor([e.reward for e in experiences], dtype=torch.float32, device=self.device)
        penalty = None
        if a.overlong_buffer is not None:
            lengths = response_mask.sum(-1)
            penalty = algo.overlong_penalty(
                lengths, self.max_new_tokens, a.overlong_buffer, a.overlong_penalty
            )
            scores = scores + penalty
        rollout_logprobs, has_rollout_logprobs = _rollout_logprobs(experiences, width, self.device)
        group = torch.tensor([e.group for e in experiences], dtype=torch.long, device=self.device)

        scored = {
            key: torch.zeros(n, width, device=self.device)
            for key, wanted in (
                ("old_logprobs", True),
                ("ref_logprobs", self.has_reference),
                ("values", self.critic is not None),
            )
            if wanted
        }
        for indices in self._micro_batches(experiences, range(n)):
            for key, value in self._score_batch(
                experiences, indices, width, not old_logprobs_in_training
            ).items():
                scored[key][indices] = value
        old_logprobs, ref_logprobs, values = (
            scored.get(k) for k in ("old_logprobs", "ref_logprobs", "values")
        )

        kl = algo.kl_penalty(old_logprobs, ref_logprobs, a.kl_estimator) if ref_logprobs is not None else None
        rewards = algo.token_rewards(scores, response_mask, kl if a.kl_in_reward else None, a.kl_coef)
        estimator = algo.ADVANTAGE_ESTIMATORS[a.advantage]
        advantages, returns = estimator.fn(
            rewards, response_mask, group=group, values=values, gamma=a.gamma, lam=a.lam
        )
        if estimator.whitened and a.whiten_advantages:
            mean, var = algo.moments_to_mean_var(
                self._all_reduce(algo.masked_moments(advantages, response_mask))
            )
            advantages = algo.masked_whiten(advantages, response_mask, mean, var)

        loss_mask = response_mask
        if a.overlong_filter:
            truncated = torch.tensor([e.truncated for e in experiences], dtype=torch.bool, device=self.device)
            loss_mask = loss_mask * ~truncated[:, None]
        is_weights = None
        if self._corrects_rollout():
            if not bool(has_rollout_logprobs.all()):
                missing = int((~has_rollout_logprobs).sum())
                raise ValueError(
                    "algorithm.rollout_is_cap / rollout_mask need the rollout engine's log-prob of every "
                    f"response token; {missing} of {n} responses came without them"
                )
            log_ratio = algo.rollout_log_ratio(old_logprobs, rollout_logprobs, response_mask)
            if a.rollout_is_cap is not None:
                is_weights = algo.truncated_is_weights(log_ratio, a.rollout_is_cap) * response_mask
            loss_mask = loss_mask * algo.masked_is_keep(
                log_ratio,
                response_mask,
                low=a.rollout_mask_low,
                high=a.rollout_mask_high,
                level=a.rollout_mask,
            )
        return PreparedBatch(
            response_mask=response_mask,
            old_logprobs=old_logprobs,
            ref_logprobs=ref_logprobs,
            values=values,
            kl=kl,
            rewards=rewards,
            advantages=advantages,
            returns=returns,
            loss_mask=loss_mask,
            is_weights=is_weights,
            rollout_logprobs=rollout_logprobs,
            has_rollout_logprobs=has_rollout_logprobs,
            overlong_penalty=penalty,
            old_logprobs_in_training=old_logprobs_in_training,
        )

    def _corrects_rollout(self) -> bool:
        """Whether the loss weighs or masks tokens by the rollout/learner ratio (TIS or MIS)."""
        return self.algorithm.rollout_is_cap is not None or self.algorithm.rollout_mask != "off"

    def update(self, experiences: Sequence[Experience]) -> dict[str, float]:
        """One RL step on this rank's share of the batch (whole groups); returns global statistics."""
        a = self.algorithm
        start = time.perf_counter()
        n = len(experiences)
        num_tokens = float(sum(len(e.response_ids) for e in experiences))
        totals = self._all_reduce(torch.tensor([float(n), num_tokens], dtype=torch.float64))
        minis = _mini_batches(n, totals[0].item(), a.mini_batch_size)
        critic_minis = _mini_batches(n, totals[0].item(), a.critic_mini_batch_size or a.mini_batch_size)
        prepared = self.prepare(experiences, self.old_logprobs_in_training(len(minis)))
        response_mask, values, kl, advantages = (
            prepared.response_mask,
            prepared.values,
            prepared.kl,
            prepared.advantages,
        )
        t_prepare = time.perf_counter()

        # ppo_epochs passes over mini-batches (one optimizer step each) made of micro-batches; the critic
        # (its own parameters, optimizer and lr) takes its own mini-batches (algorithm.critic_mini_batch_size)
        acc = torch.zeros(len(_ACC_KEYS), dtype=torch.float64)
        grad_norms: list[float] = []
        critic_grad_norms: list[float] = []
        counted = prepared.counted_sequences()
        for _ in range(a.ppo_epochs):
            for mini in minis:
                norm = self._normalisers(mini, prepared.loss_mask, counted)
                self.optimizer.zero_grad(set_to_none=True)
                for indices in self._micro_batches(experiences, mini):
                    acc += self._policy_micro_batch(experiences, indices, norm, prepared)
                grad_norms.append(self._step(self.policy, self.optimizer))
            for mini in critic_minis if self.critic is not None else []:
                norm = self._normalisers(mini, response_mask)
                self.critic_optimizer.zero_grad(set_to_none=True)
                for indices in self._micro_batches(experiences, mini):
                    acc += self._critic_micro_batch(experiences, indices, norm, prepared)
                critic_grad_norms.append(self._step(self.critic, self.critic_optimizer))
        self.updates += 1
        t_train = time.perf_counter()

        # statistics over all ranks
        kl_sum = (kl * response_mask).sum().item() if kl is not None else 0.0
        ratio = self._rollout_ratio_stats(prepared)
        batch_stats = torch.tensor(
            [
                kl_sum,
                ratio["drift"],
                (advantages * response_mask).sum().item(),
                (advantages**2 * response_mask).sum().item(),
                (values * response_mask).sum().item() if values is not None else 0.0,
                float(sum(len(e.prompt_ids) + len(e.response_ids) for e in experiences)),
                ratio["tokens"],
                ratio["sum"],
                ratio["clipped"],
                ratio["masked"],
                float(sum(e.truncated for e in experiences)) if a.overlong_filter else 0.0,
                prepared.overlong_penalty.sum().item() if prepared.overlong_penalty is not None else 0.0,
            ],
            dtype=torch.float64,
        )
        acc = self._all_reduce(acc)
        batch_stats = self._all_reduce(batch_stats)
        ratio_min = self._all_reduce(torch.tensor([ratio["min"]], dtype=torch.float64), dist.ReduceOp.MIN)
        ratio_max = self._all_reduce(torch.tensor([ratio["max"]], dtype=torch.float64), dist.ReduceOp.MAX)
        sequences = max(totals[0].item(), 1.0)
        steps = len(minis) * a.ppo_epochs
        critic_steps = max(len(critic_grad_norms), 1)
        critic_tokens = max(acc[_ACC_KEYS.index("critic_tokens")].item(), 1.0)
        tokens = totals[1].item()
        trained_tokens = max(acc[_ACC_KEYS.index("tokens")].item(), 1.0)
        adv_mean = batch_stats[2].item() / max(tokens, 1.0)
        stats = {
            "pg_loss": acc[_ACC_KEYS.index("pg_loss")].item() / steps,
            "vf_loss": acc[_ACC_KEYS.index("vf_loss")].item() / critic_steps,
            "kl": batch_stats[0].item() / max(tokens, 1.0),
            "entropy": acc[_ACC_KEYS.index("entropy")].item() / trained_tokens,
            "clip_frac": acc[_ACC_KEYS.index("clip_frac")].item() / trained_tokens,
            "approx_kl": acc[_ACC_KEYS.index("approx_kl")].item() / trained_tokens,
            "vf_clip_frac": acc[_ACC_KEYS.index("vf_clip_frac")].item() / critic_tokens,
            "grad_norm": sum(grad_norms) / len(grad_norms),
            "critic_grad_norm": sum(critic_grad_norms) / len(critic_grad_norms) if critic_grad_norms else 0.0,
            "adv_mean": adv_mean,
            "adv_std": math.sqrt(max(batch_stats[3].item() / max(tokens, 1.0) - adv_mean**2, 0.0)),
            "value_mean": batch_stats[4].item() / max(tokens, 1.0),
            "rollout_logprob_drift": batch_stats[1].item() / max(tokens, 1.0),
            "overlong_filtered_frac": batch_stats[10].item() / sequences,
            "overlong_penalty_mean": batch_stats[11].item() / sequences,
            "num_sequences": totals[0].item(),
            "num_response_tokens": tokens,
            "optimizer_steps": float(steps),
            "critic_optimizer_steps": float(len(critic_grad_norms)),
            "tokens_per_s": batch_stats[5].item() * a.ppo_epochs / max(t_train - start, 1e-9),
            "time/prepare": t_prepare - start,
            "time/train": t_train - t_prepare,
            "time/total": time.perf_counter() - start,
        }
        if (ratio_tokens := batch_stats[6].item()) > 0:
            stats |= {
                "rollout_is_ratio_mean": batch_stats[7].item() / ratio_tokens,
                "rollout_is_ratio_min": ratio_min.item(),
                "rollout_is_ratio_max": ratio_max.item(),
                "rollout_is_clipped_frac": batch_stats[8].item() / ratio_tokens,
                "rollout_is_masked_frac": batch_stats[9].item() / ratio_tokens,
            }
        return stats

    def _rollout_ratio_stats(self, prepared: PreparedBatch) -> dict[str, float]:
        """This rank's share of the rollout/learner ratio pi_learner_old / pi_rollout over the tokens whose
        rollout log-probs came back: count, sum, min, max (+-inf when none), tokens above the TIS cap,
        tokens the MIS band drops, and the drift sum |log-ratio| (a weight-sync and numerics monitor)."""
        a = self.algorithm
        mask = prepared.response_mask * prepared.has_rollout_logprobs[:, None]
        log_ratio = algo.rollout_log_ratio(prepared.old_logprobs, prepared.rollout_logprobs, mask)
        ratio = torch.exp(log_ratio)
        valid = mask.bool()
        kept = algo.masked_is_keep(
            log_ratio, mask, low=a.rollout_mask_low, high=a.rollout_mask_high, level=a.rollout_mask
        )
        cap = a.rollout_is_cap
        return {
            "tokens": mask.sum().item(),
            "sum": (ratio * mask).sum().item(),
            "min": ratio[valid].min().item() if valid.any() else math.inf,
            "max": ratio[valid].max().item() if valid.any() else -math.inf,
            "clipped": ((ratio > cap) * mask).sum().item() if cap is not None else 0.0,
            "masked": (mask - kept).sum().item(),
            "drift": log_ratio.abs().sum().item(),
        }

    def old_logprobs_in_training(self, num_mini_batches: int) -> bool:
        """Whether the update can skip the separate old-log-prob forward (as TRL does): with one optimizer
        step the old policy *is* the policy of the training pass, so its detached log-probs are the old ones
        (ratio exactly 1). Not when the in-reward KL needs them before advantages, nor for the KL stat, nor
        when the rollout/learner ratio weighs or masks the loss."""
        return (
            self.algorithm.ppo_epochs == 1
            and num_mini_batches == 1
            and not self.has_reference
            and not self._corrects_rollout()
        )

    def _normalisers(
        self, mini: list[int], mask: torch.Tensor, counted: torch.Tensor | None = None
    ) -> dict[str, float]:
        """A mini-batch's global sequence and token counts: every rank divides its losses by the same.
        ``counted``: which sequences a sequence mean divides by (default all)."""
        seqs = float(len(mini)) if counted is None else counted[mini].sum().item()
        counts = self._all_reduce(torch.tensor([seqs, mask[mini].sum().item()], dtype=torch.float64))
        return {"num_seqs": max(counts[0].item(), 1.0), "num_tokens": max(counts[1].item(), 1.0)}

    def _policy_micro_batch(
        self,
        experiences: Sequence[Experience],
        indices: list[int],
        norm: dict[str, float],
        prepared: PreparedBatch,
    ) -> torch.Tensor:
        """Forward + backward of the policy loss on one micro-batch; returns its contributions to the
        accumulated statistics."""
        a = self.algorithm
        batch = self._pad(experiences, indices)
        logprobs, entropy = self._logprobs(self._policy, batch)
        if not indices:  # an empty lockstep slot: join the collectives of forward and backward, add nothing
            (0.0 * (logprobs.sum() + entropy.sum())).backward()
            return torch.zeros(len(_ACC_KEYS), dtype=torch.float64)
        r = batch.response_ids.shape[1]
        if prepared.old_logprobs_in_training:
            prepared.old_logprobs[indices, :r] = logprobs.detach() * batch.response_mask
        mask = prepared.loss_mask[indices, :r]
        agg = {"mode": a.loss_agg, "constant": self.loss_constant, **norm}
        pg_loss, clip_frac, approx_kl = algo.POLICY_LOSSES[a.policy_loss].fn(
            logprobs,
            prepared.old_logprobs[indices, :r],
            prepared.advantages[indices, :r],
            mask,
            clip_low=a.clip_low,
            clip_high=a.clip_high,
            weights=None if prepared.is_weights is None else prepared.is_weights[indices, :r],
            **agg,
        )
        entropy_loss = algo.aggregate_loss(entropy, mask, **agg)
        loss = pg_loss - a.entropy_coef * entropy_loss
        if prepared.ref_logprobs is not None and not a.kl_in_reward:
            kl = algo.kl_penalty(logprobs, prepared.ref_logprobs[indices, :r], a.kl_estimator)
            loss = loss + a.kl_coef * algo.aggregate_loss(kl, mask, **agg)
        loss.backward()
        tokens = mask.sum().item()
        return _contributions(
            pg_loss=pg_loss.item(),
            entropy=(entropy.detach() * mask).sum().item(),
            clip_frac=clip_frac.item() * tokens,
            approx_kl=approx_kl.item() * tokens,
            tokens=tokens,
        )

    def _critic_micro_batch(
        self,
        experiences: Sequence[Experience],
        indices: list[int],
        norm: dict[str, float],
        prepared: PreparedBatch,
    ) -> torch.Tensor:
        """Forward + backward of the clipped value loss on one micro-batch (see `_policy_micro_batch`)."""
        a = self.algorithm
        batch = self._pad(experiences, indices)
        values = self._values(batch)
        if not indices:
            (0.0 * values.sum()).backward()
            return torch.zeros(len(_ACC_KEYS), dtype=torch.float64)
        assert prepared.values is not None
        r = batch.response_ids.shape[1]
        mask = batch.response_mask
        vf_loss, vf_clip_frac = algo.clipped_value_loss(
            values,
            prepared.values[indices, :r],
            prepared.returns[indices, :r],
            mask,
            clip=a.value_clip,
            mode=a.loss_agg,
            constant=self.loss_constant,
            **norm,
        )
        vf_loss.backward()
        tokens = mask.sum().item()
        return _contributions(
            vf_loss=vf_loss.item(), vf_clip_frac=vf_clip_frac.item() * tokens, critic_tokens=tokens
        )

    def _step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        self._reduce_gradients(model)
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), self.trainer.grad_clip)
        optimizer.step()
        return (grad_norm.full_tensor() if isinstance(grad_norm, DTensor) else grad_norm).item()

    # ---- weights, evaluation, checkpoints ----
    def policy_state(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """The policy's full weights as CPU tensors under their Hugging Face names (under LoRA: the adapter
        tensors only, under PEFT's file names), on rank 0 (other ranks get ``{}``; under fsdp every rank
        must call, to gather the shards). ``dtype`` defaults to the rollout dtype (for weight sync: bfloat16
        halves the bytes moved)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        dtype = dtype or self.dtype
        if self.fsdp:
            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            full = get_model_state_dict(self.policy, options=options)
        else:
            full = self.policy.state_dict() if self.rank == 0 else {}
        if self.lora is not None:
            full = lora_files.adapter_tensors(full)
        return {name: tensor.detach().to("cpu", dtype=dtype, copy=True) for name, tensor in full.items()}

    @torch.no_grad()
    def logprobs(
        self, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]]
    ) -> list[list[float]]:
        """The policy's log-probability of every response token (temperature 1); under fsdp every rank must
        call with the same arguments."""
        batch = pad_batch(list(zip(prompt_ids, response_ids, strict=True)), self.device)
        logprobs = self._logprobs(self._policy, batch)[0]
        return [row[: len(r)].tolist() for row, r in zip(logprobs.cpu(), response_ids, strict=True)]

    def save(self, directory: str | Path) -> None:
        """Write the policy as a Hugging Face model dir (float32 masters, + the tokenizer; under LoRA an adapter
        dir naming the base, `cogrl.lora`) and the rest of the training state. Every rank calls it (a shared filesystem across nodes): rank 0 writes the model and
        ``learner_state.pt``; under fsdp each rank also writes its shard of the optimizer and critic state
        (torch.distributed.checkpoint, ``sharded/``), so no rank ever holds all of it.

        The reference model is not saved: it is the initial policy, rebuilt from ``model_dir`` when a fresh
        learner is constructed before ``load``.
        """
        directory = Path(directory)
        policy = self.policy_state(torch.float32)
        state: dict[str, Any] = {"updates": self.updates, "cpu_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.fsdp:
            import torch.distributed.checkpoint as dcp

            dcp.save(self._sharded_state(), checkpoint_id=directory / SHARDED_STATE)
        else:
            state["optimizer"] = self.optimizer.state_dict()
            if self.critic is not None and self.critic_optimizer is not None:
                state["critic"] = self.critic.state_dict()
                state["critic_optimizer"] = self.critic_optimizer.state_dict()
        if self.rank != 0:
            return
        directory.mkdir(parents=True, exist_ok=True)
        if self.lora is not None:
            lora_files.save_adapter(directory, policy, self.lora, self.model_dir)
        else:
            self.policy.save_pretrained(directory, state_dict=policy)
        for name in TOKENIZER_FILES:
            if (self.model_dir / name).is_file():
                shutil.copyfile(self.model_dir / name, directory / name)
        torch.save(state, directory / LEARNER_STATE)

    def _sharded_state(self) -> dict[str, Any]:
        """fsdp: this rank's shards of the optimizer state (and the critic's weights and optimizer state)."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

        state = {"optimizer": get_optimizer_state_dict(self.policy, self.optimizer)}
        if self.critic is not None and self.critic_optimizer is not None:
            state["critic"] = get_model_state_dict(self.critic)
            state["critic_optimizer"] = get_optimizer_state_dict(self.critic, self.critic_optimizer)
        return state

    def load(self, directory: str | Path) -> None:
        """Restore what ``save`` wrote (into a learner built from the same model_dir and configs)."""
        from cogrl.models import load_causal_lm

        directory = Path(directory)
        state = torch.load(directory / LEARNER_STATE, map_location=self.device, weights_only=True)
        if self.lora is not None:
            adapters = lora_files.read_adapter(directory)[1]
            lora_files.check_adapter_state(self.policy, adapters)
            policy = lora_files.module_names(adapters)
        else:
            policy = load_causal_lm(directory).state_dict()
        if self.fsdp:
            self._load_sharded(directory, policy)
        else:
            self.policy.load_state_dict(policy, strict=self.lora is None)
            self.optimizer.load_state_dict(state["optimizer"])
            if self.critic is not None and self.critic_optimizer is not None:
                if "critic" not in state:
                    raise ValueError(
                        f"{directory / LEARNER_STATE}: no critic state (saved without advantage: gae)"
                    )
                self.critic.load_state_dict(state["critic"])
                self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.updates = state["updates"]
        torch.set_rng_state(state["cpu_rng"].cpu())
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)

    def _load_sharded(self, directory: Path, policy: dict[str, torch.Tensor]) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, strict=self.lora is None)
        set_model_state_dict(self.policy, policy, options=options)
        sharded = self._sharded_state()
        if not (directory / SHARDED_STATE).is_dir():
            raise ValueError(f"{directory}: no {SHARDED_STATE}/ state (saved with trainer.strategy: ddp)")
        dcp.load(sharded, checkpoint_id=directory / SHARDED_STATE)
        set_optimizer_state_dict(self.policy, self.optimizer, sharded["optimizer"])
        if self.critic is not None and self.critic_optimizer is not None:
            set_model_state_dict(self.critic, sharded["critic"])
            set_optimizer_state_dict(self.critic, self.critic_optimizer, sharded["critic_optimizer"])

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def _trainable(model_dir: Path, trainer: TrainerConfig, dtype: str, lora: LoraConfig | None) -> nn.Module:
    """The model of ``model_dir`` in train mode (gradient checkpointing runs only in train mode) with every
    dropout off, so that training and scoring passes compute the same deterministic function. Its trained
    weights are float32; under LoRA those are the adapters, on a frozen base held in the compute dtype."""
    from cogrl.models import load_causal_lm

    model = load_causal_lm(model_dir, "float32" if lora is None else dtype)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
    if trainer.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora is not None:
        lora_files.add_adapters(model, lora, dropout=False)
    for param in _trained(model):
        param.data = param.data.float()
    return model.train()


def _trained(model: nn.Module) -> list[nn.Parameter]:
    return [param for param in model.parameters() if param.requires_grad]


def _rollout_logprobs(
    experiences: Sequence[Experience], width: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rollout engine's log-probs as ``[B, width]`` (0 on padding) and ``[B]`` whether each response has
    them (missing, or of another length than the response, counts as not)."""
    logprobs = torch.zeros(len(experiences), width)
    present = torch.zeros(len(experiences), dtype=torch.bool)
    for i, e in enumerate(experiences):
        if e.rollout_logprobs and len(e.rollout_logprobs) == len(e.response_ids):
            logprobs[i, : len(e.response_ids)] = torch.tensor(e.rollout_logprobs)
            present[i] = True
    return logprobs.to(device), present.to(device)


_ACC_KEYS = (
    "pg_loss",
    "vf_loss",
    "entropy",
    "clip_frac",
    "approx_kl",
    "vf_clip_frac",
    "tokens",
    "critic_tokens",
)
"""Per-micro-batch sums accumulated over an update, then summed over ranks."""


def _contributions(**values: float) -> torch.Tensor:
    """One micro-batch's statistics as a vector in `_ACC_KEYS` order (absent keys are 0)."""
    return torch.tensor([values.get(k, 0.0) for k in _ACC_KEYS], dtype=torch.float64)


def _mini_batches(n: int, total: float, size: int | None) -> list[list[int]]:
    """This rank's `n` sequences cut into as many consecutive mini-batches as every rank cuts (one optimizer
    step each): ceil(global sequences / size), or one when `size` is None."""
    count = 1 if size is None else math.ceil(total / size)
    return [chunk.tolist() for chunk in torch.tensor_split(torch.arange(n), count)]
