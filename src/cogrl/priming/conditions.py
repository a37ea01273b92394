"""Priming conditions: which behaviors a priming set's traces show, whether their answers are right, and
which control transform (if any) replaces the thought.

A condition is data. The paper's conditions (Gandhi et al., 2025, section 5) are registered below; a new one
is a few lines:

    register(Condition("verification_only", frozenset({"verification"}), description="..."))

Any registered name takes the suffix ``+incorrect`` (same behaviors, wrong final answer), which is how the
paper's "incorrect-only" control is built from any condition.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cogrl.behaviors.catalog import PAPER_BEHAVIORS
from cogrl.behaviors.types import BEHAVIORS
from cogrl.envs import Trace

INCORRECT_SUFFIX = "+incorrect"

Transform = Callable[[Trace, Any], Trace]
"""Rewrites a written trace for a control (``tokenizer`` is the second argument; may be None)."""


@dataclass(frozen=True)
class Condition:
    """A priming condition.

    ``behaviors`` are the behaviors the writer (or the LLM) is asked to put in each trace; ``correct`` says
    whether the final answer is right; ``transform`` names a control transform in ``TRANSFORMS`` applied to
    the written trace ("" for none). A transform can remove every behavior from the text:
    ``expected_behaviors`` is what the finished trace should show.
    """

    name: str
    behaviors: frozenset[str]
    correct: bool = True
    transform: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.behaviors) - set(BEHAVIORS)
        if unknown:
            raise ValueError(
                f"condition {self.name!r}: unknown behaviors {sorted(unknown)} (valid: {BEHAVIORS})"
            )
        if self.transform and self.transform not in TRANSFORMS:
            raise ValueError(
                f"condition {self.name!r}: unknown transform {self.transform!r} ({sorted(TRANSFORMS)})"
            )

    @property
    def expected_behaviors(self) -> frozenset[str]:
        return frozenset() if self.transform else self.behaviors

    @property
    def needs_tokenizer(self) -> bool:
        return self.transform == "length_matched"

    def apply(self, trace: Trace, tokenizer: Any = None) -> Trace:
        return TRANSFORMS[self.transform](trace, tokenizer) if self.transform else trace


# ---------------------------------------------------------------------------------------------------------
# Control transforms
# ---------------------------------------------------------------------------------------------------------
FILLER = " ."
"""The paper's length-matched filler token."""


def empty_thought(trace: Trace, tokenizer: Any = None) -> Trace:
    """Answer only: the chain of thought is removed (the paper's "empty CoT" control)."""
    return dataclasses.replace(trace, thought="", instances={})


def length_matched(trace: Trace, tokenizer: Any) -> Trace:
    """The thought replaced by ``" ."`` filler of exactly the same token length under ``tokenizer``."""
    if tokenizer is None:
        raise ValueError("the length_matched control needs a tokenizer (--tokenizer DIR)")
    return dataclasses.replace(
        trace, thought=filler_text(token_count(tokenizer, trace.thought), tokenizer), instances={}
    )


def token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def filler_text(n_tokens: int, tokenizer: Any) -> str:
    """``" ."`` repeated so that the text is exactly ``n_tokens`` tokens long.

    Tokenizers may merge repeated filler ("` . .`" as one token), so the repeat count is searched for (the
    count is monotone in repeats); when no repeat count lands exactly, a short tail (".", " ") closes the gap.
    """
    if n_tokens == 0:
        return ""
    low, high = 1, max(1, n_tokens)
    while token_count(tokenizer, FILLER * high) < n_tokens:
        high *= 2
    while low < high:  # smallest repeat count whose length reaches n_tokens
        mid = (low + high) // 2
        if token_count(tokenizer, FILLER * mid) < n_tokens:
            low = mid + 1
        else:
            high = mid
    for repeats in (low, low - 1, low - 2):
        for tail in ("", ".", " ", " .."):
            text = FILLER * max(repeats, 0) + tail
            if text and token_count(tokenizer, text) == n_tokens:
                return text
    raise ValueError(f"cannot write filler of exactly {n_tokens} tokens with this tokenizer")


TRANSFORMS: dict[str, Transform] = {"empty_cot": empty_thought, "length_matched": length_matched}


# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------
CONDITIONS: dict[str, Condition] = {}


def register(condition: Condition) -> Condition:
    if condition.name in CONDITIONS or condition.name.endswith(INCORRECT_SUFFIX):
        raise ValueError(f"condition {condition.name!r} is already registered or uses a reserved suffix")
    CONDITIONS[condition.name] = condition
    return condition


def get_condition(name: str) -> Condition:
    """A registered condition by name; ``NAME+incorrect`` gives its wrong-answer variant."""
    base_name = name.removesuffix(INCORRECT_SUFFIX)
    condition = CONDITIONS.get(base_name)
    if condition is None:
        close = difflib.get_close_matches(base_name, list(CONDITIONS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown priming condition {name!r}{hint} (known: {', '.join(CONDITIONS)})")
    if base_name == name:
        return condition
    return dataclasses.replace(
        condition,
        name=name,
        correct=False,
        description=f"{condition.description} Every final answer is wrong.".strip(),
    )


ALL = frozenset(PAPER_BEHAVIORS)  # the paper's four, whatever else the catalog holds
register(Condition("all_strategies", ALL, description="All four behaviors."))
register(Condition("backtracking_only", frozenset({"backtracking"}), description="Backtracking only."))
register(
    Condition(
        "backtracking_verification",
        frozenset({"backtracking", "verification"}),
        description="Backtracking with verification.",
    )
)
register(
    Condition(
        "backtracking_subgoal",
        frozenset({"backtracking", "subgoal_setting"}),
        description="Backtracking with subgoal setting.",
    )
)
register(
    Condition(
        "backtracking_backward",
        frozenset({"backtracking", "backward_chaining"}),
        description="Backtracking with backward chaining.",
    )
)
register(
    Condition(
        "no_behavior", frozenset(), description="A direct derivation of the answer with none of the four."
    )
)
register(Condition("empty_cot", ALL, transform="empty_cot", description="Answer only (empty thought)."))
register(
    Condition(
        "length_matched",
        ALL,
        transform="length_matched",
        description="All-strategies thoughts replaced by ' .' filler of the same token length.",
    )
)
