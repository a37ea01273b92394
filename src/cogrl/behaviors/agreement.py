"""Agreement between two taggers on behavior *presence*: confusion counts and Cohen's kappa per behavior, and
how their counts compare (mean count under each, and the ratio of the means).

Counts are compared as present (> 0) or absent, the unit the paper's conclusions rest on ("does the model
verify at all?"). A pair where either tagger answered unknown (``None``) is counted apart and left out of
kappa and of the means, so an unreadable judge reply can never pass for agreement or disagreement.
``match_taggings`` pairs two taggings of the same responses (`cogrl behaviors agree`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cogrl.behaviors.types import BEHAVIORS, BehaviorTags
from cogrl.files import write_atomic


@dataclass(frozen=True)
class Confusion:
    """Presence confusion counts between tagger A and tagger B for one behavior."""

    both_present: int = 0
    only_a: int = 0
    only_b: int = 0
    both_absent: int = 0
    unknown: int = 0
    """Pairs left out because either tagger's count was unknown."""

    @property
    def n(self) -> int:
        return self.both_present + self.only_a + self.only_b + self.both_absent

    @property
    def observed_agreement(self) -> float | None:
        return (self.both_present + self.both_absent) / self.n if self.n else None

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa; None when undefined (no pairs, or both taggers constant and identical)."""
        if not self.n:
            return None
        p_a = (self.both_present + self.only_a) / self.n
        p_b = (self.both_present + self.only_b) / self.n
        expected = p_a * p_b + (1 - p_a) * (1 - p_b)
        if expected == 1:
            return None
        return (self.observed_agreement - expected) / (1 - expected)


def cohen_kappa(a: Iterable[bool], b: Iterable[bool]) -> float | None:
    """Cohen's kappa of two raters' yes/no labels on the same items (None when undefined)."""
    return confusion(zip(a, b, strict=True)).kappa


def confusion(pairs: Iterable[tuple[bool | None, bool | None]]) -> Confusion:
    """Tally (A present?, B present?) pairs; a None on either side counts as unknown."""
    cells = {"both_present": 0, "only_a": 0, "only_b": 0, "both_absent": 0, "unknown": 0}
    for a, b in pairs:
        if a is None or b is None:
            cells["unknown"] += 1
        elif a and b:
            cells["both_present"] += 1
        elif a:
            cells["only_a"] += 1
        elif b:
            cells["only_b"] += 1
        else:
            cells["both_absent"] += 1
    return Confusion(**cells)


def agreement_report(
    pairs: Iterable[tuple[BehaviorTags, BehaviorTags]], names: tuple[str, str] = ("regex", "judge")
) -> dict[str, dict[str, Any]]:
    """Per behavior: n, kappa, observed agreement, the confusion cells and the mean counts named after the two
    taggers, and ``mean_ratio`` (second tagger's mean / first's: what to multiply the first's counts by to
    read them on the second's scale; None when the first's mean is 0)."""
    pairs = list(pairs)
    report: dict[str, dict[str, Any]] = {}
    for behavior in BEHAVIORS:
        table = confusion((a.present(behavior), b.present(behavior)) for a, b in pairs)
        cells = asdict(table)
        known = [
            (a.counts[behavior], b.counts[behavior])
            for a, b in pairs
            if a.counts[behavior] is not None and b.counts[behavior] is not None
        ]
        mean_a = sum(x for x, _ in known) / len(known) if known else None
        mean_b = sum(y for _, y in known) / len(known) if known else None
        report[behavior] = {
            "n": table.n,
            "kappa": table.kappa,
            "observed_agreement": table.observed_agreement,
            "both_present": cells["both_present"],
            f"{names[0]}_only": cells["only_a"],
            f"{names[1]}_only": cells["only_b"],
            "both_absent": cells["both_absent"],
            "unknown": cells["unknown"],
            f"{names[0]}_mean": mean_a,
            f"{names[1]}_mean": mean_b,
            "mean_ratio": mean_b / mean_a if mean_a else None,
        }
    return report


def match_taggings(
    a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], by: str = "auto"
) -> list[tuple[BehaviorTags, BehaviorTags]]:
    """Pair two taggings of the same responses (records with ``behaviors``), by ``id`` or by line.

    ``by="auto"`` matches by ``id`` when every record of both has one, else by line. Raises ValueError, naming
    the first offending record, when the files hold different sets of ids, a repeated id, different numbers
    of lines, or (where both records carry ``completion``) different responses under one key."""
    if by == "auto":
        by = "id" if all("id" in r for r in (*a, *b)) else "line"
    if by == "line":
        if len(a) != len(b):
            raise ValueError(
                f"the files have {len(a)} and {len(b)} tagged lines; matching by line needs equal"
            )
        keyed = [(f"line {i + 1}", x, y) for i, (x, y) in enumerate(zip(a, b, strict=True))]
    elif by == "id":
        index_a, index_b = _by_id(a, "first"), _by_id(b, "second")
        if missing := [k for k in index_a if k not in index_b] + [k for k in index_b if k not in index_a]:
            raise ValueError(f"{len(missing)} id(s) are in only one file, e.g. {missing[0]!r}")
        keyed = [(f"id {k!r}", index_a[k], index_b[k]) for k in index_a]
    else:
        raise ValueError(f"by must be 'auto', 'id' or 'line', got {by!r}")
    for where, x, y in keyed:
        if "completion" in x and "completion" in y and x["completion"] != y["completion"]:
            raise ValueError(f"{where}: the two files tag different responses (their 'completion' differs)")
    return [(_tags(x), _tags(y)) for _, x, y in keyed]


def _by_id(records: Sequence[Mapping[str, Any]], which: str) -> dict[Any, Mapping[str, Any]]:
    index: dict[Any, Mapping[str, Any]] = {}
    for record in records:
        key = record.get("id")
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise ValueError(f"{which} file: every 'id' must be a string or an integer, got {key!r}")
        if key in index:
            raise ValueError(f"{which} file: id {key!r} occurs twice")
        index[key] = record
    return index


def _tags(record: Mapping[str, Any]) -> BehaviorTags:
    return BehaviorTags(dict(record["behaviors"]), source=str(record.get("behavior_source", "")))


def write_agreement(report: dict[str, dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write ``agreement.json`` and ``agreement.csv`` (one row per behavior) atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    json_path, csv_path = out_dir / "agreement.json", out_dir / "agreement.csv"
    write_atomic(json_path, json.dumps(report, indent=2) + "\n")
    buffer = io.StringIO()
    columns = list(next(iter(report.values())))
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["behavior", *columns])
    for behavior, row in report.items():
        writer.writerow([behavior, *("" if row[c] is None else row[c] for c in columns)])
    write_atomic(csv_path, buffer.getvalue())
    return [json_path, csv_path]
