"""The output: one Hugging Face dataset per arm, each with a README.md dataset card.

The card states what a researcher checks before pretraining on a corpus: how many documents and tokens it
holds (and how those compare with the other arm's), how often each behavior occurs in it (judge labels),
what every stage rejected on the way (prefilter drops, unreadable judge replies, failed requests, rewrites
that failed the content check) and which labels it was selected on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cogrl.behaviors.types import BEHAVIORS
from cogrl.files import atomic_path

CORPUS_FILE = "corpus.json"
"""The card's figures as JSON, beside the dataset (`cogrl pretrain` and the sweep read nothing else)."""


def arm_stats(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Documents, tokens, and per behavior the share of documents showing it and the mean count."""
    n = len(rows)
    stats: dict[str, Any] = {"documents": n, "tokens": sum(r["tokens"] for r in rows), "behaviors": {}}
    for b in BEHAVIORS:
        counts = [r["label"]["counts"].get(b, 0) for r in rows]
        stats["behaviors"][b] = {
            "rate": sum(1 for c in counts if c) / n if n else 0.0,
            "mean_count": sum(counts) / n if n else 0.0,
        }
    return stats


def card_text(name: str, arm: str, stats: Mapping[str, Any], pipeline: Mapping[str, Any]) -> str:
    """The README.md of one arm: a YAML header for the hub, then the figures."""
    lines = [
        "---",
        "task_categories: [text-generation]",
        f"pretty_name: {name} ({arm})",
        "---",
        f"# {name}: behavior-{arm} continued-pretraining corpus",
        "",
        "Curated by `cogrl corpus build` (docs/corpus.md) for the continued-pretraining arm of Gandhi et al. "
        "(2025), *Cognitive Behaviors that Enable Self-Improving Reasoners*: a behavior-rich and a "
        "behavior-minimal corpus matched in token budget and document length.",
        "",
        f"- documents: {stats['documents']:,}",
        f"- tokens: {stats['tokens']:,} (tokenizer `{pipeline['tokenizer']}`)",
        f"- labels from: {pipeline['labels_from']}",
        f"- rewritten: {pipeline['rewritten']}",
        "",
        "## Behaviors (share of documents showing each, mean instances per document)",
        "",
        "| behavior | rate | mean count |",
        "|---|---:|---:|",
        *(f"| {b} | {s['rate']:.3f} | {s['mean_count']:.2f} |" for b, s in stats["behaviors"].items()),
        "",
        "## Matching (both arms)",
        "",
        "```json",
        json.dumps(pipeline["selection"], indent=1),
        "```",
        "",
        "## Rejections along the pipeline",
        "",
        "| stage | what | documents | rate |",
        "|---|---|---:|---:|",
        *(
            f"| {r['stage']} | {r['what']} | {r['documents']:,} | {r['rate']:.3f} |"
            for r in pipeline["rejections"]
        ),
        "",
    ]
    return "\n".join(lines)


def write_arm(path: Path, rows: Sequence[Mapping[str, Any]], card: str, stats: Mapping[str, Any]) -> None:
    """The arm's dataset (`save_to_disk`, columns id, text, tokens, labels), its card and its figures,
    written atomically as one directory."""
    import datasets

    columns = {
        "id": [r["id"] for r in rows],
        "text": [r["text"] for r in rows],
        "tokens": [r["tokens"] for r in rows],
        **{b: [r["label"]["counts"].get(b, 0) for r in rows] for b in BEHAVIORS},
    }
    with atomic_path(path) as tmp:
        datasets.Dataset.from_dict(columns).save_to_disk(str(tmp))
        (tmp / "README.md").write_text(card, encoding="utf-8")
        (tmp / CORPUS_FILE).write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
