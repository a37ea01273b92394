"""What several commands share (options, exit codes), so that no command module imports another."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

DEFAULT_JUDGE_CACHE = Path.home() / ".cache" / "cogrl" / "judge.sqlite"

JUDGE_FAILED_EXIT = 3
"""Exit code of a judge run that sent requests and had every one fail (server down, overloaded, or replying
garbage): all lines are still written, with those counts unknown. Some failures alone exit 0."""


class Api(StrEnum):
    chat = "chat"
    completions = "completions"


class Rubrics(StrEnum):
    cogrl = "cogrl"
    paper = "paper"
