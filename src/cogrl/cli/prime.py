"""`cogrl prime ...`: build behavior-seeded priming sets and fine-tune on them.

cogrl prime conditions
cogrl prime build --condition all_strategies --n 1000 --out data/prime/all_strategies
cogrl prime build --condition length_matched --tokenizer runs/base-model --out data/prime/length_matched
cogrl prime build --condition backtracking_only --source llm --endpoint http://127.0.0.1:8000 --out DIR
cogrl prime build --condition all_strategies --source llm --filter none --endpoint URL --out DIR
cogrl prime build --condition all_strategies+incorrect --source samples --samples s.jsonl --out DIR
cogrl prime sft recipes/cpu-tiny-prime-sft.yaml sft.dataset=data/prime/all_strategies --out runs/primed
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cogrl.config import EnvConfig
from cogrl.files import InputError, check_output_dir

app = typer.Typer(help="Build priming SFT sets and run the SFT step.", no_args_is_help=True)
stderr = Console(stderr=True)


class Source(StrEnum):
    synthetic = "synthetic"
    llm = "llm"
    samples = "samples"


class Filter(StrEnum):
    strict = "strict"
    none = "none"
    natural_failure = "natural_failure"


@app.command()
def conditions() -> None:
    """List the priming conditions (any name also takes the suffix +incorrect)."""
    from cogrl.priming.conditions import CONDITIONS

    for name, condition in CONDITIONS.items():
        behaviors = ",".join(sorted(condition.behaviors)) or "-"
        transform = f" [{condition.transform}]" if condition.transform else ""
        print(f"{name}\t{behaviors}{transform}\t{condition.description}")


@app.command()
def build(
    condition: Annotated[
        str,
        typer.Option(help="Condition name (see `cogrl prime conditions`), e.g. all_strategies+incorrect."),
    ],
    out: Annotated[Path, typer.Option(help="Output directory (written atomically, with a README.md card).")],
    n: Annotated[int, typer.Option(min=1, help="Training rows (paper: 1,000).")] = 1000,
    n_val: Annotated[int, typer.Option(min=0, help="Validation rows (paper: 200).")] = 200,
    source: Annotated[
        Source,
        typer.Option(
            help="synthetic (programmatic, offline), llm (an endpoint) or samples (a JSONL of model "
            "responses: their natural failures, for an +incorrect condition)."
        ),
    ] = Source.synthetic,
    env_name: Annotated[
        str, typer.Option("--env", help="Environment name (default: the recipe default).")
    ] = EnvConfig().name,
    env_option: Annotated[
        list[str] | None,
        typer.Option(
            help="key=value over the environment's priming options (repeatable; countdown's: preset "
            "priming, n_train as the source needs, n_test 0)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds task choice and every phrasing choice.")] = 0,
    tokenizer: Annotated[
        Path | None, typer.Option(help="Model directory whose tokenizer length_matched uses.")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="llm: base URL of an OpenAI-compatible server.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="llm: model name (default: the server's only model).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="llm: requests in flight.")] = 8,
    max_requests: Annotated[
        int | None, typer.Option(min=1, help="llm: give up after this many requests.")
    ] = None,
    filter_: Annotated[
        Filter,
        typer.Option(
            "--filter",
            help="llm: strict (behaviors and correctness as the condition says), none (every parsed reply, "
            "as the paper), natural_failure (+incorrect: wrong answers of a writer asked to solve, no false "
            "success claim).",
        ),
    ] = Filter.strict,
    samples: Annotated[
        Path | None,
        typer.Option(help="samples: JSONL with the task fields (countdown: numbers, target) and completion."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists and is not empty.")] = False,
) -> None:
    """Build a priming set: prompt/completion rows in the RL format, with behaviors and correctness."""
    from cogrl.envs import get_env_class, load_env, priming_options
    from cogrl.priming.conditions import get_condition
    from cogrl.priming.dataset import build_synthetic, save_priming_set, set_metadata

    target = check_output_dir(out, overwrite, inputs=[tokenizer, samples])
    try:
        chosen = get_condition(condition)
    except KeyError as exc:
        raise InputError(f"--condition: {exc.args[0]}") from None
    # LLM replies get rejected: give the source several tasks per row wanted.
    pool = (n + n_val) * (5 if source is Source.llm else 1)
    try:
        env_class = get_env_class(env_name)
    except LookupError as exc:
        raise InputError(f"--env: {exc}") from None
    env = load_env(env_name, priming_options(env_class, pool), env_option or ())
    tok = None
    if tokenizer is not None:
        from cogrl.models import load_tokenizer

        if (
            not (tokenizer / "tokenizer_config.json").is_file()
            and not (tokenizer / "tokenizer.json").is_file()
        ):
            raise InputError(f"--tokenizer: {tokenizer} holds no tokenizer files")
        tok = load_tokenizer(tokenizer)
    meta = set_metadata(chosen, env, source.value, seed, tokenizer=str(tokenizer) if tokenizer else None)
    if source is Source.synthetic:
        with stderr.status(f"writing {n + n_val} {chosen.name} traces ..."):
            dataset = build_synthetic(env, chosen, n, n_val, seed=seed, tokenizer=tok)
    elif source is Source.samples:
        from cogrl.priming.samples import build_from_samples

        if samples is None:
            raise InputError("--source samples needs --samples FILE.jsonl")
        dataset, found = build_from_samples(env, chosen, samples, n, n_val, tokenizer=tok, log=stderr.print)
        meta.update(
            filter="natural_failure",
            samples=str(samples),
            sample_lines=found.lines,
            claims_checked=found.claims_checked,
            rejections=found.rejections,
        )
    else:
        from cogrl.config import LLMSourceConfig
        from cogrl.priming.llm import build_llm

        if endpoint is None:
            raise InputError("--source llm needs --endpoint (an OpenAI-compatible server)")
        config = LLMSourceConfig(
            endpoint=endpoint,
            model=model,
            concurrency=concurrency,
            max_requests=max_requests,
            filter=filter_.value,
        )
        dataset, report = build_llm(env, chosen, n, n_val, config, seed=seed, tokenizer=tok, log=stderr.print)
        meta.update(
            filter=filter_.value, model=report.model, rejections=report.rejections, requests=report.requests
        )
    stats = save_priming_set(dataset, target, meta, env)
    train = stats["train"]
    n_validation = stats["validation"]["rows"] if "validation" in stats else 0
    stderr.print(
        f"wrote {out}: {train['rows']} train + {n_validation} validation rows, "
        f"correct {train['correct_rate']:.0%}, mean {train['mean_completion_chars']:.0f} chars"
    )


@app.command()
def sft(
    recipe: Annotated[Path, typer.Argument(help="An SFT recipe (e.g. recipes/cpu-tiny-prime-sft.yaml).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted.key=value overrides.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output model directory (default runs/<name>).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists and is not empty.")] = False,
) -> None:
    """Fine-tune a model on a priming set (TRL SFTTrainer, loss on the completion only)."""
    from cogrl.config import SFTRecipe, load_recipe
    from cogrl.priming.sft import run_sft

    loaded = load_recipe(recipe, overrides or [], kind=SFTRecipe)
    out = out if out is not None else Path("runs") / loaded.name
    inputs = [recipe, loaded.sft.dataset, loaded.model.path]
    result = run_sft(loaded, check_output_dir(out, overwrite, inputs=inputs), log=stderr.print)
    stderr.print(f"done: {result} (start RL from it with model.path={result})")
