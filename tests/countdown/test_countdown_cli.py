"""`cogrl env generate|solve|list` and `cogrl score` on the Countdown environment, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from typer.testing import CliRunner

from cogrl.cli import app
from cogrl.envs import Environment, Solver, make_env
from cogrl_countdown.env import CountdownEnv
from cogrl_countdown.prompts import base_prompt, completion

runner = CliRunner()


def test_registered_and_implements_the_protocol():
    env = make_env("countdown", {"n_train": 2, "n_test": 1})
    assert isinstance(env, CountdownEnv)
    assert isinstance(env, Environment) and isinstance(env, Solver)
    result = runner.invoke(app, ["env", "list"])
    assert result.exit_code == 0 and "countdown\tcogrl_countdown.env:CountdownEnv" in result.output


def test_generate(tmp_path):
    out = tmp_path / "cd"
    result = runner.invoke(
        app,
        [
            "env",
            "generate",
            "countdown",
            "--out",
            str(out),
            "--preset",
            "rl",
            "--n-train",
            "40",
            "--n-test",
            "8",
        ],
    )
    assert result.exit_code == 0, result.output
    train = datasets.load_from_disk(str(out / "train"))
    assert len(train) == 40 and len(pq.read_table(out / "test.parquet")) == 8
    assert {"id", "prompt", "numbers", "target", "solution", "n_solutions"} <= set(train.column_names)
    row = train[0]
    assert row["prompt"] == base_prompt(row["numbers"], row["target"])
    assert json.loads((out / "options.json").read_text())["n_train"] == 40


def test_generate_rejects_bad_options(tmp_path):
    result = runner.invoke(
        app, ["env", "generate", "countdown", "--out", str(tmp_path / "x"), "--n-trian", "3"]
    )
    assert result.exit_code != 0 and "n_trian" in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_solve():
    result = runner.invoke(
        app, ["env", "solve", "countdown", "--numbers", "25", "30", "3", "4", "--target", "32"]
    )
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["(30 + 3 - 25) * 4"]
    result = runner.invoke(
        app,
        [
            "env",
            "solve",
            "countdown",
            "--max-solutions",
            "2",
            "--numbers",
            "1",
            "2",
            "3",
            "4",
            "--target",
            "10",
        ],
    )
    assert len(result.stdout.splitlines()) == 2


def test_score_keeps_order_and_reports_bad_lines(tmp_path):
    lines = [
        {
            "numbers": [25, 30, 3, 4],
            "target": 32,
            "completion": "<think>x" + completion("hm", "(30 + 3 - 25) * 4"),
        },
        "not json",
        {"nums": [1, 2, 3], "target": 6, "completion": "no tags"},
        {"numbers": [1, 2], "target": 3, "completion": "<answer>1+2</answer>"},
        {"numbers": [1, 2, 3], "target": 7, "completion": "<answer>1 + 2 * 3</answer>", "id": "keep-me"},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "cogrl"), "score", "--env", "countdown", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["reward"], r["reason"]) for r in out] == [
        (1.0, "correct"),
        (0.0, "no_answer"),
        (1.0, "correct"),
    ]
    assert out[2]["id"] == "keep-me"
    assert f"{path}:2: invalid JSON" in proc.stderr and f"{path}:4: field 'numbers'" in proc.stderr
