"""Run directories: what a run saves so it can be reproduced, inspected and resumed.

    runs/<name>-<timestamp>/
      config.yaml      the resolved recipe (after overrides)
      versions.json    seed, git commit, package versions, command line (never environment variables)
      rollouts.jsonl   every trajectory: step, task id, completion, reward, reason, behavior counts
      metrics.jsonl    one line per step
      eval.jsonl       one line per evaluation
      eval_rollouts.jsonl  every test response of every evaluation (same fields as rollouts.jsonl)
      checkpoints/step-000020/   written to a temporary name, then renamed (atomic)
      wandb/           offline unless the recipe says otherwise

Resume contract: logs are appended for a step *before* that step's checkpoint is written. On resume, every
log line of a step after the checkpoint resumed from is dropped (the steps are redone deterministically), so
the logs never hold a duplicated or a missing step, wherever the crash happened.

A checkpoint ends with ``manifest.json`` (size and sha256 of every file, written last before the atomic
rename). A resume checks everything first (config, versions.json, every log line it keeps, the checkpoint's
files against its manifest) and only then rewrites anything; a checkpoint that fails the check is set aside
and the newest one that passes is used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from cogrl.config import TrainRecipe, dump_recipe, load_recipe
from cogrl.files import (
    InputError,
    JsonlAppender,
    atomic_path,
    read_jsonl,
    remove_dir_atomic,
    write_atomic,
)
from cogrl.provenance import run_metadata

LOGS = ("rollouts.jsonl", "metrics.jsonl", "eval.jsonl", "eval_rollouts.jsonl")
CHECKPOINT = re.compile(r"^step-(\d{6})$")
MANIFEST = "manifest.json"


class RunDir:
    """A run's directory: its config, metadata, append-only logs and atomic checkpoints."""

    def __init__(self, root: Path, recipe: TrainRecipe) -> None:
        self.root = root
        self.recipe = recipe
        self._logs: dict[str, JsonlAppender] = {}

    @classmethod
    def create(cls, recipe: TrainRecipe, out: Path | None = None, base: Path = Path("runs")) -> RunDir:
        root = out or base / f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if root.exists() and any(root.iterdir()):
            raise InputError(
                f"{root}: run directory exists and is not empty (use --resume {root} to continue)"
            )
        root.mkdir(parents=True, exist_ok=True)
        write_atomic(root / "config.yaml", dump_recipe(recipe))
        write_atomic(root / "versions.json", json.dumps(run_metadata(recipe.seed), indent=2) + "\n")
        return cls(root, recipe)

    @classmethod
    def resume(
        cls, root: Path, overrides: Sequence[str] = (), warn: Callable[[str], None] | None = None
    ) -> RunDir:
        """Reopen a run: its saved config, the newest checkpoint that loads, and logs cut back to it.

        `overrides` (e.g. `trainer.steps=500` to train longer) are applied to the saved config, which is
        rewritten, and recorded with this resume in versions.json. Changing anything that shaped the steps
        already taken (the model, the algorithm, the batch) makes the run a mix of two experiments.

        Nothing is rewritten until everything checks out: a bad config, versions.json or kept log line, or no
        loadable checkpoint, is an InputError with the run untouched. Each newer checkpoint that does not
        load is reported through `warn` (default: stderr) and set aside as `step-NNNNNN.rejected`."""
        warn = warn or _warn
        if not (root / "config.yaml").exists():
            raise InputError(f"{root}: not a run directory (no config.yaml)")
        run = cls(root, load_recipe(root / "config.yaml", overrides))
        versions = root / "versions.json"
        meta = _read_versions(versions)
        checkpoint, rejected = run._loadable_checkpoint()
        step = checkpoint[0] if checkpoint else -1  # no checkpoint yet: even the step-0 eval is redone
        kept_logs = {name: _kept_log(root / name, step) for name in LOGS if (root / name).exists()}

        # Everything checked: from here on only writes.
        for path, fault in rejected:
            aside = _set_aside(path)
            warn(f"{path}: skipped ({fault}); set aside as {aside.name}")
        if overrides:
            write_atomic(root / "config.yaml", dump_recipe(run.recipe))
        for name, kept in kept_logs.items():
            if kept is not None:
                write_atomic(root / name, kept)
        if meta is None:
            warn(f"{versions}: missing; starting a new one that records this resume only")
            meta = {}
        resume = {
            **run_metadata(run.recipe.seed),
            "from_step": max(step, 0),
            "overrides": list(overrides),
        }
        if rejected:
            resume["rejected_checkpoints"] = {path.name: fault for path, fault in rejected}
        meta["resumes"] = [*meta.get("resumes", []), resume]
        write_atomic(versions, json.dumps(meta, indent=2) + "\n")
        return run

    def _loadable_checkpoint(self) -> tuple[tuple[int, Path] | None, list[tuple[Path, str]]]:
        """The newest checkpoint whose files check out, and the (path, fault) of each newer one that did not.
        No checkpoint at all is fine (the run starts over); checkpoints that all fail are an InputError."""
        rejected = []
        for step, path in reversed(self.checkpoints()):
            fault = checkpoint_fault(path)
            if fault is None:
                return (step, path), rejected
            rejected.append((path, fault))
        if rejected:
            faults = "; ".join(f"{path.name}: {fault}" for path, fault in rejected)
            raise InputError(f"{self.root}: no checkpoint can be resumed from ({faults})")
        return None, []

    # ---------------------------------------------------------------------------------------------- logs
    def log(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        """Append records (each with a "step") to one of LOGS; flushed and fsynced before returning."""
        if name not in self._logs:
            self._logs[name] = JsonlAppender(self.root / name)
        self._logs[name].write(records)

    def read(self, name: str) -> list[dict[str, Any]]:
        return [line.record for line in read_jsonl(self.root / name) if line.record is not None]

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    # ------------------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    def checkpoints(self) -> list[tuple[int, Path]]:
        return checkpoints_of(self.root)

    def last_checkpoint(self) -> tuple[int, Path] | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def save_checkpoint(self, step: int, save: Callable[[Path], None], keep: int) -> Path:
        """Call `save(tmp_dir)`, write its manifest, then rename the finished directory to
        checkpoints/step-NNNNNN (atomic); prune old ones."""
        target = self.checkpoint_dir / f"step-{step:06d}"
        with atomic_path(target) as tmp:
            tmp.mkdir()
            save(tmp)
            (tmp / "step.json").write_text(json.dumps({"step": step}) + "\n")
            write_manifest(tmp)
        for _, old in self.checkpoints()[:-keep]:
            remove_dir_atomic(old)
        return target


def checkpoints_of(root: Path) -> list[tuple[int, Path]]:
    """(step, directory) of every checkpoint of the run directory ``root``, oldest first."""
    folder = Path(root) / "checkpoints"
    if not folder.exists():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT.match(p.name)))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _read_versions(path: Path) -> dict[str, Any] | None:
    """versions.json as a mapping, None when it is missing; unreadable or malformed is an InputError (it
    holds the only record of how the run was made, so it is never silently replaced)."""
    remedy = "fix it, or move it aside to resume with a new one"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (byte offset {exc.start}); {remedy}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); {remedy}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("resumes", []), list):
        raise InputError(f"{path}: expected a JSON object whose 'resumes' is a list; {remedy}")
    return meta


