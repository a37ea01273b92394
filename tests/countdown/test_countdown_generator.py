"""Generation (solvable, distinct, seeded, split-disjoint, presets, held-out targets) and import."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from cogrl.envs import make_env
from cogrl_countdown import batch, generator, solver

GOLDEN_RL_FIRST_20 = "61a64fe49a3ac6dfdb43e6ada5b552696f93e349e045c3519b7e8bee2581bdc8"


def _env(**options):
    return make_env("countdown", {"n_train": 200, "n_test": 50, **options})


def test_golden_hash_is_machine_independent():
    rows = [t.data for t in _env(n_train=20, n_test=5).tasks("train")]
    assert hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest() == GOLDEN_RL_FIRST_20


def test_seeded_determinism_and_seed_sensitivity():
    a, b, c = _env(seed=3), _env(seed=3), _env(seed=4)
    assert a.tasks("train") == b.tasks("train") and a.tasks("test") == b.tasks("test")
    assert [t.data for t in a.tasks("train")] != [t.data for t in c.tasks("train")]
    # The test split does not depend on the train size.
    assert _env(seed=3, n_train=10).tasks("test") == a.tasks("test")


@pytest.mark.parametrize("preset", ["rl", "priming"])
def test_problems_are_solvable_distinct_disjoint_and_in_range(preset):
    env = _env(preset=preset)
    ranges = generator.PRESETS[preset]
    keys = {}
    for split in env.splits:
        tasks = env.tasks(split)
        assert len(tasks) == {"train": 200, "test": 50}[split]
        for i, task in enumerate(tasks):
            d = task.data
            assert task.id == f"countdown-{split}-{i:06d}"
            assert ranges.min_count <= len(d["numbers"]) <= ranges.max_count
            assert all(ranges.min_number <= n <= ranges.max_number for n in d["numbers"])
            assert ranges.min_target <= d["target"] <= ranges.max_target
            if i < 20:  # the exact solver is slower than the batched evaluator that generated these
                assert solver.is_solvable(d["numbers"], d["target"])
                assert d["n_solutions"] == solver.count_solutions(d["numbers"], d["target"]) >= 1
                assert d["solution"] in solver.solutions(d["numbers"], d["target"])
            assert env.score(f"<answer>{d['solution']}</answer>", task).correct
            if preset == "priming":
                assert not (len(d["numbers"]) == 4 and d["target"] == 24)
            key = (tuple(sorted(d["numbers"])), d["target"])
            assert key not in keys, f"{split} repeats a problem of {keys.get(key)}"
            keys[key] = split
            assert str(d["numbers"]) in task.prompt and str(d["target"]) in task.prompt


def test_held_out_targets():
    env = _env(held_out_targets=[7, 42, 77], n_train=300, n_test=30)
    assert {t.data["target"] for t in env.tasks("test")} <= {7, 42, 77}
    assert not {t.data["target"] for t in env.tasks("train")} & {7, 42, 77}


def test_fast_path_equals_pure_solver():
    for preset in ("rl", "priming"):
        fast = generator.generate(generator.PRESETS[preset], 25, "x")
        with mock.patch.object(batch, "fits_int64", return_value=False):
            assert generator.generate(generator.PRESETS[preset], 25, "x") == fast


@pytest.mark.slow
def test_five_and_six_numbers():
    problems = generator.generate(generator.Ranges(5, 5, 1, 9, 1, 30), 2, "five")
    assert all(len(p.numbers) == 5 and p.n_solutions >= 1 for p in problems)
    problems = generator.generate(generator.Ranges(6, 6, 1, 9, 1, 30), 1, "six")
    assert len(problems[0].numbers) == 6 and solver.is_solvable(problems[0].numbers, problems[0].target)


def test_impossible_request_fails_clearly():
    # 12 problems exist; the search gives up after 1000 + 50 * 100 fruitless draws, whatever the machine.
    with pytest.raises(ValueError, match=r"could draw only 12 of 100 .* in 6013 draws"):
        generator.generate(generator.Ranges(3, 3, 1, 2, 1, 3), 100, "tiny")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_number": 0}, r"empty range: min_number 1 \(preset rl\) > max_number 0 \["),
        ({"min_count": 5}, r"empty range: min_count 5 > max_count 4 \(preset rl\) \["),
        ({"min_target": 50, "max_target": 40}, r"empty range: min_target 50 > max_target 40 \["),
        (
            {"n_train": 20, "n_test": 0, "max_count": 3, "max_number": 2, "max_target": 3},
            r"n_train \+ n_test 20 is more than the 12 distinct problems .* \(4 multisets of numbers x 3 targets\)",
        ),
        ({"n_train": 10**9}, r"n_train \+ n_test 1000001024 is more than the 441622500 distinct problems"),
        (
            {"held_out_targets": [5, 500, -1]},
            r"held_out_targets \[-1, 500\] lie outside the target range 1..100",
        ),
        ({"held_out_targets": [5], "n_test": 4_416_226}, "n_test 4416226 is more than the 4416225"),
        ({"held_out_targets": list(range(1, 100)), "n_train": 4_416_226}, "n_train 4416226 is more than"),
    ],
)
def test_impossible_options_are_refused_before_any_search(options, message):
    searched = mock.patch.object(generator, "generate", side_effect=AssertionError("searched"))
    with searched, pytest.raises(ValidationError, match=message):
        make_env("countdown", options)


def test_a_fruitless_search_is_bounded_and_names_the_option():
    # Targets 1000-2000 are out of reach of four numbers up to 5 (625 at most): the ranges pass the room check.
    env = make_env(
        "countdown", {"n_train": 5, "n_test": 5, "max_number": 5, "min_target": 1000, "max_target": 2000}
    )
    with pytest.raises(
        ValueError, match=r"^n_test 5: could draw only 0 of 5 distinct solvable problems in 1251 draws"
    ):
        env.tasks("test")


def test_one_held_out_target_from_the_command_line():
    assert make_env("countdown", {"held_out_targets": "42"}).options.held_out_targets == [42]


def test_generate_command_refuses_impossible_options_in_one_line(tmp_path):
    cli = [sys.executable, "-c", "from cogrl.cli import main; main()", "env", "generate", "countdown"]
    for options, message in [
        (["--max-number", "0"], "empty range: min_number 1 (preset rl) > max_number 0"),
        (
            ["--n-test", "5", "--max-number", "5", "--min-target", "1000", "--max-target", "2000"],
            "n_test 5: could draw only 0 of 5",
        ),
    ]:
        result = subprocess.run(
            [*cli, "--out", str(tmp_path / "out"), *options], capture_output=True, text=True
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert not (tmp_path / "out").exists()


def test_options_are_validated():
    for bad in ({"preset": "hard"}, {"n_trian": 3}, {"min_count": 2}, {"min_number": 9, "max_number": 3}):
        with pytest.raises(ValidationError):
            make_env("countdown", bad)
    with pytest.raises(ValidationError, match="held_out_targets"):
        make_env("countdown", {"source": "x.parquet", "held_out_targets": [5]})
    with pytest.raises(ValidationError, match="unknown fields"):
        make_env("countdown", {"template": "custom", "custom_template": "{numbers} {target} {oops}"})
    # CLI values arrive as strings; lax mode coerces them.
    env = make_env("countdown", {"n_train": "5", "n_test": "2", "held_out_targets": ["10", "11"]})
    assert env.options.n_train == 5 and env.options.held_out_targets == [10, 11]


def test_templates():
    chat = _env(template="chat", n_train=3, n_test=1).tasks("train")[0]
    assert chat.data["messages"][-1] == {"role": "user", "content": chat.prompt}
    custom = _env(template="custom", custom_template="Reach {target} with {numbers}.", n_train=3, n_test=1)
    task = custom.tasks("train")[0]
    assert task.prompt == f"Reach {task.data['target']} with {task.data['numbers']}."


def test_task_from_record():
    env = _env()
    task = env.task_from_record({"nums": ["25", "30", "3", "4"], "target": "32"})
    assert task.data["numbers"] == [25, 30, 3, 4] and task.data["target"] == 32
    assert env.solve(task) == ["(30 + 3 - 25) * 4"]
    for record, field in [
        ({"target": 3}, "numbers"),
        ({"numbers": [1, 2], "target": 3}, "numbers"),
        ({"numbers": [1, 2, -3], "target": 3}, "numbers"),
        ({"numbers": "1 2 3", "target": 3}, "numbers"),
        ({"nums": [1, 2, 3.5], "target": 3}, "nums"),
        ({"numbers": [1, 2, 3]}, "target"),
        ({"numbers": [1, 2, 3], "target": "six"}, "target"),
        ({"numbers": [1, True, 3], "target": 6}, "numbers"),
    ]:
        with pytest.raises(ValueError, match=field):
            env.task_from_record(record)


def _source_rows():
    return [
        {"nums": [44, 19, 35], "target": 98},
        {"nums": [63, 95, 96], "target": 64},
        {"nums": [95, 11, 56], "target": 28},
    ]


def test_import_parquet(tmp_path):
    path = tmp_path / "countdown.parquet"
    pq.write_table(pa.Table.from_pylist(_source_rows()), path)
    env = make_env("countdown", {"source": str(path), "n_train": 2, "n_test": 1})
    train, test = env.tasks("train"), env.tasks("test")
    assert [t.data["numbers"] for t in train] == [[44, 19, 35], [63, 95, 96]]
    assert [t.data["target"] for t in test] == [28]
    assert all(t.data["n_solutions"] >= 1 and t.data["solution"] for t in [*train, *test])


def test_import_jsonl_with_malformed_row(tmp_path):
    path = tmp_path / "countdown.jsonl"
    rows = _source_rows()
    rows[1] = {"numbers": [63, "x", 96], "target": 64}
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env = make_env("countdown", {"source": str(path), "n_train": 1, "n_test": 0})
    assert len(env.tasks("train")) == 1  # only rows that are asked for are read
    env = make_env("countdown", {"source": str(path), "n_train": 3, "n_test": 0})
    with pytest.raises(ValueError, match=r"row 1: field 'numbers'"):
        env.tasks("train")
    path.write_text('{"nums": [1, 2, 3], "target": 6}\nnot json\n')
    with pytest.raises(ValueError, match=r"row 1 \(line 2\): invalid JSON"):
        make_env("countdown", {"source": str(path), "n_train": 2, "n_test": 0}).tasks("train")
