"""`cogrl sweep` then `cogrl report` end to end on CPU: a miniature of the quickstart (two conditions, a tiny
model, a few SFT steps, 2 RL steps on the hf backend), a re-run that skips everything, and the report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cogrl.behaviors.analysis import CURVE_COLUMNS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TINY = "{arch: qwen2, hidden_size: 64, num_layers: 2, num_heads: 2, intermediate_size: 128, vocab_size: 400}"
OVERRIDES = [
    "conditions=[none, empty_cot]",
    f"train.model.tiny={TINY}",
    "train.env.options.n_train=8",
    "train.env.options.n_test=4",
    "train.rollout.backend=hf",
    "train.rollout.max_new_tokens=12",
    "train.rollout.samples_per_prompt=2",
    "train.trainer.steps=2",
    "train.trainer.prompts_per_step=4",
    "train.trainer.checkpoint_every=2",
    "train.trainer.eval_every=2",
    "train.trainer.eval_problems=4",
    "train.logging.wandb_mode=disabled",
    "priming_env.options.n_train=16",
    "sft.n=16",
    "sft.epochs=1",
    "sft.batch_size=8",
    "sft.max_length=256",
]


def cogrl(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAY_ADDRESS": "", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_sweep_then_report(tmp_path):
    out = tmp_path / "sweep"
    cogrl("sweep", str(REPO / "recipes/sweeps/cpu-quickstart.yaml"), *OVERRIDES, "--out", str(out))
    manifest = json.loads((out / "sweep.json").read_text())
    assert [(r["condition"], r["status"]) for r in manifest["runs"]] == [
        ("none", "done"),
        ("empty_cot", "done"),
    ]
    assert not (out / "none/prime").exists()
    assert (out / "empty_cot/prime/priming.json").exists() and (out / "empty_cot/sft/config.json").exists()
    for condition in ("none", "empty_cot"):
        run = out / condition / "rl"
        assert (run / "checkpoints/step-000002").is_dir()
        assert [json.loads(line)["step"] for line in (run / "eval.jsonl").read_text().splitlines()] == [0, 2]
        eval_rollouts = [json.loads(line) for line in (run / "eval_rollouts.jsonl").read_text().splitlines()]
        assert len(eval_rollouts) == 8 and set(eval_rollouts[0]["behaviors"]) >= {"backtracking"}
    assert (
        "model:\n  path: " + str((out / "empty_cot/sft").resolve())
        in (out / "empty_cot/rl/config.yaml").read_text()
    )

    again = cogrl("sweep", str(REPO / "recipes/sweeps/cpu-quickstart.yaml"), *OVERRIDES, "--out", str(out))
    assert again.stderr.count("done, skipped") == 4  # none: rl; empty_cot: prime, sft, rl

    report = tmp_path / "report"
    cogrl("report", str(out), "--out", str(report), "--paper", "qwen")
    with open(report / "curves.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(CURVE_COLUMNS)
    assert [(r[0], r[1]) for r in rows[1:]] == [
        ("none", "0"),
        ("none", "2"),
        ("empty_cot", "0"),
        ("empty_cot", "2"),
    ]
    assert (report / "accuracy.png").stat().st_size > 10_000 and (
        report / "behaviors.png"
    ).stat().st_size > 10_000
    summary = (report / "summary.md").read_text()
    assert "base_ppo" in summary and "| empty_cot |" in summary
