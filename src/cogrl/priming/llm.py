"""LLM-written priming traces: behavior-conditioned prompts sent to any OpenAI-compatible chat endpoint.

The paper (Gandhi et al., 2025) had Claude-3.5-Sonnet write each condition's traces from one system prompt
per condition. Here the system prompt is composed from the condition's behaviors (so a newly registered
condition gets one too), every reply is parsed for its thought and answer, scored by the environment, and
tagged by the regex behavior tagger. What is kept is ``LLMSourceConfig.filter``: by default (``strict``) a
reply whose answer is as right or wrong as the condition asks and whose behaviors are exactly the
condition's; ``none`` keeps every parsed reply (the paper's unfiltered sets); ``natural_failure`` keeps the
wrong answers of a writer asked to solve the task that claim no success they did not reach (the paper's
incorrect-only control). Rejections are counted by reason.

Requests go through the lab's one OpenAI-compatible client (`cogrl.llm_client`: bounded concurrency, jittered
retries), configured by `cogrl.config.LLMSourceConfig`. The API key comes from the environment only
(``COGRL_LLM_API_KEY``, else ``OPENAI_API_KEY``) and never reaches logs or outputs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import regex

from cogrl.behaviors.catalog import LiveMapping
from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.behaviors.types import BEHAVIORS, BehaviorTags
from cogrl.config import LLMSourceConfig
from cogrl.envs import (
    GENERIC_WRITER_BRIEF,
    Environment,
    Task,
    Trace,
    WriterBrief,
    tagger_hints,
    writer_brief,
    writer_problem,
)
from cogrl.files import InputError
from cogrl.llm_client import LLMClient
from cogrl.priming.conditions import Condition
from cogrl.priming.dataset import false_success_claims, make_row, priming_tasks, to_dataset_dict

if TYPE_CHECKING:
    import datasets

MAX_REPLY_CHARS = 20_000
"""Replies are cut to this many characters before parsing (bounded work on model output)."""

BEHAVIOR_INSTRUCTIONS: Mapping[str, str] = LiveMapping(lambda b: b.show)
"""Behavior -> how the writer is asked to show it (``Behavior.show`` in `cogrl.behaviors.catalog`)."""
AVOID_INSTRUCTIONS: Mapping[str, str] = LiveMapping(lambda b: b.avoid)
"""Behavior -> how the writer is asked to avoid it (``Behavior.avoid``)."""


def system_prompt(condition: Condition, brief: WriterBrief = GENERIC_WRITER_BRIEF) -> str:
    """The one system prompt of a condition, composed from its behaviors (the paper wrote one per condition)
    inside the environment's ``brief`` (`cogrl.envs.writer_brief`): every catalog behavior is either asked
    for or asked to be avoided."""
    wanted = [BEHAVIOR_INSTRUCTIONS[b] for b in BEHAVIORS if b in condition.behaviors]
    avoided = [AVOID_INSTRUCTIONS[b] for b in BEHAVIORS if b not in condition.behaviors]
    lines = [brief.task]
    if wanted:
        lines.append("In your reasoning: " + "; ".join(wanted) + ".")
    if avoided:
        lines.append("Also: " + "; ".join(avoided) + ".")
    if not condition.correct:
        lines.append(brief.wrong_answer)
    lines.append(brief.reply_format)
    return "\n".join(lines)


_THINK = regex.compile(r"<think>(.*?)</think>", regex.DOTALL)
_ANSWER = regex.compile(r"<answer>(.*?)</answer>", regex.DOTALL)


def parse_reply(reply: str) -> tuple[str, str] | None:
    """(thought, answer) from a reply, or None when either part is missing (the last answer tag counts)."""
    reply = reply[:MAX_REPLY_CHARS]
    think = _THINK.search(reply)
    answers = _ANSWER.findall(reply)
    if think is None or not answers or not answers[-1].strip():
        return None
    return think.group(1).strip(), answers[-1].strip()


@dataclass
class LLMReport:
    model: str = ""
    requests: int = 0
    accepted: int = 0
    rejections: Counter = field(default_factory=Counter)


def judge_reply(
    reply: str | None,
    task: Task,
    condition: Condition,
    env: Environment,
    tagger: RegexTagger,
    tokenizer: Any,
    source: str,
    keep: str = "strict",
) -> tuple[dict | None, str | None]:
    """(row, None) for a kept reply, (None, reason) for a rejected one; ``source`` is the rows' source
    column (``llm:<model>``), ``keep`` is ``LLMSourceConfig.filter``."""
    if reply is None:
        return None, "request_failed"
    parsed = parse_reply(reply)
    if parsed is None:
        return None, "unreadable_format"
    thought, answer = parsed
    tags = tagger.tag(thought, **tagger_hints(env, task))
    if keep == "strict" and (reason := behavior_mismatch(tags, condition)):
        return None, reason
    trace = condition.apply(Trace(thought, answer, condition.correct, tags.spans), tokenizer)
    row = make_row(
        env,
        task,
        condition,
        trace.thought,
        trace.answer,
        {b: len(trace.instances.get(b, ())) for b in BEHAVIORS},
        trace.instances,
        source,
    )
    if keep == "none":
        return row, None
    return (None, reason) if (reason := failure_mismatch(row, condition, env, task)) else (row, None)


def behavior_mismatch(tags: BehaviorTags, condition: Condition) -> str | None:
    """Why tagged behaviors are not exactly the condition's (``missing:``/``unwanted:``), or None."""
    for behavior in BEHAVIORS:
        present = tags.present(behavior)
        if present is None:
            return f"tagger_unknown:{behavior}"
        if behavior in condition.behaviors and not present:
            return f"missing:{behavior}"
        if behavior not in condition.behaviors and present:
            return f"unwanted:{behavior}"
    return None


