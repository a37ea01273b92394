"""Agreement between two taggers on behavior *presence*: confusion counts and Cohen's kappa per behavior.

Counts are compared as present (> 0) or absent, the unit the paper's conclusions rest on ("does the model
verify at all?"). A pair where either tagger answered unknown (``None``) is counted apart and left out of
kappa, so an unreadable judge reply can never pass for agreement or disagreement.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
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
    """Per behavior: n, kappa, observed agreement and the confusion cells named after the two taggers."""
    pairs = list(pairs)
    report: dict[str, dict[str, Any]] = {}
    for behavior in BEHAVIORS:
        table = confusion((a.present(behavior), b.present(behavior)) for a, b in pairs)
        cells = asdict(table)
        report[behavior] = {
            "n": table.n,
            "kappa": table.kappa,
            "observed_agreement": table.observed_agreement,
            "both_present": cells["both_present"],
            f"{names[0]}_only": cells["only_a"],
            f"{names[1]}_only": cells["only_b"],
            "both_absent": cells["both_absent"],
            "unknown": cells["unknown"],
        }
    return report


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
