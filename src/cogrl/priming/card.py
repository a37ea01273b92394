"""Statistics and the README.md dataset card of a priming set.

The card states what a researcher checks before priming on a set: how many rows, how many answers the
scorer accepts, how long the completions are, and how often each behavior occurs, both as recorded (ground
truth for synthetic traces) and as the regex tagger sees it (the same tagger RL rollouts are tagged with).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.behaviors.types import BEHAVIORS
from cogrl.envs import Environment, Task, tagger_hints


def row_task(env: Environment, row: Mapping[str, Any]) -> Task:
    """The task of a priming-set row, rebuilt by ``env`` from the row's ``task`` JSON and ``id``."""
    return env.task_from_record({**json.loads(row["task"]), "id": row["id"]})


def summarize(
    rows: Iterable[Mapping[str, Any]], env: Environment, tagger: RegexTagger | None = None
) -> dict[str, Any]:
    """Counts, correctness, mean length, and per-behavior rates (recorded and regex-tagged, with the
    environment's tagger hints) of some rows."""
    tagger = tagger or RegexTagger()
    n = 0
    correct = 0
    chars = 0
    recorded = {b: 0 for b in BEHAVIORS}
    recorded_instances = {b: 0 for b in BEHAVIORS}
    tagged = {b: 0 for b in BEHAVIORS}
    for row in rows:
        n += 1
        correct += bool(row["correct"])
        chars += len(row["completion"])
        for b in BEHAVIORS:
            count = row["behaviors"][b] or 0
            recorded[b] += count > 0
            recorded_instances[b] += count
        tags = tagger.tag(row["completion"], **tagger_hints(env, row_task(env, row)))
        for b in BEHAVIORS:
            tagged[b] += bool(tags.counts[b])
    share = (lambda k: k / n) if n else (lambda k: 0.0)
    return {
        "rows": n,
        "correct_rate": share(correct),
        "mean_completion_chars": share(chars),
        "behavior_rate": {b: share(recorded[b]) for b in BEHAVIORS},
        "mean_instances": {b: share(recorded_instances[b]) for b in BEHAVIORS},
        "regex_tagged_rate": {b: share(tagged[b]) for b in BEHAVIORS},
        "tagger": tagger.source,
    }


def dataset_card(meta: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]]) -> str:
    """A markdown card: how the set was built and one table of statistics per split."""
    lines = [
        f"# Priming set: {meta.get('condition', '?')}",
        "",
        f"Built by `cogrl prime build` for the cogrl reproduction of Gandhi et al. (2025), "
        f'"Cognitive Behaviors that Enable Self-Improving Reasoners". {meta.get("description", "")}'.rstrip(),
        "",
        "| field | value |",
        "|---|---|",
    ]
    for key in (
        "condition",
        "source",
        "behaviors",
        "correct",
        "transform",
        "filter",
        "samples",
        "env",
        "env_options",
        "seed",
        "model",
    ):
        if key in meta and meta[key] not in (None, "", [], {}):
            lines.append(f"| {key} | `{meta[key]}` |")
    lines += [
        "",
        "Columns: `prompt` (the environment's RL prompt), `completion` (thought and answer in the RL response "
        "format), `condition`, `source`, `task` (the task as JSON, as the environment records it), `correct` "
        "and `reward` (from the environment's "
        "scorer), `behaviors` (instances per behavior: ground truth for synthetic traces, tagged counts for "
        "LLM-written ones) and `behavior_spans` (character offsets into `completion`).",
        "",
        "| split | rows | correct | mean chars | " + " | ".join(BEHAVIORS) + " |",
        "|---|---|---|---|" + "---|" * len(BEHAVIORS),
    ]
    for split, s in stats.items():
        rates = " | ".join(
            f"{s['behavior_rate'][b]:.0%} ({s['regex_tagged_rate'][b]:.0%})" for b in BEHAVIORS
        )
        lines.append(
            f"| {split} | {s['rows']} | {s['correct_rate']:.1%} | {s['mean_completion_chars']:.0f} | {rates} |"
        )
    lines += [
        "",
        "Behavior cells: share of rows with at least one recorded instance (share the regex tagger "
        f"`{next(iter(stats.values()), {}).get('tagger', '')}` finds it in).",
    ]
    if "rejections" in meta:
        lines += ["", "Candidate rows rejected (LLM replies or samples), by reason:", ""]
        lines += [f"- {reason}: {count}" for reason, count in sorted(meta["rejections"].items())] or [
            "- none"
        ]
    return "\n".join(lines) + "\n"
