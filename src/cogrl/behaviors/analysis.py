"""Analyses of behavior tags: agreement with labels, and what the behaviors look like over a run.

Two kinds of input. Label metrics compare predicted presence with hand labels (precision, recall, F1 per
behavior, macro-F1). Run analyses take *tagged records*: dicts with ``behaviors`` {behavior: count or None}
and optionally ``reward``, ``correct``, ``step`` and the response text (``completion``/``response``/``text``).
Unknown counts (``None``) are excluded from every rate and counted separately, never read as 0 (the paper's
judge silently turned unparsable replies into 0). A record is correct when its ``correct`` field is true, or,
without one, when ``reward >= 1.0`` (the Countdown reward gives 1.0 only for an exact answer).

``write_report`` writes summary.json, curves.csv (the columns of the paper's published results, so the two can
be overlaid) and curves.png.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cogrl.behaviors.catalog import PAPER_BEHAVIORS, PAPER_COLUMNS, LiveNames, get_behavior
from cogrl.behaviors.types import BEHAVIORS
from cogrl.envs import Environment, record_hints
from cogrl.files import InputError, atomic_path, read_jsonl, write_atomic


def _curve_columns(behaviors: Sequence[str]) -> tuple[str, ...]:
    return (
        "condition",
        "step",
        *(f"avg_{PAPER_COLUMNS[b]}" for b in behaviors),
        *(f"total_{PAPER_COLUMNS[b]}" for b in behaviors),
        "accuracy",
        "response_length",
    )


CURVE_COLUMNS: Sequence[str] = LiveNames(_curve_columns)
"""The columns of the paper's results CSVs, plus an ``avg_``/``total_`` pair per registered behavior."""
TEXT_FIELDS = ("completion", "response", "text")


