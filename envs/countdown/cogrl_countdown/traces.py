"""Synthetic Countdown reasoning traces whose behaviors are known by construction (for priming sets).

A trace narrates a small search: with backtracking it first tries one to three attempts that fail, says so
and goes back; then it writes the solver's solution. Each behavior is switched on or off independently:

- verification: failed attempts are compared with the target, the final answer is recomputed and checked;
- backtracking: failed attempts are abandoned out loud before the next one starts;
- subgoal setting: each attempt first states the intermediate value it aims for;
- backward chaining: each attempt starts from the target and works out what the last step needs.

Every sentence is drawn from several templates with random fillers, so a model learns the move and not a
fixed string; the writer records the character span of every behavior instance (``Trace.instances``).
For ``correct=False`` the search fails honestly, as the paper's natural failures do: the attempts run out,
the last one is the closest miss found (every number used once, no attempt written before it closer to the
target), its result is stated as computed, a verifying trace compares it with the target and finds the gap,
and the trace says that no solution was found within its budget before answering with that attempt. No
statement in it is false: no slipped step, no check that passes, no claim of success (``claims.check_prose``
finds none), so a model primed on it does not learn to announce successes it did not reach.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from cogrl.behaviors.catalog import PAPER_BEHAVIORS
from cogrl.envs import Trace
from cogrl_countdown.solver import solutions

VERIFICATION, BACKTRACKING, SUBGOAL, BACKWARD = PAPER_BEHAVIORS
WRITER_BEHAVIORS = frozenset(PAPER_BEHAVIORS)
"""What this writer can write: the paper's four (a behavior registered later is absent from its traces)."""
MAX_SOLUTIONS = 64
"""Solutions asked of the solver when the quick search finds none; the trace picks one at random."""
SEARCH_TRIES = 60
"""Random chain-shaped attempts tried for a solution before asking the exact solver (which is slower)."""


# ---------------------------------------------------------------------------------------------------------
# Expression trees
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """A leaf (``op`` is None, ``value`` a given number) or ``left op right``. Values are ints, or exact
    Fractions for the rare solver solution with a fractional intermediate (the two compare alike)."""

    value: int | Fraction
    op: str | None = None
    left: Node | None = None
    right: Node | None = None

    @property
    def is_leaf(self) -> bool:
        return self.op is None

    def leaves(self) -> list[int]:
        return [int(self.value)] if self.is_leaf else self.left.leaves() + self.right.leaves()

    def steps(self) -> list[Node]:
        """The inner nodes in the order they are computed (post-order)."""
        return [] if self.is_leaf else self.left.steps() + self.right.steps() + [self]

    def expression(self, top: bool = True) -> str:
        if self.is_leaf:
            return str(int(self.value))
        text = f"{self.left.expression(False)} {self.op} {self.right.expression(False)}"
        return text if top else f"({text})"


