"""`cogrl behaviors agree`: per-behavior kappa, confusion counts and mean-count ratio between two taggings of
the same responses (numbers computed by hand), pairing by id or line, and clear errors for mismatched inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirunner import run_cli
from fake_openai_server import FakeOpenAIServer

from cogrl.behaviors.agreement import match_taggings
from cogrl.behaviors.types import BEHAVIORS

# Ten responses. Verification counts, A: 2 1 1 1 0 0 0 0 0 0; B: 4 2 2 0 2 0 0 0 0 0.
# Presence: both 3, A only 1, B only 1, neither 5 -> p_o = 0.8, p_A = p_B = 0.4, p_e = 0.16 + 0.36 = 0.52,
# kappa = (0.8 - 0.52) / 0.48 = 0.58333; means 0.5 and 1.0, ratio 2.0.
# Backtracking, A: 1 on responses 0-4; B: 1 on 0-4 except response 4 unknown and an extra 1 on response 9.
# Known pairs 9: both 4, A only 0, B only 1, neither 4 -> p_o = 8/9, p_A = 4/9, p_B = 5/9,
# p_e = 20/81 + 20/81 = 40/81, kappa = (72/81 - 40/81) / (41/81) = 32/41; means 4/9 and 5/9, ratio 1.25.
VERIFICATION = ([2, 1, 1, 1, 0, 0, 0, 0, 0, 0], [4, 2, 2, 0, 2, 0, 0, 0, 0, 0])
BACKTRACKING = ([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 1, None, 0, 0, 0, 0, 1])


def tagged(which: int, source: str, ids: bool = True) -> list[dict]:
    records = []
    for i in range(10):
        counts = {b: 0 for b in BEHAVIORS}
        counts["verification"] = VERIFICATION[which][i]
        counts["backtracking"] = BACKTRACKING[which][i]
        record = {"completion": f"response {i}", "behaviors": counts, "behavior_source": source}
        if ids:
            record["id"] = f"r{i}"
        records.append(record)
    return records


def write(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_hand_computed_agreement_through_the_cli(tmp_path, capsys, monkeypatch):
    a = write(tmp_path / "a.jsonl", tagged(0, "regex:v2"))
    b = write(tmp_path / "b.jsonl", list(reversed(tagged(1, "llm:judge:paper"))))  # paired by id
    code, out, err = run_cli(
        ["behaviors", "agree", str(a), str(b), "--out", str(tmp_path / "agree")], capsys, monkeypatch
    )
    assert code == 0, err
    assert "A = regex:v2" in out and "B = llm:judge:paper" in out and "10 responses" in out
    assert "| verification | 10 | 0.583 | 0.800 | 3 | 1 | 1 | 5 | 0 | 0.500 | 1.000 | 2.000 |" in out
    assert "| backtracking | 9 | 0.780 | 0.889 | 4 | 0 | 1 | 4 | 1 | 0.444 | 0.556 | 1.250 |" in out
    assert "| subgoal_setting | 10 | - | 1.000 | 0 | 0 | 0 | 10 | 0 | 0.000 | 0.000 | - |" in out
    report = json.loads((tmp_path / "agree" / "agreement.json").read_text())
    assert report["backtracking"]["kappa"] == pytest.approx(32 / 41)
    assert report["verification"]["kappa"] == pytest.approx(0.28 / 0.48)
    assert report["verification"]["mean_ratio"] == pytest.approx(2.0)
    assert (
        report["verification"]["regex:v2_only"] == 1 and report["verification"]["llm:judge:paper_only"] == 1
    )


def test_pairing_by_line_and_by_id():
    a, b = tagged(0, "x", ids=False), tagged(1, "y", ids=False)
    pairs = match_taggings(a, b)  # no ids: by line
    assert [(x.counts["verification"], y.counts["verification"]) for x, y in pairs][:2] == [(2, 4), (1, 2)]
    pairs = match_taggings(tagged(0, "x"), list(reversed(tagged(1, "y"))))
    assert [(x.counts["verification"], y.counts["verification"]) for x, y in pairs][:2] == [(2, 4), (1, 2)]
    pairs = match_taggings(tagged(0, "x"), tagged(1, "y"), by="line")
    assert len(pairs) == 10


@pytest.mark.parametrize(
    ("first", "second", "by", "message"),
    [
        (tagged(0, "x")[:9], tagged(1, "y", ids=False), "auto", "9 and 10 tagged lines"),
        (tagged(0, "x")[:9], tagged(1, "y"), "auto", "1 id(s) are in only one file, e.g. 'r9'"),
        (tagged(0, "x")[:1] * 2, tagged(1, "y")[:2], "id", "first file: id 'r0' occurs twice"),
        (tagged(0, "x"), tagged(1, "y", ids=False), "id", "second file: every 'id' must be"),
        (
            tagged(0, "x"),
            [{**r, "completion": "other"} for r in tagged(1, "y")],
            "auto",
            "id 'r0': the two files tag different responses",
        ),
        (tagged(0, "x"), tagged(1, "y"), "name", "by must be"),
    ],
)
def test_mismatched_inputs_are_clear_errors(first, second, by, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        match_taggings(first, second, by=by)


def test_cli_errors_name_the_files_and_lines(tmp_path, capsys, monkeypatch):
    a = write(tmp_path / "a.jsonl", tagged(0, "x"))
    b = write(tmp_path / "b.jsonl", tagged(1, "y")[:9])
    code, out, err = run_cli(["behaviors", "agree", str(a), str(b)], capsys, monkeypatch)
    assert code == 2 and f"{a} vs {b}: 1 id(s) are in only one file" in err
    bad = write(tmp_path / "bad.jsonl", [tagged(1, "y")[0], "{broken", {"completion": "untagged"}])
    code, out, err = run_cli(["behaviors", "agree", str(a), str(bad)], capsys, monkeypatch)
    assert code == 2 and f"{bad}:2: invalid JSON" in err
    code, out, err = run_cli(
        ["behaviors", "agree", str(a), str(tmp_path / "none.jsonl")], capsys, monkeypatch
    )
    assert code == 2 and "no such file" in err


def test_regex_against_the_judge_with_the_paper_rubrics(tmp_path, capsys, monkeypatch):
    """Both taggings made by `cogrl behaviors tag` (the judge on a local HTTP server), then compared."""
    texts = [
        "30 + 25 = 55, too high. 30 - 25 = 5, not 32. 8 * 4 = 32, which is the target.",
        "Let me check: 8 * 4 = 32. Correct.",
        "I will write the numbers: 30, 25, 8, 4.",
    ]
    source = write(
        tmp_path / "in.jsonl", [{"id": i, "completion": t, "target": 32} for i, t in enumerate(texts)]
    )
    code, out, err = run_cli(["behaviors", "tag", str(source)], capsys, monkeypatch)
    regex_file = write(tmp_path / "regex.jsonl", out.splitlines())  # verification 2, 1, 0; nothing else
    # The judge with the paper's rubrics: verification 3, 1, 0; backtracking 2, 0, 0 ("30 - 25" restarts).
    judged = {(texts[0], "verification"): 3, (texts[1], "verification"): 1, (texts[0], "backtracking"): 2}
    with FakeOpenAIServer(
        lambda text, behavior, attempt: f"count:{judged.get((text, behavior), 0)}"
    ) as server:
        args = ["behaviors", "tag", "--method", "llm", "--rubrics", "paper", "--endpoint", server.url]
        code, out, err = run_cli([*args, "--cache", str(tmp_path / "c"), str(source)], capsys, monkeypatch)
        assert code == 0, err
    judge_file = write(tmp_path / "judge.jsonl", out.splitlines())
    code, out, err = run_cli(["behaviors", "agree", str(regex_file), str(judge_file)], capsys, monkeypatch)
    assert code == 0, err
    assert "A = regex:v2" in out and "B = llm:fake-judge:paper" in out and "3 responses" in out
    # verification: both 2, neither 1 -> kappa 1; means 1 and 4/3
    assert "| verification | 3 | 1.000 | 1.000 | 2 | 0 | 0 | 1 | 0 | 1.000 | 1.333 | 1.333 |" in out
    # backtracking: B only 1, neither 2 -> p_o = 2/3 = p_e, kappa 0; A's mean 0: no ratio
    assert "| backtracking | 3 | 0.000 | 0.667 | 0 | 0 | 1 | 2 | 0 | 0.000 | 0.667 | - |" in out
