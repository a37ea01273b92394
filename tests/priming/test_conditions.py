from __future__ import annotations

import dataclasses

import pytest

from cogrl.envs import Trace
from cogrl.models import train_tokenizer
from cogrl.priming import conditions
from cogrl.priming.conditions import CONDITIONS, Condition, filler_text, get_condition, token_count


def test_paper_conditions_are_registered():
    assert {
        "all_strategies",
        "backtracking_only",
        "backtracking_verification",
        "backtracking_subgoal",
        "backtracking_backward",
        "no_behavior",
        "empty_cot",
        "length_matched",
    } <= set(CONDITIONS)
    assert get_condition("all_strategies").behaviors == frozenset(
        {"verification", "backtracking", "subgoal_setting", "backward_chaining"}
    )
    assert get_condition("no_behavior").behaviors == frozenset()
    assert get_condition("length_matched").expected_behaviors == frozenset()


def test_incorrect_variant_of_any_condition():
    wrong = get_condition("backtracking_subgoal+incorrect")
    assert wrong.name == "backtracking_subgoal+incorrect"
    assert not wrong.correct
    assert wrong.behaviors == get_condition("backtracking_subgoal").behaviors


def test_unknown_condition_suggests_the_closest():
    with pytest.raises(KeyError, match="did you mean 'backtracking_only'"):
        get_condition("backtrack_only")


def test_a_new_condition_is_a_few_lines(monkeypatch):
    monkeypatch.setattr(conditions, "CONDITIONS", dict(CONDITIONS))
    conditions.register(Condition("verification_only", frozenset({"verification"})))
    assert get_condition("verification_only+incorrect").behaviors == frozenset({"verification"})
    with pytest.raises(ValueError, match="already registered"):
        conditions.register(Condition("verification_only", frozenset()))


def test_bad_conditions_are_rejected():
    with pytest.raises(ValueError, match="unknown behaviors"):
        Condition("x", frozenset({"backtracking", "guessing"}))
    with pytest.raises(ValueError, match="unknown transform"):
        Condition("x", frozenset(), transform="shuffle")


def test_empty_cot_keeps_only_the_answer():
    trace = Trace("5 + 3 = 8. Check: 8.", "5 + 3", True, {"verification": ((11, 20),)})
    empty = get_condition("empty_cot").apply(trace)
    assert empty.thought == "" and empty.answer == "5 + 3" and not empty.instances


@pytest.fixture(scope="module")
def tiny_tokenizer():
    corpus = ["Let me verify: 12 - 7 = 5, then 5 * 5 = 25. . . . .", "This path is a dead end ." * 3]
    return train_tokenizer(corpus, 400)


@pytest.mark.parametrize("n_tokens", [0, 1, 2, 3, 7, 50, 333])
def test_filler_has_exactly_the_requested_token_count(tiny_tokenizer, n_tokens):
    text = filler_text(n_tokens, tiny_tokenizer)
    assert token_count(tiny_tokenizer, text) == n_tokens
    assert set(text) <= {" ", "."}


def test_length_matched_needs_a_tokenizer_and_matches_length(tiny_tokenizer):
    trace = Trace("Working backwards from 22: 22 = 15 + 7, so the rest must make 15.", "5 * 3 + 7", True, {})
    condition = get_condition("length_matched")
    with pytest.raises(ValueError, match="tokenizer"):
        condition.apply(trace)
    matched = condition.apply(trace, tiny_tokenizer)
    assert token_count(tiny_tokenizer, matched.thought) == token_count(tiny_tokenizer, trace.thought)
    assert matched.answer == trace.answer
    assert dataclasses.replace(matched, thought=trace.thought) != matched
