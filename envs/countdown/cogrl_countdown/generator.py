"""Countdown problem sets: seeded generation of solvable, de-duplicated problems, and import of public sets.

A problem is a multiset of numbers and a target; two problems with the same multiset and target are one
problem. Generation draws the count and the numbers uniformly from their ranges, then the target uniformly
among the targets in range that the numbers reach (so every problem is solvable by construction and checked
by the exact solver). Randomness comes only from ``random.Random`` seeded with a string, which is the same on
every machine; nothing depends on ``hash()`` ordering.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cogrl_countdown import solver


@dataclass(frozen=True)
class Ranges:
    """What a generated problem may look like (all bounds inclusive)."""

    min_count: int
    max_count: int
    min_number: int
    max_number: int
    min_target: int
    max_target: int
    exclude_24_game: bool = False


PRESETS: dict[str, Ranges] = {
    # The RL distribution (Countdown-Tasks-3to4, as in the paper): 3-4 numbers up to 99, targets up to 100.
    "rl": Ranges(3, 4, 1, 99, 1, 100),
    # The priming distribution: easier problems, numbers 1-24, targets 10-25, without the classic 24 game.
    "priming": Ranges(3, 4, 1, 24, 10, 25, exclude_24_game=True),
}


@dataclass(frozen=True)
class Problem:
    numbers: tuple[int, ...]
    target: int
    solution: str | None
    n_solutions: int

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        """Identity of a problem: the multiset of numbers and the target."""
        return tuple(sorted(self.numbers)), self.target

    def record(self) -> dict[str, Any]:
        return {
            "numbers": list(self.numbers),
            "target": self.target,
            "solution": self.solution,
            "n_solutions": self.n_solutions,
        }


def solved(numbers: Sequence[int], target: int) -> Problem:
    """A problem with its reference solution (the solver's first) and its number of distinct solutions."""
    found = solver.solutions(numbers, target)
    return Problem(tuple(numbers), target, found[0] if found else None, len(found))


def generate(
    ranges: Ranges,
    n: int,
    seed: str,
    exclude: frozenset[tuple[tuple[int, ...], int]] = frozenset(),
    allowed_target: Any = None,
) -> list[Problem]:
    """``n`` distinct solvable problems drawn with ``random.Random(seed)``.

    ``exclude`` holds problem keys another split already uses; ``allowed_target`` (a predicate on the target)
    restricts targets, e.g. to held-out targets for a test split. Raises ``ValueError`` when the ranges do
    not hold ``n`` such problems (detected as too many fruitless draws).
    """
    rng = random.Random(seed)
    seen = set(exclude)
    problems: list[Problem] = []
    misses = 0
    max_misses = 1000 + 50 * n
    while len(problems) < n:
        count = rng.randint(ranges.min_count, ranges.max_count)
        numbers = [rng.randint(ranges.min_number, ranges.max_number) for _ in range(count)]
        key_numbers = tuple(sorted(numbers))
        targets = [
            t
            for t in sorted(v for v in solver.reachable_values(numbers) if type(v) is int)
            if ranges.min_target <= t <= ranges.max_target
            and (key_numbers, t) not in seen
            and not (ranges.exclude_24_game and count == 4 and t == 24)
            and (allowed_target is None or allowed_target(t))
        ]
        if not targets:
            misses += 1
            if misses > max_misses:
                raise ValueError(
                    f"could draw only {len(problems)} of {n} distinct solvable problems from {ranges}; "
                    "widen the ranges or ask for fewer problems"
                )
            continue
        target = rng.choice(targets)
        seen.add((key_numbers, target))
        problems.append(solved(numbers, target))
    return problems


def load_source(path: str | Path, start: int, stop: int) -> list[Problem]:
    """Rows ``start..stop-1`` of a Countdown set (parquet or JSONL with ``nums``/``numbers`` and ``target``).

    The paper used rows 0..327,679 of Countdown-Tasks-3to4 for training and the next 1,024 for testing.
    A malformed row raises ``ValueError`` naming the file, row and field.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"source: {path}: no such file")
    problems = []
    for row_number, row in _rows(path, start, stop):
        try:
            numbers, target = parse_record(row)
        except ValueError as exc:
            raise ValueError(f"{path}: row {row_number}: {exc}") from None
        problems.append(solved(numbers, target))
    return problems


def _rows(path: Path, start: int, stop: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(0-based row number, record) for rows in [start, stop)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        columns = [c for c in ("nums", "numbers", "target") if c in table.column_names]
        rows = table.slice(start, max(0, stop - start)).select(columns).to_pylist()
        yield from enumerate(rows, start=start)
        return
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number >= stop:
                break
            if number < start:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path}: row {number} (line {number + 1}): invalid JSON ({exc.msg})"
                ) from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: row {number} (line {number + 1}): expected a JSON object")
            yield number, record


def parse_record(record: dict[str, Any]) -> tuple[tuple[int, ...], int]:
    """``numbers`` (or ``nums``): 3-6 non-negative ints; ``target``: an int. ValueError names the field."""
    field = "numbers" if "numbers" in record else "nums"
    numbers = record.get(field)
    if numbers is None:
        raise ValueError("field 'numbers' (or 'nums') is missing")
    if isinstance(numbers, str | bytes) or not isinstance(numbers, Sequence):
        raise ValueError(f"field {field!r} must be a list of 3-6 non-negative integers, got {numbers!r}")
    numbers = tuple(_as_int(v, field) for v in numbers)
    if not 3 <= len(numbers) <= solver.MAX_NUMBERS or any(n < 0 for n in numbers):
        raise ValueError(f"field {field!r} must be a list of 3-6 non-negative integers, got {list(numbers)}")
    if "target" not in record:
        raise ValueError("field 'target' is missing")
    return numbers, _as_int(record["target"], "target")


def _as_int(value: Any, field: str) -> int:
    """An int from an int, an integral float, or a decimal string (CLI values arrive as strings)."""
    if isinstance(value, bool):
        raise ValueError(f"field {field!r}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and value.strip().isascii():
        return int(value.strip())
    raise ValueError(f"field {field!r}: expected an integer, got {value!r}")
