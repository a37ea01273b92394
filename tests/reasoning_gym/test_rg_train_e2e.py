"""`cogrl train` end to end on an environment that is not Countdown: reasoning-gym's basic_arithmetic, with
rollouts scored by reasoning-gym and tagged for the behaviors, evaluated and checkpointed (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RECIPE = Path(__file__).parents[2] / "envs" / "reasoning_gym" / "recipes" / "cpu-tiny-grpo-arithmetic.yaml"
TINY = "{arch: qwen2, hidden_size: 64, num_layers: 2, num_heads: 2, intermediate_size: 128, vocab_size: 400}"


def read(run: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (run / name).read_text().splitlines()]


def test_train_on_reasoning_gym_with_tagging(tmp_path):
    run = tmp_path / "run"
    args = [
        str(RECIPE),
        f"model.tiny={TINY}",
        "env.options.n_train=8",
        "env.options.n_test=4",
        "rollout.backend=hf",
        "rollout.max_new_tokens=12",
        "rollout.samples_per_prompt=2",
        "trainer.steps=2",
        "trainer.prompts_per_step=4",
        "trainer.checkpoint_every=2",
        "trainer.eval_every=2",
        "trainer.eval_problems=4",
        "logging.wandb_mode=disabled",
        "--out",
        str(run),
    ]
    process = subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", "train", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAY_ADDRESS": ""},
        start_new_session=True,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "reasoning_gym" in (run / "config.yaml").read_text()
    rollouts = read(run, "rollouts.jsonl")
    assert len(rollouts) == 2 * 4 * 2
    assert all(r["task_id"].startswith("basic_arithmetic-train-") for r in rollouts)
    assert {r["reason"] for r in rollouts} <= {"correct", "partial", "wrong", "too_long", "no_answer"}
    assert all(set(r["behaviors"]) >= {"verification", "backtracking"} for r in rollouts)  # tagged
    metrics = read(run, "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    for key in ("reward_mean", "accuracy", "format_rate", "behavior/verification_rate", "train/kl"):
        assert key in metrics[0], key
    # format_rate counts the environment's format failures (no_answer), as the reasons say
    no_answer = sum(r["reason"] == "no_answer" for r in rollouts[:8]) / 8
    assert metrics[0]["format_rate"] == pytest.approx(1 - no_answer)
    assert [e["step"] for e in read(run, "eval.jsonl")] == [0, 2]
    assert (run / "checkpoints" / "step-000002" / "config.json").exists()
