"""Behavior analyses against hand-computed expectations, and the report files they write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cogrl.behaviors.analysis import (
    CURVE_COLUMNS,
    accuracy_by_behavior,
    behavior_curves,
    behavior_rates,
    cooccurrence,
    curves_csv,
    label_metrics,
    metrics_table,
    read_curves_csv,
    write_report,
)
from cogrl.files import InputError

PAPER_HEADER = (
    "condition,step,avg_verifications,avg_backtracking,avg_subgoals,avg_backwards,total_verifications,"
    "total_backtracking,total_subgoals,total_backwards,accuracy,response_length"
)
PAPER_CSV = Path("/work/shared/reference/paper/qwen_results.csv")

V, B, S, W = "verification", "backtracking", "subgoal_setting", "backward_chaining"


def tags(v, b, s, w):
    return {V: v, B: b, S: s, W: w}


# r2 has correct=True but reward 0.0: the explicit field wins. r3 has neither: correctness unknown.
RECORDS = [
    {"behaviors": tags(2, 0, 1, None), "reward": 1.0, "step": 0, "completion": "abcd"},
    {"behaviors": tags(0, 1, 0, 0), "reward": 0.1, "step": 0, "completion": "ab"},
    {"behaviors": tags(1, 1, None, 0), "correct": True, "reward": 0.0, "step": 10, "completion": "abcdef"},
    {"behaviors": tags(None, 0, 0, 1), "step": 10},
]


def test_label_metrics_hand_computed() -> None:
    gold = [tags(True, True, True, False), tags(True, False, True, False)]
    gold += [tags(False, False, False, False), tags(False, False, False, True)]
    predicted = [tags(True, True, False, True), tags(False, False, False, True)]
    predicted += [tags(True, False, False, False), tags(False, None, False, True)]
    metrics = label_metrics(predicted, gold)
    v, b, s, w = (metrics["per_behavior"][k] for k in (V, B, S, W))
    assert (v["tp"], v["fp"], v["fn"], v["tn"]) == (1, 1, 1, 1)
    assert v["precision"] == v["recall"] == v["f1"] == 0.5
    assert (b["tp"], b["fp"], b["fn"], b["tn"], b["unknown"]) == (1, 0, 0, 2, 1)
    assert b["f1"] == 1.0
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)
    assert w["precision"] == pytest.approx(1 / 3) and w["recall"] == 1.0 and w["f1"] == pytest.approx(0.5)
    assert metrics["macro_f1"] == pytest.approx(0.5)
    assert "**0.50**" in metrics_table(metrics)


def test_label_metrics_length_mismatch() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 labels"):
        label_metrics([tags(True, True, True, True)] * 2, [tags(True, True, True, True)])


def test_behavior_rates_exclude_unknowns() -> None:
    rates = behavior_rates(RECORDS)
    assert rates[V] == {"n": 3, "unknown": 1, "rate": pytest.approx(2 / 3), "mean_count": 1.0, "total": 3}
    assert rates[B] == {"n": 4, "unknown": 0, "rate": 0.5, "mean_count": 0.5, "total": 2}
    assert rates[S]["unknown"] == 1 and rates[S]["mean_count"] == pytest.approx(1 / 3)
    assert rates[W]["n"] == 3 and rates[W]["rate"] == pytest.approx(1 / 3)


def test_accuracy_by_behavior() -> None:
    acc = accuracy_by_behavior(RECORDS)
    assert acc[V] == {"p_correct_present": 1.0, "p_correct_absent": 0.0, "n_present": 2, "n_absent": 1}
    assert acc[B] == {"p_correct_present": 0.5, "p_correct_absent": 1.0, "n_present": 2, "n_absent": 1}
    assert acc[S] == {"p_correct_present": 1.0, "p_correct_absent": 0.0, "n_present": 1, "n_absent": 1}
    assert acc[W] == {"p_correct_present": None, "p_correct_absent": 0.5, "n_present": 0, "n_absent": 2}


def test_cooccurrence() -> None:
    co = cooccurrence(RECORDS)
    assert co["counts"][V][B] == co["counts"][B][V] == 1
    assert co["n"][V][B] == 3 and co["rates"][V][B] == pytest.approx(1 / 3)
    assert co["counts"][V][V] == 2 and co["rates"][V][V] == pytest.approx(2 / 3)  # diagonal = presence
    assert co["counts"][B][W] == 0 and co["n"][B][W] == 3
    assert co["n"][S][W] == 2


def test_behavior_curves_by_step() -> None:
    rows = behavior_curves(RECORDS, condition="run1")
    assert [r["step"] for r in rows] == [0, 10]
    first, second = rows
    assert first["condition"] == "run1"
    assert (first["avg_verifications"], first["total_verifications"]) == (1.0, 2)
    assert (first["avg_backwards"], first["total_backwards"]) == (0.0, 0)  # the unknown is left out
    assert first["accuracy"] == 0.5 and first["response_length"] == 3.0
    assert (second["avg_verifications"], second["avg_subgoals"], second["avg_backwards"]) == (1.0, 0.0, 0.5)
    assert second["accuracy"] == 1.0 and second["response_length"] == 6.0


def test_curves_csv_matches_the_paper_format(tmp_path: Path) -> None:
    text = curves_csv(behavior_curves(RECORDS))
    assert text.splitlines()[0] == PAPER_HEADER == ",".join(CURVE_COLUMNS)
    if PAPER_CSV.exists():
        assert PAPER_CSV.read_text(encoding="utf-8").splitlines()[0] == PAPER_HEADER
    path = tmp_path / "c.csv"
    path.write_text(text, encoding="utf-8")
    back = read_curves_csv(path)
    assert back[1]["avg_backwards"] == 0.5 and back[1]["step"] == 10


def test_write_report(tmp_path: Path) -> None:
    import matplotlib.image

    reference = tmp_path / "paper.csv"
    reference.write_text(
        PAPER_HEADER
        + "\nbase_ppo,0,0.6,0.6,0.5,0.06,6,6,5,1,0.01,600.0\nbase_ppo,10,0.2,0.1,0.1,0.06,2,1,1,1,0.08,140.0\n"
        "other,0,1,1,1,1,1,1,1,1,0.5,10\n",
        encoding="utf-8",
    )
    out = tmp_path / "report"
    summary = write_report(
        RECORDS, out, condition="run1", reference_csv=reference, reference_conditions=["base_ppo"]
    )
    assert sorted(p.name for p in out.iterdir()) == ["curves.csv", "curves.png", "summary.json"]
    on_disk = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["n_records"] == 4 and on_disk["accuracy"] == pytest.approx(2 / 3)
    assert on_disk["behaviors"][B]["rate"] == 0.5
    image = matplotlib.image.imread(out / "curves.png")
    assert image.ndim == 3 and image.shape[0] > 100
    assert read_curves_csv(out / "curves.csv")[0]["condition"] == "run1"


def test_write_report_without_steps(tmp_path: Path) -> None:
    records = [{k: v for k, v in r.items() if k != "step"} for r in RECORDS]
    summary = write_report(records, tmp_path / "r")
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["summary.json"]
    assert summary["files"] == ["summary.json"]


def test_paper_results_overlay_reads(tmp_path: Path) -> None:
    if not PAPER_CSV.exists():
        pytest.skip("the paper's results are not on this machine")
    rows = read_curves_csv(PAPER_CSV)
    assert {"base_ppo", "all_strategies"} <= {r["condition"] for r in rows}
    write_report(RECORDS, tmp_path / "r", reference_csv=PAPER_CSV, reference_conditions=["base_ppo"])
    assert (tmp_path / "r" / "curves.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"reward": 1.0}, "record 0: 'behaviors' must be a mapping"),
        ({"behaviors": {V: 1, B: 0, S: 0}}, "record 0: behaviors.backward_chaining is missing"),
        ({"behaviors": tags(-1, 0, 0, 0)}, "record 0: behaviors.verification must be a count"),
        ({"behaviors": tags(True, 0, 0, 0)}, "record 0: behaviors.verification must be a count"),
    ],
)
def test_bad_records_are_named(record: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        behavior_rates([record])


def test_curves_need_a_step() -> None:
    with pytest.raises(InputError, match="record 1: 'step' is required"):
        behavior_curves([RECORDS[0], {"behaviors": tags(0, 0, 0, 0)}])