def failure_mismatch(row: dict, condition: Condition, env: Environment, task: Task) -> str | None:
    """Why a row is not as right or wrong as the condition asks, or None; a wrong answer that claims a success
    it did not reach is no honest failure (``false_success_claim``)."""
    if row["correct"] != condition.correct:
        return "wrong_answer" if condition.correct else "answer_not_wrong"
    if not condition.correct and false_success_claims(env, row["completion"], task):
        return "false_success_claim"
    return None


def build_llm(
    env: Environment,
    condition: Condition,
    n: int,
    n_val: int,
    config: LLMSourceConfig,
    seed: int = 0,
    tokenizer: Any = None,
    tagger: RegexTagger | None = None,
    log: Callable[[str], None] = print,
) -> tuple[datasets.DatasetDict, LLMReport]:
    """A priming set of LLM-written traces kept by ``config.filter`` (rejections in the report)."""
    if condition.needs_tokenizer and tokenizer is None:
        raise InputError(f"condition {condition.name!r} needs a tokenizer (--tokenizer DIR)")
    if config.filter == "natural_failure" and condition.correct:
        raise InputError(
            f"filter natural_failure keeps wrong answers: use an +incorrect condition, not {condition.name!r}"
        )
    tasks = priming_tasks(env, len(env.tasks("train")), seed)
    report = LLMReport()
    rows = asyncio.run(
        _collect(env, condition, n + n_val, tasks, config, tagger or RegexTagger(), tokenizer, report, log)
    )
    if len(rows) < n + n_val:
        log(
            f"llm: only {len(rows)} of {n + n_val} rows passed ({report.requests} requests); the set is short"
        )
    return to_dataset_dict(rows[:n], rows[n : n + n_val]), report


async def _collect(
    env: Environment,
    condition: Condition,
    wanted: int,
    tasks: Sequence[Task],
    config: LLMSourceConfig,
    tagger: RegexTagger,
    tokenizer: Any,
    report: LLMReport,
    log: Callable[[str], None],
) -> list[dict]:
    max_requests = config.max_requests or 5 * wanted
    # Natural failures come from a writer that tries to solve the task, as the paper's did.
    asked = dataclasses.replace(condition, correct=True) if config.filter == "natural_failure" else condition
    system = system_prompt(asked, writer_brief(env))
    rows: list[dict] = []
    next_task = 0
    async with LLMClient(config, "priming llm") as client:
        model = report.model = client.model

        async def one(task: Task) -> tuple[Task, str | None]:
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": writer_problem(env, task)},
            ]
            return task, await client.complete(messages)

        while len(rows) < wanted and report.requests < max_requests and next_task < len(tasks):
            size = min(
                max(1, round((wanted - len(rows)) * config.oversample)),
                max_requests - report.requests,
                len(tasks) - next_task,
            )
            batch = tasks[next_task : next_task + size]
            next_task += size
            report.requests += size
            for task, reply in await asyncio.gather(*(one(t) for t in batch)):
                row, reason = judge_reply(
                    reply, task, condition, env, tagger, tokenizer, f"llm:{model}", config.filter
                )
                if row is None:
                    report.rejections[reason] += 1
                elif len(rows) < wanted:
                    rows.append(row)
            report.accepted = len(rows)
            log(f"llm: {len(rows)}/{wanted} rows kept after {report.requests} requests")
    return rows
