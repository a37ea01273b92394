"""The judge job (`cogrl behaviors tag --method llm`) against a server that fails in every way there is: the
key stays secret on every failure path, the exit code says whether anything was judged, and a long job
through random faults, a SIGKILL and a rerun keeps every line, never turns a failure into a 0 and never pays
twice for a judgment."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer, cached_judgments
from servers.fake_openai import assert_key_absent
from test_cli_behaviors import GOOD, run_cli, write_lines

from cogrl.behaviors.judge import JudgeCache, LLMJudge, Trajectory, subject_text
from cogrl.behaviors.types import BEHAVIORS
from cogrl.cli.common import JUDGE_FAILED_EXIT
from cogrl.config import JudgeConfig

COGRL = str(Path(sys.executable).with_name("cogrl"))
KEY = "sk-Se\"cr\\et/+k=y%41'~"
"""A usable key whose repr, JSON, URL and bytes forms all differ from the raw text."""
KEY_FILE_VALUE = KEY + "\r\n"
"""What the environment holds: the key as read from a file saved with CRLF."""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# name: (scripted action, server options, whether --model is given, expected exit code)
FAILURE_PATHS: dict[str, tuple[str, dict, bool, int]] = {
    "connection refused": ("", {}, True, JUDGE_FAILED_EXIT),
    "connection refused, model lookup": ("", {}, False, 2),
    "bad url": ("", {}, True, 2),
    "401": ("401", {}, True, 2),
    "403": ("403", {}, True, 2),
    "404": ("404", {}, True, 2),
    "500": ("500", {}, True, JUDGE_FAILED_EXIT),
    "429": ("429", {"retry_after": "0.1"}, True, JUDGE_FAILED_EXIT),
    "hang": ("hang", {"hang_s": 30}, True, JUDGE_FAILED_EXIT),
    "garbage": ("garbage", {}, True, JUDGE_FAILED_EXIT),
    "nested json": ("nested", {}, True, JUDGE_FAILED_EXIT),
    "trickle": ("trickle", {"trickle_s": 0.2}, True, JUDGE_FAILED_EXIT),
    "dropped connection": ("drop", {}, True, JUDGE_FAILED_EXIT),
    "truncated body": ("truncate", {}, True, JUDGE_FAILED_EXIT),
    "model lookup trickles": ("count:1", {"models_action": "trickle", "trickle_s": 0.2}, False, 2),
    "model lookup nested": ("count:1", {"models_action": "nested"}, False, 2),
    "model lookup 401": ("count:1", {"models_action": "401"}, False, 2),
    "reply echoes the key": (f"reply:I saw {KEY} and {json.dumps(KEY)}\nCOUNT: 1", {}, True, 0),
}


@pytest.mark.parametrize("name", list(FAILURE_PATHS))
def test_no_failure_path_shows_the_key(name: str, tmp_path, capsys, monkeypatch, caplog) -> None:
    """Through the CLI and through the library: stdout, stderr, every log record, the exception with its
    traceback, the stats and every file written hold no form of the key (raw, repr, JSON, URL, bytes)."""
    action, options, with_model, exit_code = FAILURE_PATHS[name]
    monkeypatch.setenv("COGRL_JUDGE_API_KEY", KEY_FILE_VALUE)
    caplog.set_level(logging.DEBUG)
    path = write_lines(tmp_path / "in.jsonl", [GOOD])
    timeout = 1.0 if exit_code else 30.0  # a fault needs no patience; a good reply never misses a deadline
    with FakeOpenAIServer(lambda text, b, attempt: action, **options) as server:
        endpoint = {"connection refused": f"http://127.0.0.1:{_closed_port()}", "bad url": "http://[::1"}
        endpoint = endpoint.get(name.split(",")[0], server.url)
        args = ["--endpoint", endpoint, "--cache", str(tmp_path / "cli.sqlite"), "--timeout", str(timeout)]
        args += ["--max-retries", "1", *(["--model", "m"] if with_model else [])]
        code, out, err = run_cli(
            ["behaviors", "tag", "--method", "llm", *args, str(path)], capsys, monkeypatch
        )

        config = JudgeConfig(
            endpoint=endpoint,
            model="m" if with_model else None,
            timeout_s=timeout,
            max_retries=1,
            backoff_s=0,
        )
        judge = LLMJudge(config, JudgeCache(tmp_path / "library.sqlite"))
        try:
            library = repr(judge.tag_many([Trajectory(GOOD["completion"])]))
        except Exception as exc:  # the exception, its chain and its traceback, as a caller would print them
            library = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)
    assert code == exit_code, err
    assert server.authorizations <= {f"Bearer {KEY}", None}  # sent stripped, when sent at all
    if exit_code == JUDGE_FAILED_EXIT:
        assert json.loads(out)["behaviors"] == dict.fromkeys(BEHAVIORS)  # the line is written, all unknown
        assert err.splitlines()[-1].startswith("cogrl: error: all 4 judge requests failed")
    outputs = [out, err, caplog.text, library, repr(judge.stats), *(r.getMessage() for r in caplog.records)]
    assert_key_absent([KEY, KEY_FILE_VALUE], outputs, [p for p in tmp_path.rglob("*") if p.is_file()])


def test_some_failures_keep_unknowns_and_exit_0(tmp_path, capsys, monkeypatch) -> None:
    path = write_lines(tmp_path / "in.jsonl", [{"completion": "fine"}, {"completion": "broken"}])
    script = lambda text, b, attempt: "500" if text == "broken" else "count:2"  # noqa: E731
    with FakeOpenAIServer(script) as server:
        args = ["--endpoint", server.url, "--cache", str(tmp_path / "c.sqlite"), "--max-retries", "1"]
        code, out, err = run_cli(
            ["behaviors", "tag", "--method", "llm", *args, str(path)], capsys, monkeypatch
        )
    assert code == 0
    fine, broken = (json.loads(line)["behaviors"] for line in out.splitlines())
    assert fine == dict.fromkeys(BEHAVIORS, 2) and broken == dict.fromkeys(BEHAVIORS)
    assert "4 judged" in err and "4 failed" in err and "cogrl: error" not in err


def test_hybrid_exits_3_when_every_judge_request_failed(tmp_path, capsys, monkeypatch) -> None:
    path = write_lines(tmp_path / "in.jsonl", [GOOD, {"completion": "plain words"}])
    with FakeOpenAIServer(lambda text, b, attempt: "500") as server:
        args = ["--endpoint", server.url, "--cache", str(tmp_path / "c.sqlite"), "--max-retries", "0"]
        args += ["--method", "hybrid", "--sample-fraction", "1"]
        code, out, err = run_cli(["behaviors", "tag", *args, str(path)], capsys, monkeypatch)
    assert code == JUDGE_FAILED_EXIT and err.splitlines()[-1].startswith("cogrl: error: all 8 judge requests")
    records = [json.loads(line) for line in out.splitlines()]  # written, falling back to the regex counts
    assert [r["behaviors"] for r in records] == [r["behaviors_regex"] for r in records]


# ----------------------------------------------------------------------------------------------------------
# Soak: a few hundred requests through random faults, a SIGKILL mid-run, and a rerun
# ----------------------------------------------------------------------------------------------------------
FAULTS = ("500", "429", "hang", "trickle", "garbage", "drop", "truncate", "nested")
MAX_RETRIES = 2


def _expected(text: str, behavior: str) -> int:
    """The count the server gives when it answers at all: never 0, so a 0 could only be a lost failure."""
    return 1 + (int(text.split()[1].rstrip(":")) + BEHAVIORS.index(behavior)) % 4


@pytest.mark.slow
def test_soak_random_faults_kill_and_rerun(tmp_path) -> None:
    texts = [f"Line {i}: 30+25 = 55, not 32. Let me try {i} * 2 = {2 * i}." for i in range(100)]
    path = write_lines(tmp_path / "in.jsonl", [{"completion": t} for t in texts])
    cache = tmp_path / "cache.sqlite"
    max_chars = JudgeConfig(endpoint="http://x").max_text_chars
    text_of = {hashlib.sha256(subject_text(Trajectory(t), max_chars).encode()).hexdigest(): t for t in texts}
    gate = {"open": False, "answered": 0}
    stall_after = 150

    def script(text: str, behavior: str, attempt: int) -> str:
        """Seeded per (request, attempt): about a third of attempts fail, each way in turn. Until the gate
        opens, the server stalls after `stall_after` answers, so the kill always lands mid-job."""
        if not gate["open"] and gate["answered"] >= stall_after:
            return "hang"
        rng = random.Random(f"soak|{text}|{behavior}|{attempt}")
        if rng.random() < 0.35:
            return rng.choice(FAULTS)
        gate["answered"] += 1
        return f"count:{_expected(text, behavior)}"

    env = {**os.environ, "COGRL_JUDGE_API_KEY": "", "OPENAI_API_KEY": ""}
    options = {"hang_s": 60.0, "trickle_s": 0.1, "retry_after": "0.2"}  # a trickled reply takes > 10 s
    with FakeOpenAIServer(script, **options) as server:
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
        command += ["--concurrency", "16", "--timeout", "3", "--max-retries", str(MAX_RETRIES), str(path)]
        log = tmp_path / "first.log"  # a file, not a pipe: a full pipe would stall the job's warnings
        with log.open("wb") as sink:
            first = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while first.poll() is None and len(cached_judgments(cache)) < 100 and time.monotonic() < deadline:
                time.sleep(0.1)
            if first.poll() is None:  # not already dead (it would have failed the assertion below)
                os.killpg(first.pid, signal.SIGKILL)
        finally:
            first.wait()
        cached = cached_judgments(cache)
        assert 100 <= len(cached) <= stall_after, log.read_text()[-2000:]
        before, rerun_from = Counter(server.requests), len(server.actions)
        gate["open"] = True
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)  # no hang
    assert second.returncode == 0, second.stderr
    after = Counter(server.requests)
    for behavior, digest in cached:  # nothing cached before the kill was paid for again
        assert after[(text_of[digest], behavior)] == before[(text_of[digest], behavior)]
    records = [json.loads(line) for line in second.stdout.splitlines()]
    assert [r["completion"] for r in records] == texts  # every line once, in order
    rerun_actions: dict[tuple[str, str], list[str]] = {}
    for key, action in server.actions[rerun_from:]:
        rerun_actions.setdefault(key, []).append(action)
    unknown = 0
    for record in records:
        for behavior, count in record["behaviors"].items():
            key = (record["completion"], behavior)
            if count is None:  # failed: every attempt of the rerun met a fault
                unknown += 1
                assert len(rerun_actions[key]) == MAX_RETRIES + 1
                assert all(action in FAULTS for action in rerun_actions[key]), rerun_actions[key]
            else:
                assert count == _expected(*key)
    assert 0 < unknown < 100 and f"{unknown} failed" in second.stderr.splitlines()[-1]
