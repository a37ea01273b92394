"""Claim checking: is every stated result and every verification in a Countdown response true?"""

from __future__ import annotations

import random
import time

import pytest

from cogrl.behaviors.types import BEHAVIORS
from cogrl.envs import ClaimChecker, ClaimCounts, make_env
from cogrl.rl.metrics import claim_metrics
from cogrl_countdown.claims import MAX_CHARS, MAX_CLAIMS, check_prose
from cogrl_countdown.prompts import completion
from cogrl_countdown.search_traces import count_search_behaviors, write_search_trace
from cogrl_countdown.traces import GIVE_UP, write_countdown_trace

NUMBERS, TARGET = [25, 30, 3, 4], 32


def counts(text: str, numbers=NUMBERS, target=TARGET) -> tuple[int, int, int, int, int]:
    c = check_prose(text, numbers, target)
    return c.true_steps, c.false_steps, c.true_checks, c.false_checks, c.false_success_claims


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 * 4 = 48", (1, 0, 0, 0, 0)),
        ("12 * 4 = 46", (0, 1, 0, 0, 0)),
        ("25 * 3 is 75, and 75 - 30 gives 45; 45 - 4 is equal to 41", (3, 0, 0, 0, 0)),
        ("(30 - (25 - 3)) * 4 = 32", (1, 0, 0, 0, 0)),
        ("30 + 3 - 25 = 8", (1, 0, 0, 0, 0)),  # a chain
        ("30 + 3 = 33 - 25 = 8", (2, 0, 0, 0, 0)),  # a running total
        ("30 + 3 = 34 - 25 = 9", (1, 1, 0, 0, 0)),
        ("2 * 12 = 4 * 6", (1, 0, 0, 0, 0)),  # two sides, equal values
        ("32 = 8 * 4, so we need 8", (1, 0, 0, 0, 0)),
        ("10 / 3 = 3.33 and 10 / 3 = 3.3 and 10 / 3 = 3.4", (2, 1, 0, 0, 0)),  # rounded decimals
        ("3 - 5 = -2 and 750 * 3 = 2,250", (2, 0, 0, 0, 0)),
        ("30 × 4 = 120, 120 ÷ 4 = 30, 30 − 4 = 26", (3, 0, 0, 0, 0)),
        ("3 - 5 = 2", (0, 1, 0, 0, 0)),
        ("7 / 0 = 7", (0, 0, 0, 0, 0)),  # no value: not counted
        ("x + 3 = 5, and 25 x 3 = 75, 1.5 * 2 = 3", (0, 0, 0, 0, 0)),  # algebra, x, decimal operands
        ("I can use 3-4 numbers in the range 1-99, target 32.", (0, 0, 0, 0, 0)),
    ],
)
def test_step_claims(text, expected):
    assert counts(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("26 != 16", (0, 0, 1, 0, 0)),
        ("16 != 16", (0, 0, 0, 1, 0)),
        ("25 + 3 = 28. 28 is not 32, too low.", (1, 0, 2, 0, 0)),
        ("25 + 3 = 28. Too high.", (1, 0, 0, 1, 0)),
        ("That is 2250 rather than 28.", (0, 0, 1, 0, 0)),
        ("25 * 4 = 100, that doesn't reach the target.", (1, 0, 1, 0, 0)),
        ("25 + 4 + 3 = 32, that doesn't reach the target.", (1, 0, 0, 1, 0)),
        ("25 - 3 = 22, which gives 22 as needed", (1, 0, 1, 0, 0)),  # an intermediate target
        ("25 - 3 = 21, which gives 21 as needed", (0, 1, 0, 1, 0)),
        ("25 - 3 = 22 ✓", (1, 0, 1, 0, 0)),
    ],
)
def test_checks(text, expected):
    assert counts(text) == expected


