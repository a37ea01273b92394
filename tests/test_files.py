"""Atomic writes, append-only logs and line-numbered JSONL reading."""

from __future__ import annotations

import io

from cogrl.files import JsonlAppender, atomic_path, read_jsonl, write_atomic


def test_read_jsonl_reports_bad_lines_and_keeps_going():
    text = '{"a": 1}\n\nnot json\n[1, 2]\n{"b": 2}\n'
    lines = list(read_jsonl(io.StringIO(text)))
    assert [(line.number, line.record) for line in lines if line.record] == [(1, {"a": 1}), (5, {"b": 2})]
    errors = {line.number: line.error for line in lines if line.error}
    assert set(errors) == {3, 4}
    assert "invalid JSON" in errors[3] and "expected a JSON object" in errors[4]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    try:
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "half").write_text("x")
            raise RuntimeError("crash")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_a_directory(tmp_path):
    target = tmp_path / "out"
    for content in ("old", "new"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "f").write_text(content)
    assert (target / "f").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_write_atomic(tmp_path):
    write_atomic(tmp_path / "a" / "b.txt", "hello")
    assert (tmp_path / "a" / "b.txt").read_text() == "hello"


def test_appender_cuts_a_torn_tail(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonlAppender(path) as log:
        log.write([{"step": 1}, {"step": 2}])
    with open(path, "a") as handle:
        handle.write('{"step": 3, "trunc')  # a crash mid-write
    with JsonlAppender(path) as log:
        log.write([{"step": 3}])
    assert [line.record for line in read_jsonl(path)] == [{"step": 1}, {"step": 2}, {"step": 3}]
