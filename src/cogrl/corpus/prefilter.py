"""The prefilter: a regex pass over every document, cheap enough for a web corpus, before the LLM judge.

It does two things. It drops documents that are not mathematics (too few arithmetic expressions, LaTeX
commands and mathematical words per 1,000 characters): obvious negatives for both arms. And it counts
behavior phrases with the lab's regex tagger (`cogrl.behaviors.regex_tagger`) under a pattern set written
for general mathematical prose ("let's check", "that doesn't work, instead", "first we need",
"working backwards from"; `patterns/prose.yaml`), which ranks the rest: documents with hits are the
behavior-rich candidates, documents without are behavior-minimal candidates, thinned to a seeded sample
(`minimal_sample`) because a web corpus holds far more of them than the rich arm can be matched with.
Every candidate then goes to the judge; the regex counts are a ranking signal, not a label.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import regex

from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.behaviors.types import BEHAVIORS
from cogrl.config import CorpusPrefilterConfig

PROSE_PATTERNS = Path(str(resources.files("cogrl.corpus") / "patterns" / "prose.yaml"))
"""The built-in pattern set for mathematical prose."""

_MATH = regex.compile(
    r"\d\s{0,2}[-+*/=^×÷<>≤≥]\s{0,2}[\d(]"  # arithmetic, equations, inequalities between numbers
    r"|\d\s(?:times|plus|minus|divided\s+by)\s\d"
    r"|[a-z]\s{0,2}[=^]\s{0,2}[-\d(a-z]"  # x = 3, x^2, y=mx
    r"|\\(?:frac|sqrt|int|sum|prod|cdot|times|le|ge|neq|alpha|beta|theta|pi|lim|begin|left|right)\b"
    r"|\$"
    r"|\b(?:equations?|theorem|lemma|proof|prove|solve[sd]?|integral|derivative|polynomial|matrix|"
    r"probability|triangle|angle|radius|fraction|divisible|divide[sd]?|multiples?|remainder|quotient|prime|"
    r"modulo|factor|inequality|function|integer|perimeter|area)\b",
    regex.IGNORECASE,
)
"""One mathematical marker: arithmetic, a formula, a LaTeX command or dollar sign, a mathematical word."""

BUCKETS = ("rich", "middle", "minimal", "not_math", "sampled_out")
"""What the prefilter makes of a document: `rich` (regex hits of at least two behaviors, or several of
one), `middle` (some hits), `minimal` (none) go on to the judge; `not_math` and `sampled_out` (a minimal
document outside `minimal_sample`) are dropped."""


@dataclass(frozen=True)
class Prefiltered:
    """The prefilter's view of one document."""

    counts: dict[str, int | None]
    """Regex instances per behavior (None: the scan ran out of time)."""
    math_density: float
    """Mathematical markers per 1,000 characters."""
    bucket: str

    @property
    def hits(self) -> int:
        return sum(c or 0 for c in self.counts.values())

    @property
    def kept(self) -> bool:
        return self.bucket in ("rich", "middle", "minimal")


class Prefilter:
    """``Prefilter(config, seed)(doc_id, text) -> Prefiltered``; build one per process (the tagger compiles
    its patterns once)."""

    def __init__(self, config: CorpusPrefilterConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self.tagger = RegexTagger(config.patterns or PROSE_PATTERNS, timeout_s=config.timeout_s)

    def math_density(self, text: str) -> float:
        markers = sum(1 for _ in _MATH.finditer(text[: self.tagger.max_chars]))
        return 1000.0 * markers / max(1, min(len(text), self.tagger.max_chars))

    def __call__(self, doc_id: str, text: str) -> Prefiltered:
        density = self.math_density(text)
        if density < self.config.min_math_density:
            return Prefiltered({b: None for b in BEHAVIORS}, density, "not_math")
        counts = dict(self.tagger.tag(text, numbers=[]).counts)
        hits = sum(c or 0 for c in counts.values())
        shown = sum(1 for c in counts.values() if c)
        if shown >= 2 or hits >= 3:
            bucket = "rich"
        elif hits or any(c is None for c in counts.values()):
            bucket = "middle"
        elif self._sampled(doc_id):
            bucket = "minimal"
        else:
            bucket = "sampled_out"
        return Prefiltered(counts, density, bucket)

    def _sampled(self, doc_id: str) -> bool:
        if self.config.minimal_sample >= 1.0:
            return True
        digest = hashlib.sha256(f"minimal/{self.seed}/{doc_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.config.minimal_sample
