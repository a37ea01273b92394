"""Natural failures from model samples (`cogrl prime build --source samples`): wrong answers that claim no
success they did not reach, one per task, through the library and the real entry point."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import datasets
import pytest

from cogrl.behaviors.types import BEHAVIORS
from cogrl.envs import make_env
from cogrl.files import InputError
from cogrl.priming.card import row_task
from cogrl.priming.conditions import get_condition
from cogrl.priming.samples import build_from_samples
from cogrl_countdown.prompts import completion
from cogrl_countdown.traces import write_countdown_trace

PROBLEMS = [([25, 30, 3, 4], 32), ([7, 3, 5], 16), ([12, 2, 1], 24), ([16, 6, 1, 20], 11), ([9, 8, 2], 10)]


def sample_lines() -> list[str]:
    """Per problem: a right answer, a false success claim, an honest failure; then a repeat and bad lines."""
    rng = random.Random(0)
    lines = []
    for numbers, target in PROBLEMS:
        right = write_countdown_trace(numbers, target, frozenset(BEHAVIORS), True, rng)
        wrong = write_countdown_trace(numbers, target, frozenset(BEHAVIORS), False, rng)
        lying = f"{numbers[0]} + {numbers[1]} = {target}. That matches the target."
        for text in (
            completion(right.thought, right.answer),
            completion(lying, wrong.answer),
            completion(wrong.thought, wrong.answer),
        ):
            lines.append(json.dumps({"numbers": numbers, "target": target, "completion": text}))
    lines.append(lines[2])  # the same task again
    lines += ["{not json", json.dumps({"numbers": [1, 2], "target": 3})]
    return lines


@pytest.fixture()
def samples(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(sample_lines()) + "\n")
    return path


def test_only_honest_wrong_answers_are_kept_once_per_task(samples):
    env = make_env("countdown", {"preset": "priming", "n_train": 10, "n_test": 0})
    logs: list[str] = []
    dataset, report = build_from_samples(
        env, get_condition("all_strategies+incorrect"), samples, 6, 0, log=logs.append
    )
    rows = dataset["train"].to_list()
    assert len(rows) == 5 and report.claims_checked and "short" in logs[-1]
    assert not any(r["correct"] for r in rows) and len({json.loads(r["task"])["target"] for r in rows}) == 5
    assert all(r["source"] == "samples:samples.jsonl" for r in rows)
    for row in rows:
        assert env.check_claims(row["completion"], row_task(env, row)).false_success_claims == 0
    assert report.rejections["answer_not_wrong"] == 5 and report.rejections["false_success_claim"] == 5
    assert report.rejections["repeated_task"] == 1 and report.rejections["bad_line"] == 2
    with pytest.raises(InputError, match=r"\+incorrect"):
        build_from_samples(env, get_condition("all_strategies"), samples, 1, 0)


def test_cli_builds_from_samples(samples, tmp_path):
    out = tmp_path / "failures"
    args = ["prime", "build", "--condition", "all_strategies+incorrect", "--source", "samples"]
    args += ["--samples", str(samples), "--n", "3", "--n-val", "0", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert datasets.load_from_disk(str(out))["train"].num_rows == 3
    meta = json.loads((out / "priming.json").read_text())
    assert meta["filter"] == "natural_failure" and meta["claims_checked"] is True
    assert meta["rejections"]["false_success_claim"] >= 1
    assert "| filter | `natural_failure` |" in (out / "README.md").read_text()
