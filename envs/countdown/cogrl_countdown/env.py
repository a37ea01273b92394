"""The Countdown environment: combine every given number once with + - * / to reach the target.

The task family of the paper (Gandhi et al., 2025), registered under the ``cogrl.envs`` entry point
``countdown``. Tasks carry ``numbers``, ``target``, ``solution`` (one reference expression) and
``n_solutions`` (distinct solutions, see ``cogrl_countdown.solver``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cogrl.behaviors.types import BehaviorTags
from cogrl.envs import ClaimCounts, Score, Task, Trace, WriterBrief
from cogrl_countdown import (
    claims,
    corpus,
    generator,
    paper_scorer,
    prompts,
    scorer,
    search_traces,
    solver,
    traces,
)


class CountdownOptions(BaseModel):
    """The ``env.options`` block of a recipe for ``countdown``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    preset: Literal["rl", "priming"] = "rl"
    """Problem distribution: ``rl`` (3-4 numbers 1-99, targets 1-100: the paper's RL set) or ``priming``
    (3-4 numbers 1-24, targets 10-25, without 24-game instances: the paper's priming problems). The range
    fields below override single bounds of the preset."""
    n_train: int = Field(10_000, ge=0)
    """Problems in the train split (with ``source``: rows 0..n_train-1 of the file)."""
    n_test: int = Field(1_024, ge=0)
    """Problems in the test split (with ``source``: the next n_test rows; the paper tested on 1,024)."""
    seed: int = 0
    """Generation seed; equal options give equal problems on every machine."""
    min_count: int | None = Field(None, ge=3, le=6)
    """Fewest numbers per problem (preset: 3)."""
    max_count: int | None = Field(None, ge=3, le=6)
    """Most numbers per problem (preset: 4)."""
    min_number: int | None = Field(None, ge=0)
    """Smallest number (preset: 1)."""
    max_number: int | None = Field(None, ge=0)
    """Largest number (preset: 99 for rl, 24 for priming)."""
    min_target: int | None = None
    """Smallest target (preset: 1 for rl, 10 for priming)."""
    max_target: int | None = None
    """Largest target (preset: 100 for rl, 25 for priming)."""
    held_out_targets: list[int] = Field(default_factory=list)
    """Targets reserved for the test split: train never uses them and test uses only them (a held-out
    generalisation test). Empty: both splits draw from all targets (never the same problem)."""
    source: str | None = None
    """Import a Countdown set instead of generating: a parquet or JSONL file with ``nums`` (or ``numbers``)
    and ``target`` columns, e.g. a local copy of Countdown-Tasks-3to4."""
    template: Literal["base", "chat", "custom"] = "base"
    """Prompt: ``base`` (the paper's, for base models), ``chat`` (Task.prompt is the user message and
    ``data["messages"]`` the chat to render with a tokenizer), ``custom`` (``custom_template``)."""
    custom_template: str | None = None
    """A format string with {numbers} and {target}, used when ``template`` is ``custom``."""
    format_reward: float = 0.1
    """Reward for an answer span that is present but wrong (the paper's 0.1 format credit)."""
    correct_reward: float = 1.0
    """Reward for a correct answer."""
    scorer: Literal["exact", "paper"] = "exact"
    """Which verdict is the reward. ``exact`` (``scorer``): the last answer span anywhere, parsed and checked
    exactly. ``paper`` (``paper_scorer``): the decisions of the paper's own reward function (Gandhi et al.,
    2025, TinyZero's), faults included: only the last line of the response is read, unary minus, ``**`` and
    decimals pass, values are compared with a 1e-5 float tolerance. Its accuracy curves were made with it.
    Every score also carries the other scorer's verdict (``Score.details``: ``scorer``, ``<other>_reward``,
    ``<other>_reason``, ``<other>_correct``), so rollout logs show both."""
    trace_style: Literal["narrative", "search"] = "narrative"
    """How synthetic priming traces are written. ``narrative``: prose attempts with behavior phrases, the
    style of LLM-written traces, which the regex tagger and the judge read (``traces``). ``search``: a real
    depth-first search whose checks, abandoned branches, subgoals and work-back steps are the computation
    (Stream of Search, Gandhi et al., 2024; ``search_traces``); an incorrect trace is a search that ran out
    of budget, and model outputs in this format are counted exactly (``count_behaviors``)."""
    search_max_value: int = Field(999, ge=1)
    """``search`` traces: the largest intermediate value a step may produce (steps beyond it are not taken),
    which bounds the arithmetic a tiny model must learn; a problem that needs more is skipped."""
    search_max_chars: int = Field(600, ge=50)
    """``search`` traces: the longest thought written, in characters; a solved trace must fit (the writer
    tries other expansion orders, and a problem with none is skipped), a failing one stops at it."""

    @field_validator("held_out_targets", mode="before")
    @classmethod
    def _one_target(cls, value: Any) -> Any:
        """One held-out target given alone (``--held-out-targets 42`` on the command line) is a list of one."""
        return [value] if isinstance(value, int | str) else value

    @field_validator("custom_template")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        return None if value is None else prompts.check_custom_template(value)

    @model_validator(mode="after")
    def _check(self) -> CountdownOptions:
        if self.template == "custom" and self.custom_template is None:
            raise ValueError("template 'custom' needs custom_template")
        if (
            self.scorer == "paper"
            and self.template == "custom"
            and not any(marker in (self.custom_template or "") for marker in paper_scorer.MARKERS)
        ):
            raise ValueError(
                f"scorer 'paper' reads the response after {' or '.join(map(repr, paper_scorer.MARKERS))} in the "
                "prompt, which custom_template lacks: every reward would be 0"
            )
        if self.source is not None and self.held_out_targets:
            raise ValueError("held_out_targets applies to generated sets, not to an imported source")
        r = self.ranges
        for low, high in (
            ("min_count", "max_count"),
            ("min_number", "max_number"),
            ("min_target", "max_target"),
        ):
            if getattr(r, low) > getattr(r, high):
                raise ValueError(f"empty range: {self._bound(low)} > {self._bound(high)}")
        if self.source is None:
            self._check_room(r)
        return self

    def _bound(self, name: str) -> str:
        """`name value`, saying when the value is the preset's (the user may only have set the other bound)."""
        value = getattr(self.ranges, name)
        return f"{name} {value}" + (f" (preset {self.preset})" if getattr(self, name) is None else "")

    def _check_room(self, r: generator.Ranges) -> None:
        """Refuse, before any search, split sizes that the ranges cannot hold even if every multiset of numbers
        reached every target; held-out targets must lie in the target range."""
        if outside := sorted({t for t in self.held_out_targets if not r.min_target <= t <= r.max_target}):
            raise ValueError(
                f"held_out_targets {outside} lie outside the target range {r.min_target}..{r.max_target}"
            )
        multisets = r.multisets()
        targets = r.max_target - r.min_target + 1
        held = len(set(self.held_out_targets))

        def room(what: str, n: int, n_targets: int) -> None:
            if n > multisets * n_targets:
                raise ValueError(
                    f"{what} {n} is more than the {multisets * n_targets} distinct problems the ranges hold at "
                    f"most ({multisets} multisets of numbers x {n_targets} targets); ask for fewer or widen "
                    "the ranges"
                )

        if held:
            room("n_test", self.n_test, held)
            room("n_train", self.n_train, targets - held)
        else:
            room("n_train + n_test", self.n_train + self.n_test, targets)

    @property
    def ranges(self) -> generator.Ranges:
        """The preset's ranges with this recipe's overrides."""
        preset = generator.PRESETS[self.preset]
        overrides = {
            name: getattr(self, name)
            for name in ("min_count", "max_count", "min_number", "max_number", "min_target", "max_target")
            if getattr(self, name) is not None
        }
        return generator.Ranges(**{**preset.__dict__, **overrides})


