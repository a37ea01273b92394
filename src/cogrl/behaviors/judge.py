"""An LLM judge that counts each catalog behavior in a response, through any OpenAI-compatible server.

The paper (Gandhi et al., 2025) asked gpt-4o-mini, with one rubric prompt per behavior, for the number of
instances in one response, and silently counted an unreadable reply as 0. Here an unreadable reply is
*unknown* (``None``), every finished judgment is written to an on-disk cache the moment it arrives (so a
killed job resumes without paying twice), and transient server faults are retried with jittered
exponential backoff (by the lab's one OpenAI-compatible client, `cogrl.llm_client`). The endpoint can be a
local vLLM server, a cluster server or a hosted API (`cogrl.config.JudgeConfig`); the API key comes from the
environment only (``COGRL_JUDGE_API_KEY``, else ``OPENAI_API_KEY``) and is never logged, cached or written
out.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from cogrl.behaviors.catalog import get_behavior, rubric_set
from cogrl.behaviors.types import BEHAVIORS, BehaviorTags
from cogrl.config import JudgeConfig
from cogrl.envs import GENERIC_JUDGE_DOMAIN, Environment, Task, judge_domain, judge_problem, tagger_hints
from cogrl.llm_client import ClientStats, LLMClient

RUBRIC_VERSIONS = {"cogrl": "v1", "paper": "paper-v1"}
"""Per rubric set, part of every cache key: change it whenever a rubric's wording changes, so old judgments
are not reused."""

MAX_COUNT = 200
"""A count above this is absurd for one response (a 1,024-token trace) and is read as unknown."""

MAX_REPLY_CHARS = 20_000
"""Only this much of a reply is parsed (the request also caps it with ``max_tokens``)."""

SYSTEM_TEMPLATE = (
    "You annotate reasoning traces. You are given the definition of one reasoning behavior and one response "
    "written for {domain}. Count the distinct instances of that behavior in the response. "
    "Think briefly (at most three sentences), then end with a final line of exactly the form\n"
    "COUNT: <n>\n"
    "where <n> is a non-negative integer (0 if the behavior never occurs)."
)
"""The judge's system prompt; ``{domain}`` is the environment's (`cogrl.envs.judge_domain`)."""


def system_prompt(domain: str = GENERIC_JUDGE_DOMAIN) -> str:
    """The system prompt for responses written for ``domain`` (e.g. "a Countdown arithmetic puzzle")."""
    return SYSTEM_TEMPLATE.format(domain=domain)


RUBRICS: Mapping[str, str] = rubric_set("cogrl")
"""Behavior -> the lab's rubric (`cogrl.behaviors.catalog`, ``Behavior.rubrics["cogrl"]``), a live view."""

PAPER_RUBRICS: Mapping[str, str] = rubric_set("paper")
"""The paper's definitions (Gandhi et al., 2025; its judge prompts), in our words: backtracking is any new
attempt that does not build on the previous result, and verification includes implicit verdicts. Its judge
also sampled at temperature 1 and read an unreadable reply as 0; here the ``temperature`` knob decides and an
unreadable reply stays unknown. A behavior the paper did not define uses its ``cogrl`` rubric here."""

RUBRIC_SETS: dict[str, Mapping[str, str]] = {"cogrl": RUBRICS, "paper": PAPER_RUBRICS}
"""Selectable with ``JudgeConfig.rubrics`` (``cogrl behaviors tag --rubrics``); each is a live view of the
behavior catalog, so a registered behavior is judged too."""


# ----------------------------------------------------------------------------------------------------------
# Reply parsing
# ----------------------------------------------------------------------------------------------------------
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_WORDS = {word: value for value, word in enumerate(_NUMBER_WORDS)}
# "COUNT: 3", "**Count:** 3", "final count = 3", "COUNT: [3]", "Count - three"
_COUNT_LINE = regex.compile(
    r"\b(?:final\s+)?count\b[\s*_`'\"]*[:=\-][\s*_`'\"\[(]*(?P<n>-?\d+(?:[.,]\d+)?|[a-z]+)\b(?!\s*[/%])",
    regex.IGNORECASE,
)
_BARE_NUMBER = regex.compile(r"[\s*_`'\"]*(?P<n>\d+)[\s*_`'\".]*")
# Small judges often ignore the format and write "contains 3 distinct instances of ...".
_INSTANCES = regex.compile(
    r"\b(?P<n>\d+|[a-z]+)\s+(?:distinct\s+|separate\s+)?instances?\b", regex.IGNORECASE
)


