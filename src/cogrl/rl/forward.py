"""The learner's forward pass: log-probs and entropy of response tokens, without a full-vocabulary tensor.

A padded batch is ``prompt + response`` right-padded to the longest sequence; the hidden state that predicts
response token ``j`` sits at position ``len(prompt) + j - 1`` (``logit_index``), so response tensors are
``[batch, longest response]`` with a ``response_mask``.

Why not ``model(...).logits``: for Qwen2.5 (vocabulary 151,936) the logits of a ``[4, 1280]`` micro-batch are
3.1 GB in float32, and log-softmax and entropy each add a copy, all kept for backward. Here the backbone runs
once, only the hidden states of real response tokens are kept, and the LM head, log-softmax and entropy run in
chunks of ``chunk_tokens`` tokens under activation checkpointing: the backward pass recomputes one chunk's
logits at a time, so at most one ``[chunk_tokens, vocab]`` float32 block is alive. The result equals the plain
computation (tests/rl/test_forward.py checks values and gradients). It assumes what Llama, Qwen2, Mistral and
most decoder-only models do: logits = ``get_output_embeddings()(last_hidden_state)``, with no final scaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from cogrl.rl import algorithms as algo

DEFAULT_CHUNK_TOKENS = 1024
"""Response tokens per LM-head chunk: 1,024 x 151,936 x 4 B = 0.6 GB of float32 logits for Qwen2.5."""


@dataclass
class PaddedBatch:
    input_ids: torch.Tensor  # [B, L] prompt + response, right-padded with 0
    attention_mask: torch.Tensor  # [B, L]
    logit_index: torch.Tensor  # [B, R] position of the hidden state that predicts each response token
    response_ids: torch.Tensor  # [B, R]
    response_mask: torch.Tensor  # [B, R] float, 1 on real response tokens


def pad_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], device: torch.device) -> PaddedBatch:
    """Right-pad ``(prompt_ids, response_ids)`` pairs; each needs a non-empty prompt."""
    longest = max((len(p) + len(r) for p, r in pairs), default=0)
    longest_response = max((len(r) for _, r in pairs), default=0)
    input_ids = torch.zeros(len(pairs), longest, dtype=torch.long)
    attention_mask = torch.zeros(len(pairs), longest, dtype=torch.long)
    logit_index = torch.zeros(len(pairs), longest_response, dtype=torch.long)
    response_ids = torch.zeros(len(pairs), longest_response, dtype=torch.long)
    response_mask = torch.zeros(len(pairs), longest_response)
    for i, (prompt, response) in enumerate(pairs):
        if not prompt:
            raise ValueError(f"sequence {i}: empty prompt (the first response token needs a context)")
        n, r = len(prompt), len(response)
        input_ids[i, : n + r] = torch.tensor([*prompt, *response], dtype=torch.long)
        attention_mask[i, : n + r] = 1
        logit_index[i, :r] = torch.arange(n - 1, n + r - 1)
        response_ids[i, :r] = torch.tensor(response, dtype=torch.long)
        response_mask[i, :r] = 1
    return PaddedBatch(
        *(x.to(device) for x in (input_ids, attention_mask, logit_index, response_ids, response_mask))
    )


def response_mask_of(responses: Sequence[Sequence[int]], device: torch.device) -> torch.Tensor:
    """``[B, longest response]`` float mask, 1 on real response tokens."""
    longest = max((len(r) for r in responses), default=0)
    lengths = torch.tensor([len(r) for r in responses], dtype=torch.long)
    return (torch.arange(longest)[None, :] < lengths[:, None]).float().to(device)


def response_hidden(backbone: nn.Module, batch: PaddedBatch) -> torch.Tensor:
    """``[N, hidden]``: the backbone's last hidden states that predict the N real response tokens (row-major
    over ``batch.response_mask``). No KV cache: a training forward never decodes."""
    hidden = backbone(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
    ).last_hidden_state
    rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
    return hidden[rows, batch.logit_index][batch.response_mask.bool()]


def _head_chunk(
    hidden: torch.Tensor, tokens: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of ``tokens`` and entropy for one chunk of hidden states (float32 softmax)."""
    logits = F.linear(hidden, weight, bias).float()
    logprobs = logits.gather(-1, tokens[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return logprobs, algo.entropy_from_logits(logits)


def response_logprobs(
    model: nn.Module, batch: PaddedBatch, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logprobs, entropy)``, each ``[B, R]`` float32 and 0 on padding, of a causal LM's response tokens
    (temperature 1), computed chunk by chunk (see the module docstring)."""
    backbone = getattr(model, model.base_model_prefix)
    head = model.get_output_embeddings()
    hidden = response_hidden(backbone, batch)
    tokens = batch.response_ids[batch.response_mask.bool()]
    grad = torch.is_grad_enabled()
    parts = []
    for start in range(0, hidden.shape[0], chunk_tokens):
        args = (
            hidden[start : start + chunk_tokens],
            tokens[start : start + chunk_tokens],
            head.weight,
            head.bias,
        )
        parts.append(checkpoint(_head_chunk, *args, use_reentrant=False) if grad else _head_chunk(*args))
    logprobs = torch.zeros(batch.response_mask.shape, device=hidden.device)
    entropy = torch.zeros(batch.response_mask.shape, device=hidden.device)
    if parts:
        where = batch.response_mask.bool()
        logprobs = logprobs.masked_scatter(where, torch.cat([p[0] for p in parts]))
        entropy = entropy.masked_scatter(where, torch.cat([p[1] for p in parts]))
    return logprobs, entropy


class ResponseLogprobs(nn.Module):
    """A causal LM whose forward is `response_logprobs`. The learner shards this wrapper, not the LM: FSDP2
    gathers a module's weights around its forward, and the LM head is used here, outside the LM's forward."""

    def __init__(self, lm: nn.Module, chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> None:
        super().__init__()
        self.lm = lm
        self.chunk_tokens = chunk_tokens

    def forward(self, batch: PaddedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return response_logprobs(self.lm, batch, self.chunk_tokens)
