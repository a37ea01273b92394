"""Exact Countdown solver: which targets a multiset of numbers reaches, and every distinct way to reach one.

All arithmetic is exact: a value is an ``int`` when it is whole and a ``fractions.Fraction`` otherwise (the
two compare and hash alike, and ints keep the common case fast). Intermediate values may be negative or
fractional, exactly as the scorer allows: ``8 / (3 - 8 / 3)`` is a solution for 24.

**Distinct solutions.** Two expressions are the same solution when they have the same canonical form:

* ``+`` and ``-`` flatten into one *sum*: a multiset of signed terms, so ``a + b``, ``b + a``,
  ``(a + b) + c``, ``a + (b + c)``, ``a - (c - b)`` and ``a + b - c`` with ``c`` moved around are one sum;
* ``*`` and ``/`` flatten into one *product*: a multiset of numerator and denominator factors, so
  ``a * b / c``, ``b / c * a`` and ``a / (c / b)`` are one product;
* equal numbers are interchangeable (``[3, 3, 4]`` has one ``3 + 3 + 4``, not two).

No other identity is applied: ``4 * 1`` and ``4 / 1`` are different solutions, so are ``(a - b) / (c - d)``
and ``(b - a) / (d - c)``, and so are ``a * (b + c)`` and ``a * b + a * c`` (distributivity is not used).
Every solution is printed in the answer syntax with only binary operators (a canonical sum starts with its
positive terms), so each one scores 1.0.

Cost: values are memoised per sub-multiset (``lru_cache``), and the top level meets in the middle (for each
split of the numbers, look up the value the other part must reach), so 3-4 numbers take well under a
millisecond once the small sub-multisets are cached; 6 numbers take seconds for a full enumeration.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from functools import lru_cache

Value = int | Fraction
MAX_NUMBERS = 6

_ATOM, _SUM, _PRODUCT = 0, 1, 2


class Expr:
    """A canonical expression: ``key`` identifies it up to the identities above, ``text`` is how it reads."""

    __slots__ = ("kind", "value", "key", "terms", "_text")

    def __init__(self, kind: int, value: Value, key: str, terms: tuple[tuple[bool, Expr], ...] = ()):
        self.kind = kind
        self.value = value
        self.key = key
        # A sum's terms are (positive, term); a product's are (in the numerator, factor). Never nested alike.
        self.terms = terms
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = _render(self)
        return self._text

    def __repr__(self) -> str:
        return f"Expr({self.text!r} = {self.value})"


def _atom(n: int) -> Expr:
    return Expr(_ATOM, n, str(n))


def _render(expr: Expr) -> str:
    if expr.kind == _ATOM:
        return expr.key
    plus = [t for s, t in expr.terms if s]
    minus = [t for s, t in expr.terms if not s]
    plus.sort(key=_display_order)
    minus.sort(key=_display_order)
    if expr.kind == _SUM:
        return " - ".join([" + ".join(t.text for t in plus), *(t.text for t in minus)])
    return " / ".join([" * ".join(_factor(t) for t in plus), *(_factor(t) for t in minus)])


def _display_order(expr: Expr) -> tuple[Value, str]:
    return (-expr.value, expr.key)


def _factor(expr: Expr) -> str:
    return f"({expr.text})" if expr.kind == _SUM else expr.text


def _normal(value: Fraction) -> Value:
    return value.numerator if value.denominator == 1 else value


def _divide(a: Value, b: Value) -> Value:
    """``a / b`` for ``b != 0``, exact, as an int whenever the quotient is whole."""
    if type(a) is int and type(b) is int:
        q, r = divmod(a, b)
        return q if r == 0 else Fraction(a, b)
    return _normal(Fraction(a) / b)


def _combine_values(a: Value, b: Value) -> Iterator[Value]:
    """Every value of ``a op b`` and ``b op a`` for the four operations (division by zero skipped)."""
    fractional = type(a) is not int or type(b) is not int
    for v in (a + b, a - b, b - a, a * b):
        yield _normal(v) if fractional and type(v) is Fraction else v
    if b != 0:
        yield _divide(a, b)
    if a != 0:
        yield _divide(b, a)


def _check(numbers: Iterable[int]) -> tuple[int, ...]:
    numbers = tuple(sorted(numbers))
    if not 1 <= len(numbers) <= MAX_NUMBERS:
        raise ValueError(f"numbers: expected 1 to {MAX_NUMBERS} numbers, got {len(numbers)}")
    if any(type(n) is not int or n < 0 for n in numbers):
        raise ValueError(f"numbers: expected non-negative integers, got {list(numbers)}")
    return numbers


@lru_cache(maxsize=1 << 12)
def _splits(size: int) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """Index splits of ``range(size)`` into two non-empty parts, each unordered pair once."""
    out = []
    for mask in range(1, (1 << size) - 1):
        if mask & 1:  # the part holding index 0 comes first: each unordered split once
            left = tuple(i for i in range(size) if mask >> i & 1)
            right = tuple(i for i in range(size) if not mask >> i & 1)
            out.append((left, right))
    return tuple(out)


def _multiset_splits(numbers: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Distinct splits of a sorted multiset into two non-empty sorted sub-multisets."""
    seen = set()
    out = []
    for left_idx, right_idx in _splits(len(numbers)):
        left = tuple(numbers[i] for i in left_idx)
        right = tuple(numbers[i] for i in right_idx)
        pair = (left, right) if left <= right else (right, left)
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


