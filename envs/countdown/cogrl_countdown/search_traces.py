"""Search traces: Countdown traces in which the behaviors are the computation (Stream of Search style).

The writer runs a real depth-first search and writes down what it does, one event per line:

    [7, 3, 5] -> 16              the problem: numbers -> target
    7 + 5 = 12 -> [12, 3]        a step: two numbers combined, the result replaces them
    12 + 3 = 15 -> [15]          a leaf: one number left
    15 != 16                     verification: the leaf checked against the goal
    back to [12, 3]              backtracking: the branch is abandoned, the last open choice resumed
    work back: 16 - 5 = 11       backward chaining: a value derived from the goal and one number
    subgoal 11 from [7, 3]       subgoal setting: that value becomes the goal of a search over the rest
    7 + 3 = 10 -> [10]
    10 != 11
    back to [7, 3, 5]            (the subgoal failed: back to where it was set)
    7 * 3 = 21 -> [21, 5]
    21 - 5 = 16 -> [16]
    16 == 16                     the search ends because this check succeeded

Every step is whole, non-negative (zero excluded) and at most ``max_value`` (default ``MAX_VALUE``); expansion order is shuffled by
the caller's seeded ``random.Random``. After a subgoal is reached, the step that combines it with the number
set aside is written and checked against the enclosing goal. Behaviors switch independently: without
verification no check lines are written; without backtracking failed branches are searched but not written
(the text is then the solution path alone); subgoal and backward-chaining lines exist only when those
behaviors are on (with neither, no decompositions are tried). A failing trace comes from a search budget
(expanded nodes, or the character cap) that runs out: it ends with ``no solution found within budget`` and a
best-effort answer (the leaf closest to the target), never with a false check. The writer records the span
of every behavior line; ``count_search_behaviors`` recovers them, and checks each stated check and step
exactly, from any text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from cogrl.behaviors.catalog import PAPER_BEHAVIORS
from cogrl.behaviors.types import BEHAVIORS, BehaviorTags
from cogrl.envs import Trace

VERIFICATION, BACKTRACKING, SUBGOAL, BACKWARD = PAPER_BEHAVIORS  # what this writer can write
MAX_VALUE = 999
"""Largest intermediate value a step may produce (keeps numbers at most three characters)."""
MAX_NODES = 64
"""Default search budget: expansions (steps and decompositions) before the search gives up."""
MAX_CHARS = 2000
"""Default cap on a trace's thought, in characters (tiny models learn short traces)."""
TRIES = 8
"""Expansion orders tried before the writer gives up on a trace of the requested correctness."""
GIVE_UP = "no solution found within budget"
EXHAUSTED = "no solution found"


class _OutOfBudget(Exception):
    pass


@dataclass
class _Search:
    """One depth-first search writing its events; ``lines`` holds (text, behavior) for the written ones."""

    behaviors: frozenset[str]
    rng: random.Random
    max_nodes: int
    max_chars: int
    max_value: int = MAX_VALUE
    lines: list[tuple[str, str | None]] = field(default_factory=list)
    chars: int = 0
    nodes: int = 0
    best: tuple[int, str] | None = None

    def write(self, text: str, behavior: str | None = None) -> None:
        if self.chars + len(text) + 1 > self.max_chars:
            raise _OutOfBudget
        self.lines.append((text, behavior))
        self.chars += len(text) + 1

    def expand(self) -> None:
        if self.nodes >= self.max_nodes:
            raise _OutOfBudget
        self.nodes += 1

    def search(self, items: list[tuple[int, str]], goal: int, complete: bool) -> str | None:
        """The expression of a solution over ``items`` reaching ``goal``, or None when every move failed.
        ``complete``: ``items`` stand for all the task's numbers (its leaves are candidate answers)."""
        if len(items) == 1:
            return self.leaf(items[0], goal, complete)
        moves: list[tuple] = [("step", *move) for move in forward_moves(items, self.max_value)]
        if len(items) >= 3 and (SUBGOAL in self.behaviors or BACKWARD in self.behaviors):
            moves += [("split", *move) for move in decompositions(items, goal, self.max_value)]
        self.rng.shuffle(moves)
        for k, move in enumerate(moves):
            lines, chars = len(self.lines), self.chars
            if move[0] == "step":
                found = self.search(self.step(items, *move[1:]), goal, complete)
            else:
                found = self.split(items, goal, complete, *move[1:])
            if found is not None:
                return found
            if BACKTRACKING not in self.behaviors:
                del self.lines[lines:]
                self.chars = chars
            elif k + 1 < len(moves):
                self.write(f"back to {show(v for v, _ in items)}", BACKTRACKING)
        return None

    def leaf(self, item: tuple[int, str], goal: int, complete: bool) -> str | None:
        value, expr = item
        if complete and (self.best is None or abs(value - goal) < abs(self.best[0] - goal)):
            self.best = item
        if VERIFICATION in self.behaviors:
            self.write(f"{value} {'==' if value == goal else '!='} {goal}", VERIFICATION)
        return expr if value == goal else None

    def step(self, items: list[tuple[int, str]], i: int, j: int, op: str, result: int) -> list:
        """Write one forward step; returns the new items (the pair replaced by its result, first)."""
        self.expand()
        rest = [item for k, item in enumerate(items) if k not in (i, j)]
        self.write(f"{items[i][0]} {op} {items[j][0]} = {result} -> {show([result, *(v for v, _ in rest)])}")
        return [(result, f"({items[i][1]} {op} {items[j][1]})"), *rest]

    def split(
        self,
        items: list[tuple[int, str]],
        goal: int,
        complete: bool,
        k: int,
        op: str,
        inverse: str,
        need: int,
    ) -> str | None:
        """Set aside number ``k``, reach ``need`` from the rest, then combine: the subgoal is really pursued."""
        self.expand()
        rest = [item for m, item in enumerate(items) if m != k]
        if BACKWARD in self.behaviors:
            self.write(f"work back: {goal} {inverse} {items[k][0]} = {need}", BACKWARD)
        if SUBGOAL in self.behaviors:
            self.write(f"subgoal {need} from {show(v for v, _ in rest)}", SUBGOAL)
        sub = self.search(rest, need, complete=False)
        if sub is None:
            return None
        self.expand()
        self.write(f"{need} {op} {items[k][0]} = {goal} -> [{goal}]")
        return self.leaf((goal, f"({sub} {op} {items[k][1]})"), goal, complete)


