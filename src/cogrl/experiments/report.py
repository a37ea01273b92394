"""Reports over RL runs: the paper's curves (accuracy and the four behavior counts per step) for every run of a
sweep, next to the curves the paper's authors published for the same conditions.

    curves.csv      one row per (condition, evaluated step), in exactly the columns of the paper's results
                    files (`cogrl.behaviors.analysis.CURVE_COLUMNS`)
    accuracy.png    accuracy against the fraction of training, one line per condition, the paper's dashed
    behaviors.png   the four mean behavior counts per response, same axes
    summary.md      per condition: accuracy at the start and the end, the gain, the final behavior counts,
                    and the paper's figures for the same condition

Where the numbers come from. Accuracy is the paper's protocol: `eval/accuracy` of eval.jsonl (one sample per
test problem at the training temperature). Behavior counts and response length are computed (by
`behavior_curves`) from the test responses of that evaluation (eval_rollouts.jsonl, first sample per problem,
tagged in-line by the regex tagger); a run logged before eval rollouts were saved falls back to the training
rollouts of the same step (rollouts.jsonl), and a run without evaluations to training rollouts throughout.

Steps differ in scale (the paper trained 250 steps, a CPU run 20), so the plots put the fraction of training
(step / last step) on the x-axis; the top axis of each panel gives our steps, and the legend the paper's.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cogrl.behaviors.analysis import (
    CURVE_COLUMNS,
    PAPER_COLUMNS,
    behavior_curves,
    curves_csv,
    read_curves_csv,
)
from cogrl.behaviors.types import BEHAVIORS
from cogrl.config import NO_PRIMING
from cogrl.experiments import verdict
from cogrl.files import InputError, atomic_path, read_jsonl, write_atomic

# Our condition names -> the names in the paper's results files (None: the paper has no such condition).
PAPER_CONDITIONS: Mapping[str, str] = {
    NO_PRIMING: "base_ppo",
    "all_strategies": "all_strategies",
    "backtracking_only": "only_backtracking",
    "backtracking_verification": "backtracking_verification",
    "backtracking_subgoal": "backtracking_subgoal",
    "backtracking_backward": "backtracking_backward",
    "all_strategies+incorrect": "no_positive_all_strategies",
    "empty_cot": "empty_cot",
    "length_matched": "dots",
}
PAPER_MODELS = {"llama": "Llama-3.2-3B", "qwen": "Qwen-2.5-3B"}


def paper_csv_path(model: str) -> Path:
    """The packaged copy of the paper's results for `llama` or `qwen` (see reference/README.md)."""
    if model not in PAPER_MODELS:
        raise InputError(f"--paper: expected one of {sorted(PAPER_MODELS)}, got {model!r}")
    return Path(str(resources.files("cogrl.experiments") / "reference" / f"{model}_results.csv"))


# --------------------------------------------------------------------------------------------------------
# Finding runs
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRef:
    """An RL run directory and the condition (and seed) it belongs to."""

    condition: str
    path: Path
    seed: int | None = None


def find_runs(paths: Sequence[Path]) -> list[RunRef]:
    """RL runs named by sweep directories (their sweep.json) or given directly as run directories."""
    from cogrl.experiments.sweep import MANIFEST

    found: list[RunRef] = []
    for path in paths:
        manifest = path / MANIFEST
        if manifest.is_file():
            try:
                entries = json.loads(manifest.read_text(encoding="utf-8"))["runs"]
                refs = [RunRef(e["condition"], path / e["dir"] / "rl", int(e["seed"])) for e in entries]
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{manifest}: not a sweep manifest ({exc})") from None
            found += [ref for ref in refs if (ref.path / "config.yaml").is_file()]
        elif (path / "config.yaml").is_file():
            found.append(RunRef(_condition_of(path), path))
        else:
            raise InputError(
                f"{path}: neither a sweep directory (no {MANIFEST}) nor a run directory (no config.yaml)"
            )
    if not found:
        raise InputError(f"no RL runs found in {', '.join(map(str, paths))}")
    return found


def _condition_of(run_dir: Path) -> str:
    """A sweep's `<condition>[/seed-k]/rl` is named by its condition; any other run by its directory."""
    if run_dir.name != "rl":
        return run_dir.name
    parent = run_dir.resolve().parent
    return parent.parent.name if parent.name.startswith("seed-") else parent.name


