"""FROZEN REFERENCE COPY of ``cogrl/behaviors/regex_tagger.py`` as of commit d444999 (before the one-pass
rewrite), kept only as the named baseline of ``bench/behaviors.py regex``: the bench runs it side by side
with the current tagger and checks both produce identical tags. Load it with
``RegexTagger(Path(__file__).parent / "patterns_v1_before.yaml")``. Do not edit.

The regex behavior tagger: fast, deterministic, span-level counts of the four behaviors.

Patterns live in versioned YAML pattern sets (``cogrl/behaviors/patterns/v1.yaml``; format in
docs/behaviors.md). On top of plain regexes the tagger understands Countdown arithmetic through these
conventions:

* a named group ``target`` must equal the problem's target (the match is dropped when the target is unknown);
  ``cmp`` must equal the target when it is known and may be any number otherwise; ``other`` must *differ*
  from the target when it is known. So "8*4 = 32" is verification only when 32 is the target, and "we need
  to make 32" is not an intermediate goal when 32 is the target.
* ``requires: [prior_attempt]`` keeps a match only if some arithmetic (``30+25``, ``3 times 4``) was written
  since the previous instance of the same behavior (or since the start): "let me try another way" before
  anything was tried is not backtracking, and "That fails. Let's try ..." is one instance, not two.
* ``requires: [new_attempt]`` drops a match when the expression tried right after it repeats one written
  before it: a loop ("Let's try 30+25=55. Let's try 30+25=55.") is not a switch to another combination.
* ``prefilter: [words]`` runs a regex only on texts that contain one of the words (speed only).
* the target, when not given, is inferred from the text ("target is 32", "make 32", "reach 32").

Instances follow the paper's unit (instances per response): each distinct matched span counts once, and
matches of one behavior that overlap or touch (only spaces or punctuation between them) are merged.
Work is bounded: only the first ``max_chars`` characters are scanned, patterns use bounded quantifiers,
and each behavior's scan has a timeout after which its count is ``None`` (unknown), never a silent 0.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import regex
import yaml

from cogrl.behaviors.types import BEHAVIORS, BehaviorTags, Span
from cogrl.files import InputError

DEFAULT_PATTERN_SET = "v1"
"""The built-in pattern set used when none is given (``cogrl/behaviors/patterns/<name>.yaml``)."""

MAX_CHARS = 65_536
"""Characters of a response that are scanned; the rest is ignored (responses are ~1-4k characters)."""

CONDITIONS = frozenset({"prior_attempt", "new_attempt"})
NUMBER_GROUPS = ("target", "cmp", "other")
FLAGS = regex.IGNORECASE | regex.VERSION0

# Arithmetic as written in Countdown reasoning ("30+25", "(30 - 25 + 3) * 4", "3x4", "25 times 3"). Whole
# expressions are compared verbatim (spaces and brackets ignored) to tell a new attempt from a repeated one.
_EXPRESSION = regex.compile(
    r"\(*\d+(?:\.\d+)?\)*(?:\s*(?:[-+*/×÷−–]|x|times|plus|minus|divided\s+by|multiplied\s+by)\s*\(*\d+(?:\.\d+)?\)*)+",
    FLAGS,
)
_IGNORED_IN_EXPRESSIONS = str.maketrans("", "", " \t\n()")
_NEW_ATTEMPT_WINDOW = 160
"""How far after a match ``new_attempt`` looks for the expression that is being tried."""
# Target inference, most explicit phrasing first; the first sentence of a response usually restates the task.
_TARGET_EXPLICIT = regex.compile(
    r"\btarget(?:\s+(?:number|value))?\s*(?:is|of|=|:|equals|being)?\s*(?:the\s+number\s+)?(\d+)\b", FLAGS
)
_TARGET_VERB = regex.compile(
    r"\b(?:make|makes|making|reach|reaching|get|getting|obtain|create|equal|equals|equal\s+to|total(?:ling)?)"
    r"\s+(?:exactly\s+|the\s+number\s+)?(\d+)\b",
    FLAGS,
)
_TARGET_VERB_WINDOW = 400
"""Only the opening of a response is searched for "make 32": later "make 6 from 2 and 3" is a subgoal."""


@dataclass(frozen=True)
class Pattern:
    """One documented regex of a pattern set."""

    id: str
    regex: str
    note: str
    requires: tuple[str, ...] = ()
    prefilter: tuple[str, ...] = ()
    """Lower-case strings of which the text must contain one for the regex to be run at all (speed only:
    every match of the regex must contain one of them; tests/behaviors checks this on the eval set)."""


@dataclass(frozen=True)
class PatternSet:
    """A versioned set of patterns, one list per behavior."""

    version: str
    patterns: Mapping[str, tuple[Pattern, ...]] = field(default_factory=dict)


def builtin_pattern_path(name: str = DEFAULT_PATTERN_SET) -> Path:
    return Path(str(resources.files("cogrl.behaviors") / "patterns" / f"{name}.yaml"))


def load_pattern_set(source: str | Path | None = None) -> PatternSet:
    """Load a pattern set: ``None`` = the built-in default, a built-in name (``"v1"``), or a YAML path.

    A file either lists ``behaviors`` in full (replacement) or names a base with ``extends`` and lists
    ``add`` / ``remove`` per behavior. Faults raise ``InputError`` naming the file and the field.
    """
    if source is None:
        source = DEFAULT_PATTERN_SET
    path = Path(source)
    if not path.suffix and not path.exists():
        path = builtin_pattern_path(str(source))
    raw = _read_yaml(path)
    return _build_pattern_set(raw, path, seen=(path.resolve(),))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read pattern set ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise InputError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a pattern set must be a YAML mapping")
    return raw


def _build_pattern_set(raw: dict[str, Any], path: Path, seen: tuple[Path, ...]) -> PatternSet:
    allowed = {"version", "description", "behaviors", "extends", "add", "remove"}
    unknown = set(raw) - allowed
    if unknown:
        raise InputError(f"{path}: unknown key(s) {sorted(unknown)} (valid: {sorted(allowed)})")
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        raise InputError(f"{path}: 'version' must be a non-empty string (it names the tags' source)")
    if "extends" in raw:
        if "behaviors" in raw:
            raise InputError(f"{path}: use either 'behaviors' (replace) or 'extends' + add/remove, not both")
        base_path = Path(raw["extends"])
        if not base_path.suffix:
            base_path = builtin_pattern_path(str(raw["extends"]))
        elif not base_path.is_absolute():
            base_path = path.parent / base_path
        if base_path.resolve() in seen:
            raise InputError(f"{path}: 'extends' forms a cycle through {base_path}")
        base = _build_pattern_set(_read_yaml(base_path), base_path, seen + (base_path.resolve(),))
        patterns = {b: list(base.patterns.get(b, ())) for b in BEHAVIORS}
        for behavior, ids in _per_behavior(raw.get("remove"), path, "remove").items():
            known = {p.id for p in patterns[behavior]}
            for pattern_id in ids:
                if pattern_id not in known:
                    raise InputError(
                        f"{path}: remove.{behavior}: no pattern {pattern_id!r} in {base.version}"
                    )
            patterns[behavior] = [p for p in patterns[behavior] if p.id not in set(ids)]
        for behavior, items in _per_behavior(raw.get("add"), path, "add").items():
            patterns[behavior] += [
                _parse_pattern(item, path, f"add.{behavior}[{i}]") for i, item in enumerate(items)
            ]
    else:
        if not isinstance(raw.get("behaviors"), dict):
            raise InputError(f"{path}: needs 'behaviors' (a mapping behavior -> patterns) or 'extends'")
        patterns = {b: [] for b in BEHAVIORS}
        for behavior, items in _per_behavior(raw["behaviors"], path, "behaviors").items():
            patterns[behavior] = [
                _parse_pattern(item, path, f"behaviors.{behavior}[{i}]") for i, item in enumerate(items)
            ]
    for behavior, items in patterns.items():
        ids = [p.id for p in items]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise InputError(f"{path}: {behavior}: duplicate pattern id(s) {duplicates}")
    return PatternSet(version=version, patterns={b: tuple(patterns[b]) for b in BEHAVIORS})


def _per_behavior(block: Any, path: Path, key: str) -> dict[str, list[Any]]:
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise InputError(f"{path}: '{key}' must map behavior names to lists")
    out = {}
    for behavior, items in block.items():
        if behavior not in BEHAVIORS:
            raise InputError(f"{path}: {key}.{behavior}: unknown behavior (valid: {', '.join(BEHAVIORS)})")
        if not isinstance(items, list):
            raise InputError(f"{path}: {key}.{behavior} must be a list")
        out[behavior] = items
    return out


def _parse_pattern(item: Any, path: Path, where: str) -> Pattern:
    if not isinstance(item, dict):
        raise InputError(f"{path}: {where}: a pattern is a mapping with id, regex, note")
    valid = ("id", "regex", "note", "requires", "prefilter")
    unknown = set(item) - set(valid)
    if unknown:
        raise InputError(f"{path}: {where}: unknown key(s) {sorted(unknown)} (valid: {', '.join(valid)})")
    for key in ("id", "regex", "note"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise InputError(
                f"{path}: {where}.{key}: required, a non-empty string (note says what it catches)"
            )
    requires = item.get("requires", [])
    if not isinstance(requires, list) or not set(requires) <= CONDITIONS:
        raise InputError(f"{path}: {where} ({item['id']}).requires: a list drawn from {sorted(CONDITIONS)}")
    prefilter = item.get("prefilter", [])
    if not isinstance(prefilter, list) or not all(
        isinstance(w, str) and w and w == w.lower() for w in prefilter
    ):
        raise InputError(f"{path}: {where} ({item['id']}).prefilter: a list of non-empty lower-case strings")
    try:
        regex.compile(item["regex"], FLAGS)
    except regex.error as exc:
        raise InputError(f"{path}: {where} ({item['id']}).regex: invalid regex ({exc})") from None
    return Pattern(
        id=item["id"],
        regex=item["regex"],
        note=item["note"].strip(),
        requires=tuple(requires),
        prefilter=tuple(prefilter),
    )


_Compiled = tuple[tuple[Pattern, Any], ...]
"""The patterns of one behavior, each with its compiled regex."""


class RegexTagger:
    """Tag a response for the four behaviors with a pattern set (default: the built-in ``v1``).

    ``RegexTagger().tag(text, numbers=[30, 25, 3, 4], target=32)``; ``numbers`` and ``target`` are optional
    (the target is inferred from the text when missing; ``numbers`` keeps a given number from being read as
    the target). ``pattern_set`` is a built-in name, a YAML path (``behaviors.patterns`` of a recipe) or a
    loaded ``PatternSet``; ``max_chars`` caps the characters scanned; ``timeout_s`` is the time one behavior's
    scan may take (all its regex calls together) before its count becomes ``None``. Compiling takes a few
    milliseconds: build one tagger per process and reuse it.
    """

    def __init__(
        self,
        pattern_set: str | Path | PatternSet | None = None,
        max_chars: int = MAX_CHARS,
        timeout_s: float = 1.0,
    ) -> None:
        self.pattern_set = (
            pattern_set if isinstance(pattern_set, PatternSet) else load_pattern_set(pattern_set)
        )
        self.source = f"regex:{self.pattern_set.version}"
        self.max_chars = max_chars
        self.timeout_s = timeout_s
        self._compiled: dict[str, _Compiled] = {
            b: tuple((p, regex.compile(p.regex, FLAGS)) for p in self.pattern_set.patterns.get(b, ()))
            for b in BEHAVIORS
        }

    def tag(
        self, text: str, numbers: Sequence[int | float] | None = None, target: int | float | None = None
    ) -> BehaviorTags:
        text = text[: self.max_chars]
        if target is None:
            target = infer_target(text, numbers)
        facts = _TextFacts.of(text, target)
        counts: dict[str, int | None] = {}
        spans: dict[str, list[Span]] = {}
        for behavior in BEHAVIORS:
            try:
                found = self._scan(self._compiled[behavior], facts)
            except TimeoutError:
                counts[behavior], spans[behavior] = None, []
                continue
            spans[behavior] = _merge(found, text)
            counts[behavior] = len(spans[behavior])
        return BehaviorTags(counts=counts, spans=spans, source=self.source)

    def _scan(self, compiled: _Compiled, facts: _TextFacts) -> list[Span]:
        """Find every pattern's matches, then keep them in text order subject to ``prior_attempt``."""
        text = facts.text
        deadline = time.monotonic() + self.timeout_s
        candidates: list[tuple[int, int, Pattern]] = []
        for pattern, compiled_regex in compiled:
            if pattern.prefilter and not any(word in facts.lowered for word in pattern.prefilter):
                continue
            pos = 0
            while pos <= len(text):
                match = compiled_regex.search(text, pos, timeout=_remaining(deadline))
                if match is None:
                    break
                if facts.fits(pattern, match):
                    # A span also covers what a lookbehind captured ("8*4" in "(?<=(8*4) )= 32").
                    start = (
                        min(s for s, _ in match.regs if s >= 0) if compiled_regex.groups else match.start()
                    )
                    candidates.append((start, match.end(), pattern))
                    pos = max(match.end(), match.start() + 1)
                else:
                    pos = match.start() + 1
        candidates.sort(key=lambda c: (c[0], -c[1]))
        found: list[Span] = []
        last_end = 0
        for start, end, pattern in candidates:
            if "prior_attempt" in pattern.requires and not facts.attempted_between(last_end, start):
                continue
            found.append((start, end))
            last_end = max(last_end, end)
        return found


