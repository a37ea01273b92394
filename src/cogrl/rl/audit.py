"""A base model's behavior audit before RL (`cogrl audit`; docs/evaluation.md, "Audit a base model before RL").

The paper's finding (Gandhi et al., 2025) is that Qwen-2.5-3B improves under RL and Llama-3.2-3B does not,
and that the difference was visible *before* training: in how often the base model verifies, backtracks,
sets subgoals and chains backward, and in whether its samples ever succeed. The audit measures exactly that,
as a pre-flight check: k samples of each of n problems (k = the RL recipe's samples per prompt), scored,
tagged (regex or the env's exact counter, and an LLM judge when one is given) and claim-checked, and one page
that says whether RL on this model has anything to learn from. GRPO, RLOO and Dr.GRPO advantages are a
reward minus its group's mean, so a group whose k rewards are all equal contributes nothing; PPO's critic
soon learns the constant reward of such a prompt and its advantages vanish too. The share of prompts with
*mixed* rewards at the RL group size is the share of the batch that carries a learning signal.

The output directory, built beside ``out`` and renamed into place:

    audit.md       the one page: the verdict line, the settings, the tables
    audit.json     the figures, the settings and `cogrl.provenance.run_metadata`
    samples.jsonl  every response, as `cogrl eval` writes them (plus ``behaviors_judge`` when judged)

Sampling, scoring and tagging are `cogrl.rl.evaluation`'s; this module adds the group figures and the page.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from math import comb
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cogrl.behaviors import BEHAVIORS, BehaviorTags
from cogrl.envs import DEFAULT_FORMAT_FAILURES, ClaimCounts, Score, format_failure_reasons
from cogrl.files import InputError, atomic_path
from cogrl.rl.batch import Generation
from cogrl.rl.evaluation import (
    EvalSettings,
    bootstrap_weights,
    check_ks,
    describe_sampling,
    passk_rows,
    percentile_interval,
    plan_sampling,
    sample_and_score,
    write_samples,
)
from cogrl.rl.metrics import claim_metrics, rollout_metrics

if TYPE_CHECKING:
    from cogrl.behaviors.judge import LLMJudge
    from cogrl.config import EndpointConfig, TrainRecipe

DEFAULT_SAMPLES_PER_PROMPT = 8
"""The group size when neither a recipe nor a run gives one."""


# --------------------------------------------------------------------------------------------------------
# The figures (pure)
# --------------------------------------------------------------------------------------------------------
def mixed_at(rewards: Sequence[float], m: int) -> float:
    """The probability that m samples drawn without replacement from these rewards are not all equal: 1 -
    sum over reward values v of C(c_v, m) / C(n, m). The same U-statistic argument as the unbiased pass@k
    makes it the unbiased estimate for a group of m fresh samples; at m = n it is 1 when the rewards differ,
    else 0."""
    n = len(rewards)
    if not 0 < m <= n:
        raise ValueError(f"group size m={m} must lie in 1..{n} (samples of this problem)")
    counts = np.unique(np.asarray(rewards, dtype=float), return_counts=True)[1]
    return 1.0 - sum(comb(int(c), m) for c in counts) / comb(n, m)


def group_figures(
    rewards: Sequence[Sequence[float]],
    correct: Sequence[Sequence[bool]],
    weights: np.ndarray,
    confidence: float,
) -> dict[str, Any]:
    """What the reward groups of one prompt each (the RL batch shape: k samples per prompt) say about the RL
    signal: the share of prompts with mixed rewards (not all equal; only these have non-zero group-relative
    advantages), with a percentile bootstrap interval from ``weights``; the share with both a correct and a
    wrong sample; all correct; all wrong; and the mixed-reward share at smaller group sizes (2, 4, 8, ... up
    to k), estimated without bias from the same samples."""
    sizes = {len(group) for group in rewards}
    if len(sizes) != 1 or len(correct) != len(rewards):
        raise ValueError(f"every problem needs the same number of samples, got group sizes {sorted(sizes)}")
    k = sizes.pop()
    mixed = np.array([float(len(set(group)) > 1) for group in rewards])
    solved = np.array([sum(map(bool, group)) for group in correct])
    low, high = percentile_interval(weights @ mixed / len(mixed), confidence)
    return {
        "group_size": k,
        "mixed_reward": float(mixed.mean()),
        "mixed_reward_ci": [float(low), float(high)],
        "mixed_correct": float(np.mean((solved > 0) & (solved < k))),
        "all_correct": float(np.mean(solved == k)),
        "all_wrong": float(np.mean(solved == 0)),
        "mixed_reward_by_group_size": {
            m: float(np.mean([mixed_at(group, m) for group in rewards])) for m in check_ks(None, k) if m > 1
        },
    }


def behavior_figures(
    generations: Sequence[Generation], scores: Sequence[Score], tags: Sequence[BehaviorTags]
) -> dict[str, dict[str, float | int | None]]:
    """Per behavior: the share of responses with a count above 0 and the mean count, over the responses whose
    count is known (`rollout_metrics`), and how many are known and unknown (a judge's failures stay unknown,
    never 0; a behavior with no known count has rate and mean None)."""
    metrics = rollout_metrics(generations, scores, tags)
    figures = {}
    for behavior in BEHAVIORS:
        known = sum(t.counts[behavior] is not None for t in tags)
        figures[behavior] = {
            "rate": metrics.get(f"behavior/{behavior}_rate"),
            "mean_count": metrics.get(f"behavior/{behavior}_count"),
            "known": known,
            "unknown": len(tags) - known,
        }
    return figures


def audit_figures(
    by_problem: Sequence[Sequence[int]],
    generations: Sequence[Generation],
    scores: Sequence[Score],
    taggings: Mapping[str, Sequence[BehaviorTags]],
    claims: Sequence[ClaimCounts] | None = None,
    keys: Sequence[str | None] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    format_failures: Collection[str] = DEFAULT_FORMAT_FAILURES,
) -> dict[str, Any]:
    """Every figure of the audit from n problems x k scored samples (``by_problem``: each problem's response
    indices, first sample first): accuracy of the first sample (the paper's protocol) with a bootstrap
    interval, the accuracy of all samples, pass@k and maj@k (``keys``) for k = 1, 2, 4, ... up to k,
    reward, format rate (``format_failures``: the environment's), lengths and why rewards were lost
    (`rollout_metrics`), the reward groups
    (`group_figures`), per tagger (``taggings``: name -> tags) the behavior rates (`behavior_figures`), and the
    false-verification rates (`claim_metrics`) when ``claims`` are given."""
    k = len(by_problem[0]) if by_problem else 0
    if k < 1 or any(len(rows) != k for rows in by_problem):
        raise ValueError("every problem needs the same number (at least 1) of samples")
    weights = bootstrap_weights(len(by_problem), resamples, seed)
    correct = [[scores[i].correct for i in rows] for rows in by_problem]
    first = np.array([float(c[0]) for c in correct])
    low, high = percentile_interval(weights @ first / len(first), confidence)
    overall = rollout_metrics(generations, scores, None, format_failures=format_failures)
    return {
        "problems": len(by_problem),
        "samples_per_prompt": k,
        "responses": len(scores),
        "confidence": confidence,
        "accuracy": float(first.mean()),
        "accuracy_ci": [float(low), float(high)],
        "accuracy_all_samples": overall["accuracy"],
        "passk": passk_rows(
            correct,
            [[keys[i] for i in rows] for rows in by_problem] if keys is not None else None,
            check_ks(None, k),
            weights,
            confidence,
        ),
        "reward_mean": overall["reward_mean"],
        "format_rate": overall["format_rate"],
        "response_tokens_mean": overall["response_tokens_mean"],
        "truncated_rate": overall["truncated_rate"],
        "reasons": {
            key.split("/", 1)[1]: v for key, v in sorted(overall.items()) if key.startswith("reason/")
        },
        "groups": group_figures(
            [[scores[i].reward for i in rows] for rows in by_problem], correct, weights, confidence
        ),
        "behaviors": {name: behavior_figures(generations, scores, tags) for name, tags in taggings.items()},
        "claims": claim_metrics(claims) if claims else None,
    }


def verdict(figures: Mapping[str, Any]) -> str:
    """The page's first line: how much of an RL batch at this group size would carry a learning signal."""
    groups = figures["groups"]
    k = groups["group_size"]
    if groups["mixed_reward"] == 0:
        return (
            f"No RL signal: every prompt's {k} samples got the same reward, so every group-relative "
            f"advantage is 0 (accuracy {figures['accuracy']:.0%}, pass@{k} {figures['passk'][-1]['pass@k']:.0%})."
        )
    low, high = groups["mixed_reward_ci"]
    level = f"{figures['confidence']:.0%}"
    return (
        f"RL signal: {groups['mixed_reward']:.0%} of prompts ({level} CI {low:.0%}-{high:.0%}) have mixed rewards "
        f"at {k} samples; {groups['mixed_correct']:.0%} have both a correct and a wrong sample "
        f"(accuracy {figures['accuracy']:.0%}, pass@{k} {figures['passk'][-1]['pass@k']:.0%})."
    )


# --------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def render_page(summary: Mapping[str, Any]) -> str:
    """audit.md: the verdict, what was sampled, then outcomes, reward groups, behaviors per tagger, claims."""
    f, s = summary["figures"], summary["sampling"]
    k = f["samples_per_prompt"]
    options = ", ".join(f"{key}={json.dumps(value)}" for key, value in summary["env"]["options"].items())
    step = summary["checkpoint_step"]
    lines = [
        f"# Behavior audit: {summary['model']}",
        "",
        f"**{summary['verdict']}**",
        "",
        f"- model: `{summary['model_dir']}`"
        + (f" (checkpoint step {step})" if step is not None else "")
        + f", weights sha256 `{summary['weights_sha256'][:16]}`",
        f"- env: {summary['env']['name']} ({options}); split {summary['split']}, {f['problems']} problems x "
        f"{k} samples = {f['responses']} responses",
        f"- sampling: {s['backend']} on {s['device']} ({s['dtype']}), temperature {s['temperature']}, top_p "
        f"{s['top_p']}, max_new_tokens {s['max_new_tokens']}; seed {summary['seeds']['sampling']} (sample j of "
        f"problem i: sample_seed(seed, i, j)), bootstrap seed {summary['seeds']['bootstrap']}",
        f"- tagged by: {', '.join(summary['taggers'].values())}",
        f"- time: {summary['timing']['sampling_s']:.1f} s sampling, {summary['timing']['total_s']:.1f} s in all; "
        f"{summary['timing']['response_tokens']} response tokens",
        "",
        "## Outcomes",
        "",
    ]
    low, high = f["accuracy_ci"]
    rows = [
        ["accuracy (first sample)", _pct(f["accuracy"]), f"[{low:.1%}, {high:.1%}]"],
        ["accuracy (all samples)", _pct(f["accuracy_all_samples"]), ""],
    ]
    for row in f["passk"]:
        rows.append([f"pass@{row['k']}", _pct(row["pass@k"]), f"[{row['ci_low']:.1%}, {row['ci_high']:.1%}]"])
    for row in f["passk"] if f["passk"][0]["maj@k"] is not None else ():
        interval = f"[{row['maj_ci_low']:.1%}, {row['maj_ci_high']:.1%}]"
        rows.append([f"maj@{row['k']}", _pct(row["maj@k"]), interval])
    rows += [
        ["mean reward", f"{f['reward_mean']:.3f}", ""],
        ["format rate (an answer given)", _pct(f["format_rate"]), ""],
        ["response tokens (mean)", f"{f['response_tokens_mean']:.1f}", ""],
        ["hit max_new_tokens", _pct(f["truncated_rate"]), ""],
    ]
    lines += _table(["figure", "value", f"{f['confidence']:.0%} interval"], rows)
    reasons = ", ".join(f"{reason} {share:.0%}" for reason, share in f["reasons"].items())
    lines += ["", f"Score reasons: {reasons}.", "", f"## Reward groups at {k} samples per prompt", ""]
    g = f["groups"]
    lines += _table(
        ["prompts whose samples ...", "share"],
        [
            [
                "differ in reward (the GRPO/PPO signal)",
                f"{_pct(g['mixed_reward'])} [{g['mixed_reward_ci'][0]:.1%}, {g['mixed_reward_ci'][1]:.1%}]",
            ],  # fmt: skip
            ["include a correct and a wrong one", _pct(g["mixed_correct"])],
            ["are all correct", _pct(g["all_correct"])],
            ["are all wrong", _pct(g["all_wrong"])],
        ],
    )
    by_size = ", ".join(f"{m}: {_pct(v)}" for m, v in g["mixed_reward_by_group_size"].items())
    lines += ["", f"Mixed-reward share at smaller group sizes (from the same samples): {by_size}."]
    if summary.get("prompts_per_step"):
        per_step = summary["prompts_per_step"]
        lines.append(
            f"The recipe takes {per_step} prompts per step: about {per_step * g['mixed_reward']:.1f} of them "
            "carry a signal."
        )
    lines += ["", "## Behaviors (share of responses with at least one instance; mean count)", ""]
    header, rows = ["behavior"], []
    for name in f["behaviors"]:
        header += [f"{name} rate", f"{name} mean", f"{name} unknown"]
    for behavior in BEHAVIORS:
        row = [behavior]
        for table in f["behaviors"].values():
            cell = table[behavior]
            mean = "n/a" if cell["mean_count"] is None else f"{cell['mean_count']:.2f}"
            row += [_pct(cell["rate"]), mean, cell["unknown"]]
        rows.append(row)
    lines += _table(header, rows)
    if f["claims"] is not None:
        c = f["claims"]
        lines += ["", "## False verification (claims re-done exactly)", ""]
        lines += _table(
            ["figure", "value"],
            [
                ["false stated results / stated results", _pct(c.get("claims/false_step_rate"))],
                ["false checks / checks", _pct(c.get("claims/false_check_rate"))],
                ["responses with a false success claim", _pct(c.get("claims/false_success_rate"))],
            ],
        )
    if judge := summary.get("judge"):
        lines += [
            "",
            f"Judge {judge['model']}: {judge['judged']} judged, {judge['cache_hits']} from cache, "
            f"{judge['unparsable']} unreadable and {judge['failed']} failed requests (their counts unknown).",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------------------------
def check_endpoint(config: EndpointConfig, deadline_s: float) -> str:
    """One tiny request to the judge before anything is sampled, so that a wrong URL, model or key, or a
    server that does not answer within ``deadline_s``, is refused in seconds rather than after the sampling.
    Returns the model name the server serves (or the one given)."""
    import asyncio

    from cogrl.llm_client import ClientStats, LLMClient

    probe = config.model_copy(update={"timeout_s": deadline_s, "max_retries": 0, "max_tokens": 1})
    stats = ClientStats()

    async def ask() -> tuple[str | None, str | None]:
        async with LLMClient(probe, "judge check", stats) as client:
            return client.model, await client.complete([{"role": "user", "content": "Reply with OK."}])

    try:
        model, reply = asyncio.run(ask())
    except InputError as exc:  # EndpointError: no model listed, or HTTP 401/403/404
        raise InputError(f"judge endpoint {config.endpoint} (deadline {deadline_s:g}s): {exc}") from None
    if reply is None:
        reason = stats.errors[0] if stats.errors else "no reply"
        raise InputError(f"judge endpoint {config.endpoint} did not answer within {deadline_s:g}s: {reason}")
    assert model is not None
    return model


def audit(
    model: str | Path,
    settings: EvalSettings,
    out: Path,
    samples_per_prompt: int | None = None,
    judge: LLMJudge | None = None,
    recipe: TrainRecipe | None = None,
    judge_deadline_s: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Sample ``settings.problems`` problems (None: the whole split) x k samples (``samples_per_prompt``;
    None: the recipe's ``rollout.samples_per_prompt``, else 8; ``settings.n`` and ``settings.ks`` are not
    used), score, tag and claim-check them, judge them with ``judge`` when
    given (its endpoint is checked first, within ``judge_deadline_s``), and write audit.md, audit.json and
    samples.jsonl to ``out`` atomically. ``recipe`` (else a run's own) gives the defaults of the environment,
    its options, the rollout settings and the group size. Returns audit.json's content."""
    from cogrl.behaviors.judge import Trajectory
    from cogrl.provenance import run_metadata
    from cogrl.rl.driver import derive_seed

    started = time.perf_counter()
    if settings.tag == "none":
        raise InputError("tag none: the audit's behavior table needs a tagger (regex or exact)")
    wanted = settings.problems
    plan = plan_sampling(model, dataclasses.replace(settings, problems=None, ks=None, n=1), recipe)
    if wanted is not None:
        if not 0 < wanted <= len(plan.tasks):
            raise InputError(
                f"--n {wanted}: the {settings.split} split of {plan.env_name} has {len(plan.tasks)} problems"
            )
        plan = dataclasses.replace(plan, tasks=plan.tasks[:wanted])
    k = samples_per_prompt
    if k is None:
        k = plan.recipe.rollout.samples_per_prompt if plan.recipe else DEFAULT_SAMPLES_PER_PROMPT
    if k < 2:
        raise InputError(
            f"samples per prompt {k}: a group needs at least 2 samples for its rewards to differ"
        )
    settings = dataclasses.replace(settings, n=k, problems=len(plan.tasks), ks=None)
    judge_model = None
    if judge is not None:
        judge_model = check_endpoint(judge.config, judge_deadline_s or judge.config.timeout_s)
        log(f"judge endpoint {judge.config.endpoint} answers (model {judge_model})")

    sampled = sample_and_score(plan, settings, log)
    taggings: dict[str, Sequence[BehaviorTags]] = {settings.tag: sampled.tags or []}
    taggers = {settings.tag: sampled.tags[0].source if sampled.tags else settings.tag}
    if judge is not None:
        owners = [plan.tasks[g.prompt_index] for g in sampled.generations]
        log(f"judging {len(owners)} responses x {len(BEHAVIORS)} behaviors")
        judged = judge.tag_many(
            [Trajectory.of(plan.env, g.text, t) for g, t in zip(sampled.generations, owners, strict=True)]
        )
        taggings["judge"] = judged
        taggers["judge"] = judged[0].source
        for record, tags in zip(sampled.records, judged, strict=True):
            record["behaviors_judge"] = dict(tags.counts)
    bootstrap_seed = derive_seed(settings.seed, "bootstrap")
    try:
        figures = audit_figures(
            sampled.by_problem,
            sampled.generations,
            sampled.scores,
            taggings,
            sampled.claims,
            sampled.keys,
            settings.resamples,
            bootstrap_seed,
            settings.confidence,
            format_failure_reasons(plan.env),
        )
    except ValueError as exc:  # an environment's answer_key that breaks its contract
        raise InputError(f"env {plan.env_name}: {exc}") from None
    summary: dict[str, Any] = {
        "verdict": verdict(figures),
        **describe_sampling(plan, settings),
        "recipe": plan.recipe.name if plan.recipe else None,
        "prompts_per_step": plan.recipe.trainer.prompts_per_step if plan.recipe else None,
        "taggers": taggers,
        "seeds": {
            "sampling": settings.seed,
            "sample_rule": "cogrl.rl.backends.sample_seed(seed, problem index, sample index)",
            "bootstrap": bootstrap_seed,
        },
        "bootstrap": {"resamples": settings.resamples, "confidence": settings.confidence},
        "figures": figures,
        "timing": {
            "sampling_s": round(sampled.sampling_s, 3),
            "response_tokens": sum(len(g.response_ids) for g in sampled.generations),
        },
        "metadata": run_metadata(settings.seed),
    }
    if judge is not None:
        stats = judge.stats
        summary["judge"] = {
            "model": judge.model or judge_model,
            "endpoint": judge.config.endpoint,
            "rubrics": judge.config.rubrics,
            "judged": stats.judged,
            "cache_hits": stats.cache_hits,
            "unparsable": stats.unparsable,
            "failed": stats.failed,
            "requests": stats.requests,
        }
    with atomic_path(out) as tmp:
        tmp.mkdir()
        write_samples(tmp / "samples.jsonl", sampled.records)
        summary["timing"]["total_s"] = round(time.perf_counter() - started, 3)
        (tmp / "audit.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (tmp / "audit.md").write_text(render_page(summary), encoding="utf-8")
    return summary
