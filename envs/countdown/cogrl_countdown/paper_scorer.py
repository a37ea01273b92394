"""The paper's Countdown reward, decision for decision, without its ``eval``.

Gandhi et al. (2025) trained with TinyZero's reward function (``verl/utils/reward_score/countdown.py`` in
kanishkg/cognitive-behaviors). Its decisions, all reproduced here:

1. It reads the decoded prompt *and* response. Text up to the first ``Assistant:`` (else the first
   ``<|im_start|>assistant``) is dropped; with neither marker the reward is 0.
2. Only the **last line** of the rest is read (split on ``\\n``). In it, the last match of the non-greedy
   ``<answer>(.*?)</answer>`` is the answer (stripped); none: reward 0. An answer followed by a newline and
   anything else, or spread over several lines, gets 0.
3. The digit runs of the answer (``\\d+``: any Unicode decimal digit) must be the given numbers as a
   multiset (compared as integers, so ``05`` is 5 and ``2.5`` uses 2 and 5); else format credit.
4. The answer must consist of digits, ``+ - * / ( ) .`` and whitespace, and is then passed to Python's
   ``eval``, so everything Python makes of those characters counts: unary minus and plus (``-3 + 5``),
   ``**`` (power), ``//`` (floor division), float literals (``1.``, ``.5``), true division in floats. A
   syntax or runtime error (division by zero, overflow, a call such as ``2(3)``) gets format credit.
5. The value is correct when ``abs(value - target) < 1e-5`` (float tolerance; a complex value, from a
   negative base to a fractional power, is compared by its modulus).

Nothing here evaluates model output as code: a single-pass tokenizer and shunting-yard parser accept exactly
the expressions CPython's ``eval`` accepts over that character set (number literal rules, ``\\r`` as a newline
that only parentheses may hold, at most 200 nested parentheses, empty ``()`` and ``...`` that can never be a
number), and the arithmetic is Python's own operators on Python numbers, so values (int, float, complex),
rounding and errors are the ones ``eval`` gets. Bounds, where the paper's ``eval`` would instead run for
minutes or exhaust memory: at most ``MAX_TOKENS`` tokens (CPython's compiler fails at 2,000-3,000 chained
operators anyway) and integers of at most ``MAX_INT_BITS`` bits (reason ``too_big``: ``9 ** 9 ** 9`` would
take the paper's scorer hours). Extraction is linear (``str.find``), where the paper's regex is quadratic
on a line of many unclosed answer tags. Digit runs are compared as integers of any length (the paper ran on
Python 3.9, which has no limit on ``int()`` of a long string).

Reasons: ``no_marker`` and ``no_answer`` (reward 0), and with format credit ``wrong_numbers`` (step 3),
``unparsable`` (Python would raise a SyntaxError, or the value could never be a number), ``eval_error``
(a runtime error), ``too_long``, ``too_big`` (our bounds), ``wrong_value``; ``correct`` gets the full reward.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from cogrl.envs import Score

MARKERS = ("Assistant:", "<|im_start|>assistant")
"""Where the paper's scorer starts reading, tried in this order (its base and Qwen-instruct templates)."""
OPEN, CLOSE = "<answer>", "</answer>"
TOLERANCE = 1e-5
"""The paper's float tolerance on ``abs(value - target)``."""
MAX_TOKENS = 1_000
"""Longer answers are not evaluated (reason ``too_long``); a Countdown answer has a few dozen tokens."""
MAX_PARENS = 200
"""CPython's tokenizer refuses deeper nesting ("too many nested parentheses"), so the paper's scorer did."""
MAX_INT_BITS = 131_072
"""An integer result past this many bits is not computed (reason ``too_big``); ``99 ** 99 ** 2`` (65k bits)
still is, and at most a few such operations fit in an answer (every literal must be a given number)."""

