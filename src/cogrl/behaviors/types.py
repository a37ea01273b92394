"""The result of tagging one trajectory, shared by every tagger and every analysis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cogrl.behaviors.catalog import BEHAVIORS, behavior_name_set

__all__ = ["BEHAVIORS", "BehaviorTags", "Span"]

Span = tuple[int, int]


@dataclass(frozen=True)
class BehaviorTags:
    """Per-behavior instance counts and character spans for one response.

    ``counts[b]`` is ``None`` when the tagger could not tell (an LLM judge reply without a readable count):
    unknown is never silently 0. ``spans[b]`` lists ``(start, end)`` offsets into the tagged text; a judge
    gives counts without spans. ``source`` names the tagger (``"regex:v1"``, ``"llm:<model>"``, ``"hybrid"``).
    """

    counts: Mapping[str, int | None]
    spans: Mapping[str, Sequence[Span]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        names = (
            behavior_name_set()
        )  # the catalog's (`cogrl.behaviors.catalog`), current when the tags are made
        if self.counts.keys() == names:
            return
        missing = set(names) - set(self.counts)
        extra = set(self.counts) - set(names)
        if missing or extra:
            raise ValueError(
                f"behavior counts must name exactly {BEHAVIORS}; missing {missing}, extra {extra}"
            )

    def present(self, behavior: str) -> bool | None:
        count = self.counts[behavior]
        return None if count is None else count > 0

    def to_json(self) -> dict[str, Any]:
        """The two JSONL fields the CLI adds to every line: ``behaviors`` and ``behavior_spans``."""
        return {
            "behaviors": {b: self.counts.get(b) for b in BEHAVIORS},
            "behavior_spans": {b: [list(s) for s in self.spans.get(b, ())] for b in BEHAVIORS},
        }