def forward_moves(
    items: Sequence[tuple[int, str]], max_value: int = MAX_VALUE
) -> list[tuple[int, int, str, int]]:
    """(i, j, op, result) for every pair, larger operand first, with a whole result in 1..max_value;
    equal value pairs are tried once."""
    seen, out = set(), []
    for i in range(len(items)):
        for j in range(len(items)):
            a, b = items[i][0], items[j][0]
            if i == j or a < b or (a == b and i > j):
                continue
            for op in "+-*/":
                result = apply(op, a, b, max_value)
                if result is not None and (a, op, b) not in seen:
                    seen.add((a, op, b))
                    out.append((i, j, op, result))
    return out


def apply(op: str, a: int, b: int, max_value: int = MAX_VALUE) -> int | None:
    result = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b and a % b == 0 else 0}[op]
    return result if 0 < result <= max_value else None


def decompositions(
    items: Sequence[tuple[int, str]], goal: int, max_value: int = MAX_VALUE
) -> list[tuple[int, str, str, int]]:
    """(k, op, inverse, need): ``goal = need op items[k]``, with ``need`` whole, new and in range."""
    seen, out = set(), []
    for k, (n, _) in enumerate(items):
        for op, inverse in (("+", "-"), ("-", "+"), ("*", "/"), ("/", "*")):
            if op in "*/" and n == 1:
                continue
            need = apply(inverse, goal, n, max_value)
            if need is not None and need != goal and (n, op) not in seen:
                seen.add((n, op))
                out.append((k, op, inverse, need))
    return out


def fallback_answer(numbers: Sequence[int], target: int) -> str:
    """The best-effort answer when the search reached no leaf: the sum of the numbers, or their product when
    the sum happens to be the target (a failing trace must not land on a right answer by luck)."""
    op = " * " if sum(numbers) == target else " + "
    return "(" + op.join(str(n) for n in numbers) + ")"


