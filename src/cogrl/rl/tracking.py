"""wandb logging of a run's metrics and a table of tagged rollouts.

Offline unless the recipe says otherwise (`logging.wandb_mode`); `wandb sync runs/<run>/wandb/offline-run-*`
uploads later. A run behaves identically with wandb disabled: this module only mirrors what runs.py writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cogrl.behaviors import BEHAVIORS
from cogrl.config import TrainRecipe
from cogrl.rl.runs import RunDir

TABLE_COLUMNS = ["step", "task_id", "reward", "reason", *BEHAVIORS, "completion"]


class Tracker:
    def __init__(self, run: RunDir, recipe: TrainRecipe) -> None:
        self._rows_per_step = recipe.logging.rollout_table_rows
        self._wandb: Any = None
        if recipe.logging.wandb_mode == "disabled":
            return
        import wandb

        self._wandb = wandb.init(
            dir=str(run.root),
            mode=recipe.logging.wandb_mode,
            project=recipe.logging.wandb_project,
            entity=recipe.logging.wandb_entity,
            name=run.root.name,
            id=run.root.name.replace(".", "-"),
            resume="allow",
            config=recipe.model_dump(mode="json"),
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
            payload["rollouts"] = wandb.Table(columns=TABLE_COLUMNS, data=rows)
        self._wandb.log(payload, step=step)

    def finish(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
