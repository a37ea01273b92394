"""`cogrl eval`: pass@k and maj@k curves (with bootstrap intervals) and accuracy per behavior at matched
difficulty, for a model directory, a run's checkpoint or a run (its newest checkpoint).

    cogrl eval runs/cpu-tiny-grpo-20261122-101500 --n 64 --k 1,4,16,64 --problems 128 --out runs/eval-rl
    cogrl eval data/sft-model --env countdown --env-option template=chat --n 16 --k 1,4,16 --out runs/eval-sft
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cogrl.files import InputError, check_output_dir

console = Console(stderr=True)


def parse_ks(text: str) -> list[int]:
    """``1,4,16,64`` -> [1, 4, 16, 64]; anything else is an InputError naming the bad item."""
    ks = []
    for item in text.split(","):
        try:
            ks.append(int(item.strip()))
        except ValueError:
            raise InputError(
                f"--k {text!r}: {item.strip()!r} is not an integer (write e.g. 1,4,16,64)"
            ) from None
    return ks


def eval_command(
    model: Annotated[
        str,
        typer.Argument(
            help="A model directory, a run's checkpoint directory, or a run (its newest checkpoint)."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Output directory (passk.csv/png, behaviors.csv, samples.jsonl, eval.json).")
    ],
    env: Annotated[str | None, typer.Option(help="Environment (default: the run's, else countdown).")] = None,
    env_option: Annotated[
        list[str] | None, typer.Option(help="key=value over the run's (or default) env options; repeatable.")
    ] = None,
    split: Annotated[str, typer.Option(help="Split to evaluate on.")] = "test",
    problems: Annotated[
        int | None, typer.Option(help="The first N problems of the split (default: all).")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Samples per problem.")] = 64,
    k: Annotated[
        str | None,
        typer.Option(
            "--k", help="Comma-separated k values, each <= n (default: 1, 2, 4, ... up to n, and n)."
        ),
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Response cap (default: the run's, else 1024).")
    ] = None,
    max_prompt_tokens: Annotated[
        int | None, typer.Option(help="Longest prompt accepted (default: the run's, else 256).")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="vllm or hf (default: the run's, else vllm).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: the run's, else cpu).")] = None,
    tag: Annotated[
        str, typer.Option(help="Behavior tagging: regex, exact (the env's counter) or none.")
    ] = "regex",
    seed: Annotated[int, typer.Option(help="Sampling seed; the bootstrap seed is derived from it.")] = 0,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples over problems.")] = 1000,
    confidence: Annotated[float, typer.Option(help="Confidence of the percentile intervals.")] = 0.95,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
) -> None:
    """Sample n responses per problem and write the pass@k / maj@k curve with bootstrap intervals, accuracy
    per behavior at matched difficulty, every scored sample and the settings that reproduce them."""
    from cogrl.rl.evaluation import EvalSettings, evaluate

    if bootstrap < 1:
        raise InputError(f"--bootstrap {bootstrap}: at least one resample")
    if not 0 < confidence < 1:
        raise InputError(f"--confidence {confidence}: must lie strictly between 0 and 1")
    target = check_output_dir(out, overwrite, inputs=[model])
    settings = EvalSettings(
        env=env,
        env_options=tuple(env_option or ()),
        split=split,
        problems=problems,
        n=n,
        ks=None if k is None else parse_ks(k),
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        max_prompt_tokens=max_prompt_tokens,
        backend=backend,
        device=device,
        tag=tag,
        seed=seed,
        resamples=bootstrap,
        confidence=confidence,
    )
    summary = evaluate(model, settings, target, log=console.print)
    for row in summary["figures"]["passk"]:
        maj = "" if row["maj@k"] is None else f"  maj@{row['k']} {row['maj@k']:.3f}"
        console.print(f"pass@{row['k']} {row['pass@k']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]{maj}")
    console.print(f"done: {out} ({summary['timing']['total_s']:.1f} s)")
