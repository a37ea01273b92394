"""Priming benchmark: how fast synthetic priming sets are written, side by side with a named baseline.

    .venv/bin/python bench/priming.py [--n 1000] [--quick]
    .venv/bin/python bench/priming.py --agreement [--n 1000]   # the docs/priming.md check table

Goal: 1,000 priming examples in under 10 seconds. Measured per condition, in one process:

- writer: `CountdownEnv.write_trace` alone (search, phrasing, spans);
- rows: `build_synthetic` end to end (trace + RL-format completion + the scorer's verdict + the Dataset);
- baseline: reasoning-gym 0.1.25 generating the same number of Countdown items on the same ranges (question
  and one answer, no reasoning trace), the peer a researcher would otherwise start from.

Timings on this machine swing by up to 4x from minute to minute: read the ratios (best of 3 runs each).
"""

from __future__ import annotations

import argparse
import random
import time

from reasoning_gym.games.countdown import CountdownConfig, CountdownDataset

from cogrl.behaviors.types import BEHAVIORS
from cogrl.envs import make_env
from cogrl.priming.card import summarize
from cogrl.priming.conditions import CONDITIONS, get_condition
from cogrl.priming.dataset import build_synthetic

TIMED = ("all_strategies", "backtracking_only", "no_behavior", "all_strategies+incorrect")


def best_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def agreement(n: int) -> None:
    """Per written condition: scorer-correct share, and per behavior the share of traces the regex tagger
    finds it in (intended behaviors should be >= 95%, the others <= 5%)."""
    env = make_env("countdown", {"preset": "priming", "n_train": n, "n_test": 0})
    print(
        f"{n} synthetic traces per condition (seed 0), tagged with the regex tagger (given numbers and target)"
    )
    print("| condition | correct | " + " | ".join(BEHAVIORS) + " |")
    print("|---|---:|" + "---:|" * len(BEHAVIORS))
    for name in [c for c, condition in CONDITIONS.items() if not condition.transform]:
        for variant in (name, f"{name}+incorrect"):
            condition = get_condition(variant)
            stats = summarize(build_synthetic(env, condition, n, 0, seed=0)["train"], env)
            cells = [
                f"**{stats['regex_tagged_rate'][b]:.1%}**"
                if b in condition.behaviors
                else f"{stats['regex_tagged_rate'][b]:.1%}"
                for b in BEHAVIORS
            ]
            print(f"| {variant} | {stats['correct_rate']:.0%} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="examples per measurement (paper: 1,000 train)")
    parser.add_argument("--quick", action="store_true", help="200 examples, one repeat")
    parser.add_argument("--agreement", action="store_true", help="print the writer/tagger agreement table")
    args = parser.parse_args()
    if args.agreement:
        agreement(args.n)
        return
    n, repeats = (200, 1) if args.quick else (args.n, 3)

    env = make_env("countdown", {"preset": "priming", "n_train": n, "n_test": 0})
    tasks = list(env.tasks("train"))
    rg_config = CountdownConfig(
        min_numbers=3, max_numbers=4, min_value=1, max_value=24, min_target=10, max_target=25, size=n, seed=0
    )
    build_synthetic(env, get_condition("all_strategies"), 20, 0)  # warm-up: imports, first-call caches
    baseline = n / best_seconds(lambda: [item for item in CountdownDataset(rg_config)], repeats)

    print(f"{n} examples per measurement, best of {repeats}; baseline reasoning-gym items/s: {baseline:,.0f}")
    print(
        "| condition | writer traces/s | rows/s (build_synthetic) | s per 1,000 rows | rows / reasoning-gym |"
    )
    print("|---|---:|---:|---:|---:|")
    for name in TIMED:
        condition = get_condition(name)

        def write(condition=condition):
            for i, task in enumerate(tasks):
                env.write_trace(task, condition.behaviors, condition.correct, random.Random(i))

        writer = n / best_seconds(write, repeats)
        rows = n / best_seconds(
            lambda condition=condition: build_synthetic(env, condition, n, 0, seed=0), repeats
        )
        print(f"| {name} | {writer:,.0f} | {rows:,.0f} | {1000 / rows:.2f} | {rows / baseline:.1f}x |")


if __name__ == "__main__":
    main()
