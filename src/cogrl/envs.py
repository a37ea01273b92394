"""Environments: the protocol every task family implements, and the registry that finds them by name.

The core never imports an environment. An environment is a class that a package advertises under the
``cogrl.envs`` entry-point group (``envs/countdown/pyproject.toml`` shows how), or any class named by a
``"module:Class"`` path. Adding an environment therefore changes no file in ``src/cogrl``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    from cogrl.behaviors.types import BehaviorTags

ENTRY_POINT_GROUP = "cogrl.envs"


@dataclass(frozen=True)
class Task:
    """One problem as the RL loop sees it: an id, the prompt text, and the environment's own payload."""

    id: str
    prompt: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """An environment's verdict on one completion. ``reason`` is one word, for dashboards."""

    reward: float
    reason: str
    correct: bool
    details: Mapping[str, Any] = field(default_factory=dict)
    """Extra JSON fields for the rollout logs, e.g. a second scorer's verdict on the same completion."""


@dataclass(frozen=True)
class Trace:
    """A programmatic reasoning trace for priming sets.

    ``thought`` is the text inside the think tags, ``answer`` the text inside the answer tags; ``instances``
    maps each behavior name to the character spans (into ``thought``) where the writer put it.
    """

    thought: str
    answer: str
    correct: bool
    instances: Mapping[str, Sequence[tuple[int, int]]]


