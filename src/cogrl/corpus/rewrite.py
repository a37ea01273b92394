"""Rewriting: an LLM turns a selected document into question / first-person thinking / answer, and a check
rejects rewrites that lost the document's content.

The paper rewrote its selected OpenWebMath documents into this form before continued pretraining. Two
variants: `behaviors` asks the writer to keep every check, abandoned attempt, intermediate goal and backward
step of the document in the thinking (the rich arm); `plain` asks for a direct derivation (the minimal arm).

A rewriter can silently drop a worked example, change a number or summarise a proof into one line. The
content check (`preservation`) compares the rewrite with the document on what a mathematical text cannot
lose: its numbers (share of the document's distinct numbers still present), its named entities and
formula symbols (capitalised names not opening a sentence, LaTeX commands, single-letter variables next to
an operator), and its length (rewrite / document characters within a band). Its thresholds are knobs
(`CorpusRewriteConfig`); tests/corpus measure it on faithful and lossy rewrites of the sample documents. A
`behaviors` rewrite must also still show behaviors to the prefilter's tagger, and a `plain` one must show
none it was asked to drop (`behavior_check`), else it is rejected too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import regex

from cogrl.config import CorpusRewriteConfig
from cogrl.llm_client import ClientStats, LLMClient

SYSTEM_PROMPT = (
    "You rewrite mathematical documents as a question, the first-person thinking of someone solving it, and "
    "the answer. Keep every number, formula, name and step of the document; add nothing it does not say."
)

INSTRUCTIONS = {
    "behaviors": (
        "In the thinking, keep every place where the author checks a result, abandons an approach that "
        "fails and tries another, sets an intermediate goal, or works backwards from the goal, in the "
        "first person ('Let me check ...', 'That doesn't work, so instead ...')."
    ),
    "plain": (
        "Write the thinking as a direct derivation from the question to the answer, in the first person: "
        "no checking of results, no abandoned attempts, no announced plans, no working backwards."
    ),
}
"""What each variant asks of the writer, after the shared instructions."""

TEMPLATE = "Question: {question}\n\n<think>\n{thinking}\n</think>\n\nAnswer: {answer}"
"""How a parsed rewrite becomes a training document."""

_SECTION = regex.compile(
    r"^[\s*#]*(?P<name>question|thinking|answer)[\s*]*:[\s*]*", regex.IGNORECASE | regex.MULTILINE
)
_NUMBER = regex.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?:/\d+)?(?![\w])")
_CAPITALISED = regex.compile(r"(?<![.!?:]\s{1,4}|^|\n\s{0,4})\b[A-Z][a-z]{2,}\b")
_LATEX = regex.compile(r"\\[a-zA-Z]+")
_VARIABLE = regex.compile(
    r"(?<![A-Za-z])[a-zA-Z](?=\s{0,2}[=+\-*/^<>(])|(?<=[=+\-*/^<>(]\s{0,2})[a-zA-Z](?![A-Za-z])"
)


@dataclass(frozen=True)
class Preservation:
    """How much of a document a rewrite kept, and the verdict of the thresholds."""

    number_recall: float
    entity_recall: float
    length_ratio: float
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.reasons


def numbers(text: str) -> set[str]:
    """The distinct numbers of a text, normalised ("1,000" and "1000" alike; a trailing ".0" dropped)."""
    out = set()
    for match in _NUMBER.finditer(text):
        value = match.group().replace(",", "")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        out.add(value.lstrip("-") or "0")
    return out


def entities(text: str) -> set[str]:
    """Named entities and formula symbols: capitalised words not opening a sentence, LaTeX commands,
    single-letter variables beside an operator."""
    found = {m.group() for m in _CAPITALISED.finditer(text)}
    found |= {m.group() for m in _LATEX.finditer(text)}
    found |= {f"var:{m.group()}" for m in _VARIABLE.finditer(text)}
    return found


def recall(kept: set[str], wanted: set[str]) -> float:
    return len(kept & wanted) / len(wanted) if wanted else 1.0


def preservation(original: str, rewritten: str, config: CorpusRewriteConfig) -> Preservation:
    """Compare a rewrite with its document under the config's thresholds."""
    number_recall = recall(numbers(rewritten), numbers(original))
    entity_recall = recall(entities(rewritten), entities(original))
    ratio = len(rewritten) / max(1, len(original))
    reasons = []
    if number_recall < config.min_number_recall:
        reasons.append(f"kept {number_recall:.0%} of the numbers (< {config.min_number_recall:.0%})")
    if entity_recall < config.min_entity_recall:
        reasons.append(f"kept {entity_recall:.0%} of the entities (< {config.min_entity_recall:.0%})")
    if not config.min_length_ratio <= ratio <= config.max_length_ratio:
        reasons.append(
            f"length ratio {ratio:.2f} outside [{config.min_length_ratio:g}, {config.max_length_ratio:g}]"
        )
    return Preservation(number_recall, entity_recall, ratio, tuple(reasons))


