"""The regex tagger: each pattern family, the false positives it must avoid, pattern sets, bounds, and
its agreement with the hand-labelled evaluation set."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from cogrl.behaviors.analysis import evaluate_tagger, load_eval_set
from cogrl.behaviors.regex_tagger import (
    FLAGS,
    MAX_CHARS,
    PatternSet,
    RegexTagger,
    infer_target,
    load_pattern_set,
)
from cogrl.behaviors.types import BEHAVIORS
from cogrl.config import BehaviorTaggingConfig
from cogrl.envs import make_env
from cogrl.files import InputError

EVAL_SET = Path(__file__).parents[1] / "data" / "behavior_eval.jsonl"
FROZEN_V1_TAGS = Path(__file__).parent / "data" / "regex_v1_eval_tags.jsonl"
"""Spans of pattern set v1 on every eval row, written once by the tagger before the anchored rewrite."""
BUILTIN_SETS = ("v1", "v2", "paper")
NUMBERS, TARGET = [30, 25, 3, 4], 32


@pytest.fixture(scope="module")
def tagger() -> RegexTagger:
    return RegexTagger()


def count(tagger: RegexTagger, text: str, behavior: str, target: int | None = TARGET, numbers=NUMBERS) -> int:
    result = tagger.tag(text, numbers=numbers, target=target).counts[behavior]
    assert result is not None
    return result


# ---------------------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "30 - 25 = 5, 5 + 3 = 8, 8*4 = 32",  # recomputation that lands on the target, no keyword
        "(30 - 25 + 3) * 4 = 32",
        "30 + 4 = 34, not 32.",
        "30 + 25 - 3 * 4 = 43 != 32",
        "30 * 4 = 120, too big.",
        "25 + 4 = 29, three short.",
        "30 + 25 = 55. Let me double-check that sum: 30 + 25 is 55.",
        "30 + 3 = 33, which doesn't reach 32.",
    ],
)
def test_verification_found(tagger: RegexTagger, text: str) -> None:
    assert count(tagger, text, "verification") >= 1


@pytest.mark.parametrize(
    "text",
    [
        "30 + 25 = 55. 55 * 3 = 165. 165 - 4 = 161.",  # forward arithmetic, no comparison with the target
        "Let me verify. Let me verify. Let me verify.",  # announces a check of nothing
        "Let me check the numbers again: 30, 25, 3, 4.",  # checks the inputs, not a result
        "We must use each number exactly once.",  # restating the rule
    ],
)
def test_verification_not_found(tagger: RegexTagger, text: str) -> None:
    assert count(tagger, text, "verification") == 0


def test_target_hit_needs_the_target(tagger: RegexTagger) -> None:
    text = "8 * 4 = 32"
    assert count(tagger, text, "verification", target=32) == 1
    assert count(tagger, text, "verification", target=33) == 0
    assert count(tagger, text, "verification", target=None, numbers=None) == 0  # nothing to infer it from


def test_check_mark_merges_with_its_result(tagger: RegexTagger) -> None:
    tags = tagger.tag("8 * 4 = 32 ✓", target=32)
    assert tags.counts["verification"] == 1
    assert tags.spans["verification"] == [(0, 12)]


# ---------------------------------------------------------------------------------------------------------
# Backtracking
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "30 + 25 = 55, no good — I'll pair 30 with 4 instead: 30 + 4 = 34.",
        "30 * 4 = 120, too big. Let's try 30 - 25 = 5.",  # switch without the word "backtrack"
        "30 + 25 = 55. What about 30 - 25 = 5?",
        "30 + 3 = 33. That doesn't work. 25 + 4 = 29.",
        "30 / 3 = 10. Let me backtrack and start with 25 instead.",
        "30 + 25 = 55 is a dead end; try a different pairing: 30 - 4 = 26.",
    ],
)
def test_backtracking_found(tagger: RegexTagger, text: str) -> None:
    assert count(tagger, text, "backtracking") >= 1


@pytest.mark.parametrize(
    "text",
    [
        "Let me try another way. 30 - 25 = 5, 5 + 3 = 8, 8 * 4 = 32.",  # nothing was tried before
        "Instead of adding, I'll multiply: 8 * 4 = 32.",
        "First, 30 - 25 = 5. Then let's try adding 3: 5 + 3 = 8.",  # continues a plan
        "Let's try 30 + 25 = 55. Let's try 30 + 25 = 55. Let's try 30 + 25 = 55.",  # a loop, not a new attempt
        "10 * 3 = 30. What about the remaining 2 and 7?",
    ],
)
def test_backtracking_not_found(tagger: RegexTagger, text: str) -> None:
    assert count(tagger, text, "backtracking") == 0


def test_failure_and_switch_are_one_instance(tagger: RegexTagger) -> None:
    text = "30 + 25 = 55. That doesn't work. Let's try 30 - 25 = 5. No good. What about 25 - 4 = 21?"
    assert count(tagger, text, "backtracking") == 2


# ---------------------------------------------------------------------------------------------------------
# Subgoal setting
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "First make 6 from 2 and 3, then multiply.",
        "My plan: get 8 and multiply it by 4.",
        "We need to get 8 from 30, 25 and 3.",
        "If we can get 8, then 8 * 4 finishes it.",
        "Step 2: Build 8",
        "The idea is to first get close to 30.",
    ],
)
def test_subgoal_found(tagger: RegexTagger, text: str) -> None:
    assert count(tagger, text, "subgoal_setting") >= 1


@pytest.mark.parametrize(
    "text",
    [
        "First, let's list the numbers: 30, 25, 3, 4.",
        "We need to make 32 using 30, 25, 3 and 4.",  # the target itself is not an intermediate goal
        "Step 1: 30 - 25 = 5. Step 2: 5 + 3 = 8.",
        "The numbers are 30, 25, 3 and 4.",
    ],
)
def test_subgoal_not_found(tagger: RegexTagger, text: str) -> None:
    assert count(tagger, text, "subgoal_setting") == 0


# ---------------------------------------------------------------------------------------------------------
# Backward chaining
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("75 = 3 * 25, so we need 25 from the rest.", 75),
        ("To reach 75, we need something divisible by 25.", 75),
        ("Working backwards: 32 / 4 = 8, so the others must make 8.", 32),
        ("I'll pick 7 since 8 * 7 = 56.", 56),
        ("What times 4 gives 32?", 32),
    ],
)
def test_backward_chaining_found(tagger: RegexTagger, text: str, target: int) -> None:
    assert count(tagger, text, "backward_chaining", target=target) >= 1


@pytest.mark.parametrize(
    "text",
    [
        "The target is 32. We want to reach 32.",  # restating the target
        "To make 32, we need to use 30, 25, 3 and 4.",
        "8 * 4 = 32.",  # forward
        "6 * 4 = 24, 24 / 2 = 12. So 12 = 6 * 4 / 2.",  # a found answer restated
    ],
)
def test_backward_chaining_not_found(tagger: RegexTagger, text: str) -> None:
    target = 12 if "12 =" in text else TARGET
    assert count(tagger, text, "backward_chaining", target=target) == 0


def test_backward_chaining_needs_the_target(tagger: RegexTagger) -> None:
    assert count(tagger, "75 = 3 * 25, so we need 25", "backward_chaining", target=75) == 1
    assert count(tagger, "75 = 3 * 25, so we need 25", "backward_chaining", target=80) == 0


# ---------------------------------------------------------------------------------------------------------
# Target inference, result shape, bounds
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "numbers", "expected"),
    [
        ("The target is 32. First make 6.", None, 32),
        ("We need to make 32 with these.", None, 32),
        ("Let's reach 75 using 3 and 25.", None, 75),
        ("Get 25 from the list, then reach 75.", [25, 3], 75),  # a given number is not the target
        ("30 + 25 = 55.", None, None),
    ],
)
def test_infer_target(text: str, numbers: list[int] | None, expected: int | None) -> None:
    assert infer_target(text, numbers) == expected


def test_inferred_target_drives_arithmetic_patterns(tagger: RegexTagger) -> None:
    tags = tagger.tag("We need to reach 32. 30 - 25 = 5, 5 + 3 = 8, 8 * 4 = 32.")
    assert tags.counts["verification"] == 1


def test_result_shape(tagger: RegexTagger) -> None:
    text = "30 * 4 = 120, too big. Let's try 30 - 25 = 5."
    tags = tagger.tag(text, NUMBERS, TARGET)
    assert tags.source == "regex:v2"
    assert set(tags.counts) == set(BEHAVIORS)
    for behavior in BEHAVIORS:
        assert tags.counts[behavior] == len(tags.spans[behavior])
        for start, end in tags.spans[behavior]:
            assert 0 <= start < end <= len(text)
    assert tagger.tag(text, NUMBERS, TARGET) == tags  # deterministic


def test_only_the_first_max_chars_are_scanned(tagger: RegexTagger) -> None:
    filler = "a" * MAX_CHARS
    assert count(tagger, filler + " 30 + 25 = 55, too big.", "verification") == 0
    assert count(tagger, "30 + 25 = 55, too big. " + filler, "verification") == 1


def test_adversarial_text_is_bounded(tagger: RegexTagger) -> None:
    text = ("1 + " * 20_000 + "= " + "let me try " * 3000)[:MAX_CHARS]
    tags = tagger.tag(text, target=1)
    assert all(c is not None for c in tags.counts.values())


def test_timeout_makes_the_count_unknown(tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(
        "version: slow\nextends: v1\nadd:\n  verification:\n"
        "    - id: catastrophic\n      note: nested quantifiers, for this test only\n"
        "      regex: '(a|a)+$'\n",
        encoding="utf-8",
    )
    tags = RegexTagger(path, timeout_s=0.05).tag("a" * 30 + "!")
    assert tags.counts["verification"] is None
    assert tags.counts["backtracking"] == 0  # the other behaviors are unaffected


# ---------------------------------------------------------------------------------------------------------
# Pattern sets
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_builtin_set_is_documented(name: str) -> None:
    patterns = load_pattern_set(name)
    assert patterns.version == name
    for behavior in BEHAVIORS:
        assert patterns.patterns[behavior], behavior
        for pattern in patterns.patterns[behavior]:
            assert pattern.note and pattern.id


def test_default_set_is_v2_and_v1_stays_loadable() -> None:
    assert RegexTagger().source == "regex:v2"
    assert RegexTagger("v1").source == "regex:v1"
    v1, v2 = load_pattern_set("v1"), load_pattern_set("v2")
    for behavior in BEHAVIORS:  # v2 only adds
        assert {p.id for p in v1.patterns[behavior]} <= {p.id for p in v2.patterns[behavior]}


def test_extend_from_a_recipe(tmp_path: Path, tagger: RegexTagger) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "version: v1+lab\nextends: v1\n"
        "add:\n  backtracking:\n    - id: nope\n      note: a terse rejection\n      regex: '\\bnope\\b'\n"
        "      requires: [prior_attempt]\n"
        "remove:\n  verification: [checkmark]\n",
        encoding="utf-8",
    )
    config = BehaviorTaggingConfig(patterns=str(extra))
    extended = RegexTagger(config.patterns)
    assert extended.source == "regex:v1+lab"
    assert count(extended, "30 + 4 = 34. Nope.", "backtracking") == 1
    assert count(tagger, "30 + 4 = 34. Nope.", "backtracking") == 0
    assert count(extended, "fine ✓", "verification") == 0
    assert count(tagger, "fine ✓", "verification") == 1


def test_replacement_set(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "version: mine\nbehaviors:\n  verification:\n    - id: ok\n      note: the word ok\n      regex: '\\bok\\b'\n",
        encoding="utf-8",
    )
    tags = RegexTagger(path).tag("ok, let me verify: 8 * 4 = 32", target=32)
    assert tags.counts == {"verification": 1, "backtracking": 0, "subgoal_setting": 0, "backward_chaining": 0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("behaviors: {}\n", "'version'"),
        ("version: x\nbehaviors:\n  verifcation: []\n", "verifcation: unknown behavior"),
        (
            "version: x\nbehaviors:\n  verification:\n    - id: a\n      regex: 'x'\n",
            "behaviors.verification[0].note",
        ),
        (
            "version: x\nbehaviors:\n  verification:\n    - id: a\n      note: n\n      regex: '(x'\n",
            "(a).regex",
        ),
        ("version: x\nextends: v1\nremove:\n  verification: [nonexistent]\n", "no pattern 'nonexistent'"),
        (
            "version: x\nbehaviors:\n  backtracking:\n    - {id: a, note: n, regex: x, requires: [psychic]}\n",
            "requires",
        ),
        ("version: x\nextends: v1\nbehaviors: {}\n", "not both"),
        ("version: [x\n", "invalid YAML"),
    ],
)
def test_bad_pattern_sets_name_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(InputError, match=f"{re.escape(str(path))}.*{re.escape(message)}"):
        RegexTagger(path)


def test_missing_pattern_file() -> None:
    with pytest.raises(InputError, match="cannot read pattern set"):
        RegexTagger("/nonexistent/patterns.yaml")


# ---------------------------------------------------------------------------------------------------------
# The labelled evaluation set
# ---------------------------------------------------------------------------------------------------------
def test_eval_set_is_well_formed() -> None:
    rows = load_eval_set(EVAL_SET)
    assert len(rows) >= 80
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["style"] for r in rows}) >= 8
    for behavior in BEHAVIORS:
        positives = sum(r["labels"][behavior] for r in rows)
        assert 10 <= positives <= len(rows) - 10, behavior  # positives and (hard) negatives for each


def test_macro_f1_on_eval_set(tagger: RegexTagger) -> None:
    metrics = evaluate_tagger(tagger, load_eval_set(EVAL_SET), make_env("countdown"))
    assert metrics["macro_f1"] >= 0.85, metrics
    for behavior in BEHAVIORS:
        assert metrics["per_behavior"][behavior]["f1"] >= 0.75, (behavior, metrics["per_behavior"][behavior])


@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_prefilters_never_hide_a_match(name: str) -> None:
    """A prefilter is only a speed-up: every match of its regex must contain one of its words."""
    texts = [r["completion"] for r in load_eval_set(EVAL_SET)]
    for behavior, patterns in load_pattern_set(name).patterns.items():
        for pattern in patterns:
            if not pattern.prefilter:
                continue
            compiled = regex.compile(pattern.regex, FLAGS)
            for text in texts:
                for match in compiled.finditer(text):
                    context = text[max(0, match.start() - 60) : match.end()].lower()
                    assert any(word in context for word in pattern.prefilter), (
                        behavior,
                        pattern.id,
                        match.group(),
                    )


# ---------------------------------------------------------------------------------------------------------
# Anchors: a speed-up that must never change a tag
# ---------------------------------------------------------------------------------------------------------
def unanchored(pattern_set: PatternSet) -> PatternSet:
    """The same set with every anchor dropped: each regex is searched at every position (the reference)."""
    return PatternSet(
        version=pattern_set.version,
        patterns={
            b: tuple(dataclasses.replace(p, anchors=()) for p in patterns)
            for b, patterns in pattern_set.patterns.items()
        },
    )


def stitched_texts(rows: list[dict], n: int, seed: int) -> list[tuple[str, list[int], int]]:
    """1-2 kB texts stitched from eval completions, as in bench/behaviors.py, plus random slices of them
    (which start and end mid-word and mid-number)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        first = rng.choice(rows)
        text = first["completion"]
        while len(text) < 1000:
            text += "\n" + rng.choice(rows)["completion"]
        out.append((text[:2000], first["numbers"], first["target"]))
        start = rng.randrange(len(text))
        out.append((text[start : rng.randrange(start, len(text) + 1)], None, None))
    return out


