"""The miniature end to end (`cogrl sweep` with a base stage, search-style priming, the verdict), shrunk to
run in a couple of minutes: a tiny char model pretrained on 60 documents, two conditions, 2 RL steps on the
hf backend, wandb offline. Checks what a user is promised: the progress view on the terminal and the
libraries' output in sweep.log, summary.json with the gates and the verdict, one base shared by both
conditions, every stage in wandb under one group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = [
    "conditions=[all_strategies, no_behavior]",
    "verdict.controls=[no_behavior]",
    "verdict.pass_k=2",
    "train.model.tiny={hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, tokenizer: char}",
    "base.corpus.documents=60",
    "base.corpus.probes=8",
    "base.pretrain.epochs=1",
    "base.pretrain.batch_size=4",
    "base.pretrain.seq_len=64",
    "train.env.options.n_train=40",
    "train.env.options.n_test=6",
    "train.rollout.backend=hf",
    "train.rollout.max_new_tokens=24",
    "train.rollout.samples_per_prompt=2",
    "train.trainer.steps=2",
    "train.trainer.prompts_per_step=2",
    "train.trainer.eval_every=2",
    "train.trainer.eval_problems=6",
    "train.trainer.eval_samples=2",
    "train.trainer.eval_sampled_problems=3",
    "train.trainer.checkpoint_every=2",
    "sft.n=8",
    "sft.epochs=1",
    "sft.batch_size=4",
]


def test_miniature_sweep_prints_progress_and_verdict_and_writes_summary(tmp_path):
    out = tmp_path / "mini"
    env = {**os.environ, "RAY_ADDRESS": "", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cogrl.cli import main; main()",
            "sweep",
            str(REPO / "recipes/sweeps/cpu-miniature.yaml"),
            *OVERRIDES,
            "--out",
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    terminal = result.stdout + result.stderr
    assert result.returncode == 0, terminal[-3000:]
    log = (out / "sweep.log").read_text()

    # The terminal: progress, gates, the table and one verdict sentence; the libraries' chatter is in the log.
    assert f"library output: {out / 'sweep.log'}" in terminal
    assert "pretrain step" in terminal and "eval @ step 0" in terminal and "step 2/2" in terminal
    assert "gate " in terminal and "Effect " in terminal
    assert "'loss':" not in terminal and "'loss':" in log  # TRL's per-step dicts
    assert "Loading weights" not in terminal
    assert "Effect " in log  # the progress lines are kept in the log too

    summary = json.loads((out / "summary.json").read_text())
    assert [(r["condition"], r["seed"]) for r in summary["runs"]] == [
        ("all_strategies", 0),
        ("no_behavior", 0),
    ]
    for run in summary["runs"]:
        assert run["end_step"] == 2
        assert (
            0.0 <= run["start_accuracy"] <= 1.0 and run["gain"] == run["end_accuracy"] - run["start_accuracy"]
        )
        assert run["start_pass"] is not None
    assert summary["pass_key"] == "eval/pass@2"
    assert set(summary["base"]["probes"]) == {"arithmetic", "unseen_equations"}
    verdict = summary["verdict"]
    assert verdict["outcome"] in {"shown", "not shown", "inconclusive"}
    assert verdict["sentence"] in terminal
    assert [g["gate"] for g in verdict["gates"]][0] == "base accuracy on the arithmetic probes"

    # One base, content-addressed in the (redirected) cache, primed by both conditions.
    bases = list((tmp_path / "home/.cache/cogrl/models").glob("base-*"))
    assert [b.name for b in bases if b.is_dir()] == [Path(summary["base"]["dir"]).name]
    for condition in ("all_strategies", "no_behavior"):
        assert (
            json.loads((out / condition / "sft/sft.json").read_text())["base_model"] == summary["base"]["dir"]
        )
        rollouts = [
            json.loads(line) for line in (out / condition / "rl/rollouts.jsonl").read_text().splitlines()
        ]
        assert all(r["behaviors"] is not None for r in rollouts)  # counted exactly (behaviors.method: exact)

    # wandb (offline): base, every SFT and every RL run, named by condition, seed and stage.
    offline = sorted(p.name for p in out.rglob("offline-run-*"))
    assert len(offline) == 5, offline
    assert any("base" in name for name in offline)
    assert sum("all_strategies-seed-0-rl" in name for name in offline) == 1
    assert sum("no_behavior-seed-0-sft" in name for name in offline) == 1

    again = subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", "sweep",
         str(REPO / "recipes/sweeps/cpu-miniature.yaml"), *OVERRIDES, "--out", str(out)],  # fmt: skip
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert again.returncode == 0 and "base: reusing" in again.stderr
    assert again.stderr.count("done, skipped") == 6
