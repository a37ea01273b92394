"""Labelling: the LLM judge reads a candidate document and counts each catalog behavior in it, and says
whether the document holds a problem and its solution.

One request per document (not one per behavior, as `cogrl.behaviors.judge` asks of short Countdown
responses): a document is up to 2,048 tokens, and sending it four times would quadruple the cost of the
stage that dominates the pipeline's budget (bench/corpus.py). The reply is six `name: value` lines; a reply
that lacks one, or holds an unreadable value, is a `LabelError` whose message names the line and quotes the
reply. Such documents are kept in the shard's output with the error and the reply (so nothing is lost and
the card can count them), and are never selected. A request that fails for good (retries exhausted) is
recorded the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import regex

from cogrl.behaviors.catalog import get_behavior
from cogrl.behaviors.types import BEHAVIORS
from cogrl.config import CorpusLabelConfig
from cogrl.llm_client import ClientStats, LLMClient

SYSTEM_PROMPT = (
    "You annotate mathematical documents (textbook pages, forum answers, lecture notes) for the reasoning "
    "behaviors their author shows. Read the document, think briefly (at most three sentences), then end "
    "with exactly the answer lines you are asked for, one per line, nothing after them."
)

REPLY_SNIPPET = 300
"""Characters of an unreadable reply quoted in its error."""

_LINE = regex.compile(
    r"^[\s*_`#>-]*(?P<name>[a-z_ ]+?)[\s*_`]*[:=][\s*_`]*(?P<value>[^\n]*?)[\s*_`.]*$", regex.I | regex.M
)


class LabelError(ValueError):
    """A judge reply that does not hold every answer line."""


@dataclass(frozen=True)
class Label:
    counts: dict[str, int]
    has_problem: bool
    has_solution: bool

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def label_prompt(text: str, max_chars: int) -> str:
    """The user message for one document: the behaviors' definitions (from the catalog, so a registered
    behavior is labelled too), the document between ``<<<`` and ``>>>``, the answer lines asked for."""
    if len(text) > max_chars:
        text = text[:max_chars] + "\n[... document truncated ...]"
    definitions = "\n".join(
        f"- {b}: {get_behavior(b).definition} (in the document's own reasoning)" for b in BEHAVIORS
    )
    lines = "\n".join(f"{b}: <number of instances>" for b in BEHAVIORS)
    return (
        f"Behaviors (count the distinct instances of each in the document; 0 if absent):\n{definitions}\n\n"
        f"Document:\n<<<\n{text}\n>>>\n\n"
        "Also say whether the document states a mathematical problem (problem) and whether it works the "
        "problem through to a solution (solution). End with these lines:\n"
        f"{lines}\nproblem: yes|no\nsolution: yes|no"
    )


def parse_label(reply: str) -> Label:
    """The label in a judge reply (the last line of each name counts). Raises `LabelError` naming the first
    missing or unreadable line and quoting the reply."""
    found: dict[str, str] = {}
    for match in _LINE.finditer(reply):
        found[match["name"].strip().lower().replace(" ", "_")] = match["value"].strip().lower()
    counts: dict[str, int] = {}
    for behavior in BEHAVIORS:
        value = found.get(behavior)
        if value is None or not regex.fullmatch(r"\d{1,4}", value):
            raise LabelError(_why(behavior, value, reply))
        counts[behavior] = int(value)
    flags = {}
    for name in ("problem", "solution"):
        value = found.get(name)
        if value not in ("yes", "no", "true", "false"):
            raise LabelError(_why(name, value, reply))
        flags[name] = value in ("yes", "true")
    return Label(counts, flags["problem"], flags["solution"])


def _why(name: str, value: str | None, reply: str) -> str:
    what = "no line" if value is None else f"an unreadable value {value!r} on the line"
    return f"judge reply has {what} '{name}: ...' in {reply[:REPLY_SNIPPET]!r}"


def label_record(label: Label | None, error: str | None, reply: str | None) -> dict[str, Any]:
    """The fields a labelled document carries in a shard's output."""
    return {
        "label": None
        if label is None
        else {"counts": label.counts, "problem": label.has_problem, "solution": label.has_solution},
        "label_error": error,
        "label_reply": None if error is None or reply is None else reply[:2000],
    }


async def alabel(
    config: CorpusLabelConfig, texts: Sequence[str], stats: ClientStats
) -> tuple[list[dict[str, Any]], str]:
    """Label every text (`label_record` fields, in order); also the judge's model name. Raises
    `EndpointError` on a wrong URL, model or key."""
    async with LLMClient(config, "corpus-label", stats) as client:

        async def one(text: str) -> dict[str, Any]:
            messages = [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": label_prompt(text, config.max_text_chars)},
            ]
            reply = await client.complete(messages)
            if reply is None:
                return label_record(None, "request failed (see the log for the server's answers)", None)
            try:
                return label_record(parse_label(reply), None, reply)
            except LabelError as exc:
                return label_record(None, str(exc), reply)

        return list(await asyncio.gather(*(one(text) for text in texts))), str(client.model)


def label_texts(
    config: CorpusLabelConfig, texts: Sequence[str], stats: ClientStats | None = None
) -> tuple[list[dict[str, Any]], str]:
    """`alabel` from synchronous code (a Ray worker)."""
    return asyncio.run(alabel(config, texts, stats if stats is not None else ClientStats()))