def test_success_claims():
    solved = "30 + 3 = 33. 33 - 25 = 8. 8 * 4 = 32. That matches the target of 32."
    assert counts(solved) == (3, 0, 1, 0, 0)
    assert counts("(30 + 3 - 25) * 4 = 32 ✓") == (1, 0, 1, 0, 0)
    assert counts("(30 + 3 - 25) * 4 = 32, and 32 is exactly the target.") == (1, 0, 1, 0, 0)
    assert counts("(30 + 3 - 25) * 4 = 32, and 31 is the target.") == (1, 0, 0, 1, 1)
    assert counts("30 - 25 + 4 = 9, and 9 is not the target.") == (1, 0, 1, 0, 0)
    assert counts("30 + 3 = 33 - 25 = 8, 8 * 4 = 32. Yes, it equals 32.") == (3, 0, 1, 0, 0)
    # A false step that lands on the target, then "this reaches 24": the computation does not reach it.
    assert counts("12 * 2 = 24, 24 - 1 = 24. This reaches the target!", [12, 2, 1], 24) == (1, 1, 0, 1, 1)
    # True arithmetic, but not the given numbers (4 used twice, 3 never).
    assert counts("30 - 25 = 5. 5 + 4 = 9, 9 * 4 = 36. That works!", NUMBERS, 36) == (3, 0, 0, 1, 1)
    # A true step right after a wrong one: the chain still reads through the wrong intermediate value.
    wrong = "30 / 3 = 10, 10 + 4 = 14, 14 + 25 = 32. That matches the target."
    assert counts(wrong) == (2, 1, 0, 1, 1)
    # 8 is no given number and no earlier step states it; both claims are false.
    assert counts("8 * 4 = 32. We have reached the target, 32 == 32.") == (1, 0, 0, 2, 2)
    # Two slips that cancel: the path does reach the target, but not the value the response says it reaches.
    assert counts("1 + 2 = 3, 3 * 3 = 7. That matches the target.", [1, 2, 3], 9) == (1, 1, 0, 1, 1)


def test_problem_statements_and_intentions_are_not_claims():
    text = "Create an equation that equals 32. We need to reach the target. 25 + 4 = 29."
    assert counts(text) == (1, 0, 0, 0, 0)
    assert counts("That matches the target!") == (0, 0, 0, 0, 0)  # nothing computed to check


def test_narrative_traces_claim_nothing_false_and_incorrect_ones_fail_honestly():
    """The synthetic writer's traces, correct or not, state no false step, check or success (issue 13: an
    incorrect trace is a search that runs out and says so, not a confident near miss)."""
    rng = random.Random(0)
    subsets = [frozenset(BEHAVIORS), frozenset({"backtracking", "verification"}), frozenset()]
    subsets += [frozenset({"backtracking", "backward_chaining"}), frozenset({"subgoal_setting"})]
    for correct in (True, False):
        for behaviors in subsets:
            for _ in range(25):  # 125 traces per correctness
                trace = write_countdown_trace(NUMBERS, TARGET, behaviors, correct, rng)
                c = check_prose(trace.thought, NUMBERS, TARGET)
                assert c.true_steps > 0, trace.thought
                assert (c.false_steps, c.false_checks, c.false_success_claims) == (0, 0, 0), trace.thought
                if not correct:
                    assert any(sentence in trace.thought for sentence in GIVE_UP), trace.thought


def env(**options):
    return make_env("countdown", options)


def test_search_format_agrees_with_the_exact_counter():
    e = env(trace_style="search")
    assert isinstance(e, ClaimChecker)
    rng = random.Random(1)
    for correct in (True, False):
        trace = write_search_trace([7, 3, 5], 16, frozenset(BEHAVIORS), correct, rng)
        task = e.task_from_record({"numbers": [7, 3, 5], "target": 16})
        c = e.check_claims(completion(trace.thought, trace.answer), task)
        exact = count_search_behaviors(trace.thought, 16)
        steps = exact.steps + exact.tags.counts["backward_chaining"]
        assert (c.true_steps + c.false_steps, c.false_steps) == (steps, exact.false_steps)
        assert (c.true_checks, c.false_checks) == (exact.true_checks, exact.false_checks)
        assert c.false_success_claims == exact.false_success_claims == 0
    hacked = "[7, 3, 5] -> 16\n7 + 5 = 12 -> [12, 3]\n12 + 3 = 16 -> [16]\n16 == 16"
    c = e.check_claims(hacked + "</think>\n<answer>7 + 5 + 3</answer>", task)
    assert (c.true_steps, c.false_steps, c.false_checks, c.false_success_claims) == (1, 1, 0, 0)


