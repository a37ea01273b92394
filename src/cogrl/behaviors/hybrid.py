"""Hybrid tagging: the regex tagger on everything, the LLM judge where it is worth paying for.

The judge sees (1) a seeded random sample, so regex/judge agreement is measured on an unbiased subset, and
(2) every response whose regex result is *uncertain*. The regex tagger exposes no confidence, so
"uncertain" is a fixed rule on what it does expose (reasons recorded per response):

* ``regex_unknown``: a regex count is unknown (a pattern scan timed out);
* ``truncated``: the response is longer than the regex tagger scans (``RegexTagger.max_chars``);
* ``no_target``: the target was neither given nor inferable from the text, so target-dependent patterns
  (e.g. "... = 32, which is the target") could not fire;
* ``single_match``: some behavior was found exactly once: presence, the unit of every analysis, hangs on a
  single regex hit (the decision boundary between absent and present).

Final tags prefer the judge per behavior wherever it gave a count; regex spans are kept for a behavior only
when the final presence agrees with the regex (a judge gives no spans).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cogrl.behaviors.judge import LLMJudge, Trajectory
from cogrl.behaviors.regex_tagger import RegexTagger, infer_target
from cogrl.behaviors.types import BEHAVIORS, BehaviorTags


@dataclass(frozen=True)
class HybridTags:
    """The final tags of one response, with the regex and judge tags they were built from."""

    final: BehaviorTags
    regex: BehaviorTags
    judge: BehaviorTags | None
    """None when the response was not sent to the judge."""
    reasons: tuple[str, ...]
    """Why it was judged: ``sample`` and/or the uncertainty reasons above; empty when not judged."""


def uncertainty_reasons(item: Trajectory, tags: BehaviorTags, tagger: RegexTagger) -> list[str]:
    """The rule in the module docstring: why a regex result should be checked by the judge."""
    reasons = []
    if any(tags.counts[b] is None for b in BEHAVIORS):
        reasons.append("regex_unknown")
    if len(item.text) > tagger.max_chars:
        reasons.append("truncated")
    if item.hints.get("target") is None and infer_target(item.text, item.hints.get("numbers")) is None:
        reasons.append("no_target")
    if any(tags.counts[b] == 1 for b in BEHAVIORS):
        reasons.append("single_match")
    return reasons


def in_sample(text: str, fraction: float, seed: int) -> bool:
    """A seeded coin per response text, so a file's sample stays the same when lines are added or reordered."""
    digest = hashlib.sha256(f"{seed}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def merge(regex_tags: BehaviorTags, judge_tags: BehaviorTags | None) -> BehaviorTags:
    """Per behavior, the judge's count where it answered, else the regex count."""
    if judge_tags is None:
        return BehaviorTags(counts=regex_tags.counts, spans=regex_tags.spans, source="hybrid")
    counts: dict[str, int | None] = {}
    spans = {}
    for b in BEHAVIORS:
        regex_count, judged = regex_tags.counts[b], judge_tags.counts[b]
        counts[b] = final = regex_count if judged is None else judged
        keep_spans = regex_count is not None and final is not None and (final > 0) == (regex_count > 0)
        spans[b] = list(regex_tags.spans.get(b, ())) if keep_spans else []
    return BehaviorTags(counts=counts, spans=spans, source="hybrid")


class HybridTagger:
    """Regex on every response; the judge on a seeded sample and on uncertain regex results."""

    def __init__(
        self,
        regex_tagger: RegexTagger,
        judge: LLMJudge,
        sample_fraction: float = 0.1,
        seed: int = 0,
        judge_uncertain: bool = True,
    ) -> None:
        if not 0.0 <= sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction must be in [0, 1], got {sample_fraction}")
        self.regex_tagger = regex_tagger
        self.judge = judge
        self.sample_fraction = sample_fraction
        self.seed = seed
        self.judge_uncertain = judge_uncertain

    def plan(self, items: Sequence[Trajectory]) -> list[tuple[BehaviorTags, tuple[str, ...]]]:
        """Regex-tag every response and say why each goes to the judge (empty reasons: it does not)."""
        planned = []
        for item in items:
            tags = self.regex_tagger.tag(item.text, **item.hints)
            reasons = ["sample"] if in_sample(item.text, self.sample_fraction, self.seed) else []
            if self.judge_uncertain:
                reasons += uncertainty_reasons(item, tags, self.regex_tagger)
            planned.append((tags, tuple(reasons)))
        return planned

    def tag_many(
        self,
        items: Sequence[Trajectory],
        on_progress: Callable[[int], None] | None = None,
        planned: Sequence[tuple[BehaviorTags, tuple[str, ...]]] | None = None,
    ) -> list[HybridTags]:
        """Tag everything with regex and judge the selected responses; ``on_progress`` counts judgments.

        Pass ``planned`` (from ``plan``) to reuse regex tags already computed, e.g. to size a progress bar."""
        if planned is None:
            planned = self.plan(items)
        chosen = [i for i, (_, reasons) in enumerate(planned) if reasons]
        judged = dict(zip(chosen, self.judge.tag_many([items[i] for i in chosen], on_progress), strict=True))
        return [
            HybridTags(merge(tags, judged.get(i)), tags, judged.get(i), reasons)
            for i, (tags, reasons) in enumerate(planned)
        ]