@pytest.fixture(scope="module")
def eval_rows() -> list[dict]:
    return load_eval_set(EVAL_SET)


def test_v1_tags_are_those_frozen_before_the_rewrite(eval_rows: list[dict]) -> None:
    """The anchored tagger gives pattern set v1's exact spans, with given and with inferred targets."""
    frozen = {r["id"]: r for r in map(json.loads, FROZEN_V1_TAGS.read_text(encoding="utf-8").splitlines())}
    assert set(frozen) == {r["id"] for r in eval_rows}
    tagger = RegexTagger("v1")
    for row in eval_rows:
        given = tagger.tag(row["completion"], numbers=row["numbers"], target=row["target"])
        inferred = tagger.tag(row["completion"])
        assert {b: [list(s) for s in given.spans[b]] for b in BEHAVIORS} == frozen[row["id"]]["given"], row[
            "id"
        ]
        assert {b: [list(s) for s in inferred.spans[b]] for b in BEHAVIORS} == frozen[row["id"]]["inferred"]
        assert given.counts == {b: len(given.spans[b]) for b in BEHAVIORS}


@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_anchors_never_hide_a_match(name: str, eval_rows: list[dict]) -> None:
    anchored = RegexTagger(name)
    reference = RegexTagger(unanchored(load_pattern_set(name)))
    texts = [(r["completion"], r["numbers"], r["target"]) for r in eval_rows]
    texts += stitched_texts(eval_rows, 30, seed=7)
    texts += [(text.upper(), numbers, target) for text, numbers, target in texts[:40]]
    for text, numbers, target in texts:
        assert anchored.tag(text, numbers, target) == reference.tag(text, numbers, target), text[:200]


