"""The behavior catalog: the four keep their exact prompts and columns, and a fifth runs everywhere."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cogrl.behaviors import (
    BEHAVIORS,
    PAPER_BEHAVIORS,
    Behavior,
    BehaviorTags,
    catalog,
    get_behavior,
    register_behavior,
    unregister_behavior,
)
from cogrl.behaviors.analysis import (
    CURVE_COLUMNS,
    PAPER_COLUMNS,
    accuracy_by_behavior,
    behavior_curves,
    behavior_rates,
    cooccurrence,
    curves_csv,
    label_metrics,
    metrics_table,
    read_curves_csv,
)
from cogrl.behaviors.judge import (
    PAPER_RUBRICS,
    RUBRICS,
    Trajectory,
    rubric_prompt,
    subject_text,
)
from cogrl.behaviors.judge import (
    system_prompt as judge_system_prompt,
)
from cogrl.behaviors.regex_tagger import RegexTagger, load_pattern_set
from cogrl.envs import Score, judge_domain, make_env, writer_brief
from cogrl.priming import conditions
from cogrl.priming.conditions import Condition, get_condition
from cogrl.priming.llm import behavior_mismatch, system_prompt
from cogrl.rl.batch import Generation
from cogrl.rl.metrics import rollout_metrics
from cogrl.tracking import TABLE_COLUMNS

FOUR = ("verification", "backtracking", "subgoal_setting", "backward_chaining")

# sha256 of the prompts as the code built them before the catalog (commit 8e04fde, where the rubrics lived in
# judge.py and the writer's instructions in priming/llm.py): the catalog must not change one byte of them.
JUDGE_PROMPTS_SHA256 = "143eb6c28c305dceee24ad0db04c7dbac6e0a31926c871380d8e72f451ec8b32"
WRITER_PROMPTS_SHA256 = "99f7ac3293634403d5a4f573ddb8e17a6ff4e1a4036989f02b8b4db13c6178df"
COUNTDOWN = make_env("countdown")
SYSTEM_PROMPT = judge_system_prompt(judge_domain(COUNTDOWN))
"""The judge's system prompt for Countdown responses (the environment names its domain since issue 11)."""
BASE_CONDITIONS = (
    "all_strategies",
    "backtracking_backward",
    "backtracking_only",
    "backtracking_subgoal",
    "backtracking_verification",
    "empty_cot",
    "length_matched",
    "no_behavior",
)


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _subject() -> str:
    task = COUNTDOWN.task_from_record({"numbers": [25, 30, 9], "target": 64})
    return subject_text(Trajectory.of(COUNTDOWN, "Let me try 25 + 30 = 55. That is not 64.", task), 4000)


def test_the_four_keep_their_judge_prompts_byte_for_byte() -> None:
    parts = [SYSTEM_PROMPT] + [rubric_prompt(b, _subject(), s) for s in ("cogrl", "paper") for b in FOUR]
    assert _digest(parts) == JUDGE_PROMPTS_SHA256


def test_the_four_keep_their_writer_prompts_byte_for_byte() -> None:
    parts = [
        system_prompt(get_condition(n + suffix), writer_brief(COUNTDOWN))
        for n in BASE_CONDITIONS
        for suffix in ("", "+incorrect")
    ]
    assert _digest(parts) == WRITER_PROMPTS_SHA256


def test_the_catalog_starts_with_the_papers_four() -> None:
    assert BEHAVIORS == FOUR == PAPER_BEHAVIORS and tuple(BEHAVIORS) == FOUR and list(BEHAVIORS) == list(FOUR)
    assert repr(BEHAVIORS) == repr(FOUR) and BEHAVIORS[3] == "backward_chaining" and len(BEHAVIORS) == 4
    assert [b.name for b in catalog()] == list(FOUR)
    assert dict(PAPER_COLUMNS) == {
        "verification": "verifications",
        "backtracking": "backtracking",
        "subgoal_setting": "subgoals",
        "backward_chaining": "backwards",
    }
    assert set(RUBRICS) == set(PAPER_RUBRICS) == set(FOUR)
    assert tuple(CURVE_COLUMNS[:3]) == ("condition", "step", "avg_verifications")
    assert list(TABLE_COLUMNS) == ["step", "task_id", "reward", "reason", *FOUR, "completion"]


