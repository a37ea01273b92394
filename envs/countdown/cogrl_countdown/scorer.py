"""The Countdown reward: exact, safe and fast.

The last ``<answer>...</answer>`` span of a completion is parsed by a hand-written shunting-yard parser
(never ``eval``) over non-negative integer literals, binary ``+ - * /`` and parentheses, and evaluated with
exact rationals. Input is bounded (answer length, nesting depth), the completion is scanned with ``rfind``
(linear, in C), and every literal is checked against the given numbers *before* any arithmetic, so no input
can hang, exhaust memory, raise or run code.

Reasons (one word each): ``no_answer`` (no complete answer span: reward 0), and with format credit
``empty``, ``too_long``, ``too_deep``, ``unparsable``, ``wrong_numbers``, ``div_by_zero``, ``wrong_value``,
``wrong_equals`` (a trailing ``= N`` with N not the target); ``correct`` gets the full reward.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from cogrl.envs import Score

OPEN, CLOSE = "<answer>", "</answer>"
MAX_ANSWER_CHARS = 512
"""Longer answers are not parsed (reason ``too_long``); a Countdown answer needs a few dozen characters. It
also bounds every integer the scorer converts (Python's ``int()`` refuses more than 4,300 digits)."""
MAX_DEPTH = 64
"""Deeper parenthesis nesting is not parsed (reason ``too_deep``)."""

_TOKEN = re.compile(r"[0-9]+|\S")
_ALIASES = str.maketrans({"×": "*", "÷": "/", "−": "-"})
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def extract_answer(completion: str) -> str | None:
    """The text of the last complete ``<answer>...</answer>`` span, or None when there is none."""
    end = completion.rfind(CLOSE)
    if end < 0:
        return None
    start = completion.rfind(OPEN, 0, end)
    if start < 0:
        return None
    return completion[start + len(OPEN) : end]


def score(
    completion: str,
    numbers: Sequence[int],
    target: int,
    format_reward: float = 0.1,
    correct_reward: float = 1.0,
) -> Score:
    """Reward one completion for the problem (``numbers``, ``target``); never raises on any string."""
    answer = extract_answer(completion)
    if answer is None:
        return Score(0.0, "no_answer", False)
    reason = check_answer(answer, numbers, target)
    if reason == "correct":
        return Score(correct_reward, reason, True)
    return Score(format_reward, reason, False)


def check_answer(answer: str, numbers: Sequence[int], target: int) -> str:
    """The one-word verdict on an answer expression (the text inside the answer tags)."""
    reading = _read(answer, numbers)
    if isinstance(reading, str):
        return reading
    value, claimed = reading
    if value != target:
        return "wrong_value"
    if claimed is not None and claimed != target:
        return "wrong_equals"
    return "correct"


def answer_value(completion: str, numbers: Sequence[int]) -> int | Fraction | None:
    """The exact value of the last answer span's expression when it is one (well formed, exactly the given
    numbers, no division by zero) and agrees with its own ``= N``, if it has one; None otherwise. The same
    reading as ``check_answer``: a completion is correct exactly when this is the target."""
    answer = extract_answer(completion)
    reading = None if answer is None else _read(answer, numbers)
    if reading is None or isinstance(reading, str):
        return None
    value, claimed = reading
    return value if claimed is None or claimed == value else None


def expression_value(expression: str) -> int | Fraction | None:
    """The exact value of an arithmetic expression in the answer grammar over any non-negative integers (no
    ``= N``, no check of which numbers it uses), or None when it has none: empty, longer than
    ``MAX_ANSWER_CHARS``, deeper than ``MAX_DEPTH``, unparsable, or dividing by zero. For re-doing the
    arithmetic a response states (``claims``) with the reward's own parser."""
    expression = expression.strip()
    if not expression or len(expression) > MAX_ANSWER_CHARS:
        return None
    postfix = _to_postfix(_TOKEN.findall(expression.translate(_ALIASES)))
    return None if isinstance(postfix, str) else _evaluate(postfix)


def _read(answer: str, numbers: Sequence[int]) -> str | tuple[int | Fraction, int | None]:
    """An answer expression's exact value and its claimed ``= N`` (None without one), or the reason it has no
    value (a failure reason of ``check_answer``)."""
    answer = answer.strip()
    if not answer:
        return "empty"
    if len(answer) > MAX_ANSWER_CHARS:
        return "too_long"
    answer = answer.translate(_ALIASES)
    claimed = None
    if "=" in answer:
        answer, _, rhs = answer.partition("=")
        rhs = rhs.strip()
        if not rhs.isascii() or not rhs.isdigit():  # also rejects "==" and a second "="
            return "unparsable"
        claimed = int(rhs)
    postfix = _to_postfix(_TOKEN.findall(answer))
    if isinstance(postfix, str):
        return postfix
    literals = sorted(t for t in postfix if type(t) is int)
    if literals != sorted(numbers):
        return "wrong_numbers"
    value = _evaluate(postfix)
    if value is None:
        return "div_by_zero"
    return value, claimed


def _to_postfix(tokens: list[str]) -> list[int | str] | str:
    """Shunting-yard with an operand/operator state machine: a postfix list, or the failure reason."""
    out: list[int | str] = []
    ops: list[str] = []
    depth = 0
    want_operand = True
    for tok in tokens:
        if want_operand:
            if "0" <= tok[0] <= "9":
                out.append(int(tok))
                want_operand = False
            elif tok == "(":
                depth += 1
                if depth > MAX_DEPTH:
                    return "too_deep"
                ops.append(tok)
            else:
                return "unparsable"  # unary minus, a second operator (**), words, ...
        elif tok in _PRECEDENCE:
            precedence = _PRECEDENCE[tok]
            while ops and ops[-1] != "(" and _PRECEDENCE[ops[-1]] >= precedence:
                out.append(ops.pop())
            ops.append(tok)
            want_operand = True
        elif tok == ")":
            while ops and ops[-1] != "(":
                out.append(ops.pop())
            if not ops:
                return "unparsable"
            ops.pop()
            depth -= 1
        else:
            return "unparsable"  # implicit multiplication, %, ^, ., ...
    if want_operand or "(" in ops:
        return "unparsable"
    out.extend(reversed(ops))
    return out


def _evaluate(postfix: list[int | str]) -> int | Fraction | None:
    """Exact value of a well-formed postfix expression; None on division by zero."""
    stack: list[int | Fraction] = []
    for tok in postfix:
        if type(tok) is int:
            stack.append(tok)
            continue
        b = stack.pop()
        a = stack.pop()
        if tok == "+":
            stack.append(a + b)
        elif tok == "-":
            stack.append(a - b)
        elif tok == "*":
            stack.append(a * b)
        elif b == 0:
            return None
        elif type(a) is int and type(b) is int and a % b == 0:
            stack.append(a // b)
        else:
            stack.append(Fraction(a) / b)
    return stack[0]