_ALLOWED = re.compile(r"[\d+\-*/().\s]+")  # the paper's character check (Unicode \d and \s, as in Python)
_DIGITS = re.compile(r"\d+")
_EVAL_SPACE = frozenset(" \t\f")  # what CPython's tokenizer skips between tokens
_BINARY: dict[str, tuple[int, Callable[[Any, Any], Any]]] = {
    "+": (1, operator.add),
    "-": (1, operator.sub),
    "*": (2, operator.mul),
    "/": (2, operator.truediv),
    "//": (2, operator.floordiv),
    "**": (4, operator.pow),
}
_UNARY_PRECEDENCE = 3  # Python: binary + - < * / // < unary + - < ** (whose right operand may be unary)
_UNARY = {"u+": operator.pos, "u-": operator.neg}


class _Reject(Exception):
    """The answer gets format credit for this reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def extract_answer(text: str) -> str | None:
    """What the paper's ``extract_solution`` returns for a decoded prompt + response: the stripped answer of
    the last line, or None (no marker, or no answer span on the last line)."""
    return _extract(text)[0]


def score(
    text: str,
    numbers: Sequence[int],
    target: int,
    format_reward: float = 0.1,
    correct_reward: float = 1.0,
) -> Score:
    """The paper's reward for ``text``, the decoded prompt followed by the response; never raises."""
    answer, reason = _extract(text)
    if answer is None:
        return Score(0.0, reason, False)
    try:
        if not _same_numbers(answer, numbers):
            raise _Reject("wrong_numbers")
        value = evaluate(answer)
        if not abs(value - target) < TOLERANCE:
            raise _Reject("wrong_value")
    except _Reject as rejected:
        return Score(format_reward, rejected.reason, False)
    return Score(correct_reward, "correct", True)


def answer_value(text: str, numbers: Sequence[int]) -> Any | None:
    """The number the paper's scorer compares with the target for a decoded prompt + response (int, float or
    complex, as ``eval`` makes it), or None where it finds no answer or gives only format credit for a
    malformed one (wrong numbers, unparsable, a runtime error, our bounds)."""
    answer = _extract(text)[0]
    if answer is None or not _same_numbers(answer, numbers):
        return None
    try:
        return evaluate(answer)
    except _Reject:
        return None


def _extract(text: str) -> tuple[str | None, str]:
    for marker in MARKERS:
        at = text.find(marker)
        if at >= 0:
            break
    else:
        return None, "no_marker"
    line_start = max(text.rfind("\n"), at + len(marker) - 1) + 1
    line = text[line_start:]
    answer, start = None, 0
    while (open_at := line.find(OPEN, start)) >= 0:
        close_at = line.find(CLOSE, open_at + len(OPEN))
        if close_at < 0:
            break  # no later opening tag can find a closing one either
        answer = line[open_at + len(OPEN) : close_at]
        start = close_at + len(CLOSE)
    if answer is None:
        return None, "no_answer"
    return answer.strip(), "answer"


def _same_numbers(answer: str, numbers: Sequence[int]) -> bool:
    """The paper's ``validate_equation``: the digit runs, as integers, are the given numbers as a multiset."""
    found = Counter((run.translate(_ASCII_DIGITS).lstrip("0") or "0") for run in _DIGITS.findall(answer))
    return found == Counter(str(int(n)) for n in numbers)


class _AsciiDigits(dict):
    """``str.translate`` table mapping every Unicode decimal digit to its ASCII digit (``int()`` does too)."""

    def __missing__(self, code: int) -> int:
        import unicodedata

        self[code] = value = ord("0") + unicodedata.decimal(chr(code))
        return value


_ASCII_DIGITS = _AsciiDigits()


def evaluate(answer: str) -> Any:
    """The number CPython's ``eval`` makes of a stripped answer, computed without ``eval``; raises `_Reject`
    with ``unparsable`` where ``eval`` would raise a SyntaxError or return something that is not a number,
    ``eval_error`` for its runtime errors and ``too_long`` / ``too_big`` past our bounds."""
    if not _ALLOWED.fullmatch(answer):
        raise _Reject("unparsable")
    return _run(_postfix(answer))


