"""Selection: a behavior-rich and a behavior-minimal subset, matched in token budget and length distribution.

The comparison the paper makes (continued pretraining on either, then the same RL) is only about behaviors if
the two corpora are otherwise alike. So documents are paired: the rich pool's token lengths are cut into
`length_bins` quantile bins; within a bin the richest rich documents are paired one for one with the most
behavior-free minimal documents; pairs are then taken round-robin over the bins, in each bin's rank order,
until either arm would pass the budget. Both arms end with the same number of documents in every length
bin, and their token totals differ by at most the width of the bins' ranges (measured and reported:
`token_gap`, and the two-sample Kolmogorov-Smirnov statistic of the lengths).
"""

from __future__ import annotations

import bisect
import hashlib
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
    edges: list[int] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        tokens = {arm: sum(d["tokens"] for d in docs) for arm, docs in self.arms().items()}
        return {
            "documents": {arm: len(docs) for arm, docs in self.arms().items()},
            "tokens": tokens,
            "token_gap": abs(tokens["rich"] - tokens["minimal"]),
            "length_ks": ks_statistic([d["tokens"] for d in self.rich], [d["tokens"] for d in self.minimal]),
            "pools": self.pools,
            "length_bin_edges": self.edges,
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
    if not pools["rich"] or not pools["minimal"]:
        return selection
    lengths = sorted(d["tokens"] for d in pools["rich"])
    edges = sorted(
        {
            lengths[min(len(lengths) - 1, len(lengths) * k // config.length_bins)]
            for k in range(1, config.length_bins)
        }
    )
    selection.edges = edges

    def tie(row: Mapping[str, Any]) -> str:
        return hashlib.sha256(f"{config.seed}/{row['id']}".encode()).hexdigest()

    bins: dict[str, list[list[Mapping[str, Any]]]] = {
        arm: [[] for _ in range(len(edges) + 1)] for arm in pools
    }
    for arm, pool in pools.items():
        for row in pool:
            bins[arm][bisect.bisect_right(edges, row["tokens"])].append(row)
    for b in bins["rich"]:
        b.sort(key=lambda r: (-sum(r["label"]["counts"].values()), tie(r)))
    for b in bins["minimal"]:
        b.sort(key=lambda r: (sum(r["label"]["counts"].values()), tie(r)))
    pairs_per_bin = [
        list(zip(r, m, strict=False)) for r, m in zip(bins["rich"], bins["minimal"], strict=True)
    ]
    budget = config.token_budget
    totals = {"rich": 0, "minimal": 0}
    depth = 0
    while any(depth < len(pairs) for pairs in pairs_per_bin):
        for pairs in pairs_per_bin:
            if depth >= len(pairs):
                continue
            rich, minimal = pairs[depth]
            if budget is not None and (
                totals["rich"] + rich["tokens"] > budget or totals["minimal"] + minimal["tokens"] > budget
            ):
                return selection
            selection.rich.append(dict(rich))
            selection.minimal.append(dict(minimal))
            totals["rich"] += rich["tokens"]
            totals["minimal"] += minimal["tokens"]
        depth += 1
    return selection


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs (0: the
    same distribution of lengths; 1: disjoint)."""
    if not a or not b:
        return 1.0 if a or b else 0.0
    a, b = sorted(a), sorted(b)
    return max(abs(bisect.bisect_right(a, x) / len(a) - bisect.bisect_right(b, x) / len(b)) for x in {*a, *b})
