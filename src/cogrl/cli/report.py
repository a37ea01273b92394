"""`cogrl report`: accuracy and behavior curves of RL runs, overlaid with the paper's published curves.

cogrl report runs/quickstart --out runs/quickstart/report
cogrl report runs/a/rl runs/b/rl --out reports/ab --paper qwen
cogrl report --eval runs/eval-base --eval runs/eval-primed --eval runs/eval-rl --out reports/passk
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cogrl.files import atomic_path, check_output_dir

console = Console(stderr=True)


class Paper(StrEnum):
    llama = "llama"
    qwen = "qwen"


def report(
    out: Annotated[Path, typer.Option(help="Output directory (curves.csv, PNGs, summary.md).")],
    runs: Annotated[
        list[Path] | None, typer.Argument(help="Sweep directories and/or RL run directories.")
    ] = None,
    evaluation: Annotated[
        list[Path] | None,
        typer.Option("--eval", help="A `cogrl eval` directory whose pass@k curve to overlay (repeatable)."),
    ] = None,
    paper: Annotated[Paper, typer.Option(help="Which of the paper's models to overlay.")] = Paper.llama,
    paper_csv: Annotated[
        Path | None, typer.Option(help="Overlay this results CSV (the paper's columns) instead.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists and is not empty.")] = False,
) -> None:
    """Write curves.csv (the paper's columns), accuracy.png, behaviors.png and summary.md for runs, and
    passk.png with a pass@k table for `cogrl eval` directories (the curves must share problems and n)."""
    from cogrl.experiments.report import write_sweep_report

    runs, evaluation = runs or [], evaluation or []
    target = check_output_dir(out, overwrite, inputs=[*runs, *evaluation, paper_csv])
    with atomic_path(target) as tmp:
        files = write_sweep_report(runs, tmp, paper=paper.value, paper_csv=paper_csv, evaluations=evaluation)
    for path in files:
        console.print(f"wrote {out / path.name}")
