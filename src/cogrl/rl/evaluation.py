"""Evaluation of a model or an RL checkpoint on an environment: pass@k and maj@k curves with bootstrap
intervals over problems, and accuracy per behavior at matched difficulty (`cogrl eval`; docs/evaluation.md).

The estimators are small pure functions; `evaluate` samples, scores, tags and writes an output directory:

    passk.csv      k, pass@k, ci_low, ci_high, maj@k, maj_ci_low, maj_ci_high
    passk.png      both curves against k (log scale) with their interval bands
    behaviors.csv  pass@1 with and without each behavior per difficulty stratum, and pooled over strata
    samples.jsonl  every response: task, completion, score, answer key, difficulty, behavior counts
    eval.json      model, environment options, seeds, sampling settings, package versions, the figures

This module sits at the RL layer: it reuses the rollout backends (in-process, without Ray), the unbiased
pass@k of `cogrl.rl.metrics`, the run directory's checkpoints and metadata of `cogrl.rl.runs`.
"""

from __future__ import annotations

import csv
import io
import json
import time
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cogrl.behaviors import BEHAVIORS, BehaviorTags
from cogrl.envs import (
    AnswerExtractor,
    BehaviorCounter,
    ClaimChecker,
    ClaimCounts,
    Environment,
    Score,
    Solver,
    Task,
    format_failure_reasons,
    load_env,
    tagger_hints,
    task_record,
)
from cogrl.files import InputError, atomic_path, dumps
from cogrl.rl.batch import Generation
from cogrl.rl.metrics import pass_at_k

if TYPE_CHECKING:
    from cogrl.config import RolloutConfig, TrainRecipe

PASSK_COLUMNS = ("k", "pass@k", "ci_low", "ci_high", "maj@k", "maj_ci_low", "maj_ci_high")
BEHAVIOR_COLUMNS = (
    "behavior", "difficulty", "responses", "n_with", "n_without", "pass1_with", "pass1_without",
    "difference", "ci_low", "ci_high", "crude_difference",
)  # fmt: skip
POOLED = "pooled"
"""The ``difficulty`` of a behavior's row pooled over strata."""
ROWS_PER_CALL = 512
"""Responses asked of the backend per call (prompts x n); bounds the HF backend's batch, not the result."""


# --------------------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------------------
def maj_at_k(keys: Sequence[Hashable | None], correct: Sequence[bool], k: int) -> float:
    """maj@k of one problem from n >= k samples: the probability that, among k samples drawn without
    replacement from the n, a correct answer has a strict plurality of the votes (self-consistency: Wang et
    al., 2023). ``keys[i]`` is sample i's final answer (None: no valid answer, which votes as one answer,
    "none", that is never correct); ``correct[i]`` its verdict.

    Estimator: the average over all C(n, k) subsets, counted exactly (no subset is drawn): for a correct key
    with c votes, the subsets where it holds x votes and every other answer fewer than x. This is the same
    U-statistic as Chen et al.'s unbiased pass@k, hence unbiased for k fresh samples. Ties are broken
    deterministically against the correct answer (a tie is not a majority), so maj@1 = pass@1 and an even k
    is not credited with coin flips.

    Raises ValueError when samples with one key disagree on correctness, or a None key is correct (the
    environment's `answer_key` broke its contract)."""
    n = len(keys)
    if len(correct) != n or not 0 < k <= n:
        raise ValueError(
            f"maj@k needs 0 < k <= n and one verdict per key (n={n}, k={k}, {len(correct)} verdicts)"
        )
    votes = Counter(keys)
    verdicts: dict[Hashable | None, bool] = {}
    for key, right in zip(keys, correct, strict=True):
        if key is None and right:
            raise ValueError("answer key None (no valid answer) is given to a correct sample")
        if verdicts.setdefault(key, bool(right)) != bool(right):
            raise ValueError(f"answer key {key!r} is given to correct and incorrect samples")
    favourable = 0
    for key in (key for key, right in verdicts.items() if right):
        others = [count for other, count in votes.items() if other != key]
        for x in range(1, min(votes[key], k) + 1):
            favourable += comb(votes[key], x) * _ways_below(others, x, k - x)
    return favourable / comb(n, k)


