"""Work budget of the Countdown scorer on adversarial completions (tests/adversarial.py): every call returns
a verdict within the per-call limit and never raises, whatever the completion and its answer span hold."""

from __future__ import annotations

from adversarial import adversarial_texts, bounded_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogrl_countdown.scorer import MAX_ANSWER_CHARS, score

REASONS = {
    "no_answer",
    "empty",
    "too_long",
    "too_deep",
    "unparsable",
    "wrong_numbers",
    "div_by_zero",
    "wrong_value",
    "wrong_equals",
    "correct",
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=adversarial_texts(), cut=st.integers(0, MAX_ANSWER_CHARS + 8))
def test_scorer_is_bounded_on_adversarial_completions(text: str, cut: int) -> None:
    for completion in (text, f"<answer>{text}</answer>", f"{text}<answer>{text[:cut]}</answer>"):
        result = bounded_call(score, completion, [1, 2, 3], 32)
        assert result.reason in REASONS
        assert result.reward in (0.0, 0.1, 1.0)