def _generate(
    option: str, ranges: generator.Ranges, n: int, seed: str, **kwargs: Any
) -> list[generator.Problem]:
    """`generator.generate` for one split; a failed search names the option that asked for too much."""
    try:
        return generator.generate(ranges, n, seed, **kwargs)
    except ValueError as exc:
        raise ValueError(f"{option} {n}: {exc}") from None


class CountdownEnv:
    """Countdown (3-6 numbers, + - * /) with an exact solver; see the package README for the rules."""

    name: ClassVar[str] = "countdown"
    Options: ClassVar[type[BaseModel]] = CountdownOptions
    CorpusOptions: ClassVar[type[BaseModel]] = corpus.CorpusOptions
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(self, options: BaseModel) -> None:
        self.options: CountdownOptions = CountdownOptions.model_validate(options.model_dump())

    def tasks(self, split: str) -> Sequence[Task]:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; countdown has {self.splits}")
        return self._tasks[split]

    @cached_property
    def _tasks(self) -> dict[str, list[Task]]:
        problems = self._problems()
        return {
            split: [self._task(f"countdown-{split}-{i:06d}", p) for i, p in enumerate(items)]
            for split, items in problems.items()
        }

    def _problems(self) -> dict[str, list[generator.Problem]]:
        o = self.options
        if o.source is not None:
            return {
                "train": generator.load_source(o.source, 0, o.n_train),
                "test": generator.load_source(o.source, o.n_train, o.n_train + o.n_test),
            }
        held_out = frozenset(o.held_out_targets)
        # Test first, from its own stream, so the test set does not change with n_train.
        test = _generate(
            "n_test",
            o.ranges,
            o.n_test,
            f"countdown-{o.seed}-test",
            allowed_target=held_out.__contains__ if held_out else None,
        )
        train = _generate(
            "n_train",
            o.ranges,
            o.n_train,
            f"countdown-{o.seed}-train",
            exclude=frozenset(p.key for p in test),
            allowed_target=(lambda t: t not in held_out) if held_out else None,
        )
        return {"train": train, "test": test}

    def _task(self, task_id: str, problem: generator.Problem) -> Task:
        data = problem.record()
        o = self.options
        if o.template == "base":
            prompt = prompts.base_prompt(problem.numbers, problem.target)
        elif o.template == "chat":
            data["messages"] = prompts.chat_messages(problem.numbers, problem.target)
            prompt = data["messages"][-1]["content"]
        else:
            prompt = prompts.custom_prompt(o.custom_template or "", problem.numbers, problem.target)
        return Task(task_id, prompt, data)

    def task_from_record(self, record: Mapping[str, Any]) -> Task:
        """A task from ``numbers`` (or ``nums``) and ``target``; solution fields are filled in lazily by
        ``solve`` (not here: scoring a JSONL file must not run the solver on every line)."""
        numbers, target = generator.parse_record(dict(record))
        problem = generator.Problem(numbers, target, None, -1)
        task = self._task(str(record.get("id", f"countdown-{'-'.join(map(str, numbers))}-{target}")), problem)
        return task

    def score(self, completion: str, task: Task) -> Score:
        """The verdict of ``options.scorer``, with the other scorer's in ``details``."""
        o = self.options
        numbers, target = task.data["numbers"], task.data["target"]
        verdicts = {
            "exact": scorer.score(completion, numbers, target, o.format_reward, o.correct_reward),
            "paper": paper_scorer.score(
                self._paper_prefix(task) + completion, numbers, target, o.format_reward, o.correct_reward
            ),
        }
        other_name = "paper" if o.scorer == "exact" else "exact"
        main, other = verdicts[o.scorer], verdicts[other_name]
        details = {
            "scorer": o.scorer,
            f"{other_name}_reward": other.reward,
            f"{other_name}_reason": other.reason,
            f"{other_name}_correct": other.correct,
        }
        return Score(main.reward, main.reason, main.correct, details)

    def answer_key(self, completion: str, task: Task) -> str | None:
        """The final answer for majority voting (maj@k): the exact value of the answer expression (``32``,
        ``7/2``), read as the active scorer reads it, when the expression is valid (the given numbers, each
        once, and no ``= N`` that contradicts it); None when there is no valid answer.

        Why the value and not the expression: Countdown has many correct expressions per problem (the solver
        counts them), and self-consistency votes on the answer, not on the path to it. Voting on expressions
        (even the solver's canonical forms) would split the votes of a model that finds several solutions
        and favour one that repeats a single wrong one; voting on values makes every correct completion
        agree, so the key of a completion is the target exactly when ``score`` calls it correct. An
        expression over other numbers gives no value (its value says nothing about this problem). Under
        ``scorer: paper`` the value is the paper's float reading, and every value within its tolerance of
        the target is the target."""
        numbers, target = task.data["numbers"], task.data["target"]
        if self.options.scorer == "exact":
            value = scorer.answer_value(completion, numbers)
            return None if value is None else str(value)
        value = paper_scorer.answer_value(self._paper_prefix(task) + completion, numbers)
        if value is None:
            return None
        if abs(value - target) < paper_scorer.TOLERANCE:
            return str(target)
        return str(int(value)) if isinstance(value, float) and value.is_integer() else repr(value)

    def _paper_prefix(self, task: Task) -> str:
        """The prompt text the paper's scorer sees before the response: the prompt itself, or for ``chat`` the
        assistant turn of the paper's Qwen-instruct template (a rendered chat is not known here)."""
        if self.options.template == "chat":
            return "<|im_start|>assistant\n" + prompts.RESPONSE_PREFIX
        return task.prompt

    def solve(self, task: Task, max_solutions: int | None = None) -> list[str]:
        return solver.solutions(task.data["numbers"], task.data["target"], limit=max_solutions)

    def write_trace(self, task: Task, behaviors: frozenset[str], correct: bool, rng: random.Random) -> Trace:
        """A programmatic reasoning trace with the given behaviors (priming sets), in ``trace_style``.
        Raises ValueError when a ``search`` trace of the requested kind does not fit ``search_max_chars``."""
        data = task.data
        if self.options.trace_style == "search":
            return search_traces.write_search_trace(
                data["numbers"],
                data["target"],
                behaviors,
                correct,
                rng,
                max_chars=self.options.search_max_chars,
                max_value=self.options.search_max_value,
            )
        return traces.write_countdown_trace(
            data["numbers"], data["target"], behaviors, correct, rng, data.get("solution")
        )

    def count_behaviors(self, completion: str, task: Task) -> BehaviorTags | None:
        """Exact behavior counts of a completion in the ``search`` format (None for the narrative style,
        where only taggers can estimate them)."""
        if self.options.trace_style != "search":
            return None
        return self.search_counts(completion, task).tags

    def search_counts(self, completion: str, task: Task) -> search_traces.SearchCounts:
        """The exact counter's full reading (true and false checks and steps, give-ups) of a completion's
        thought: the text before ``</think>``, which is where its spans point (the thought opens the
        completion)."""
        thought = completion.split(prompts.THINK_END, 1)[0]
        return search_traces.count_search_behaviors(thought, task.data["target"])

    def check_claims(self, completion: str, task: Task) -> ClaimCounts:
        """True and false step claims, checks and success claims of a completion (``claims``): a completion with
        lines of the search format is read by its exact counter (``search_counts``), any other as prose."""
        search = self.search_counts(completion, task)
        if search.steps:
            return claims.from_search(search)
        return claims.check_prose(completion, task.data["numbers"], task.data["target"])

    def write_corpus(self, options: BaseModel) -> list[str]:
        """A pretraining corpus of arithmetic and train-split derivations (``corpus``)."""
        return corpus.write_corpus(
            self.tasks("train"),
            corpus.CorpusOptions.model_validate(options.model_dump()),
            self.options.search_max_chars,
            self.options.search_max_value,
        )

    def corpus_probes(self, options: BaseModel) -> dict[str, list[tuple[str, str]]]:
        """Arithmetic probes (prompt, expected continuation): fresh lines, and equations no document shows."""
        return corpus.probes(
            self.tasks("train"),
            corpus.CorpusOptions.model_validate(options.model_dump()),
            self.options.search_max_value,
        )

    def completion(self, thought: str, answer: str) -> str:
        """The response text for a thought and an answer, in the format RL generations take."""
        return prompts.completion(thought, answer)

    # The semantics the core asks an environment for (`cogrl.envs`: TaskRecorder, TaggerHints, JudgeSubject,
    # WriterSubject, PrimingDefaults, FormatFailures).
    judge_domain: ClassVar[str] = prompts.JUDGE_DOMAIN
    writer_brief: ClassVar[WriterBrief] = WriterBrief(
        prompts.WRITER_TASK, prompts.WRITER_WRONG_ANSWER, prompts.WRITER_REPLY_FORMAT
    )
    format_failure_reasons: ClassVar[frozenset[str]] = frozenset({"no_answer"})
    """Both scorers say ``no_answer`` when no answer can be read (the paper's ``no_marker`` is a format
    the base prompt opens itself, so it counts as formatted, as it always has)."""

    def task_record(self, task: Task) -> dict[str, Any]:
        """``numbers`` and ``target``: what ``task_from_record`` needs (the solution is recomputed on demand)."""
        return {"numbers": list(task.data["numbers"]), "target": task.data["target"]}

    def tagger_hints(self, task: Task) -> dict[str, Any]:
        """The numbers and the target: the regex tagger's checks against the goal need the target."""
        return {"numbers": list(task.data["numbers"]), "target": task.data["target"]}

    def record_hints(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``numbers`` (a list of integers) and ``target`` (an integer) of a record, each when present."""
        hints: dict[str, Any] = {}
        numbers = record.get("numbers")
        if numbers is not None:
            if not (
                isinstance(numbers, list)
                and all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)
            ):
                raise ValueError("field 'numbers' must be a list of integers")
            hints["numbers"] = numbers
        target = record.get("target")
        if target is not None:
            if not isinstance(target, int) or isinstance(target, bool):
                raise ValueError("field 'target' must be an integer")
            hints["target"] = target
        return hints

    def judge_problem(self, task: Task) -> str | None:
        return prompts.judge_problem(task.data["numbers"], task.data["target"])

    def writer_problem(self, task: Task) -> str:
        return prompts.writer_problem(task.data["numbers"], task.data["target"])

    @classmethod
    def priming_options(cls, n_tasks: int) -> dict[str, Any]:
        """The paper's priming problems (preset ``priming``: 3-4 numbers 1-24, targets 10-25), ``n_tasks`` of
        them and no test split."""
        return {"preset": "priming", "n_train": n_tasks, "n_test": 0}