# Words, numbers and symbols the patterns care about, to build adversarial token soups from: every part of
# every v2 anchor, plus numbers, operators and separators.
_SOUP = sorted(
    {
        part.rstrip("*")
        for patterns in load_pattern_set("v2").patterns.values()
        for pattern in patterns
        for anchor in pattern.anchors
        for part in anchor.split(" ")
        if not part.startswith("<")
    }
    | {
        "32",
        "032",
        "32.0",
        "8",
        "4",
        "7.5",
        "30",
        "25",
        "=",
        "+",
        "-",
        "*",
        "/",
        "÷",
        "×",
        "≠",
        "!=",
        "(",
        ")",
    }
    | {
        ",",
        ".",
        ":",
        "'s",
        "'t",
        "’s",
        "?",
        "!",
        "—",
        "\n",
        "é",
        "5divided",
        "x",
        "times",
        "us",
        "by",
        "the target",
    }
)


@settings(max_examples=150, deadline=None)
@given(
    tokens=st.lists(st.sampled_from(_SOUP), min_size=2, max_size=40),
    separators=st.lists(st.sampled_from([" ", "", "  ", "\n", ", ", "\t"]), min_size=40, max_size=40),
    target=st.sampled_from([32, 8, 7.5, None]),
    upper=st.booleans(),
)
def test_anchors_never_hide_a_match_in_token_soup(
    tokens: list[str], separators: list[str], target: float | None, upper: bool
) -> None:
    text = "".join(t + s for t, s in zip(tokens, separators, strict=False))
    text = text.upper() if upper else text
    assert _ANCHORED.tag(text, target=target) == _REFERENCE.tag(text, target=target)


