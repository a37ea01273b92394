"""The regex pattern set tuned to the paper's judge rubrics ("paper"): the two definitions where it counts
more than v2 (restarts in an equation list), counted by hand; implicit verdicts, the paper's other widening,
both count."""

from __future__ import annotations

import pytest

from cogrl.behaviors.regex_tagger import RegexTagger, load_pattern_set
from cogrl.behaviors.types import BEHAVIORS

PAPER, V2 = RegexTagger("paper"), RegexTagger("v2")


def test_extends_v2():
    paper, v2 = load_pattern_set("paper"), load_pattern_set("v2")
    for behavior in BEHAVIORS:
        assert {p.id for p in v2.patterns[behavior]} <= {p.id for p in paper.patterns[behavior]}
    assert PAPER.tag("x").source == "regex:paper"


@pytest.mark.parametrize(
    ("text", "restarts"),
    [
        # 30 * 4 and 25 - 3 start again from the given numbers; 55 - 4 and 120 / 3 build on the result before
        ("25 + 30 = 55, 55 - 4 = 51, 30 * 4 = 120, 120 / 3 = 40, 25 - 3 = 22", 2),
        ("25 + 30 = 55\n55 - 4 = 51\n30 * 4 = 120\n120 / 3 = 40\n25 - 3 = 22", 2),
        (
            "(78 - 20) - (11 - 7) = 58 - 4 = 54, (54 - 78) + 11 = -13, (-13 + 78) - 11 = 54, (78 - 58) + 11 = 31",
            1,
        ),
        ("Let me try 30 + 25 = 55. Then 55 - 8 = 47. Then 47 - 4 = 43.", 0),  # one chain: no restart
        ("30 + 25 = 55, 30 + 25 = 55", 0),  # the same attempt again is a loop, not a new attempt
        ("The numbers are 30, 25, 8 and 4; the target is 32.", 0),
    ],
)
def test_every_restart_in_an_equation_list_is_backtracking(text, restarts):
    assert PAPER.tag(text, target=32).counts["backtracking"] == restarts
    assert V2.tag(text, target=32).counts["backtracking"] == 0  # no stated failure: v2 sees none


@pytest.mark.parametrize(
    "text", ["30 + 25 = 55. Too high.", "30 - 25 = 5, not enough", "(30 - 25 + 3) * 4, that works!"]
)
def test_implicit_verdicts_are_verification_in_both(text):
    assert (
        PAPER.tag(text, target=32).counts["verification"]
        == V2.tag(text, target=32).counts["verification"]
        == 1
    )
