"""Run directories: reproducibility metadata, append-only logs, atomic checkpoints, resume without duplicates."""

from __future__ import annotations

import json

import pytest

from cogrl.config import TrainRecipe, validate_recipe
from cogrl.files import InputError
from cogrl.rl.runs import RunDir


@pytest.fixture
def recipe():
    return validate_recipe({"name": "t", "model": {"path": "m"}, "seed": 7}, TrainRecipe)


def test_create_saves_config_and_versions_without_secrets(tmp_path, recipe, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-do-not-log")
    run = RunDir.create(recipe, tmp_path / "run")
    versions = json.loads((run.root / "versions.json").read_text())
    assert versions["seed"] == 7
    assert "torch" in versions["packages"] and "git_commit" in versions
    for path in run.root.rglob("*"):
        if path.is_file():
            assert "sk-secret-do-not-log" not in path.read_text()
    assert "seed: 7" in (run.root / "config.yaml").read_text()


def test_create_refuses_a_used_directory(tmp_path, recipe):
    RunDir.create(recipe, tmp_path / "run")
    with pytest.raises(InputError, match="--resume"):
        RunDir.create(recipe, tmp_path / "run")


def test_checkpoints_are_atomic_and_pruned(tmp_path, recipe):
    run = RunDir.create(recipe, tmp_path / "run")
    for step in (10, 20, 30):
        run.save_checkpoint(step, lambda d, s=step: (d / "weights").write_text(str(s)), keep=2)
    assert [s for s, _ in run.checkpoints()] == [20, 30]
    assert (run.last_checkpoint()[1] / "weights").read_text() == "30"

    def crash(directory):
        (directory / "weights").write_text("partial")
        raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        run.save_checkpoint(40, crash, keep=2)
    assert [s for s, _ in run.checkpoints()] == [20, 30]
    assert sorted(p.name for p in run.checkpoint_dir.iterdir()) == ["step-000020", "step-000030"]


def test_resume_drops_steps_after_the_last_checkpoint(tmp_path, recipe):
    run = RunDir.create(recipe, tmp_path / "run")
    for step in range(1, 6):
        run.log("rollouts.jsonl", [{"step": step, "i": i} for i in range(2)])
        run.log("metrics.jsonl", [{"step": step}])
        if step == 3:
            run.save_checkpoint(step, lambda d: None, keep=2)
    with open(run.root / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 6, "torn')  # killed mid-write
    run.close()

    resumed = RunDir.resume(run.root)
    assert [r["step"] for r in resumed.read("metrics.jsonl")] == [1, 2, 3]
    assert [r["step"] for r in resumed.read("rollouts.jsonl")] == [1, 1, 2, 2, 3, 3]
    resumed.log("metrics.jsonl", [{"step": 4}])
    assert [r["step"] for r in resumed.read("metrics.jsonl")] == [1, 2, 3, 4]
    assert len(json.loads((run.root / "versions.json").read_text())["resumes"]) == 1


def test_resume_needs_a_run_directory(tmp_path):
    with pytest.raises(InputError, match="not a run directory"):
        RunDir.resume(tmp_path)


def test_resume_with_overrides_rewrites_the_config_and_records_them(tmp_path, recipe):
    run = RunDir.create(recipe, tmp_path / "run")
    run.save_checkpoint(2, lambda d: None, keep=2)
    run.close()
    resumed = RunDir.resume(run.root, ["trainer.steps=50"])
    assert resumed.recipe.trainer.steps == 50
    assert RunDir.resume(run.root).recipe.trainer.steps == 50  # saved
    last = json.loads((run.root / "versions.json").read_text())["resumes"][0]
    assert (last["from_step"], last["overrides"]) == (2, ["trainer.steps=50"])
    with pytest.raises(InputError, match="did you mean 'trainer.steps'"):
        RunDir.resume(run.root, ["trainer.stepz=5"])


def test_resume_before_the_first_checkpoint_redoes_everything(tmp_path, recipe):
    run = RunDir.create(recipe, tmp_path / "run")
    run.log("eval.jsonl", [{"step": 0}])
    run.log("metrics.jsonl", [{"step": 1}])
    run.close()
    resumed = RunDir.resume(run.root)
    assert resumed.read("eval.jsonl") == [] and resumed.read("metrics.jsonl") == []
