"""A second, deliberately tiny environment that lives outside src/cogrl: reverse a word.

It proves the plugin contract: the core finds it by a "module:Class" path and runs every generic command on
it without a line of the core knowing it exists.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from cogrl.envs import Score, Task


class ReverseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_train: int = 8
    n_test: int = 4
    seed: int = 0


class ReverseEnv:
    name: ClassVar[str] = "reverse"
    Options: ClassVar[type[BaseModel]] = ReverseOptions
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(self, options: BaseModel) -> None:
        self.options = ReverseOptions.model_validate(options.model_dump())

    def tasks(self, split: str) -> Sequence[Task]:
        rng = random.Random(f"{self.options.seed}-{split}")
        n = self.options.n_train if split == "train" else self.options.n_test
        words = ["".join(rng.choice("abcdef") for _ in range(5)) for _ in range(n)]
        return [self.task_from_record({"word": w, "id": f"reverse-{split}-{i}"}) for i, w in enumerate(words)]

    def task_from_record(self, record: Mapping[str, Any]) -> Task:
        word = record.get("word")
        if not isinstance(word, str) or not word:
            raise ValueError("field 'word' must be a non-empty string")
        return Task(str(record.get("id", word)), f"Reverse {word}:", {"word": word})

    def score(self, completion: str, task: Task) -> Score:
        correct = completion.strip() == task.data["word"][::-1]
        return Score(1.0 if correct else 0.0, "correct" if correct else "wrong", correct)