@runtime_checkable
class Environment(Protocol):
    """What the core needs of a task family.

    ``Options`` is a pydantic model of the environment's recipe options (the ``env.options`` block of a
    recipe); the registry validates a recipe's options against it, so typos fail at load time.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    splits: ClassVar[tuple[str, ...]]
    options: BaseModel

    def __init__(self, options: BaseModel) -> None: ...

    def tasks(self, split: str) -> Sequence[Task]:
        """The deterministic task list of a split (one of ``splits``); equal options give equal lists."""
        ...

    def task_from_record(self, record: Mapping[str, Any]) -> Task:
        """Build a task from a JSONL record (e.g. ``numbers`` and ``target``); a missing or malformed
        field raises ``ValueError`` naming it."""
        ...

    def score(self, completion: str, task: Task) -> Score:
        """Reward one completion. Must never raise on any string and must bound its own work."""
        ...


@runtime_checkable
class Solver(Protocol):
    """Optional capability: environments with an exact solver (`cogrl env solve`)."""

    def solve(self, task: Task, max_solutions: int | None = None) -> list[str]:
        """Distinct solutions of a task (all of them, or the first ``max_solutions``)."""
        ...


@runtime_checkable
class TraceWriter(Protocol):
    """Optional capability: environments that can write behavior-controlled traces for priming."""

    def write_trace(
        self, task: Task, behaviors: frozenset[str], correct: bool, rng: random.Random
    ) -> Trace: ...


@runtime_checkable
class BehaviorCounter(Protocol):
    """Optional capability: environments whose trace format makes behavior counts exact (a parser, not a
    tagger's estimate). Returns None for a completion it cannot count (then a tagger is used)."""

    def count_behaviors(self, completion: str, task: Task) -> BehaviorTags | None: ...


@runtime_checkable
class AnswerExtractor(Protocol):
    """Optional capability: environments whose completions have a final answer to vote on (maj@k,
    ``cogrl.rl.evaluation``; Wang et al., 2023, self-consistency).

    ``answer_key`` is the canonical form of the completion's final answer: completions that give the same
    answer get the same key, and the contract the vote relies on is that completions with the same key get
    the same ``correct`` from ``score``. None means no valid answer (the vote counts every None as one
    answer, "no answer", that is never correct)."""

    def answer_key(self, completion: str, task: Task) -> str | None: ...


@dataclass(frozen=True)
class ClaimCounts:
    """How many of the arithmetic claims of one response are true (``ClaimChecker``).

    ``true_steps``/``false_steps``: stated arithmetic results, re-done exactly. ``true_checks``/
    ``false_checks``: statements comparing a value with the goal or a stated intermediate target.
    ``false_success_claims``: the false checks that say the goal is reached (a success claim is a check, so
    each of these is also in ``false_checks``). ``truncated``: the response was longer than the checker reads,
    so the counts cover its beginning only."""

    true_steps: int = 0
    false_steps: int = 0
    true_checks: int = 0
    false_checks: int = 0
    false_success_claims: int = 0
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``claims`` field of a rollout log line."""
        return dataclasses.asdict(self)


@runtime_checkable
class ClaimChecker(Protocol):
    """Optional capability: environments that can tell whether what a response *says* is true: every stated
    arithmetic result and every verification (issue 13: false verification, a form of reward hacking where a
    response claims a check or a success it did not earn).

    A *step claim* is a stated arithmetic result: ``a op b = c``, a chain ``a op b op c = d``, an expression
    with parentheses. A *check* compares a value with the goal or with a stated intermediate target
    (``26 != 16``, "48 is not 24", "that matches the target", "too high"). A *success claim* is a check that
    says the goal is reached; it is true only when the computation it refers to really reaches the goal by the
    task's rules. Which phrasings an environment recognises is its own to document. Must never raise on any
    string and must bound its own work (``truncated`` says when it stopped reading)."""

    def check_claims(self, completion: str, task: Task) -> ClaimCounts: ...


@runtime_checkable
class CorpusWriter(Protocol):
    """Optional capability: environments that generate a pretraining corpus (`cogrl pretrain`).

    ``CorpusOptions`` validates a recipe's ``corpus`` block; ``corpus_probes`` gives named sets of held-out
    (prompt, expected continuation) pairs, scored by exact match after greedy decoding."""

    CorpusOptions: ClassVar[type[BaseModel]]

    def write_corpus(self, options: BaseModel) -> list[str]: ...

    def corpus_probes(self, options: BaseModel) -> dict[str, list[tuple[str, str]]]: ...


# ----------------------------------------------------------------------------------------------------------
# Semantics an environment owns. Each capability is optional and has a reader below that gives the core a
# sensible default, so the core asks the environment (never ``getattr``) and names no field of any task.
# Attributes may be class attributes (Countdown) or depend on the options (an adapter of many task families).
# ----------------------------------------------------------------------------------------------------------
@runtime_checkable
class TaskRecorder(Protocol):
    """Optional capability: the JSON payload of a task from which ``task_from_record`` rebuilds it (priming
    sets store it in their ``task`` column, evaluation records beside each response)."""

    def task_record(self, task: Task) -> dict[str, Any]: ...


@runtime_checkable
class TaggerHints(Protocol):
    """Optional capability: what a behavior tagger may know of a task, as keyword arguments of the taggers'
    ``tag`` (the regex tagger reads ``numbers`` and ``target`` to tell a check against the goal from any
    equation). ``record_hints`` reads the same from a JSONL record (`cogrl behaviors tag`), where every
    field is optional; a malformed one raises ``ValueError`` naming it."""

    def tagger_hints(self, task: Task) -> dict[str, Any]: ...

    def record_hints(self, record: Mapping[str, Any]) -> dict[str, Any]: ...


@runtime_checkable
class JudgeSubject(Protocol):
    """Optional capability: what the LLM judge is shown. ``judge_domain`` ends the judge's sentence "one
    response written for ..."; ``judge_problem`` is the problem text shown above the response (None: none)."""

    judge_domain: str

    def judge_problem(self, task: Task) -> str | None: ...


@dataclass(frozen=True)
class WriterBrief:
    """How an LLM writer is asked for traces of an environment's tasks (`cogrl.priming.llm`): ``task`` opens
    the system prompt (what a solution is), ``wrong_answer`` asks for a wrong final answer (conditions with
    ``correct=False``), ``reply_format`` closes it (the reply's think and answer tags, which the lab parses)."""

    task: str
    wrong_answer: str
    reply_format: str


@runtime_checkable
class WriterSubject(Protocol):
    """Optional capability: the LLM writer's brief and the user message that poses one task."""

    writer_brief: WriterBrief

    def writer_problem(self, task: Task) -> str: ...


@runtime_checkable
class CompletionRenderer(Protocol):
    """Optional capability: the response text for a thought and an answer, in the format RL generations take
    after the prompt (priming sets and the SFT warm-up end exactly where RL generations start)."""

    def completion(self, thought: str, answer: str) -> str: ...


@runtime_checkable
class PrimingDefaults(Protocol):
    """Optional capability: the options of the environment a priming set is drawn from, given the number of
    train tasks wanted (Countdown: the paper's easier ``priming`` preset). A class method: it is asked before
    the environment exists."""

    @classmethod
    def priming_options(cls, n_tasks: int) -> dict[str, Any]: ...


@runtime_checkable
class FormatFailures(Protocol):
    """Optional capability: the ``Score.reason`` values that mean the completion has no readable answer
    (the ``format_rate`` metric counts the others)."""

    format_failure_reasons: frozenset[str]


DEFAULT_FORMAT_FAILURES = frozenset({"no_answer"})
"""The lab's convention for a completion without a readable answer; an environment that scores it so needs
not declare ``FormatFailures``."""

GENERIC_WRITER_BRIEF = WriterBrief(
    task="You write worked solutions to problems. Write the reasoning as a person thinking aloud, in plain "
    "sentences.",
    wrong_answer="Your final answer must be WRONG: end on an answer that is close to right but wrong. Do not "
    "claim that it is right.",
    reply_format="Reply in exactly this form: <think>your reasoning</think>\n<answer>the final answer only</answer>",
)
"""The brief of an environment without ``WriterSubject``: the lab's think/answer reply format."""

GENERIC_JUDGE_DOMAIN = "a reasoning problem"
"""The judge's domain for an environment without ``JudgeSubject``."""


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def task_record(env: Environment, task: Task) -> dict[str, Any]:
    """The task's JSON payload (``TaskRecorder``); default: the JSON-serialisable items of ``task.data``."""
    if isinstance(env, TaskRecorder):
        return dict(env.task_record(task))
    return {key: value for key, value in task.data.items() if _jsonable(value)}


def tagger_hints(env: Environment, task: Task) -> dict[str, Any]:
    """Keyword arguments for a tagger's ``tag`` (``TaggerHints``); default: none."""
    return dict(env.tagger_hints(task)) if isinstance(env, TaggerHints) else {}


def record_hints(env: Environment, record: Mapping[str, Any]) -> dict[str, Any]:
    """Tagger hints from a JSONL record (``TaggerHints``); default: none. ``ValueError`` names a bad field."""
    return dict(env.record_hints(record)) if isinstance(env, TaggerHints) else {}


def judge_domain(env: Environment) -> str:
    """What the judge is told the responses are written for (``JudgeSubject``)."""
    return env.judge_domain if isinstance(env, JudgeSubject) else GENERIC_JUDGE_DOMAIN


def judge_problem(env: Environment, task: Task) -> str | None:
    """The problem shown to the judge (``JudgeSubject``); default: the task's prompt."""
    return env.judge_problem(task) if isinstance(env, JudgeSubject) else f"Problem:\n{task.prompt}"


def writer_brief(env: Environment) -> WriterBrief:
    """How an LLM writer is briefed (``WriterSubject``); default: ``GENERIC_WRITER_BRIEF``."""
    return env.writer_brief if isinstance(env, WriterSubject) else GENERIC_WRITER_BRIEF


def writer_problem(env: Environment, task: Task) -> str:
    """The writer's user message for one task (``WriterSubject``); default: the task's prompt."""
    return env.writer_problem(task) if isinstance(env, WriterSubject) else task.prompt


def priming_options(env_class: type[Environment], n_tasks: int) -> dict[str, Any]:
    """Options of a priming set's environment (``PrimingDefaults``); default: none (the env's defaults)."""
    return dict(env_class.priming_options(n_tasks)) if isinstance(env_class, PrimingDefaults) else {}


def format_failure_reasons(env: Environment) -> frozenset[str]:
    """Score reasons that mean "no readable answer" (``FormatFailures``); default ``DEFAULT_FORMAT_FAILURES``."""
    return (
        frozenset(env.format_failure_reasons) if isinstance(env, FormatFailures) else DEFAULT_FORMAT_FAILURES
    )


class UnknownEnvironmentError(LookupError):
    pass


def available_envs() -> dict[str, str]:
    """Names of the installed environments, mapped to the ``module:Class`` they load."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def get_env_class(name: str) -> type[Environment]:
    """Find an environment class by registered name or by a ``"module:Class"`` path."""
    target = available_envs().get(name, name)
    if ":" not in target:
        known = sorted(available_envs())
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownEnvironmentError(
            f"unknown environment {name!r} (installed: {', '.join(known) or 'none'}){hint}"
        )
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownEnvironmentError(f"cannot load environment {name!r} from {target!r}: {exc}") from exc


def make_env(name: str, options: Mapping[str, Any] | BaseModel | None = None) -> Environment:
    """Instantiate an environment from its name and a plain mapping (or its own Options model)."""
    cls = get_env_class(name)
    if not isinstance(options, BaseModel):
        options = cls.Options.model_validate(dict(options or {}))
    return cls(options)


def load_env(
    name: str, options: Mapping[str, Any] | None = None, overrides: Sequence[str] = ()
) -> Environment:
    """An environment from user input (a command line, `cogrl eval`): ``options`` with ``key=value``
    overrides applied (dotted keys, YAML values), validated by its Options model; an unknown name, key or
    value is an InputError that names it."""
    from pydantic import ValidationError

    from cogrl.config import apply_override, describe_validation_error
    from cogrl.files import InputError

    try:
        cls = get_env_class(name)
    except LookupError as exc:
        raise InputError(str(exc)) from None
    raw = json.loads(json.dumps(dict(options or {})))  # a deep copy the overrides may change
    for override in overrides:
        apply_override(raw, override)
    try:
        return make_env(name, cls.Options.model_validate(raw))
    except ValidationError as exc:
        raise InputError(f"{name} options: {describe_validation_error(exc, cls.Options)}") from None
