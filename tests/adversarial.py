"""Adversarial model output for the work-budget properties of every function that reads it (importable as
`adversarial`): the regex tagger, target inference and the judge's count parser (tests/behaviors), and the
Countdown scorer (tests/countdown).

A text is a few pieces, each a trigger the readers look for ("wait", "target is", "=", "COUNT:",
"<answer>" ...), a flood of one character (spaces, digits, brackets, NULs, combining marks, right-to-left
marks, astral and fullwidth characters ...), a trigger repeated thousands of times, deep bracket nesting or
a number of thousands of digits: the shapes that make a regex backtrack, a rescan go quadratic or ``int()``
raise. Strings are built by repetition, so examples of up to ``MAX_TEXT_CHARS`` cost hypothesis nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

MAX_TEXT_CHARS = 200_000
PER_CALL_LIMIT_S = 2.0
"""Generous: the readers take well under 0.1 s on any of these texts; the quadratic code took minutes."""

TRIGGERS = (
    "wait",
    "Wait, no",
    "let me check",
    "let me verify",
    "Let's try",
    "target",
    "target is ",
    "the target is 32",
    "make 32",
    "to get 32",
    "we need ",
    "so we need",
    "=",
    "= 32",
    "(",
    ")",
    "!=",
    "≠",
    "not ",
    "doesn't",
    "that's wrong",
    "too big",
    "oops",
    "Alternatively",
    "what about",
    "32",
    "0",
    "1+1",
    "30+25=55",
    "8 * 4 = 32 ✓",
    "32 = 8 * 4",
    "32 / 4 = 8",
    "is",
    "which means",
    "COUNT: ",
    "count = ",
    "**Count:** ",
    "instances",
    "distinct instances",
    "<answer>",
    "</answer>",
    "<answer>(1+2)*3</answer>",
)
FLOOD_CHARACTERS = (
    " ",
    "\n",
    "\t",
    "0",
    "1",
    "9",
    ".",
    ",",
    "(",
    ")",
    "=",
    "+",
    "*",
    "a",
    "\x00",
    "\u0301",  # combining acute accent
    "\u202e",  # right-to-left override
    "\u05d0",  # Hebrew alef
    "\U0001d7d8",  # mathematical double-struck digit zero: an astral decimal digit
    "\U0001f600",  # an astral emoji
    "３",  # fullwidth digit three
    "٣",  # Arabic-Indic digit three
    "é",
    "İ",  # lower-cases to two characters
    "ſ",  # long s: case-folds to "s"
    "\u212a",  # Kelvin sign: case-folds to "k"
)


@st.composite
def adversarial_texts(draw: st.DrawFn) -> str:
    """One adversarial text of at most ``MAX_TEXT_CHARS`` characters."""
    pieces = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(("trigger", "flood", "repeat", "nest", "number")))
        if kind == "trigger":
            pieces.append(draw(st.sampled_from(TRIGGERS)))
        elif kind == "flood":
            pieces.append(draw(st.sampled_from(FLOOD_CHARACTERS)) * draw(st.integers(1, 70_000)))
        elif kind == "repeat":
            unit = draw(st.sampled_from(TRIGGERS)) + draw(st.sampled_from(("", " ", "\n", ", ", "  ")))
            pieces.append(unit * draw(st.integers(1, 60_000 // len(unit))))
        elif kind == "nest":
            depth = draw(st.integers(1, 30_000))
            opening, closing = draw(st.sampled_from(("()", "[]", "{}")))
            pieces.append(opening * depth + draw(st.sampled_from(("1", "32", "1+2", ""))) + closing * depth)
        else:
            digits = draw(st.sampled_from("0123456789３٣")) * draw(st.integers(1, 12_000))
            pieces.append(digits + draw(st.sampled_from(("", ".5", " = 32", " instances"))))
        pieces.append(draw(st.sampled_from(("", " ", "\n"))))
    return "".join(pieces)[:MAX_TEXT_CHARS]


T = TypeVar("T")


def bounded_call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``function`` and check it returned within ``PER_CALL_LIMIT_S`` (it must also not raise)."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    elapsed = time.perf_counter() - start
    assert elapsed < PER_CALL_LIMIT_S, f"{getattr(function, '__qualname__', function)} took {elapsed:.2f} s"
    return result