def _number(text: str) -> int | Fraction:
    """A matched number, exactly ("7.5" -> 15/2); integers skip the slow Fraction constructor."""
    return Fraction(text) if "." in text else int(text)


def _remaining(deadline: float) -> float:
    """Seconds left of a behavior's scan budget (raises TimeoutError, like `regex`, once it is spent)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("pattern scan exceeded its time budget")
    return left


@dataclass(frozen=True)
class _TextFacts:
    """What the pattern conventions need to know about one text, computed once per ``tag`` call."""

    text: str
    lowered: str
    target: Fraction | None
    expression_starts: list[int]
    expressions: list[str]
    first_seen_end: dict[str, int]

    @classmethod
    def of(cls, text: str, target: int | float | None) -> _TextFacts:
        expression_starts, expressions, first_seen_end = [], [], {}
        for match in _EXPRESSION.finditer(text):
            key = match.group().translate(_IGNORED_IN_EXPRESSIONS).lower()
            expression_starts.append(match.start())
            expressions.append(key)
            first_seen_end.setdefault(key, match.end())
        return cls(
            text=text,
            lowered=text.lower(),
            target=None if target is None else Fraction(str(target)),
            expression_starts=expression_starts,
            expressions=expressions,
            first_seen_end=first_seen_end,
        )

    def attempted_between(self, start: int, end: int) -> bool:
        """Whether some arithmetic starts in ``[start, end)``."""
        first = bisect.bisect_left(self.expression_starts, start)
        return first < len(self.expression_starts) and self.expression_starts[first] < end

    def fits(self, pattern: Pattern, match: Any) -> bool:
        """The order-independent conventions: number groups and ``new_attempt``."""
        groups = match.groupdict()
        for name in NUMBER_GROUPS:
            value = groups.get(name)
            if value is None:
                continue
            is_target = self.target is not None and _number(value) == self.target
            if (name == "target" and not is_target) or (
                name == "cmp" and self.target is not None and not is_target
            ):
                return False
            if name == "other" and is_target:
                return False
        if "new_attempt" in pattern.requires:
            # The expression being tried (the first one at or after the match) must not be a verbatim repeat.
            first = bisect.bisect_left(self.expression_starts, match.start())
            tried_here = (
                first < len(self.expressions)
                and self.expression_starts[first] < match.end() + _NEW_ATTEMPT_WINDOW
            )
            if tried_here and self.first_seen_end[self.expressions[first]] <= match.start():
                return False
        return True


def infer_target(text: str, numbers: Sequence[int | float] | None = None) -> int | None:
    """The target named in the text: "target is 32" anywhere, else "make/reach/get 32" in the opening.

    A number that is one of the given ``numbers`` is not taken from the make/reach phrasing ("get 25 from
    the list"). Returns None when nothing fits.
    """
    explicit = _TARGET_EXPLICIT.search(text)
    if explicit:
        return int(explicit.group(1))
    given = {Fraction(str(n)) for n in numbers or ()}
    for match in _TARGET_VERB.finditer(text, 0, _TARGET_VERB_WINDOW):
        if Fraction(match.group(1)) not in given:
            return int(match.group(1))
    return None


_GAP = regex.compile(r"[\W_]*")


def _merge(found: list[Span], text: str) -> list[Span]:
    """Merge spans that overlap or touch (only spaces/punctuation between): one instance each."""
    merged: list[Span] = []
    for start, end in sorted(found):
        if merged and (start <= merged[-1][1] or _GAP.fullmatch(text, merged[-1][1], start)):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
