"""The lab's think/answer format around a reasoning-gym question, and what the judge and the writer are told.

The prompt is Countdown's base template (`cogrl_countdown.prompts`, the paper's TinyZero prompt) with the
question in place of the Countdown instruction: a User/Assistant preamble, the question, the request for
think and answer tags, and the assistant turn opened with "Let me solve this step by step.\\n<think>". The
completion is the same ``thought</think>\\n<answer>answer</answer>``, so one tiny tokenizer (whose reasoning
tags are single tokens) and every priming tool read both environments alike.
"""

from __future__ import annotations

import json
from typing import Any

from cogrl.envs import WriterBrief

RESPONSE_PREFIX = "Let me solve this step by step.\n<think>"
"""How the assistant turn starts; the model continues after the opening think tag."""
THINK_END = "</think>"
ANSWER_START, ANSWER_END = "<answer>", "</answer>"

BASE_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer.\nUser: {question}\nShow your work in <think> </think> tags. And return the final answer in "
    "<answer> </answer> tags.\nAssistant: " + RESPONSE_PREFIX
)


def base_prompt(question: str) -> str:
    """The prompt of one task (``question`` verbatim: reasoning-gym's own answer-format instructions stay)."""
    return BASE_TEMPLATE.format(question=question.strip())


def completion(thought: str, answer: str) -> str:
    """The response text for the base template: what follows the prompt's opening ``<think>``."""
    return f"{thought}{THINK_END}\n{ANSWER_START}{answer}{ANSWER_END}"


def label(dataset: str) -> str:
    """A dataset name as words ("basic arithmetic")."""
    return dataset.replace("_", " ")


def judge_domain(dataset: str) -> str:
    """Ends the judge's sentence "one response written for ..."."""
    return f"a {label(dataset)} problem (a reasoning-gym task)"


def judge_problem(question: str) -> str:
    """The problem as the judge sees it above the response."""
    return f"Problem: {question.strip()}"


def writer_brief(dataset: str) -> WriterBrief:
    """How an LLM writer is asked for traces of this task family."""
    return WriterBrief(
        task=f"You write worked solutions to {label(dataset)} problems. Write the reasoning as a person "
        "thinking aloud, in plain sentences.",
        wrong_answer="Your final answer must be WRONG: end on an answer that is close to the right one but "
        "wrong. Do not claim that it is right.",
        reply_format="Reply in exactly this form: <think>your reasoning</think>\n"
        "<answer>the final answer only, in the format the problem asks for</answer>",
    )


def json_safe(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists, anything else unusual its ``str``)."""
    return json.loads(json.dumps(value, default=str))