def _kept_log(path: Path, step: int) -> str | None:
    """The text of a log cut back to the lines of steps <= `step` (None: unchanged), checked line by line.

    A malformed line before the first dropped step is an InputError naming file:line; after it, or as the
    torn unterminated last line of a crash mid-write, it belongs to the redone steps and is dropped."""
    data = path.read_bytes()
    raws = io.BytesIO(data).readlines()
    kept: list[bytes] = []
    dropping = False
    for line in read_jsonl(io.BytesIO(data)):
        raw = raws[line.number - 1]
        error = line.error
        if line.record is not None:
            line_step = line.record.get("step")
            if type(line_step) is not int:
                error = f"'step' must be an integer, got {line_step!r}"
        torn = line.number == len(raws) and not raw.endswith(b"\n")
        if error is not None and not (dropping or torn):
            raise InputError(
                f"{path}:{line.number}: {error} (a line the resume from step {max(step, 0)} would keep; "
                "fix or delete it)"
            )
        if error is not None or torn or line_step > step:
            dropping = True
            continue
        kept.append(raw)
    text = b"".join(kept)
    return None if text == data else text.decode("utf-8")


def _set_aside(path: Path) -> Path:
    """Rename a checkpoint that failed its check out of the way (kept for inspection, never loaded)."""
    aside = path.with_name(f"{path.name}.rejected")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.rejected-{n}")
    os.replace(path, aside)
    return aside


def _files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """Record the size and sha256 of every file of a finished checkpoint, so a resume can tell a complete
    one from one a full disk, a crash after the rename or a copy left short."""
    files = {name: {"size": (directory / name).stat().st_size, "sha256": _sha256(directory / name)}
             for name in _files(directory)}  # fmt: skip
    with open(directory / MANIFEST, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"files": files}, indent=1) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def checkpoint_fault(directory: Path) -> str | None:
    """Why a checkpoint cannot be loaded (its first fault), or None. Checked against its manifest; one
    written before manifests existed is opened file by file instead (`_unreadable_file`)."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return _unreadable_file(directory)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        expected = {name: (int(entry["size"]), str(entry["sha256"])) for name, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"{MANIFEST} is unreadable ({type(exc).__name__}: {exc})"
    present = set(_files(directory)) - {MANIFEST}
    for name in sorted(present - set(expected)):
        return f"file {name} has no manifest entry"
    for name, (size, sha256) in expected.items():
        path = directory / name
        if name not in present:
            return f"file {name} is missing"
        actual = path.stat().st_size
        if actual != size:
            return f"file {name} is {'truncated' if actual < size else 'too long'} ({actual} of {size} bytes)"
        if _sha256(path) != sha256:
            return f"file {name} fails its checksum"
    return None


def _unreadable_file(directory: Path) -> str | None:
    """A checkpoint without a manifest: open every file by its format (the headers of safetensors files
    and torch zip archives hold their lengths, so a truncated one fails here without reading the data)."""
    for name in _files(directory):
        path = directory / name
        try:
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), "pt"):
                    pass
            elif path.suffix in (".pt", ".bin"):
                import torch

                torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001 - any failure to open is the fault we report
            return f"file {name} does not load ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    return None
