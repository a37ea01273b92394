"""Hybrid tagging (regex everywhere, judge on a sample and on uncertain results) and regex/judge agreement."""

from __future__ import annotations

import json

import pytest
from fake_openai_server import FakeOpenAIServer

from cogrl.behaviors.agreement import agreement_report, cohen_kappa, confusion, write_agreement
from cogrl.behaviors.hybrid import HybridTagger, in_sample, merge, uncertainty_reasons
from cogrl.behaviors.judge import JudgeCache, JudgeConfig, LLMJudge, Trajectory
from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.behaviors.types import BEHAVIORS, BehaviorTags


def _tags(v: int | None, b: int | None = 0, s: int | None = 0, w: int | None = 0, spans=None) -> BehaviorTags:
    counts = dict(zip(BEHAVIORS, (v, b, s, w), strict=True))
    return BehaviorTags(counts=counts, spans=spans or {}, source="test")


# ----------------------------------------------------------------------------------------------------------
# Agreement
# ----------------------------------------------------------------------------------------------------------
def test_cohen_kappa_matches_a_hand_computed_table() -> None:
    # 20 items: both yes 8, A only 2, B only 3, both no 7 -> p_o = .75, p_e = .5*.55 + .5*.45 = .5, kappa = .5
    a = [True] * 8 + [True] * 2 + [False] * 3 + [False] * 7
    b = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 7
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)


def test_kappa_is_undefined_without_variation_and_unknowns_are_set_apart() -> None:
    assert cohen_kappa([True, True], [True, True]) is None
    assert cohen_kappa([], []) is None
    table = confusion([(True, None), (None, False), (True, True), (False, False)])
    assert (table.unknown, table.n, table.kappa) == (2, 2, pytest.approx(1.0))


def test_agreement_report_per_behavior_and_files(tmp_path) -> None:
    pairs = [(_tags(1, 0), _tags(2, 1)), (_tags(0, 0), _tags(0, None)), (_tags(3, 1), _tags(0, 1))]
    report = agreement_report(pairs)
    assert report["verification"] == {
        "n": 3,
        "kappa": pytest.approx(0.4),
        "observed_agreement": pytest.approx(2 / 3),
        "both_present": 1,
        "regex_only": 1,
        "judge_only": 0,
        "both_absent": 1,
        "unknown": 0,
        "regex_mean": pytest.approx(4 / 3),  # (1 + 0 + 3) / 3
        "judge_mean": pytest.approx(2 / 3),  # (2 + 0 + 0) / 3
        "mean_ratio": pytest.approx(0.5),
    }
    assert report["backtracking"]["unknown"] == 1 and report["backtracking"]["n"] == 2
    assert report["backtracking"]["judge_mean"] == 1.0  # the unknown pair is left out of the means too
    write_agreement(report, tmp_path)
    assert json.loads((tmp_path / "agreement.json").read_text())["verification"]["n"] == 3
    rows = (tmp_path / "agreement.csv").read_text().splitlines()
    assert rows[0].startswith("behavior,n,kappa") and len(rows) == 5


# ----------------------------------------------------------------------------------------------------------
# Hybrid
# ----------------------------------------------------------------------------------------------------------
def test_merge_prefers_the_judge_and_keeps_only_agreeing_spans() -> None:
    regex = _tags(2, 1, 0, 0, spans={"verification": [(0, 5), (9, 12)], "backtracking": [(3, 4)]})
    judge = _tags(1, 0, None, 4)
    final = merge(regex, judge)
    assert dict(final.counts) == {
        "verification": 1,
        "backtracking": 0,
        "subgoal_setting": 0,
        "backward_chaining": 4,
    }
    assert final.spans["verification"] == [(0, 5), (9, 12)]  # both say present
    assert final.spans["backtracking"] == []  # the judge says absent: the regex span is not evidence
    assert final.source == "hybrid"
    assert merge(regex, None).counts == regex.counts


def test_sample_is_seeded_and_close_to_the_fraction() -> None:
    texts = [f"response {i}" for i in range(2000)]
    picked = [t for t in texts if in_sample(t, 0.25, seed=1)]
    assert 400 < len(picked) < 600
    assert picked == [t for t in texts if in_sample(t, 0.25, seed=1)]
    assert picked != [t for t in texts if in_sample(t, 0.25, seed=2)]
    assert not any(in_sample(t, 0.0, 0) for t in texts) and all(in_sample(t, 1.0, 0) for t in texts)


def test_uncertainty_rule() -> None:
    tagger = RegexTagger()
    certain = Trajectory(
        "Nothing to see here. The target is 32.", hints={"numbers": [30, 25, 3, 4], "target": 32}
    )
    assert uncertainty_reasons(certain, tagger.tag(certain.text, certain.hints["numbers"], 32), tagger) == []
    no_target = Trajectory("Nothing to see here.")
    assert "no_target" in uncertainty_reasons(no_target, tagger.tag(no_target.text), tagger)
    single = Trajectory("30+25=55, which is not 32.", hints={"numbers": [30, 25, 3, 4], "target": 32})
    assert "single_match" in uncertainty_reasons(
        single, tagger.tag(single.text, single.hints["numbers"], 32), tagger
    )
    assert "regex_unknown" in uncertainty_reasons(certain, _tags(None), tagger)
    long = Trajectory("x" * (tagger.max_chars + 1), hints={"numbers": [1], "target": 1})
    assert "truncated" in uncertainty_reasons(long, tagger.tag(long.text, [1], 1), tagger)


def test_hybrid_judges_only_the_sample_and_uncertain_responses(tmp_path) -> None:
    items = [
        Trajectory(
            f"Plain text number {i}. The target is 32.", hints={"numbers": [30, 25, 3, 4], "target": 32}
        )
        for i in range(40)
    ]
    items.append(Trajectory("Nothing here."))  # no target anywhere: uncertain
    with FakeOpenAIServer(lambda text, b, attempt: "count:5") as server:
        judge = LLMJudge(JudgeConfig(endpoint=server.url, backoff_s=0.01), JudgeCache(tmp_path / "c.sqlite"))
        hybrid = HybridTagger(RegexTagger(), judge, sample_fraction=0.2, seed=3)
        results = hybrid.tag_many(items)
        judged_texts = {text for text, _ in server.requests}
    expected = {it.text for it in items[:40] if in_sample(it.text, 0.2, 3)} | {"Nothing here."}
    assert judged_texts == expected and 0 < len(expected) < 41
    for item, result in zip(items, results, strict=True):
        if item.text in expected:
            assert result.judge is not None and result.final.counts["verification"] == 5
            assert ("sample" in result.reasons) == in_sample(item.text, 0.2, 3)
        else:
            assert (
                result.judge is None and result.reasons == () and result.final.counts == result.regex.counts
            )
    assert results[-1].reasons == ("no_target",)