# --------------------------------------------------------------------------------------------------------
# Metrics against labels
# --------------------------------------------------------------------------------------------------------
def label_metrics(
    predicted: Sequence[Mapping[str, bool | None]], gold: Sequence[Mapping[str, bool]]
) -> dict[str, Any]:
    """Precision, recall and F1 of presence per behavior, and their macro-F1, over the catalog behaviors that
    every label names (all of them, for labels of every behavior).

    A prediction of ``None`` (unknown) is left out of that behavior's confusion counts and reported as
    ``unknown``. A ratio with a zero denominator is 0.0 (scikit-learn's ``zero_division=0``).
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} labels")
    per_behavior = {}
    for behavior in [b for b in BEHAVIORS if all(b in label for label in gold)]:
        tp = fp = fn = tn = unknown = 0
        for pred, label in zip(predicted, gold, strict=True):
            guess = pred.get(behavior)
            if guess is None:
                unknown += 1
            elif guess and label[behavior]:
                tp += 1
            elif guess:
                fp += 1
            elif label[behavior]:
                fn += 1
            else:
                tn += 1
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, tp + fn)
        per_behavior[behavior] = {
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "unknown": unknown,
            "support": tp + fn,
        }
    macro_f1 = sum(m["f1"] for m in per_behavior.values()) / max(1, len(per_behavior))
    return {"per_behavior": per_behavior, "macro_f1": macro_f1, "n": len(gold)}


def load_eval_set(path: str | Path) -> list[dict[str, Any]]:
    """Read a labelled set (fields id, completion, labels, and the task's fields: the lab's set is Countdown's,
    with numbers and target); faults name the line.

    ``labels`` maps catalog behaviors to true/false; every row labels the same behaviors (the paper's four in
    the lab's set; a set for a registered behavior may label it alone)."""
    rows = []
    labelled: set[str] | None = None
    for line in read_jsonl(path):
        if line.error:
            raise InputError(f"{path}:{line.number}: {line.error}")
        row = line.record
        assert row is not None
        for key in ("id", "completion", "labels"):
            if key not in row:
                raise InputError(f"{path}:{line.number}: missing field {key!r}")
        labels = row["labels"]
        if not isinstance(labels, dict) or not labels or not set(labels) <= set(BEHAVIORS):
            raise InputError(
                f"{path}:{line.number}: 'labels' must map behaviors of {BEHAVIORS} to true/false"
            )
        if labelled is not None and set(labels) != labelled:
            raise InputError(f"{path}:{line.number}: 'labels' must name the same behaviors as the first row")
        labelled = set(labels)
        if not all(isinstance(v, bool) for v in labels.values()):
            raise InputError(f"{path}:{line.number}: 'labels' values must be true or false")
        rows.append(row)
    return rows


def evaluate_tagger(tagger: Any, rows: Iterable[Mapping[str, Any]], env: Environment) -> dict[str, Any]:
    """Tag every labelled row with ``tagger.tag(text, **hints)``, the hints its task fields give ``env``
    (`cogrl.envs.record_hints`; the lab's set: Countdown's numbers and target), and score presence."""
    rows = list(rows)
    predicted = []
    for row in rows:
        tags = tagger.tag(row["completion"], **record_hints(env, row))
        predicted.append({b: tags.present(b) for b in BEHAVIORS})
    return label_metrics(predicted, [r["labels"] for r in rows])


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """A Markdown table of label metrics (docs/behaviors.md)."""
    lines = ["| behavior | precision | recall | F1 | positives |", "|---|---|---|---|---|"]
    for behavior in [b for b in BEHAVIORS if b in metrics["per_behavior"]]:
        m = metrics["per_behavior"][behavior]
        lines.append(
            f"| {behavior} | {m['precision']:.2f} | {m['recall']:.2f} | {m['f1']:.2f} | {m['support']} |"
        )
    lines.append(f"| **macro-F1** | | | **{metrics['macro_f1']:.2f}** | n = {metrics['n']} |")
    return "\n".join(lines)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


# --------------------------------------------------------------------------------------------------------
# Analyses of tagged records
# --------------------------------------------------------------------------------------------------------
def _counts(record: Mapping[str, Any], index: int) -> Mapping[str, int | None]:
    counts = record.get("behaviors")
    if not isinstance(counts, Mapping):
        raise InputError(f"record {index}: 'behaviors' must be a mapping behavior -> count or null")
    for behavior in BEHAVIORS:
        if behavior not in counts:
            raise InputError(f"record {index}: behaviors.{behavior} is missing (use null for unknown)")
        value = counts[behavior]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InputError(
                f"record {index}: behaviors.{behavior} must be a count >= 0 or null, got {value!r}"
            )
    return counts


def is_correct(record: Mapping[str, Any]) -> bool | None:
    """``correct`` if the record has it, else ``reward >= 1.0``, else None (unknown)."""
    if record.get("correct") is not None:
        return bool(record["correct"])
    if record.get("reward") is not None:
        return float(record["reward"]) >= 1.0
    return None


def behavior_rates(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per behavior: presence rate and mean count over records with a known count, and how many were unknown."""
    out = {}
    for behavior in BEHAVIORS:
        known = [c for i, r in enumerate(records) if (c := _counts(r, i)[behavior]) is not None]
        out[behavior] = {
            "n": len(known),
            "unknown": len(records) - len(known),
            "rate": _mean([c > 0 for c in known]),
            "mean_count": _mean(known),
            "total": sum(known),
        }
    return out


def accuracy_by_behavior(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per behavior: P(correct | present) and P(correct | absent), over records where both are known."""
    out = {}
    for behavior in BEHAVIORS:
        present: list[bool] = []
        absent: list[bool] = []
        for i, record in enumerate(records):
            count, correct = _counts(record, i)[behavior], is_correct(record)
            if count is None or correct is None:
                continue
            (present if count > 0 else absent).append(correct)
        out[behavior] = {
            "p_correct_present": _mean(present),
            "p_correct_absent": _mean(absent),
            "n_present": len(present),
            "n_absent": len(absent),
        }
    return out


def cooccurrence(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """How often two behaviors appear in the same response.

    ``counts[a][b]``: records where both are present; ``rates[a][b]``: that over the records where both
    counts are known (the diagonal is each behavior's presence rate); ``n[a][b]``: that denominator.
    """
    counts = {a: dict.fromkeys(BEHAVIORS, 0) for a in BEHAVIORS}
    known = {a: dict.fromkeys(BEHAVIORS, 0) for a in BEHAVIORS}
    for i, record in enumerate(records):
        tags = _counts(record, i)
        for a in BEHAVIORS:
            for b in BEHAVIORS:
                if tags[a] is None or tags[b] is None:
                    continue
                known[a][b] += 1
                counts[a][b] += int(tags[a] > 0 and tags[b] > 0)
    rates = {a: {b: _mean_of(counts[a][b], known[a][b]) for b in BEHAVIORS} for a in BEHAVIORS}
    return {"counts": counts, "rates": rates, "n": known}


def behavior_curves(records: Sequence[Mapping[str, Any]], condition: str = "cogrl") -> list[dict[str, Any]]:
    """One row per training step, with the columns of the paper's results CSV (``CURVE_COLUMNS``).

    ``avg_*`` is the mean count over records with a known count, ``total_*`` their sum; ``accuracy`` the
    correct rate and ``response_length`` the mean response length in characters (empty when unknown).
    """
    by_step: dict[int, list[Mapping[str, Any]]] = {}
    for i, record in enumerate(records):
        if record.get("step") is None:
            raise InputError(f"record {i}: 'step' is required for behavior curves")
        by_step.setdefault(int(record["step"]), []).append(record)
    rows = []
    for step in sorted(by_step):
        group = by_step[step]
        rates = behavior_rates(group)
        correct = [c for r in group if (c := is_correct(r)) is not None]
        lengths = [len(text) for r in group if (text := _text(r)) is not None]
        row: dict[str, Any] = {"condition": condition, "step": step}
        for behavior in BEHAVIORS:
            row[f"avg_{PAPER_COLUMNS[behavior]}"] = rates[behavior]["mean_count"]
        for behavior in BEHAVIORS:
            row[f"total_{PAPER_COLUMNS[behavior]}"] = rates[behavior]["total"]
        row["accuracy"] = _mean(correct)
        row["response_length"] = _mean(lengths)
        rows.append(row)
    return rows


def curves_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The curve rows as CSV text, formatted like the paper's files (empty cell = unknown)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in CURVE_COLUMNS})
    return buffer.getvalue()


def read_curves_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read curves in the paper's CSV format (ours or theirs) back into rows with numbers."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        # The paper's four are required (its files have nothing else); another behavior's columns are read
        # when present and are unknown otherwise (a file written before the behavior was registered).
        missing = set(_curve_columns(PAPER_BEHAVIORS)) - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}: missing column(s) {sorted(missing)}")
        rows = []
        for number, raw in enumerate(reader, start=2):
            try:
                row: dict[str, Any] = {"condition": raw["condition"], "step": int(raw["step"])}
                for key in CURVE_COLUMNS[2:]:
                    value = raw.get(key)
                    row[key] = float(value) if value not in ("", None) else None
            except ValueError as exc:
                raise InputError(f"{path}:{number}: {exc}") from None
            rows.append(row)
    return rows


def plot_curves(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    reference_rows: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Mean count of each behavior, accuracy and response length against step (one panel each), with
    optional reference rows (e.g. the paper's, one dashed line per condition), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(f"avg_{PAPER_COLUMNS[b]}", get_behavior(b).label) for b in BEHAVIORS]
    panels += [("accuracy", "accuracy"), ("response_length", "response length (chars)")]
    n_rows = -(-len(panels) // 3)  # 2 x 3 for the paper's four behaviors; a row more per three more
    figure, axes = plt.subplots(n_rows, 3, figsize=(13, 3.5 * n_rows), constrained_layout=True)
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    series = _by_condition(rows)
    reference = _by_condition(reference_rows)
    for axis, (column, title) in zip(axes.flat, panels, strict=False):
        for condition, points in series.items():
            _plot_series(axis, points, column, condition, linestyle="-")
        for condition, points in reference.items():
            _plot_series(axis, points, column, f"paper: {condition}", linestyle="--")
        axis.set_title(title)
        axis.set_xlabel("RL step")
    axes.flat[0].set_ylabel("mean count per response")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        figure.legend(
            handles, labels, loc="outside lower center", ncol=min(4, len(handles)), fontsize="small"
        )
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def _by_condition(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row["condition"]), []).append(row)
    return grouped


def _plot_series(
    axis: Any, points: Sequence[Mapping[str, Any]], column: str, label: str, linestyle: str
) -> None:
    xy = sorted((p["step"], p[column]) for p in points if p.get(column) is not None)
    if xy:
        axis.plot([x for x, _ in xy], [y for _, y in xy], linestyle=linestyle, marker=".", label=label)


def _text(record: Mapping[str, Any]) -> str | None:
    return next((record[k] for k in TEXT_FIELDS if isinstance(record.get(k), str)), None)


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Everything that does not need a step column: rates, P(correct | behavior), co-occurrence."""
    correct = [c for r in records if (c := is_correct(r)) is not None]
    return {
        "n_records": len(records),
        "accuracy": _mean(correct),
        "n_correct_known": len(correct),
        "behaviors": behavior_rates(records),
        "accuracy_by_behavior": accuracy_by_behavior(records),
        "cooccurrence": cooccurrence(records),
    }


def write_report(
    records: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    condition: str = "cogrl",
    reference_csv: str | Path | None = None,
    reference_conditions: Sequence[str] = (),
) -> dict[str, Any]:
    """Write summary.json, and when records carry ``step``, curves.csv and curves.png; return the summary.

    ``reference_csv`` (e.g. the paper's qwen_results.csv) with ``reference_conditions`` (e.g. ``base_ppo``)
    adds those curves to the plot as dashed lines.
    """
    out_dir = Path(out_dir)
    summary = summarize(records)
    files = ["summary.json"]
    if records and all(r.get("step") is not None for r in records):
        rows = behavior_curves(records, condition)
        write_atomic(out_dir / "curves.csv", curves_csv(rows))
        reference = []
        if reference_csv is not None:
            wanted = set(reference_conditions)
            reference = [r for r in read_curves_csv(reference_csv) if not wanted or r["condition"] in wanted]
        plot_curves(rows, out_dir / "curves.png", reference)
        summary["curves"] = rows
        files += ["curves.csv", "curves.png"]
    summary["files"] = files
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _mean(values: Sequence[float | int | bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _mean_of(total: int, n: int) -> float | None:
    return total / n if n else None
