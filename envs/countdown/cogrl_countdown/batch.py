"""Batched exact evaluation: every canonical expression of k numbers, for thousands of problems at once.

The generator needs, for each random draw of numbers, the targets it reaches and, for the chosen target,
the number of distinct solutions. Doing that one problem at a time in Python costs milliseconds; here the
canonical expressions over k *positions* (the solver's canonical forms with leaves ``#0..#k-1``) are
compiled once into a program of binary nodes, and the program runs on numpy int64 numerator/denominator
arrays with one column per problem. Fractions are left unreduced (``a/b == t`` iff ``a == t*b``), which is
exact as long as nothing overflows: ``fits_int64`` checks the bound ``2**(k-1) * max_number**k`` first, and
the generator falls back to the pure-Python solver otherwise. A division by zero leaves ``den == 0``, which
every later operation keeps.

Results equal the solver's (tests check it): a solution's position-canonical node is turned back into a
value-canonical ``solver.Expr``, so equal numbers collapse exactly as in the solver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from cogrl_countdown import solver

MAX_BATCH_COUNT = 4
"""Largest count compiled here (4 numbers: 1,170 canonical expressions; 5 would be tens of thousands)."""

# Node operations: the six ways to combine a left and a right node.
_ADD, _SUB, _RSUB, _MUL, _DIV, _RDIV = range(6)


@dataclass(frozen=True)
class Program:
    """Canonical expressions over ``count`` positions; nodes ``0..count-1`` are the positions themselves."""

    count: int
    ops: np.ndarray  # (n_nodes,) operation code; -1 for a position
    left: np.ndarray  # (n_nodes,) left child node
    right: np.ndarray  # (n_nodes,) right child node
    levels: tuple[tuple[int, np.ndarray], ...]  # (op, node ids) groups, children always computed earlier
    full: np.ndarray  # node ids of the expressions that use every position


@cache
def program(count: int) -> Program:
    """Compile the canonical expressions over ``count`` positions (once per process)."""
    ops, left, right = [-1] * count, list(range(count)), list(range(count))
    exprs = [solver.Expr(0, 0, f"#{i}") for i in range(count)]
    by_mask: dict[int, list[int]] = {1 << i: [i] for i in range(count)}
    level_of: list[int] = [1] * count
    for size in range(2, count + 1):
        for mask in range(1, 1 << count):
            if mask.bit_count() != size:
                continue
            seen: dict[str, int] = {}
            low = mask & -mask
            sub = (mask - 1) & mask
            while sub:
                if sub & low and sub != mask:
                    for a in by_mask[sub]:
                        for b in by_mask[mask ^ sub]:
                            for op, expr in _symbolic(exprs[a], exprs[b]):
                                if expr.key not in seen:
                                    seen[expr.key] = len(ops)
                                    ops.append(op)
                                    left.append(a)
                                    right.append(b)
                                    exprs.append(expr)
                                    level_of.append(size)
                sub = (sub - 1) & mask
            by_mask[mask] = list(seen.values())
    _divide_last(exprs, ops, left, right)
    ops_a, level_a = np.array(ops), np.array(level_of)
    levels = tuple(
        (op, np.flatnonzero((level_a == size) & (ops_a == op)))
        for size in range(2, count + 1)
        for op in range(6)
        if np.any((level_a == size) & (ops_a == op))
    )
    full = np.array(by_mask[(1 << count) - 1] if count > 1 else [0])
    return Program(count, ops_a, np.array(left), np.array(right), levels, full)


def _divide_last(exprs: list[solver.Expr], ops: list[int], left: list[int], right: list[int]) -> None:
    """Make every product multiply its numerator factors and divide only at the end.

    ``a / (b / c)`` and ``a * c / b`` are one canonical product, but with ``c == 0`` only the second is
    defined; the solver (and the scorer, reading the solver's text) count the form when some way of writing
    it is defined, i.e. when no *denominator* factor is zero. Splitting off the last denominator factor (or,
    without one, the last numerator factor) gives that representative, by induction on the factors.
    """
    node_of = {expr.key: i for i, expr in enumerate(exprs)}
    for i, expr in enumerate(exprs):
        if expr.kind != solver._PRODUCT:
            continue
        terms = sorted(expr.terms, key=lambda t: (t[0], t[1].key))  # denominators first
        split = 0 if not terms[0][0] else len(terms) - 1
        last, rest = terms[split], tuple(terms[:split] + terms[split + 1 :])
        rest_key = rest[0][1].key if len(rest) == 1 else solver._key("P", rest)
        ops[i] = _MUL if last[0] else _DIV
        left[i], right[i] = node_of[rest_key], node_of[last[1].key]


def _symbolic(a: solver.Expr, b: solver.Expr) -> list[tuple[int, solver.Expr]]:
    return [
        (_ADD, solver._sum(a, b, True, 0)),
        (_SUB, solver._sum(a, b, False, 0)),
        (_RSUB, solver._sum(b, a, False, 0)),
        (_MUL, solver._product(a, b, True, 0)),
        (_DIV, solver._product(a, b, False, 0)),
        (_RDIV, solver._product(b, a, False, 0)),
    ]


def fits_int64(count: int, max_number: int, max_target: int) -> bool:
    """Whether unreduced numerators/denominators (and ``target * den``) stay far inside int64."""
    return (
        count <= MAX_BATCH_COUNT
        and 2 ** (count - 1) * max(max_number, 1) ** count * max(abs(max_target), 1) < 2**62
    )


def evaluate(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numerators and denominators of the full expressions: (n_problems, n_full) each, for (n_problems, k)."""
    prog = program(numbers.shape[1])
    num = np.empty((len(prog.ops), numbers.shape[0]), dtype=np.int64)
    den = np.empty_like(num)
    num[: prog.count] = numbers.T
    den[: prog.count] = 1
    for op, ids in prog.levels:
        a, b = prog.left[ids], prog.right[ids]
        if op in (_RSUB, _RDIV):
            a, b = b, a
        na, da, nb, db = num[a], den[a], num[b], den[b]
        if op == _MUL:
            num[ids], den[ids] = na * nb, da * db
        elif op in (_DIV, _RDIV):
            d = da * nb
            num[ids], den[ids] = np.where(d == 0, 0, na * db), d
        else:
            cross = nb * da
            num[ids], den[ids] = na * db + (cross if op == _ADD else -cross), da * db
    return np.ascontiguousarray(num[prog.full].T), np.ascontiguousarray(den[prog.full].T)


def integer_targets(num: np.ndarray, den: np.ndarray, lo: int, hi: int) -> list[np.ndarray]:
    """For each problem (row), the sorted distinct whole values in [lo, hi] its expressions take."""
    valid = den != 0
    safe = np.where(valid, den, 1)
    whole = valid & (num % safe == 0)
    value = num // safe
    hit = whole & (value >= lo) & (value <= hi)
    reach = np.zeros((num.shape[0], hi - lo + 1), dtype=bool)
    rows = np.broadcast_to(np.arange(num.shape[0])[:, None], num.shape)
    reach[rows[hit], value[hit] - lo] = True
    return [np.flatnonzero(row) + lo for row in reach]


def solutions_at(numbers: Sequence[int], num: np.ndarray, den: np.ndarray, target: int) -> list[solver.Expr]:
    """The solver's distinct solutions of one problem, from its evaluated row (``num``, ``den``)."""
    prog = program(len(numbers))
    match = np.flatnonzero((den != 0) & (num == target * den))
    found: dict[str, solver.Expr] = {}
    for node in prog.full[match]:
        expr = _rebuild(prog, int(node), numbers)
        found.setdefault(expr.key, expr)
    return list(found.values())


def _rebuild(prog: Program, node: int, numbers: Sequence[int]) -> solver.Expr:
    """The value-canonical expression of a position-canonical node for these numbers."""
    op = prog.ops[node]
    if op < 0:
        return solver._atom(numbers[node])
    a = _rebuild(prog, int(prog.left[node]), numbers)
    b = _rebuild(prog, int(prog.right[node]), numbers)
    if op in (_RSUB, _RDIV):
        a, b = b, a
    if op in (_ADD, _SUB, _RSUB):
        value = a.value + b.value if op == _ADD else a.value - b.value
        return solver._sum(a, b, op == _ADD, value)
    value = a.value * b.value if op == _MUL else solver._divide(a.value, b.value)
    return solver._product(a, b, op == _MUL, value)