def parse_rewrite(reply: str) -> str | None:
    """The rewrite in the template's form, or None when a section is missing or empty."""
    marks = list(_SECTION.finditer(reply))
    if not marks:
        return None
    sections: dict[str, str] = {}
    ends = [mark.start() for mark in marks[1:]] + [len(reply)]
    for mark, end in zip(marks, ends, strict=True):
        body = reply[mark.end() : end].strip()
        body = regex.sub(r"^</?think>\s*|\s*</?think>$", "", body).strip()
        sections.setdefault(mark["name"].lower(), body)
    if not all(sections.get(k) for k in ("question", "thinking", "answer")):
        return None
    return TEMPLATE.format(**sections)


def behavior_check(counts: Mapping[str, int | None], variant: str) -> str | None:
    """Why a rewrite's regex behavior counts contradict its variant (None: they do not)."""
    hits = sum(c or 0 for c in counts.values())
    if variant == "behaviors" and hits == 0:
        return "the behavior-preserving rewrite shows no behavior"
    if variant == "plain" and hits > 0:
        return f"the plain rewrite shows {hits} behavior phrase(s)"
    return None


def rewrite_prompt(text: str, variant: str, max_chars: int) -> str:
    if len(text) > max_chars:
        text = text[:max_chars]
    return (
        f"{INSTRUCTIONS[variant]}\n\nDocument:\n<<<\n{text}\n>>>\n\n"
        "Reply with three sections, each starting on its own line: 'Question:', 'Thinking:', 'Answer:'."
    )


async def arewrite(
    config: CorpusRewriteConfig, docs: Sequence[tuple[str, str]], stats: ClientStats, tag: Any
) -> list[dict[str, Any]]:
    """Rewrite each (text, variant); per document the fields `rewrite` (None when rejected),
    `rewrite_error` and the check's figures. ``tag(text)`` gives regex behavior counts (the prefilter's
    tagger)."""
    async with LLMClient(config, "corpus-rewrite", stats) as client:

        async def one(text: str, variant: str) -> dict[str, Any]:
            messages = [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": rewrite_prompt(text, variant, config.max_text_chars)},
            ]
            reply = await client.complete(messages)
            record: dict[str, Any] = {"variant": variant, "rewrite": None, "rewrite_error": None}
            if reply is None:
                record["rewrite_error"] = "request failed (see the log for the server's answers)"
                return record
            rewritten = parse_rewrite(reply)
            if rewritten is None:
                record["rewrite_error"] = f"reply lacks a Question/Thinking/Answer section: {reply[:300]!r}"
                return record
            check = preservation(text[: config.max_text_chars], rewritten, config)
            record.update(
                number_recall=check.number_recall,
                entity_recall=check.entity_recall,
                length_ratio=check.length_ratio,
            )
            reasons = list(check.reasons)
            if (why := behavior_check(tag(rewritten), variant)) is not None:
                reasons.append(why)
            if reasons:
                record["rewrite_error"] = "content check: " + "; ".join(reasons)
            else:
                record["rewrite"] = rewritten
            return record

        return list(await asyncio.gather(*(one(text, variant) for text, variant in docs)))


def rewrite_texts(
    config: CorpusRewriteConfig, docs: Sequence[tuple[str, str]], tag: Any, stats: ClientStats | None = None
) -> list[dict[str, Any]]:
    """`arewrite` from synchronous code (a Ray worker)."""
    return asyncio.run(arewrite(config, docs, stats if stats is not None else ClientStats(), tag))
