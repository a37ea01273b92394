"""Work budgets of everything that reads model output on the behaviors side: the regex tagger (pattern sets
v1 and v2), target inference and the judge's count parser. Reported inputs that hung or crashed the old
code, then a property over adversarial texts (tests/adversarial.py).

The inputs that used to take minutes run in a fresh interpreter with a generous timeout, so the old code
fails the test instead of stalling the suite; the fixed code takes milliseconds on each."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from adversarial import adversarial_texts, bounded_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogrl.behaviors.judge import parse_count
from cogrl.behaviors.regex_tagger import MAX_NUMBER_DIGITS, RegexTagger, infer_target
from cogrl.behaviors.types import BEHAVIORS

BUILTIN_SETS = ("v1", "v2", "paper")
ISOLATED_TIMEOUT_S = 60
"""The fixed code needs about a second here (mostly the interpreter starting); the old took minutes."""


def run_isolated(code: str) -> object:
    """Run ``code``, which prints one JSON value, in a fresh interpreter; a hang fails after the timeout."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=ISOLATED_TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


TAG = """import json
from cogrl.behaviors.regex_tagger import RegexTagger
print(json.dumps(RegexTagger(max_chars={max_chars}).tag({text}, target={target}).counts))
"""


@pytest.mark.parametrize(
    ("text", "target", "max_chars"),
    [
        # Reported: arithmetic rescanned at every digit of a long run (quadratic); > 100 s before.
        ("'30+25=55 oops, ' + '1' * 100_000", "32", "65_536"),
        # Reported: "target" + spaces, target inferred: two "\s*" split the run every way; minutes at 200k.
        ("'target' + ' ' * 200_000", "None", "200_000"),
        # Reported: each "0" walked back over every "0" before it, for target 0; minutes at 64k.
        ("'0' * 65_536", "0", "65_536"),
        # One anchored match backtracking quadratically over spaces, outside any time budget; minutes.
        ("'to get 32' + ' ' * 199_000 + 'x'", "32", "200_000"),
    ],
    ids=["digit-run", "target-then-spaces", "zeros-target-0", "anchored-flood"],
)
def test_reported_inputs_finish_with_real_counts(text: str, target: str, max_chars: str) -> None:
    counts = run_isolated(TAG.format(text=text, target=target, max_chars=max_chars))
    assert set(counts) == set(BEHAVIORS)
    assert None not in counts.values()  # measured, not a spent budget


def test_target_inference_is_linear_in_whitespace() -> None:
    code = "import json\nfrom cogrl.behaviors.regex_tagger import infer_target\n"
    assert run_isolated(code + "print(json.dumps(infer_target('target' + ' ' * 200_000)))") is None


@pytest.mark.parametrize(
    "text",
    [
        "é to get 32" + " " * 60_000 + "x",
        "é 1 != 2 " + "1" * 60_000,
        "é doesn't" + " " * 60_000 + "x",
        "é 3+4 that's wrong" + " " * 60_000 + "x",
        "é 3+4 x" + " " * 60_000 + "too big",
        "é 32 =" + " " * 60_000 + "y",
    ],
    ids=["to-get-flood", "neq-digit-run", "doesnt-flood", "wrong-flood", "too-big-flood", "decomposed-flood"],
)
@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_full_search_of_shipped_patterns_is_linear(name: str, text: str) -> None:
    """A non-ASCII letter sends every pattern to a full search; patterns whose whitespace quantifiers could
    split a flood every way spent the one-second budget (count None) on these; now they are measured."""
    tags = RegexTagger(name).tag(text, target=32)
    assert None not in tags.counts.values(), tags.counts


@pytest.mark.parametrize(
    "text",
    [
        "target is " + "9" * 5000,  # inferred target
        "we need to get " + "9" * 5000,  # an anchored pattern's number group
        "é we need to get " + "9" * 5000,  # the same, searched in full
        "32 = " + "9" * 5000 + " * 4",
    ],
)
def test_numbers_past_python_int_limit_are_not_numbers(text: str) -> None:
    """More than 4,300 digits made ``int()`` raise and killed the whole job; such a number is no target."""
    assert infer_target(text) in (None, 32)
    for target in (None, 32):
        tags = RegexTagger().tag(text, target=target)
        assert None not in tags.counts.values()


def test_a_long_number_never_equals_the_target() -> None:
    long_target = 10**MAX_NUMBER_DIGITS  # MAX_NUMBER_DIGITS + 1 digits: beyond what is ever converted
    text = f"So 30 + 25 = {long_target}, which is {long_target}."
    assert infer_target(f"The target is {long_target}.") is None
    assert RegexTagger().tag(text, target=long_target).counts["verification"] == 0
    assert infer_target(f"The target is {10 ** (MAX_NUMBER_DIGITS - 1)}.") == 10 ** (MAX_NUMBER_DIGITS - 1)


def test_anchored_window_cut_is_not_the_end_of_the_text() -> None:
    """A match that runs into its window's cut (where "$" holds only in the window) is not a match."""
    tagger = RegexTagger()
    assert tagger.tag("we need 5" + " " * 30, target=32).counts["subgoal_setting"] == 1  # "$": a real end
    assert tagger.tag("we need 5" + " " * 300 + "x", target=32).counts["subgoal_setting"] == 0


@pytest.mark.parametrize(
    "reply",
    ["COUNT: " + "9" * 5000, "9" * 5000, "0" * 5000 + " instances", "COUNT: " + "0" * 5000 + "7"],
)
def test_judge_count_parser_never_converts_huge_numbers(reply: str) -> None:
    """``int()`` of more than 4,300 digits raised ValueError, which could kill a tagging job or an RL step."""
    expected = {"0" * 5000 + " instances": 0, "COUNT: " + "0" * 5000 + "7": 7}.get(reply)
    assert parse_count(reply) == expected


_TAGGERS = {name: RegexTagger(name) for name in BUILTIN_SETS}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=adversarial_texts(), target=st.sampled_from([None, 0, 1, 32, 7.5]))
def test_every_reader_is_bounded_on_adversarial_text(text: str, target: float | None) -> None:
    """Each call returns well within the per-call limit and never raises; the tagger never needs its time
    budget (no count is None) on these texts with the shipped pattern sets."""
    for tagger in _TAGGERS.values():
        tags = bounded_call(tagger.tag, text, numbers=[1, 2, 3], target=target)
        assert None not in tags.counts.values(), (tagger.source, tags.counts)
        assert all(tags.counts[b] == len(tags.spans[b]) for b in BEHAVIORS)
    inferred = bounded_call(infer_target, text)
    assert inferred is None or len(str(inferred)) <= MAX_NUMBER_DIGITS
    count = bounded_call(parse_count, text)
    assert count is None or 0 <= count <= 200
