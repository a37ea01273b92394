"""The shared fake OpenAI server (`tests/servers/fake_openai.py`), scripted the judge tests' way.

A request is identified by the response text it asks about (between ``<<<`` and ``>>>`` in the prompt) and
by the behavior its rubric (of any rubric set) names; the script maps (text, behavior, attempt) to an action of the shared server
or to "count:<n>", a reply ending in the judge's ``COUNT: <n>`` line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from servers.fake_openai import ScriptedOpenAIServer, last_message

from cogrl.behaviors.judge import RUBRIC_SETS

# "count:3" | "reply:<raw text>" | any other action of the shared server ("500", "hang", "trickle", "nested", ...)
JudgeScript = Callable[[str, str, int], str]


def always(action: str) -> JudgeScript:
    return lambda text, behavior, attempt: action


def judged_text_and_behavior(body: dict) -> tuple[str, str]:
    prompt = last_message(body)
    text = prompt.split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
    return text, next(
        b for rubrics in RUBRIC_SETS.values() for b, rubric in rubrics.items() if rubric in prompt
    )


def _judge_action(action: str) -> str:
    kind, _, value = action.partition(":")
    return f"reply:The response does this.\nCOUNT: {value}" if kind == "count" else action


class FakeOpenAIServer(ScriptedOpenAIServer):
    """Serves the model "fake-judge"; ``requests`` counts the requests per (text, behavior); a "hang"
    answers "count:1" once it is over, and a "trickle" sends that answer byte by byte. Other keywords
    (``trickle_s``, ``retry_after``, ``models_action``) are the shared server's."""

    def __init__(
        self,
        script: JudgeScript = always("count:1"),
        delay_s: float = 0.0,
        hang_s: float = 5.0,
        **options: Any,
    ) -> None:
        super().__init__(
            lambda key, attempt: _judge_action(script(*key, attempt)),
            identify=judged_text_and_behavior,
            model="fake-judge",
            delay_s=delay_s,
            hang_s=hang_s,
            after_hang=_judge_action("count:1"),
            **options,
        )


def cached_judgments(path: Path) -> set[tuple[str, str]]:
    """(behavior, text SHA-256) of each judgment in the judge cache at ``path``, read while a judge may be
    creating it: a cache with no file or no table yet holds none (so a test polls for a state, not a file)."""
    if not path.exists():
        return set()
    db = sqlite3.connect(path, timeout=30)
    try:
        return set(db.execute("SELECT behavior, text_sha256 FROM judgments").fetchall())
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return set()
        raise
    finally:
        db.close()
