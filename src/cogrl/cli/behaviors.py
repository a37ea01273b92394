"""`cogrl behaviors ...`: tag trajectories for the four behaviors and report on them.

    cogrl behaviors tag --method regex rollouts.jsonl > tagged.jsonl
    cogrl behaviors tag --method hybrid --endpoint http://127.0.0.1:8000 --sample-fraction 0.1 \\
        rollouts.jsonl > tagged.jsonl
    cogrl behaviors report tagged.jsonl --out reports/behaviors
    cogrl behaviors agree ours.jsonl paper.jsonl --out reports/agreement

The judge's API key is read from COGRL_JUDGE_API_KEY (or OPENAI_API_KEY), never from the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cogrl.behaviors.agreement import agreement_report, match_taggings, write_agreement
from cogrl.behaviors.judge import JudgeCache, LLMJudge, Trajectory
from cogrl.behaviors.types import BEHAVIORS, BehaviorTags
from cogrl.cli.common import DEFAULT_JUDGE_CACHE, JUDGE_FAILED_EXIT, Api, Rubrics
from cogrl.config import EnvConfig, JudgeConfig
from cogrl.envs import Environment, judge_domain, judge_problem, record_hints
from cogrl.files import InputError, atomic_path, check_output_dir, dumps, read_jsonl

if TYPE_CHECKING:
    from cogrl.behaviors.regex_tagger import RegexTagger

app = typer.Typer(
    help="Tag trajectories for the four cognitive behaviors and analyse them.", no_args_is_help=True
)
stderr = Console(stderr=True)


class Method(StrEnum):
    regex = "regex"
    llm = "llm"
    hybrid = "hybrid"


@app.command()
def tag(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL with `completion` and optionally the task's fields (countdown: numbers, target)."
        ),
    ],
    env_name: Annotated[
        str,
        typer.Option("--env", help="Environment of the tasks: what the tagger and judge are told of each."),
    ] = EnvConfig().name,
    env_option: Annotated[
        list[str] | None, typer.Option(help="key=value over the environment's options (repeatable).")
    ] = None,
    method: Annotated[
        Method, typer.Option(help="regex: fast patterns; llm: the judge; hybrid: both.")
    ] = Method.regex,
    patterns: Annotated[
        str | None, typer.Option(help="Regex pattern set: a built-in name or a YAML file.")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="OpenAI-compatible judge server (llm, hybrid).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Judge model name; default: the one the server serves.")
    ] = None,
    api: Annotated[
        Api, typer.Option(help="chat (/v1/chat/completions) or completions (base models).")
    ] = Api.chat,
    concurrency: Annotated[int, typer.Option(min=1, help="Judge requests in flight.")] = 8,
    rubrics: Annotated[
        Rubrics, typer.Option(help="Judge rubric set: cogrl (explicit switches and checks) or paper's.")
    ] = Rubrics.cogrl,
    cache: Annotated[
        Path, typer.Option(help="Judge cache (SQLite); reruns reuse every finished judgment.")
    ] = (DEFAULT_JUDGE_CACHE),
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds allowed per judge request attempt.")
    ] = 60.0,
    max_retries: Annotated[
        int, typer.Option(min=0, help="Retries per judge request on transient faults.")
    ] = 5,
    sample_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="hybrid: fraction judged at random (plus uncertain ones).")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="hybrid: seed of the random sample.")] = 0,
) -> None:
    """Tag every line: the same lines on stdout, in order, with `behaviors`, `behavior_spans` and
    `behavior_source` added (hybrid adds `behaviors_regex`, `behaviors_judge` and `judge_reasons` too).

    A malformed line is reported on stderr with its line number and skipped; the exit code is then 2. A judge
    request that fails for good leaves its count unknown (null, never 0; a rerun asks again) and is counted in
    the summary on stderr; when every request sent failed, the exit code is 3."""
    from cogrl.envs import load_env

    judge = (
        None
        if method is Method.regex
        else _judge(endpoint, model, api, concurrency, cache, timeout, max_retries, rubrics)
    )
    if not file.exists():
        raise InputError(f"{file}: no such file")
    env = load_env(env_name, {}, env_option or ())
    records, items, bad = _read_trajectories(file, env)
    if judge is None:
        tagger = _regex_tagger(patterns)
        for record, item in zip(records, items, strict=True):
            _emit(record, tagger.tag(item.text, **item.hints))
    else:  # a wrong URL, model or key raises EndpointError, an InputError: the CLI exits 2 with it
        if method is Method.llm:
            with _progress(len(items) * len(BEHAVIORS)) as advance:
                tags = judge.tag_many(items, advance)
            for record, item_tags in zip(records, tags, strict=True):
                _emit(record, item_tags)
        else:
            _tag_hybrid(records, items, judge, patterns, sample_fraction, seed)
        _print_judge_summary(judge)
    if bad:
        raise InputError(f"{file}: {bad} malformed line(s) skipped (listed above)")


def _judge(
    endpoint: str | None,
    model: str | None,
    api: Api,
    concurrency: int,
    cache: Path,
    timeout: float,
    max_retries: int,
    rubrics: Rubrics,
) -> LLMJudge:
    if endpoint is None:
        raise InputError("--endpoint is required for --method llm and --method hybrid")
    config = JudgeConfig(  # a bad value raises InputError naming the knob (endpoint: must be an http(s) URL)
        endpoint=endpoint,
        model=model,
        api=api.value,
        concurrency=concurrency,
        timeout_s=timeout,
        max_retries=max_retries,
        rubrics=rubrics.value,
    )
    return LLMJudge(config, JudgeCache(cache))


def _tag_hybrid(
    records: list[dict[str, Any]],
    items: list[Trajectory],
    judge: LLMJudge,
    patterns: str | None,
    sample_fraction: float,
    seed: int,
) -> None:
    from cogrl.behaviors.hybrid import HybridTagger

    hybrid = HybridTagger(_regex_tagger(patterns), judge, sample_fraction=sample_fraction, seed=seed)
    planned = hybrid.plan(items)
    with _progress(sum(1 for _, reasons in planned if reasons) * len(BEHAVIORS)) as advance:
        results = hybrid.tag_many(items, advance, planned)
    for record, result in zip(records, results, strict=True):
        _emit(
            record,
            result.final,
            behaviors_regex=dict(result.regex.counts),
            behaviors_judge=None if result.judge is None else dict(result.judge.counts),
            judge_reasons=list(result.reasons),
        )


def _regex_tagger(patterns: str | None) -> RegexTagger:
    from cogrl.behaviors.regex_tagger import RegexTagger

    return RegexTagger(patterns)


def _read_trajectories(file: Path, env: Environment) -> tuple[list[dict[str, Any]], list[Trajectory], int]:
    """Valid lines as (records, trajectories); malformed ones are reported on stderr and counted."""
    records, items, bad = [], [], 0
    for line in read_jsonl(file):
        error = line.error
        if line.record is not None:
            try:
                items.append(_trajectory(line.record, env))
                records.append(line.record)
            except ValueError as exc:
                error = str(exc)
        if error is not None:
            bad += 1
            print(f"{file}:{line.number}: {error}", file=sys.stderr)
    return records, items, bad


def _trajectory(record: dict[str, Any], env: Environment) -> Trajectory:
    """A record as the environment describes it: its tagger hints (fields optional, a malformed one is a
    ValueError naming it) and, when the record holds a whole task, the problem the judge is shown."""
    completion = record.get("completion")
    if not isinstance(completion, str):
        raise ValueError("field 'completion' is missing or not a string")
    hints = record_hints(env, record)
    try:
        problem = judge_problem(env, env.task_from_record(record))
    except ValueError:  # no (whole) task in the record: the judge sees the response alone
        problem = None
    return Trajectory(completion, problem, hints, judge_domain(env))


def _emit(record: dict[str, Any], tags: BehaviorTags, **extra: Any) -> None:
    sys.stdout.write(dumps({**record, **tags.to_json(), "behavior_source": tags.source, **extra}) + "\n")


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr for judge runs; yields the callback that advances it."""
    columns = (TextColumn("judging"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task("judge", total=total)
        yield lambda n: progress.advance(task, n)


def _print_judge_summary(judge: LLMJudge) -> None:
    """The run's costs on stderr; exits with `JUDGE_FAILED_EXIT` when every request sent failed."""
    s = judge.stats
    print(
        f"judge {judge.model}: {s.judged} judged, {s.cache_hits} from cache, {s.requests} requests "
        f"({s.retries} retries), {s.unparsable} without a readable count, {s.failed} failed (null; a rerun asks again)",
        file=sys.stderr,
    )
    if s.failed and not s.judged:
        print(
            f"cogrl: error: all {s.failed} judge requests failed, their counts are unknown (null); "
            f"first failure: {s.errors[0]}",
            file=sys.stderr,
        )
        raise typer.Exit(JUDGE_FAILED_EXIT)


@app.command()
def report(
    file: Annotated[Path, typer.Argument(help="JSONL written by `cogrl behaviors tag`.")],
    out: Annotated[Path, typer.Option(help="Output directory for tables, plots and the agreement report.")],
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists and is not empty.")] = False,
) -> None:
    """Write the behavior analyses (rates, P(correct | behavior), co-occurrence, curves) and, when the lines
    carry both regex and judge tags (`tag --method hybrid`), per-behavior regex/judge agreement."""
    from cogrl.behaviors.analysis import write_report

    if not file.exists():
        raise InputError(f"{file}: no such file")
    target = check_output_dir(out, overwrite, inputs=[file])
    records, bad = [], 0
    for line in read_jsonl(file):
        error = line.error
        if line.record is not None:
            error = _tagged_record_error(line.record)
            if error is None:
                records.append(line.record)
        if error is not None:
            bad += 1
            print(f"{file}:{line.number}: {error}", file=sys.stderr)
    if not records:
        raise InputError(f"{file}: no tagged lines to report on")
    pairs = [
        (
            BehaviorTags(r["behaviors_regex"], source="regex"),
            BehaviorTags(r["behaviors_judge"], source="judge"),
        )
        for r in records
        if r.get("behaviors_regex") is not None and r.get("behaviors_judge") is not None
    ]
    with atomic_path(target) as tmp:
        files = list(write_report(records, tmp)["files"])
        if pairs:
            files += [path.name for path in write_agreement(agreement_report(pairs), tmp)]
    judged = f", regex/judge agreement on {len(pairs)} judged line(s)" if pairs else ""
    print(f"wrote {out}: {', '.join(files)} ({len(records)} lines{judged})", file=sys.stderr)
    if bad:
        raise InputError(f"{file}: {bad} malformed line(s) skipped (listed above)")


class MatchBy(StrEnum):
    auto = "auto"
    id = "id"
    line = "line"


@app.command()
def agree(
    first: Annotated[Path, typer.Argument(help="JSONL written by `cogrl behaviors tag` (tagging A).")],
    second: Annotated[Path, typer.Argument(help="The same responses tagged another way (tagging B).")],
    by: Annotated[
        MatchBy, typer.Option(help="Pair lines by `id` (auto: when every line has one) or by line number.")
    ] = MatchBy.auto,
    out: Annotated[
        Path | None, typer.Option(help="Also write agreement.json and agreement.csv here.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists and is not empty.")] = False,
) -> None:
    """Agreement between two taggings of the same responses (two taggers, or two rubric sets of the judge):
    per behavior Cohen's kappa on presence, the confusion counts, and the mean count under each with their
    ratio (B / A). Pairs where either count is unknown are counted apart, never as agreement."""
    target = None if out is None else check_output_dir(out, overwrite, inputs=[first, second])
    taggings = [_read_tagged(path) for path in (first, second)]
    try:
        pairs = match_taggings(*taggings, by=by.value)
    except ValueError as exc:
        raise InputError(f"{first} vs {second}: {exc}") from None
    if not pairs:
        raise InputError(f"{first}: no tagged lines to compare")
    names = _tagging_names(first, second, taggings)
    report = agreement_report(pairs, names)
    print(f"A = {names[0]} ({first}), B = {names[1]} ({second}), {len(pairs)} responses")
    print(
        "| behavior | n | kappa | agreement | both | A only | B only | neither | unknown | mean A | mean B | B/A |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for behavior, row in report.items():
        cells = [row["n"], row["kappa"], row["observed_agreement"], row["both_present"]]
        cells += [row[f"{names[0]}_only"], row[f"{names[1]}_only"], row["both_absent"], row["unknown"]]
        cells += [row[f"{names[0]}_mean"], row[f"{names[1]}_mean"], row["mean_ratio"]]
        print(f"| {behavior} | " + " | ".join(_cell(c) for c in cells) + " |")
    if target is not None:
        with atomic_path(target) as tmp:
            tmp.mkdir(parents=True)
            write_agreement(report, tmp)
        print(f"wrote {out}: agreement.json, agreement.csv", file=sys.stderr)


def _read_tagged(path: Path) -> list[dict[str, Any]]:
    """Every line of a tagged file; a malformed one stops the comparison (pairs would shift)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    records = []
    for line in read_jsonl(path):
        error = line.error
        if line.record is not None:
            error = _tagged_record_error(line.record)
        if error is not None:
            raise InputError(f"{path}:{line.number}: {error}")
        records.append(line.record)
    return records


def _tagging_names(first: Path, second: Path, taggings: list[list[dict[str, Any]]]) -> tuple[str, str]:
    """The taggers' names (`behavior_source` of the first line), else the file names; never two alike."""
    sources = [str(t[0].get("behavior_source") or "") if t else "" for t in taggings]
    if sources[0] and sources[1] and sources[0] != sources[1]:
        return sources[0], sources[1]
    if first.name != second.name:
        return first.name, second.name
    return "A", "B"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if not isinstance(value, float):
        return str(value)
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text  # a kappa of 0 computed as -1e-17


def _tagged_record_error(record: dict[str, Any]) -> str | None:
    for field in ("behaviors", "behaviors_regex", "behaviors_judge"):
        counts = record.get(field)
        if counts is None and field != "behaviors":
            continue
        if not isinstance(counts, dict) or set(counts) != set(BEHAVIORS):
            return f"field {field!r} must map exactly {list(BEHAVIORS)} to counts (run `cogrl behaviors tag`)"
        if not all(
            c is None or (isinstance(c, int) and not isinstance(c, bool) and c >= 0) for c in counts.values()
        ):
            return f"field {field!r}: counts must be non-negative integers or null"
    return None
