"""An evaluation's metrics: the paper's protocol (first sample of every problem) is not skewed by the
problems sampled k times for pass@k."""

from __future__ import annotations

import pytest

from cogrl.envs import ClaimCounts, Score
from cogrl.rl.batch import Generation
from cogrl.rl.metrics import evaluation_metrics


def generation(task: int, length: int) -> Generation:
    return Generation(task, (1,), (2,) * length, (0.0,) * length, "x" * length, "stop")


def score(correct: bool) -> Score:
    return Score(1.0 if correct else 0.1, "correct" if correct else "wrong_value", correct)


def claims(false_success: int) -> ClaimCounts:
    return ClaimCounts(true_steps=1, false_steps=0, true_checks=0, false_checks=false_success,
                       false_success_claims=false_success, truncated=False)  # fmt: skip


def test_first_samples_decide_accuracy_and_the_other_metrics_while_pass_at_k_uses_all():
    # task 0 sampled 4 times (right, wrong, wrong, wrong), then tasks 1 and 2 once each (wrong, right)
    layout = [(0, True, 10), (0, False, 20), (0, False, 20), (0, False, 20), (1, False, 30), (2, True, 40)]
    gens = [generation(t, n) for t, _, n in layout]
    scores = [score(c) for _, c, _ in layout]
    metrics = evaluation_metrics(3, gens, scores, None, [claims(int(not c)) for _, c, _ in layout])
    # protocol: 2 of 3 first samples right (the mean over all six generations would be 2/6)
    assert metrics["eval/accuracy"] == pytest.approx(2 / 3)
    assert metrics["eval/reward_mean"] == pytest.approx((1.0 + 0.1 + 1.0) / 3)
    assert metrics["eval/response_tokens_mean"] == pytest.approx((10 + 30 + 40) / 3)
    assert metrics["eval/claims/false_success_rate"] == pytest.approx(1 / 3)
    # pass@k over the problems with the most samples (task 0: 1 right of 4)
    assert metrics["eval/pass@1"] == pytest.approx(0.25) and metrics["eval/pass@4"] == 1.0
    assert metrics["eval/problems"] == 3 and metrics["eval/pass_problems"] == 1
