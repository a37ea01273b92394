"""`cogrl corpus` as a user meets it: the plan, and the errors that stop a build before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

from clirunner import run_cli
from corpus_helpers import SAMPLE

RECIPE = str(Path(__file__).resolve().parents[2] / "recipes/corpus/cpu-sample.yaml")


def test_plan_names_the_shards_and_the_stages(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(
        ["corpus", "plan", RECIPE, f"source.path={SAMPLE}", "--out", str(tmp_path / "o")], capsys, monkeypatch
    )
    assert code == 0, err
    assert (
        "5 shard(s) (0 finished)" in err
        and "regex counts (no judge)" in err
        and "2 on a local Ray cluster" in err
    )


def test_bad_knobs_and_foreign_outputs_are_refused_by_name(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(
        ["corpus", "build", RECIPE, "select.rich_min_cont=3", "--out", str(tmp_path / "o")],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "unknown key 'select.rich_min_cont'; did you mean 'select.rich_min_count'" in err
    code, _, err = run_cli(
        ["corpus", "build", RECIPE, "source.hub=x/y", "--out", str(tmp_path / "o")], capsys, monkeypatch
    )
    assert code == 2 and "set exactly one of source.path and source.hub" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, _, err = run_cli(
        ["corpus", "build", RECIPE, f"source.path={SAMPLE}", "--out", str(busy)], capsys, monkeypatch
    )
    assert code == 2 and "exists and is not empty" in err
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"recipe_hash": "0123", "stages": {}}))
    code, _, err = run_cli(
        ["corpus", "build", RECIPE, f"source.path={SAMPLE}", "--out", str(other)], capsys, monkeypatch
    )
    assert code == 2 and "written for another corpus recipe" in err
