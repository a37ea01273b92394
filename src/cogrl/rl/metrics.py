"""What a batch of scored, tagged rollouts says about the policy: the numbers a researcher watches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from statistics import fmean

from cogrl.behaviors import BEHAVIORS, BehaviorTags
from cogrl.envs import Score
from cogrl.rl.batch import Generation


def rollout_metrics(
    generations: Sequence[Generation],
    scores: Sequence[Score],
    tags: Sequence[BehaviorTags] | None,
    prefix: str = "",
) -> dict[str, float]:
    """Reward, accuracy (exact-correct rate, no format credit), format rate, lengths, why rewards were lost,
    and per-behavior presence rate and mean count (over responses whose count is known)."""
    if not scores:
        return {}
    metrics = {
        "reward_mean": fmean(s.reward for s in scores),
        "accuracy": fmean(float(s.correct) for s in scores),
        "format_rate": fmean(float(s.reason != "no_answer") for s in scores),
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


def eval_metrics(scores_by_task: Sequence[Sequence[Score]]) -> dict[str, float]:
    """The paper's protocol (accuracy of the first sample per problem) plus avg@k and pass@k over k samples."""
    k = min(len(s) for s in scores_by_task)
    return {
        "eval/accuracy": fmean(float(s[0].correct) for s in scores_by_task),
        f"eval/avg@{k}": fmean(fmean(float(x.correct) for x in s[:k]) for s in scores_by_task),
        f"eval/pass@{k}": fmean(float(any(x.correct for x in s[:k])) for s in scores_by_task),
        "eval/problems": float(len(scores_by_task)),
    }
