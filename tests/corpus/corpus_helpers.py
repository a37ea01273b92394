"""What the corpus tests share (importable as `corpus_helpers`; conftest.py holds the fixtures): the sample
corpus, and the script of a fake OpenAI server that labels and rewrites its documents the way their kinds say."""

from __future__ import annotations

import json
from pathlib import Path

from servers.fake_openai import last_message

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "corpus_sample.jsonl"
ROWS = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
KIND = {row["text"]: row["kind"] for row in ROWS}
UNREADABLE = ROWS[1]["text"]
"""The judge answers this (rich) document with a reply that lacks the backtracking line."""
LOSSY = {ROWS[15]["text"], ROWS[21]["text"]}
"""The writer drops the numbers of these documents (a rich and a minimal one)."""

COUNTS = {
    "rich": (2, 1, 1, 1),
    "minimal": (0, 0, 0, 0),
    "no_solution": (0, 0, 0, 0),
    "not_math": (0, 1, 1, 0),
}
BEHAVIOR_LINES = ("verification", "backtracking", "subgoal_setting", "backward_chaining")


def document(body: dict) -> str:
    return last_message(body).split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]


def identify(body: dict) -> tuple[str, str]:
    """(stage, document): the label prompt asks for answer lines, the rewrite prompt for sections."""
    prompt = last_message(body)
    return ("rewrite" if "'Question:'" in prompt else "label", document(body))


def kind_of(text: str) -> str:
    """The sample kind of a document as the pipeline sent it (whole, or cut to its token budget)."""
    return KIND.get(text) or next(kind for full, kind in KIND.items() if full.startswith(text))


def judge_reply(text: str) -> str:
    kind = kind_of(text)
    lines = [f"{b}: {n}" for b, n in zip(BEHAVIOR_LINES, COUNTS[kind], strict=True)]
    if text == UNREADABLE:
        lines = [line for line in lines if not line.startswith("backtracking")]
    solved = "yes" if kind in ("rich", "minimal") else "no"
    return "The author checks the result.\n" + "\n".join(lines) + f"\nproblem: {solved}\nsolution: {solved}"


def rewrite_reply(text: str) -> str:
    """A faithful rewrite: the first sentence as the question, the document as the thinking, the last
    sentence as the answer; for LOSSY documents the numbers are gone."""
    if text in LOSSY:
        text = "".join(c for c in text if not c.isdigit())
    sentences = text.split(". ")
    return f"Question: {sentences[0]}.\nThinking: I read it this way. {text}\nAnswer: {sentences[-1]}"


def script(key: tuple[str, str], attempt: int) -> str:
    stage, text = key
    return "reply:" + (judge_reply(text) if stage == "label" else rewrite_reply(text))
