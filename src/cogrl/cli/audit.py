"""`cogrl audit`: a base model's behaviors, accuracy and RL signal before any cluster time is spent.

    cogrl audit package:smollm2 --env countdown --n 200 --out runs/audit-smollm2
    cogrl audit models/Qwen2.5-3B --recipe recipes/paper/qwen2.5-3b-ppo.yaml --n 200 \\
        --endpoint http://127.0.0.1:8000/v1 --out runs/audit-qwen

The judge's API key is read from COGRL_JUDGE_API_KEY (or OPENAI_API_KEY), never from the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cogrl.cli.common import DEFAULT_JUDGE_CACHE, JUDGE_FAILED_EXIT, Api, Rubrics
from cogrl.files import InputError, check_output_dir

console = Console(stderr=True)


def audit_command(
    model: Annotated[
        str,
        typer.Argument(
            help="A model directory, package:smollm2, a run's checkpoint directory, or a run (its newest)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output directory (audit.md, audit.json, samples.jsonl).")],
    n: Annotated[int, typer.Option("--n", help="Problems: the first N of the split.")] = 200,
    samples_per_prompt: Annotated[
        int | None,
        typer.Option(help="Samples per problem, the RL group size (default: the recipe's, else 8)."),
    ] = None,
    recipe: Annotated[
        Path | None,
        typer.Option(help="The RL recipe to audit for: its env, options, rollout settings and group size."),
    ] = None,
    env: Annotated[
        str | None, typer.Option(help="Environment (default: the recipe's or run's, else countdown).")
    ] = None,
    env_option: Annotated[
        list[str] | None,
        typer.Option(help="key=value over the recipe's (or default) env options; repeatable."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split to sample problems from.")] = "test",
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Response cap (default: the recipe's, else 1024).")
    ] = None,
    max_prompt_tokens: Annotated[
        int | None, typer.Option(help="Longest prompt accepted (default: the recipe's, else 256).")
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="vllm or hf (default: the recipe's, else vllm).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: the recipe's, else cpu).")] = None,
    tag: Annotated[str, typer.Option(help="Behavior tagger: regex or exact (the env's counter).")] = "regex",
    endpoint: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible judge server: also tag every response with the judge."),
    ] = None,
    judge_model: Annotated[
        str | None, typer.Option(help="Judge model name; default: the one the server serves.")
    ] = None,
    judge_api: Annotated[
        Api, typer.Option(help="chat (/v1/chat/completions) or completions (base models).")
    ] = Api.chat,
    judge_rubrics: Annotated[
        Rubrics, typer.Option(help="Judge rubric set: cogrl (explicit switches and checks) or paper's.")
    ] = Rubrics.cogrl,
    judge_concurrency: Annotated[int, typer.Option(min=1, help="Judge requests in flight.")] = 8,
    judge_timeout: Annotated[
        float,
        typer.Option(
            min=0.001, help="Seconds per judge request attempt; also the deadline of the check made first."
        ),
    ] = 60.0,
    judge_cache: Annotated[
        Path, typer.Option(help="Judge cache (SQLite); reruns reuse every finished judgment.")
    ] = DEFAULT_JUDGE_CACHE,
    seed: Annotated[int, typer.Option(help="Sampling seed; the bootstrap seed is derived from it.")] = 0,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples over problems.")] = 1000,
    confidence: Annotated[float, typer.Option(help="Confidence of the percentile intervals.")] = 0.95,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
) -> None:
    """Sample k responses for each of N problems, score, tag (regex, and the judge with --endpoint) and
    claim-check them, and write a one-page report: behavior rates, accuracy, pass@k, false verification and
    the share of prompts whose samples differ in reward at the RL group size (GRPO/PPO learn only from those).

    A bad path or option, or a judge endpoint that does not answer within --judge-timeout, is one line naming
    it (exit code 2) before anything is sampled. When every judge request failed, the report is written with
    those counts unknown and the exit code is 3."""
    from cogrl.behaviors.judge import JudgeCache, LLMJudge
    from cogrl.config import JudgeConfig, load_recipe
    from cogrl.rl.audit import audit
    from cogrl.rl.evaluation import EvalSettings

    if n < 1:
        raise InputError(f"--n {n}: at least one problem")
    if bootstrap < 1:
        raise InputError(f"--bootstrap {bootstrap}: at least one resample")
    if not 0 < confidence < 1:
        raise InputError(f"--confidence {confidence}: must lie strictly between 0 and 1")
    if judge_model is not None and endpoint is None:
        raise InputError("--judge-model needs --endpoint (the judge's server)")
    if recipe is not None and not recipe.is_file():
        raise InputError(f"--recipe {recipe}: no such file")
    target = check_output_dir(out, overwrite, inputs=[model])
    loaded = load_recipe(recipe) if recipe is not None else None
    judge = None
    if endpoint is not None:
        config = JudgeConfig(  # a bad value raises InputError naming the knob
            endpoint=endpoint,
            model=judge_model,
            api=judge_api.value,
            concurrency=judge_concurrency,
            timeout_s=judge_timeout,
            rubrics=judge_rubrics.value,
        )
        judge = LLMJudge(config, JudgeCache(judge_cache))
    settings = EvalSettings(
        env=env,
        env_options=tuple(env_option or ()),
        split=split,
        problems=n,
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
    summary = audit(model, settings, target, samples_per_prompt, judge, loaded, log=console.print)
    console.print(summary["verdict"])
    console.print(f"done: {out} ({summary['timing']['total_s']:.1f} s)")
    if judge is not None and judge.stats.failed and not judge.stats.judged:
        console.print(
            f"cogrl: error: all {judge.stats.failed} judge requests failed, their counts are unknown (null); "
            f"first failure: {judge.stats.errors[0]}"
        )
        raise typer.Exit(JUDGE_FAILED_EXIT)
