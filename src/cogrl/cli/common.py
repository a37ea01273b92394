"""What several commands share (options, exit codes, loading an environment from the command line), so that
no command module imports another."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cogrl.config import describe_validation_error
from cogrl.envs import Environment, get_env_class, make_env
from cogrl.files import InputError

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


def load_env(name: str, options: dict[str, Any]) -> Environment:
    """An environment from command-line options, validated by its Options model (errors name the option)."""
    try:
        cls = get_env_class(name)
    except LookupError as exc:
        raise InputError(str(exc)) from None
    try:
        return make_env(name, cls.Options.model_validate(options))
    except ValidationError as exc:
        raise InputError(f"{name} options: {describe_validation_error(exc, cls.Options)}") from None
