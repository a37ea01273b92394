"""The manifest of finished shards: what makes a killed corpus job resume without redoing or losing work.

A worker writes a shard's output file atomically, then the driver records the shard, with its counts, in
`manifest.json` (also atomically, after every shard). A shard is finished exactly when the manifest names
it: a rerun skips it and reads its file; a shard whose file exists but that the manifest does not name
(the job died between the two writes) is done again and its file replaced, so no row is ever counted twice.
The manifest also holds the hash of the recipe that decides the outputs, and a rerun with another recipe
is refused rather than mixed in; knobs of how the job runs (workers, the cluster, where the judge is and how
hard it is pushed) may change between runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cogrl.config import CorpusRecipe
from cogrl.files import InputError, write_atomic

MANIFEST = "manifest.json"

RESUMABLE_KNOBS = {"name", "workers", "cpus_per_worker", "address"}
"""Recipe fields that change how a job runs, not what it writes: a rerun may change them."""

CONNECTION_KNOBS = {"endpoint", "api_key_variables", "concurrency", "timeout_s", "max_retries", "backoff_s",
                    "backoff_cap_s"}  # fmt: skip
"""Endpoint fields of `label` and `rewrite` that say how to reach a server, not what it is asked: a rerun may
point at a judge that moved, or push it harder (the model, prompts' limits and sampling stay decided)."""


def recipe_hash(recipe: CorpusRecipe) -> str:
    decided = recipe.model_dump(mode="json", exclude=RESUMABLE_KNOBS)
    for block in ("label", "rewrite"):
        if decided.get(block):
            decided[block] = {k: v for k, v in decided[block].items() if k not in CONNECTION_KNOBS}
    return hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()[:16]


class Manifest:
    """``<out>/manifest.json``: per stage, the finished shards and what each one's summary said."""

    def __init__(self, out: Path, recipe: CorpusRecipe) -> None:
        self.path = out / MANIFEST
        self.hash = recipe_hash(recipe)
        self.data: dict[str, Any] = {"recipe_hash": self.hash, "stages": {}}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise InputError(f"{self.path}: not a manifest ({exc})") from None
            if data.get("recipe_hash") != self.hash:
                raise InputError(
                    f"{self.path}: written for another corpus recipe (hash {data.get('recipe_hash')}, now "
                    f"{self.hash}); use another --out or the same recipe"
                )
            self.data = data

    def done(self, stage: str) -> dict[int, dict[str, Any]]:
        """The finished shards of ``stage`` and their summaries."""
        return {int(k): v for k, v in self.data["stages"].get(stage, {}).get("shards", {}).items()}

    def plan(self, stage: str, n_shards: int) -> None:
        """Record how many shards ``stage`` has (a rerun must find the same number)."""
        entry = self.data["stages"].setdefault(stage, {"n_shards": n_shards, "shards": {}})
        if entry["n_shards"] != n_shards:
            raise InputError(f"{self.path}: stage {stage} had {entry['n_shards']} shards, now {n_shards}")
        self._write()

    def record(self, stage: str, shard: int, summary: dict[str, Any]) -> None:
        self.data["stages"][stage]["shards"][str(shard)] = summary
        self._write()

    def finished(self, stage: str) -> bool:
        entry = self.data["stages"].get(stage)
        return entry is not None and len(entry["shards"]) == entry["n_shards"]

    def _write(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")
