"""Safe file I/O: atomic writes, append-only JSONL, and JSONL reading that names the bad line.

Every output of the lab goes through here, so that a crash never leaves a half-written file behind and a
malformed input line is reported with its file and line number instead of stopping a whole job.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml


class InputError(ValueError):
    """Bad user input; the message names the file, line or field. The CLI exits 2 with it."""


@dataclass(frozen=True)
class JsonlLine:
    """One line of a JSONL file: its 1-based number, and either the parsed object or the parse error."""

    number: int
    record: dict[str, Any] | None
    error: str | None = None


def read_jsonl(source: str | Path | TextIO) -> Iterator[JsonlLine]:
    """Yield every non-blank line; a line that is not a JSON object yields an error instead of raising."""
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as handle:
            yield from read_jsonl(handle)
        return
    for number, raw in enumerate(source, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield JsonlLine(number, None, f"invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict):
            yield JsonlLine(number, None, f"expected a JSON object, got {type(record).__name__}")
            continue
        yield JsonlLine(number, record)


def read_yaml_mapping(path: Path, what: str, empty_ok: bool = False) -> dict[str, Any]:
    """A YAML file that must hold a mapping (a recipe, a pattern set); faults name the file, the line, and
    `what` was being read. An empty file is ``{}`` when `empty_ok`."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise InputError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a {what} must be a YAML mapping, got {type(raw).__name__}")
    return raw


def dumps(record: dict[str, Any]) -> str:
    """One JSONL line (no trailing newline), keeping non-ASCII text readable."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it over ``path`` (file or directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".{path.name}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_atomic(path: str | Path, text: str) -> None:
    """Write a whole text file so that readers see the old content or the new, never a mix."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


class JsonlAppender:
    """An append-only JSONL log that is flushed and fsynced per batch, so a crash loses at most the batch
    being written, and a torn last line (from a crash mid-write) is cut off on reopen."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_torn_tail(self.path)
        # A long-lived handle (one per log, closed by close()), hence no context manager.
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        self._handle.write("".join(dumps(r) + "\n" for r in records))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        handle.truncate(data.rfind(b"\n") + 1)


def remove_dir_atomic(path: str | Path) -> None:
    """Remove a directory so that it is either fully there or gone: rename it away first, then delete."""
    path = Path(path)
    trash = path.with_name(f".{path.name}.deleting")
    os.replace(path, trash)
    shutil.rmtree(trash)