def label(ref: RunRef, refs: Sequence[RunRef]) -> str:
    """The condition, plus the seed when a condition has several runs."""
    several = sum(r.condition == ref.condition for r in refs) > 1
    return f"{ref.condition} (seed {ref.seed})" if several and ref.seed is not None else ref.condition


# --------------------------------------------------------------------------------------------------------
# Curves of one run
# --------------------------------------------------------------------------------------------------------
def _records(path: Path) -> list[dict[str, Any]]:
    """A run log's records; a malformed line is an error naming it (logs are written atomically)."""
    if not path.exists():
        return []
    records = []
    for line in read_jsonl(path):
        if line.error:
            raise InputError(f"{path}:{line.number}: {line.error}")
        records.append(line.record)
    return records


def _last_per_key(records: Sequence[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """Keep the last record per key (a run resumed before its first checkpoint re-logs the step-0 eval)."""
    kept: dict[tuple, dict[str, Any]] = {}
    for record in records:
        kept[tuple(record.get(k) for k in keys)] = record
    return list(kept.values())


def run_curves(run_dir: Path, condition: str) -> tuple[list[dict[str, Any]], str]:
    """Rows in the paper's columns for one run, and where the behavior counts came from."""
    evals = _last_per_key(_records(run_dir / "eval.jsonl"), "step")
    train = _records(run_dir / "rollouts.jsonl")
    if not evals:
        return behavior_curves(train, condition), "training rollouts (no evaluations)"
    eval_records = [r for r in _records(run_dir / "eval_rollouts.jsonl") if r.get("sample", 0) == 0]
    eval_records = _last_per_key(eval_records, "step", "task_id")
    eval_rows = {row["step"]: row for row in behavior_curves(eval_records, condition)}
    by_scorer = scorer_accuracies(eval_records)
    claims = claim_rates(eval_records)
    from_responses = verdict.response_accuracy(run_dir)
    train_rows = {row["step"]: row for row in behavior_curves(train, condition)}
    rows, fallback = [], False
    for metrics in sorted(evals, key=lambda m: m["step"]):
        step = int(metrics["step"])
        row = eval_rows.get(step)
        if row is None:
            fallback = True
            row = train_rows.get(step) or {"condition": condition, "step": step}
        row = {
            **row,
            "accuracy": from_responses.get(step, metrics.get("eval/accuracy")),
            **by_scorer.get(step, {}),
            **claims.get(step, {}),
        }
        rows.append(row)
    source = "test responses of each evaluation" + (
        " (training rollouts where none were saved)" if fallback else ""
    )
    return rows, source


CLAIM_RATES = ("false_success_rate", "false_check_rate", "false_step_rate")


def claim_rates(records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, float]]:
    """Per step, from the records' ``claims`` (environments that check claims): the share of responses with
    a false success claim, and false checks over checks and false steps over steps, pooled (a rate with no
    checks or steps is left out, never 0). Records without ``claims`` give nothing."""
    by_step: dict[int, list[Mapping[str, int]]] = {}
    for record in records:
        if isinstance(record.get("claims"), Mapping):
            by_step.setdefault(int(record["step"]), []).append(record["claims"])
    rates: dict[int, dict[str, float]] = {}
    for step, claims in by_step.items():
        row = {"false_success_rate": sum(c["false_success_claims"] > 0 for c in claims) / len(claims)}
        for kind in ("check", "step"):
            false = sum(c[f"false_{kind}s"] for c in claims)
            if (total := false + sum(c[f"true_{kind}s"] for c in claims)) > 0:
                row[f"false_{kind}_rate"] = false / total
        rates[step] = row
    return rates


def scorer_accuracies(records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, float]]:
    """Per step, ``accuracy_<scorer>`` for each scorer whose verdict the records carry: an environment with two
    scorers (countdown: exact and the paper's) logs the reward's name in ``scorer`` with its verdict in
    ``correct``, and the other's in ``<other>_correct``. Records without ``scorer`` give nothing."""
    verdicts: dict[int, dict[str, list[bool]]] = {}
    for record in records:
        if "scorer" not in record:
            continue
        step = verdicts.setdefault(int(record["step"]), {})
        step.setdefault(record["scorer"], []).append(bool(record["correct"]))
        for key, value in record.items():
            name = key.removesuffix("_correct")
            if name != key and f"{name}_reason" in record and isinstance(value, bool):
                step.setdefault(name, []).append(value)
    return {
        step: {f"accuracy_{name}": sum(flags) / len(flags) for name, flags in sorted(scorers.items())}
        for step, scorers in verdicts.items()
    }


