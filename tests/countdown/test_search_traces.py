"""Search traces: real depth-first search written down, and the exact counter that reads the format back."""

from __future__ import annotations

import itertools
import random

import pytest

from cogrl.behaviors.types import BEHAVIORS
from cogrl_countdown.prompts import completion
from cogrl_countdown.scorer import score
from cogrl_countdown.search_traces import (
    COUNTER_MAX_CHARS,
    COUNTER_MAX_LINES,
    GIVE_UP,
    MAX_CHARS,
    count_search_behaviors,
    write_search_trace,
)

SUBSETS = [frozenset(c) for r in range(len(BEHAVIORS) + 1) for c in itertools.combinations(BEHAVIORS, r)]


def small_problem(rng: random.Random) -> tuple[list[int], int]:
    """3 numbers from 1-9 and a target in 10-40 reached by some whole-number chain (the miniature's size)."""
    while True:
        numbers = [rng.randint(1, 9) for _ in range(3)]
        a, b, c = numbers
        for value in (a * b + c, a * b - c, (a + b) * c, a + b + c, a * c + b):
            if 10 <= value <= 40:
                return numbers, value


def test_counter_recovers_the_writers_spans_exactly():
    """Property over many seeds, every behavior subset and both kinds: the counter's spans are the writer's."""
    checked = 0
    for seed in range(60):
        rng = random.Random(seed)
        numbers, target = small_problem(rng)
        for behaviors in SUBSETS:
            for correct in (True, False):
                try:
                    trace = write_search_trace(numbers, target, behaviors, correct, rng)
                except ValueError:  # a failing trace needs a search of at least two expansions
                    assert not correct
                    continue
                counts = count_search_behaviors(trace.thought, target)
                for behavior in BEHAVIORS:
                    assert tuple(counts.tags.spans[behavior]) == tuple(trace.instances.get(behavior, ()))
                    assert behavior in behaviors or not counts.tags.counts[behavior]
                assert counts.false_checks == counts.false_success_claims == counts.false_steps == 0
                assert counts.true_checks == counts.tags.counts["verification"]
                assert counts.gave_up is (not correct) and not counts.truncated
                assert trace.correct is correct and len(trace.thought) <= MAX_CHARS
                reward = score(completion(trace.thought, trace.answer), numbers, target)
                assert (reward.reason == "correct") is correct, (trace.thought, trace.answer, reward)
                lines = trace.thought.split("\n")
                if correct and "verification" in behaviors:
                    assert lines[-1] == f"{target} == {target}"  # the trace ends because the check succeeded
                if not correct:
                    assert lines[-1] == GIVE_UP and f"{target} == {target}" not in lines
                checked += 1
    assert checked > 1000


def test_failing_traces_never_claim_success():
    rng = random.Random(7)
    for _ in range(100):
        numbers, target = small_problem(rng)
        try:
            trace = write_search_trace(numbers, target, frozenset(BEHAVIORS), False, rng)
        except ValueError:
            continue
        assert f"{target} == {target}" not in trace.thought.split("\n")
        assert trace.thought.endswith(GIVE_UP)


def test_writer_is_deterministic_and_searches_really():
    one = write_search_trace([7, 3, 5], 16, frozenset(BEHAVIORS), True, random.Random(1))
    two = write_search_trace([7, 3, 5], 16, frozenset(BEHAVIORS), True, random.Random(1))
    assert one == two
    found = any(
        "back to" in write_search_trace([7, 3, 5], 16, frozenset(BEHAVIORS), True, random.Random(s)).thought
        and "subgoal"
        in write_search_trace([7, 3, 5], 16, frozenset(BEHAVIORS), True, random.Random(s)).thought
        for s in range(20)
    )
    assert found


def test_unknown_behavior_is_refused():
    with pytest.raises(ValueError, match="unknown behaviors"):
        write_search_trace([7, 3, 5], 16, frozenset({"guessing"}), True, random.Random(0))


def test_counter_flags_false_checks_and_steps():
    text = "\n".join(
        [
            "[7, 3, 5] -> 16",
            "7 + 5 = 12 -> [12, 3]",
            "12 + 3 = 15 -> [15]",
            "16 != 16",  # false: 16 equals 16, and the leaf was 15
            "back to [12, 3]",
            "12 * 3 = 35 -> [35]",  # false step
            "35 != 16",
            "work back: 16 - 5 = 12",  # false work-back arithmetic (the goal 12 is still stated)
            "subgoal 11 from [7, 3]",
            "7 + 3 = 10 -> [10]",
            "10 == 11",  # false success claim
            "21 - 5 = 16 -> [16]",
            "16 == 16",
        ]
    )
    counts = count_search_behaviors(text, 16)
    assert counts.tags.counts == {
        "verification": 4,
        "backtracking": 1,
        "subgoal_setting": 1,
        "backward_chaining": 1,
    }
    assert (counts.true_checks, counts.false_checks, counts.false_success_claims) == (2, 2, 1)
    assert (counts.steps, counts.false_steps) == (5, 2)


def test_counter_never_raises_on_mangled_text():
    rng = random.Random(3)
    trace = write_search_trace([7, 3, 5], 16, frozenset(BEHAVIORS), True, random.Random(5))
    alphabet = "0123456789 +-*/=![],>\n abcx"
    for _ in range(300):
        chars = list(trace.thought)
        for _ in range(rng.randint(1, 20)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        counts = count_search_behaviors("".join(chars), rng.choice([16, 0, 10**30]))
        assert counts.true_checks + counts.false_checks == counts.tags.counts["verification"]


def test_counter_work_is_bounded_on_adversarial_input():
    huge = "9" * (COUNTER_MAX_CHARS * 50) + " == 9"
    counts = count_search_behaviors(huge, 9)
    assert counts.truncated and counts.tags.counts["verification"] == 0
    many = "16 == 16\n" * (COUNTER_MAX_LINES * 3)
    counts = count_search_behaviors(many, 16)
    assert counts.truncated and counts.tags.counts["verification"] <= COUNTER_MAX_LINES
    nested = ("back to [" + "1, " * 10_000 + "1]\n") * 3
    assert count_search_behaviors(nested, 1).tags.counts["backtracking"] == 0
