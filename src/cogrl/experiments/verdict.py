"""The verdict of a sweep: did priming with the behaviors let RL improve the model more than the controls?

The decision rule is fixed in the sweep recipe (`verdict`) before any run, as a pre-registration would fix
it: per condition, test accuracy at step 0 and at the end and the gain between them, as mean and standard
deviation over seeds; the effect counts as shown only if the treatment's mean gain exceeds the best
control's by `margin` AND by `sd_multiple` pooled standard deviations of the two gains. With one seed the
spread is unknown, so the effect cannot be shown (the numbers are still reported).

Gates come first, because a comparison between conditions none of which can start RL is no comparison: the
base model's accuracy on held-out arithmetic probes (when the sweep pretrains one), and every primed model's
pass@k at step 0 (a condition whose k samples never reach reward 1 gives GRPO no signal).

The sweep writes what `decide` returns into `summary.json` (SUMMARY) in its directory; `summary_lines` is
how the terminal and `cogrl report` say it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from cogrl.config import VerdictConfig
from cogrl.files import InputError, read_jsonl

SUMMARY = "summary.json"


def eval_ends(rl_dir: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The evaluation at step 0 and the last one of an RL run; None when it has not evaluated twice."""
    path = rl_dir / "eval.jsonl"
    if not path.is_file():
        return None
    records: dict[int, dict[str, Any]] = {}
    for line in read_jsonl(path):
        if line.error is not None:
            raise InputError(f"{path}:{line.number}: {line.error}")
        records[int(line.record["step"])] = line.record  # a resumed run's repeat of a step: the last wins
    if 0 not in records or len(records) < 2:
        return None
    for step, accuracy in response_accuracy(rl_dir).items():
        if step in records:
            records[step]["eval/accuracy"] = accuracy
    return records[0], records[max(records)]


def response_accuracy(rl_dir: Path) -> dict[int, float]:
    """Per evaluated step, the share of test problems whose first response is correct, counted from the
    logged responses (eval_rollouts.jsonl; empty without it). The protocol itself, so it holds for runs whose
    eval.jsonl mixed the pass@k problems' extra samples into `eval/accuracy` (cogrl before 2026-12-02)."""
    path = rl_dir / "eval_rollouts.jsonl"
    if not path.is_file():
        return {}
    first: dict[int, dict[str, bool]] = {}
    for line in read_jsonl(path):
        if line.error is not None:
            raise InputError(f"{path}:{line.number}: {line.error}")
        record = line.record
        if record.get("sample", 0) == 0:  # a resumed run's repeat of a step: the last wins
            first.setdefault(int(record["step"]), {})[str(record["task_id"])] = bool(record["correct"])
    return {step: sum(flags.values()) / len(flags) for step, flags in first.items()}