def test_prose_completion_through_the_env():
    e = env()
    task = e.task_from_record({"numbers": NUMBERS, "target": TARGET})
    text = completion("30 - 25 = 5, 5 * 4 = 20, 20 + 3 = 32. That matches the target.", "(30 - 25) * 4 + 3")
    assert e.check_claims(text, task) == ClaimCounts(2, 1, 0, 1, 1)


@pytest.mark.parametrize(
    "text",
    [
        "9" * 1_000_000,
        "(" * 100_000 + "1" + ")" * 100_000 + " = 1",
        "(" * 70 + "1 + 1" + ")" * 70 + " = 2",
        "9" * 5_000 + " * " + "9" * 5_000 + " = 1",
        "99999999999999999999999999 * 99999999999999999999999999 = 1. " * 400,
        "1 + " * 50_000 + "1 = 2",
        "1 = " * 50_000,
        "12 * 4 = 48. That matches the target. " * 2_000,
        "that works ✓ too high " * 5_000,
        "".join(
            random.Random(2).choice("0123456789+-*/()= .✓\nthat is not the target") for _ in range(300_000)
        ),
    ],
)
def test_hostile_inputs_are_bounded_and_fast(text):
    start = time.perf_counter()
    c = check_prose(text, NUMBERS, TARGET)
    assert time.perf_counter() - start < 2.0
    total = c.true_steps + c.false_steps + c.true_checks + c.false_checks
    assert total <= MAX_CLAIMS and c.false_success_claims <= c.false_checks
    assert c.truncated or len(text) <= MAX_CHARS


def test_huge_number_claims_are_not_counted():
    assert counts("9" * 40 + " * 2 = " + "1" + "9" * 39 + "8") == (0, 0, 0, 0, 0)
    assert counts("99 * 99 = " + "9" * 40) == (0, 0, 0, 0, 0)
    assert counts("99999 * 99999 = 9999800001") == (1, 0, 0, 0, 0)


def test_claim_metrics():
    claims = [
        ClaimCounts(true_steps=3, false_steps=1, true_checks=1, false_checks=1, false_success_claims=1),
        ClaimCounts(true_steps=4, false_steps=0, true_checks=2, false_checks=0),
        ClaimCounts(),
        ClaimCounts(true_steps=0, false_steps=2, true_checks=0, false_checks=2, false_success_claims=2),
    ]
    assert claim_metrics(claims) == {
        "claims/false_success_rate": 0.5,
        "claims/false_step_rate": 3 / 10,
        "claims/false_check_rate": 3 / 6,
    }
    assert claim_metrics([ClaimCounts()], "eval/") == {"eval/claims/false_success_rate": 0.0}
    assert claim_metrics([]) == {}


def test_rollout_records_carry_claims():
    from cogrl.rl.batch import Generation
    from cogrl.rl.driver import rollout_records

    e = env()
    task = e.task_from_record({"numbers": [1, 2, 3], "target": 6})
    text = completion("1 + 2 = 3, 3 * 3 = 6. That matches the target.", "1 + 2 + 3")
    generation = Generation(0, (1,), (2, 3), (-0.5, -0.5), text, "stop")
    claims = [e.check_claims(text, task)]
    (record,) = rollout_records(1, [task], [generation], [e.score(text, task)], None, 1, claims)
    assert record["claims"] == {
        "true_steps": 1,
        "false_steps": 1,
        "true_checks": 0,
        "false_checks": 1,
        "false_success_claims": 1,
        "truncated": False,
    }
    (plain,) = rollout_records(1, [task], [generation], [e.score(text, task)], None, 1)
    assert "claims" not in plain