def _ways_below(groups: Sequence[int], cap: int, size: int) -> int:
    """Ways to choose ``size`` samples from groups of these sizes taking fewer than ``cap`` from each: the
    coefficient of t^size in the product over groups of sum_{y < cap} C(c, y) t^y (exact integers)."""
    poly = [1]
    for count in groups:
        terms = [comb(count, y) for y in range(min(count, cap - 1) + 1)]
        grown = [0] * min(len(poly) + len(terms) - 1, size + 1)
        for i, a in enumerate(poly):
            for j, b in enumerate(terms[: len(grown) - i]):
                grown[i + j] += a * b
        poly = grown
    return poly[size] if size < len(poly) else 0


def bootstrap_weights(n_problems: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` bootstrap resamples of the problems as multiplicities, shape (resamples, n_problems):
    row b says how often each problem was drawn (with replacement, n_problems draws). A statistic of the
    resample is the statistic with these weights, so every figure of one evaluation shares the resamples."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_problems, np.full(n_problems, 1.0 / n_problems), size=resamples)


def percentile_interval(statistics: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap interval (Efron, 1979) of each column of (resamples, ...) statistics; NaN
    resamples (a statistic undefined on that resample) are left out."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    tail = (1 - confidence) / 2
    with warnings.catch_warnings():  # a statistic undefined on every resample is NaN, said by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(statistics, [tail, 1 - tail], axis=0)
    return low, high


def passk_rows(
    correct: Sequence[Sequence[bool]],
    keys: Sequence[Sequence[Hashable | None]] | None,
    ks: Sequence[int],
    weights: np.ndarray,
    confidence: float = 0.95,
    problem_ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per k: the mean over problems of the unbiased pass@k and of maj@k (None without ``keys``), with
    percentile bootstrap intervals from ``weights`` (`bootstrap_weights`)."""
    ids = problem_ids or [str(i) for i in range(len(correct))]
    pass_k = np.array([[pass_at_k(len(c), sum(c), k) for k in ks] for c in correct])
    tables = {"pass@k": pass_k}
    if keys is not None:
        maj = np.empty_like(pass_k)
        for p, (problem_keys, verdicts) in enumerate(zip(keys, correct, strict=True)):
            try:
                maj[p] = [maj_at_k(problem_keys, verdicts, k) for k in ks]
            except ValueError as exc:
                raise ValueError(f"problem {ids[p]}: {exc}") from None
        tables["maj@k"] = maj
    figures = {}
    for name, values in tables.items():
        low, high = percentile_interval(weights @ values / len(values), confidence)
        figures[name] = (values.mean(axis=0), low, high)
    rows = []
    for i, k in enumerate(ks):
        mean, low, high = (float(a[i]) for a in figures["pass@k"])
        row = {"k": k, "pass@k": mean, "ci_low": low, "ci_high": high}
        maj_mean, maj_low, maj_high = (
            (float(a[i]) for a in figures["maj@k"]) if keys is not None else [None] * 3
        )
        rows.append({**row, "maj@k": maj_mean, "maj_ci_low": maj_low, "maj_ci_high": maj_high})
    return rows


def behavior_rows(
    samples: Sequence[Mapping[str, Any]], resamples: int, seed: int, confidence: float = 0.95
) -> list[dict[str, Any]]:
    """pass@1 of responses with and without each behavior at matched difficulty.

    ``samples``: records with ``task_id``, ``difficulty`` (one stratum per value; None is a stratum too),
    ``correct`` and ``behaviors`` (behavior -> count, None when unknown: left out for that behavior), as
    `cogrl eval` writes them. Per behavior, one row per stratum, then the ``pooled`` row: the stratum
    differences (with - without) averaged with weights proportional to stratum size (responses with a known
    count), over the strata that have responses both with and without the behavior (direct
    standardisation); ``pass1_with``/``pass1_without`` there are the same weighted means, ``crude_difference``
    the difference without strata (what difficulty confounds), and ``ci_low``/``ci_high`` a percentile
    bootstrap interval of the pooled difference over problems (a problem's responses resampled together)."""
    order: dict[str, int] = {}
    for sample in samples:
        order.setdefault(str(sample["task_id"]), len(order))
    strata: dict[Any, list[int]] = {}
    difficulty = {str(s["task_id"]): s.get("difficulty") for s in samples}
    for task_id, index in order.items():
        strata.setdefault(difficulty[task_id], []).append(index)
    levels = sorted(strata, key=lambda d: (d is None, d if d is not None else 0))
    masks = [np.isin(np.arange(len(order)), strata[level]) for level in levels]
    weights = np.vstack([np.ones(len(order)), bootstrap_weights(len(order), resamples, seed)])
    rows = []
    for behavior in BEHAVIORS:
        counts = np.zeros((len(order), 4))  # per problem: n with, correct with, n without, correct without
        for sample in samples:
            count = sample["behaviors"].get(behavior)
            if count is not None:
                column = 0 if count > 0 else 2
                counts[order[str(sample["task_id"])], column : column + 2] += (1, bool(sample["correct"]))
        table = _standardised(weights, counts, masks)
        for s, level in enumerate(levels):
            n_with, n_without = table["n_with"][0, s], table["n_without"][0, s]
            rows.append(
                {
                    "behavior": behavior,
                    "difficulty": level,
                    "responses": int(n_with + n_without),
                    "n_with": int(n_with),
                    "n_without": int(n_without),
                    "pass1_with": _number(table["with"][0, s]),
                    "pass1_without": _number(table["without"][0, s]),
                    "difference": _number(table["with"][0, s] - table["without"][0, s]),
                }
            )
        low, high = percentile_interval(table["pooled"][1:], confidence)
        used = table["used"][0]
        rows.append(
            {
                "behavior": behavior,
                "difficulty": POOLED,
                "responses": int((table["n_with"][0] + table["n_without"][0])[used].sum()),
                "n_with": int(table["n_with"][0][used].sum()),
                "n_without": int(table["n_without"][0][used].sum()),
                "pass1_with": _number(table["pooled_with"][0]),
                "pass1_without": _number(table["pooled_without"][0]),
                "difference": _number(table["pooled"][0]),
                "ci_low": _number(low),
                "ci_high": _number(high),
                "crude_difference": _number(table["crude"][0]),
            }
        )
    return rows


def _standardised(
    weights: np.ndarray, counts: np.ndarray, masks: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """Per-stratum rates and the stratum-size-weighted pooled rates of (resample weights) x (problem counts);
    row 0 of ``weights`` is the sample itself. NaN where a rate or a pooled figure is undefined."""
    per_stratum = np.stack([weights[:, mask] @ counts[mask] for mask in masks], axis=1)  # (B, S, 4)
    n_with, c_with, n_without, c_without = np.moveaxis(per_stratum, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_with, rate_without = c_with / n_with, c_without / n_without
        used = (n_with > 0) & (n_without > 0)
        size = np.where(used, n_with + n_without, 0.0)
        total = size.sum(axis=1)
        pooled_with = (np.where(used, rate_with, 0.0) * size).sum(axis=1) / total
        pooled_without = (np.where(used, rate_without, 0.0) * size).sum(axis=1) / total
        crude = c_with.sum(axis=1) / n_with.sum(axis=1) - c_without.sum(axis=1) / n_without.sum(axis=1)
    return {
        "n_with": n_with,
        "n_without": n_without,
        "with": rate_with,
        "without": rate_without,
        "used": used,
        "pooled_with": pooled_with,
        "pooled_without": pooled_without,
        "pooled": pooled_with - pooled_without,
        "crude": crude,
    }


def _number(value: Any) -> float | None:
    """A float for the tables, None for an undefined (NaN) figure."""
    value = float(value)
    return None if np.isnan(value) else value


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV with these columns; None is an empty cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------------
# What is evaluated
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """What MODEL_OR_CHECKPOINT names: the model directory to load and, for an RL run or one of its
    checkpoints, the run's recipe, whose environment, rollout and tagging settings become the defaults."""

    model_dir: Path
    recipe: TrainRecipe | None = None
    checkpoint_step: int | None = None


def resolve_source(path: str | Path) -> Source:
    """A Hugging Face model directory (an SFT output, a pretrained base, ``package:smollm2``), a run's
    checkpoint directory (``runs/X/checkpoints/step-000020``: itself a model directory, or under LoRA an
    adapter directory, merged into its base) or a run directory (its newest checkpoint, which must pass its
    manifest check)."""
    from cogrl.config import ModelConfig, load_recipe
    from cogrl.models import resolve_model
    from cogrl.rl.runs import CHECKPOINT, RunDir, checkpoint_fault

    given = Path(path).expanduser()
    if (given / "config.yaml").is_file() and not (given / "config.json").is_file():
        run = RunDir(given, load_recipe(given / "config.yaml"))
        last = run.last_checkpoint()
        if last is None:
            raise InputError(f"{path}: a run directory without a checkpoint (no checkpoints/step-NNNNNN)")
        step, checkpoint = last
        if (fault := checkpoint_fault(checkpoint)) is not None:
            raise InputError(f"{checkpoint}: {fault}; give an earlier checkpoint directory instead")
        return Source(resolve_model(ModelConfig(path=str(checkpoint))), run.recipe, step)
    model_dir = resolve_model(ModelConfig(path=str(path)))
    run_root = given.parent.parent
    if (match := CHECKPOINT.match(given.name)) and (run_root / "config.yaml").is_file():
        return Source(model_dir, load_recipe(run_root / "config.yaml"), int(match.group(1)))
    return Source(model_dir)


@dataclass(frozen=True)
class EvalSettings:
    """Everything `cogrl eval` decides besides the model; None means the run's setting (for a run or a
    checkpoint) or the default."""

    env: str | None = None
    """Environment name (default: the run's, else countdown)."""
    env_options: Sequence[str] = ()
    """``key=value`` (YAML values, dotted keys) over the run's env options (or the environment's defaults)."""
    split: str = "test"
    problems: int | None = None
    """The first this many problems of the split (None: all)."""
    n: int = 64
    """Samples per problem."""
    ks: Sequence[int] | None = None
    """The k of the curve (None: 1, 2, 4, ... up to n, and n)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int | None = None
    max_prompt_tokens: int | None = None
    backend: str | None = None
    device: str | None = None
    dtype: str | None = None
    tag: str = "regex"
    """``regex`` (the span-level tagger), ``exact`` (the environment's BehaviorCounter; a completion it
    cannot count has unknown counts) or ``none``."""
    seed: int = 0
    resamples: int = 1000
    confidence: float = 0.95


def check_ks(ks: Sequence[int] | None, n: int) -> tuple[int, ...]:
    """Sorted distinct k values, each 1 <= k <= n (a k above n has no unbiased estimate); None gives the
    powers of two up to n, and n."""
    if n < 1:
        raise InputError(f"n={n}: at least one sample per problem")
    if ks is None:
        return tuple(sorted({1 << i for i in range(n.bit_length()) if 1 << i <= n} | {n}))
    if not ks:
        raise InputError("k: give at least one value")
    for k in ks:
        if k < 1:
            raise InputError(f"k={k}: every k must be at least 1")
        if k > n:
            raise InputError(f"k={k} is larger than n={n} samples per problem (pass@k needs k <= n)")
    return tuple(sorted(set(ks)))


# --------------------------------------------------------------------------------------------------------
# Sampling, scoring and tagging (shared by `cogrl eval` and `cogrl audit`)
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplingPlan:
    """What `plan_sampling` resolved and checked before any model is loaded, so that every bad argument is
    refused before the slow part: the model, the environment and its problems, the rollout settings."""

    model: str
    """The model argument as given."""
    source: Source
    env_name: str
    env: Environment
    tasks: list[Task]
    rollout: RolloutConfig
    device: str
    dtype: str
    recipe: TrainRecipe | None
    """The recipe that gave the defaults (the one passed, else the run's), if any."""

    @property
    def patterns(self) -> str | None:
        """The regex pattern set: the recipe's, else the tagger's default."""
        return self.recipe.behaviors.patterns if self.recipe else None


def plan_sampling(
    model: str | Path, settings: EvalSettings, recipe: TrainRecipe | None = None
) -> SamplingPlan:
    """Resolve the model, the environment, the problems and the rollout settings; ``recipe`` (else the run's
    recipe, for a run or a checkpoint) gives the defaults. A bad value is an InputError naming it."""
    from cogrl.config import EnvConfig, RolloutConfig

    check_ks(settings.ks, settings.n)
    if settings.tag not in ("regex", "exact", "none"):
        raise InputError(f"tag {settings.tag!r}: expected regex, exact or none")
    source = resolve_source(model)
    recipe = recipe or source.recipe
    env_name = settings.env or (recipe.env.name if recipe else EnvConfig().name)
    base_options = recipe.env.options if recipe and recipe.env.name == env_name else {}
    env = load_env(env_name, base_options, settings.env_options)
    try:
        split = list(env.tasks(settings.split))
    except ValueError as exc:
        raise InputError(f"env {env_name}: {exc}") from None
    count = len(split) if settings.problems is None else settings.problems
    if not 0 < count <= len(split):
        raise InputError(f"problems={count}: the {settings.split} split of {env_name} has {len(split)}")
    if settings.tag == "exact" and not isinstance(env, BehaviorCounter):
        raise InputError(f"tag exact: env {env_name!r} has no exact behavior counter (use regex)")
    rollout = _rollout_config(recipe.rollout if recipe else RolloutConfig(), settings)
    device = settings.device or (recipe.trainer.device if recipe else "cpu")
    if device not in ("cpu", "cuda"):
        raise InputError(f"device {device!r}: expected cpu or cuda")
    dtype = settings.dtype or (recipe.model.dtype if recipe else "float32")
    return SamplingPlan(str(model), source, env_name, env, split[:count], rollout, device, dtype, recipe)


@dataclass(frozen=True)
class Sampled:
    """``n`` scored samples per problem of a plan: per response (problem by problem, sample by sample) its
    generation, score, answer key, behavior tags and claim counts, and its samples.jsonl line."""

    generations: list[Generation]
    scores: list[Score]
    keys: list[str | None] | None
    """Final answers (`AnswerExtractor`); None when the environment has none."""
    tags: list[BehaviorTags] | None
    """``settings.tag``'s counts; None for ``tag: none``."""
    claims: list[ClaimCounts] | None
    """True and false stated results and checks (`ClaimChecker`); None when the environment has none."""
    records: list[dict[str, Any]]
    by_problem: list[list[int]]
    """The response indices of each problem, in the plan's problem order."""
    sampling_s: float


def sample_and_score(
    plan: SamplingPlan, settings: EvalSettings, log: Callable[[str], None] = print
) -> Sampled:
    """Sample ``settings.n`` responses per problem with the plan's rollout backend (in-process), and score,
    key, tag and claim-check each; sample j of problem i is seeded by (seed, i, j)."""
    from cogrl.behaviors.regex_tagger import RegexTagger
    from cogrl.rl.driver import rollout_records
    from cogrl.rl.rollout import RolloutWorker

    env, tasks, rollout = plan.env, plan.tasks, plan.rollout
    log(f"sampling {settings.n} x {len(tasks)} problems with {rollout.backend} from {plan.source.model_dir}")
    worker = RolloutWorker(
        rollout.backend, plan.source.model_dir, rollout, settings.seed, plan.device, plan.dtype
    )
    started = time.perf_counter()
    try:
        generations = _generate(worker, [t.prompt for t in tasks], settings.n, rollout, settings.seed, log)
    except ValueError as exc:  # a prompt over max_prompt_tokens
        raise InputError(
            f"{settings.split} split of {plan.env_name}: {exc} (raise max_prompt_tokens)"
        ) from None
    sampling_s = time.perf_counter() - started
    del worker

    owners = [tasks[g.prompt_index] for g in generations]
    pairs = list(zip(generations, owners, strict=True))
    scores = [env.score(g.text, task) for g, task in pairs]
    keys = [env.answer_key(g.text, task) for g, task in pairs] if isinstance(env, AnswerExtractor) else None
    claims = [env.check_claims(g.text, task) for g, task in pairs] if isinstance(env, ClaimChecker) else None
    tags = None
    if settings.tag == "regex":
        tagger = RegexTagger(plan.patterns)
        tags = [tagger.tag(g.text, **tagger_hints(env, task)) for g, task in pairs]
    elif settings.tag == "exact":
        tags = [_exact_tags(env, g.text, task) for g, task in pairs]
    difficulty = {t.id: len(env.solve(t)) if isinstance(env, Solver) else None for t in tasks}
    records = rollout_records(0, tasks, generations, scores, tags, settings.n, claims)
    for i, (record, task) in enumerate(zip(records, owners, strict=True)):
        del record["step"]
        record.update(task_record(env, task), difficulty=difficulty[task.id])
        record["answer_key"] = keys[i] if keys is not None else None
    by_problem: list[list[int]] = [[] for _ in tasks]
    for i, g in enumerate(generations):
        by_problem[g.prompt_index].append(i)
    return Sampled(generations, scores, keys, tags, claims, records, by_problem, sampling_s)


def describe_sampling(plan: SamplingPlan, settings: EvalSettings) -> dict[str, Any]:
    """What was sampled and how, as eval.json and audit.json record it: the model (with the sha256 of its
    weights), the environment and its resolved options, the problems, the sampling settings and seed."""
    from cogrl.models import weights_digest

    rollout = plan.rollout
    return {
        "model": plan.model,
        "model_dir": str(plan.source.model_dir),
        "checkpoint_step": plan.source.checkpoint_step,
        "weights_sha256": weights_digest(plan.source.model_dir),
        "env": {"name": plan.env_name, "options": plan.env.options.model_dump(mode="json")},
        "split": settings.split,
        "problems": len(plan.tasks),
        "samples_per_problem": settings.n,
        "sampling": {
            "backend": rollout.backend,
            "device": plan.device,
            "dtype": plan.dtype,
            "temperature": rollout.temperature,
            "top_p": rollout.top_p,
            "max_new_tokens": rollout.max_new_tokens,
            "max_prompt_tokens": rollout.max_prompt_tokens,
            "stop": list(rollout.stop),
        },
    }


def write_samples(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """samples.jsonl: one line per response."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(dumps(record) + "\n" for record in records)


# --------------------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------------------
def evaluate(
    model: str | Path, settings: EvalSettings, out: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Sample ``settings.n`` responses per problem, score, key and tag them, and write the output directory
    ``out`` atomically (built beside it, then renamed). Returns eval.json's content."""
    from cogrl.provenance import run_metadata
    from cogrl.rl.driver import derive_seed
    from cogrl.rl.metrics import claim_metrics, rollout_metrics

    started = time.perf_counter()
    ks = check_ks(settings.ks, settings.n)
    plan = plan_sampling(model, settings)
    sampled = sample_and_score(plan, settings, log)
    scores, keys, records = sampled.scores, sampled.keys, sampled.records
    count = len(plan.tasks)
    bootstrap_seed = derive_seed(settings.seed, "bootstrap")
    weights = bootstrap_weights(count, settings.resamples, bootstrap_seed)
    try:
        passk = passk_rows(
            [[scores[i].correct for i in rows] for rows in sampled.by_problem],
            [[keys[i] for i in rows] for rows in sampled.by_problem] if keys is not None else None,
            ks,
            weights,
            settings.confidence,
            [t.id for t in plan.tasks],
        )
    except ValueError as exc:  # an environment's answer_key that breaks its contract
        raise InputError(f"env {plan.env_name} answer keys: {exc}") from None
    behaviors = (
        behavior_rows(records, settings.resamples, bootstrap_seed, settings.confidence)
        if sampled.tags
        else []
    )
    summary = {
        **describe_sampling(plan, settings),
        "k": list(ks),
        "seeds": {
            "sampling": settings.seed,
            "sample_rule": "cogrl.rl.backends.sample_seed(seed, problem index, sample index)",
            "bootstrap": bootstrap_seed,
        },
        "bootstrap": {
            "resamples": settings.resamples,
            "confidence": settings.confidence,
            "method": "percentile",
        },
        "tag": settings.tag,
        "maj_at_k": keys is not None,
        "figures": {
            "passk": passk,
            "behaviors_pooled": [row for row in behaviors if row["difficulty"] == POOLED],
            **rollout_metrics(
                sampled.generations, scores, sampled.tags, format_failures=format_failure_reasons(plan.env)
            ),
            **claim_metrics(sampled.claims or []),
        },
        "timing": {
            "sampling_s": round(sampled.sampling_s, 3),
            "response_tokens": sum(len(g.response_ids) for g in sampled.generations),
        },
        "metadata": run_metadata(settings.seed),
    }
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "passk.csv").write_text(to_csv(passk, PASSK_COLUMNS), encoding="utf-8")
        plot_passk(
            {"": passk},
            tmp / "passk.png",
            title=f"{Path(str(model)).name} on {plan.env_name} ({count} problems, n={settings.n})",
        )
        if sampled.tags:
            (tmp / "behaviors.csv").write_text(to_csv(behaviors, BEHAVIOR_COLUMNS), encoding="utf-8")
        write_samples(tmp / "samples.jsonl", records)
        summary["timing"]["total_s"] = round(time.perf_counter() - started, 3)
        (tmp / "eval.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _rollout_config(base: RolloutConfig, settings: EvalSettings) -> RolloutConfig:
    """The run's (or the default) rollout settings with the evaluation's; a bad value is an InputError."""
    from pydantic import ValidationError

    from cogrl.config import RolloutConfig, describe_validation_error

    given = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_new_tokens": settings.max_new_tokens,
        "max_prompt_tokens": settings.max_prompt_tokens,
        "backend": settings.backend,
    }
    try:
        return RolloutConfig.model_validate(
            {**base.model_dump(), **{key: value for key, value in given.items() if value is not None}}
        )
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, RolloutConfig)) from None


def _generate(
    worker: Any, prompts: list[str], n: int, rollout: RolloutConfig, seed: int, log: Callable[[str], None]
) -> list[Any]:
    """n samples per prompt, ROWS_PER_CALL responses per backend call; sample j of prompt i is seeded by
    (seed, i, j) whatever the chunking, and ``prompt_index`` counts over all prompts."""
    import dataclasses

    per_call = max(1, ROWS_PER_CALL // n)
    generations = []
    for start in range(0, len(prompts), per_call):
        chunk = prompts[start : start + per_call]
        batch = worker.generate(
            chunk, n, rollout.temperature, rollout.top_p, rollout.max_new_tokens, seed, start
        )
        generations += [dataclasses.replace(g, prompt_index=g.prompt_index + start) for g in batch]
        log(f"sampled {start + len(chunk)}/{len(prompts)} problems")
    return generations


def _exact_tags(env: BehaviorCounter, text: str, task: Task) -> BehaviorTags:
    """The environment's exact counts, or unknown counts where it cannot count this completion."""
    tags = env.count_behaviors(text, task)
    return tags if tags is not None else BehaviorTags(dict.fromkeys(BEHAVIORS), source="exact:unknown")


def plot_passk(series: Mapping[str, Sequence[Mapping[str, Any]]], path: Path, title: str = "") -> None:
    """pass@k (solid) and maj@k (dashed) against k (log scale) with their bootstrap interval bands, one
    colour per evaluation in ``series`` (label -> passk rows; an empty label for a single evaluation), as
    PNG. `cogrl eval` draws one evaluation, `cogrl report --eval` overlays several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4), constrained_layout=True)
    all_ks: set[int] = set()
    for label, rows in series.items():
        ks = [int(row["k"]) for row in rows]
        all_ks.update(ks)
        colour = None
        for name, low, high, style in (
            ("pass@k", "ci_low", "ci_high", "-"),
            ("maj@k", "maj_ci_low", "maj_ci_high", "--"),
        ):
            if rows[0][name] is None:
                continue
            text = f"{label} {name}".strip()
            line = axis.plot(ks, [row[name] for row in rows], style, marker="o", color=colour, label=text)[0]
            colour = line.get_color()
            axis.fill_between(ks, [row[low] for row in rows], [row[high] for row in rows], alpha=0.15,
                              color=colour)  # fmt: skip
    ticks = sorted(all_ks)
    axis.set_xscale("log", base=2)
    axis.set_xticks(ticks, [str(k) for k in ticks])
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("k (samples per problem)")
    axis.set_ylabel("share of problems")
    axis.set_title(title, fontsize="small")
    axis.legend(fontsize="small")
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
