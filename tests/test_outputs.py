"""One output-directory policy for every command that takes --out: an existing non-empty target is refused
unless --overwrite is given; a file, `.`, `..`, the current directory or one of its parents (and a folder
holding the command's own input) is refused even with --overwrite; nothing outside what the command created
is ever removed. `train` and `sweep` write in place and resume instead of overwriting (--resume; a sweep
directory resumes when it holds the sweep's own sweep.yaml)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from clirunner import run_cli

from cogrl.files import InputError, atomic_path, check_output_dir

REPO = Path(__file__).resolve().parents[1]
BEHAVIORS = ("verification", "backtracking", "subgoal_setting", "backward_chaining")


def _tagged(tmp: Path) -> list[str]:
    path = tmp / "tagged.jsonl"
    line = {"completion": "x", "reward": 1.0, "step": 1, "behaviors": dict.fromkeys(BEHAVIORS, 0)}
    path.write_text(json.dumps(line) + "\n")
    return ["behaviors", "report", str(path)]


def _run_dir(tmp: Path) -> list[str]:
    run = tmp / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: r\n")
    (run / "eval.jsonl").write_text(json.dumps({"step": 0, "eval/accuracy": 0.5}) + "\n")
    counts = dict.fromkeys(BEHAVIORS, 1)
    rollout = {
        "step": 0,
        "task_id": "t",
        "sample": 0,
        "completion": "ab",
        "correct": True,
        "behaviors": counts,
    }
    (run / "eval_rollouts.jsonl").write_text(json.dumps(rollout) + "\n")
    return ["report", str(run)]


def _fake_sft(monkeypatch) -> None:
    """Training is slow: stand in for run_sft with what it does to its output (atomic_path over `out`)."""

    def fake(recipe, out, log=print):
        with atomic_path(out) as tmp:
            tmp.mkdir()
            (tmp / "new.txt").write_text("model")
        return out

    monkeypatch.setattr("cogrl.priming.sft.run_sft", fake)


def _sweep(tmp: Path) -> list[str]:
    path = tmp / "s.yaml"
    path.write_text(f"train: {REPO / 'recipes/cpu-tiny-grpo.yaml'}\nconditions: [none]\n")
    return ["sweep", str(path)]


@dataclass(frozen=True)
class Command:
    name: str
    args: Callable[[Path], list[str]]  # the command without --out, given a folder for its inputs
    overwrites: bool = True  # has --overwrite (train and sweep resume instead)
    fake: Callable | None = None  # replaces a slow step (monkeypatch) for the runs that get that far


COMMANDS = [
    Command("env generate", lambda t: ["env", "generate", "countdown", "--n-train", "5", "--n-test", "2"]),
    Command("prime build", lambda t: ["prime", "build", "--condition", "all_strategies", "--n", "3", "--n-val", "0"]),
    Command("prime sft", lambda t: ["prime", "sft", str(REPO / "recipes/cpu-tiny-prime-sft.yaml")], fake=_fake_sft),
    Command("report", _run_dir),
    Command("behaviors report", _tagged),
    Command("train", lambda t: ["train", str(REPO / "recipes/cpu-tiny-grpo.yaml")], overwrites=False),
    Command("sweep", _sweep, overwrites=False),
]  # fmt: skip
CASES = ["dot", "dotdot", "file", "non-empty", "overwrite"]


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A working directory with unrelated files, inside a parent that holds one unrelated file too."""
    (tmp_path / "parent-file.txt").write_text("keep")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "mine.txt").write_text("keep")
    (work / "sub" / "deep.txt").write_text("keep")
    monkeypatch.chdir(work)
    return work


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("command", "case"),
    [
        pytest.param(command, case, id=f"{command.name}-{case}")
        for command in COMMANDS
        for case in CASES
        if case != "overwrite" or command.overwrites  # train and sweep resume in place instead
    ],
)
def test_every_out_command_follows_one_policy(command, case, work, tmp_path, capsys, monkeypatch):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = command.args(inputs)
    if command.fake is not None:
        command.fake(monkeypatch)
    target = {"dot": ".", "dotdot": "..", "file": "mine.txt"}.get(case, "out")
    if case in ("non-empty", "overwrite"):
        (work / "out").mkdir()
        (work / "out" / "old.txt").write_text("old")
    extra = ["--overwrite"] if case == "overwrite" else []
    before = snapshot(tmp_path)

    code, _, err = run_cli([*args, "--out", target, *extra], capsys, monkeypatch)

    if case == "overwrite":
        assert code == 0, err
        assert not (work / "out" / "old.txt").exists() and any((work / "out").iterdir())
        assert sorted(p.name for p in work.iterdir()) == ["mine.txt", "out", "sub"]  # no temp left behind
        after = snapshot(tmp_path)
        assert {k: v for k, v in after.items() if not k.startswith("work/out/")} == {
            k: v for k, v in before.items() if not k.startswith("work/out/")
        }
        return
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("cogrl: error: ")
    assert target in err
    assert snapshot(tmp_path) == before  # nothing lost, nothing left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["inputs", "parent-file.txt", "work"])
    if case == "non-empty":
        expected = (
            "--overwrite" if command.overwrites else "--resume" if command.name == "train" else "sweep.yaml"
        )
        assert "not empty" in err and expected in err
    elif command.overwrites:
        assert "even with --overwrite" in err


