"""The sweep's decision rule (cogrl.experiments.verdict), on hand-made numbers, and pass@k."""

from __future__ import annotations

import json
import math

import pytest

from cogrl.config import VerdictConfig
from cogrl.experiments.verdict import by_condition, decide, pooled_sd, run_result
from cogrl.rl.metrics import pass_at_k

RULE = VerdictConfig(treatment="search", controls=["plain", "empty"], margin=0.05, sd_multiple=2.0)


def runs(gains: dict[str, list[float]], start_pass: float = 0.5) -> list[dict]:
    return [
        {
            "condition": c,
            "seed": s,
            "start_accuracy": 0.1,
            "end_accuracy": 0.1 + g,
            "gain": g,
            "start_pass": start_pass,
            "end_pass": 0.6,
            "end_step": 20,
        }  # fmt: skip
        for c, values in gains.items()
        for s, g in enumerate(values)
    ]


def verdict(gains, probe=0.9, start_pass=0.5, rule=RULE):
    rows = runs(gains, start_pass)
    return decide(rule, rows, by_condition(rows, list(gains)), probe)


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))  # 0.5
    assert (
        pass_at_k(8, 0, 8) == 0.0 and pass_at_k(8, 1, 8) == 1.0 and pass_at_k(8, 3, 1) == pytest.approx(3 / 8)
    )
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - math.comb(7, 4) / math.comb(10, 4))
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 2)


def test_pooled_sd_by_hand():
    # gains 0.1, 0.3 (sd 0.1414) and 0.0, 0.0, 0.3 (sd 0.1732): sqrt((1*0.02 + 2*0.03) / 3)
    assert pooled_sd([0.1, 0.3], [0.0, 0.0, 0.3]) == pytest.approx(math.sqrt(0.08 / 3))
    assert pooled_sd([0.1], [0.2, 0.3]) is None


def test_shown_when_the_gap_beats_the_margin_and_two_pooled_sds():
    result = verdict({"search": [0.30, 0.32, 0.34], "plain": [0.10, 0.12, 0.14], "empty": [0.0, 0.0, 0.0]})
    assert result["outcome"] == "shown" and result["best_control"] == "plain"
    assert result["difference"] == pytest.approx(0.20) and result["pooled_sd"] == pytest.approx(0.02)
    assert result["sentence"].startswith("Effect shown: search gained +0.320")


def test_not_shown_below_the_margin_or_within_the_spread_or_with_one_seed():
    small = verdict({"search": [0.13, 0.14, 0.15], "plain": [0.10, 0.10, 0.10], "empty": [0.0, 0.0, 0.0]})
    assert small["outcome"] == "not shown"  # 0.04 < margin 0.05
    noisy = verdict({"search": [0.0, 0.5, 0.4], "plain": [0.1, 0.1, 0.1], "empty": [0.0, 0.0, 0.0]})
    assert noisy["outcome"] == "not shown"  # 0.2 > margin, but 2 pooled SDs = 0.37
    single = verdict({"search": [0.5], "plain": [0.1], "empty": [0.0]})
    assert single["outcome"] == "not shown" and "one seed" in single["sentence"]
    worse = verdict({"search": [0.0, 0.01, 0.0], "plain": [0.2, 0.21, 0.2], "empty": [0.0, 0.0, 0.0]})
    assert worse["outcome"] == "not shown" and worse["difference"] < 0


def test_a_failed_gate_makes_it_inconclusive_whatever_the_numbers():
    gains = {"search": [0.30, 0.32, 0.34], "plain": [0.10, 0.12, 0.14], "empty": [0.0, 0.0, 0.0]}
    rule = RULE.model_copy(update={"min_base_probe_accuracy": 0.5})
    weak_base = verdict(gains, probe=0.2, rule=rule)
    assert weak_base["outcome"] == "inconclusive" and "arithmetic" in weak_base["sentence"]
    cannot_start = verdict(gains, start_pass=0.0)
    assert cannot_start["outcome"] == "inconclusive" and "RL can start" in cannot_start["sentence"]
    assert [g["passed"] for g in verdict(gains)["gates"]] == [True, True, True, True]


def test_run_result_reads_step_zero_and_the_last_evaluation(tmp_path):
    (tmp_path / "eval.jsonl").write_text(
        "\n".join(
            json.dumps(r)
            for r in (
                {"step": 0, "eval/accuracy": 0.25, "eval/pass@8": 0.5},
                {"step": 10, "eval/accuracy": 0.30, "eval/pass@8": 0.6},
                {"step": 20, "eval/accuracy": 0.40, "eval/pass@8": 0.7},
            )
        )
        + "\n"
    )
    result = run_result("search", 1, tmp_path, "eval/pass@8")
    assert result["gain"] == pytest.approx(0.15) and result["end_step"] == 20 and result["start_pass"] == 0.5
    missing = run_result("search", 1, tmp_path / "nothing", "eval/pass@8")
    assert missing["gain"] is None and missing["start_accuracy"] is None


def test_accuracy_is_counted_from_the_first_response_of_each_problem_when_they_are_logged(tmp_path):
    # eval.jsonl of a run logged before 2026-12-02 mixed the pass@k samples into eval/accuracy
    (tmp_path / "eval.jsonl").write_text(
        '{"step": 0, "eval/accuracy": 0.9, "eval/pass@8": 0.5}\n{"step": 20, "eval/accuracy": 0.9}\n'
    )
    responses = [(0, "a", 0, True), (0, "a", 1, True), (0, "b", 0, False), (20, "a", 0, True),
                 (20, "b", 0, True), (20, "b", 1, False)]  # fmt: skip
    (tmp_path / "eval_rollouts.jsonl").write_text(
        "".join(
            json.dumps({"step": s, "task_id": t, "sample": k, "correct": c}) + "\n"
            for s, t, k, c in responses
        )
    )
    result = run_result("search", 0, tmp_path, "eval/pass@8")
    assert (result["start_accuracy"], result["end_accuracy"], result["gain"]) == (0.5, 1.0, 0.5)
