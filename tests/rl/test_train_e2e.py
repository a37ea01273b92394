"""`cogrl train` end to end on CPU: a real run directory, and a crash (SIGKILL) that leaves no process behind
and resumes to exactly the uninterrupted run — mid-epoch and at an epoch boundary — even from a damaged
newest checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from processes import kill_all, wait_until_gone

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


def start_train(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from cogrl.cli import main; main()", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "RAY_ADDRESS": ""},
    )


def train(*args: str) -> str:
    """Run `cogrl train` to the end; its output (stdout and stderr)."""
    process = start_train(*args)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


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


GPU_LAYOUT = ("trainer.strategy=fsdp", "trainer.placement=colocated")
"""The GPU recipes' learner and placement (FSDP2 shards with per-rank optimizer checkpoints, learner and
rollout worker sharing a device, workers asleep during updates), run on CPU."""
LORA = ("model.lora.rank=8", "trainer.lr=1e-2")
"""LoRA adapters (checkpoints are adapter directories; workers start from the base and take the adapter)."""


@pytest.mark.parametrize(
    ("n_train", "layout"),
    [(8, ()), (12, LORA), (12, GPU_LAYOUT)],
    ids=["epoch-boundary", "mid-epoch-lora", "fsdp-colocated"],
)
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, n_train, layout):
    # 4 prompts per step: with 8 train tasks the step-2 checkpoint sits exactly at an epoch boundary;
    # with 12 it sits mid-epoch. The crash comes after step 3 is logged, past that checkpoint.
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    train("recipes/cpu-tiny-grpo.yaml", *overrides(n_train, 4), *layout, "--out", str(reference))

    process = start_train(
        "recipes/cpu-tiny-grpo.yaml", *overrides(n_train, 4), *layout, "--out", str(crashed)
    )
    deadline = time.monotonic() + 600
    while 3 not in steps_logged(crashed / "metrics.jsonl"):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # Only the driver is killed (as the OOM killer would): its Ray cluster must not outlive it. Ray's own
    # agents linger a minute after their raylet dies; the watchdog ends them in well under a second.
    cluster = psutil.Process(process.pid).children(recursive=True)
    try:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        survivors = wait_until_gone(cluster, limit_s=30)
        assert not survivors, [" ".join(p.cmdline()) or p.name() for p in survivors]
    finally:
        kill_all(cluster)
    assert 4 not in steps_logged(crashed / "eval.jsonl")

    train("--resume", str(crashed))
    assert_same_logs(crashed, reference)
    assert len(json.loads((crashed / "versions.json").read_text())["resumes"]) == 1

    # The newest checkpoint damaged (a weight file cut short): the resume says so, sets it aside, redoes
    # steps 3-4 from the step-2 checkpoint, and the logs again equal the uninterrupted run's.
    name = "adapter_model.safetensors" if layout == LORA else "model.safetensors"
    weights = crashed / "checkpoints" / "step-000004" / name
    weights.write_bytes(weights.read_bytes()[:1000])
    output = train("--resume", str(crashed))
    assert f"{weights.parent}: skipped (file {name} is truncated (1000 of " in output, output
    assert (crashed / "checkpoints" / "step-000004.rejected").is_dir()
    assert_same_logs(crashed, reference)
    assert json.loads((crashed / "versions.json").read_text())["resumes"][-1]["from_step"] == 2
    if layout == LORA:  # the adapter alone was checkpointed and synced, and a run's checkpoint evaluates
        from cogrl.rl.evaluation import resolve_source

        assert not (weights.parent.with_name("step-000002") / "config.json").exists()
        adapter_bytes = (weights.parent.with_name("step-000002") / name).stat().st_size
        assert all(0 < m["sync/bytes"] <= adapter_bytes for m in read(crashed, "metrics.jsonl"))
        source = resolve_source(crashed)
        assert source.checkpoint_step == 4 and (source.model_dir / "config.json").is_file()


def assert_same_logs(run: Path, reference: Path) -> None:
    for name in ("metrics.jsonl", "eval.jsonl", "rollouts.jsonl"):
        got, want = read(run, name), read(reference, name)
        assert [r["step"] for r in got] == [r["step"] for r in want], name
        assert [stable(r) for r in got] == [stable(r) for r in want], name


NEW_ALGORITHMS = (
    "algorithm.advantage=reinforce_plus_plus_baseline",
    "algorithm.policy_loss=gspo",
    "algorithm.loss_agg=seq_mean",
    "algorithm.kl_estimator=low_var_kl",
    "algorithm.rollout_is_cap=2.0",
    "algorithm.rollout_mask=geometric",
    "algorithm.overlong_filter=true",
    "algorithm.overlong_buffer=4",
)


def test_train_with_the_new_algorithms(tmp_path, monkeypatch):
    """The CPU recipe with REINFORCE++, GSPO, low-var KL, TIS + MIS on the engine's log-probs and DAPO's length
    handling: the rollouts' finish reasons and log-probs reach the learner, and every step logs the ratio. The
    same run tags with a tagger of one's own (tests/plugins/line_tagger.py, named as behaviors.method): every
    rollout carries its counts (every line a subgoal, which no regex tagging gives on all of them)."""
    run = tmp_path / "run"
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # where `plugins` is importable
    tagger = "behaviors.method=plugins.line_tagger:LineTagger"
    train("recipes/cpu-tiny-grpo.yaml", *overrides(8, 2), *NEW_ALGORITHMS, tagger, "--out", str(run))
    metrics = read(run, "metrics.jsonl")
    rollouts = read(run, "rollouts.jsonl")
    assert all(r["behaviors"]["subgoal_setting"] == r["completion"].count("\n") + 1 for r in rollouts)
    truncated = [r["finish_reason"] == "length" for r in rollouts]
    for m in metrics:
        assert (
            0
            < m["train/rollout_is_ratio_min"]
            <= m["train/rollout_is_ratio_mean"]
            <= m["train/rollout_is_ratio_max"]
        )
        assert (
            m["train/overlong_penalty_mean"] < 0
        )  # 12-token cap, 4-token buffer: untrained responses run long
    assert sum(m["train/overlong_filtered_frac"] for m in metrics) == pytest.approx(sum(truncated) / 8)


def test_train_with_dynamic_sampling(tmp_path):
    """DAPO's dynamic sampling in the loop: groups whose two rewards are equal are dropped and one further
    draw of 4 prompts refills the batch; the step's own rollouts are still the ones logged. (The untrained
    tiny model scores 0 everywhere, so this run takes the no-group-kept path; which groups are kept is
    tested in tests/rl/test_dynamic_sampling.py.)"""
    run = tmp_path / "run"
    train(
        "recipes/cpu-tiny-grpo.yaml",
        *overrides(8, 2),
        "algorithm.dynamic_sampling_rounds=1",
        "--out",
        str(run),
    )
    metrics, rollouts = read(run, "metrics.jsonl"), read(run, "rollouts.jsonl")
    assert len(rollouts) == 2 * 4 * 2
    for m in metrics:
        kept, drawn = m["sampling/groups_kept"], m["sampling/prompts_drawn"]
        assert drawn in (4, 8) and (kept == 4 or drawn == 8)
        assert m["train/num_sequences"] == 2 * (kept or 4)  # two samples per prompt; none kept: its own 4
        own = [r for r in rollouts if r["step"] == m["step"]]
        informative = len(
            {
                r["task_id"]
                for r in own
                if r["reward"] != next(o["reward"] for o in own if o["task_id"] == r["task_id"])
            }
        )
        assert kept >= informative and (drawn == 4) == (informative == 4)
