"""Selection: a behavior-rich and a behavior-minimal subset, matched in token budget and length distribution.

The comparison the paper makes (continued pretraining on either, then the same RL) is only about behaviors if
the two corpora are otherwise alike. So documents are paired by length: the rich documents, richest first
(most behavior instances in all), each take the unused minimal document of the nearest token length
(fewest instances first among equal lengths), if it is within `length_tolerance` of their own; pairs are
added until either arm would pass the budget. Both arms then hold the same number of documents, every
pair's lengths are within the tolerance, so the two length distributions and token totals nearly agree
(measured and reported: `token_gap`, and the two-sample Kolmogorov-Smirnov statistic of the lengths).
Lengths are bucketed exactly (a document has at most `max_doc_tokens` tokens), so each pairing is a
bisection over the distinct lengths left: linear-logarithmic in the pools, for millions of documents.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cogrl.config import CorpusSelectConfig


@dataclass
class Selection:
    rich: list[dict[str, Any]] = field(default_factory=list)
    minimal: list[dict[str, Any]] = field(default_factory=list)
    pools: dict[str, int] = field(default_factory=dict)
    """How many labelled documents qualified for each arm before matching."""

    def stats(self) -> dict[str, Any]:
        tokens = {arm: sum(d["tokens"] for d in docs) for arm, docs in self.arms().items()}
        return {
            "documents": {arm: len(docs) for arm, docs in self.arms().items()},
            "tokens": tokens,
            "token_gap": abs(tokens["rich"] - tokens["minimal"]),
            "length_ks": ks_statistic([d["tokens"] for d in self.rich], [d["tokens"] for d in self.minimal]),
            "pools": self.pools,
        }

    def arms(self) -> dict[str, list[dict[str, Any]]]:
        return {"rich": self.rich, "minimal": self.minimal}


def qualifies(row: Mapping[str, Any], config: CorpusSelectConfig) -> str | None:
    """The arm a labelled document may go to (`rich`, `minimal`), or None."""
    label = row.get("label")
    if label is None:
        return None
    if config.require_solution and not (label["problem"] and label["solution"]):
        return None
    counts = label["counts"].values()
    total = sum(counts)
    if total >= config.rich_min_count and sum(1 for c in counts if c) >= config.rich_min_behaviors:
        return "rich"
    if total <= config.minimal_max_count:
        return "minimal"
    return None


def select(rows: Iterable[Mapping[str, Any]], config: CorpusSelectConfig) -> Selection:
    """The matched arms from labelled documents (each needs `id`, `tokens`, `label`)."""
    pools: dict[str, list[Mapping[str, Any]]] = {"rich": [], "minimal": []}
    for row in rows:
        if (arm := qualifies(row, config)) is not None:
            pools[arm].append(row)
    selection = Selection(pools={arm: len(pool) for arm, pool in pools.items()})

    def rank(row: Mapping[str, Any], sign: int) -> tuple[int, str]:
        tie = hashlib.sha256(f"{config.seed}/{row['id']}".encode()).hexdigest()
        return sign * sum(row["label"]["counts"].values()), tie

    by_length: dict[int, deque[Mapping[str, Any]]] = {}
    for row in sorted(pools["minimal"], key=lambda r: rank(r, 1)):  # fewest behaviors first
        by_length.setdefault(row["tokens"], deque()).append(row)
    lengths = sorted(by_length)  # the lengths some unused minimal document still has
    totals = {"rich": 0, "minimal": 0}
    for rich in sorted(pools["rich"], key=lambda r: rank(r, -1)):  # richest first
        minimal = nearest(by_length, lengths, rich["tokens"], config.length_tolerance)
        if minimal is None:
            continue
        if config.token_budget is not None and (
            totals["rich"] + rich["tokens"] > config.token_budget
            or totals["minimal"] + minimal["tokens"] > config.token_budget
        ):
            break
        by_length[minimal["tokens"]].popleft()
        if not by_length[minimal["tokens"]]:
            del by_length[minimal["tokens"]]
            lengths.remove(minimal["tokens"])
        selection.rich.append(dict(rich))
        selection.minimal.append(dict(minimal))
        totals["rich"] += rich["tokens"]
        totals["minimal"] += minimal["tokens"]
    return selection


def nearest(
    by_length: Mapping[int, deque[Mapping[str, Any]]], lengths: list[int], tokens: int, tolerance: float
) -> Mapping[str, Any] | None:
    """The best-ranked unused minimal document of the length closest to ``tokens`` (the shorter on a tie),
    if that length is within ``tolerance`` of it."""
    i = bisect.bisect_left(lengths, tokens)
    candidates = [lengths[j] for j in (i - 1, i) if 0 <= j < len(lengths)]
    if not candidates:
        return None
    best = min(candidates, key=lambda n: (abs(n - tokens), n))
    return by_length[best][0] if abs(best - tokens) <= tolerance * tokens else None


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs (0: the
    same distribution of lengths; 1: disjoint)."""
    if not a or not b:
        return 1.0 if a or b else 0.0
    a, b = sorted(a), sorted(b)
    return max(abs(bisect.bisect_right(a, x) / len(a) - bisect.bisect_right(b, x) / len(b)) for x in {*a, *b})
