"""Priming sets: one schema for every source, built from an environment's tasks, saved with a dataset card.

A row is a prompt (the environment's RL prompt, so SFT and RL see the same text) and a completion (the
thought and answer in the environment's response format), plus what is known about it: the condition, the
task, whether the scorer accepts the answer, the task's payload as JSON (``task``: as the environment records it,
`cogrl.envs.task_record`; `cogrl.priming.card.row_task` reads it back), and the behavior counts and spans (ground truth for synthetic
traces, tagged counts for LLM-written ones). The paper used 1,000 train + 200 validation rows per condition.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogrl.behaviors.types import BEHAVIORS
from cogrl.envs import ClaimChecker, CompletionRenderer, Environment, Task, TraceWriter, task_record
from cogrl.files import InputError, atomic_path
from cogrl.priming.card import dataset_card, summarize
from cogrl.priming.conditions import Condition

if TYPE_CHECKING:
    import datasets

META_FILE = "priming.json"


def priming_tasks(env: Environment, n_total: int, seed: int) -> list[Task]:
    """``n_total`` distinct tasks of the environment's train split, in a seeded random order."""
    tasks = list(env.tasks("train"))
    if len(tasks) < n_total:
        raise InputError(
            f"environment {env.name!r} has {len(tasks)} train tasks, fewer than the {n_total} requested "
            "(raise its train-split size option, e.g. --env-option n_train=...)"
        )
    rng = random.Random(f"priming-tasks/{seed}")
    return rng.sample(tasks, n_total)


def completion_text(env: Environment, thought: str, answer: str) -> str:
    """The response text in the environment's own format (``CompletionRenderer``; Countdown: thought,
    </think>, <answer> tags). No default: where RL generations start is the environment's prompt's choice."""
    if not isinstance(env, CompletionRenderer):
        raise InputError(f"environment {env.name!r} cannot render completions (it has no completion method)")
    return env.completion(thought, answer)


def make_row(
    env: Environment,
    task: Task,
    condition: Condition,
    thought: str,
    answer: str,
    counts: Mapping[str, int | None],
    spans: Mapping[str, Sequence[tuple[int, int]]],
    source: str,
) -> dict[str, Any]:
    """One dataset row; ``spans`` index into the thought, which is also the start of the completion."""
    completion = completion_text(env, thought, answer)
    score = env.score(completion, task)
    return {
        "id": task.id,
        "prompt": task.prompt,
        "completion": completion,
        "condition": condition.name,
        "source": source,
        "task": json.dumps(task_record(env, task), sort_keys=True),
        "correct": score.correct,
        "reward": score.reward,
        "behaviors": {b: counts.get(b) for b in BEHAVIORS},
        "behavior_spans": {b: [list(s) for s in spans.get(b, ())] for b in BEHAVIORS},
    }


def false_success_claims(env: Environment, completion: str, task: Task) -> int | None:
    """How many times a completion claims a success it did not reach (``ClaimChecker``), or None when the
    environment cannot tell. A natural failure is a wrong answer with none: it fails without pretending."""
    if not isinstance(env, ClaimChecker):
        return None
    return env.check_claims(completion, task).false_success_claims


def synthetic_row(
    env: Environment, task: Task, condition: Condition, seed: int, tokenizer: Any = None
) -> dict:
    """A programmatic trace for one task; its behaviors are known by construction (ground truth)."""
    if not isinstance(env, TraceWriter):
        raise InputError(f"environment {env.name!r} cannot write synthetic traces (no write_trace method)")
    # Seeded by what the writer is asked for, not the condition's name: a control (empty_cot, length_matched)
    # transforms exactly the traces its source condition would have written for the same tasks.
    rng = random.Random(f"{seed}/{','.join(sorted(condition.behaviors))}/{condition.correct}/{task.id}")
    trace = env.write_trace(task, condition.behaviors, condition.correct, rng)
    trace = condition.apply(trace, tokenizer)
    counts = {b: len(trace.instances.get(b, ())) for b in BEHAVIORS}
    return make_row(env, task, condition, trace.thought, trace.answer, counts, trace.instances, "synthetic")


def build_synthetic(
    env: Environment, condition: Condition, n: int, n_val: int = 200, seed: int = 0, tokenizer: Any = None
) -> datasets.DatasetDict:
    """A priming set written by the environment's trace writer: ``n`` train and ``n_val`` validation rows."""
    if condition.needs_tokenizer and tokenizer is None:
        raise InputError(f"condition {condition.name!r} needs a tokenizer (--tokenizer DIR)")
    priming_tasks(env, n + n_val, seed)  # refuses a train split that is too small, naming the option
    rows: list[dict] = []
    skipped = 0
    for task in priming_tasks(env, len(env.tasks("train")), seed):
        if len(rows) == n + n_val:
            break
        try:
            rows.append(synthetic_row(env, task, condition, seed, tokenizer))
        except ValueError:  # the writer cannot write this kind of trace for this task within its limits
            skipped += 1
    if len(rows) < n + n_val:
        raise InputError(
            f"condition {condition.name!r}: only {len(rows)} of {n + n_val} tasks have such a trace "
            f"({skipped} skipped by the trace writer's limits); ask for fewer rows or relax the limits"
        )
    return to_dataset_dict(rows[:n], rows[n:])


def to_dataset_dict(train: list[dict], validation: list[dict]) -> datasets.DatasetDict:
    """The rows as a DatasetDict with the priming schema; ``validation`` is left out when empty."""
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "prompt": datasets.Value("string"),
            "completion": datasets.Value("string"),
            "condition": datasets.Value("string"),
            "source": datasets.Value("string"),
            "task": datasets.Value("string"),
            "correct": datasets.Value("bool"),
            "reward": datasets.Value("float64"),
            "behaviors": {b: datasets.Value("int64") for b in BEHAVIORS},
            "behavior_spans": {
                b: datasets.Sequence(datasets.Sequence(datasets.Value("int64"))) for b in BEHAVIORS
            },
        }
    )
    splits = {"train": train, "validation": validation}
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {name: [row[name] for row in rows] for name in features}, features
            )
            for split, rows in splits.items()
            if rows or split == "train"  # an empty split cannot be saved to disk and loaded back
        }
    )


def save_priming_set(
    dataset: datasets.DatasetDict, out: str | Path, meta: Mapping[str, Any], env: Environment
) -> dict[str, Any]:
    """Save atomically: the splits (``save_to_disk``), ``priming.json`` (how it was built + statistics) and a
    README.md dataset card. Returns the statistics; ``env`` is the rows' environment (their tasks' hints)."""
    stats = {split: summarize(dataset[split], env) for split in dataset}
    with atomic_path(out) as tmp:
        dataset.save_to_disk(str(tmp))
        (tmp / META_FILE).write_text(json.dumps({**meta, "stats": stats}, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(dataset_card(meta, stats), encoding="utf-8")
    return stats


def load_priming_set(path: str | Path) -> datasets.DatasetDict:
    """A priming set saved by ``save_priming_set`` (or any DatasetDict with prompt/completion columns)."""
    import datasets

    path = Path(path)
    if not (path / "dataset_dict.json").is_file():
        raise InputError(
            f"{path}: not a priming set directory (no dataset_dict.json; build one with cogrl prime build)"
        )
    dataset = datasets.load_from_disk(str(path))
    for split in dataset:
        missing = {"prompt", "completion"} - set(dataset[split].column_names)
        if missing:
            raise InputError(f"{path}: split {split!r} lacks column(s) {sorted(missing)}")
    if "train" not in dataset:
        raise InputError(f"{path}: no 'train' split (found {sorted(dataset)})")
    return dataset