@lru_cache(maxsize=1 << 18)
def _values(numbers: tuple[int, ...]) -> frozenset[Value]:
    """Every value some expression over the sorted multiset ``numbers`` takes."""
    if len(numbers) == 1:
        return frozenset(numbers)
    out: set[Value] = set()
    for left, right in _multiset_splits(numbers):
        right_values = _values(right)
        for a in _values(left):
            for b in right_values:
                out.update(_combine_values(a, b))
    return frozenset(out)


def _sum(left: Expr, right: Expr, positive: bool, value: Value) -> Expr:
    terms = (left.terms if left.kind == _SUM else ((True, left),)) + tuple(
        (s == positive, t) for s, t in (right.terms if right.kind == _SUM else ((True, right),))
    )
    return Expr(_SUM, value, _key("S", terms), terms)


def _product(left: Expr, right: Expr, numerator: bool, value: Value) -> Expr:
    terms = (left.terms if left.kind == _PRODUCT else ((True, left),)) + tuple(
        (s == numerator, t) for s, t in (right.terms if right.kind == _PRODUCT else ((True, right),))
    )
    return Expr(_PRODUCT, value, _key("P", terms), terms)


def _key(tag: str, terms: tuple[tuple[bool, Expr], ...]) -> str:
    return tag + "(" + ",".join(sorted(("+" if s else "-") + t.key for s, t in terms)) + ")"


def _combinations(a: Expr, b: Expr) -> Iterator[Expr]:
    """Every canonical expression ``a op b`` / ``b op a`` (division by zero skipped)."""
    va, vb = a.value, b.value
    yield _sum(a, b, True, va + vb)
    yield _sum(a, b, False, va - vb)
    yield _sum(b, a, False, vb - va)
    yield _product(a, b, True, va * vb)
    if vb != 0:
        yield _product(a, b, False, _divide(va, vb))
    if va != 0:
        yield _product(b, a, False, _divide(vb, va))


@lru_cache(maxsize=1 << 12)
def _expressions(numbers: tuple[int, ...]) -> dict[Value, tuple[Expr, ...]]:
    """Every distinct expression over the sorted multiset ``numbers``, grouped by value."""
    if len(numbers) == 1:
        return {numbers[0]: (_atom(numbers[0]),)}
    by_key: dict[str, Expr] = {}
    for left, right in _multiset_splits(numbers):
        right_exprs = [e for group in _expressions(right).values() for e in group]
        for group in _expressions(left).values():
            for a in group:
                for b in right_exprs:
                    for expr in _combinations(a, b):
                        by_key.setdefault(expr.key, expr)
    grouped: dict[Value, list[Expr]] = {}
    for expr in by_key.values():
        grouped.setdefault(_normal_value(expr.value), []).append(expr)
    return {v: tuple(sorted(g, key=lambda e: e.key)) for v, g in grouped.items()}