def test_dot_with_overwrite_is_still_refused(work, capsys, monkeypatch):
    before = snapshot(work.parent)
    args = ["env", "generate", "countdown", "--n-train", "5", "--n-test", "2", "--out", ".", "--overwrite"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "current directory" in err and "even with --overwrite" in err
    assert snapshot(work.parent) == before


def test_an_empty_existing_directory_is_used(work, capsys, monkeypatch):
    (work / "out").mkdir()
    args = ["env", "generate", "countdown", "--n-train", "5", "--n-test", "2", "--out", "out"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert (work / "out" / "train.parquet").is_file()


def test_a_sweep_directory_with_its_own_recipe_resumes(work, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "cogrl.experiments.sweep.run_sweep",
        lambda recipe, out, log: calls.append(out) or type("R", (), {"failed": []})(),
    )
    out = work / "sweep-out"
    (out / "none").mkdir(parents=True)
    (out / "sweep.yaml").write_text("name: s\n")
    code, _, err = run_cli([*_sweep(tmp_path), "--out", str(out)], capsys, monkeypatch)
    assert code == 0, err
    assert calls == [out]


def test_report_refuses_to_overwrite_its_own_input(tmp_path, capsys, monkeypatch):
    args = _run_dir(tmp_path)
    before = snapshot(tmp_path)
    for out in (tmp_path / "run", tmp_path):
        code, _, err = run_cli([*args, "--out", str(out), "--overwrite"], capsys, monkeypatch)
        assert code == 2 and "input" in err and "even with --overwrite" in err
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------- the helpers
def test_check_output_dir_refuses_unsafe_targets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for target, message in [
        (".", "current directory"),
        ("..", "current directory"),
        ("/", "current directory"),
        ("f", "is a file"),
        ("f/sub", "is a file"),
    ]:
        with pytest.raises(InputError, match=message):
            check_output_dir(Path(target), overwrite=True)
    with pytest.raises(InputError, match="not empty; pass --overwrite"):
        check_output_dir(Path("full"))
    assert check_output_dir(Path("full"), overwrite=True) == tmp_path / "full"
    assert check_output_dir(Path("new/deeper")) == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_atomic_path_on_the_current_directory_removes_nothing_else(tmp_path, monkeypatch):
    """The reported bug: `.` has an empty name, and the old temp path's parent was the target's parent."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep").write_text("x")
    (tmp_path / "sibling").write_text("x")
    monkeypatch.chdir(work)
    with atomic_path(Path(".")) as tmp:
        assert tmp.parent.parent == tmp_path  # a fresh folder beside the resolved target
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert (tmp_path / "sibling").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sibling", "work"]


def test_atomic_path_keeps_the_old_directory_when_the_swap_fails(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old").write_text("old")
    real_replace = os.replace

    def failing(src, dst):
        if Path(src).name == "out" and Path(dst) == target:
            raise OSError("disk gone")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk gone"), atomic_path(target) as tmp:
        tmp.mkdir()
    assert (target / "old").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
