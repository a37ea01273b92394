"""Input readers under hostile input: every bad JSONL line is an error naming file:line while the rest of the
file is still read, output never crashes on a lone surrogate and is strict JSON (no NaN), and recipes and
pattern sets that are not UTF-8, repeat a key, or put a boolean in a number are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clirunner import run_cli

from cogrl.config import load_recipe
from cogrl.files import InputError, JsonlAppender, dumps, read_jsonl, read_yaml_mapping

REPO = Path(__file__).resolve().parents[1]
GOOD = {
    "numbers": [25, 30, 3, 4],
    "target": 32,
    "completion": "Let me verify: <answer>30 - 25 + 3 * 4 - 5</answer>",
}
# One of each kind of bad line, keyed by the reason the reader gives. Each used to abort the whole file.
BAD_LINES = {
    "invalid UTF-8": b'{"completion": "caf\xe9"}',
    "nested too deeply": b'{"completion": "x", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "4300 digits": b'{"completion": "x", "big": ' + b"9" * 5000 + b"}",
    "NaN is not a JSON value": b'{"completion": "x", "score": NaN}',
    "-Infinity is not a JSON value": b'{"completion": "x", "score": -Infinity}',
    "out of range": b'{"completion": "x", "score": 1e999}',
}
SURROGATE = {**GOOD, "completion": GOOD["completion"] + " \ud800 tail"}


def hostile_file(path: Path) -> Path:
    """Line 1 good, then one bad line of each kind, then a line with a lone surrogate (valid JSON: an
    escape), then a good line."""
    lines = [
        json.dumps(GOOD).encode(),
        *BAD_LINES.values(),
        json.dumps(SURROGATE).encode(),
        json.dumps(GOOD).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_every_bad_line_is_reported_and_the_rest_is_read(tmp_path):
    lines = list(read_jsonl(hostile_file(tmp_path / "in.jsonl")))
    errors = {line.number: line.error for line in lines if line.error}
    assert sorted(errors) == list(range(2, 2 + len(BAD_LINES)))
    for number, reason in enumerate(BAD_LINES, start=2):
        assert reason in errors[number]
    last = 2 + len(BAD_LINES)
    assert [(line.number, line.record) for line in lines if line.record] == [
        (1, GOOD),
        (last, SURROGATE),
        (last + 1, GOOD),
    ]


def test_dumps_is_strict_json_and_survives_a_lone_surrogate(tmp_path):
    line = dumps({"text": "é \ud800", "loss": float("nan"), "nested": [float("inf"), 1.5]})
    line.encode("utf-8")  # writable as UTF-8
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} written")) == {
        "text": "é \ud800",
        "loss": None,
        "nested": [None, 1.5],
    }
    assert dumps({"text": "é"}) == '{"text":"é"}'  # readable text stays unescaped
    with JsonlAppender(tmp_path / "log.jsonl") as log:
        log.write([{"text": "\udfff"}, {"x": float("-inf")}])
    assert [line.record for line in read_jsonl(tmp_path / "log.jsonl")] == [{"text": "\udfff"}, {"x": None}]


def test_score_reports_each_bad_line_and_round_trips_a_surrogate(tmp_path):
    path = hostile_file(tmp_path / "in.jsonl")
    result = subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", "score", str(path)],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2  # documented: 2 when any line was malformed
    stderr = result.stderr.decode()
    for number in range(2, 2 + len(BAD_LINES)):
        assert f"{path}:{number}: invalid" in stderr
    assert f"{len(BAD_LINES)} malformed line(s) skipped" in stderr
    out = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert [{k: r[k] for k in SURROGATE} for r in out] == [GOOD, SURROGATE, GOOD]
    assert all(isinstance(r["reward"], float) and r["reason"] for r in out)


def test_regex_tag_reports_each_bad_line_and_round_trips_a_surrogate(tmp_path, capsys, monkeypatch):
    path = hostile_file(tmp_path / "in.jsonl")
    code, out, err = run_cli(["behaviors", "tag", "--method", "regex", str(path)], capsys, monkeypatch)
    assert code == 2
    for number in range(2, 2 + len(BAD_LINES)):
        assert f"{path}:{number}: invalid" in err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["completion"] for r in records] == [
        GOOD["completion"],
        SURROGATE["completion"],
        GOOD["completion"],
    ]
    assert all(
        set(r["behaviors"]) == {"verification", "backtracking", "subgoal_setting", "backward_chaining"}
        for r in records
    )


def test_a_surrogate_line_alone_exits_0(tmp_path, capsys, monkeypatch):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(SURROGATE) + "\n")
    code, out, _ = run_cli(["behaviors", "tag", str(path)], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["completion"] == SURROGATE["completion"]


# ------------------------------------------------------------------------------------------------- YAML
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (bytes(range(256)), "must be UTF-8 text (byte 0x80 at offset 128)"),
        ("name: café\n".encode("latin-1"), "must be UTF-8 text (byte 0xe9 at offset 9)"),
        (
            b"name: r\ntrainer:\n  steps: 3\n  lr: 0.1\n  steps: 4\n",
            ":5: invalid YAML (duplicate key 'steps')",
        ),
        (b"a: 1\nb: 2\na: 3\n", ":3: invalid YAML (duplicate key 'a')"),
    ],
    ids=["binary", "latin-1", "nested-duplicate", "top-duplicate"],
)
def test_bad_yaml_is_one_error_naming_file_and_line(tmp_path, content, expected):
    path = tmp_path / "r.yaml"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_yaml_mapping(path, "recipe")
    whole = f"{path}{expected}" if expected.startswith(":") else f"{path}: a recipe {expected}"
    assert str(info.value) == whole


def test_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 3\n")
    assert read_yaml_mapping(path, "recipe")["use"] == {"x": 3, "y": 2}


def test_binary_recipe_and_pattern_file_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    code, _, err = run_cli(["train", str(binary), "--dry-run"], capsys, monkeypatch)
    assert (
        code == 2
        and err.strip() == f"cogrl: error: {binary}: a recipe must be UTF-8 text (byte 0x89 at offset 0)"
    )
    tagged = tmp_path / "in.jsonl"
    tagged.write_text(json.dumps(GOOD) + "\n")
    code, out, err = run_cli(
        ["behaviors", "tag", "--patterns", str(binary), str(tagged)], capsys, monkeypatch
    )
    assert (code, out) == (2, "") and len(err.strip().splitlines()) == 1 and "must be UTF-8 text" in err


@pytest.mark.parametrize(
    "override", ["trainer.steps=true", "algorithm.kl_coef=false", "rollout.temperature=true"]
)
def test_a_boolean_is_not_a_number(override):
    with pytest.raises(InputError, match=f"{override.split('=')[0]}: .*expected a number"):
        load_recipe(REPO / "recipes/cpu-tiny-grpo.yaml", [override])


@pytest.mark.parametrize(
    "override", ["algorithm.kl_coef=.nan", "trainer.lr=.inf", "rollout.temperature=-.inf"]
)
def test_a_recipe_number_is_finite(override):
    with pytest.raises(InputError, match=f"{override.split('=')[0]}: Input should be a finite number"):
        load_recipe(REPO / "recipes/cpu-tiny-grpo.yaml", [override])


def test_a_boolean_is_not_a_number_in_a_recipe_file_or_a_list(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"extends: {REPO / 'recipes/cpu-tiny-grpo.yaml'}\ntrainer: {{steps: true}}\n")
    with pytest.raises(InputError, match="trainer.steps: .*expected a number"):
        load_recipe(recipe)
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"train: {REPO / 'recipes/cpu-tiny-grpo.yaml'}\nconditions: [none]\nseeds: [0, true]\n")
    from cogrl.experiments.sweep import load_sweep

    with pytest.raises(InputError, match="seeds: .*expected a number"):
        load_sweep(sweep)
    # yes/no switches still take booleans, and numbers still take numbers
    loaded = load_recipe(
        REPO / "recipes/cpu-tiny-grpo.yaml", ["algorithm.kl_in_reward=true", "trainer.steps=3"]
    )
    assert loaded.algorithm.kl_in_reward is True and loaded.trainer.steps == 3


def test_an_override_value_with_a_duplicate_key_is_an_error():
    with pytest.raises(InputError, match="not valid YAML"):
        load_recipe(REPO / "recipes/cpu-tiny-grpo.yaml", ["env.options={n_train: 5, n_train: 6}"])
