"""The behavior catalog: one record per behavior, from which every other place derives what it needs.

A `Behavior` holds everything the lab knows of one behavior: its name, a one-line definition, the judge's
rubric per rubric set, the LLM writer's instructions for showing it and for avoiding it, and the column name
the paper's results files give it (Gandhi et al., 2025), where there is one. The tuple of names
(`BEHAVIORS`), the judge's prompts (`cogrl.behaviors.judge`), the writer's system prompts
(`cogrl.priming.llm`), the paper-format columns (`cogrl.behaviors.analysis`) and every per-behavior table are
read from here. Regex patterns stay in the pattern-set YAMLs (``cogrl/behaviors/patterns``), keyed by name.

The catalog starts with the paper's four behaviors (`PAPER_BEHAVIORS`). More are added with
`register_behavior`, by a user or by an environment when its module is imported (docs/behaviors.md, "Adding a
behavior"). The views `BEHAVIORS`, `PAPER_COLUMNS` and the judge's rubric sets are *live*: a module that did
``from cogrl.behaviors import BEHAVIORS`` at import sees behaviors registered later.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import overload

NAME = re.compile(r"[a-z][a-z0-9_]*")
"""A behavior's name: it becomes a YAML key, a JSON key, a CSV column and a metric name."""

DEFAULT_RUBRIC_SET = "cogrl"


@dataclass(frozen=True)
class Behavior:
    """One behavior. ``rubrics`` maps a rubric set (``cogrl``, ``paper``; `cogrl.config.JudgeConfig.rubrics`)
    to the judge's definition of the behavior; a set that does not define the behavior uses the ``cogrl``
    rubric, and without that, ``"<Label>: <definition>"``. ``show`` and ``avoid`` complete the LLM writer's
    sentences "In your reasoning: ..." and "Also: ...". ``paper_column`` is the name in the paper's results
    CSVs (``avg_<column>``, ``total_<column>``); without one the behavior's name is used."""

    name: str
    definition: str
    show: str
    avoid: str
    rubrics: Mapping[str, str] = field(default_factory=dict)
    paper_column: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise ValueError(
                f"behavior name {self.name!r}: lower-case letters, digits and _, starting a letter"
            )
        for key in ("definition", "show", "avoid"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key).strip():
                raise ValueError(f"behavior {self.name!r}: {key!r} must be a non-empty string")
        object.__setattr__(self, "rubrics", MappingProxyType(dict(self.rubrics)))

    @property
    def label(self) -> str:
        """The name as words ("backward chaining"), as prompts and plots write it."""
        return self.name.replace("_", " ")

    @property
    def column(self) -> str:
        """The paper-format column stem: ``paper_column``, or the name."""
        return self.paper_column or self.name

    def rubric(self, rubric_set: str = DEFAULT_RUBRIC_SET) -> str:
        """The judge's definition of this behavior in ``rubric_set`` (falling back as the class says)."""
        if rubric_set in self.rubrics:
            return self.rubrics[rubric_set]
        if DEFAULT_RUBRIC_SET in self.rubrics:
            return self.rubrics[DEFAULT_RUBRIC_SET]
        return f"{self.label[:1].upper()}{self.label[1:]}: {self.definition}"