def run_result(condition: str, seed: int, rl_dir: Path, pass_key: str) -> dict[str, Any]:
    """One (condition, seed): accuracy and pass@k at step 0 and at the end, and the gain; nulls when the run
    did not finish its evaluations."""
    ends = eval_ends(rl_dir)
    result: dict[str, Any] = {"condition": condition, "seed": seed}
    if ends is None:
        return {**result, "start_accuracy": None, "end_accuracy": None, "gain": None, "end_step": None,
                "start_pass": None, "end_pass": None}  # fmt: skip
    start, end = ends
    return {
        **result,
        "end_step": end["step"],
        "start_accuracy": start["eval/accuracy"],
        "end_accuracy": end["eval/accuracy"],
        "gain": end["eval/accuracy"] - start["eval/accuracy"],
        "start_pass": start.get(pass_key),
        "end_pass": end.get(pass_key),
    }


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None when undefined: no values, or one for the deviation)."""
    if not values:
        return None, None
    return fmean(values), (stdev(values) if len(values) > 1 else None)


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float | None:
    """sqrt(((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2)); None with fewer than two of each."""
    if len(a) < 2 or len(b) < 2:
        return None
    s_a, s_b = stdev(a), stdev(b)
    return math.sqrt(((len(a) - 1) * s_a**2 + (len(b) - 1) * s_b**2) / (len(a) + len(b) - 2))


def by_condition(runs: Sequence[Mapping[str, Any]], conditions: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per condition: mean and sd over seeds of the start and end accuracy, the gain and the pass@k."""
    table = {}
    for condition in conditions:
        rows = [r for r in runs if r["condition"] == condition]
        summary: dict[str, Any] = {"seeds": len(rows), "finished": sum(r["gain"] is not None for r in rows)}
        for key in ("start_accuracy", "end_accuracy", "gain", "start_pass", "end_pass"):
            values = [r[key] for r in rows if r[key] is not None]
            summary[f"{key}_mean"], summary[f"{key}_sd"] = mean_sd(values)
        table[condition] = summary
    return table


def decide(
    config: VerdictConfig,
    runs: Sequence[Mapping[str, Any]],
    table: Mapping[str, Mapping[str, Any]],
    base_probe_accuracy: float | None,
) -> dict[str, Any]:
    """Apply the recipe's rule: gates first, then the gain comparison. Returns the gates, the numbers the
    rule used, `outcome` (`shown`, `not shown` or `inconclusive`) and the plain sentence."""
    gates = []
    if base_probe_accuracy is not None or config.min_base_probe_accuracy > 0:
        passed = base_probe_accuracy is not None and base_probe_accuracy >= config.min_base_probe_accuracy
        gates.append({"gate": f"base accuracy on the {config.gate_probe} probes", "value": base_probe_accuracy,
                      "threshold": config.min_base_probe_accuracy, "passed": passed})  # fmt: skip
    for condition in (config.treatment, *config.controls):
        value = table.get(condition, {}).get("start_pass_mean")
        gates.append({"gate": f"{condition}: pass@k at step 0 (RL can start)", "value": value,
                      "threshold": 0.0, "passed": value is not None and value > 0.0})  # fmt: skip

    gains = {c: [r["gain"] for r in runs if r["condition"] == c and r["gain"] is not None] for c in table}
    controls = [c for c in config.controls if gains.get(c)]
    verdict: dict[str, Any] = {"gates": gates, "treatment": config.treatment, "margin": config.margin,
                               "sd_multiple": config.sd_multiple}  # fmt: skip
    if not gains.get(config.treatment) or not controls:
        return {**verdict, "outcome": "inconclusive",
                "sentence": "Inconclusive: the treatment or every control has no finished run."}  # fmt: skip
    best = max(controls, key=lambda c: fmean(gains[c]))
    difference = fmean(gains[config.treatment]) - fmean(gains[best])
    spread = pooled_sd(gains[config.treatment], gains[best])
    verdict.update(best_control=best, difference=difference, pooled_sd=spread)
    numbers = (
        f"{config.treatment} gained {fmean(gains[config.treatment]):+.3f} accuracy under RL against "
        f"{fmean(gains[best]):+.3f} for the best control ({best}), a difference of {difference:+.3f}"
    )
    failed = [g["gate"] for g in gates if not g["passed"]]
    if failed:
        outcome, why = "inconclusive", f"gate(s) failed: {'; '.join(failed)}"
    elif spread is None:
        outcome, why = "not shown", "one seed per condition, so the spread over seeds is unknown"
    elif difference > config.margin and difference > config.sd_multiple * spread:
        outcome, why = (
            "shown",
            (
                f"above the margin {config.margin} and {config.sd_multiple} pooled SDs "
                f"({config.sd_multiple * spread:.3f})"
            ),
        )
    else:
        outcome, why = (
            "not shown",
            (
                f"the rule needs more than the margin {config.margin} and {config.sd_multiple} pooled SDs "
                f"({config.sd_multiple * spread:.3f})"
            ),
        )
    verdict["outcome"] = outcome
    verdict["sentence"] = f"Effect {outcome}: {numbers}; {why}."
    return verdict


def gate_lines(verdict: Mapping[str, Any]) -> list[str]:
    """The gates as printable lines, checked before the comparison is read."""
    lines = []
    for gate in verdict["gates"]:
        value = "n/a" if gate["value"] is None else f"{gate['value']:.3f}"
        status = "pass" if gate["passed"] else "FAIL"
        lines.append(f"gate {status}: {gate['gate']} = {value} (needs > {gate['threshold']:g})"
                     if gate["threshold"] == 0.0 else
                     f"gate {status}: {gate['gate']} = {value} (needs >= {gate['threshold']:g})")  # fmt: skip
    return lines


def table_lines(table: Mapping[str, Mapping[str, Any]], pass_key: str) -> list[str]:
    """Per condition: accuracy at step 0 and at the end and the gain (mean +- sd over seeds), and pass@k."""

    def cell(summary: Mapping[str, Any], key: str) -> str:
        mean, sd = summary[f"{key}_mean"], summary[f"{key}_sd"]
        if mean is None:
            return "n/a"
        return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")

    k = pass_key.removeprefix("eval/")
    lines = [f"{'condition':<28} {'seeds':>5}  {'acc step 0':<15} {'acc end':<15} {'gain':<15} "
             f"{k + ' step 0':<15} {k + ' end':<15}"]  # fmt: skip
    for condition, summary in table.items():
        lines.append(
            f"{condition:<28} {summary['finished']:>5}  {cell(summary, 'start_accuracy'):<15} "
            f"{cell(summary, 'end_accuracy'):<15} {cell(summary, 'gain'):<15} "
            f"{cell(summary, 'start_pass'):<15} {cell(summary, 'end_pass'):<15}"
        )
    return lines


def read_summary(sweep_dir: Path) -> dict[str, Any] | None:
    """A sweep directory's summary.json (None when it has none: a run directory, or a sweep still going)."""
    path = sweep_dir / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    missing = {"base", "verdict", "conditions", "pass_key"} - set(summary)
    if missing:
        raise InputError(f"{path}: no field(s) {', '.join(sorted(missing))}")
    return summary


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The base's figures, the gates, the table and the verdict sentence: what the terminal shows at the end
    of a sweep and what `cogrl report` puts first."""
    lines = [""]
    bases = (
        summary["base"]["arms"] if summary["base"] and "arms" in summary["base"] else {"": summary["base"]}
    )
    for arm, base in bases.items():
        if not base:
            continue
        probes = ", ".join(f"{name} {p['accuracy']:.3f} (n={p['n']})" for name, p in base["probes"].items()
                           if p["accuracy"] is not None)  # fmt: skip
        lines.append(
            f"base{f' {arm}' if arm else ''}: {base['tokens']:,} corpus tokens, final loss "
            f"{base['final_loss']:.3f}; probes: {probes or 'none'}"
        )
    if summary["verdict"]:
        lines += gate_lines(summary["verdict"])
    lines += ["", *table_lines(summary["conditions"], summary["pass_key"]), ""]
    if summary["verdict"]:
        lines.append(summary["verdict"]["sentence"])
    return lines