def test_registration_rules() -> None:
    entry = get_behavior("verification")
    assert register_behavior(entry) is entry  # the same record again: a no-op
    with pytest.raises(ValueError, match="already registered"):
        register_behavior(Behavior("verification", "x", "x", "x"))
    with pytest.raises(ValueError, match="lower-case"):
        Behavior("self-correction", "x", "x", "x")
    with pytest.raises(ValueError, match="'show'"):
        Behavior("self_correction", "fixing a mistake", "", "x")
    with pytest.raises(ValueError, match="cannot be removed"):
        unregister_behavior("backtracking")
    with pytest.raises(KeyError, match="unknown behavior"):
        get_behavior("enumeration")
    assert len(BEHAVIORS) == 4


# ----------------------------------------------------------------------------------------------------------
# A fifth behavior, registered with its patterns
# ----------------------------------------------------------------------------------------------------------
SELF_CORRECTION = Behavior(
    name="self_correction",
    definition="noticing an error in one's own arithmetic and fixing it",
    show="when you make an arithmetic slip, notice it and correct it ('wait, 7 * 8 is 56, not 54')",
    avoid="do not correct earlier arithmetic",
    rubrics={"cogrl": "Self-correction: the response notices an arithmetic error it made and fixes it."},
)
PATTERNS = """\
version: v2+self_correction
extends: v2
add:
  self_correction:
    - id: wait_is_not
      note: '"wait, 7 * 8 is 56, not 54": a corrected value'
      regex: '\\bwait\\b[^.]{0,40}\\bnot\\b'
"""
TEXT = "Let me try 7 * 8 = 54. Wait, 7 * 8 is 56, not 54. Then 56 + 8 = 64. That reaches the target 64."


@pytest.fixture
def fifth(tmp_path: Path) -> Iterator[Path]:
    register_behavior(SELF_CORRECTION)
    path = tmp_path / "patterns.yaml"
    path.write_text(PATTERNS, encoding="utf-8")
    try:
        yield path
    finally:
        unregister_behavior("self_correction")
    assert BEHAVIORS == FOUR


