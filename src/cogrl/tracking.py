"""wandb logging of a run's metrics and a table of tagged rollouts.

Offline unless the recipe says otherwise (`logging.wandb_mode`); `wandb sync <dir>/wandb/offline-run-*`
uploads later. A run behaves identically with wandb disabled: this module only mirrors what the run writes
to its own files. Every stage that trains (pretraining, priming SFT, RL) logs through it, named and grouped
by `logging.wandb_group`, `wandb_name` and `wandb_tags` (a sweep sets them per condition, seed and stage).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cogrl.behaviors import BEHAVIORS
from cogrl.behaviors.catalog import LiveNames
from cogrl.config import LoggingConfig

TABLE_COLUMNS = LiveNames(lambda names: ("step", "task_id", "reward", "reason", *names, "completion"))
"""The rollout table's columns: one per catalog behavior (`cogrl.behaviors.catalog`), current when read."""


class Tracker:
    def __init__(
        self, root: Path, logging: LoggingConfig, config: dict[str, Any], job_type: str = "rl"
    ) -> None:
        """`root`: where wandb keeps its files (the run directory); the wandb id is derived from its absolute
        path, so a resumed run continues the same wandb run."""
        self._rows_per_step = logging.rollout_table_rows
        self._wandb: Any = None
        if logging.wandb_mode == "disabled":
            return
        import wandb

        root = Path(root).resolve()
        root.mkdir(parents=True, exist_ok=True)
        name = logging.wandb_name or root.name
        self._wandb = wandb.init(
            dir=str(root),
            mode=logging.wandb_mode,
            project=logging.wandb_project,
            entity=logging.wandb_entity,
            group=logging.wandb_group,
            job_type=job_type,
            tags=logging.wandb_tags or None,
            name=name,
            id=f"{name.replace('/', '-').replace('.', '-')}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}",
            resume="allow",
            config=config,
            settings=wandb.Settings(console="off", silent=True),
        )

    def log(self, step: int, metrics: dict[str, float], rollouts: Sequence[dict[str, Any]] = ()) -> None:
        if self._wandb is None:
            return
        payload: dict[str, Any] = dict(metrics)
        if rollouts and self._rows_per_step:
            import wandb

            rows = [
                [r["step"], r["task_id"], r["reward"], r["reason"]]
                + [(r.get("behaviors") or {}).get(b) for b in BEHAVIORS]
                + [r["completion"]]
                for r in rollouts[: self._rows_per_step]
            ]
            payload["rollouts"] = wandb.Table(columns=list(TABLE_COLUMNS), data=rows)
        self._wandb.log(payload, step=step)

    def finish(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
