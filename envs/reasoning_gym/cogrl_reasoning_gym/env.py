"""Any reasoning-gym procedural task family as a cogrl environment (``reasoning_gym``).

reasoning-gym (Stojanovski et al., 2025; PyPI ``reasoning-gym``, Apache-2.0) generates some hundred task
families (arithmetic, logic, puzzles, games) with a verifier each. This adapter exposes one family, chosen by
``dataset`` and configured by ``config`` (its own config fields), as a cogrl environment: the prompt is the
lab's think/answer format (`cogrl_reasoning_gym.prompts`), and the reward is reasoning-gym's scorer applied
to the last answer span. It implements the environment protocol and the semantics capabilities of
`cogrl.envs` (task record, judge subject, writer subject, completion, priming options, format failures), and
``answer_key`` for maj@k; it writes no synthetic traces (no ``TraceWriter``), so priming sets come from an LLM
writer or from samples. Nothing in ``src/cogrl`` names it.

Splits. reasoning-gym seeds item ``i`` of a dataset with seed ``s`` by ``Random(s + i)``, so two datasets
whose seeds differ by less than their size share items. Each split therefore starts at its own base seed,
``seed * SEED_STRIDE * 3 + k * SEED_STRIDE`` for the split's position ``k`` (train, val, test), so no two
splits (and no two ``seed`` values) draw from overlapping generator seeds, and a question that still comes
out equal to one of an earlier split (small task spaces) is skipped: test first, then val, then train, so
held-out questions never appear in training. Equal options give equal splits on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cogrl.envs import Score, Task, WriterBrief
from cogrl_reasoning_gym import prompts

SPLITS = ("train", "val", "test")
SEED_STRIDE = 10**8
"""Generator seeds between two splits' bases; a split never needs this many draws (sizes are capped below)."""
MAX_SPLIT_SIZE = 10**6
MAX_DRAWS = 4
"""A split draws at most this many items per task wanted (plus 1,000) before it gives up on duplicates."""


