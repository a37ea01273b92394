"""`cogrl sweep`: the paper's central experiment (pretrain -> prime -> SFT -> RL per condition) in one
resumable command, ending with the summary table and the verdict.

cogrl sweep recipes/sweeps/cpu-miniature.yaml --out runs/miniature
cogrl sweep recipes/sweeps/cpu-miniature.yaml --dry-run
cogrl sweep recipes/sweeps/cpu-miniature.yaml train.trainer.steps=5 --out runs/short

The terminal shows progress only (stages, RL steps, evaluations, the verdict); everything the libraries print
(vLLM, Ray, transformers, TRL) goes to <out>/sweep.log, which the first line names.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TextIO

import typer

from cogrl.files import check_output_dir

LOG_FILE = "sweep.log"


@contextmanager
def chatter_to(path: Path) -> Iterator[TextIO]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so C extensions, subprocesses and
    Ray's forwarded worker output follow) to ``path``, appending; yield a stream to the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    with open(path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            terminal.close()


def sweep(
    recipe: Annotated[Path, typer.Argument(help="Sweep recipe YAML (see recipes/sweeps/).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides.")] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep directory (default runs/<sweep name>).")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print the plan (conditions x stages) and exit, without loading a model.")
    ] = False,
) -> None:
    """Pretrain the base (if the recipe has one), then prime, fine-tune and RL-train every condition, and
    print the verdict; re-run the same command to resume. Exit code 1 when a condition failed (the others
    still ran)."""
    from cogrl.experiments.sweep import RECIPE_FILE, load_sweep, plan_text, run_sweep
    from cogrl.rl.memory import plan_memory

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
    plan_memory(loaded.train).check()  # refused (exit 2) before the directory and its log are created
    target.mkdir(parents=True, exist_ok=True)
    log_path = target / LOG_FILE
    started = time.monotonic()
    with chatter_to(log_path) as terminal:

        def progress(line: str) -> None:
            elapsed = int(time.monotonic() - started)
            stamped = f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {line}" if line.strip() else line
            terminal.write(stamped + "\n")
            print(stamped, flush=True)  # the log file keeps the progress lines among the chatter

        progress(f"sweep {loaded.name} -> {target} (library output: {log_path})")
        terminal.write(plan_text(loaded, target) + "\n")
        result = run_sweep(loaded, target, log=progress)
        for failed in result.failed:
            progress(
                f"failed {failed['condition']} (seed {failed['seed']}): {failed['error']} (see {log_path})"
            )
        progress(f"done: {target} (summary.json; report: cogrl report {target} --out {target}/report)")
    if result.failed:
        raise typer.Exit(1)
