"""`cogrl prime conditions|build|sft` through the real entry point (exit code 2 and one line on bad input)."""

from __future__ import annotations

import json
import subprocess
import sys

import datasets

from cogrl.models import train_tokenizer
from cogrl.priming.conditions import token_count


def cogrl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_conditions_lists_every_registered_condition():
    result = cogrl("prime", "conditions")
    assert result.returncode == 0, result.stderr
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert {"all_strategies", "backtracking_only", "empty_cot", "length_matched", "no_behavior"} <= set(names)


def test_build_writes_a_dataset_with_a_card(tmp_path):
    out = tmp_path / "prime"
    result = cogrl(
        "prime",
        "build",
        "--condition",
        "all_strategies+incorrect",
        "--n",
        "20",
        "--n-val",
        "5",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    dataset = datasets.load_from_disk(str(out))
    assert (dataset["train"].num_rows, dataset["validation"].num_rows) == (20, 5)
    assert not any(dataset["train"]["correct"])
    meta = json.loads((out / "priming.json").read_text())
    assert meta["condition"] == "all_strategies+incorrect" and meta["env_options"]["preset"] == "priming"
    assert "| train | 20 | 0.0% |" in (out / "README.md").read_text()


def test_length_matched_build_uses_the_given_tokenizer(tmp_path):
    tokenizer = train_tokenizer(
        ["Working backwards from 22: 22 = 15 + 7. . . .", "Let me verify: 3 * 5 = 15."], 400
    )
    tokenizer.save_pretrained(str(tmp_path / "tok"))
    out = tmp_path / "filler"
    args = ("prime", "build", "--condition", "length_matched", "--n", "6", "--n-val", "0", "--out", str(out))
    missing = cogrl(*args)
    assert missing.returncode == 2 and "needs a tokenizer" in missing.stderr
    result = cogrl(*args, "--tokenizer", str(tmp_path / "tok"))
    assert result.returncode == 0, result.stderr
    filler = datasets.load_from_disk(str(out))["train"]
    written = datasets.load_from_disk(
        str(out)
    )  # the same tasks and seed give the same all-strategies thoughts
    assert written["train"].num_rows == 6
    for completion in filler["completion"]:
        thought = completion.split("</think>")[0]
        assert set(thought) <= {" ", "."} and token_count(tokenizer, thought) > 20


def test_bad_input_exits_2_with_one_line(tmp_path):
    result = cogrl(
        "prime", "build", "--condition", "backtrack_only", "--n", "5", "--out", str(tmp_path / "x")
    )
    assert result.returncode == 2
    assert "did you mean 'backtracking_only'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cogrl("prime", "sft", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "cannot read recipe" in result.stderr


def test_build_from_an_llm_endpoint(tmp_path, monkeypatch):
    from test_llm_source import SECRET, CannedServer

    out = tmp_path / "llm"
    monkeypatch.setenv("COGRL_LLM_API_KEY", SECRET)
    with CannedServer() as server:
        result = cogrl(
            "prime", "build", "--condition", "backtracking_only", "--source", "llm", "--endpoint", server.url,
            "--n", "4", "--n-val", "1", "--concurrency", "2", "--out", str(out),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stderr + result.stdout
    meta = json.loads((out / "priming.json").read_text())
    assert meta["source"] == "llm" and meta["model"] == "canned-writer" and meta["rejections"]
    assert datasets.load_from_disk(str(out))["train"].num_rows == 4
