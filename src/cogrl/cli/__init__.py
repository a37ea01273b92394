"""`cogrl`: the one command-line entry point. Each command group lives in its own module."""

from __future__ import annotations

import os
import sys

import typer

from cogrl import QUIET_ENV
from cogrl.cli import audit, behaviors, corpus, env, eval, pretrain, prime, report, sweep, train
from cogrl.files import InputError

app = typer.Typer(
    name="cogrl",
    help="A lab for the reasoning behaviors that let language models improve themselves under RL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(env.app, name="env")
app.command("score")(env.score)
app.add_typer(behaviors.app, name="behaviors")
app.add_typer(prime.app, name="prime")
app.add_typer(corpus.app, name="corpus")
app.command("pretrain")(pretrain.pretrain)
app.command("train")(train.train)
app.command("sweep")(sweep.sweep)
app.command("report")(report.report)
app.command("eval")(eval.eval_command)
app.command("audit")(audit.audit_command)


def main() -> None:
    """Run the CLI; bad input exits with code 2 and a one-line reason on stderr."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        app()
    except InputError as exc:
        print(f"cogrl: error: {exc}", file=sys.stderr)
        sys.exit(2)
