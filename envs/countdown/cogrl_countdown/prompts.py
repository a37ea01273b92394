"""Countdown prompts: the paper's base-model template, a chat variant for instruct models, custom templates,
and what the lab's LLM judge and LLM writer are told about a Countdown task.

The base template is the one the paper used (TinyZero's Countdown prompt): a User/Assistant preamble, the
numbers as a Python list, think and answer tags, and the assistant turn opened with
"Let me solve this step by step.\\n<think>". ``completion`` writes the matching response text, so SFT data
(priming, warm-up) ends exactly where RL generations start.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

TEMPLATES = ("base", "chat", "custom")

INSTRUCTION = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> tags. "
    "And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)
RESPONSE_PREFIX = "Let me solve this step by step.\n<think>"
"""How the assistant turn starts; the model continues after the opening think tag."""

BASE_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer.\nUser: " + INSTRUCTION + "\nAssistant: " + RESPONSE_PREFIX
)
CHAT_SYSTEM = (
    "You are a helpful assistant. You first think about the reasoning process in the mind and then "
    "provide the user with the answer."
)


def base_prompt(numbers: Sequence[int], target: int) -> str:
    """The paper's prompt for base models (no chat template)."""
    return BASE_TEMPLATE.format(numbers=list(numbers), target=target)


def chat_messages(numbers: Sequence[int], target: int) -> list[dict[str, str]]:
    """The chat variant for instruct models: render with ``tokenizer.apply_chat_template(messages,
    add_generation_prompt=True)`` and append ``RESPONSE_PREFIX`` so the response format matches."""
    return [
        {"role": "system", "content": CHAT_SYSTEM},
        {"role": "user", "content": INSTRUCTION.format(numbers=list(numbers), target=target)},
    ]


def check_custom_template(template: str) -> str:
    """Validate a recipe's own template: a format string whose only fields are {numbers} and {target}."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"custom template is not a valid format string: {exc}") from None
    unknown = fields - {"numbers", "target"}
    if unknown:
        raise ValueError(
            f"custom template has unknown fields {sorted(unknown)}; use {{numbers}} and {{target}}"
        )
    if "target" not in fields or "numbers" not in fields:
        raise ValueError("custom template must contain both {numbers} and {target}")
    return template


def custom_prompt(template: str, numbers: Sequence[int], target: int) -> str:
    """A recipe's own template (checked with ``check_custom_template``); numbers are shown as a list."""
    return template.format(numbers=list(numbers), target=target)


THINK_END = "</think>"


def completion(thought: str, answer: str) -> str:
    """The response text for the base template: what follows the prompt's opening ``<think>``."""
    return f"{thought}{THINK_END}\n<answer>{answer}</answer>"


JUDGE_DOMAIN = "a Countdown arithmetic puzzle"
"""Ends the judge's sentence "one response written for ..." (`cogrl.behaviors.judge`)."""


def judge_problem(numbers: Sequence[int], target: int) -> str:
    """The puzzle as the judge sees it above the response."""
    return f"Puzzle: use the numbers {list(numbers)} to make {target}."


WRITER_TASK = (
    "You write worked solutions to Countdown puzzles: combine the given numbers with + - * /, each number "
    "exactly once, to reach the target. Write the reasoning as a person thinking aloud, in plain sentences."
)
"""Opens the LLM writer's system prompt (`cogrl.priming.llm`)."""
WRITER_WRONG_ANSWER = (
    "Your final answer must be WRONG: end on an equation that uses every number once but misses the "
    "target by a little. Do not claim that it reaches the target."
)
"""The writer's instruction for a condition with wrong answers."""
WRITER_REPLY_FORMAT = (
    "Reply in exactly this form: <think>your reasoning</think>\n<answer>the equation only</answer>"
)
"""The reply format the writer is held to (the lab parses its think and answer tags)."""


def writer_problem(numbers: Sequence[int], target: int) -> str:
    """The writer's user message for one puzzle."""
    return f"Numbers: {list(numbers)}. Target: {target}."
