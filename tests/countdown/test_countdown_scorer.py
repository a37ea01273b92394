"""The Countdown scorer: every rule, adversarial strings, properties against the solver, and a fuzz run."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cogrl_countdown import solver
from cogrl_countdown.scorer import MAX_ANSWER_CHARS, MAX_DEPTH, extract_answer, score

NUMS, TARGET = [25, 30, 3, 4], 32


def verdict(answer: str, numbers=NUMS, target=TARGET) -> tuple[float, str, bool]:
    s = score(f"<think>work</think>\n<answer>{answer}</answer>", numbers, target)
    return s.reward, s.reason, s.correct


@pytest.mark.parametrize(
    "answer",
    [
        "(30 + 3 - 25) * 4",
        "  (30+3-25)*4  ",
        "4 * (30 - 25 + 3)",
        "(30 + 3 - 25) × 4",
        "(30 + 3 − 25) * 4",
        "(30 + 3 - 25) * 4 = 32",
        "((((30 + 3) - 25))) * 4",
        "(30 + 3 - 25)\n* 4",
    ],
)
def test_correct_answers(answer):
    assert verdict(answer) == (1.0, "correct", True)


def test_division_is_exact_rational():
    assert verdict("8 / (3 - 8 / 3)", [3, 3, 8, 8], 24)[1] == "correct"
    assert verdict("1 / 3 * 3 + 0", [0, 1, 3, 3], 1)[1] == "correct"
    assert verdict("7 / 2 * 2", [7, 2, 2], 7)[1] == "correct"  # not float, not floor division


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("25 + 30 - 3 * 4", "wrong_value"),
        ("(30 + 3 - 25) * 4 = 31", "wrong_equals"),
        ("(30 + 3 - 25) * 4 = 32 = 32", "unparsable"),
        ("(30 + 3 - 25) * 4 == 32", "unparsable"),
        ("(30 + 3 - 25) * 4 = x", "unparsable"),
        ("32 = (30 + 3 - 25) * 4", "unparsable"),
        ("(30 + 3 - 25) * 4 * 1", "wrong_numbers"),
        ("(30 + 3 - 25) * 2 * 2", "wrong_numbers"),
        ("30 + 3 - 25", "wrong_numbers"),
        ("(30 + 3 - 25) * 04", "correct"),  # a literal is its integer value
        ("25 + 30 + 3 + 4 / 0", "wrong_numbers"),
        ("-25 + 30 + 3 * 4", "unparsable"),
        ("30 + 3 - 25 ** 4", "unparsable"),
        ("30 + 3 - 25 ^ 4", "unparsable"),
        ("30 + 3 % 25 * 4", "unparsable"),
        ("(30 + 3 - 25)4", "unparsable"),
        ("4(30 + 3 - 25)", "unparsable"),
        ("(30 + 3 - 25) * 4.0", "unparsable"),
        ("30.5 + 3 - 25 * 4", "unparsable"),
        ("thirty plus three", "unparsable"),
        ("__import__('os').system('true')", "unparsable"),
        ("(30 + 3 - 25 * 4", "unparsable"),
        ("30 + 3 - 25) * 4", "unparsable"),
        ("()", "unparsable"),
        ("30 + + 3 - 25 * 4", "unparsable"),
        ("30 + 3 - 25 * 4 +", "unparsable"),
        ("٣0 + 3 - 25 * 4", "unparsable"),  # non-ASCII digits are not literals
        ("³ + 30 - 25 * 4", "unparsable"),
        ("\\frac{30}{3}", "unparsable"),
    ],
)
def test_reasons(answer, reason):
    reward, got, correct = verdict(answer)
    assert got == reason
    assert correct is (reason == "correct")
    assert reward == (1.0 if reason == "correct" else 0.1)


def test_division_by_zero():
    assert verdict("3 / (4 - 4) + 1", [3, 4, 4, 1], 4)[1] == "div_by_zero"
    assert verdict("(4 - 4) / 3", [3, 4, 4], 0)[1] == "correct"


def test_no_answer_gets_nothing():
    for completion in [
        "",
        "the answer is 32",
        "<answer>(30+3-25)*4",
        "(30+3-25)*4</answer>",
        "</answer><answer>",
    ]:
        assert score(completion, NUMS, TARGET).reason == "no_answer"
        assert score(completion, NUMS, TARGET).reward == 0.0


def test_last_answer_span_counts():
    right, wrong = "<answer>(30+3-25)*4</answer>", "<answer>1+2</answer>"
    assert score(wrong + right, NUMS, TARGET).correct
    assert not score(right + wrong, NUMS, TARGET).correct
    # An unclosed trailing tag does not hide the last complete span.
    assert score(right + " <answer> 1 +", NUMS, TARGET).correct
    # Nested tags: the innermost span before the last closing tag.
    assert score("<answer>junk <answer>(30+3-25)*4</answer>", NUMS, TARGET).correct
    assert extract_answer("<answer>a</answer> <answer>b</answer>") == "b"
    # Multi-line completions and answers (the paper's scorer read only the last line).
    assert score("<answer>\n(30 + 3 - 25)\n* 4\n</answer>\nThat's it.\n", NUMS, TARGET).correct


def test_configurable_rewards():
    s = score("<answer>1</answer>", NUMS, TARGET, format_reward=0.0, correct_reward=2.0)
    assert (s.reward, s.reason) == (0.0, "wrong_numbers")
    assert score("<answer>(30+3-25)*4</answer>", NUMS, TARGET, correct_reward=2.0).reward == 2.0


def test_bounded_inputs():
    deep = "(" * 10_000 + "1" + ")" * 10_000
    assert verdict(deep, [1], 1)[1] == "too_long"
    nested = "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1)
    assert len(nested) <= MAX_ANSWER_CHARS
    assert verdict(nested, [1], 1)[1] == "too_deep"
    ok = "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH
    assert verdict(ok, [1], 1)[1] == "correct"
    huge = "9" * 200
    assert verdict(f"{huge} * {huge}", [int(huge), int(huge)], int(huge) ** 2)[1] == "correct"
    assert verdict("9" * (MAX_ANSWER_CHARS + 1))[1] == "too_long"
    big_completion = "x" * 1_000_000 + "<answer>(30+3-25)*4</answer>" + "y" * 1_000_000
    assert score(big_completion, NUMS, TARGET).correct
    assert score("<answer>" * 200_000, NUMS, TARGET).reason == "no_answer"


# ---- properties ----------------------------------------------------------------------------------------
def _random_expression(rng: random.Random, numbers: list[int]) -> tuple[str, Fraction | None]:
    """A random fully-parenthesised expression over ``numbers`` (each once) and its exact value."""
    if len(numbers) == 1:
        return str(numbers[0]), Fraction(numbers[0])
    split = rng.randint(1, len(numbers) - 1)
    (ls, lv), (rs, rv) = _random_expression(rng, numbers[:split]), _random_expression(rng, numbers[split:])
    op = rng.choice("+-*/")
    if lv is None or rv is None:
        value = None
    elif op == "/":
        value = None if rv == 0 else lv / rv
    else:
        value = {"+": lv + rv, "-": lv - rv, "*": lv * rv}[op]
    return f"({ls} {op} {rs})", value


@settings(max_examples=200, deadline=None)
@given(
    numbers=st.lists(st.integers(0, 30), min_size=3, max_size=5),
    target=st.integers(-10, 60),
    seed=st.integers(0, 2**32),
)
def test_random_expressions_score_by_value(numbers, target, seed):
    rng = random.Random(seed)
    shuffled = numbers[:]
    rng.shuffle(shuffled)
    text, value = _random_expression(rng, shuffled)
    s = score(f"<answer>{text}</answer>", numbers, target)
    if value is None:
        assert s.reason == "div_by_zero"
    else:
        assert s.correct is (value == target)
    # Dropping or adding a number is never accepted.
    assert not score(f"<answer>{text} + 0</answer>", numbers, target).correct
    assert not score(f"<answer>{text}</answer>", numbers[1:], target).correct


@settings(max_examples=60, deadline=None)
@given(numbers=st.lists(st.integers(0, 13), min_size=3, max_size=4), target=st.integers(0, 30))
def test_every_solver_solution_scores_full(numbers, target):
    found = solver.solutions(numbers, target)
    assert bool(found) == solver.is_solvable(numbers, target)
    for expr in found:
        assert score(f"<answer>{expr}</answer>", numbers, target).correct, expr


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200), numbers=st.lists(st.integers(0, 99), min_size=3, max_size=6))
def test_never_raises(text, numbers):
    for completion in (text, f"<answer>{text}</answer>", f"<answer>{text}"):
        s = score(completion, numbers, 24)
        assert s.reason
        assert s.reward in (0.0, 0.1, 1.0)


def test_fuzz_100k_random_strings():
    """A plain seeded loop (fast): junk and mutated expressions never raise, and a string is accepted only
    when it uses exactly the numbers and its exact value (computed independently) is the target."""
    rng = random.Random(1234)
    alphabet = "0123456789+-*/()= ×÷−.^%xa<>\n"
    numbers, target = [3, 4, 6], 2
    accepted = 0
    for i in range(100_000):
        if i % 2:
            body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
            value = "unknown"
        else:
            shuffled = rng.sample(numbers, 3)
            body, value = _random_expression(rng, shuffled)
            if i % 4 == 0:  # mutate: the value is then unknown
                pos = rng.randint(0, len(body))
                body = body[:pos] + rng.choice(alphabet) + body[pos + rng.randint(0, 1) :]
                value = "unknown"
        s = score(f"<answer>{body}</answer>", numbers, target)
        if value != "unknown":
            assert s.correct is (value == target), body
        if s.correct:
            accepted += 1
            assert sorted(int(t) for t in "".join(c if c.isdigit() else " " for c in body).split()) == numbers
    assert accepted > 100  # correct answers are reached, so the checks above are exercised
