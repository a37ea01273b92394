"""bench/gpu_check.py, the script a GPU session runs: it skips cleanly without CUDA, and its learner and
rollout parts run end to end on CPU (--cpu-smoke), so a GPU session does not spend its minutes on a typo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"


def test_without_cuda_it_says_why_and_exits_0():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "no CUDA device" in result.stdout


@pytest.mark.slow
def test_cpu_smoke_runs_every_part(tmp_path):
    out = tmp_path / "results.json"
    command = [sys.executable, str(SCRIPT), "--cpu-smoke", "--work", str(tmp_path), "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    learner = [r for r in results if "strategy" in r]
    assert [r["strategy"] for r in learner] == ["ddp", "fsdp", "ddp"]
    assert learner[-1]["recipe"].endswith("model.lora.rank=4")
    assert all(r["pg_loss_finite"] and r["tokens_per_s"] > 0 and r["planned_gb"] > 0 for r in learner)
    rollout = [r for r in results if "engine_sync_s" in r]
    assert len(rollout) == 1 and rollout[0]["generate_tokens_per_s"] > 0
