"""`cogrl behaviors tag` and `cogrl behaviors report`, end to end (a real local HTTP server for the judge)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from clirunner import run_cli
from fake_openai_server import FakeOpenAIServer, always, cached_judgments

from cogrl.behaviors.judge import JudgeConfig, Trajectory, subject_text
from cogrl.behaviors.types import BEHAVIORS

COGRL = str(Path(sys.executable).with_name("cogrl"))
GOOD = {
    "completion": "Let me try 30+25=55. That is not 32. Let me try another approach: 8*4 = 32, which is the target.",
    "numbers": [30, 25, 8, 4],
    "target": 32,
    "reward": 1.0,
    "step": 3,
}


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_regex_tag_keeps_lines_in_order_and_reports_malformed_ones(tmp_path, capsys, monkeypatch) -> None:
    lines = [
        GOOD,
        "{not json",
        {"completion": 3},
        {"completion": "plain words"},
        {"completion": "x", "target": "32"},
    ]
    code, out, err = run_cli(
        ["behaviors", "tag", str(write_lines(tmp_path / "in.jsonl", lines))], capsys, monkeypatch
    )
    assert code == 2
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["completion"] for r in records] == [GOOD["completion"], "plain words"]
    assert records[0]["reward"] == 1.0 and records[0]["step"] == 3  # input fields pass through
    assert records[0]["behaviors"] == {
        "verification": 2,
        "backtracking": 1,
        "subgoal_setting": 0,
        "backward_chaining": 0,
    }
    assert records[0]["behavior_spans"]["backtracking"] == [[37, 47]]
    assert records[0]["behavior_source"] == "regex:v2"
    assert "in.jsonl:2: invalid JSON" in err and "in.jsonl:3: field 'completion'" in err
    assert "in.jsonl:5: field 'target' must be an integer" in err
    assert "3 malformed line(s) skipped" in err


def test_bad_invocations_exit_2_with_one_line(tmp_path, capsys, monkeypatch) -> None:
    missing = str(tmp_path / "missing.jsonl")
    assert run_cli(["behaviors", "tag", missing], capsys, monkeypatch)[2].strip().endswith("no such file")
    present = str(write_lines(tmp_path / "in.jsonl", [GOOD]))
    code, out, err = run_cli(["behaviors", "tag", "--method", "llm", present], capsys, monkeypatch)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "--endpoint is required" in err
    code, _, err = run_cli(
        ["behaviors", "tag", "--method", "hybrid", "--endpoint", "nohost", present], capsys, monkeypatch
    )
    assert code == 2 and "http(s) URL" in err


def _judge_args(server: FakeOpenAIServer, tmp_path: Path, *extra: str) -> list[str]:
    return ["--endpoint", server.url, "--cache", str(tmp_path / "cache.sqlite"), "--timeout", "2", *extra]


def test_llm_tag_writes_counts_and_null_for_unknown(tmp_path, capsys, monkeypatch) -> None:
    script = lambda text, b, attempt: "reply:no idea" if b == "backtracking" else "count:2"  # noqa: E731
    path = write_lines(tmp_path / "in.jsonl", [GOOD, {"completion": "second"}])
    with FakeOpenAIServer(script) as server:
        args = ["behaviors", "tag", "--method", "llm", *_judge_args(server, tmp_path), str(path)]
        code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["completion"] for r in records] == [GOOD["completion"], "second"]
    expected = {"verification": 2, "backtracking": None, "subgoal_setting": 2, "backward_chaining": 2}
    assert all(r["behaviors"] == expected for r in records)
    assert all(
        r["behavior_spans"] == {b: [] for b in BEHAVIORS} and r["behavior_source"] == "llm:fake-judge"
        for r in records
    )
    assert "2 without a readable count" in err


def test_hybrid_tag_then_report_writes_agreement(tmp_path, capsys, monkeypatch) -> None:
    lines = [
        GOOD,
        {"completion": "Nothing useful here."},
        {"completion": "Maybe 3*4 = 12.", "numbers": [3, 4], "target": 12},
    ]
    path = write_lines(tmp_path / "in.jsonl", lines)
    with FakeOpenAIServer(always("count:1")) as server:
        args = [
            "behaviors",
            "tag",
            "--method",
            "hybrid",
            "--sample-fraction",
            "1",
            *_judge_args(server, tmp_path),
        ]
        code, out, err = run_cli([*args, str(path)], capsys, monkeypatch)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3 and server.total() == 12
    for record in records:
        assert record["behaviors"] == {b: 1 for b in BEHAVIORS} and record["behavior_source"] == "hybrid"
        assert record["behaviors_judge"] == {b: 1 for b in BEHAVIORS} and "sample" in record["judge_reasons"]
    assert records[0]["behaviors_regex"]["verification"] == 2
    tagged = tmp_path / "tagged.jsonl"
    tagged.write_text(out)
    code, _, err = run_cli(
        ["behaviors", "report", str(tagged), "--out", str(tmp_path / "report")], capsys, monkeypatch
    )
    assert code == 0, err
    assert (tmp_path / "report" / "summary.json").exists() and "agreement.csv" in err
    agreement = json.loads((tmp_path / "report" / "agreement.json").read_text())
    assert agreement["verification"]["n"] == 3 and agreement["verification"]["both_present"] >= 1


def test_report_rejects_untagged_lines(tmp_path, capsys, monkeypatch) -> None:
    path = write_lines(tmp_path / "in.jsonl", [GOOD])
    code, _, err = run_cli(
        ["behaviors", "report", str(path), "--out", str(tmp_path / "r")], capsys, monkeypatch
    )
    assert code == 2 and "in.jsonl:1: field 'behaviors'" in err and "no tagged lines" in err


def test_api_key_never_reaches_outputs_cache_or_logs(tmp_path, capsys, monkeypatch, caplog) -> None:
    key = "sk-cli-test-91d2e4b7"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    script = lambda text, b, attempt: "429" if attempt == 0 else f"reply:{key} COUNT: 1"  # noqa: E731
    path = write_lines(tmp_path / "in.jsonl", [GOOD])
    with FakeOpenAIServer(script) as server:
        args = ["behaviors", "tag", "--method", "llm", *_judge_args(server, tmp_path), str(path)]
        code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 0 and json.loads(out)["behaviors"]["verification"] == 1
    assert set(server.authorizations) == {f"Bearer {key}"}
    assert "retry" in caplog.text
    for text in (out, err, caplog.text):
        assert key not in text
    for file in tmp_path.iterdir():
        assert key.encode() not in file.read_bytes(), file


@pytest.mark.slow
def test_a_killed_job_resumes_without_paying_twice(tmp_path) -> None:
    texts = [f"Attempt {i}: 30+25 = 55, not 32." for i in range(12)]
    path = write_lines(tmp_path / "in.jsonl", [{"completion": t} for t in texts])
    cache = tmp_path / "cache.sqlite"
    sha = {
        hashlib.sha256(
            subject_text(Trajectory(t), JudgeConfig(endpoint="http://x").max_text_chars).encode()
        ).hexdigest(): t
        for t in texts
    }
    env = {**os.environ, "COGRL_JUDGE_API_KEY": ""}
    # The server answers 10 requests, then hangs until the test opens the gate: the kill always lands
    # mid-job with exactly 10 judgments cached, however slow the machine.
    gate = {"open": False, "answered": 0}

    def script(text: str, behavior: str, attempt: int) -> str:
        if not gate["open"] and gate["answered"] >= 10:
            return "hang"
        gate["answered"] += 1
        return "count:1"

    with FakeOpenAIServer(script, hang_s=120) as server:
        command = [
            COGRL,
            "behaviors",
            "tag",
            "--method",
            "llm",
            "--endpoint",
            server.url,
            "--cache",
            str(cache),
        ]
        command += ["--concurrency", "2", str(path)]
        first = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 120
            while first.poll() is None and len(cached_judgments(cache)) < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            if first.poll() is None:  # not already dead (it would have failed the assertion below)
                os.killpg(first.pid, signal.SIGKILL)
        finally:
            first.communicate()
        cached = cached_judgments(cache)
        assert len(cached) == 10, "the job was not killed mid-way"
        before = Counter(server.requests)
        gate["open"] = True
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 0, second.stderr
        after = Counter(server.requests)
        for behavior, digest in cached:  # nothing cached before the kill was asked again
            assert after[(sha[digest], behavior)] == before[(sha[digest], behavior)] == 1
        assert set(after) == {(t, b) for t in texts for b in BEHAVIORS}
        assert max(after.values()) <= 2  # at most the requests in flight at the kill were repeated
        assert len(cached_judgments(cache)) == 48
        records = [json.loads(line) for line in second.stdout.splitlines()]
        assert [r["completion"] for r in records] == texts and all(
            r["behaviors"]["verification"] == 1 for r in records
        )
        third = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert third.returncode == 0 and Counter(server.requests) == after and "48 from cache" in third.stderr
