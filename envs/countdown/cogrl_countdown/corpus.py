"""Pretraining corpora for the CPU miniature: what a tiny base model reads before it is primed.

The paper compares base models that differ in what their pretraining showed them (Gandhi et al., 2025:
Qwen-2.5's corpus is rich in the four behaviors, Llama-3.2's is not). In miniature, a corpus is a mix of:

- arithmetic documents: lines ``a op b = c`` for the steps a Countdown search takes (operands drawn from
  real search moves, so their sizes match what the model will need);
- direct derivations: a train problem's prompt and its solution path, written as a search trace without
  any of the four behaviors (no checks, no abandoned branches, no subgoals), then the answer;
- optionally a fraction of full search traces (all four behaviors): the "Qwen-like" base.

A fixed share of equations (``HELD_OUT_BUCKETS``, by a hash of ``a op b``) never appears in any document, so
``probes`` measures arithmetic on equations the model has not seen: the base's gate before priming.
Test problems never appear: derivations are written for the train split only.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from cogrl.behaviors.catalog import PAPER_BEHAVIORS
from cogrl.envs import Task
from cogrl_countdown import prompts
from cogrl_countdown.search_traces import forward_moves, write_search_trace

HELD_OUT_BUCKETS = 16
"""One equation in this many (by hash) is held out of every corpus and used only to probe arithmetic."""
LINES_PER_ARITHMETIC_DOCUMENT = 8
_EQUATION = re.compile(r"(\d+) ([-+*/]) (\d+) = \d+")


class CorpusOptions(BaseModel):
    """The ``corpus`` block of a pretraining recipe for ``countdown`` (generated, so no file is needed)."""

    model_config = ConfigDict(extra="forbid")

    documents: int = Field(20_000, ge=1)
    """Documents in the corpus."""
    arithmetic_fraction: float = Field(0.4, ge=0.0, le=1.0)
    """Share of arithmetic documents (eight equations each); the rest are derivations and search traces."""
    search_fraction: float = Field(0.0, ge=0.0, le=1.0)
    """Share of full search traces (all four behaviors). 0: a "Llama-like" base that never saw the behaviors;
    a few percent: a "Qwen-like" base (the paper's first claim, in miniature)."""
    probes: int = Field(256, ge=0)
    """Held-out equations used to measure the base's arithmetic after pretraining."""
    seed: int = 0


def held_out(a: int, op: str, b: int) -> bool:
    """Whether ``a op b`` belongs to the held-out bucket (stable across machines and runs)."""
    digest = hashlib.sha256(f"{a} {op} {b}".encode()).digest()
    return digest[0] % HELD_OUT_BUCKETS == 0


def equations(text: str) -> list[tuple[int, str, int]]:
    """The ``a op b = c`` equations written in a text (search-trace step lines and arithmetic lines)."""
    return [(int(a), op, int(b)) for a, op, b in _EQUATION.findall(text)]


def _random_move(tasks: Sequence[Task], rng: random.Random, max_value: int) -> tuple[int, str, int, int]:
    """One step a search could take: a move on a train problem's numbers or on a number it reached."""
    while True:
        items = [(n, "") for n in rng.choice(tasks).data["numbers"]]
        if rng.random() < 0.5 and (moves := forward_moves(items, max_value)):  # one pair already combined
            i, j, _, result = rng.choice(moves)
            items = [(result, "")] + [item for k, item in enumerate(items) if k not in (i, j)]
        if moves := forward_moves(items, max_value):
            i, j, op, result = rng.choice(moves)
            return items[i][0], op, items[j][0], result


def arithmetic_document(tasks: Sequence[Task], rng: random.Random, max_value: int) -> str:
    lines = []
    while len(lines) < LINES_PER_ARITHMETIC_DOCUMENT:
        a, op, b, c = _random_move(tasks, rng, max_value)
        if not held_out(a, op, b):
            lines.append(f"{a} {op} {b} = {c}")
    return "\n".join(lines)


def search_document(
    task: Task, behaviors: frozenset[str], rng: random.Random, max_chars: int, max_value: int
) -> str | None:
    """Prompt, thought and answer of one solved search trace; None when it would show a held-out equation
    or does not fit ``max_chars`` and ``max_value``."""
    try:
        trace = write_search_trace(
            task.data["numbers"],
            task.data["target"],
            behaviors,
            True,
            rng,
            max_chars=max_chars,
            max_value=max_value,
        )
    except ValueError:
        return None
    if any(held_out(*equation) for equation in equations(trace.thought)):
        return None
    return task.prompt + prompts.completion(trace.thought, trace.answer)


def write_corpus(tasks: Sequence[Task], options: CorpusOptions, max_chars: int, max_value: int) -> list[str]:
    """The documents, in a seeded order. ``tasks`` are the train split's (the test split never appears)."""
    rng = random.Random(f"countdown-corpus/{options.seed}")
    n_arithmetic = round(options.documents * options.arithmetic_fraction)
    n_search = round(options.documents * options.search_fraction)
    n_search = min(n_search, options.documents - n_arithmetic)
    documents = [arithmetic_document(tasks, rng, max_value) for _ in range(n_arithmetic)]
    wanted = [
        (frozenset(PAPER_BEHAVIORS), n_search),
        (frozenset(), options.documents - n_arithmetic - n_search),
    ]
    for behaviors, n in wanted:
        written = 0
        while written < n:
            document = search_document(rng.choice(tasks), behaviors, rng, max_chars, max_value)
            if document is not None:
                documents.append(document)
                written += 1
    rng.shuffle(documents)
    return documents


def probes(tasks: Sequence[Task], options: CorpusOptions, max_value: int) -> dict[str, list[tuple[str, str]]]:
    """Arithmetic probes, (``"a op b ="``, ``" c"``), drawn like the corpus's own equations:
    ``arithmetic`` are fresh draws (lines no document holds as such, though most of their equations appear
    elsewhere: does the base know its arithmetic?); ``unseen_equations`` come from the held-out bucket that
    no document shows at all (does it compute, or recall?)."""
    rng = random.Random(f"countdown-probes/{options.seed}")
    found: dict[str, dict[str, str]] = {"arithmetic": {}, "unseen_equations": {}}
    for _ in range(400 * max(options.probes, 1)):
        if all(len(pairs) >= options.probes for pairs in found.values()):
            break
        a, op, b, c = _random_move(tasks, rng, max_value)
        pairs = found["unseen_equations" if held_out(a, op, b) else "arithmetic"]
        if len(pairs) < options.probes:
            pairs.setdefault(f"{a} {op} {b} =", f" {c}")
    return {name: list(pairs.items()) for name, pairs in found.items()}
