"""The synthetic source: behaviors by construction, agreement with the regex tagger, correctness by the scorer."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.behaviors.types import BEHAVIORS
from cogrl.models import train_tokenizer
from cogrl.priming.card import row_task, summarize
from cogrl.priming.conditions import CONDITIONS, get_condition, token_count
from cogrl.priming.dataset import build_synthetic, load_priming_set, save_priming_set
from cogrl_countdown.traces import parse_solution, write_countdown_trace

WRITTEN = [name for name, condition in CONDITIONS.items() if not condition.transform]
N = 60


@pytest.fixture(scope="module")
def tagger():
    return RegexTagger()


@pytest.mark.parametrize("name", WRITTEN + [f"{name}+incorrect" for name in WRITTEN])
def test_tagger_finds_exactly_the_intended_behaviors(priming_env, tagger, name):
    """>= 95% of traces show each intended behavior to the regex tagger, <= 5% show an excluded one."""
    condition = get_condition(name)
    rows = build_synthetic(priming_env, condition, N, 0, seed=1)["train"]
    stats = summarize(rows, priming_env, tagger)
    for behavior in BEHAVIORS:
        recorded, tagged = stats["behavior_rate"][behavior], stats["regex_tagged_rate"][behavior]
        if behavior in condition.behaviors:
            assert recorded == 1.0, (behavior, recorded)
            assert tagged >= 0.95, (behavior, tagged)
        else:
            assert recorded == 0.0, (behavior, recorded)
            assert tagged <= 0.05, (behavior, tagged)


@pytest.mark.parametrize("name", ["all_strategies", "no_behavior", "backtracking_backward"])
def test_scorer_accepts_correct_traces_and_rejects_incorrect_ones(priming_env, name):
    right = build_synthetic(priming_env, get_condition(name), N, 0, seed=2)["train"]
    wrong = build_synthetic(priming_env, get_condition(f"{name}+incorrect"), N, 0, seed=2)["train"]
    assert all(right["correct"]) and set(right["reward"]) == {1.0}
    assert not any(wrong["correct"]) and max(wrong["reward"]) < 1.0


def test_rows_follow_the_rl_format(priming_env):
    dataset = build_synthetic(priming_env, get_condition("backtracking_verification"), 20, 5, seed=0)
    assert (dataset["train"].num_rows, dataset["validation"].num_rows) == (20, 5)
    row = dataset["train"][0]
    task = next(t for t in priming_env.tasks("train") if t.id == row["id"])
    assert row["prompt"] == task.prompt and row["prompt"].endswith("<think>")
    assert row["completion"].count("</think>\n<answer>") == 1 and row["completion"].endswith("</answer>")
    assert json.loads(row["task"]) == {"numbers": task.data["numbers"], "target": task.data["target"]}
    assert row_task(priming_env, row).prompt == task.prompt
    assert row["condition"] == "backtracking_verification" and row["source"] == "synthetic"
    ids = list(dataset["train"]["id"]) + list(dataset["validation"]["id"])
    assert len(set(ids)) == len(ids)


def test_recorded_spans_point_at_the_behavior_sentences(priming_env):
    rows = build_synthetic(priming_env, get_condition("all_strategies"), 30, 0, seed=3)["train"]
    for row in rows:
        thought = row["completion"].split("</think>")[0]
        for behavior in BEHAVIORS:
            spans = row["behavior_spans"][behavior]
            assert len(spans) == row["behaviors"][behavior] >= 1
            for start, end in spans:
                assert 0 <= start < end <= len(thought)
                assert thought[start:end].strip() == thought[start:end]


def test_phrasing_varies(priming_env):
    """A model should learn the move, not one sentence: each behavior comes in many phrasings."""
    rows = build_synthetic(priming_env, get_condition("all_strategies"), 150, 0, seed=4)["train"]
    openings = {b: Counter() for b in BEHAVIORS}
    for row in rows:
        for behavior in BEHAVIORS:
            for start, end in row["behavior_spans"][behavior]:
                openings[behavior][" ".join(row["completion"][start:end].split()[:2])] += 1
    for behavior, counter in openings.items():
        assert len(counter) >= 4, (behavior, counter)
        assert counter.most_common(1)[0][1] / sum(counter.values()) < 0.5, (behavior, counter)


def test_controls_transform_the_all_strategies_traces(priming_env):
    """length_matched has exactly the token lengths of the all-strategies thoughts it replaces; empty_cot
    keeps their answers."""
    tokenizer = train_tokenizer(["Working backwards from 22: 22 = 15 + 7. Check: 3 * 5 = 15. . . ."], 400)
    source = build_synthetic(priming_env, get_condition("all_strategies"), 25, 0, seed=5)["train"]
    filler = build_synthetic(priming_env, get_condition("length_matched"), 25, 0, seed=5, tokenizer=tokenizer)
    empty = build_synthetic(priming_env, get_condition("empty_cot"), 25, 0, seed=5)["train"]
    for original, matched, bare in zip(source, filler["train"], empty, strict=True):
        thought, answer = original["completion"].split("</think>")
        filler_thought, filler_answer = matched["completion"].split("</think>")
        assert token_count(tokenizer, filler_thought) == token_count(tokenizer, thought)
        assert set(filler_thought) <= {" ", "."} and filler_answer == answer
        assert bare["completion"] == "</think>" + answer and bare["correct"]
        assert all(n == 0 for n in matched["behaviors"].values())


def test_builds_are_deterministic(priming_env):
    condition = get_condition("backtracking_subgoal")
    a = build_synthetic(priming_env, condition, 15, 5, seed=7)
    b = build_synthetic(priming_env, condition, 15, 5, seed=7)
    c = build_synthetic(priming_env, condition, 15, 5, seed=8)
    assert a["train"].to_list() == b["train"].to_list()
    assert list(a["train"]["completion"]) != list(c["train"]["completion"])


def test_writer_handles_any_behavior_subset_and_rejects_unknown_ones():
    rng = random.Random(0)
    for size in range(5):
        for behaviors in {frozenset(rng.sample(BEHAVIORS, size)) for _ in range(6)}:
            trace = write_countdown_trace([4, 6, 9, 2], 21, behaviors, True, rng)
            assert {b for b, spans in trace.instances.items() if spans} == set(behaviors)
    with pytest.raises(ValueError, match="unknown behaviors"):
        write_countdown_trace([4, 6, 9], 21, frozenset({"guessing"}), True, rng)


def test_solutions_are_parsed_without_evaluating_code():
    assert parse_solution("25 + 30 / 3 - 4").value == 31
    with pytest.raises(ValueError):
        parse_solution("__import__('os').getcwd()")


def test_saved_set_round_trips_with_a_card(priming_env, tmp_path):
    dataset = build_synthetic(priming_env, get_condition("backtracking_only+incorrect"), 12, 4, seed=0)
    out = tmp_path / "set"
    stats = save_priming_set(
        dataset, out, {"condition": "backtracking_only+incorrect", "source": "synthetic"}, priming_env
    )
    loaded = load_priming_set(out)
    assert loaded["train"].to_list() == dataset["train"].to_list()
    card = (out / "README.md").read_text()
    assert "backtracking_only+incorrect" in card and "| train | 12 | 0.0% |" in card
    assert stats["validation"]["rows"] == 4 and stats["train"]["behavior_rate"]["backtracking"] == 1.0
    assert not list(tmp_path.glob(".set*")), "no temporary directory is left behind"
