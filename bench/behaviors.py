"""Behavior-tagging benchmarks, each side by side with a named baseline in one process (timings here swing
up to 4x from minute to minute, so only ratios measured in the same run mean anything).

    python bench/behaviors.py regex [--trajectories 400 --rounds 5]

Regex tagger (pattern set v1) vs a keyword-count baseline in the style of keyword heuristics (`str.count`
of a few words per behavior, no arithmetic, no context), on 1-2 kB Countdown trajectories stitched from the
labelled evaluation set: throughput (tags per second, one core, one process) and quality (macro-F1 of
presence on tests/data/behavior_eval.jsonl).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cogrl.behaviors.types import BEHAVIORS, BehaviorTags

EVAL_SET = Path(__file__).parents[1] / "tests" / "data" / "behavior_eval.jsonl"

KEYWORDS: dict[str, tuple[str, ...]] = {
    "verification": ("verify", "check", "confirm", "correct"),
    "backtracking": ("backtrack", "try again", "another", "instead", "doesn't work", "wait"),
    "subgoal_setting": ("first", "step", "then", "goal"),
    "backward_chaining": ("backward", "work back", "reverse", "need to get"),
}
"""The baseline's vocabulary: the words a keyword heuristic for the paper's four behaviors would count."""


class KeywordBaseline:
    """Counts keyword occurrences per behavior (lower-cased `str.count`); the naive tagger to beat."""

    source = "keywords"

    def tag(self, text: str, numbers: Any = None, target: Any = None) -> BehaviorTags:
        lowered = text.lower()
        counts = {b: sum(lowered.count(word) for word in KEYWORDS[b]) for b in BEHAVIORS}
        return BehaviorTags(counts=counts, source=self.source)


# --------------------------------------------------------------------------------------------------------
# Shared inputs
# --------------------------------------------------------------------------------------------------------
def trajectories(n: int, seed: int = 0, min_chars: int = 1000, max_chars: int = 2000) -> list[dict[str, Any]]:
    """`n` trajectories of 1-2 kB, each stitched from random eval-set completions (keeping the first one's
    numbers and target), so the text has the phrasing and arithmetic density of real reasoning."""
    from cogrl.behaviors.analysis import load_eval_set

    rows = load_eval_set(EVAL_SET)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        first = rng.choice(rows)
        text = first["completion"]
        while len(text) < min_chars:
            text += "\n" + rng.choice(rows)["completion"]
        out.append({"completion": text[:max_chars], "numbers": first["numbers"], "target": first["target"]})
    return out


def tags_per_second(tagger: Any, items: Sequence[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for item in items:
        tagger.tag(item["completion"], numbers=item["numbers"], target=item["target"])
    return len(items) / (time.perf_counter() - start)


# --------------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------------
def regex_throughput(n: int, rounds: int) -> dict[str, Any]:
    """Tags per second of the regex tagger and the keyword baseline, interleaved round by round."""
    from cogrl.behaviors.regex_tagger import RegexTagger

    items = trajectories(n)
    taggers: dict[str, Any] = {"regex:v1": RegexTagger(), "keywords": KeywordBaseline()}
    tags_per_second(taggers["regex:v1"], items[:20])  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in taggers}
    for _ in range(rounds):
        for name, tagger in taggers.items():
            rates[name].append(tags_per_second(tagger, items))
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "trajectories": n,
        "mean_chars": statistics.mean(len(i["completion"]) for i in items),
        "rounds": rounds,
        "tags_per_s": median,
        "regex_over_keywords": median["regex:v1"] / median["keywords"],
    }


def regex_quality() -> dict[str, Any]:
    """Macro-F1 of presence on the labelled set: regex tagger vs keyword baseline, all rows and held-out."""
    from cogrl.behaviors.analysis import evaluate_tagger, load_eval_set
    from cogrl.behaviors.regex_tagger import RegexTagger

    rows = load_eval_set(EVAL_SET)
    heldout = [r for r in rows if r.get("split") == "heldout"]
    out = {}
    for name, tagger in {"regex:v1": RegexTagger(), "keywords": KeywordBaseline()}.items():
        out[name] = {
            "all": evaluate_tagger(tagger, rows)["macro_f1"],
            "heldout": evaluate_tagger(tagger, heldout)["macro_f1"],
        }
    return {"rows": len(rows), "heldout_rows": len(heldout), "macro_f1": out}


def format_regex(throughput: dict[str, Any], quality: dict[str, Any]) -> str:
    rates = throughput["tags_per_s"]
    f1 = quality["macro_f1"]
    return "\n".join(
        [
            f"regex tagger vs keyword baseline: {throughput['trajectories']} trajectories of "
            f"{throughput['mean_chars']:.0f} chars on average, median of {throughput['rounds']} rounds",
            f"  regex:v1   {rates['regex:v1']:>10,.0f} tags/s   macro-F1 {f1['regex:v1']['all']:.3f} "
            f"(held-out {f1['regex:v1']['heldout']:.3f})",
            f"  keywords   {rates['keywords']:>10,.0f} tags/s   macro-F1 {f1['keywords']['all']:.3f} "
            f"(held-out {f1['keywords']['heldout']:.3f})",
            f"  throughput ratio regex/keywords: {throughput['regex_over_keywords']:.3f} "
            f"(eval set: {quality['rows']} rows, {quality['heldout_rows']} held out)",
        ]
    )


def run_regex(args: argparse.Namespace) -> None:
    print(format_regex(regex_throughput(args.trajectories, args.rounds), regex_quality()))


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {"regex": run_regex}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    regex_parser = sub.add_parser("regex", help="regex tagger throughput and quality vs a keyword baseline")
    regex_parser.add_argument("--trajectories", type=int, default=400)
    regex_parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    COMMANDS[args.command](args)


if __name__ == "__main__":
    main()
