"""The exact solver against an independent brute force, and the batched evaluator against the solver."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import numpy as np
import pytest

from cogrl_countdown import batch, solver
from cogrl_countdown.scorer import score


def _trees(numbers: tuple[int, ...]):
    """Every binary expression tree over ``numbers`` (each used once, all orders): (tree, exact value)."""
    if len(numbers) == 1:
        yield numbers[0], Fraction(numbers[0])
        return
    for r in range(1, len(numbers)):
        for left_idx in itertools.combinations(range(len(numbers)), r):
            left = tuple(numbers[i] for i in left_idx)
            right = tuple(n for i, n in enumerate(numbers) if i not in left_idx)
            for lt, lv in _trees(left):
                for rt, rv in _trees(right):
                    yield ("+", lt, rt), lv + rv
                    yield ("-", lt, rt), lv - rv
                    yield ("*", lt, rt), lv * rv
                    if rv != 0:
                        yield ("/", lt, rt), lv / rv


def _canonical(tree):
    """Independent canonical form: flatten +/- into signed terms and * / into numerator/denominator."""
    if not isinstance(tree, tuple):
        return tree
    group = "+-" if tree[0] in "+-" else "*/"
    terms = []

    def collect(node, positive):
        if isinstance(node, tuple) and node[0] in group:
            collect(node[1], positive)
            collect(node[2], positive if node[0] == group[0] else not positive)
        else:
            terms.append((positive, _canonical(node)))

    collect(tree, True)
    return (group, tuple(sorted(terms, key=repr)))


def _brute(numbers, target):
    hits = {repr(_canonical(t)) for t, v in _trees(tuple(numbers)) if v == target}
    values = {v for _, v in _trees(tuple(numbers))}
    return hits, values


@pytest.mark.parametrize(
    ("numbers", "target"),
    [
        ([25, 30, 3, 4], 32),
        ([3, 3, 8, 8], 24),
        ([1, 2, 3], 6),
        ([3, 3, 4], 10),
        ([2, 2, 2, 2], 8),
        ([0, 1, 5, 5], 0),
    ],
)
def test_counts_match_brute_force(numbers, target):
    hits, values = _brute(numbers, target)
    assert solver.count_solutions(numbers, target) == len(hits)
    assert solver.is_solvable(numbers, target) == bool(hits)
    assert set(solver.reachable_values(numbers)) == values
    for expr in solver.solutions(numbers, target):
        assert score(f"<answer>{expr}</answer>", numbers, target).correct


def test_random_problems_match_brute_force():
    rng = random.Random(7)
    for _ in range(12):
        numbers = [rng.randint(0, 12) for _ in range(rng.choice((3, 4)))]
        target = rng.randint(0, 30)
        hits, _ = _brute(numbers, target)
        assert solver.count_solutions(numbers, target) == len(hits), (numbers, target)


def test_known_answers():
    assert solver.solutions([3, 3, 8, 8], 24) == ["8 / (3 - 8 / 3)"]
    assert solver.count_solutions([1, 2, 3], 6) == 3  # 1+2+3, 1*2*3, 2*3/1
    assert solver.count_solutions([3, 3, 4], 10) == 1  # equal numbers are interchangeable
    assert not solver.is_solvable([1, 1, 1], 100)
    assert solver.solutions([1, 1, 1], 100) == []
    assert len(solver.solutions([1, 2, 3, 4], 10, limit=2)) == 2
    assert solver.solutions([1, 2, 3, 4], 10, limit=0) == []
    assert solver.reachable([1, 2, 3])[Fraction(1, 6)] in ("1 / 2 / 3", "1 / 3 / 2")


def test_rejects_bad_numbers():
    with pytest.raises(ValueError, match="numbers"):
        solver.solutions([1, 2, 3, 4, 5, 6, 7], 10)
    with pytest.raises(ValueError, match="numbers"):
        solver.is_solvable([1, -2, 3], 2)


def test_five_numbers():
    numbers = [1, 3, 4, 6, 50]
    found = solver.solutions(numbers, 100, limit=5)
    assert len(found) == 5
    for expr in found:
        assert score(f"<answer>{expr}</answer>", numbers, 100).correct


@pytest.mark.slow
def test_six_numbers_full_enumeration():
    numbers = [1, 2, 3, 4, 5, 75]
    assert solver.is_solvable(numbers, 823)
    found = solver.solutions(numbers, 823)
    assert len(found) == len(set(found)) == solver.count_solutions(numbers, 823)
    for expr in found[:200]:
        assert score(f"<answer>{expr}</answer>", numbers, 823).correct


@pytest.mark.parametrize("count", [3, 4])
def test_batched_evaluator_matches_solver(count):
    rng = random.Random(count)
    draws = np.array([[rng.randint(0, 15) for _ in range(count)] for _ in range(40)])
    draws[0] = [5] * count  # repeated numbers collapse like in the solver
    num, den = batch.evaluate(draws)
    reach = batch.integer_targets(num, den, 0, 40)
    for row, numbers in enumerate(draws.tolist()):
        values = solver.reachable_values(numbers)
        assert reach[row].tolist() == sorted(v for v in values if type(v) is int and 0 <= v <= 40)
        for target in reach[row][:3].tolist():
            got = sorted(e.text for e in batch.solutions_at(numbers, num[row], den[row], target))
            assert got == sorted(solver.solutions(numbers, target)), (numbers, target)


def test_int64_bound():
    assert batch.fits_int64(4, 99, 100)
    assert not batch.fits_int64(4, 10**6, 100)
    assert not batch.fits_int64(5, 10, 100)  # only 3-4 numbers are compiled
