"""Anchors: where a pattern's match can start, found for every pattern of a set in one pass over a text.

A ``regex`` search tries a pattern at every position of the text; a pattern that declares anchors is instead
matched only where one of them holds, which gives the same matches when the anchors cover every place a
match can start (tests/behaviors checks this for the built-in sets). Anchor forms (docs/behaviors.md):

* ``let``: a whole word, i.e. a run of letters a-z that is exactly "let" (digits and punctuation are not
  letters); ``verif*``: a run of letters that starts with "verif";
* ``let me``, ``hmm* no``: a word (or prefix) whose next run of letters, whatever non-letters lie between, is
  the second word (or prefix); "let's" reads "let s";
* ``=``, ``!=``: every occurrence of the symbol string;
* ``<number> short``: a number not after a word character whose next run of letters is "short";
  ``<number> !=``: a number right before the symbol, spaces between allowed;
* ``<target>``: a number equal to the target; ``to reach <target>``, ``= <target>``: up to
  ``TARGET_CONTEXT_WORDS`` words or one-character symbols before it with only spaces between (the match
  starts at the first); ``<target> /``: a word or one-character symbol after it (the match starts there).

Word anchors are found on ASCII letters, so they are exact only for texts whose word characters are all ASCII
(``ascii_words``); the tagger searches other texts in full.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import regex

TARGET_ANCHOR = "<target>"
TARGET_CONTEXT_WORDS = 3
"""Words or symbols an anchor may name before ``<target>`` ("to arrive at <target>")."""
NUMBER_ANCHOR = "<number>"


def valid_anchor(anchor: Any) -> bool:
    """Whether a string is an anchor in one of the forms listed in the module docstring."""
    if not isinstance(anchor, str) or not anchor:
        return False
    if TARGET_ANCHOR in anchor:
        parts = anchor.split(" ")
        if parts.count(TARGET_ANCHOR) != 1 or len(parts) > TARGET_CONTEXT_WORDS + 1:
            return False
        if parts[-1] != TARGET_ANCHOR and (len(parts) != 2 or parts[0] != TARGET_ANCHOR):
            return False  # "A B <target>" or "<target> X"
        return all(
            p == TARGET_ANCHOR
            or (p.isascii() and p.isalpha() and p == p.lower())
            or (_is_symbol(p) and len(p) == 1)
            for p in parts
        )
    parts = anchor.split(" ")
    if len(parts) == 2 and parts[0] == NUMBER_ANCHOR:
        return _is_word_anchor(parts[1]) and not parts[1].endswith("*") or _is_symbol(parts[1])
    if len(parts) == 2:
        return all(map(_is_word_anchor, parts))
    return len(parts) == 1 and (_is_word_anchor(anchor) or _is_symbol(anchor))


def _is_word_anchor(anchor: str) -> bool:
    word = anchor[:-1] if anchor.endswith("*") else anchor
    return bool(word) and word.isascii() and word.isalpha() and word == word.lower()


def _is_symbol(anchor: str) -> bool:
    return not anchor.startswith("<") and not any(c.isalnum() or c.isspace() or c == "*" for c in anchor)


class AnchorIndex:
    """Where each anchored pattern of a pattern set may start in a text, found in one pass.

    The lower-cased text is turned into bytes in which only the letters a-z survive (everything else is a
    space); one stdlib-``re`` pass lists its letter runs, and each is looked up (cached per word) in the
    word anchors: whole words, prefixes, two-word anchors (decided when the next letter run arrives) and
    ``<number> word`` (a look back from the word for a number with only non-alphanumerics between). Symbol
    anchors and ``<number> symbol`` are ``find`` calls on the text. This is exact only when every word
    character of the text is ASCII (``ascii_words``); other texts are searched in full.
    """

    def __init__(self, anchors: Sequence[Sequence[str]]) -> None:
        """``anchors[i]`` are the anchors of pattern ``i`` (none: the pattern is not indexed)."""
        self.words: dict[str, set[int]] = {}
        self.prefixes: dict[str, set[int]] = {}
        self.pairs: dict[str, list[tuple[str, int]]] = {}
        """First word of a two-word anchor -> (second word or prefix, pattern); a first part that is a
        prefix is keyed ``"hmm*"``."""
        self.symbols: dict[str, list[int]] = {}
        self.after_number: dict[str, set[int]] = {}
        self.number_before_symbol: dict[str, list[int]] = {}
        for index, pattern_anchors in enumerate(anchors):
            for anchor in pattern_anchors:
                parts = anchor.split(" ")
                if TARGET_ANCHOR in parts:
                    continue
                if parts[0] == NUMBER_ANCHOR:
                    if parts[1][0].isalpha():
                        self.after_number.setdefault(parts[1], set()).add(index)
                    else:
                        self.number_before_symbol.setdefault(parts[1], []).append(index)
                elif len(parts) == 2:
                    self.pairs.setdefault(parts[0], []).append((parts[1], index))
                elif anchor[0].isalpha():
                    table = self.prefixes if anchor.endswith("*") else self.words
                    table.setdefault(anchor.rstrip("*"), set()).add(index)
                else:
                    self.symbols.setdefault(anchor, []).append(index)
        self.longest_prefix = max(map(len, self.prefixes), default=0)
        self.longest_pair_prefix = max(
            (len(first) - 1 for first in self.pairs if first.endswith("*")), default=0
        )
        self._per_word: dict[bytes, _WordAnchors | None] = {}
        """Words seen so far -> what anchors want them, or None when none does."""

    def _learn(self, word: bytes) -> _WordAnchors | None:
        """Look a word up in the anchor tables once (the vocabulary of reasoning traces is small); a few
        dictionary look-ups per prefix length, so a text of many distinct words costs no more than others."""
        if len(self._per_word) > _WORD_CACHE_SIZE:
            self._per_word.clear()
        text = word.decode()
        hits = set(self.words.get(text, ()))
        for length in range(1, min(len(text), self.longest_prefix) + 1):
            hits.update(self.prefixes.get(text[:length], ()))
        after_number = tuple(sorted(self.after_number.get(text, ())))
        firsts = [text] + [
            text[:length] + "*" for length in range(1, min(len(text), self.longest_pair_prefix) + 1)
        ]
        nexts = tuple(
            (second.rstrip("*").encode(), second.endswith("*"), index)
            for first in firsts
            for second, index in self.pairs.get(first, ())
        )
        wanted = (
            _WordAnchors(tuple(sorted(hits)), after_number, nexts) if hits or after_number or nexts else None
        )
        self._per_word[word] = wanted
        return wanted

    def candidates(self, lowered: str) -> dict[int, list[int]]:
        """Pattern index -> the ascending positions where one of its word, number or symbol anchors holds
        (patterns without any are left out)."""
        out: dict[int, list[int]] = defaultdict(list)
        letters = lowered.encode("ascii", "replace").translate(_ONLY_LETTERS)
        per_word = self._per_word
        pending: tuple[tuple[bytes, bool, int], ...] = ()
        pending_start = 0
        for token in _LETTER_RUN.finditer(letters):
            word = token.group()
            if pending:  # two-word anchors of the previous word: does this word complete them?
                for second, is_prefix, index in pending:
                    if word == second or (is_prefix and word.startswith(second)):
                        out[index].append(pending_start)
                pending = ()
            wanted = per_word.get(word, _UNSEEN)
            if wanted is _UNSEEN:
                wanted = self._learn(word)
            if wanted is None:
                continue
            start = token.start()
            for index in wanted.at_word:
                out[index].append(start)
            if wanted.after_number:
                number = _number_before(lowered, start)
                if number >= 0:
                    for index in wanted.after_number:
                        out[index].append(number)
            if wanted.nexts:
                pending, pending_start = wanted.nexts, start
        for symbol, indices in self.symbols.items():
            found = lowered.find(symbol)
            while found >= 0:
                for index in indices:
                    out[index].append(found)
                found = lowered.find(symbol, found + 1)
        for symbol, indices in self.number_before_symbol.items():
            found = lowered.find(symbol)
            while found >= 0:
                for start in _number_starts_before(lowered, found):
                    for index in indices:
                        out[index].append(start)
                found = lowered.find(symbol, found + 1)
        for positions in out.values():
            positions.sort()
        return out


@dataclass(frozen=True)
class _WordAnchors:
    """What the anchors want at one word: patterns to try there, patterns to try at a number right before
    it, and (second word, is a prefix, pattern) for two-word anchors that start with it."""

    at_word: tuple[int, ...]
    after_number: tuple[int, ...]
    nexts: tuple[tuple[bytes, bool, int], ...]


def _number_starts_before(text: str, end: int) -> list[int]:
    """Where a number (digits, optionally with decimals) that ends right before ``end``, whitespace
    between allowed, can start: its digit run, and the run before its decimal point."""
    position = end
    while position > 0 and text[position - 1].isspace():
        position -= 1
    start = position
    while start > 0 and "0" <= text[start - 1] <= "9":
        start -= 1
    if start == position:
        return []
    if start >= 2 and text[start - 1] == "." and "0" <= text[start - 2] <= "9":
        whole = start - 1
        while whole > 0 and "0" <= text[whole - 1] <= "9":
            whole -= 1
        return [whole, start]
    return [start]


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _skip_space_back(text: str, position: int) -> int:
    while position > 0 and text[position - 1].isspace():
        position -= 1
    return position


def _token_at(lowered: str, position: int) -> str:
    """The letter run (a-z) or the single other non-space character that starts at ``position``."""
    end = position
    while end < len(lowered) and "a" <= lowered[end] <= "z":
        end += 1
    if end > position:
        return lowered[position:end] if position == 0 or not "a" <= lowered[position - 1] <= "z" else ""
    return lowered[position] if position < len(lowered) and not lowered[position].isspace() else ""


def _token_before(lowered: str, end: int) -> tuple[int, str]:
    """The letter run or single non-space, non-digit character that ends at ``end``, with its start."""
    start = end
    while start > 0 and "a" <= lowered[start - 1] <= "z":
        start -= 1
    if start < end:
        return start, lowered[start:end]
    if end > 0 and not lowered[end - 1].isspace() and not lowered[end - 1].isdecimal():
        return end - 1, lowered[end - 1]
    return end, ""


def _number_before(text: str, end: int) -> int:
    """The start of the digit run that precedes ``end`` with only non-alphanumerics between, if that run
    is not after a word character; else -1."""
    position = end - 1
    while position >= 0 and not text[position].isalnum():
        position -= 1
    if position < 0 or not ("0" <= text[position] <= "9"):
        return -1
    while position > 0 and "0" <= text[position - 1] <= "9":
        position -= 1
    before = text[position - 1] if position else " "
    return -1 if before.isascii() and (before.isalnum() or before == "_") else position


_ONLY_LETTERS = bytes(c if 97 <= c <= 122 else 32 for c in range(256))
_LETTER_RUN = re.compile(rb"[a-z]+")
_WORD_CACHE_SIZE = 100_000
_UNSEEN: Any = object()
_WORD_CHARACTER = regex.compile(r"\w", regex.VERSION0)


def ascii_words(text: str) -> bool:
    """Whether every word character (``\\w``) of the text is ASCII, so that anchors can be found exactly."""
    return text.isascii() or not any(_WORD_CHARACTER.match(c) for c in set(text) if not c.isascii())


def target_positions(text: str, target: Fraction | None) -> list[tuple[int, int]]:
    """(start, end) of the digit runs whose value is the target's integer part ("32", "032", and the "32" of
    "32.0" for 32): where a number equal to the target can start, and where its digits end."""
    if target is None or target < 0:
        return []
    digits = str(target.numerator // target.denominator)
    out = []
    found = text.find(digits)
    while found >= 0:
        end = found + len(digits)
        if not text[end : end + 1].isdecimal():  # first: then each run of digits is walked back once
            start = found
            while start > 0 and text[start - 1] == "0":
                start -= 1
            if start == 0 or not text[start - 1].isdecimal():
                out.append((start, end))
        found = text.find(digits, found + 1)
    return out


def target_contexts(text: str, lowered: str, positions: Sequence[tuple[int, int]]) -> dict[str, list[int]]:
    """Every target anchor that holds around the target numbers at ``positions`` -> where matches anchored
    by it can start: ``<target>`` at the number, ``A B <target>`` at A when words or one-character symbols
    A, B and the number follow each other with only whitespace between, ``<target> X`` at X when X follows
    the number after optional whitespace. Built from the (at most ``TARGET_CONTEXT_WORDS``) tokens before and
    the token after each number."""
    out: dict[str, list[int]] = {}
    for start, end in positions:
        out.setdefault(TARGET_ANCHOR, []).append(start)
        words, at = [TARGET_ANCHOR], start
        for _ in range(TARGET_CONTEXT_WORDS):
            at, token = _token_before(lowered, _skip_space_back(text, at))
            if not token:
                break
            words.insert(0, token)
            out.setdefault(" ".join(words), []).append(at)
        ends = [end]
        if text.startswith(".", end) and text[end + 1 : end + 2].isdecimal():
            decimal_end = end + 1
            while decimal_end < len(text) and text[decimal_end].isdecimal():
                decimal_end += 1
            ends.append(decimal_end)
        for end_of_number in ends:
            at = _skip_space(text, end_of_number)
            token = _token_at(lowered, at)
            if token:
                out.setdefault(f"{TARGET_ANCHOR} {token}", []).append(at)
    return {anchor: sorted(set(positions)) for anchor, positions in out.items()}