def parse_count(reply: str) -> int | None:
    """The count a judge reply ends with, or ``None`` when none can be read (never a silent 0).

    Reads the last ``COUNT: <n>`` line (case, markdown emphasis and ``=`` tolerated, number words up to ten);
    failing that, a reply that is nothing but one integer, or "<n> (distinct) instances" ("no instances":
    0) when every such phrase in the reply names the same number. Negative, fractional and absurd
    (> ``MAX_COUNT``) values are unknown. Work is linear in the first ``MAX_REPLY_CHARS`` characters."""
    reply = reply[:MAX_REPLY_CHARS]
    matches = list(_COUNT_LINE.finditer(reply))
    instances = {m["n"].lower() for m in _INSTANCES.finditer(reply)}
    instances = {"zero" if n == "no" else n for n in instances}
    instances = {n for n in instances if n.isdigit() or n in _WORDS}
    if matches:
        raw = matches[-1]["n"].lower()
    elif bare := _BARE_NUMBER.fullmatch(reply):
        raw = bare["n"]
    elif len(instances) == 1:
        raw = instances.pop()
    else:
        return None
    if raw in _WORDS:
        return _WORDS[raw]
    if not regex.fullmatch(r"\d+", raw):
        return None
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(MAX_COUNT)):
        return None  # absurd, and never converted: int() of thousands of digits is slow, past 4,300 it raises
    count = int(digits)
    return count if count <= MAX_COUNT else None


# ----------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trajectory:
    """One response to judge or tag: its text, the problem shown to the judge above it (None: none), the
    tagger's hints (keyword arguments of ``tag``), and what the responses are written for (the judge's
    system prompt). `Trajectory.of` fills them from an environment and a task."""

    text: str
    problem: str | None = None
    hints: Mapping[str, Any] = field(default_factory=dict)
    domain: str = GENERIC_JUDGE_DOMAIN

    @classmethod
    def of(cls, env: Environment, text: str, task: Task) -> Trajectory:
        """A response to ``task``, described as ``env`` describes its tasks (`cogrl.envs`)."""
        return cls(text, judge_problem(env, task), tagger_hints(env, task), judge_domain(env))


def subject_text(item: Trajectory, max_chars: int) -> str:
    """What the judge reads about one response: the problem (when known) and the response, cut to size."""
    text = item.text
    if len(text) > max_chars:
        text = text[:max_chars] + "\n[... response truncated ...]"
    problem = f"{item.problem}\n\n" if item.problem else ""
    return f"{problem}Response:\n<<<\n{text}\n>>>"


def rubric_prompt(behavior: str, subject: str, rubrics: str = "cogrl") -> str:
    """The user message asking for the count of one catalog behavior, with its rubric from set ``rubrics``."""
    entry = get_behavior(behavior)
    return (
        f"{RUBRIC_SETS[rubrics][behavior]}\n\n{subject}\n\n"
        f"How many distinct instances of {entry.label} does the response contain? End with the line COUNT: <n>."
    )


# ----------------------------------------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------------------------------------
CacheKey = tuple[str, str, str, str]
"""(model, rubric version and system-prompt digest, behavior, sha256 of the subject text)."""