def test_a_fifth_behavior_is_tagged_judged_written_and_analysed(fifth: Path) -> None:
    assert (*FOUR, "self_correction") == BEHAVIORS and "self_correction" in BEHAVIORS
    assert PAPER_COLUMNS["self_correction"] == "self_correction"  # no paper column: its own name

    # the regex tagger, with the behavior's patterns
    tags = RegexTagger(load_pattern_set(fifth)).tag(TEXT, numbers=[7, 8, 8], target=64)
    assert tags.counts["self_correction"] == 1 and set(tags.counts) == set(BEHAVIORS)
    assert tags.to_json()["behaviors"]["self_correction"] == 1
    built_in = RegexTagger().tag(TEXT, numbers=[7, 8, 8], target=64)  # no patterns for it in v2: never seen
    assert built_in.counts["self_correction"] == 0

    # the judge's prompts (built, not sent): its rubric in both sets, the paper's falling back to ours
    for rubric_set in ("cogrl", "paper"):
        prompt = rubric_prompt("self_correction", _subject(), rubric_set)
        assert prompt.startswith(SELF_CORRECTION.rubrics["cogrl"])
        assert "How many distinct instances of self correction" in prompt
    assert RUBRICS["self_correction"] == PAPER_RUBRICS["self_correction"]
    assert Behavior("enumeration", "listing the cases", "x", "y").rubric("paper") == (
        "Enumeration: listing the cases"
    )
    # the four's prompts are untouched by the fifth
    parts = [SYSTEM_PROMPT] + [rubric_prompt(b, _subject(), s) for s in ("cogrl", "paper") for b in FOUR]
    assert _digest(parts) == JUDGE_PROMPTS_SHA256

    # the writer: a condition that wants it asks for it, every other condition asks to avoid it
    wanted = Condition("self_correction_only", frozenset({"self_correction"}))
    assert SELF_CORRECTION.show in system_prompt(wanted)
    assert SELF_CORRECTION.avoid in system_prompt(get_condition("all_strategies"))
    assert get_condition("all_strategies").behaviors == frozenset(FOUR)  # the paper's condition, unchanged
    assert behavior_mismatch(tags, wanted) == "unwanted:verification"
    assert "self_correction_only" not in conditions.CONDITIONS  # built, not registered

    # rates, co-occurrence, accuracy, curves (the paper's columns plus the fifth's), labels
    records = [
        {"behaviors": tags.counts, "reward": 1.0, "step": 1, "completion": TEXT},
        {"behaviors": dict.fromkeys(BEHAVIORS, 0) | {"self_correction": None}, "reward": 0.0, "step": 1},
    ]
    rates = behavior_rates(records)
    assert rates["self_correction"] == {"n": 1, "unknown": 1, "rate": 1.0, "mean_count": 1.0, "total": 1}
    assert cooccurrence(records)["counts"]["self_correction"]["verification"] == 1
    assert accuracy_by_behavior(records)["self_correction"]["p_correct_present"] == 1.0
    rows = behavior_curves(records)
    assert rows[0]["avg_self_correction"] == 1.0 and "total_self_correction" in CURVE_COLUMNS
    csv_path = fifth.parent / "curves.csv"
    csv_path.write_text(curves_csv(rows), encoding="utf-8")
    assert read_curves_csv(csv_path)[0]["avg_self_correction"] == 1.0
    four_only = fifth.parent / "paper.csv"  # a file in the paper's format (no column for the fifth)
    four_only.write_text(
        "\n".join(",".join(line) for line in (
            [c for c in CURVE_COLUMNS if "self_correction" not in c],
            ["x", "1", *(["0"] * (len(CURVE_COLUMNS) - 4))],
        )) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    assert read_curves_csv(four_only)[0]["avg_self_correction"] is None
    gold = [dict.fromkeys(BEHAVIORS, True)]
    metrics = label_metrics([{b: tags.present(b) for b in BEHAVIORS}], gold)
    assert set(metrics["per_behavior"]) == set(BEHAVIORS) and "| self_correction |" in metrics_table(metrics)
    only_four = label_metrics([{b: True for b in BEHAVIORS}], [dict.fromkeys(FOUR, True)])
    assert set(only_four["per_behavior"]) == set(FOUR) and only_four["macro_f1"] == 1.0

    # the RL rollout metrics and the rollout table
    generation = Generation(0, (1, 2), (3, 4, 5), (0.0, 0.0, 0.0), TEXT, "stop")
    metrics = rollout_metrics([generation], [Score(1.0, "correct", True)], [tags])
    assert (
        metrics["behavior/self_correction_rate"] == 1.0 and metrics["behavior/self_correction_count"] == 1.0
    )
    assert list(TABLE_COLUMNS)[4:-1] == list(BEHAVIORS)
    with pytest.raises(ValueError, match="missing"):
        BehaviorTags(dict.fromkeys(FOUR, 0))  # tags must name every catalog behavior, the fifth included


def test_the_plot_grows_a_row_for_more_behaviors(fifth: Path) -> None:
    pytest.importorskip("matplotlib")
    from cogrl.behaviors.analysis import plot_curves

    records = [{"behaviors": dict.fromkeys(BEHAVIORS, 1), "reward": 1.0, "step": s} for s in (1, 2)]
    plot_curves(behavior_curves(records), fifth.parent / "curves.png")
    assert (fifth.parent / "curves.png").stat().st_size > 0