class ReasoningGymOptions(BaseModel):
    """The ``env.options`` block of a recipe for ``reasoning_gym``."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "basic_arithmetic"
    """The reasoning-gym task family (``reasoning_gym.factory.DATASETS``), e.g. basic_arithmetic, countdown,
    puzzle24, mini_sudoku (the package README says which suit behavior studies)."""
    config: dict[str, Any] = Field(default_factory=dict)
    """The family's own config fields (its ``*Config`` dataclass, e.g. basic_arithmetic: min_terms,
    max_terms, min_digits, max_digits); ``seed`` and ``size`` are this adapter's (below)."""
    n_train: int = Field(1_000, ge=0, le=MAX_SPLIT_SIZE)
    """Tasks in the train split."""
    n_val: int = Field(0, ge=0, le=MAX_SPLIT_SIZE)
    """Tasks in the val split (held out from train, like test)."""
    n_test: int = Field(128, ge=0, le=MAX_SPLIT_SIZE)
    """Tasks in the test split (the RL loop evaluates on it)."""
    seed: int = Field(0, ge=0)
    """Generation seed; each split draws from its own range of generator seeds (module docstring)."""
    format_reward: float = 0.1
    """Reward of a completion with an answer span that reasoning-gym scores 0 (Countdown's format credit)."""
    correct_reward: float = 1.0
    """Reward of a fully correct answer; a partial reasoning-gym score s earns max(format, s * correct)."""
    max_answer_chars: int = Field(2_000, ge=1)
    """Longer answers are not scored (reason ``too_long``, format credit): the scorers are third-party code,
    and this bounds their input."""
    max_completion_chars: int = Field(100_000, ge=1)
    """Only this much of a completion is searched for its answer span (bounded work on model output)."""

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        from reasoning_gym.factory import DATASETS

        if name not in DATASETS:
            import difflib

            close = difflib.get_close_matches(name, list(DATASETS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown reasoning-gym dataset {name!r}{hint}")
        return name

    @field_validator("config")
    @classmethod
    def _no_seed_or_size(cls, config: dict[str, Any]) -> dict[str, Any]:
        reserved = {"seed", "size"} & set(config)
        if reserved:
            raise ValueError(
                f"config sets {sorted(reserved)}: use the env options seed and n_train/n_val/n_test"
            )
        return config


class ReasoningGymEnv:
    """One reasoning-gym task family in the lab's think/answer format, scored by reasoning-gym."""

    name: ClassVar[str] = "reasoning_gym"
    Options: ClassVar[type[BaseModel]] = ReasoningGymOptions
    splits: ClassVar[tuple[str, ...]] = SPLITS
    format_failure_reasons: ClassVar[frozenset[str]] = frozenset({"no_answer"})
    """``no_answer``: no complete answer span (every other reason had one)."""

    def __init__(self, options: BaseModel) -> None:
        self.options: ReasoningGymOptions = ReasoningGymOptions.model_validate(options.model_dump())
        self.judge_domain = prompts.judge_domain(self.options.dataset)
        self.writer_brief: WriterBrief = prompts.writer_brief(self.options.dataset)
        self._scorer = self._dataset(self._base_seed("train"), 1)  # any instance of the family scores

    # ------------------------------------------------------------------------------------------------------
    # The protocol
    # ------------------------------------------------------------------------------------------------------
    def tasks(self, split: str) -> Sequence[Task]:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; expected one of {self.splits}")
        return self._splits[split]

    def task_from_record(self, record: Mapping[str, Any]) -> Task:
        """A task from ``question`` and ``answer`` (strings) and optionally ``metadata`` (a mapping, which
        some families' scorers read) and ``id``."""
        for field in ("question", "answer"):
            if not isinstance(record.get(field), str):
                raise ValueError(f"field {field!r} is missing or not a string")
        metadata = record.get("metadata", {})
        if not isinstance(metadata, Mapping):
            raise ValueError("field 'metadata' must be a mapping")
        entry = {"question": record["question"], "answer": record["answer"], "metadata": dict(metadata)}
        task_id = record.get("id")
        return self._task(str(task_id) if task_id is not None else f"{self.options.dataset}-record", entry)

    def score(self, completion: str, task: Task) -> Score:
        """reasoning-gym's score of the last answer span: ``correct`` (score 1), ``partial`` (0 < score < 1,
        reward max(format, score * correct_reward)), ``wrong`` (score 0, format credit), ``too_long`` (not
        scored, format credit), ``scorer_error`` (the scorer raised: format credit, the error's type in
        details), ``no_answer`` (reward 0)."""
        o = self.options
        answer = self.answer_text(completion)
        if answer is None:
            return Score(0.0, "no_answer", False)
        if len(answer) > o.max_answer_chars:
            return Score(o.format_reward, "too_long", False)
        try:
            value = float(self._scorer.score_answer(answer, self._entry(task)))
        except Exception as exc:  # third-party code on model output: a crash is a wrong answer, never ours
            return Score(o.format_reward, "scorer_error", False, {"error": type(exc).__name__})
        if value >= 1.0:
            return Score(o.correct_reward, "correct", True, {"rg_score": value})
        if value > 0.0:
            return Score(
                max(o.format_reward, value * o.correct_reward), "partial", False, {"rg_score": value}
            )
        return Score(o.format_reward, "wrong", False, {"rg_score": value})

    def answer_text(self, completion: str) -> str | None:
        """The stripped text of the last complete ``<answer>...</answer>`` span, or None (linear time)."""
        text = completion[: self.options.max_completion_chars]
        end = text.rfind(prompts.ANSWER_END)
        start = text.rfind(prompts.ANSWER_START, 0, end) if end >= 0 else -1
        if start < 0:
            return None
        return text[start + len(prompts.ANSWER_START) : end].strip()

    def answer_key(self, completion: str, task: Task) -> str | None:
        """The answer span as scored (maj@k): equal keys are equal scorer inputs, so equal verdicts."""
        answer = self.answer_text(completion)
        return None if answer is None or len(answer) > self.options.max_answer_chars else answer

    # ------------------------------------------------------------------------------------------------------
    # Semantics (cogrl.envs): what the priming tools, the tagger and the judge are told
    # ------------------------------------------------------------------------------------------------------
    def completion(self, thought: str, answer: str) -> str:
        return prompts.completion(thought, answer)

    def task_record(self, task: Task) -> dict[str, Any]:
        """``question``, ``answer`` and ``metadata``: what ``task_from_record`` and the scorer need."""
        return prompts.json_safe(self._entry(task))

    def tagger_hints(self, task: Task) -> dict[str, Any]:
        """None: the regex tagger's hints are a Countdown-style goal number, and giving it this task's answer
        as its "target" would count every restatement of the answer as a verification."""
        return {}

    def record_hints(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def judge_problem(self, task: Task) -> str | None:
        return prompts.judge_problem(task.data["question"])

    def writer_problem(self, task: Task) -> str:
        return task.data["question"].strip()

    @classmethod
    def priming_options(cls, n_tasks: int) -> dict[str, Any]:
        """``n_tasks`` train tasks and no held-out splits (a priming set draws from train only)."""
        return {"n_train": n_tasks, "n_val": 0, "n_test": 0}

    # ------------------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------------------
    def _base_seed(self, split: str) -> int:
        return (self.options.seed * len(SPLITS) + SPLITS.index(split)) * SEED_STRIDE

    def _dataset(self, seed: int, size: int) -> Any:
        import reasoning_gym

        try:
            return reasoning_gym.create_dataset(
                self.options.dataset, seed=seed, size=size, **self.options.config
            )
        except (TypeError, ValueError, AssertionError) as exc:  # an unknown or invalid config field
            raise ValueError(
                f"reasoning-gym {self.options.dataset!r} config {self.options.config}: {exc}"
            ) from None

    @cached_property
    def _splits(self) -> dict[str, list[Task]]:
        """Test first, then val, then train; a question seen in an earlier split (or earlier in the same
        one) is skipped, so the splits are disjoint and duplicate-free."""
        sizes = {"train": self.options.n_train, "val": self.options.n_val, "test": self.options.n_test}
        seen: set[str] = set()
        out: dict[str, list[Task]] = {}
        for split in ("test", "val", "train"):
            wanted = sizes[split]
            budget = MAX_DRAWS * wanted + 1_000 if wanted else 0
            dataset = self._dataset(self._base_seed(split), max(budget, 1))
            tasks: list[Task] = []
            for index in range(budget):
                if len(tasks) == wanted:
                    break
                entry = dataset[index]
                if entry["question"] in seen:
                    continue
                seen.add(entry["question"])
                tasks.append(self._task(f"{self.options.dataset}-{split}-{len(tasks):06d}", entry))
            if len(tasks) < wanted:
                raise ValueError(
                    f"reasoning-gym {self.options.dataset!r}: only {len(tasks)} distinct {split} questions in "
                    f"{budget} draws, {wanted} wanted (ask for fewer, or widen its config)"
                )
            out[split] = tasks
        return out

    def _task(self, task_id: str, entry: Mapping[str, Any]) -> Task:
        data = {
            "question": entry["question"],
            "answer": entry["answer"],
            "metadata": entry.get("metadata", {}),
        }
        return Task(task_id, prompts.base_prompt(entry["question"]), data)

    @staticmethod
    def _entry(task: Task) -> dict[str, Any]:
        """The reasoning-gym entry its scorer reads."""
        return {
            "question": task.data["question"],
            "answer": task.data["answer"],
            "metadata": task.data["metadata"],
        }
