"""Where the CPU miniature's time goes: a finished sweep directory, broken down by stage.

    .venv/bin/python bench/miniature.py runs/miniature

Reads what a sweep writes anyway (no re-run): the time-stamped progress lines of <out>/sweep.log for each
stage's wall time, the base's pretrain.json for pretraining tokens per second, and each RL run's
metrics.jsonl for the seconds of an RL step by phase (generate, update, sync). Baseline: the sweep's whole
wall time; every stage is printed as its share of it, so runs on machines of different speed (or load)
compare by ratio.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path
from statistics import fmean

import yaml

STAMP = re.compile(r"^\[(\d+):(\d\d)\] (.*)$")
INVOCATION = re.compile(r"^sweep \S+ -> ")
STAGE = re.compile(r"^(\S+) \(seed (\d+)\): (prime|sft|rl) \.\.\.$")


def stage_seconds(log: Path) -> tuple[dict[str, float], float]:
    """Wall seconds per stage kind (base, prime, sft, rl; summed over conditions) and the sweep's total (the
    sum over invocations when the sweep was stopped and resumed; the time between them is not counted)."""
    events: list[tuple[float, str]] = []
    offset = 0.0  # a resumed sweep appends to the log with its clock restarted: its stamps follow the last
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := STAMP.match(line):
            if INVOCATION.match(match[3]) and events:
                offset = events[-1][0]
            events.append((offset + int(match[1]) * 60 + int(match[2]), match[3]))
    starts = []
    for seconds, text in events:
        if text.startswith("base: pretraining"):
            starts.append((seconds, "base"))
        elif (match := STAGE.match(text)) or INVOCATION.match(text):
            if match is None:  # a resumed invocation: whatever ran before the stop ends here
                starts.append((seconds, "end"))
                continue
            starts.append((seconds, match[3]))
        elif text.startswith(("base: ", "gate ", "Effect ", "done: ")) and starts and starts[-1][1] != "end":
            starts.append((seconds, "end"))
    totals: dict[str, float] = defaultdict(float)
    for (start, kind), (stop, _) in zip(starts, starts[1:], strict=False):
        if kind != "end":
            totals[kind] += stop - start
    return dict(totals), float(events[-1][0] if events else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    args = parser.parse_args()
    out: Path = args.sweep
    stages, total = stage_seconds(out / "sweep.log")
    print(f"sweep {out}: {total / 60:.1f} min wall (baseline = 1.00)")
    for kind in ("base", "prime", "sft", "rl"):
        if kind in stages:
            print(f"  {kind:<6} {stages[kind]:7.0f} s  {stages[kind] / total:5.2f} of the sweep")
    summary = json.loads((out / "summary.json").read_text())
    if summary.get("base"):
        base = Path(summary["base"]["dir"])
        meta = json.loads((base / "pretrain.json").read_text())
        epochs = yaml.safe_load((base / "config.yaml").read_text())["pretrain"]["epochs"]
        trained = meta["tokens"] * epochs
        rates = [point["tokens_per_s"] for point in meta["curve"]]
        print(
            f"pretraining: {meta['tokens']:,} corpus tokens x {epochs:g} epochs in {meta['seconds']:.0f} s "
            f"({trained / meta['seconds']:,.0f} tokens/s overall, {fmean(rates):,.0f} in the loop)"
        )
    by_condition: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for metrics in sorted(out.rglob("rl/metrics.jsonl")):
        phases = by_condition[metrics.relative_to(out).parts[0]]
        for line in metrics.read_text().splitlines():
            record = json.loads(line)
            for key, value in record.items():
                if key.startswith("time/"):
                    phases[key.removeprefix("time/")].append(value)
            phases["step"].append(sum(v for k, v in record.items() if k.startswith("time/")))
            phases["response_tokens"].append(record["response_tokens_mean"])
    for condition, phases in by_condition.items():
        step = fmean(phases["step"])
        shares = ", ".join(f"{phase} {fmean(phases[phase]) / step:.2f}" for phase in
                           ("generate", "score", "tag", "update", "sync") if phases[phase])  # fmt: skip
        print(f"RL step, {condition}: {step:.2f} s mean over {len(phases['step'])} steps "
              f"({fmean(phases['response_tokens']):.0f} response tokens per sample); shares: {shares}")  # fmt: skip


if __name__ == "__main__":
    main()
