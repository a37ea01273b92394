"""Countdown problem sets: seeded generation of solvable, de-duplicated problems, and import of public sets.

A problem is a multiset of numbers and a target; two problems with the same multiset and target are one
problem. Generation draws the count and the numbers uniformly from their ranges, then the target uniformly
among the targets in range that the numbers reach (so every problem is solvable by construction and checked
by the exact solver). Randomness comes only from ``random.Random`` seeded with a string, which is the same on
every machine; nothing depends on ``hash()`` ordering.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cogrl_countdown import batch, solver

BATCH = 128
"""Draws evaluated together (small enough for the evaluator's arrays to stay in cache)."""


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

    def multisets(self) -> int:
        """How many distinct multisets of numbers the ranges allow (a problem is one of them and a target)."""
        values = self.max_number - self.min_number + 1
        return sum(math.comb(values + k - 1, k) for k in range(self.min_count, self.max_count + 1))


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
    """A problem with its reference solution and its number of distinct solutions (exact solver)."""
    return _problem(numbers, target, solver.solutions(numbers, target))


def _problem(numbers: Sequence[int], target: int, found: Sequence[str]) -> Problem:
    """The reference solution is the shortest (ties: alphabetical), so it does not depend on search order."""
    reference = min(found, key=lambda s: (len(s), s)) if found else None
    return Problem(tuple(numbers), target, reference, len(found))


def generate(
    ranges: Ranges,
    n: int,
    seed: str,
    exclude: frozenset[tuple[tuple[int, ...], int]] = frozenset(),
    allowed_target: Callable[[int], bool] | None = None,
) -> list[Problem]:
    """``n`` distinct solvable problems drawn with ``random.Random(seed)``.

    Draws come in batches (the batched evaluator handles a batch at once); each draw is then kept or
    skipped in order, and its target chosen with the same generator, so the result depends only on the
    arguments. ``exclude`` holds problem keys another split already uses; ``allowed_target`` restricts
    targets (e.g. to held-out targets for a test split). Raises ``ValueError`` when the ranges do not hold
    ``n`` such problems, detected as more than 1000 + 50 * n fruitless draws, so an impossible request fails
    after a bounded search that does not depend on the machine.
    """
    rng = random.Random(seed)
    seen = set(exclude)
    problems: list[Problem] = []
    misses = draws_made = 0
    max_misses = 1000 + 50 * n
    while len(problems) < n:
        size = min(BATCH, 2 * (n - len(problems)) + 16)
        draws = []
        for _ in range(size):
            count = rng.randint(ranges.min_count, ranges.max_count)
            draws.append(tuple(rng.randint(ranges.min_number, ranges.max_number) for _ in range(count)))
        for numbers, reachable, solve in _evaluate_draws(draws, ranges):
            draws_made += 1
            key_numbers = tuple(sorted(numbers))
            targets = [
                t
                for t in reachable
                if (key_numbers, t) not in seen
                and not (ranges.exclude_24_game and len(numbers) == 4 and t == 24)
                and (allowed_target is None or allowed_target(t))
            ]
            if not targets:
                misses += 1
                if misses > max_misses:
                    raise ValueError(
                        f"could draw only {len(problems)} of {n} distinct solvable problems in {draws_made} "
                        f"draws (the search stops after {max_misses} fruitless ones) from {ranges}; widen the "
                        "ranges or ask for fewer problems"
                    )
                continue
            target = rng.choice(targets)
            seen.add((key_numbers, target))
            problems.append(_problem(numbers, target, solve(target)))
            if len(problems) == n:
                break
    return problems


def _evaluate_draws(
    draws: list[tuple[int, ...]], ranges: Ranges
) -> Iterator[tuple[tuple[int, ...], list[int], Callable[[int], list[str]]]]:
    """For each draw, in order: its numbers, the sorted whole targets in range it reaches, and a function
    giving every distinct solution for one of them. Uses the batched evaluator where int64 is exact."""
    bound = max(abs(ranges.min_target), abs(ranges.max_target))
    batched: dict[int, tuple[list[int], Callable[[int], list[str]]]] = {}
    for count in sorted({len(d) for d in draws}):
        if batch.fits_int64(count, ranges.max_number, bound):
            rows = [i for i, d in enumerate(draws) if len(d) == count]
            num, den = batch.evaluate(np.array([draws[i] for i in rows], dtype=np.int64))
            reach = batch.integer_targets(num, den, ranges.min_target, ranges.max_target)
            for col, i in enumerate(rows):
                batched[i] = (reach[col].tolist(), _batched_solver(draws[i], num[col], den[col]))
    for i, numbers in enumerate(draws):
        if i in batched:
            yield (numbers, *batched[i])
        else:  # the exact solver, one draw at a time (only as many as the caller consumes)
            values = solver.reachable_values(numbers)
            reach = sorted(
                v for v in values if type(v) is int and ranges.min_target <= v <= ranges.max_target
            )
            yield numbers, reach, functools.partial(solver.solutions, numbers)


def _batched_solver(numbers: tuple[int, ...], num: np.ndarray, den: np.ndarray) -> Callable[[int], list[str]]:
    return lambda target: [e.text for e in batch.solutions_at(numbers, num, den, target)]


def load_source(path: str | Path, start: int, stop: int) -> list[Problem]:
    """Rows ``start..stop-1`` of a Countdown set (parquet or JSONL with ``nums``/``numbers`` and ``target``).

    The paper used rows 0..327,679 of Countdown-Tasks-3to4 for training and the next 1,024 for testing.
    A malformed row raises ``ValueError`` naming the file, row and field.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"source: {path}: no such file")
    pairs = []
    for row_number, row in _rows(path, start, stop):
        try:
            pairs.append(parse_record(row))
        except ValueError as exc:
            raise ValueError(f"{path}: row {row_number}: {exc}") from None
    return solve_all(pairs)


def solve_all(pairs: Sequence[tuple[Sequence[int], int]]) -> list[Problem]:
    """``solved`` for many (numbers, target) pairs, through the batched evaluator where it is exact."""
    problems: list[Problem | None] = [None] * len(pairs)
    for start in range(0, len(pairs), BATCH):
        chunk = range(start, min(start + BATCH, len(pairs)))
        for count in sorted({len(pairs[i][0]) for i in chunk}):
            rows = [i for i in chunk if len(pairs[i][0]) == count]
            biggest = max(max(pairs[i][0]) for i in rows)
            if not batch.fits_int64(count, biggest, max(abs(pairs[i][1]) for i in rows)):
                continue
            num, den = batch.evaluate(np.array([pairs[i][0] for i in rows], dtype=np.int64))
            for row, i in enumerate(rows):
                numbers, target = pairs[i]
                found = [e.text for e in batch.solutions_at(numbers, num[row], den[row], target)]
                problems[i] = _problem(numbers, target, found)
    return [p if p is not None else solved(*pairs[i]) for i, p in enumerate(problems)]


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