def _normal_value(value: Value) -> Value:
    return _normal(value) if type(value) is Fraction else value


def _partners(a: Value, target: Value) -> Iterator[tuple[Value | None, str]]:
    """For a left value ``a``: the right value ``b`` each operation needs to hit ``target`` (None: any b).

    Operation codes: "+" a+b, "-" a-b, "r-" b-a, "*" a*b, "/" a/b, "r/" b/a.
    """
    yield target - a, "+"
    yield a - target, "-"
    yield target + a, "r-"
    if a != 0:
        yield _divide(target, a), "*"
        yield _normal_value(target * a), "r/"
    elif target == 0:
        yield None, "*"
    if target != 0:
        if a != 0:
            yield _divide(a, target), "/"
    elif a == 0:
        yield None, "/"


def _join(a: Expr, b: Expr, op: str, target: Value) -> Expr:
    if op == "+":
        return _sum(a, b, True, target)
    if op == "-":
        return _sum(a, b, False, target)
    if op == "r-":
        return _sum(b, a, False, target)
    if op == "*":
        return _product(a, b, True, target)
    if op == "/":
        return _product(a, b, False, target)
    return _product(b, a, False, target)


def _solutions(numbers: tuple[int, ...], target: Value, limit: int | None) -> list[Expr]:
    if len(numbers) == 1:
        return [_atom(numbers[0])] if numbers[0] == target else []
    found: dict[str, Expr] = {}
    for left, right in _multiset_splits(numbers):
        right_exprs = _expressions(right)
        for a_value, a_group in _expressions(left).items():
            for b_value, op in _partners(a_value, target):
                if b_value is None:
                    b_groups = [g for v, g in right_exprs.items() if v != 0 or op == "*"]
                else:
                    group = right_exprs.get(b_value)
                    b_groups = [group] if group else []
                for b_group in b_groups:
                    for a in a_group:
                        for b in b_group:
                            expr = _join(a, b, op, target)
                            if expr.key not in found:
                                found[expr.key] = expr
                                if limit is not None and len(found) >= limit:
                                    return list(found.values())
    return list(found.values())


def solutions(numbers: Sequence[int], target: int, limit: int | None = None) -> list[str]:
    """Every distinct solution (or the first ``limit``) as answer-syntax strings, e.g. ``"25 + 30 / 3 - 4"``.

    The order is deterministic. Raises ``ValueError`` for anything but 1-6 non-negative ints.
    """
    ms = _check(numbers)
    if (limit is not None and limit <= 0) or target not in _values(ms):
        return []
    return [e.text for e in _solutions(ms, target, limit)]


def is_solvable(numbers: Sequence[int], target: int) -> bool:
    """Whether some expression using every number exactly once equals ``target``."""
    return target in _values(_check(numbers))


def count_solutions(numbers: Sequence[int], target: int) -> int:
    """How many distinct solutions (see the module docstring for "distinct") reach ``target``."""
    ms = _check(numbers)
    return len(_solutions(ms, target, None)) if target in _values(ms) else 0


def reachable_values(numbers: Sequence[int]) -> frozenset[Value]:
    """Every exact value an expression using every number exactly once can take (fast; no expressions)."""
    return _values(_check(numbers))


def reachable(numbers: Sequence[int]) -> dict[Fraction, str]:
    """Every reachable value mapped to one expression for it (builds all expressions: slow for 6 numbers)."""
    ms = _check(numbers)
    if len(ms) == 1:
        return {Fraction(ms[0]): str(ms[0])}
    return {Fraction(v): group[0].text for v, group in _expressions(ms).items()}