# ----------------------------------------------------------------------------------------------------------
# The paper's four behaviors (section 3), in the order the paper plots them
# ----------------------------------------------------------------------------------------------------------
VERIFICATION = Behavior(
    name="verification",
    definition="checking a result against the target, or recomputing it",
    show="check results: compare each attempt's value with the target, and recompute the final "
    "equation to confirm it before answering",
    avoid="do not check or recompute results and do not compare values with the target",
    rubrics={
        "cogrl": (
            "Verification: the response checks a result it obtained, either by comparing it with the target "
            '("26 + 24 = 50, which is not 64") or by recomputing it to confirm it ("let me double-check: '
            '8 * 7 = 56, correct"). Count each separate check. Computing a value for the first time is not '
            "verification; checking it afterwards is."
        ),
        "paper": (
            'Verification: the response compares a result it reached with the target, explicitly ("that comes '
            'to 61, not 39", "since 25 is not 22") or implicitly, by a verdict on the result ("too high", "still '
            'too small", "this works!", "close, but no"). Count each such check, including a terse verdict right '
            "after a computation."
        ),
    },
    paper_column="verifications",
)
BACKTRACKING = Behavior(
    name="backtracking",
    definition="realising an approach fails and explicitly switching to another",
    show="when an attempt fails, say so plainly and go back to try a different combination; "
    "make at least one failed attempt before the one that works",
    avoid="do not abandon any attempt: go straight to a working equation",
    rubrics={
        "cogrl": (
            "Backtracking: the response realises that an approach or a partial computation does not work and "
            'explicitly abandons it to try a different one ("this gets too big, let\'s try another combination", '
            '"that doesn\'t work; instead ..."). Count each explicit switch after a stated failure. Listing '
            "attempts one after another without saying that one failed is not backtracking."
        ),
        "paper": (
            "Backtracking: the response sees that a path will not work and goes back to try a different one. In "
            "Countdown every new attempt at a combination of the numbers that does not use the result of the "
            "computation just before it counts, whether or not the response says the earlier attempt failed: in "
            '"25 + 30 = 55, 55 - 4 = 51, 30 * 4 = 120, 120 / 3 = 40, 25 - 3 = 22" the attempts starting 30 * 4 '
            "and 25 - 3 are two instances (55 - 4 and 120 / 3 build on the result before them). Count each "
            "restart."
        ),
    },
    paper_column="backtracking",
)
SUBGOAL_SETTING = Behavior(
    name="subgoal_setting",
    definition="stating an intermediate goal or plan",
    show="state intermediate goals before computing, e.g. 'first make 6 from 2 and 3, then multiply by 4'",
    avoid="do not announce plans or intermediate goals",
    rubrics={
        "cogrl": (
            "Subgoal setting: the response states an intermediate goal or a plan on the way to the target "
            '("first get close to 50, then adjust with the remaining numbers", "we need to make 4 from 8 and '
            '2"). Count each stated intermediate goal. Restating the overall task is not a subgoal.'
        ),
        "paper": (
            "Subgoal setting: the response breaks the problem into smaller intermediate goals, e.g. \"first I'll "
            'try to get close to half the target, then ...", "we need 4 from 8 and 2". Count each distinct '
            "intermediate goal."
        ),
    },
    paper_column="subgoals",
)
BACKWARD_CHAINING = Behavior(
    name="backward_chaining",
    definition="reasoning from the target back to what is needed",
    show="work backwards from the target, e.g. 'to reach 24 with 4 left over I need 6, since 24 / 4 = 6'",
    avoid="do not reason backwards from the target",
    rubrics={
        "cogrl": (
            "Backward chaining: the response reasons from the target back to what would be needed to reach it "
            '("to reach 75 we need 3 * 25, so we must make 3 from the other numbers", "75 is divisible by 25, '
            'so ..."). Count each instance of working back from the target (or from a subgoal) to its required '
            "inputs. Computing forward from the given numbers is not backward chaining."
        ),
        "paper": (
            "Backward chaining: the response starts from the target and works backwards towards the given "
            'numbers, e.g. "working back from 24: 24 / 2 = 12, so 12 * 2 = 24" or "the target is 22, and 22 + 3 '
            '= 25, so ...". Count each instance of reasoning from the target (or from a value it needs) to what '
            "would produce it."
        ),
    },
    paper_column="backwards",
)

PAPER_BEHAVIORS: tuple[str, ...] = ("verification", "backtracking", "subgoal_setting", "backward_chaining")
"""The paper's four, fixed whatever else is registered (its ``all_strategies`` condition, its CSV columns)."""

_CATALOG: dict[str, Behavior] = {
    b.name: b for b in (VERIFICATION, BACKTRACKING, SUBGOAL_SETTING, BACKWARD_CHAINING)
}
_NAMES: list[tuple[str, ...]] = [tuple(_CATALOG)]  # one cell, replaced on every change (read on hot paths)
_NAME_SET: list[frozenset[str]] = [frozenset(_CATALOG)]


