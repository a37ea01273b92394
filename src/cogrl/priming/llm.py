"""LLM-written priming traces: behavior-conditioned prompts sent to any OpenAI-compatible chat endpoint.

The paper (Gandhi et al., 2025) had Claude-3.5-Sonnet write each condition's traces from one system prompt
per condition. Here the system prompt is composed from the condition's behaviors (so a newly registered
condition gets one too), every reply is parsed for its thought and answer, scored by the environment, and
tagged by the regex behavior tagger; a reply is kept only when its answer is as right or wrong as the
condition asks and its behaviors are exactly the condition's. Rejections are counted by reason.

The client is deliberately small (httpx, an asyncio semaphore, jittered retries on 429/5xx/transport
faults). The behavior judge's client (`cogrl.behaviors.judge`) is specialised to rubric prompts and count
replies, so it is not reused. The API key comes from the environment only (``COGRL_LLM_API_KEY``, else
``OPENAI_API_KEY``) and never reaches logs or outputs.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import regex

from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.behaviors.types import BEHAVIORS
from cogrl.envs import Environment, Task, Trace
from cogrl.files import InputError
from cogrl.priming.conditions import Condition
from cogrl.priming.dataset import make_row, priming_tasks, to_dataset_dict

if TYPE_CHECKING:
    import datasets

API_KEY_VARIABLES = ("COGRL_LLM_API_KEY", "OPENAI_API_KEY")
MAX_REPLY_CHARS = 20_000
"""Replies are cut to this many characters before parsing (bounded work on model output)."""

BEHAVIOR_INSTRUCTIONS = {
    "verification": "check results: compare each attempt's value with the target, and recompute the final "
    "equation to confirm it before answering",
    "backtracking": "when an attempt fails, say so plainly and go back to try a different combination; "
    "make at least one failed attempt before the one that works",
    "subgoal_setting": "state intermediate goals before computing, e.g. 'first make 6 from 2 and 3, then "
    "multiply by 4'",
    "backward_chaining": "work backwards from the target, e.g. 'to reach 24 with 4 left over I need 6, "
    "since 24 / 4 = 6'",
}
AVOID_INSTRUCTIONS = {
    "verification": "do not check or recompute results and do not compare values with the target",
    "backtracking": "do not abandon any attempt: go straight to a working equation",
    "subgoal_setting": "do not announce plans or intermediate goals",
    "backward_chaining": "do not reason backwards from the target",
}


def system_prompt(condition: Condition) -> str:
    """The one system prompt of a condition, composed from its behaviors (the paper wrote one per condition)."""
    wanted = [BEHAVIOR_INSTRUCTIONS[b] for b in BEHAVIORS if b in condition.behaviors]
    avoided = [AVOID_INSTRUCTIONS[b] for b in BEHAVIORS if b not in condition.behaviors]
    lines = [
        "You write worked solutions to Countdown puzzles: combine the given numbers with + - * /, each number "
        "exactly once, to reach the target. Write the reasoning as a person thinking aloud, in plain sentences.",
    ]
    if wanted:
        lines.append("In your reasoning: " + "; ".join(wanted) + ".")
    if avoided:
        lines.append("Also: " + "; ".join(avoided) + ".")
    if not condition.correct:
        lines.append(
            "Your final answer must be WRONG: end on an equation that uses every number once but misses the "
            "target by a little, presented with confidence."
        )
    lines.append(
        "Reply in exactly this form: <think>your reasoning</think>\n<answer>the equation only</answer>"
    )
    return "\n".join(lines)


def user_prompt(task: Task) -> str:
    numbers, target = task.data.get("numbers"), task.data.get("target")
    return f"Numbers: {list(numbers or [])}. Target: {target}."


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


@dataclass(frozen=True)
class LLMSourceConfig:
    """How to reach the writer model and how hard to push it."""

    endpoint: str
    """Base URL of an OpenAI-compatible server, with or without ``/v1``."""
    model: str | None = None
    """Model name; None asks ``/v1/models`` (a vLLM server serves one)."""
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 0.5
    backoff_cap_s: float = 20.0
    temperature: float = 1.0
    max_tokens: int = 1024
    max_requests: int | None = None
    """Stop after this many requests even if the set is short (default: 5 per row wanted)."""
    oversample: float = 1.5
    """Each round asks for this many times the rows still missing (replies get rejected)."""

    def __post_init__(self) -> None:
        if not self.endpoint.startswith(("http://", "https://")):
            raise InputError(f"--endpoint must be an http(s) URL, got {self.endpoint!r}")

    @property
    def base_url(self) -> str:
        url = self.endpoint.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url


@dataclass
class LLMReport:
    model: str = ""
    requests: int = 0
    accepted: int = 0
    rejections: Counter = field(default_factory=Counter)


def api_key() -> str | None:
    for name in API_KEY_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None


async def _chat(
    client: httpx.AsyncClient, config: LLMSourceConfig, model: str, messages: list[dict]
) -> str | None:
    """One chat completion, retried on 429/5xx/transport faults/unreadable bodies; None when it never came.

    401/403/404 mean the endpoint, key or model is wrong for every request: they stop the build."""
    payload = {
        "model": model,
        "messages": messages,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
    }
    for attempt in range(config.max_retries + 1):
        if attempt:
            await asyncio.sleep(random.uniform(0, min(config.backoff_cap_s, config.backoff_s * 2**attempt)))
        try:
            response = await client.post("/v1/chat/completions", json=payload, timeout=config.timeout_s)
        except httpx.TransportError:
            continue
        status = response.status_code
        if status in (401, 403, 404):
            raise InputError(
                f"{config.base_url}: HTTP {status} for /v1/chat/completions (check endpoint/model/key)"
            )
        if status == 429 or status >= 500:
            continue
        if status >= 400:
            return None
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        if isinstance(content, str):
            return content
    return None


async def _served_model(client: httpx.AsyncClient, config: LLMSourceConfig) -> str:
    try:
        response = await client.get("/v1/models", timeout=config.timeout_s)
        response.raise_for_status()
        return response.json()["data"][0]["id"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(
            f"{config.base_url}/v1/models did not name a model ({type(exc).__name__}); pass --model"
        ) from None


def judge_reply(
    reply: str | None,
    task: Task,
    condition: Condition,
    env: Environment,
    tagger: RegexTagger,
    tokenizer: Any,
    model: str,
) -> tuple[dict | None, str | None]:
    """(row, None) for a kept reply, (None, reason) for a rejected one."""
    if reply is None:
        return None, "request_failed"
    parsed = parse_reply(reply)
    if parsed is None:
        return None, "unreadable_format"
    thought, answer = parsed
    numbers, target = task.data.get("numbers"), task.data.get("target")
    tags = tagger.tag(thought, numbers=numbers, target=target)
    for behavior in BEHAVIORS:
        present = tags.present(behavior)
        if present is None:
            return None, f"tagger_unknown:{behavior}"
        if behavior in condition.behaviors and not present:
            return None, f"missing:{behavior}"
        if behavior not in condition.behaviors and present:
            return None, f"unwanted:{behavior}"
    trace = condition.apply(Trace(thought, answer, condition.correct, tags.spans), tokenizer)
    row = make_row(
        env,
        task,
        condition,
        trace.thought,
        trace.answer,
        {b: len(trace.instances.get(b, ())) for b in BEHAVIORS},
        trace.instances,
        f"llm:{model}",
    )
    if row["correct"] != condition.correct:
        return None, "wrong_answer" if condition.correct else "answer_not_wrong"
    return row, None


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
    """A priming set of LLM-written traces that pass the condition's checks (rejections in the report)."""
    if condition.needs_tokenizer and tokenizer is None:
        raise InputError(f"condition {condition.name!r} needs a tokenizer (--tokenizer DIR)")
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
    key = api_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    max_requests = config.max_requests or 5 * wanted
    system = system_prompt(condition)
    rows: list[dict] = []
    next_task = 0
    semaphore = asyncio.Semaphore(config.concurrency)
    limits = httpx.Limits(max_connections=config.concurrency)
    async with httpx.AsyncClient(base_url=config.base_url, headers=headers, limits=limits) as client:
        model = config.model or await _served_model(client, config)
        report.model = model

        async def one(task: Task) -> tuple[Task, str | None]:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user_prompt(task)}]
            async with semaphore:
                return task, await _chat(client, config, model, messages)

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
                row, reason = judge_reply(reply, task, condition, env, tagger, tokenizer, model)
                if row is None:
                    report.rejections[reason] += 1
                elif len(rows) < wanted:
                    rows.append(row)
            report.accepted = len(rows)
            log(f"llm: {len(rows)}/{wanted} rows kept after {report.requests} requests")
    return rows
