"""`cogrl sweep`: the paper's central experiment (prime -> SFT -> RL per condition) in one resumable command.

cogrl sweep recipes/sweeps/cpu-quickstart.yaml --out runs/quickstart
cogrl sweep recipes/sweeps/cpu-quickstart.yaml --dry-run
cogrl sweep recipes/sweeps/cpu-quickstart.yaml train.trainer.steps=5 --out runs/short
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cogrl.files import check_output_dir

console = Console(stderr=True)


def sweep(
    recipe: Annotated[Path, typer.Argument(help="Sweep recipe YAML (see recipes/sweeps/).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides.")] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep directory (default runs/<sweep name>).")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print the plan (conditions x stages) and exit, without loading a model.")
    ] = False,
) -> None:
    """Prime, fine-tune and RL-train every condition; re-run the same command to resume. Exit code 1 when
    a condition failed (the others still ran)."""
    from cogrl.experiments.sweep import RECIPE_FILE, load_sweep, plan_text, run_sweep

    loaded = load_sweep(recipe, overrides or [])
    target = out if out is not None else Path("runs") / loaded.name
    check_output_dir(
        target,
        inputs=[recipe],
        resume_marker=RECIPE_FILE,
        remedy=f"a sweep resumes only into a directory holding its {RECIPE_FILE}; give another --out",
    )
    if dry_run:
        print(plan_text(loaded, target))
        return
    console.print(plan_text(loaded, target))
    result = run_sweep(loaded, target, log=console.print)
    for failed in result.failed:
        console.print(f"[red]failed[/red] {failed['condition']} (seed {failed['seed']}): {failed['error']}")
    console.print(f"done: {target} (report: cogrl report {target} --out {target}/report)")
    if result.failed:
        raise typer.Exit(1)
