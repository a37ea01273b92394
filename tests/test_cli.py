"""The one CLI: generic environment commands on a plugin the core has never heard of, and exit code 2 with a
one-line reason on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import datasets
import pytest

from cogrl.cli.env import parse_extra_args
from cogrl.config import TrainerConfig
from cogrl.envs import available_envs, get_env_class
from cogrl.files import InputError

REVERSE = "tests.plugins.reverse_env:ReverseEnv"


def cogrl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_countdown_is_found_by_entry_point():
    assert "countdown" in available_envs()
    assert get_env_class("countdown").name == "countdown"


def test_unknown_env_suggests_the_closest():
    result = cogrl("env", "generate", "countdwn", "--out", "/tmp/never")
    assert result.returncode == 2
    assert "did you mean 'countdown'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_generate_and_score_a_plugin_outside_the_core(tmp_path):
    out = tmp_path / "reverse"
    result = cogrl("env", "generate", REVERSE, "--out", str(out), "--n-train", "5", "--seed", "3")
    assert result.returncode == 0, result.stderr
    train = datasets.load_from_disk(str(out / "train"))
    assert len(train) == 5 and set(train.column_names) >= {"id", "prompt", "word"}
    assert (out / "test.parquet").exists()

    lines = [
        json.dumps({"word": "abc", "completion": "cba"}),
        "{broken",
        json.dumps({"word": "abc"}),
        json.dumps({"word": "xyz", "completion": "nope"}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = cogrl("score", "--env", REVERSE, str(path))
    assert result.returncode == 2
    scored = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["word"], r["reward"], r["reason"]) for r in scored] == [
        ("abc", 1.0, "correct"),
        ("xyz", 0.0, "wrong"),
    ]
    assert f"{path}:2: invalid JSON" in result.stderr
    assert f"{path}:3: field 'completion'" in result.stderr


def test_bad_env_option_names_it():
    result = cogrl("env", "generate", REVERSE, "--out", "/tmp/never", "--n-trian", "5")
    assert result.returncode == 2
    assert "unknown key 'n_trian'" in result.stderr and "did you mean 'n_train'" in result.stderr


def test_bad_recipe_exits_2_with_one_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nmodel: {path: m}\ntrainer: {stepz: 3}\n")
    result = cogrl("train", str(recipe), "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"cogrl: error: {recipe}: unknown key 'trainer.stepz'; did you mean 'trainer.steps'? "
        f"(valid here: {', '.join(sorted(TrainerConfig.model_fields))})"
    ]


def test_parse_extra_args():
    assert parse_extra_args(["--numbers", "25", "-3", "--target", "32", "--flag"]) == {
        "numbers": ["25", "-3"],
        "target": "32",
        "flag": True,
    }
    with pytest.raises(InputError):
        parse_extra_args(["stray"])
