"""`cogrl train` end to end on CPU: a real run directory, and a crash (SIGKILL) that resumes to exactly the
uninterrupted run — mid-epoch and at an epoch boundary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TINY = "{arch: qwen2, hidden_size: 64, num_layers: 2, num_heads: 2, intermediate_size: 128, vocab_size: 400}"
VOLATILE = ("time/", "throughput/", "train/tokens_per_s", "train/time")  # wall-clock measurements


def overrides(n_train: int, steps: int, backend: str = "hf") -> list[str]:
    return [
        f"model.tiny={TINY}",
        "warmup=null",
        f"env.options.n_train={n_train}",
        "env.options.n_test=4",
        f"rollout.backend={backend}",
        "rollout.max_new_tokens=12",
        "rollout.samples_per_prompt=2",
        f"trainer.steps={steps}",
        "trainer.prompts_per_step=4",
        "trainer.checkpoint_every=2",
        "trainer.eval_every=2",
        "trainer.eval_problems=4",
        "trainer.lr=1e-3",
        "logging.wandb_mode=disabled",
    ]


def train(*args: str, wait: bool = True) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", "from cogrl.cli import main; main()", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    if wait:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output
    return process


def steps_logged(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def stable(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith(VOLATILE)}


def read(run: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (run / name).read_text().splitlines()]


@pytest.mark.parametrize(
    ("recipe", "backend"),
    [("recipes/cpu-tiny-grpo.yaml", "hf"), ("recipes/cpu-tiny-ppo.yaml", "vllm")],
    ids=["grpo-hf", "ppo-vllm"],
)
def test_train_writes_a_complete_run_directory(tmp_path, recipe, backend):
    run = tmp_path / "run"
    train(recipe, *overrides(8, 2, backend), "logging.wandb_mode=offline", "--out", str(run))
    assert (run / "config.yaml").exists()
    versions = json.loads((run / "versions.json").read_text())
    assert versions["seed"] == 0 and "torch" in versions["packages"]
    rollouts = read(run, "rollouts.jsonl")
    assert len(rollouts) == 2 * 4 * 2
    assert {"step", "task_id", "completion", "reward", "reason", "behaviors"} <= set(rollouts[0])
    metrics = read(run, "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    for key in ("reward_mean", "accuracy", "format_rate", "train/kl", "train/entropy", "train/grad_norm"):
        assert key in metrics[0], key
    assert [e["step"] for e in read(run, "eval.jsonl")] == [0, 2]
    assert (run / "checkpoints" / "step-000002" / "config.json").exists()
    # the wandb mirror: an offline run inside the run directory
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    if "ppo" in recipe:
        assert any(m["train/value_mean"] != 0.0 for m in metrics)  # the critic is trained


@pytest.mark.parametrize("n_train", [8, 12], ids=["epoch-boundary", "mid-epoch"])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, n_train):
    # 4 prompts per step: with 8 train tasks the step-2 checkpoint sits exactly at an epoch boundary;
    # with 12 it sits mid-epoch. The crash comes after step 3 is logged, past that checkpoint.
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    train("recipes/cpu-tiny-grpo.yaml", *overrides(n_train, 4), "--out", str(reference))

    process = train("recipes/cpu-tiny-grpo.yaml", *overrides(n_train, 4), "--out", str(crashed), wait=False)
    deadline = time.monotonic() + 600
    while 3 not in steps_logged(crashed / "metrics.jsonl"):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 4 not in steps_logged(crashed / "eval.jsonl")

    train("--resume", str(crashed))
    for name in ("metrics.jsonl", "eval.jsonl", "rollouts.jsonl"):
        got, want = read(crashed, name), read(reference, name)
        assert [r["step"] for r in got] == [r["step"] for r in want], name
        assert [stable(r) for r in got] == [stable(r) for r in want], name
    assert len(json.loads((crashed / "versions.json").read_text())["resumes"]) == 1
