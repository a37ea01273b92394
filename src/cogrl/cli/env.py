"""`cogrl env ...` and `cogrl score`: environment commands that work for any registered environment.

Environment-specific options are passed as `--key value` pairs after the environment name and validated by
the environment's own Options model (or, for `solve`, turned into a task record):

    cogrl env generate countdown --out data/countdown --preset rl --n-train 10000
    cogrl env solve countdown --numbers 25 30 3 4 --target 32
    cogrl score --env countdown completions.jsonl > scored.jsonl
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cogrl.config import EnvConfig
from cogrl.envs import Solver, available_envs, load_env
from cogrl.files import InputError, atomic_path, check_output_dir, dumps, read_jsonl

app = typer.Typer(help="List, generate, solve and score environments.", no_args_is_help=True)
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
stderr = Console(stderr=True)


def parse_extra_args(args: list[str]) -> dict[str, Any]:
    """`--numbers 25 30 3 --target 32 --flag` -> {"numbers": ["25", "30", "3"], "target": "32", "flag": True}."""
    parsed: dict[str, Any] = {}
    key = None
    for arg in args:
        if arg.startswith("--") and len(arg) > 2 and not _is_number(arg):
            key = arg[2:].replace("-", "_")
            parsed[key] = []
        elif key is None:
            raise InputError(f"unexpected argument {arg!r}: options are written --key value")
        else:
            parsed[key].append(arg)
    return {k: (True if not v else v[0] if len(v) == 1 else v) for k, v in parsed.items()}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@app.command("list")
def list_envs() -> None:
    """List the installed environments."""
    for name, target in sorted(available_envs().items()):
        print(f"{name}\t{target}")


@app.command(context_settings=EXTRA)
def generate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Environment name, e.g. countdown.")],
    out: Annotated[
        Path, typer.Option(help="Output directory (one sub-folder and one parquet file a split).")
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists and is not empty.")] = False,
) -> None:
    """Write every split of an environment as a Hugging Face dataset (save_to_disk) and as parquet."""
    import datasets

    target = check_output_dir(out, overwrite)
    env = load_env(name, parse_extra_args(ctx.args))
    with stderr.status(f"generating {name} ..."):
        try:
            splits = {split: [_task_row(t) for t in env.tasks(split)] for split in env.splits}
        except ValueError as exc:  # options the environment cannot satisfy, a malformed source file
            raise InputError(f"{name}: {exc}") from None
    with atomic_path(target) as tmp:
        tmp.mkdir()
        for split, rows in splits.items():
            dataset = datasets.Dataset.from_list(rows)
            dataset.save_to_disk(str(tmp / split))
            dataset.to_parquet(str(tmp / f"{split}.parquet"))
        (tmp / "options.json").write_text(env.options.model_dump_json(indent=2) + "\n")
    counts = ", ".join(f"{split}: {len(rows)}" for split, rows in splits.items())
    stderr.print(f"wrote {out} ({counts})")


def _task_row(task: Any) -> dict[str, Any]:
    return {"id": task.id, "prompt": task.prompt, **task.data}


@app.command(context_settings=EXTRA)
def solve(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Environment name, e.g. countdown.")],
    max_solutions: Annotated[int | None, typer.Option(help="Stop after this many solutions.")] = None,
) -> None:
    """Print every distinct solution of one task given as --key value pairs (e.g. --numbers ... --target ...)."""
    env = load_env(name, {})
    if not isinstance(env, Solver):
        raise InputError(f"environment {name!r} has no solver")
    try:
        task = env.task_from_record(parse_extra_args(ctx.args))
    except ValueError as exc:
        raise InputError(f"{name} task: {exc}") from None
    solutions = env.solve(task, max_solutions=max_solutions)
    for solution in solutions:
        print(solution)
    stderr.print(f"{len(solutions)} solution(s)")


def score(
    file: Annotated[
        Path, typer.Argument(help="JSONL with the task fields (e.g. numbers, target) and completion.")
    ],
    env_name: Annotated[str, typer.Option("--env", help="Environment name.")] = EnvConfig().name,
    scorer: Annotated[
        str | None,
        typer.Option(
            help="The environment's `scorer` option (countdown: exact, or paper for the paper's reward)."
        ),
    ] = None,
    env_option: Annotated[
        list[str] | None,
        typer.Option(
            help="key=value over the environment's options (repeatable; reasoning_gym: dataset=...)."
        ),
    ] = None,
) -> None:
    """Score completions: the same lines on stdout, in order, with `reward`, `reason`, `correct` and the
    score's details (countdown: the other scorer's verdict) added.

    A malformed line is reported on stderr with its line number and skipped; the rest are still scored and
    the exit code is 2 when any line was malformed."""

    env = load_env(env_name, {} if scorer is None else {"scorer": scorer}, env_option or ())
    if not file.exists():
        raise InputError(f"{file}: no such file")
    bad = 0
    out = sys.stdout
    for line in read_jsonl(file):
        record = line.record
        error = line.error
        if record is not None:
            completion = record.get("completion")
            if not isinstance(completion, str):
                error = "field 'completion' is missing or not a string"
            else:
                try:
                    task = env.task_from_record(record)
                except ValueError as exc:
                    error = str(exc)
        if error is not None:
            bad += 1
            print(f"{file}:{line.number}: {error}", file=sys.stderr)
            continue
        result = env.score(completion, task)
        verdict = {"reward": result.reward, "reason": result.reason, "correct": result.correct}
        out.write(dumps({**record, **verdict, **result.details}) + "\n")
    if bad:
        raise InputError(f"{file}: {bad} malformed line(s) skipped (listed above)")
