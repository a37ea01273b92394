"""The sweep recipe and its orchestration: validation, the dry-run plan, stage skipping on a re-run, RL resume,
and a failing condition that does not stop the others. Stages are replaced by cheap ones that write what the
real ones write (the end-to-end test runs the real ones)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cogrl.config import SweepRecipe
from cogrl.experiments.sweep import Stages, load_sweep, plan_text, rl_recipe, run_sweep, sweep_runs
from cogrl.files import InputError

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "recipes/sweeps/cpu-quickstart.yaml"


def write_sweep(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"train: {REPO / 'recipes/cpu-tiny-grpo.yaml'}\n{body}")
    return path


@pytest.mark.parametrize("path", sorted((REPO / "recipes/sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sweep_validates(path):
    assert load_sweep(path).conditions


def test_quickstart_recipe_loads_and_train_path_is_inlined():
    recipe = load_sweep(QUICKSTART, ["train.trainer.steps=3"])
    assert recipe.name == "cpu-quickstart"
    assert recipe.train.name == "cpu-tiny-grpo"
    assert recipe.train.trainer.steps == 3
    assert len(recipe.conditions) >= 2
    assert recipe.train.algorithm.advantage == "grpo"  # from the recipe it extends


def test_inline_train_extends_a_recipe_and_states_what_differs(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        f"conditions: [none]\ntrain:\n  extends: {REPO / 'recipes/cpu-tiny-grpo.yaml'}\n"
        "  trainer: {steps: 4}\n  rollout: {max_new_tokens: 32}\n"
    )
    recipe = load_sweep(path)
    assert recipe.train.trainer.steps == 4 and recipe.train.rollout.max_new_tokens == 32
    assert recipe.train.trainer.prompts_per_step == 16 and recipe.train.name == "cpu-tiny-grpo"


def test_unknown_key_is_an_error_naming_it(tmp_path):
    path = write_sweep(tmp_path, "conditions: [all_strategies]\nsft: {epoch: 3}\n")
    with pytest.raises(InputError, match=r"unknown key 'sft.epoch'; did you mean 'sft.epochs'"):
        load_sweep(path)
    with pytest.raises(InputError, match=r"unknown key 'train.trainer.stepz'"):
        load_sweep(write_sweep(tmp_path, "conditions: [none]\n"), ["train.trainer.stepz=3"])


def test_bad_condition_and_per_condition_knobs_are_errors(tmp_path):
    with pytest.raises(InputError, match=r"unknown priming condition 'all_strategy'; did you mean"):
        load_sweep(write_sweep(tmp_path, "conditions: [all_strategy]\n"))
    with pytest.raises(InputError, match=r"repeat"):
        load_sweep(write_sweep(tmp_path, "conditions: [none, none]\n"))
    with pytest.raises(InputError, match=r"sft.condition"):
        load_sweep(write_sweep(tmp_path, "conditions: [none]\nsft: {condition: no_behavior}\n"))


def test_layout_and_rl_recipe_of_each_condition(tmp_path):
    recipe = load_sweep(write_sweep(tmp_path, "conditions: [none, empty_cot]\nseeds: [0, 3]\n"))
    runs = sweep_runs(recipe, tmp_path / "out")
    assert [(r.condition, r.seed, r.root.relative_to(tmp_path / "out").as_posix()) for r in runs] == [
        ("none", 0, "none/seed-0"),
        ("none", 3, "none/seed-3"),
        ("empty_cot", 0, "empty_cot/seed-0"),
        ("empty_cot", 3, "empty_cot/seed-3"),
    ]
    assert runs[0].stages == ("rl",) and runs[2].stages == ("prime", "sft", "rl")
    base = rl_recipe(recipe, runs[1])
    assert base.seed == 3 and base.warmup is None and base.model.tiny == recipe.train.model.tiny
    primed = rl_recipe(recipe, runs[3])
    assert primed.model.path == str((runs[3].root / "sft").resolve()) and primed.model.tiny is None
    assert primed.trainer == recipe.train.trainer and primed.algorithm == recipe.train.algorithm


def test_dry_run_prints_the_plan_without_loading_a_model(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", "sweep", str(QUICKSTART), "--dry-run"]
        + ["--out", str(out), "train.trainer.steps=7"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "7 steps" in result.stdout
    for condition in load_sweep(QUICKSTART).conditions:
        assert f"{condition} " in result.stdout
    assert "pending" in result.stdout and not out.exists()


# ---------------------------------------------------------------------------------------------- running
class FakeStages:
    """Stages that write what the real ones write, record each call, and can fail or crash on request."""

    def __init__(self, fail: str | None = None, crash_rl_at: int | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail
        self.crash_rl_at = crash_rl_at

    def stages(self) -> Stages:
        return Stages(prime=self.prime, sft=self.sft, rl=self.rl)

    def _dir(self, stage: str, run) -> None:
        self.calls.append((run.condition, stage))
        if run.condition == self.fail:
            raise RuntimeError(f"{stage} broke")
        run.stage_dir(stage).mkdir(parents=True)

    def prime(self, recipe: SweepRecipe, run, log) -> None:
        self._dir("prime", run)

    def sft(self, recipe: SweepRecipe, run, log) -> None:
        self._dir("sft", run)

    def rl(self, recipe: SweepRecipe, run, log) -> None:
        self.calls.append((run.condition, "rl"))
        rl = run.stage_dir("rl")
        (rl / "checkpoints").mkdir(parents=True, exist_ok=True)
        (rl / "config.yaml").write_text("name: x\n")
        done = [int(p.name[5:]) for p in (rl / "checkpoints").iterdir()]
        for step in range(max(done, default=0) + 1, recipe.train.trainer.steps + 1):
            if step == self.crash_rl_at:
                self.crash_rl_at = None
                raise RuntimeError("killed mid-run")
            (rl / "checkpoints" / f"step-{step:06d}").mkdir()


def test_rerun_skips_finished_stages_and_resumes_rl(tmp_path):
    recipe = load_sweep(
        write_sweep(tmp_path, "conditions: [none, all_strategies]\n"), ["train.trainer.steps=4"]
    )
    out = tmp_path / "out"
    fake = FakeStages(crash_rl_at=3)
    first = run_sweep(recipe, out, log=lambda _: None, stages=fake.stages())
    assert [r["status"] for r in first.runs] == ["failed", "done"]
    assert "at step 2/4" in plan_text(recipe, out)
    fake.calls.clear()
    second = run_sweep(recipe, out, log=lambda _: None, stages=fake.stages())
    assert [r["status"] for r in second.runs] == ["done", "done"]
    assert fake.calls == [("none", "rl")]  # only the unfinished RL run; all_strategies was complete
    assert sorted(p.name for p in (out / "none/rl/checkpoints").iterdir())[-1] == "step-000004"
    manifest = json.loads((out / "sweep.json").read_text())
    assert [(r["condition"], r["dir"], r["status"]) for r in manifest["runs"]] == [
        ("none", "none", "done"),
        ("all_strategies", "all_strategies", "done"),
    ]
    fake.calls.clear()
    run_sweep(recipe, out, log=lambda _: None, stages=fake.stages())
    assert fake.calls == []
    plan = plan_text(recipe, out)
    assert "pending" not in plan and "at step" not in plan


def test_a_failed_condition_does_not_stop_the_others(tmp_path):
    recipe = load_sweep(write_sweep(tmp_path, "conditions: [empty_cot, all_strategies, backtracking_only]\n"))
    out = tmp_path / "out"
    fake = FakeStages(fail="all_strategies")
    result = run_sweep(recipe, out, log=lambda _: None, stages=fake.stages())
    assert [(r["condition"], r["status"]) for r in result.runs] == [
        ("empty_cot", "done"),
        ("all_strategies", "failed"),
        ("backtracking_only", "done"),
    ]
    assert result.failed[0]["stage"] == "prime" and "prime broke" in result.failed[0]["error"]
    assert ("backtracking_only", "rl") in fake.calls
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["runs"][1]["status"] == "failed"


def test_a_sweep_directory_refuses_a_different_recipe(tmp_path):
    path = write_sweep(tmp_path, "conditions: [none]\n")
    out = tmp_path / "out"
    run_sweep(load_sweep(path), out, log=lambda _: None, stages=FakeStages().stages())
    with pytest.raises(InputError, match="different recipe"):
        run_sweep(
            load_sweep(path, ["train.trainer.lr=0.1"]), out, log=lambda _: None, stages=FakeStages().stages()
        )


def test_a_knob_added_since_at_its_default_does_not_make_a_started_sweep_another(tmp_path):
    path = write_sweep(tmp_path, "conditions: [none]\n")
    out = tmp_path / "out"
    run_sweep(load_sweep(path), out, log=lambda _: None, stages=FakeStages().stages())
    saved = (out / "sweep.yaml").read_text()
    assert "priming_validation: 0\n" in saved  # as if written before the knob existed:
    (out / "sweep.yaml").write_text(saved.replace("priming_validation: 0\n", ""))
    run_sweep(load_sweep(path), out, log=lambda _: None, stages=FakeStages().stages())


def test_a_sweep_whose_rl_plan_cannot_fit_is_refused_before_anything_starts(tmp_path):
    """The paper's PPO on 8 GB GPUs: one line naming the shortfall, exit 2, no sweep directory."""
    path = tmp_path / "sweep.yaml"
    path.write_text(f"name: s\ntrain: {REPO / 'recipes/paper/qwen2.5-3b-ppo.yaml'}\nconditions: [none]\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", "sweep", str(path), "--out", str(out)]
        + ["train.trainer.gpu_memory_gb=8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("cogrl: error:")]
    assert len(errors) == 1 and "plan does not fit" in errors[0] and "short by" in errors[0]
    assert not out.exists()


def test_the_standalone_base_recipe_is_the_miniature_sweeps_base():
    from cogrl.config import PretrainRecipe, load_recipe
    from cogrl.experiments.sweep import base_recipe
    from cogrl.pretraining import content_address

    sweep = load_sweep(REPO / "recipes/sweeps/cpu-miniature.yaml")
    alone = load_recipe(REPO / "recipes/pretrain/countdown-mini-base.yaml", kind=PretrainRecipe)
    assert content_address(alone) == content_address(base_recipe(sweep))
