"""Natural failures from model samples: a priming set of a model's own wrong answers.

The paper's incorrect-only control (Gandhi et al., 2025, released code) was made of natural failures: traces
whose answers came out wrong, not traces told to be wrong. Besides the LLM writer's ``natural_failure``
filter (``cogrl.priming.llm``), a set can be taken from responses already sampled, e.g. by ``cogrl eval`` or
an RL run's ``eval_rollouts.jsonl`` joined with the task fields: a JSONL file whose lines hold the task
fields (Countdown: ``numbers``, ``target``) and ``completion``, the response text that follows the RL
prompt's opening think tag (as `cogrl score` reads it). A sample is kept when its answer is wrong and it
claims no success it did not reach (``ClaimChecker``; environments without it are not checked, which the
report says); the first kept sample of each task is used, so no task is in both splits.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.envs import ClaimChecker, Environment, task_record
from cogrl.files import InputError, read_jsonl
from cogrl.priming.conditions import Condition
from cogrl.priming.dataset import to_dataset_dict
from cogrl.priming.llm import judge_reply

if TYPE_CHECKING:
    import datasets

THINK_START = "<think>"


@dataclass
class SamplesReport:
    lines: int = 0
    accepted: int = 0
    claims_checked: bool = False
    rejections: Counter = field(default_factory=Counter)


def build_from_samples(
    env: Environment,
    condition: Condition,
    path: str | Path,
    n: int,
    n_val: int,
    tokenizer: Any = None,
    tagger: RegexTagger | None = None,
    log: Callable[[str], None] = print,
) -> tuple[datasets.DatasetDict, SamplesReport]:
    """A priming set of the natural failures among the samples in ``path`` (``n`` train, ``n_val``
    validation rows, in file order); rejections by reason in the report."""
    if condition.correct:
        raise InputError(f"samples keep wrong answers: use an +incorrect condition, not {condition.name!r}")
    if condition.needs_tokenizer and tokenizer is None:
        raise InputError(f"condition {condition.name!r} needs a tokenizer (--tokenizer DIR)")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    tagger = tagger or RegexTagger()
    report = SamplesReport(claims_checked=isinstance(env, ClaimChecker))
    rows: list[dict] = []
    seen: set[str] = set()
    for line in read_jsonl(path):
        if len(rows) == n + n_val:
            break
        report.lines += 1
        record = line.record
        completion = record.get("completion") if record is not None else None
        if not isinstance(completion, str):
            report.rejections["bad_line"] += 1
            continue
        try:
            task = env.task_from_record(record)
        except ValueError:
            report.rejections["bad_line"] += 1
            continue
        key = json.dumps(task_record(env, task), sort_keys=True)
        if key in seen:
            report.rejections["repeated_task"] += 1
            continue
        # A sample continues the prompt's opening think tag; parse it as a full reply.
        reply = completion if completion.lstrip().startswith(THINK_START) else THINK_START + completion
        row, reason = judge_reply(
            reply, task, condition, env, tagger, tokenizer, f"samples:{path.name}", "natural_failure"
        )
        if row is None:
            report.rejections[reason] += 1
            continue
        seen.add(key)
        rows.append(row)
    report.accepted = len(rows)
    if len(rows) < n + n_val:
        log(f"samples: only {len(rows)} of {n + n_val} rows kept from {report.lines} lines; the set is short")
    if not rows:
        raise InputError(f"{path}: no sample is a natural failure ({dict(report.rejections)})")
    return to_dataset_dict(rows[:n], rows[n : n + n_val]), report
