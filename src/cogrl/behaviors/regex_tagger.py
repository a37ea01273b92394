"""The regex behavior tagger: fast, deterministic, span-level counts of the catalog's behaviors.

Patterns live in versioned YAML pattern sets (``cogrl/behaviors/patterns/v2.yaml``, the default, extends
``v1.yaml``; format in docs/behaviors.md). On top of plain regexes the tagger understands Countdown
arithmetic through these conventions:

* a named group ``target`` must equal the problem's target (the match is dropped when the target is unknown);
  ``cmp`` must equal the target when it is known and may be any number otherwise; ``other`` must *differ*
  from the target when it is known. So "8*4 = 32" is verification only when 32 is the target, and "we need
  to make 32" is not an intermediate goal when 32 is the target.
* ``requires: [prior_attempt]`` keeps a match only if some arithmetic (``30+25``, ``3 times 4``) was written
  since the previous instance of the same behavior (or since the start): "let me try another way" before
  anything was tried is not backtracking, and "That fails. Let's try ..." is one instance, not two.
* ``requires: [new_attempt]`` drops a match when the expression tried right after it repeats one written
  before it: a loop ("Let's try 30+25=55. Let's try 30+25=55.") is not a switch to another combination.
* ``prefilter: [words]`` runs a regex only on texts that contain one of the words.
* ``anchors: [...]`` (speed only) say where a match can start ("let me", "verif*", "=", "<target>"). One pass
  over the text finds every anchor of every pattern, and each pattern is then matched only at its anchors
  instead of being searched over the whole text: the same matches for a fraction of the cost, since a
  ``regex`` search tries every position of the text.
* the target, when not given, is inferred from the text ("target is 32", "make 32", "reach 32").

Instances follow the paper's unit (instances per response): each distinct matched span counts once, and
matches of one behavior that overlap or touch (only spaces or punctuation between them) are merged.
Work is bounded for any input, by construction where possible: only the first ``max_chars`` characters
are read; the facts every pattern shares (anchors, target positions, arithmetic, the inferred target) are
found in passes linear in the text; a number longer than ``MAX_NUMBER_DIGITS`` is never converted (it equals
no target); an anchored pattern sees only a window of ``_WINDOW`` characters either side of the place it is
tried. What is left (searching the whole text, the windows' polynomial worst cases) is bounded by one time
budget per behavior, enforced in one place (``_remaining``: its time is passed into every search, and it is
checked after each pattern's anchored matches); once it is spent the behavior's count is ``None``
(unknown), never a silent 0.
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import regex

from cogrl.behaviors.anchors import (
    NUMBER_ANCHOR,
    TARGET_ANCHOR,
    AnchorIndex,
    ascii_words,
    target_contexts,
    target_positions,
    valid_anchor,
)
from cogrl.behaviors.types import BEHAVIORS, BehaviorTags, Span
from cogrl.files import InputError, read_yaml_mapping

DEFAULT_PATTERN_SET = "v2"
"""The built-in pattern set used when none is given (``cogrl/behaviors/patterns/<name>.yaml``)."""

MAX_CHARS = 65_536
"""Characters of a response that are scanned; the rest is ignored (responses are ~1-4k characters)."""
MAX_NUMBER_DIGITS = 32
"""A number written with more characters is never converted: it is not the target (targets are short), is
not inferred as one, and converting it would cost quadratic time (Python refuses past 4,300 digits)."""

CONDITIONS = frozenset({"prior_attempt", "new_attempt"})
NUMBER_GROUPS = ("target", "cmp", "other")
FLAGS = regex.IGNORECASE | regex.VERSION0

# Arithmetic as written in Countdown reasoning ("30+25", "(30 - 25 + 3) * 4", "3x4", "25 times 3"). Whole
# expressions are compared verbatim (spaces and brackets ignored) to tell a new attempt from a repeated one.
# It never starts after "(" or inside a run of digits: a match starting there also starts where the run of
# brackets and digits does (and, leftmost, is found there), and retrying at every position of a long run of
# digits would take quadratic time. (The lookbehinds come after the first character, so that the engines
# still skip quickly to the next "(" or digit.)
_EXPRESSION = regex.compile(
    r"(?:\((?<!\(\()\(*\d+|\d(?<![\d(]\d)\d*)(?:\.\d+)?\)*(?:\s*(?:[-+*/×÷−–]|x|times|plus|minus|divided\s+by|multiplied\s+by)\s*\(*\d+(?:\.\d+)?\)*)+",
    FLAGS,
)
_EXPRESSION_STDLIB = re.compile(_EXPRESSION.pattern, re.IGNORECASE)
"""The same expressions, found faster by the stdlib engine; identical on texts whose word characters are all
ASCII (case folding) and that lack the four characters only the stdlib counts as whitespace."""
_SPACE_ONLY_IN_STDLIB = frozenset("\x1c\x1d\x1e\x1f")
_IGNORED_IN_EXPRESSIONS = str.maketrans("", "", " \t\n()")
_NEW_ATTEMPT_WINDOW = 160
"""How far after a match ``new_attempt`` looks for the expression that is being tried."""
# Target inference, most explicit phrasing first; the first sentence of a response usually restates the task.
# "\s*(?:is|...)?\s*" would try every split of a long run of spaces between its two "\s*" (quadratic time).
_TARGET_EXPLICIT = regex.compile(
    r"\btarget(?:\s+(?:number|value))?(?:\s*(?:is|of|=|:|equals|being))?\s*(?:the\s+number\s+)?"
    rf"(\d{{1,{MAX_NUMBER_DIGITS}}})\b",
    FLAGS,
)
_TARGET_VERB = regex.compile(
    r"\b(?:make|makes|making|reach|reaching|get|getting|obtain|create|equal|equals|equal\s+to|total(?:ling)?)"
    rf"\s+(?:exactly\s+|the\s+number\s+)?(\d{{1,{MAX_NUMBER_DIGITS}}})\b",
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
    anchors: tuple[str, ...] = ()
    """Where a match can start (speed only; without anchors the regex is searched at every position):
    ``word`` (a whole word: the letter run is exactly it), ``prefix*`` (a letter run starting so), ``A B`` (a
    word or prefix A whose next letter run, whatever non-letters lie between, is the word or prefix B), a
    symbol string (``=``), ``<number> word`` (a number not after a word character whose next letter run is
    ``word``: "6 short"), ``<number> symbol`` (a number right before ``symbol``, spaces between allowed),
    ``<target>`` (a number equal to the target), ``A B <target>`` / ``<target> X`` (words or one-character
    symbols around the target, spaces between)."""


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
    raw = read_yaml_mapping(path, "pattern set")
    return _build_pattern_set(raw, path, seen=(path.resolve(),))


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
        base = _build_pattern_set(
            read_yaml_mapping(base_path, "pattern set"), base_path, seen + (base_path.resolve(),)
        )
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
    valid = ("id", "regex", "note", "requires", "prefilter", "anchors")
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
    anchors = item.get("anchors", [])
    if not isinstance(anchors, list) or not all(valid_anchor(a) for a in anchors):
        raise InputError(
            f"{path}: {where} ({item['id']}).anchors: a list of lower-case words ('let'), word prefixes "
            f"('verif*'), two words ('let me'), symbol strings ('='), '{NUMBER_ANCHOR} short', "
            f"'{NUMBER_ANCHOR} !=', '{TARGET_ANCHOR}', 'to reach {TARGET_ANCHOR}' or '{TARGET_ANCHOR} /' "
            "(docs/behaviors.md)"
        )
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
        anchors=tuple(anchors),
    )


@dataclass(frozen=True)
class _Compiled:
    """One pattern ready to run: its compiled regex and, if it declares anchors, where matches may start."""

    pattern: Pattern
    regex: Any
    anchored: bool
    number_groups: tuple[str, ...]
    """The ``target``/``cmp``/``other`` groups its regex has (``fits`` checks only these)."""
    new_attempt: bool
    looks_behind: bool
    """Whether its regex has a lookbehind (``(?<=``, ``(?<!``; a ``(?<name>`` group counts too)."""
    target_anchors: tuple[str, ...]
    """Its anchors that name the target (``<target>``, ``= <target>``, ``<target> /``): positions found
    per text from where the target's digits occur (``_TextFacts.target_anchor_positions``)."""


class RegexTagger:
    """Tag a response for the catalog's behaviors with a pattern set (default: the built-in ``v2``).

    ``RegexTagger().tag(text, numbers=[30, 25, 3, 4], target=32)``; ``numbers`` and ``target`` are optional
    (the target is inferred from the text when missing; ``numbers`` keeps a given number from being read as
    the target). ``pattern_set`` is a built-in name, a YAML path (``behaviors.patterns`` of a recipe) or a
    loaded ``PatternSet``; ``max_chars`` caps the characters scanned; ``timeout_s`` is the time one behavior's
    scan may take (all its regex calls together) before its count becomes ``None``. Compiling takes a
    fraction of a second: build one tagger per process and reuse it.
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
        compiled = []
        self._by_behavior: dict[str, list[int]] = {b: [] for b in BEHAVIORS}
        for behavior in BEHAVIORS:
            for pattern in self.pattern_set.patterns.get(behavior, ()):
                self._by_behavior[behavior].append(len(compiled))
                compiled_regex = regex.compile(pattern.regex, FLAGS)
                compiled.append(
                    _Compiled(
                        pattern=pattern,
                        regex=compiled_regex,
                        anchored=bool(pattern.anchors),
                        number_groups=tuple(g for g in NUMBER_GROUPS if g in compiled_regex.groupindex),
                        new_attempt="new_attempt" in pattern.requires,
                        looks_behind="(?<" in pattern.regex,
                        target_anchors=tuple(a for a in pattern.anchors if TARGET_ANCHOR in a),
                    )
                )
        self._compiled = tuple(compiled)
        self._anchors = AnchorIndex([c.pattern.anchors for c in self._compiled])
        self._not_word_anchored = frozenset(
            i for i, c in enumerate(self._compiled) if not c.anchored or c.target_anchors
        )
        """Patterns to visit even when the anchor pass found no position for them."""

    def tag(
        self, text: str, numbers: Sequence[int | float] | None = None, target: int | float | None = None
    ) -> BehaviorTags:
        text = text[: self.max_chars]
        if target is None:
            target = infer_target(text, numbers)
        facts = _TextFacts(text, target)
        candidates = self._anchors.candidates(facts.lowered) if facts.ascii_words else None
        counts: dict[str, int | None] = {}
        spans: dict[str, list[Span]] = {}
        for behavior in BEHAVIORS:
            indices = self._by_behavior.get(behavior, ())  # none: registered after this tagger was built
            if candidates is not None:  # skip, cheaply, the patterns that cannot match anywhere
                indices = [i for i in indices if i in candidates or i in self._not_word_anchored]
            try:
                found = self._scan(indices, candidates, facts)
            except TimeoutError:
                counts[behavior], spans[behavior] = None, []
                continue
            spans[behavior] = _merge(found, text)
            counts[behavior] = len(spans[behavior])
        return BehaviorTags(counts=counts, spans=spans, source=self.source)

    def _scan(
        self, indices: list[int], candidates: dict[int, list[int]] | None, facts: _TextFacts
    ) -> list[Span]:
        """Find every pattern's matches, then keep them in text order subject to ``prior_attempt``.

        An anchored pattern is tried only at its candidate positions (``match``); that gives exactly what
        ``search`` from left to right gives, because no match can start anywhere else."""
        text = facts.text
        deadline = time.monotonic() + self.timeout_s
        found_by_pattern: list[tuple[int, int, Pattern]] = []
        for index in indices:
            compiled = self._compiled[index]
            pattern = compiled.pattern
            positions = None
            if candidates is not None and compiled.anchored:
                positions = candidates.get(index, [])
                if compiled.target_anchors:
                    positions = sorted(
                        set(positions).union(*map(facts.target_anchor_positions, compiled.target_anchors))
                    )
                if not positions:
                    continue
            if pattern.prefilter and not any(map(facts.lowered.__contains__, pattern.prefilter)):
                continue
            if positions is None or len(positions) > _MAX_ANCHORED_TRIES:
                spans = _search_all(compiled, text, facts, deadline)
            else:
                spans = _match_at(compiled, text, positions, facts, deadline)
            if spans:
                found_by_pattern += [(start, end, pattern) for start, end in spans]
        found_by_pattern.sort(key=lambda c: (c[0], -c[1]))
        found: list[Span] = []
        last_end = 0
        for start, end, pattern in found_by_pattern:
            if "prior_attempt" in pattern.requires and not facts.attempted_between(last_end, start):
                continue
            found.append((start, end))
            last_end = max(last_end, end)
        return found


_MAX_ANCHORED_TRIES = 64
"""Above this many candidate positions a pattern is searched instead: one search (under the time budget)
costs less than thousands of ``match`` calls, each of which may scan its whole window for a literal the
pattern requires (an adversarial "1 + 1 + ..." with target 1)."""


def _search_all(compiled: _Compiled, text: str, facts: _TextFacts, deadline: float) -> list[Span]:
    """The spans of one pattern's kept matches, searching left to right (the reference semantics)."""
    out = []
    pos = 0
    search = compiled.regex.search
    while pos <= len(text):
        match = search(text, pos, timeout=_remaining(deadline))
        if match is None:
            break
        if facts.fits(compiled, match):
            out.append(_span(compiled, match))
            pos = max(match.end(), match.start() + 1)
        else:
            pos = match.start() + 1
    return out


_WINDOW = 256
"""Characters an anchored match may see before and after the place it is tried: real matches span under 40
and look back under 25 (the eval set), and a window keeps one ``match`` call's worst case (a pattern's
quadratic backtracking over a flood of spaces or digits) to a fixed cost."""


def _match_at(
    compiled: _Compiled, text: str, positions: list[int], facts: _TextFacts, deadline: float
) -> list[Span]:
    """The same as ``_search_all`` when every match starts at one of ``positions`` (ascending) and fits in
    ``_WINDOW`` characters either side of it.

    Each call is bounded by its window instead of a ``regex`` timeout (which costs about 1 us per call, more
    than a typical anchored match), and there are at most ``_MAX_ANCHORED_TRIES`` of them: the budget is
    checked once they are done. The window ends at ``endpos``; only a pattern with a lookbehind gets a slice
    of the text (a new string costs about 0.5 us per call), since ``pos`` does not stop a lookbehind."""
    out = []
    pos = 0
    match_at = compiled.regex.match
    check = compiled.number_groups or compiled.new_attempt
    looks_behind = compiled.looks_behind
    for start in positions:
        if start < pos:
            continue
        limit = start + _WINDOW
        offset = start - _WINDOW if looks_behind and start > _WINDOW else 0
        match = match_at(text[offset:limit], start - offset) if offset else match_at(text, start, limit)
        if match is None or match.end() + offset == limit < len(text):
            continue  # none, or it runs into the window's cut, where "$" and "\b" hold only in the window
        if not check or facts.fits(compiled, match, offset):
            out.append(_span(compiled, match, offset))
            pos = max(match.end() + offset, start + 1)
    _remaining(deadline)
    return out


def _span(compiled: _Compiled, match: Any, offset: int = 0) -> Span:
    """Where a match lies in the text (it also covers what a lookbehind captured: "8*4" in "(?<=(8*4) )= 32");
    ``offset``: where the string it was matched in starts in the text."""
    start = min(s for s, _ in match.regs if s >= 0) if compiled.regex.groups else match.start()
    return start + offset, match.end() + offset


def _number(text: str) -> int | Fraction | None:
    """A matched number, exactly ("7.5" -> 15/2), or None past ``MAX_NUMBER_DIGITS`` characters (never
    converted); integers skip the slow Fraction constructor."""
    if len(text) > MAX_NUMBER_DIGITS:
        return None
    return Fraction(text) if "." in text else int(text)


def _remaining(deadline: float) -> float:
    """Seconds left of a behavior's scan budget (raises TimeoutError, like `regex`, once it is spent)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("pattern scan exceeded its time budget")
    return left


class _TextFacts:
    """What the pattern conventions need to know about one text, each computed once per ``tag`` call and
    only when a pattern asks for it (most texts never need the target's positions, many no arithmetic)."""

    def __init__(self, text: str, target: int | float | None) -> None:
        self.text = text
        self.ascii_words = ascii_words(text)
        self.lowered = text.lower()
        self.target = None if target is None else Fraction(str(target))

    @cached_property
    def target_positions(self) -> list[tuple[int, int]]:
        return target_positions(self.text, self.target)

    def target_anchor_positions(self, anchor: str) -> list[int]:
        """Where a match anchored by ``anchor`` (one that names ``<target>``) can start."""
        return self._target_contexts.get(anchor, [])

    @cached_property
    def _target_contexts(self) -> dict[str, list[int]]:
        return target_contexts(self.text, self.lowered, self.target_positions)

    @cached_property
    def _expressions(self) -> tuple[list[int], list[str], dict[str, int]]:
        starts, keys, first_seen_end = [], [], {}
        stdlib_is_exact = self.ascii_words and not _SPACE_ONLY_IN_STDLIB.intersection(self.text)
        for match in (_EXPRESSION_STDLIB if stdlib_is_exact else _EXPRESSION).finditer(self.text):
            key = match.group().translate(_IGNORED_IN_EXPRESSIONS).lower()
            starts.append(match.start())
            keys.append(key)
            first_seen_end.setdefault(key, match.end())
        return starts, keys, first_seen_end

    def attempted_between(self, start: int, end: int) -> bool:
        """Whether some arithmetic starts in ``[start, end)``."""
        starts = self._expressions[0]
        first = bisect.bisect_left(starts, start)
        return first < len(starts) and starts[first] < end

    def fits(self, compiled: _Compiled, match: Any, offset: int = 0) -> bool:
        """The order-independent conventions: number groups and ``new_attempt`` (``offset``: where the string
        ``match`` was found in starts in the text)."""
        for name in compiled.number_groups:
            value = match.group(name)
            if value is None:
                continue
            is_target = self.target is not None and _number(value) == self.target
            if (name == "target" and not is_target) or (
                name == "cmp" and self.target is not None and not is_target
            ):
                return False
            if name == "other" and is_target:
                return False
        if compiled.new_attempt:
            # The expression being tried (the first one at or after the match) must not be a verbatim repeat.
            starts, keys, first_seen_end = self._expressions
            match_start, match_end = match.start() + offset, match.end() + offset
            first = bisect.bisect_left(starts, match_start)
            tried_here = first < len(keys) and starts[first] < match_end + _NEW_ATTEMPT_WINDOW
            if tried_here and first_seen_end[keys[first]] <= match_start:
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