# --------------------------------------------------------------------------------------------------------
# Evaluations (`cogrl eval` directories)
# --------------------------------------------------------------------------------------------------------
# What must match for two pass@k curves to be compared: the same problems, sampled as often.
COMPARABLE = ("env", "split", "problems", "samples_per_problem")


@dataclass(frozen=True)
class Evaluation:
    """A `cogrl eval` output directory: its eval.json and its passk.csv rows."""

    label: str
    path: Path
    meta: Mapping[str, Any]
    rows: list[dict[str, Any]]


def read_evaluation(path: Path) -> Evaluation:
    """An evaluation directory (eval.json + passk.csv), labelled by its folder name."""
    from cogrl.rl.evaluation import PASSK_COLUMNS

    meta_path, csv_path = path / "eval.json", path / "passk.csv"
    if not meta_path.is_file() or not csv_path.is_file():
        raise InputError(f"{path}: not a cogrl eval directory (needs eval.json and passk.csv)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{meta_path}: not valid JSON ({exc})") from exc
    missing = [key for key in (*COMPARABLE, "model") if key not in meta]
    if missing:
        raise InputError(f"{meta_path}: no field(s) {', '.join(missing)}")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != PASSK_COLUMNS:
            raise InputError(f"{csv_path}: expected the columns {', '.join(PASSK_COLUMNS)}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            try:
                rows.append({key: (None if value == "" else float(value)) for key, value in raw.items()})
            except ValueError as exc:
                raise InputError(f"{csv_path}:{line}: {exc}") from None
    if not rows:
        raise InputError(f"{csv_path}: no rows")
    return Evaluation(path.name, path, meta, rows)


def check_comparable(evaluations: Sequence[Evaluation]) -> None:
    """Refuse to overlay curves measured on different problems or sample counts."""
    first = evaluations[0]
    for other in evaluations[1:]:
        for key in COMPARABLE:
            if other.meta[key] != first.meta[key]:
                raise InputError(
                    f"{other.path} and {first.path} differ in {key} ({other.meta[key]!r} vs "
                    f"{first.meta[key]!r}): their pass@k curves are not comparable"
                )


def passk_lines(evaluations: Sequence[Evaluation]) -> list[str]:
    """pass@k [interval] per evaluation and k, and maj@k where the environment votes."""
    ks = sorted({int(row["k"]) for e in evaluations for row in e.rows})
    lines = [
        "## pass@k per evaluation",
        "",
        f"Same problems for all: {evaluations[0].meta['problems']} from the {evaluations[0].meta['split']} "
        f"split, n = {evaluations[0].meta['samples_per_problem']} samples each; [bootstrap interval].",
        "",
        "| evaluation | model | metric | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|---|---|" + "---|" * len(ks),
    ]
    for e in evaluations:
        by_k = {int(row["k"]): row for row in e.rows}
        for name, low, high in (("pass@k", "ci_low", "ci_high"), ("maj@k", "maj_ci_low", "maj_ci_high")):
            if e.rows[0][name] is None:
                continue
            cells = [
                f"{by_k[k][name]:.3f} [{by_k[k][low]:.3f}, {by_k[k][high]:.3f}]" if k in by_k else "-"
                for k in ks
            ]
            lines.append(f"| {e.label} | {e.meta['model']} | {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


# --------------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------------
def write_sweep_report(
    paths: Sequence[Path],
    out: Path,
    paper: str = "llama",
    paper_csv: Path | None = None,
    evaluations: Sequence[Path] = (),
) -> list[Path]:
    """Write curves.csv, accuracy.png, behaviors.png and summary.md for the runs in `paths`, and passk.png
    (the curves overlaid) for the `cogrl eval` directories in `evaluations`; either may be empty."""
    if not paths and not evaluations:
        raise InputError("nothing to report: give sweep or run directories, or --eval directories")
    out.mkdir(parents=True, exist_ok=True)
    evals = [read_evaluation(path) for path in evaluations]
    written = []
    if evals:
        from cogrl.rl.evaluation import plot_passk

        check_comparable(evals)
        plot_passk({e.label: e.rows for e in evals}, out / "passk.png", title="pass@k per evaluation")
        written.append(out / "passk.png")
    if not paths:
        write_atomic(out / "summary.md", "\n".join(["# Evaluation report", "", *passk_lines(evals)]))
        return [*written, out / "summary.md"]
    refs = find_runs(paths)
    ours: dict[str, list[dict[str, Any]]] = {}
    sources: dict[str, str] = {}
    for ref in refs:
        name = label(ref, refs)
        ours[name], sources[name] = run_curves(ref.path, name)
    reference_path = paper_csv or paper_csv_path(paper)
    reference = _by_condition(read_curves_csv(reference_path))
    matched = {name: _paper_name(name) for name in ours}
    write_atomic(out / "curves.csv", curves_csv([row for rows in ours.values() for row in rows]))
    panels = [("accuracy", "accuracy (share of test problems solved)")]
    plot_panels(ours, reference, matched, panels, out / "accuracy.png", ncols=1, ylabel="accuracy")
    panels = [(f"avg_{PAPER_COLUMNS[b]}", b.replace("_", " ")) for b in BEHAVIORS]
    plot_panels(
        ours, reference, matched, panels, out / "behaviors.png", ncols=2, ylabel="mean count per response"
    )
    if any("false_success_rate" in p for points in ours.values() for p in points):
        panels = [(key, key.replace("_", " ")) for key in CLAIM_RATES]
        plot_panels(ours, {}, matched, panels, out / "claims.png", ncols=3, ylabel="share (false / all)")
        written.append(out / "claims.png")
    model = PAPER_MODELS.get(paper, "paper") if paper_csv is None else reference_path.name
    sweeps = {path: summary for path in paths if (summary := verdict.read_summary(path)) is not None}
    text = summary_markdown(ours, sources, reference, matched, model, sweeps)
    if evals:
        text += "\n" + "\n".join(passk_lines(evals))
    write_atomic(out / "summary.md", text)
    return [*written, *(out / name for name in ("curves.csv", "accuracy.png", "behaviors.png", "summary.md"))]


def _paper_name(label_text: str) -> str | None:
    return PAPER_CONDITIONS.get(label_text.split(" (seed ")[0])


def _by_condition(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row["condition"]), []).append(row)
    return {name: sorted(points, key=lambda r: r["step"]) for name, points in grouped.items()}


def _fraction(points: Sequence[Mapping[str, Any]], column: str) -> tuple[list[float], list[float]]:
    """(step / last step, value) for the points with a value."""
    last = max((p["step"] for p in points), default=0) or 1
    xy = [(p["step"] / last, p[column]) for p in points if p.get(column) is not None]
    return [x for x, _ in xy], [y for _, y in xy]


def plot_panels(
    ours: Mapping[str, Sequence[Mapping[str, Any]]],
    reference: Mapping[str, Sequence[Mapping[str, Any]]],
    matched: Mapping[str, str | None],
    panels: Sequence[tuple[str, str]],
    path: Path,
    ncols: int,
    ylabel: str,
) -> None:
    """One panel per column: our runs solid, the paper's same-named conditions dashed in the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nrows = -(-len(panels) // ncols)
    figure, axes = plt.subplots(
        nrows, ncols, figsize=(6.5 * ncols, 4.2 * nrows), squeeze=False, constrained_layout=True
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    last_step = max((p["step"] for points in ours.values() for p in points), default=0)
    for axis, (column, title) in zip(axes.flat, panels, strict=False):
        for i, (name, points) in enumerate(ours.items()):
            colour = colours[i % len(colours)]
            x, y = _fraction(points, column)
            axis.plot(x, y, "-o", color=colour, markersize=4, linewidth=2, label=f"{name} (ours)")
            paper_name = matched.get(name)
            if paper_name and paper_name in reference:
                x, y = _fraction(reference[paper_name], column)
                axis.plot(x, y, "--", color=colour, linewidth=1.3, alpha=0.8, label=f"{paper_name} (paper)")
        axis.set_title(title)
        axis.set_xlabel("fraction of RL training (paper: 250 steps)")
        axis.set_xlim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        if last_step:
            top = axis.secondary_xaxis("top", functions=(lambda f: f * last_step, lambda s: s / last_step))
            top.set_xlabel("our RL step")
    axes.flat[0].set_ylabel(ylabel)
    for axis in list(axes.flat)[len(panels) :]:
        axis.remove()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=2, fontsize="small", frameon=False)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ends(points: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    return points[0], points[-1]


def summary_markdown(
    ours: Mapping[str, Sequence[Mapping[str, Any]]],
    sources: Mapping[str, str],
    reference: Mapping[str, Sequence[Mapping[str, Any]]],
    matched: Mapping[str, str | None],
    model: str,
    sweeps: Mapping[Path, Mapping[str, Any]] | None = None,
) -> str:
    """The verdict of each sweep given (its summary.json, in the words the terminal used), then the
    per-condition table (ours next to the paper's) and where each number came from."""
    behavior_columns = [f"avg_{PAPER_COLUMNS[b]}" for b in BEHAVIORS]
    lines = ["# Sweep report", ""]
    for path, summary in (sweeps or {}).items():
        lines += [f"## Verdict of {path} (its summary.json)", ""]
        if summary["verdict"]:
            lines += [f"**{summary['verdict']['sentence']}**", ""]
        lines += ["```", *verdict.summary_lines(summary)]
        lines += ["```", "", "## Curves", ""]
    lines += [
        "Accuracy: the share of test problems whose one sample the run's scorer accepts (the paper's",
        "protocol; `env.options.scorer`, exact unless the recipe says paper). Behaviors: mean",
        "count per response at the last evaluation (ours: the run's counter, the regex tagger or the",
        "environment's exact parser; paper: LLM judge, so compare shapes).",
        f"Paper columns: the same condition in the published {model} results (start = step 0, end = step 250).",
        "",
        "| condition | steps | accuracy start | accuracy end | gain | "
        + " | ".join(b.replace("_", " ") for b in BEHAVIORS)
        + " | paper condition | paper start | paper end | paper gain |",
        "|---|---|---|---|---|" + "---|" * len(BEHAVIORS) + "---|---|---|---|",
    ]
    for name, points in ours.items():
        if not points:
            lines.append(f"| {name} | no evaluations yet |" + " |" * (8 + len(BEHAVIORS)))
            continue
        first, last = _ends(points)
        gain = (
            None
            if first["accuracy"] is None or last["accuracy"] is None
            else last["accuracy"] - first["accuracy"]
        )
        cells = [
            name,
            f"{first['step']}-{last['step']}",
            _fmt(first["accuracy"]),
            _fmt(last["accuracy"]),
            _signed(gain),
        ]
        cells += [_fmt(last.get(column), 2) for column in behavior_columns]
        paper_name = matched.get(name)
        if paper_name and paper_name in reference:
            p_first, p_last = _ends(reference[paper_name])
            cells += [
                paper_name,
                _fmt(p_first["accuracy"]),
                _fmt(p_last["accuracy"]),
                _signed(p_last["accuracy"] - p_first["accuracy"]),
            ]
        else:
            cells += ["(none in the paper)", "-", "-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _scorer_table(ours)
    lines += _claims_table(ours)
    lines += ["", "Behavior counts come from:"]
    lines += [f"- {name}: {source}" for name, source in sources.items()]
    lines += ["", f"Columns of curves.csv: {', '.join(CURVE_COLUMNS)}.", ""]
    return "\n".join(lines)


def _scorer_table(ours: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Accuracy at the last evaluation under each scorer the eval rollouts carry (none: no lines)."""
    names = sorted(
        {key for points in ours.values() for p in points for key in p if key.startswith("accuracy_")}
    )
    if not names:
        return []
    lines = [
        "",
        "Accuracy under each scorer at the last evaluation (first sample per test problem; `exact` is cogrl's",
        "scorer, `paper` the paper's reward function, reproduced; `env.options.scorer` chose the reward):",
        "",
        "| condition | step | " + " | ".join(n.removeprefix("accuracy_") for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for name, points in ours.items():
        if points:
            last = points[-1]
            lines.append(
                f"| {name} | {last['step']} | " + " | ".join(_fmt(last.get(n)) for n in names) + " |"
            )
    return lines


def _claims_table(ours: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """False verification at the first and the last evaluation (none logged: no lines)."""
    if not any("false_success_rate" in p for points in ours.values() for p in points):
        return []
    lines = [
        "",
        "False verification (environments that check claims; first sample per test problem): the share of",
        "responses claiming success falsely, false checks / checks, false arithmetic steps / steps; claims.png",
        "plots them over training:",
        "",
        "| condition | false success start | end | false checks start | end | false steps start | end |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, points in ours.items():
        if points:
            first, last = _ends(points)
            cells = [f"{_fmt(first.get(key))} | {_fmt(last.get(key))}" for key in CLAIM_RATES]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"
