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


# ------------------------------------------------------------------------------ resume hardening


def snapshot(root):
    """Every file under `root` with its bytes: a refused resume must leave this unchanged."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def weights(directory, step=0):
    (directory / "model.bin").write_bytes(bytes(range(256)) * 8 + bytes([step]))
    (directory / "config.json").write_text('{"arch": "tiny"}\n')


def logged_run(tmp_path, recipe, checkpoint_steps=(2, 4), last_step=5):
    """A run with logs for steps 1..last_step and checkpoints at `checkpoint_steps` (all kept)."""
    run = RunDir.create(recipe, tmp_path / "run")
    run.log("eval.jsonl", [{"step": 0}])
    for step in range(1, last_step + 1):
        run.log("rollouts.jsonl", [{"step": step, "i": i} for i in range(2)])
        run.log("metrics.jsonl", [{"step": step}])
        if step in checkpoint_steps:
            run.log("eval.jsonl", [{"step": step}])
            run.save_checkpoint(step, lambda d, s=step: weights(d, s), keep=len(checkpoint_steps))
    run.close()
    return run.root


def test_checkpoint_manifest_names_each_kind_of_damage(tmp_path, recipe):
    from cogrl.rl.runs import checkpoint_fault

    run = RunDir.create(recipe, tmp_path / "run")
    path = run.save_checkpoint(2, weights, keep=2)
    manifest = json.loads((path / "manifest.json").read_text())["files"]
    assert set(manifest) == {"model.bin", "config.json", "step.json"}
    assert checkpoint_fault(path) is None

    good = (path / "model.bin").read_bytes()
    (path / "model.bin").write_bytes(good[:100])
    assert checkpoint_fault(path) == f"file model.bin is truncated (100 of {len(good)} bytes)"
    (path / "model.bin").write_bytes(good[:-1] + b"\xff")  # same size, one byte changed
    assert checkpoint_fault(path) == "file model.bin fails its checksum"
    (path / "model.bin").unlink()
    assert checkpoint_fault(path) == "file model.bin is missing"
    (path / "model.bin").write_bytes(good)
    (path / "stray.pt").write_bytes(b"x")
    assert checkpoint_fault(path) == "file stray.pt has no manifest entry"
    (path / "stray.pt").unlink()
    assert checkpoint_fault(path) is None
    (path / "manifest.json").write_text('{"files": ')
    assert checkpoint_fault(path).startswith("manifest.json is unreadable")


def test_checkpoint_without_manifest_is_opened_file_by_file(tmp_path, recipe):
    import torch
    from safetensors.torch import save_file

    from cogrl.rl.runs import checkpoint_fault

    def save(directory):
        save_file({"w": torch.ones(64, 64)}, directory / "model.safetensors")
        torch.save({"updates": 3, "rng": torch.zeros(16)}, directory / "learner_state.pt")

    run = RunDir.create(recipe, tmp_path / "run")
    path = run.save_checkpoint(2, save, keep=2)
    (path / "manifest.json").unlink()  # as written before manifests existed
    assert checkpoint_fault(path) is None
    for name in ("model.safetensors", "learner_state.pt"):
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[: len(data) // 2])
        assert checkpoint_fault(path).startswith(f"file {name} does not load")
        (path / name).write_bytes(data)
    assert checkpoint_fault(path) is None


def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, recipe):
    root = logged_run(tmp_path, recipe, checkpoint_steps=(2, 4), last_step=5)
    model = root / "checkpoints" / "step-000004" / "model.bin"
    model.write_bytes(model.read_bytes()[:10])
    warnings = []
    resumed = RunDir.resume(root, warn=warnings.append)
    assert warnings == [
        f"{root / 'checkpoints' / 'step-000004'}: skipped (file model.bin is truncated (10 of 2049 bytes)); "
        "set aside as step-000004.rejected"
    ]
    assert resumed.last_checkpoint() == (2, root / "checkpoints" / "step-000002")
    assert (root / "checkpoints" / "step-000004.rejected" / "model.bin").exists()
    assert [r["step"] for r in resumed.read("metrics.jsonl")] == [1, 2]
    assert [r["step"] for r in resumed.read("eval.jsonl")] == [0, 2]
    last = json.loads((root / "versions.json").read_text())["resumes"][-1]
    assert last["from_step"] == 2
    assert last["rejected_checkpoints"] == {"step-000004": "file model.bin is truncated (10 of 2049 bytes)"}
    # The redone step 4 is checkpointed again under its own name; the rejected copy never counts.
    resumed.save_checkpoint(4, lambda d: weights(d, 4), keep=2)
    assert [s for s, _ in resumed.checkpoints()] == [2, 4]


def test_resume_with_no_loadable_checkpoint_changes_nothing(tmp_path, recipe):
    root = logged_run(tmp_path, recipe, checkpoint_steps=(2, 4), last_step=5)
    (root / "checkpoints" / "step-000004" / "model.bin").write_bytes(b"")
    (root / "checkpoints" / "step-000002" / "config.json").unlink()
    before = snapshot(root)
    with pytest.raises(InputError) as error:
        RunDir.resume(root, ["trainer.steps=50"], warn=pytest.fail)
    assert str(error.value) == (
        f"{root}: no checkpoint can be resumed from (step-000004: file model.bin is truncated (0 of 2049 "
        "bytes); step-000002: file config.json is missing)"
    )
    assert snapshot(root) == before


def test_malformed_log_line_refuses_the_resume_and_names_it(tmp_path, recipe):
    root = logged_run(tmp_path, recipe, checkpoint_steps=(2, 4), last_step=5)
    lines = (root / "metrics.jsonl").read_text().splitlines(keepends=True)
    for bad, error in [('{"step": 2, "reward": nul\n', "invalid JSON"), ('{"reward": 1}\n', "'step'")]:
        (root / "metrics.jsonl").write_text("".join([*lines[:1], bad, *lines[2:]]))
        before = snapshot(root)
        with pytest.raises(InputError, match=rf"metrics.jsonl:2: .*{error}.*resume from step 4"):
            RunDir.resume(root, ["trainer.steps=50"], warn=pytest.fail)
        assert snapshot(root) == before  # config.yaml not rewritten, no log cut
    # A malformed line among the steps that are redone anyway is dropped with them.
    (root / "metrics.jsonl").write_text("".join([*lines, "garbage\n", '{"step": 7']))
    resumed = RunDir.resume(root)
    assert [r["step"] for r in resumed.read("metrics.jsonl")] == [1, 2, 3, 4]


def test_kept_log_lines_keep_their_bytes(tmp_path, recipe):
    root = logged_run(tmp_path, recipe, checkpoint_steps=(2, 4), last_step=4)
    (root / "rollouts.jsonl").write_text('{ "step" : 1 , "text": "caf\\u00e9"}\n')
    before = snapshot(root)
    RunDir.resume(root)
    after = snapshot(root)
    assert {k for k in after if after[k] != before.get(k)} == {"versions.json"}


def test_corrupt_versions_json_refuses_the_resume(tmp_path, recipe):
    root = logged_run(tmp_path, recipe)
    versions = root / "versions.json"
    for text, error in [('{"seed": 7,\n "git', "versions.json:2: invalid JSON"), ("[1]", "JSON object")]:
        versions.write_text(text)
        before = snapshot(root)
        with pytest.raises(InputError, match=error):
            RunDir.resume(root, ["trainer.steps=50"], warn=pytest.fail)
        assert snapshot(root) == before
    # Moved aside (as the error suggests): the resume starts a new record and says so.
    versions.unlink()
    warnings = []
    RunDir.resume(root, warn=warnings.append)
    assert warnings == [f"{versions}: missing; starting a new one that records this resume only"]
    assert [r["from_step"] for r in json.loads(versions.read_text())["resumes"]] == [4]