def show(values) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def write_search_trace(
    numbers: Sequence[int],
    target: int,
    behaviors: frozenset[str],
    correct: bool,
    rng: random.Random,
    max_nodes: int = MAX_NODES,
    max_chars: int = MAX_CHARS,
    max_value: int = MAX_VALUE,
) -> Trace:
    """A search trace for one task. ``correct``: the search finds a solution within ``max_nodes`` and
    ``max_chars``; otherwise its budget is cut below what this expansion order needs, so it gives up.
    Steps whose result exceeds ``max_value`` are never taken (a smaller arithmetic for tiny models).
    Raises ValueError when no expansion order of ``TRIES`` gives the requested kind."""
    unknown = set(behaviors) - set(PAPER_BEHAVIORS)
    if unknown:
        raise ValueError(f"unknown behaviors {sorted(unknown)}; the writer knows {sorted(PAPER_BEHAVIORS)}")
    for _ in range(TRIES):
        seed = rng.getrandbits(64)
        full = _run(numbers, target, behaviors, seed, max_nodes, max_chars, max_value)
        if correct and full[1] is not None:
            return full[0]
        if not correct and full[1] is not None and full[1] >= 2:
            trace, _ = _run(
                numbers, target, behaviors, seed, rng.randint(full[1] // 2, full[1] - 1), max_chars, max_value
            )
            if not trace.correct:
                return trace
    kind = "solved" if correct else "failing"
    raise ValueError(f"no {kind} search trace for numbers {list(numbers)} and target {target}")


def _run(
    numbers: Sequence[int],
    target: int,
    behaviors: frozenset[str],
    seed: int,
    max_nodes: int,
    max_chars: int,
    max_value: int,
) -> tuple[Trace, int | None]:
    """The trace of one search and the expansions it used to succeed (None when it did not)."""
    search = _Search(frozenset(behaviors), random.Random(seed), max_nodes, max_chars, max_value)
    search.lines.append((f"{show(numbers)} -> {target}", None))
    try:
        answer = search.search([(n, str(n)) for n in numbers], target, complete=True)
        ending = None if answer else EXHAUSTED
    except _OutOfBudget:
        answer, ending = None, GIVE_UP
    if ending is not None:
        search.lines.append((ending, None))
        answer = search.best[1] if search.best else fallback_answer(numbers, target)
    text, instances = "", {b: [] for b in BEHAVIORS}
    for line, behavior in search.lines:
        text += "\n" if text else ""
        if behavior is not None:
            instances[behavior].append((len(text), len(text) + len(line)))
        text += line
    answer = answer[1:-1] if answer.startswith("(") else answer
    solved = ending is None
    spans = {b: tuple(s) for b, s in instances.items() if b in behaviors or s}
    return Trace(
        thought=text, answer=answer, correct=solved, instances=spans
    ), search.nodes if solved else None


# ---------------------------------------------------------------------------------------------------------
# The exact counter
# ---------------------------------------------------------------------------------------------------------
COUNTER_MAX_CHARS = 20_000
"""Only this much of an output is read (a search trace is at most ``MAX_CHARS``)."""
COUNTER_MAX_LINES = 1_000
_NUM = r"(\d{1,6})"
_LIST = r"\[(\d{1,6}(?:, \d{1,6}){0,7})\]"
_STEP = re.compile(rf"{_NUM} ([-+*/]) {_NUM} = {_NUM} -> {_LIST}")
_CHECK = re.compile(rf"{_NUM} (==|!=) {_NUM}")
_BACK = re.compile(rf"back to {_LIST}")
_SUBGOAL = re.compile(rf"subgoal {_NUM} from {_LIST}")
_BACKWARD = re.compile(rf"work back: {_NUM} ([-+*/]) {_NUM} = {_NUM}")


@dataclass(frozen=True)
class SearchCounts:
    """Exact counts of the search format's markers in one output.

    A check is true when its comparison holds, its left side is the result of the step just before it (when
    a step is just before it) and its right side is the target or a goal stated earlier (subgoal or
    work-back value). A false success claim is an ``==`` check that is not true. Steps and work-back lines
    are re-done with exact arithmetic. ``truncated``: the output was longer than the counter reads.
    """

    tags: BehaviorTags
    true_checks: int
    false_checks: int
    false_success_claims: int
    steps: int
    false_steps: int
    gave_up: bool
    truncated: bool


def _exact(a: str, op: str, b: str) -> Fraction | None:
    x, y = Fraction(int(a)), Fraction(int(b))
    if op == "/":
        return None if y == 0 else x / y
    return {"+": x + y, "-": x - y, "*": x * y}[op]


def count_search_behaviors(text: str, target: int) -> SearchCounts:
    """Count the behaviors of an output in the search format by parsing its lines (never raises; work is
    bounded by ``COUNTER_MAX_CHARS`` and ``COUNTER_MAX_LINES``, each line matched by anchored regexes
    whose numbers have at most six digits)."""
    truncated = len(text) > COUNTER_MAX_CHARS
    text = text[:COUNTER_MAX_CHARS]
    spans: dict[str, list[tuple[int, int]]] = {b: [] for b in BEHAVIORS}
    goals, last_result = {target}, None
    true_checks = false_checks = false_success = steps = false_steps = 0
    gave_up = False
    start = 0
    for n_line, line in enumerate(text.split("\n")):
        if n_line >= COUNTER_MAX_LINES:
            truncated = True
            break
        span, start = (start, start + len(line)), start + len(line) + 1
        previous, last_result = last_result, None
        if match := _STEP.fullmatch(line):
            steps += 1
            a, op, b, result = match.group(1, 2, 3, 4)
            false_steps += _exact(a, op, b) != int(result)
            last_result = int(result)
        elif match := _CHECK.fullmatch(line):
            spans[VERIFICATION].append(span)
            left, op, right = int(match[1]), match[2], int(match[3])
            holds = (left == right) == (op == "==")
            true = holds and previous in (None, left) and right in goals
            true_checks += true
            false_checks += not true
            false_success += op == "==" and not true
        elif _BACK.fullmatch(line):
            spans[BACKTRACKING].append(span)
        elif match := _SUBGOAL.fullmatch(line):
            spans[SUBGOAL].append(span)
            goals.add(int(match[1]))
        elif match := _BACKWARD.fullmatch(line):
            spans[BACKWARD].append(span)
            a, op, b, result = match.group(1, 2, 3, 4)
            false_steps += _exact(a, op, b) != int(result)
            goals.add(int(result))
        elif line.strip() == GIVE_UP:
            gave_up = True
    tags = BehaviorTags(
        counts={b: len(s) for b, s in spans.items()},
        spans={b: tuple(s) for b, s in spans.items()},
        source="search:v1",
    )
    return SearchCounts(
        tags, true_checks, false_checks, false_success, steps, false_steps, gave_up, truncated
    )
