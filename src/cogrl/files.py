"""Safe file I/O: atomic writes, append-only JSONL, and JSONL reading that names the bad line.

Every output of the lab goes through here, so that a crash never leaves a half-written file behind and a
malformed input line is reported with its file and line number instead of stopping a whole job.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml


class InputError(ValueError):
    """Bad user input; the message names the file, line or field. The CLI exits 2 with it."""


@dataclass(frozen=True)
class JsonlLine:
    """One line of a JSONL file: its 1-based number, and either the parsed object or the parse error."""

    number: int
    record: dict[str, Any] | None
    error: str | None = None


def read_jsonl(source: str | Path | IO[str] | IO[bytes]) -> Iterator[JsonlLine]:
    """Yield every non-blank line; a line that is not a JSON object yields an error instead of raising.

    Lines are split on newline bytes and decoded one by one, so a line that is not UTF-8, is nested too
    deeply, holds an integer too long to convert, or holds NaN/Infinity (not JSON; Python's own writer used
    to emit them) is an error for that line only, and the lines after it are still read."""
    if isinstance(source, str | Path):
        with open(source, "rb") as handle:
            yield from read_jsonl(handle)
        return
    for number, raw in enumerate(source, start=1):
        record, error = _parse_line(raw)
        if record is None and error is None:
            continue
        yield JsonlLine(number, record, error)


def _parse_line(raw: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None), (None, reason), or (None, None) for a blank line."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
    if not raw.strip():
        return None, None
    try:
        record = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, "invalid JSON (nested too deeply)"
    except ValueError as exc:  # NaN/Infinity, a float out of range, an integer beyond Python's digit limit
        return None, f"invalid JSON ({str(exc).split(';')[0]})"
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {type(record).__name__}"
    return record, None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error (PyYAML keeps the last
    one silently, so a typo'd recipe would quietly lose a setting)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: PyYAML reports it below
                break
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse YAML safely, refusing duplicate keys (the one YAML parser for recipes, overrides, patterns)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects


def read_yaml_mapping(path: Path, what: str, empty_ok: bool = False) -> dict[str, Any]:
    """A YAML file that must hold a mapping (a recipe, a pattern set); faults name the file, the line, and
    `what` was being read. An empty file is ``{}`` when `empty_ok`."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: a {what} must be UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
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
    """One strict JSON line (no trailing newline), keeping non-ASCII text readable.

    JSON has no NaN or infinity: a non-finite float is written as null. A string holding a lone surrogate
    (from a ``\\udXXX`` escape in an input line) has no UTF-8 form: that line is written with every non-ASCII
    character escaped, which reads back to the very same string."""
    try:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        record = _finite(record)
        text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def check_output_dir(
    path: Path,
    overwrite: bool = False,
    *,
    inputs: Iterable[Path | str | None] = (),
    remedy: str | None = None,
    resume_marker: str | None = None,
) -> Path:
    """The one policy for a command's output directory (--out); returns the resolved absolute target.

    Refused always: an existing file (or a file among its parents), the current directory, the home
    directory or one of their parents, and a folder that is or holds one of the command's `inputs`. Refused
    unless `overwrite`: an existing non-empty directory. Commands without --overwrite give their own `remedy`
    (e.g. "use --resume"); a directory holding `resume_marker` is theirs to resume into. Creates nothing:
    the writer then builds beside the target and renames it into place (`atomic_path`)."""
    target = Path(path).expanduser().resolve()
    never = "" if remedy is not None else " (refused even with --overwrite)"
    for folder in (Path.cwd().resolve(), Path.home().resolve()):
        if target == folder or target in folder.parents:
            raise InputError(
                f"{path}: will not write over the current directory, the home directory or one of their "
                f"parents{never}; give a new folder"
            )
    for item in inputs:
        if item is not None and (target == (held := Path(item).resolve()) or target in held.parents):
            raise InputError(f"{path}: holds this command's input {item}{never}; give another folder")
    existing = next((p for p in (target, *target.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        what = (
            "is a file, not a directory" if existing == target else f"{existing} is a file, not a directory"
        )
        raise InputError(f"{path}: {what}{never}")
    if existing != target or (resume_marker and (target / resume_marker).is_file()):
        return target
    try:
        empty = next(target.iterdir(), None) is None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the output directory ({exc.strerror})") from None
    if not empty and not overwrite:
        raise InputError(f"{path}: exists and is not empty; {remedy or 'pass --overwrite to replace it'}")
    return target


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in a fresh folder beside the resolved ``path``; on success rename it over
    ``path`` (file or directory).

    A replaced directory is first moved into that folder and deleted with it only once the new one is in
    place, so a failure keeps the old one, and nothing is ever removed but the target and what this call
    created."""
    path = Path(path).resolve()
    if not path.name:
        raise InputError(f"{path}: cannot replace the root directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp = scratch / path.name
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            aside = scratch / f"{path.name}.old"
            os.replace(path, aside)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(aside, path)
                raise
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