def whole_result(op: str, a: int, b: int) -> int | None:
    """``a op b`` for whole numbers, or None unless the result is a positive whole number (the attempts a
    trace narrates keep to whole numbers; int arithmetic keeps the random search cheap)."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b if a > b else None
    if op == "*":
        return a * b
    return a // b if b and a % b == 0 else None


def parse_solution(text: str) -> Node:
    """Parse a solver expression into a tree with the ``ast`` parser (never evaluated as code)."""
    ops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

    def build(node: ast.AST) -> Node:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Node(Fraction(node.value))
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            left, right, op = build(node.left), build(node.right), ops[type(node.op)]
            a, b = left.value, right.value
            if op == "/" and b == 0:
                raise ValueError(f"division by zero in {text!r}")
            value = {"+": a + b, "-": a - b, "*": a * b}.get(op) if op != "/" else a / b
            return Node(value, op, left, right)
        raise ValueError(f"not a Countdown expression: {text!r}")

    return build(ast.parse(text.split("=")[0].strip(), mode="eval").body)


def is_chain(tree: Node) -> bool:
    """True when every step combines the running value with one given number (reads as a single line)."""
    if tree.is_leaf:
        return True
    if tree.left.is_leaf and tree.right.is_leaf:
        return True
    return (tree.left.is_leaf or tree.right.is_leaf) and is_chain(
        tree.left if tree.right.is_leaf else tree.right
    )


def is_whole(tree: Node) -> bool:
    return all(step.value > 0 and step.value.denominator == 1 for step in tree.steps())


def passes_target(tree: Node, target: int) -> bool:
    """True when a step before the last already equals the target (it would read as a finished answer)."""
    return any(step.value == target for step in tree.steps()[:-1])


def random_chain(numbers: Sequence[int], rng: random.Random) -> Node | None:
    """A random chain-shaped attempt over all numbers with whole positive intermediates (None if stuck)."""
    order = list(numbers)
    rng.shuffle(order)
    current = Node(order[0])
    for number in order[1:]:
        leaf = Node(number)
        options = []
        for op in "+-*/":
            for left, right in ((current, leaf), (leaf, current)):
                value = whole_result(op, left.value, right.value)
                if value is not None and not (op in "*/" and right.value == 1):
                    options.append((op, left, right, value))
        if not options:
            return None
        op, left, right, value = rng.choice(options)
        current = Node(value, op, left, right)
    return current


# ---------------------------------------------------------------------------------------------------------
# Attempts: the unit a trace is made of
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    """One line of search: a tree, whether it reaches the target, and the value its last step needs.

    ``unknown`` is the side of the last step that the attempt still has to build, ``known`` the other side;
    ``need`` is what ``unknown`` must equal for the last step to land on the target (backward chaining).
    """

    tree: Node
    success: bool
    unknown: Node
    known: Node
    need: Fraction

    @property
    def unknown_is_left(self) -> bool:
        return self.tree.left is self.unknown


def sides(tree: Node) -> tuple[Node, Node]:
    """(unknown, known) of the last step: the side still to be built is the compound one (left on a tie)."""
    if tree.right.is_leaf or not tree.left.is_leaf:
        return tree.left, tree.right
    return tree.right, tree.left


def needed_value(target: int, op: str, known: Fraction, unknown_is_left: bool) -> Fraction:
    """What the unknown side must equal so that the last step gives the target."""
    t = Fraction(target)
    if op == "+":
        return t - known
    if op == "*":
        return t / known
    if op == "-":
        return t + known if unknown_is_left else known - t
    return t * known if unknown_is_left else known / t


def split_last_step(tree: Node, target: int) -> tuple[Node, Node, Fraction] | None:
    """The (unknown, known, need) of the last step, or None if the needed value is not a whole number."""
    if tree.is_leaf:
        return None
    unknown, known = sides(tree)
    need = needed_value(target, tree.op, known.value, unknown is tree.left)
    if need <= 0 or need.denominator != 1:
        return None
    return unknown, known, need


def failed_attempt(
    numbers: Sequence[int], target: int, rng: random.Random, tried: set[tuple]
) -> Attempt | None:
    """A random attempt that misses the target (never passing through it), unlike every attempt in
    ``tried``: a search that repeats itself is a loop, not backtracking."""
    for _ in range(40):
        tree = random_chain(numbers, rng)
        if tree is None or any(step.value == target for step in tree.steps()):
            continue
        split = split_last_step(tree, target)
        if split is None or split[0].value == split[2]:
            continue
        attempt = Attempt(tree, False, *split)
        if not tried & signatures(attempt):
            return attempt
    return None


def signatures(attempt: Attempt) -> set[tuple]:
    """What makes two attempts read alike: the same expression, or the same last step from the target."""
    return {
        ("expression", attempt.tree.expression()),
        ("last step", attempt.tree.op, attempt.known.value, attempt.unknown_is_left),
    }


def solution_attempt(
    numbers: Sequence[int], target: int, rng: random.Random, reference: str | None = None
) -> Attempt:
    """A correct attempt: a random chain-shaped search finds one in most tasks (cheap); otherwise the
    task's reference solution or the exact solver's, preferring whole-number chains."""
    for _ in range(SEARCH_TRIES):
        tree = random_chain(numbers, rng)
        if tree is not None and tree.value == target and not passes_target(tree, target):
            return attempt_for(tree)
    texts = [reference] if reference else []
    trees = [parse_solution(text) for text in texts]
    if not any(is_whole(t) and is_chain(t) for t in trees):
        trees += [parse_solution(text) for text in solutions(list(numbers), target, limit=MAX_SOLUTIONS)]
    if not trees:
        raise ValueError(f"no solution for numbers {list(numbers)} and target {target}")
    whole = [t for t in trees if is_whole(t)]
    tiers = (
        [t for t in whole if is_chain(t) and not passes_target(t, target)],
        [t for t in whole if not passes_target(t, target)],
        whole,
        trees,
    )
    return attempt_for(rng.choice(next(tier for tier in tiers if tier)))


def attempt_for(tree: Node) -> Attempt:
    """A successful attempt along ``tree``."""
    unknown, known = sides(tree)
    return Attempt(tree, True, unknown, known, unknown.value)


def near_miss_attempt(
    numbers: Sequence[int], target: int, rng: random.Random, whole_need: bool = False
) -> Attempt:
    """The closest of some random attempts that miss the target (an honest failure's answer), as a failed
    attempt whose ``need`` is what its last step really needs; ``whole_need``: only attempts whose need is a
    positive whole number (a backward-chaining trace states it)."""
    candidates = [random_chain(numbers, rng) for _ in range(48)]
    misses = [t for t in candidates if t is not None and not any(s.value == target for s in t.steps())]
    if not misses:  # every random attempt passed through the target: fall back to plain sums and products
        misses = [t for t in fixed_attempts(numbers) if not any(s.value == target for s in t.steps())]
    attempts = [missed_attempt(t, target) for t in misses]
    attempts = [a for a in attempts if not whole_need or (a.need > 0 and a.need.denominator == 1)]
    if not attempts:
        raise ValueError(f"cannot write a wrong answer for numbers {list(numbers)} and target {target}")
    best = min(abs(a.tree.value - target) for a in attempts)
    return rng.choice([a for a in attempts if abs(a.tree.value - target) == best])


def missed_attempt(tree: Node, target: int) -> Attempt:
    """A failed attempt along ``tree``, with the value its last step would need to reach the target."""
    unknown, known = sides(tree)
    return Attempt(
        tree, False, unknown, known, needed_value(target, tree.op, known.value, unknown is tree.left)
    )


def fixed_attempts(numbers: Sequence[int]) -> list[Node]:
    """Left-to-right chains of one operation (all sums, all products, sum then times the last number)."""
    leaves = [Node(n) for n in numbers]
    out = []
    for ops in (["+"] * (len(leaves) - 1), ["*"] * (len(leaves) - 1), ["+"] * (len(leaves) - 2) + ["*"]):
        tree = leaves[0]
        for op, leaf in zip(ops, leaves[1:], strict=True):
            tree = Node(whole_result(op, tree.value, leaf.value), op, tree, leaf)
        out.append(tree)
    return out


# ---------------------------------------------------------------------------------------------------------
# Phrasing. Every slot has several templates; fillers are drawn at random.
# ---------------------------------------------------------------------------------------------------------
IMPERATIVES = {"+": "add {k}", "-": "subtract {k}", "*": "multiply by {k}", "/": "divide by {k}"}
IMPERATIVES_RIGHT = {
    "+": "add {k}",
    "-": "subtract it from {k}",
    "*": "multiply by {k}",
    "/": "divide {k} by it",
}
GERUNDS = {"+": "adding {k}", "-": "subtracting {k}", "*": "multiplying by {k}", "/": "dividing by {k}"}
GERUNDS_RIGHT = {
    "+": "adding {k}",
    "-": "subtracting it from {k}",
    "*": "multiplying by {k}",
    "/": "dividing {k} by it",
}
INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


def last_move(attempt: Attempt, forms: tuple[dict[str, str], dict[str, str]]) -> str:
    """How the last step uses the known side, e.g. "subtract 7" or "subtract it from 30"."""
    table = forms[0] if attempt.unknown_is_left else forms[1]
    return table[attempt.tree.op].format(k=number(attempt.known.value))


def derivation(attempt: Attempt, target: int) -> str:
    """The inverse step that yields the needed value, e.g. "22 - 7" (written, never evaluated)."""
    op, known = attempt.tree.op, number(attempt.known.value)
    if attempt.unknown_is_left or op in "+*":
        return f"{target} {INVERSE[op]} {known}"
    return f"{known} {op} {target}"


OPENINGS = [
    "The numbers are {nums} and the target is {target}.",
    "I have {nums} to work with, and the target is {target}.",
    "Numbers: {nums}. Target: {target}.",
    "Using {nums}, each once, I want to reach {target}.",
    "We are given {nums} and must reach {target}.",
    "Let me look at {nums} with target {target}.",
]
FIRST_LEADS = ["Let me try this.", "Try this:", "One option:", "Here is one try:"]
ATTEMPT_LEADS = [
    "Let me try this.",
    "Try this:",
    "How about this:",
    "Another idea:",
    "Next attempt:",
    "Okay, next.",
]
STEP_TEMPLATES = [
    "{a} {op} {b} = {r}.",
    "{a} {op} {b} gives {r}.",
    "{a} {op} {b} is {r}.",
    "Computing {a} {op} {b} = {r}.",
]
FINAL_STEP_TEMPLATES = [
    "Finally, {a} {op} {b}.",
    "The last step is {a} {op} {b}.",
    "That leaves {a} {op} {b} to finish.",
    "Then {a} {op} {b} completes it.",
]
CLOSINGS = [
    "So the answer is {expr}.",
    "The equation is {expr}.",
    "That gives the equation {expr}.",
    "Final expression: {expr}.",
    "So {expr} it is.",
]

GIVE_UP = [
    "I have not found a solution within my budget of attempts, so I will answer with my closest one.",
    "No solution found within my budget. I will give my closest attempt as the answer.",
    "I am out of attempts without a solution, so my answer is the closest equation I found.",
    "That uses up my budget and I have no solution; I will answer with the closest equation so far.",
]
"""An honest end of a failed search: no comparison with the target (that is verification, which only the
verification behavior writes), no claim that the answer works."""
GIVE_UP_CLOSINGS = [
    "Closest attempt (not a solution): {expr}.",
    "My best attempt, which is not a solution: {expr}.",
    "Answering with the closest attempt: {expr}.",
]
VERIFY_FAIL = [
    "Checking against the target: {value} is not {target}.",
    "That is {value}, which does not equal {target}.",
    "Let me check: {value} versus the target {target}, off by {diff}.",
    "{value} != {target}, so this misses the target by {diff}.",
    "Verify: {value} is {direction} than {target}, not equal to it.",
]
VERIFY_NEED_FAIL = [
    "Check: {value} is not {need}, so the last step would not hit {target}.",
    "That is {value} rather than {need}, so this cannot reach {target}.",
    "Let me verify: {value} versus the {need} required, off by {diff}.",
]
VERIFY_SUCCESS = [
    "Let me verify: {recompute}, which equals the target {target}.",
    "Checking: {recompute}. That matches the target of {target}.",
    "To confirm, {recompute}, and {target} is exactly the target.",
    "Verify: {recompute} = {target}, correct.",
    "Double-checking the arithmetic: {recompute}. Yes, it equals {target}.",
]
BACKTRACK_TEMPLATES = [
    "This path is a dead end, so let me go back and try a different combination.",
    "That approach fails. Backtracking to try another order.",
    "No good. Let me backtrack and start over with a different pair.",
    "This doesn't work, so I'll abandon it and go back to try something else.",
    "Scrap that idea; let me step back and try another way.",
    "That won't get there. Going back to try a different operation.",
]
SUBGOAL_TEMPLATES = [
    "Subgoal: first make {goal} from {parts}, then {finish}.",
    "Plan: first get {goal} using {parts}; after that, {finish}.",
    "Let me break this into steps: step one is to reach {goal} with {parts}, step two is to {finish}.",
    "An intermediate goal: build {goal} out of {parts} first, and then {finish}.",
    "First aim for {goal} from {parts}, then {finish}.",
]
BACKWARD_TEMPLATES = [
    "Working backwards from {target}: {target} = {equation}, so the rest must make {need}.",
    "Start from the target {target}. To reach it by {gerund}, the value before that must be {need}.",
    "Reasoning backward from {target}: {derivation} = {need}, which means {parts} must produce {need}.",
    "Thinking backwards: if the last move is {gerund}, the value before it has to be {need}.",
    "To get {target} I need {equation}, so the remaining numbers should make {need}.",
    "{target} can be written as {equation}; the other numbers must make {need}.",
]


def number(value: int | Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def join_numbers(values: Sequence[int]) -> str:
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class TraceBuilder:
    """Accumulates sentences and the character spans of the behavior instances among them."""

    def __init__(self) -> None:
        self.text = ""
        self.instances: dict[str, list[tuple[int, int]]] = {b: [] for b in sorted(WRITER_BEHAVIORS)}

    def add(self, sentence: str, behavior: str | None = None, sep: str = " ") -> None:
        if self.text:
            self.text += sep
        start = len(self.text)
        self.text += sentence
        if behavior is not None:
            self.instances[behavior].append((start, len(self.text)))


def step_sentence(step: Node, rng: random.Random, final: bool = False) -> str:
    """One computation; the final step of an answer names no result (stating that it hits the target is
    verification, which only the verification behavior does)."""
    templates = FINAL_STEP_TEMPLATES if final else STEP_TEMPLATES
    return rng.choice(templates).format(
        a=number(step.left.value), op=step.op, b=number(step.right.value), r=number(step.value)
    )


def write_attempt(
    out: TraceBuilder,
    attempt: Attempt,
    target: int,
    behaviors: frozenset[str],
    rng: random.Random,
    last: bool = False,
) -> None:
    """Narrate one attempt; a successful one is left at the target (closing and checks are the caller's).
    ``last``: a failed attempt the search ends on, written in full and not abandoned (the caller gives up)."""
    tree, unknown, known = attempt.tree, attempt.unknown, attempt.known
    parts = join_numbers(unknown.leaves())
    need, other = number(attempt.need), number(known.value)
    if BACKWARD in behaviors:
        fill = {
            "target": target,
            "need": need,
            "parts": parts,
            "equation": f"{need} {tree.op} {other}"
            if attempt.unknown_is_left
            else f"{other} {tree.op} {need}",
            "derivation": derivation(attempt, target),
            "gerund": last_move(attempt, (GERUNDS, GERUNDS_RIGHT)),
        }
        out.add(rng.choice(BACKWARD_TEMPLATES).format(**fill), BACKWARD)
    if SUBGOAL in behaviors:
        if BACKWARD in behaviors or attempt.success:
            goal, goal_parts, finish = (
                attempt.need,
                parts,
                last_move(attempt, (IMPERATIVES, IMPERATIVES_RIGHT)),
            )
            if not known.is_leaf:
                finish = f"combine it with {other} made from {join_numbers(known.leaves())}"
        else:  # a plan for a failed forward attempt: its first pairing, then the rest
            first = tree.steps()[0]
            goal, goal_parts = first.value, join_numbers(first.leaves())
            rest = list(tree.leaves())
            for n in first.leaves():
                rest.remove(n)
            finish = f"bring in {join_numbers(rest)}"
        out.add(
            rng.choice(SUBGOAL_TEMPLATES).format(goal=number(goal), parts=goal_parts, finish=finish), SUBGOAL
        )
    stop_early = not attempt.success and BACKWARD in behaviors and not last
    steps = tree.steps()
    if stop_early:
        steps = unknown.steps()
    for i, step in enumerate(steps):
        out.add(step_sentence(step, rng, final=attempt.success and i == len(steps) - 1))
    if attempt.success:
        return
    value = unknown.value if stop_early else tree.value
    goal = attempt.need if stop_early else Fraction(target)
    if VERIFICATION in behaviors:
        templates = VERIFY_NEED_FAIL if stop_early else VERIFY_FAIL
        out.add(
            rng.choice(templates).format(
                value=number(value),
                target=target,
                need=number(goal),
                diff=number(abs(value - goal)),
                direction="larger" if value > goal else "smaller",
            ),
            VERIFICATION,
        )
    if not last:
        out.add(rng.choice(BACKTRACK_TEMPLATES), BACKTRACKING)


def recompute(tree: Node, target: int) -> str:
    steps = tree.steps()
    sentences = [
        f"{number(s.left.value)} {s.op} {number(s.right.value)} = {number(s.value)}" for s in steps[:-1]
    ]
    last = steps[-1]
    sentences.append(f"{number(last.left.value)} {last.op} {number(last.right.value)} = {target}")
    return ", then ".join(sentences)


def write_countdown_trace(
    numbers: Sequence[int],
    target: int,
    behaviors: frozenset[str],
    correct: bool,
    rng: random.Random,
    reference: str | None = None,
) -> Trace:
    """Write one trace for a solvable task; ``behaviors`` is any subset of the four behavior names and
    ``reference`` an optional known solution (saves a solver call when the quick search finds none)."""
    unknown = set(behaviors) - WRITER_BEHAVIORS
    if unknown:
        raise ValueError(f"unknown behaviors {sorted(unknown)}; the writer knows {sorted(WRITER_BEHAVIORS)}")
    out = TraceBuilder()
    out.add(rng.choice(OPENINGS).format(nums=join_numbers(numbers), target=target))
    if correct:
        final = solution_attempt(numbers, target, rng, reference)
    else:
        final = near_miss_attempt(numbers, target, rng, whole_need=BACKWARD in behaviors)
    failed: list[Attempt] = []
    if BACKTRACKING in behaviors:
        tried = signatures(final)
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            attempt = failed_attempt(numbers, target, rng, tried)
            if attempt is None:
                break
            tried |= signatures(attempt)
            failed.append(attempt)
    if not correct and failed:  # a failing search ends on its closest attempt, even one found on the way
        closest = min(failed, key=lambda a: abs(a.tree.value - target))
        if abs(closest.tree.value - target) < abs(final.tree.value - target):
            failed[failed.index(closest)], final = final, closest
    for attempt in failed:
        out.add(rng.choice(ATTEMPT_LEADS if out.instances[BACKTRACKING] else FIRST_LEADS), sep="\n")
        write_attempt(out, attempt, target, behaviors, rng)
    if out.instances[BACKTRACKING]:
        out.add(rng.choice(ATTEMPT_LEADS), sep="\n")
    write_attempt(out, final, target, behaviors, rng, last=not correct)
    answer = final.tree.expression()
    if not correct:
        out.add(rng.choice(GIVE_UP))
        out.add(rng.choice(GIVE_UP_CLOSINGS).format(expr=answer), sep="\n")
    else:
        if VERIFICATION in behaviors:
            out.add(
                rng.choice(VERIFY_SUCCESS).format(recompute=recompute(final.tree, target), target=target),
                VERIFICATION,
            )
        out.add(rng.choice(CLOSINGS).format(expr=answer), sep="\n")
    instances = {b: tuple(spans) for b, spans in out.instances.items() if b in behaviors or spans}
    return Trace(thought=out.text, answer=answer, correct=correct, instances=instances)
