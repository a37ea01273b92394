"""`cogrl report` on hand-written run logs: rows, columns and numbers computed by hand, the paper overlay, the
fallback to training rollouts, and clear errors for bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cogrl.behaviors.analysis import CURVE_COLUMNS, read_curves_csv
from cogrl.experiments.report import find_runs, paper_csv_path, run_curves, write_sweep_report
from cogrl.files import InputError

B = ("verification", "backtracking", "subgoal_setting", "backward_chaining")


def rollout(step: int, task: str, text: str, correct: bool, counts: tuple, sample: int = 0) -> dict:
    return {
        "step": step,
        "task_id": task,
        "sample": sample,
        "completion": text,
        "reward": 1.0 if correct else 0.1,
        "correct": correct,
        "behaviors": dict(zip(B, counts, strict=True)),
    }


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def make_run(root: Path, with_eval_rollouts: bool = True) -> Path:
    root.mkdir(parents=True)
    (root / "config.yaml").write_text("name: synthetic\n")
    write_jsonl(root / "eval.jsonl", [{"step": 0, "eval/accuracy": 0.5}, {"step": 2, "eval/accuracy": 1.0}])
    write_jsonl(
        root / "rollouts.jsonl",
        [
            rollout(1, "t1", "abcd", False, (1, 0, 0, 0)),
            rollout(2, "t1", "ab", True, (3, 1, 0, 0)),
            rollout(2, "t2", "abcdef", True, (1, 1, None, 0)),
        ],
    )
    if with_eval_rollouts:
        write_jsonl(
            root / "eval_rollouts.jsonl",
            [
                rollout(0, "e1", "aaaa", True, (2, 0, 1, 0)),
                rollout(0, "e2", "aa", False, (0, 0, 1, 0)),
                rollout(0, "e2", "zzzzzzzzzz", True, (9, 9, 9, 9), sample=1),  # only sample 0 counts
                rollout(2, "e1", "aaaaaa", True, (4, 2, 0, 1)),
                rollout(2, "e2", "aaaaaaaa", True, (2, 2, None, 1)),
            ],
        )
    return root


def test_curves_come_from_eval_responses_with_the_eval_accuracy(tmp_path):
    rows, source = run_curves(make_run(tmp_path / "run"), "backtracking_only")
    assert [r["step"] for r in rows] == [0, 2]
    first, last = rows
    assert first["accuracy"] == 0.5 and last["accuracy"] == 1.0
    assert first["avg_verifications"] == 1.0 and first["total_verifications"] == 2
    assert first["avg_subgoals"] == 1.0 and first["response_length"] == 3.0
    assert last["avg_verifications"] == 3.0 and last["avg_backtracking"] == 2.0
    assert last["avg_subgoals"] == 0.0 and last["total_subgoals"] == 0  # the unknown count is left out
    assert last["avg_backwards"] == 1.0 and last["response_length"] == 7.0
    assert source == "test responses of each evaluation"


def test_without_eval_rollouts_behaviors_fall_back_to_training_rollouts(tmp_path):
    rows, source = run_curves(make_run(tmp_path / "run", with_eval_rollouts=False), "x")
    assert rows[0] == {"condition": "x", "step": 0, "accuracy": 0.5}
    assert rows[1]["avg_verifications"] == 2.0 and rows[1]["avg_subgoals"] == 0.0
    assert rows[1]["response_length"] == 4.0 and rows[1]["accuracy"] == 1.0
    assert "training rollouts" in source


def test_report_writes_the_paper_columns_plots_and_summary(tmp_path):
    sweep = tmp_path / "sweep"
    make_run(sweep / "backtracking_only" / "rl")
    make_run(sweep / "no_behavior" / "rl", with_eval_rollouts=False)
    (sweep / "sweep.json").write_text(
        json.dumps(
            {
                "runs": [
                    {
                        "condition": "backtracking_only",
                        "seed": 0,
                        "dir": "backtracking_only",
                        "status": "done",
                    },
                    {"condition": "no_behavior", "seed": 0, "dir": "no_behavior", "status": "done"},
                    {"condition": "empty_cot", "seed": 0, "dir": "empty_cot", "status": "failed"},
                ]
            }
        )
    )
    out = tmp_path / "report"
    files = write_sweep_report([sweep], out, paper="llama")
    assert all(path.exists() and path.stat().st_size > 0 for path in files)
    with open(out / "curves.csv", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
    with open(paper_csv_path("llama"), newline="") as handle:
        assert header == next(csv.reader(handle)) == list(CURVE_COLUMNS)
    rows = read_curves_csv(out / "curves.csv")
    assert [(r["condition"], r["step"]) for r in rows] == [
        ("backtracking_only", 0),
        ("backtracking_only", 2),
        ("no_behavior", 0),
        ("no_behavior", 2),
    ]
    summary = (out / "summary.md").read_text()
    line = next(li for li in summary.splitlines() if li.startswith("| backtracking_only"))
    # ours: 0.5 -> 1.0; the paper's only_backtracking (Llama): 0.409 -> 0.769 at step 250
    assert "| 0.500 | 1.000 | +0.500 |" in line and "only_backtracking" in line and "0.769" in line
    assert "(none in the paper)" in next(li for li in summary.splitlines() if li.startswith("| no_behavior"))


def test_the_report_of_a_sweep_opens_with_its_verdict(tmp_path):
    from cogrl.config import VerdictConfig
    from cogrl.experiments import verdict

    sweep = tmp_path / "sweep"
    make_run(sweep / "all_strategies" / "rl")
    make_run(sweep / "no_behavior" / "rl")
    entries = [
        {"condition": c, "seed": 0, "dir": c, "status": "done"} for c in ("all_strategies", "no_behavior")
    ]
    (sweep / "sweep.json").write_text(json.dumps({"runs": entries}))
    runs = [
        verdict.run_result(c, 0, sweep / c / "rl", "eval/pass@8") for c in ("all_strategies", "no_behavior")
    ]
    table = verdict.by_condition(runs, ["all_strategies", "no_behavior"])
    rule = VerdictConfig(treatment="all_strategies", controls=["no_behavior"])
    summary = {"base": None, "runs": runs, "conditions": table, "pass_key": "eval/pass@8",
               "verdict": verdict.decide(rule, runs, table, None)}  # fmt: skip
    (sweep / "summary.json").write_text(json.dumps(summary))
    write_sweep_report([sweep], tmp_path / "report")
    text = (tmp_path / "report" / "summary.md").read_text()
    # both gained 0.5 with one seed each; no pass@8 in these logs, so the step-0 gates fail
    assert "**Effect inconclusive: all_strategies gained +0.500" in text
    assert text.index("gate FAIL: all_strategies: pass@k at step 0") < text.index("| all_strategies |")
    (sweep / "summary.json").write_text("{}")
    with pytest.raises(InputError, match=r"summary.json: no field\(s\) base, conditions, pass_key, verdict"):
        write_sweep_report([sweep], tmp_path / "report")


def test_a_run_directory_is_named_by_its_sweep_condition(tmp_path):
    run = make_run(tmp_path / "all_strategies" / "seed-1" / "rl")
    other = make_run(tmp_path / "my-run")
    assert [(r.condition, r.path) for r in find_runs([run, other])] == [
        ("all_strategies", run),
        ("my-run", other),
    ]


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="neither a sweep directory"):
        find_runs([tmp_path])
    run = make_run(tmp_path / "run")
    with open(run / "eval.jsonl", "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(InputError, match=r"eval.jsonl:3"):
        run_curves(run, "x")
    with pytest.raises(InputError, match="--paper"):
        paper_csv_path("gpt")


def test_accuracy_under_both_scorers_when_rollouts_carry_both(tmp_path):
    run = make_run(tmp_path / "sweep" / "all_strategies" / "rl")
    records = [
        {
            **rollout(0, "e1", "a", True, (0, 0, 0, 0)),
            "scorer": "exact",
            "paper_correct": False,
            "paper_reason": "no_answer",
        },
        {
            **rollout(0, "e2", "a", False, (0, 0, 0, 0)),
            "scorer": "exact",
            "paper_correct": False,
            "paper_reason": "wrong_value",
        },
        {
            **rollout(2, "e1", "a", True, (0, 0, 0, 0)),
            "scorer": "exact",
            "paper_correct": True,
            "paper_reason": "correct",
        },
        {
            **rollout(2, "e2", "a", False, (0, 0, 0, 0)),
            "scorer": "exact",
            "paper_correct": True,
            "paper_reason": "correct",
        },  # e.g. unary minus: the paper's scorer accepts it
        {
            **rollout(2, "e2", "a", False, (0, 0, 0, 0), sample=1),
            "scorer": "exact",
            "paper_correct": False,
            "paper_reason": "no_answer",
        },  # only sample 0 counts
    ]
    write_jsonl(run / "eval_rollouts.jsonl", records)
    rows, _ = run_curves(run, "all_strategies")
    assert [(r["accuracy_exact"], r["accuracy_paper"]) for r in rows] == [(0.5, 0.0), (0.5, 1.0)]
    write_sweep_report([run], tmp_path / "report")
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| condition | step | exact | paper |" in summary
    assert "| all_strategies | 2 | 0.500 | 1.000 |" in summary
    write_jsonl(run / "eval_rollouts.jsonl", [rollout(0, "e1", "a", True, (0, 0, 0, 0))])
    write_sweep_report([run], tmp_path / "report2")
    assert "under each scorer" not in (tmp_path / "report2" / "summary.md").read_text()


def make_evaluation(root: Path, passes: list[float], problems: int = 32) -> Path:
    root.mkdir(parents=True)
    meta = {"model": f"models/{root.name}", "env": {"name": "countdown", "options": {}}, "split": "test",
            "problems": problems, "samples_per_problem": 4}  # fmt: skip
    (root / "eval.json").write_text(json.dumps(meta))
    lines = ["k,pass@k,ci_low,ci_high,maj@k,maj_ci_low,maj_ci_high"]
    lines += [
        f"{k},{p},{p / 2},{min(1.0, p * 1.5)},{p / 2},0.0,{p}" for k, p in zip((1, 2, 4), passes, strict=True)
    ]
    (root / "passk.csv").write_text("\n".join(lines) + "\n")
    return root


def test_report_overlays_pass_at_k_curves_of_comparable_evaluations(tmp_path, capsys, monkeypatch):
    from clirunner import run_cli

    base = make_evaluation(tmp_path / "base", [0.1, 0.2, 0.4])
    rl = make_evaluation(tmp_path / "rl", [0.3, 0.35, 0.4])
    code, _, err = run_cli(["report", "--eval", str(base), "--eval", str(rl), "--out", str(tmp_path / "r")],
                           capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "r" / "passk.png").stat().st_size > 0
    text = (tmp_path / "r" / "summary.md").read_text()
    assert (
        "| rl | models/rl | pass@k | 0.300 [0.150, 0.450] | 0.350 [0.175, 0.525] | 0.400 [0.200, 0.600] |"
        in text
    )
    assert "| base | models/base | maj@k | 0.050 [0.000, 0.100] |" in text

    other = make_evaluation(tmp_path / "other", [0.1, 0.2, 0.4], problems=64)
    code, _, err = run_cli(["report", "--eval", str(base), "--eval", str(other), "--out", str(tmp_path / "r2")],
                           capsys, monkeypatch)  # fmt: skip
    assert code == 2 and "differ in problems (64 vs 32)" in err
    assert not (tmp_path / "r2").exists()
    (rl / "passk.csv").write_text("k,pass@k,ci_low,ci_high,maj@k,maj_ci_low,maj_ci_high\n1,abc,0,0,,,\n")
    code, _, err = run_cli(["report", "--eval", str(rl), "--out", str(tmp_path / "r3")], capsys, monkeypatch)
    assert code == 2 and "passk.csv:2" in err


def test_false_verification_is_reported_over_training_when_rollouts_check_claims(tmp_path):
    run = make_run(tmp_path / "all_strategies" / "rl")
    claims = {
        (0, "e1"): dict(true_steps=2, false_steps=2, true_checks=1, false_checks=1, false_success_claims=1),
        (0, "e2"): dict(true_steps=4, false_steps=0, true_checks=0, false_checks=0, false_success_claims=0),
        (2, "e1"): dict(true_steps=3, false_steps=0, true_checks=2, false_checks=0, false_success_claims=0),
        (2, "e2"): dict(true_steps=0, false_steps=0, true_checks=0, false_checks=0, false_success_claims=0),
    }
    records = [json.loads(line) for line in (run / "eval_rollouts.jsonl").read_text().splitlines()]
    for record in records:
        if record["sample"] == 0:
            record["claims"] = {**claims[(record["step"], record["task_id"])], "truncated": False}
    write_jsonl(run / "eval_rollouts.jsonl", records)
    files = write_sweep_report([run], tmp_path / "report")
    assert tmp_path / "report" / "claims.png" in files
    line = next(li for li in (tmp_path / "report" / "summary.md").read_text().splitlines()
                if li.startswith("| all_strategies | 0.500"))  # fmt: skip
    # step 0: 1 of 2 responses claims success falsely, 1 of 2 checks false, 2 of 8 steps false;
    # step 2: none false; 0 of 2 checks, 0 of 3 steps
    assert line == "| all_strategies | 0.500 | 0.000 | 0.500 | 0.000 | 0.250 | 0.000 |"
    plain = make_run(tmp_path / "plain")
    assert not any(p.name == "claims.png" for p in write_sweep_report([plain], tmp_path / "report2"))
