"""What a batch of scored, tagged rollouts says about the policy: the numbers a researcher watches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from statistics import fmean

from cogrl.behaviors import BEHAVIORS, BehaviorTags
from cogrl.envs import DEFAULT_FORMAT_FAILURES, ClaimCounts, Score
from cogrl.rl.batch import Generation


def rollout_metrics(
    generations: Sequence[Generation],
    scores: Sequence[Score],
    tags: Sequence[BehaviorTags] | None,
    prefix: str = "",
    format_failures: Collection[str] = DEFAULT_FORMAT_FAILURES,
) -> dict[str, float]:
    """Reward, accuracy (exact-correct rate, no format credit), format rate (scores whose reason is not one
    of the environment's ``format_failures``, `cogrl.envs.format_failure_reasons`), lengths, why rewards
    were lost, and per-behavior presence rate and mean count (over responses whose count is known)."""
    if not scores:
        return {}
    metrics = {
        "reward_mean": fmean(s.reward for s in scores),
        "accuracy": fmean(float(s.correct) for s in scores),
        "format_rate": fmean(float(s.reason not in format_failures) for s in scores),
        "response_tokens_mean": fmean(len(g.response_ids) for g in generations),
        "truncated_rate": fmean(float(g.finish_reason == "length") for g in generations),
    }
    for reason, count in Counter(s.reason for s in scores).items():
        metrics[f"reason/{reason}"] = count / len(scores)
    for behavior in BEHAVIORS if tags else ():
        known = [t.counts[behavior] for t in tags if t.counts[behavior] is not None]
        if known:
            metrics[f"behavior/{behavior}_rate"] = fmean(float(c > 0) for c in known)
            metrics[f"behavior/{behavior}_count"] = fmean(known)
    return {f"{prefix}{key}": value for key, value in metrics.items()}


def claim_metrics(claims: Sequence[ClaimCounts], prefix: str = "") -> dict[str, float]:
    """The rate of false verification (issue 13): false step claims over step claims, false checks over checks
    (pooled over the batch; absent when the batch has none), and the share of responses with at least one
    false success claim (``cogrl.envs.ClaimChecker``)."""
    if not claims:
        return {}
    steps = sum(c.true_steps + c.false_steps for c in claims)
    checks = sum(c.true_checks + c.false_checks for c in claims)
    metrics = {"claims/false_success_rate": fmean(float(c.false_success_claims > 0) for c in claims)}
    if steps:
        metrics["claims/false_step_rate"] = sum(c.false_steps for c in claims) / steps
    if checks:
        metrics["claims/false_check_rate"] = sum(c.false_checks for c in claims) / checks
    return {f"{prefix}{key}": value for key, value in metrics.items()}


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of pass@k from n samples of which c are correct (Chen et al., 2021, "Evaluating
    large language models trained on code"): 1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 < k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def eval_metrics(scores_by_task: Sequence[Sequence[Score]]) -> dict[str, float]:
    """The paper's protocol (accuracy of the first sample of every problem), and over the problems that
    have n > 1 samples: avg@n and the unbiased pass@k for k = 1, 2, 4, ... up to n (and n itself)."""
    metrics = {
        "eval/accuracy": fmean(float(s[0].correct) for s in scores_by_task),
        "eval/problems": float(len(scores_by_task)),
    }
    n = max(len(s) for s in scores_by_task)
    sampled = [s for s in scores_by_task if len(s) == n]
    if n > 1:
        counts = [sum(x.correct for x in s) for s in sampled]
        metrics[f"eval/avg@{n}"] = fmean(c / n for c in counts)
        for k in sorted({1 << i for i in range(n.bit_length()) if 1 << i <= n} | {n}):
            metrics[f"eval/pass@{k}"] = fmean(pass_at_k(n, c, k) for c in counts)
        metrics["eval/pass_problems"] = float(len(sampled))
    return metrics


def evaluation_metrics(
    n_tasks: int,
    generations: Sequence[Generation],
    scores: Sequence[Score],
    tags: Sequence[BehaviorTags] | None,
    claims: Sequence[ClaimCounts] | None,
    format_failures: Collection[str] = DEFAULT_FORMAT_FAILURES,
) -> dict[str, float]:
    """An evaluation's metrics (``eval/``): the paper's protocol, and pass@k where problems have several
    samples (`eval_metrics`), plus reward, reasons, lengths, behaviors and claims over the same first sample
    of every problem, so that problems sampled k times for pass@k weigh no more than the others."""
    by_task: list[list[Score]] = [[] for _ in range(n_tasks)]
    first: dict[int, int] = {}
    for i, (generation, score) in enumerate(zip(generations, scores, strict=True)):
        by_task[generation.prompt_index].append(score)
        first.setdefault(generation.prompt_index, i)
    picked = sorted(first.values())
    metrics = rollout_metrics(
        [generations[i] for i in picked], [scores[i] for i in picked],
        [tags[i] for i in picked] if tags else None, "eval/", format_failures,
    )  # fmt: skip
    metrics.update(claim_metrics([claims[i] for i in picked] if claims else [], "eval/"))
    metrics.update(eval_metrics(by_task))
    return metrics
