"""A tagger of one's own, outside src/cogrl: lines that start with "Check" count as verifications, and every
line as a subgoal (a signature no regex tagging gives, so a test can tell who tagged). It proves the tagger
contract (`cogrl.behaviors.taggers.Tagger`): a recipe names it as behaviors.method."""

from __future__ import annotations

from typing import Any

from cogrl.behaviors.types import BehaviorTags


class LineTagger:
    def tag(self, text: str, **hints: Any) -> BehaviorTags:
        checks = sum(line.lstrip().startswith("Check") for line in text.splitlines())
        lines = text.count("\n") + 1
        counts = {"verification": checks, "backtracking": 0, "subgoal_setting": lines, "backward_chaining": 0}
        return BehaviorTags(counts, source="line")


class NotATagger:
    def label(self, text: str) -> str:
        return text