def _changed() -> None:
    _NAMES[0] = tuple(_CATALOG)
    _NAME_SET[0] = frozenset(_CATALOG)


def register_behavior(behavior: Behavior) -> Behavior:
    """Add ``behavior`` to the catalog (after those already there) and return it.

    Registering an equal record again is a no-op (a module imported twice); a different record under a name
    already taken raises ``ValueError``. Every live view (`BEHAVIORS`, `PAPER_COLUMNS`, the judge's rubric
    sets) and every tagger, analysis and writer built afterwards includes it."""
    if not isinstance(behavior, Behavior):
        raise TypeError(f"register_behavior takes a Behavior, not {type(behavior).__name__}")
    existing = _CATALOG.get(behavior.name)
    if existing is not None:
        if existing == behavior:
            return existing
        raise ValueError(f"behavior {behavior.name!r} is already registered with a different definition")
    _CATALOG[behavior.name] = behavior
    _changed()
    return behavior


def unregister_behavior(name: str) -> None:
    """Remove a registered behavior (for tests and notebooks); the paper's four cannot be removed."""
    if name in PAPER_BEHAVIORS:
        raise ValueError(f"{name!r} is one of the paper's behaviors and cannot be removed")
    if _CATALOG.pop(name, None) is not None:
        _changed()


def get_behavior(name: str) -> Behavior:
    try:
        return _CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown behavior {name!r} (registered: {', '.join(_CATALOG)})") from None


def catalog() -> tuple[Behavior, ...]:
    """Every registered behavior, in registration order (the paper's four first)."""
    return tuple(_CATALOG.values())


def behavior_names() -> tuple[str, ...]:
    return _NAMES[0]


def behavior_name_set() -> frozenset[str]:
    return _NAME_SET[0]


# ----------------------------------------------------------------------------------------------------------
# Live views
# ----------------------------------------------------------------------------------------------------------
class LiveNames(Sequence[str]):
    """A tuple-like view whose items are recomputed from the catalog whenever it changes: iterate, index,
    ``len``, ``in``, compare with tuples and lists, print like a tuple. Cheap on hot paths (a cached tuple)."""

    def __init__(self, compute: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None) -> None:
        self._compute = compute
        self._cache: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    def _items(self) -> tuple[str, ...]:
        names = _NAMES[0]
        if self._compute is None:
            return names
        if self._cache is None or self._cache[0] is not names:
            self._cache = (names, tuple(self._compute(names)))
        return self._cache[1]

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self._items()[index]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[str]:
        return iter(_NAMES[0] if self._compute is None else self._items())

    def __contains__(self, item: object) -> bool:
        return item in (_NAME_SET[0] if self._compute is None else self._items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LiveNames):
            return self._items() == other._items()
        if isinstance(other, (tuple, list)):
            return list(self._items()) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return repr(self._items())


class LiveMapping(Mapping[str, str]):
    """A read-only mapping behavior name -> ``value(behavior)`` over the whole catalog, always current."""

    def __init__(self, value: Callable[[Behavior], str]) -> None:
        self._value = value

    def __getitem__(self, name: str) -> str:
        if name not in _CATALOG:
            raise KeyError(name)
        return self._value(_CATALOG[name])

    def __iter__(self) -> Iterator[str]:
        return iter(_NAMES[0])

    def __len__(self) -> int:
        return len(_CATALOG)

    def __repr__(self) -> str:
        return repr(dict(self))


BEHAVIORS = LiveNames()
"""Every registered behavior's name, the paper's four first, in the order the paper plots them."""

PAPER_COLUMNS: Mapping[str, str] = LiveMapping(lambda b: b.column)
"""Behavior -> column stem of the paper's results files (kanishkg/cognitive-behaviors, results/*.csv)."""


def rubric_set(name: str) -> Mapping[str, str]:
    """Behavior -> judge rubric in rubric set ``name``, for every registered behavior (a live view)."""
    return LiveMapping(lambda b: b.rubric(name))
