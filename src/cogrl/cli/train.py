"""`cogrl train`: run (or resume) an RL recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cogrl.config import load_recipe
from cogrl.files import InputError, check_output_dir

console = Console(stderr=True)


def train(
    recipe: Annotated[Path | None, typer.Argument(help="Recipe YAML (see recipes/).")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/<recipe>-<timestamp>).")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue this run from its last checkpoint (overrides, e.g. trainer.steps=N, apply)."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(help="Print the resolved plan and its memory plan and exit, without loading a model."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --dry-run: the plan as one JSON object.")
    ] = False,
) -> None:
    """Run GRPO/PPO on an environment, tagging behaviors in every rollout."""
    from cogrl.experiments.training import start_trainer
    from cogrl.rl.driver import plan, plan_fields
    from cogrl.rl.memory import plan_memory
    from cogrl.rl.runs import RunDir

    if as_json and not dry_run:
        raise InputError("--json goes with --dry-run")

    if resume is not None:
        # With --resume every positional argument is an override of the saved config (e.g. trainer.steps=500).
        changes = ([str(recipe)] if recipe is not None else []) + list(overrides or [])
        if stray := [c for c in changes if "=" not in c]:
            raise InputError(
                f"--resume uses the run's saved config; {stray[0]!r} is not a dotted.key=value override"
            )
        if (resume / "config.yaml").is_file():  # a plan that cannot fit is refused before resume rewrites it
            plan_memory(load_recipe(resume / "config.yaml", changes)).check()
        run = RunDir.resume(resume, changes)
    elif recipe is None:
        raise InputError("give a recipe (e.g. recipes/cpu-tiny-grpo.yaml) or --resume RUN_DIR")
    else:
        loaded = load_recipe(recipe, overrides or [])
        memory = plan_memory(loaded)
        if dry_run:
            print(
                json.dumps({**plan_fields(loaded), "memory": memory.to_json()})
                if as_json
                else plan(loaded, memory)
            )
        memory.check()  # a plan that cannot fit is refused before anything starts (exit 2, one line)
        if dry_run:
            return
        if out is not None:  # the shared --out policy; RunDir.create then refuses a non-empty one
            check_output_dir(out, inputs=[recipe], remedy=f"use --resume {out} to continue, or another --out")
        run = RunDir.create(loaded, out)
    console.print(f"run directory: {run.root}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        trainer = start_trainer(run, log=progress.console.print)
        bar = progress.add_task("RL steps", total=run.recipe.trainer.steps, completed=trainer.start_step)
        trainer.run(on_step=lambda step: progress.update(bar, completed=step))
    console.print(f"done: {run.root}")