def _postfix(answer: str) -> list[Any]:
    """Tokenize and parse in one pass, as CPython would: the expression in postfix (numbers and operators)."""
    out: list[Any] = []
    ops: list[str] = []
    depth = tokens = i = 0
    want_operand = True
    n = len(answer)
    while i < n:
        char = answer[i]
        if char in _EVAL_SPACE or (char == "\r" and depth):
            i += 1
            continue
        if not char.isascii() or char in "\r\x0b\x1c\x1d\x1e\x1f":
            raise _Reject("unparsable")  # a newline outside parentheses ends the expression; the rest is
            # never valid source (non-ASCII digits and spaces, vertical tab, information separators)
        tokens += 1
        if tokens > MAX_TOKENS:
            raise _Reject("too_long")
        if _digit(char) or (char == "." and i + 1 < n and _digit(answer[i + 1])):
            if not want_operand:
                raise _Reject("unparsable")  # two numbers in a row
            i, value = _number(answer, i)
            out.append(value)
            want_operand = False
            continue
        if char == "(":
            if not want_operand:
                raise _Reject("eval_error")  # a call, e.g. 2(3): valid syntax, a TypeError at run time
            depth += 1
            if depth > MAX_PARENS:
                raise _Reject("unparsable")
            ops.append("(")
            i += 1
            continue
        if char == ")":
            if want_operand:
                raise _Reject("unparsable")  # "()" is an empty tuple (never a number), "(1+)" bad syntax
            while ops and ops[-1] != "(":
                out.append(ops.pop())
            if not ops:
                raise _Reject("unparsable")
            ops.pop()
            depth -= 1
            i += 1
            continue
        op = answer[i : i + 2] if answer[i : i + 2] in ("**", "//") else char
        i += len(op)
        if want_operand:
            if op not in "+-":
                raise _Reject("unparsable")  # "..." (Ellipsis, never a number), "*3", "2 * * 3"
            ops.append("u" + op)
            continue
        if op not in _BINARY:
            raise _Reject("unparsable")  # a lone "."
        precedence = _BINARY[op][0]
        while ops and ops[-1] != "(" and _precedence(ops[-1]) >= precedence and op != "**":
            out.append(ops.pop())
        ops.append(op)
        want_operand = True
    if want_operand or "(" in ops:
        raise _Reject("unparsable")
    out.extend(reversed(ops))
    return out


def _digit(char: str) -> bool:
    return "0" <= char <= "9"  # CPython's number literals take ASCII digits only


def _precedence(op: str) -> int:
    return _UNARY_PRECEDENCE if op in _UNARY else _BINARY[op][0]


def _number(answer: str, i: int) -> tuple[int, int | float]:
    """A number literal at ``i`` (CPython's rules over digits and dots): its end and value."""
    start = i
    n = len(answer)
    while i < n and _digit(answer[i]):
        i += 1
    if i < n and answer[i] == ".":
        i += 1
        while i < n and _digit(answer[i]):
            i += 1
        return i, float(answer[start:i])
    digits = answer[start:i]
    if digits[0] == "0" and digits.strip("0"):
        raise _Reject("unparsable")  # "leading zeros in decimal integer literals are not permitted"
    return i, int(digits.lstrip("0") or "0")  # every digit run is a given number (checked first): short


def _run(postfix: list[Any]) -> Any:
    """Evaluate with Python's operators, refusing integer results past ``MAX_INT_BITS`` before computing."""
    stack: list[Any] = []
    try:
        for item in postfix:
            if not isinstance(item, str):
                stack.append(item)
            elif item in _UNARY:
                stack.append(_UNARY[item](stack.pop()))
            else:
                b = stack.pop()
                a = stack.pop()
                _check_size(item, a, b)
                stack.append(_BINARY[item][1](a, b))
    except (ArithmeticError, TypeError, ValueError):
        raise _Reject("eval_error") from None
    return stack[0]


def _check_size(op: str, a: Any, b: Any) -> None:
    if type(a) is not int or type(b) is not int:
        return  # floats and complex numbers have a fixed size; CPython raises or gives inf on overflow
    if op == "*" and a.bit_length() + b.bit_length() > MAX_INT_BITS:
        raise _Reject("too_big")
    if op == "**" and b > 0 and abs(a) > 1 and (b > MAX_INT_BITS or a.bit_length() * b > MAX_INT_BITS):
        raise _Reject("too_big")
