"""The records that flow between the RL roles: what rollout workers return, what the learner trains on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Generation:
    """One sampled completion, as a rollout worker returns it.

    ``logprobs`` are the sampling engine's log-probabilities of ``response_ids`` (at temperature 1 they are
    the policy's; the learner recomputes its own before the update, as veRL does).
    """

    prompt_index: int
    """Index of the prompt in the list passed to ``generate``."""
    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str
    finish_reason: str
    """``"stop"`` (EOS or a stop string) or ``"length"`` (hit max_new_tokens)."""


@dataclass(frozen=True)
class Experience:
    """One completion ready for the learner: tokens, its scalar reward, and the group it belongs to."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    rollout_logprobs: tuple[float, ...]
    reward: float
    """The environment's score of the whole response, placed on its last token."""
    group: int
    """Completions of the same prompt in one step share a group id (GRPO/RLOO baselines)."""
    truncated: bool = False
    """The response hit max_new_tokens (finish_reason "length"); DAPO's overlong filtering drops it from the loss."""

    @property
    def length(self) -> int:
        """Prompt plus response tokens: what a forward pass over it costs."""
        return len(self.prompt_ids) + len(self.response_ids)