class JudgeCache:
    """Finished judgments in SQLite, one committed row per judgment, shared safely by several processes.

    WAL with ``synchronous=NORMAL``: a committed judgment survives a killed process (the resume case); only
    an OS crash or power loss can drop the last few, at no risk of corruption. FULL would fsync every row
    and cap a fast local judge at a few dozen judgments per second.

    A reply without a readable count is stored too (as NULL): it is a finished judgment, and with a greedy
    judge a rerun would get the same reply. Failed requests (retries exhausted) are not stored."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS judgments (model TEXT, rubric TEXT, behavior TEXT, text_sha256 TEXT, "
            "count INTEGER, reply TEXT, created REAL, PRIMARY KEY (model, rubric, behavior, text_sha256))"
        )

    def get_many(self, keys: Iterable[CacheKey]) -> dict[CacheKey, int | None]:
        found: dict[CacheKey, int | None] = {}
        for key in keys:
            row = self._db.execute(
                "SELECT count FROM judgments WHERE model=? AND rubric=? AND behavior=? AND text_sha256=?", key
            ).fetchone()
            if row is not None:
                found[key] = row[0]
        return found

    def put(self, key: CacheKey, count: int | None, reply: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?)", (*key, count, reply, time.time())
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def close(self) -> None:
        self._db.close()


# ----------------------------------------------------------------------------------------------------------
# The judge
# ----------------------------------------------------------------------------------------------------------
@dataclass
class JudgeStats(ClientStats):
    """What one tagging run cost: the client's requests, retries and failures, plus cache hits, finished
    judgments and the replies among them without a readable count."""

    cache_hits: int = 0
    judged: int = 0
    unparsable: int = 0


class LLMJudge:
    """Count the catalog's behaviors in responses with one rubric request per (response, behavior)."""

    def __init__(self, config: JudgeConfig, cache: JudgeCache | None = None) -> None:
        self.config = config
        self.cache = cache
        self.model = config.model
        self.stats = JudgeStats()

    def tag(self, text: str, **hints: Any) -> BehaviorTags:
        """One response without its problem (the hints are a tagger's; the judge does not read them)."""
        return self.tag_many([Trajectory(text, hints=hints)])[0]

    def tag_many(
        self, items: Sequence[Trajectory], on_progress: Callable[[int], None] | None = None
    ) -> list[BehaviorTags]:
        return asyncio.run(self.atag_many(items, on_progress))

    async def atag_many(
        self, items: Sequence[Trajectory], on_progress: Callable[[int], None] | None = None
    ) -> list[BehaviorTags]:
        """Judge every (item, behavior) pair not already cached; ``on_progress(n)`` reports finished pairs.

        Raises `EndpointError` when the server rejects the URL, model or key."""
        advance = on_progress or (lambda n: None)
        config = self.config.model_copy(update={"model": self.model})  # resolved once, then reused
        async with LLMClient(config, "judge", self.stats) as client:
            self.model = client.model
            subjects = [subject_text(item, self.config.max_text_chars) for item in items]
            systems = [system_prompt(item.domain) for item in items]
            keys = [self._keys(subject, system) for subject, system in zip(subjects, systems, strict=True)]
            # Each distinct (behavior, text) is judged once, however often it occurs in ``items``;
            # prompts are built when sent, so memory holds the texts once, not once per rubric.
            occurrence = {
                key: (behavior, i) for i in reversed(range(len(items))) for behavior, key in keys[i].items()
            }
            uses = Counter(key for row in keys for key in row.values())
            results = self.cache.get_many(occurrence) if self.cache is not None else {}
            self.stats.cache_hits += len(results)
            advance(sum(uses[key] for key in results))

            async def judge_one(key: CacheKey) -> None:
                behavior, i = occurrence[key]
                messages = [
                    {"role": "system", "content": systems[i]},
                    {"role": "user", "content": rubric_prompt(behavior, subjects[i], self.config.rubrics)},
                ]
                reply = await client.complete(messages)
                if reply is None:  # failed: unknown for now, not cached, so a rerun asks again
                    results[key] = None
                else:
                    results[key] = count = parse_count(reply)
                    self.stats.judged += 1
                    if count is None:
                        self.stats.unparsable += 1
                    if self.cache is not None:
                        self.cache.put(key, count, reply[:MAX_REPLY_CHARS])
                advance(uses[key])

            pending = [key for key in occurrence if key not in results]
            for start in range(0, len(pending), self.config.batch_size):
                await asyncio.gather(
                    *(judge_one(key) for key in pending[start : start + self.config.batch_size])
                )
        source = f"llm:{self.model}" + ("" if self.config.rubrics == "cogrl" else f":{self.config.rubrics}")
        return [BehaviorTags(counts={b: results[row[b]] for b in BEHAVIORS}, source=source) for row in keys]

    def _keys(self, subject: str, system: str) -> dict[str, CacheKey]:
        """Per behavior, the cache key of judging ``subject`` with that behavior's rubric under the system
        prompt ``system`` (its digest joins the rubric version: another domain's prompt is another judgment)."""
        digest = hashlib.sha256(subject.encode()).hexdigest()
        rubric = (
            f"{RUBRIC_VERSIONS[self.config.rubrics]}+sys:{hashlib.sha256(system.encode()).hexdigest()[:16]}"
        )
        return {b: (self.model, rubric, b, digest) for b in BEHAVIORS}