_ANCHORED = RegexTagger("v2")
_REFERENCE = RegexTagger(unanchored(load_pattern_set("v2")))


@pytest.mark.parametrize(
    ("anchor", "message"),
    [
        ("Let", "anchors"),
        ("too many words", "anchors"),
        ("<number>", "anchors"),
        ("a <target> b", "anchors"),
        ("", "anchors"),
    ],
)
def test_bad_anchors_name_the_field(tmp_path: Path, anchor: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: x\nbehaviors:\n  verification:\n"
        f"    - {{id: a, note: n, regex: 'x', anchors: [{json.dumps(anchor)}]}}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=f"{re.escape(str(path))}.*\\(a\\)\\.{message}"):
        RegexTagger(path)


def test_text_with_non_ascii_letters_is_searched_in_full() -> None:
    """Anchors are found on ASCII letters only; a text with other letters gets the plain search."""
    text = "30 + 4 = 34. Étape: let me try 30 - 25 = 5. WAIT, maybe 25 - 4 = 21."
    assert RegexTagger().tag(text, target=32) == _REFERENCE.tag(text, target=32)
    assert RegexTagger().tag(text, target=32).counts["backtracking"] >= 1


def test_time_budget_applies_to_anchored_patterns() -> None:
    tags = RegexTagger(timeout_s=0.0).tag("30 + 4 = 34. Let me verify: 8 * 4 = 32 ✓", target=32)
    assert tags.counts["verification"] is None


# ---------------------------------------------------------------------------------------------------------
# Pattern set v2: general phrasings v1 missed (and what they must still reject)
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("behavior", "text", "target"),
    [
        ("backtracking", "30 + 25 = 55. In a different order: 30 - 25 = 5.", 32),
        ("backtracking", "30 * 4 = 120. This approach isn't working. 25 + 4 = 29.", 32),
        ("backtracking", "30 * 4 = 120, that's wrong, let me use 25: 25 + 3 = 28.", 32),
        ("backtracking", "30 + 25 = 55. Oops, I need subtraction: 30 - 25 = 5.", 32),
        ("backtracking", "30 + 25 = 55. Wait, maybe subtracting works: 30 - 25 = 5.", 32),
        ("backtracking", "30 + 25 = 55. Let me think about it differently. 30 - 25 = 5.", 32),
        ("backtracking", "30 + 25 = 55. Never mind. 30 - 25 = 5.", 32),
        ("backtracking", "30 + 25 = 55. Perhaps we could multiply: 8 * 4 = 32.", 32),
        ("subgoal_setting", "Get 8 first, then multiply by 4.", 32),
        ("subgoal_setting", "Once we have 8, 8 * 4 = 32.", 32),
        ("subgoal_setting", "We need to find a way to make 8.", 32),
        ("subgoal_setting", "Can we make 8?", 32),
        ("subgoal_setting", "30 - 25 = 5, so we need 3.", 32),
        ("subgoal_setting", "The key is to get 8.", 32),
        ("subgoal_setting", "Plan: make 8, then multiply.", 32),
        ("backward_chaining", "Work back from 32: it is 8 * 4.", 32),
        ("backward_chaining", "What can we multiply by 4 to get 32?", 32),
        ("backward_chaining", "Something times 4 equals 32.", 32),
        ("backward_chaining", "What do we need to reach 32?", 32),
        ("backward_chaining", "To get to 32 we need 8 and 4.", 32),
        ("backward_chaining", "53 - 20 = 33, and 11 * 3 = 33.", 53),
        ("backward_chaining", "75 is close to 72.", 75),
        ("backward_chaining", "The last step must be a multiplication.", 32),
        ("backward_chaining", "We want 80. Multiplying 40 by 2 would do it.", 80),
    ],
)
def test_v2_finds(tagger: RegexTagger, behavior: str, text: str, target: int) -> None:
    assert count(tagger, text, behavior, target=target, numbers=None) >= 1
    assert count(RegexTagger("v1"), text, behavior, target=target, numbers=None) == 0  # new in v2


@pytest.mark.parametrize(
    ("behavior", "text", "target"),
    [
        ("backtracking", "Let's try a different order: 30 - 25 = 5.", 32),  # nothing tried before
        ("backtracking", "30 + 25 = 55. Never mind. 30 + 25 = 55.", 32),  # a loop
        ("backtracking", "Basketball hoops. 30 + 25 = 55.", 32),
        ("subgoal_setting", "Can we make 32 from 30, 25, 3 and 4?", 32),  # the target is not a subgoal
        ("subgoal_setting", "30 + 25 = 55. Let me try another approach: 8 * 4 = 32.", 32),  # a switch
        ("subgoal_setting", "We need 4 numbers.", 32),
        ("backward_chaining", "The target 11 is prime.", 11),  # a restatement
        ("backward_chaining", "60 - 7 = 53.", 53),  # forward, ends at the target
        ("backward_chaining", "Adding 3 to 5 would give 8.", 32),  # forward hypothetical
    ],
)
def test_v2_rejects(tagger: RegexTagger, behavior: str, text: str, target: int) -> None:
    assert count(tagger, text, behavior, target=target, numbers=None) == 0
