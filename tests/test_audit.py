"""`cogrl audit`: the group figures by hand (the mixed-reward share and its smaller-group estimates), the page,
named errors before anything is sampled (a judge that does not answer within the deadline included), and the
command end to end on a tiny model, with and without the LLM judge (the local fake OpenAI server)."""

from __future__ import annotations

import json
import os
import socket
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from clirunner import run_cli
from servers.fake_openai import ScriptedOpenAIServer, last_message

from cogrl.behaviors import BEHAVIORS, BehaviorTags
from cogrl.behaviors.judge import RUBRICS
from cogrl.config import ModelConfig
from cogrl.envs import ClaimCounts, Score
from cogrl.rl.audit import audit_figures, mixed_at, render_page, verdict
from cogrl.rl.batch import Generation

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ENV_OPTIONS = ["preset=priming", "n_train=30", "n_test=6"]
TINY_SPEC = {"hidden_size": 64, "num_layers": 1, "num_heads": 2, "intermediate_size": 128, "vocab_size": 512}


# ------------------------------------------------------------------------------------------ the figures
def test_mixed_at_is_the_share_of_subsets_whose_rewards_differ():
    # One 1.0 and three 0: of the 6 pairs, the 3 pairs of zeros are constant.
    assert [mixed_at([1, 0, 0, 0], m) for m in (1, 2, 3, 4)] == pytest.approx([0, 1 / 2, 3 / 4, 1])
    assert mixed_at([0.1, 0.1, 0.1], 3) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        rewards = list(rng.choice([0.0, 0.1, 1.0], size=int(rng.integers(2, 8))))
        for m in range(1, len(rewards) + 1):
            subsets = list(combinations(rewards, m))
            brute = sum(len(set(s)) > 1 for s in subsets) / len(subsets)
            assert mixed_at(rewards, m) == pytest.approx(brute)
    with pytest.raises(ValueError, match="m=5"):
        mixed_at([0, 1], 5)


def _generation(problem: int, tokens: int = 3, finish: str = "stop") -> Generation:
    return Generation(problem, (1,), (2,) * tokens, (0.0,) * tokens, "x", finish)


def _tags(counts: dict[str, int | None], source: str) -> BehaviorTags:
    return BehaviorTags({b: counts.get(b, 0) for b in BEHAVIORS}, source=source)


REWARDS = [
    [1.0, 1.0, 1.0, 1.0],  # all correct: no signal
    [1.0, 0.1, 0.0, 0.0],  # correct and wrong: signal
    [0.1, 0.0, 0.1, 0.0],  # all wrong, but the format reward differs: signal (on format only)
    [0.0, 0.0, 0.0, 0.0],  # all wrong: no signal
]
REASONS = {1.0: "correct", 0.1: "wrong_result", 0.0: "no_answer"}


def _hand_made():
    scores, generations, by_problem = [], [], []
    for p, rewards in enumerate(REWARDS):
        by_problem.append(list(range(len(scores), len(scores) + len(rewards))))
        for r in rewards:
            scores.append(Score(r, REASONS[r], r == 1.0))
            generations.append(_generation(p, tokens=4 if r else 2, finish="length" if r == 0 else "stop"))
    regex = [_tags({"verification": int(s.correct)}, "regex:v1") for s in scores]
    # The judge failed on every sample of problem 3 (unknown, never 0) and saw backtracking in problem 0.
    judge = [
        _tags({b: None for b in BEHAVIORS} if i >= 12 else {"backtracking": 2 * (i < 4)}, "llm:fake")
        for i in range(len(scores))
    ]
    claims = [
        ClaimCounts(true_steps=1, false_steps=int(i % 4 == 0), false_checks=int(i == 1)) for i in range(16)
    ]
    return by_problem, generations, scores, {"regex": regex, "judge": judge}, claims


def test_audit_figures_on_hand_made_groups():
    by_problem, generations, scores, taggings, claims = _hand_made()
    f = audit_figures(by_problem, generations, scores, taggings, claims, resamples=200, seed=1)
    assert (f["problems"], f["samples_per_prompt"], f["responses"]) == (4, 4, 16)
    assert f["accuracy"] == 0.5  # first samples: 1.0, 1.0, 0.1, 0.0
    assert f["accuracy_all_samples"] == 5 / 16
    assert [row["k"] for row in f["passk"]] == [1, 2, 4]
    # pass@2 of one correct in four: 1 - C(3, 2) / C(4, 2) = 1/2.
    assert [row["pass@k"] for row in f["passk"]] == pytest.approx([5 / 16, (1 + 1 / 2) / 4, 2 / 4])
    assert f["passk"][0]["maj@k"] is None
    g = f["groups"]
    assert (g["mixed_reward"], g["mixed_correct"], g["all_correct"], g["all_wrong"]) == (0.5, 0.25, 0.25, 0.5)
    assert g["mixed_reward_ci"][0] <= 0.5 <= g["mixed_reward_ci"][1]
    # m = 2: problem 1 has 5 of 6 pairs mixed (only the two 0s agree), problem 2 has 4 of 6.
    assert g["mixed_reward_by_group_size"] == pytest.approx({2: (5 / 6 + 4 / 6) / 4, 4: 0.5})
    assert f["reward_mean"] == pytest.approx((4 + 1.1 + 0.2) / 16)
    assert f["format_rate"] == 8 / 16 and f["truncated_rate"] == 8 / 16  # the eight 0 rewards
    assert f["reasons"] == {"correct": 5 / 16, "no_answer": 8 / 16, "wrong_result": 3 / 16}
    assert f["response_tokens_mean"] == (8 * 4 + 8 * 2) / 16
    regex, judge = f["behaviors"]["regex"], f["behaviors"]["judge"]
    assert regex["verification"] == {"rate": 5 / 16, "mean_count": 5 / 16, "known": 16, "unknown": 0}
    assert judge["backtracking"] == {"rate": 4 / 12, "mean_count": 8 / 12, "known": 12, "unknown": 4}
    assert judge["verification"]["rate"] == 0.0
    assert f["claims"] == pytest.approx(
        {"claims/false_step_rate": 4 / 20, "claims/false_check_rate": 1.0, "claims/false_success_rate": 0.0}
    )


def test_the_verdict_and_the_page():
    by_problem, generations, scores, taggings, claims = _hand_made()
    f = audit_figures(by_problem, generations, scores, taggings, claims, resamples=50)
    assert verdict(f).startswith("RL signal: 50% of prompts (95% CI ")
    assert "at 4 samples; 25% have both a correct and a wrong sample" in verdict(f)
    flat = [scores[i] for i in by_problem[3]]
    none = audit_figures([[0, 1, 2, 3]], generations[:4], flat, {"regex": taggings["regex"][:4]})
    assert verdict(none).startswith("No RL signal: every prompt's 4 samples got the same reward")
    summary = {
        "verdict": verdict(f),
        "model": "m",
        "model_dir": "/m",
        "checkpoint_step": None,
        "weights_sha256": "0" * 64,
        "env": {"name": "countdown", "options": {"n_test": 6}},
        "split": "test",
        "sampling": {
            "backend": "hf",
            "device": "cpu",
            "dtype": "float32",
            "temperature": 1.0,
            "top_p": 1.0,
            "max_new_tokens": 8,
        },  # fmt: skip
        "seeds": {"sampling": 0, "bootstrap": 1},
        "taggers": {"regex": "regex:v1", "judge": "llm:fake"},
        "timing": {"sampling_s": 1.0, "total_s": 2.0, "response_tokens": 40},
        "prompts_per_step": 8,
        "figures": f,
    }
    page = render_page(summary)
    assert f"**{verdict(f)}**" in page
    assert "| differ in reward (the GRPO/PPO signal) | 50.0% [" in page
    assert "about 4.0 of them carry a signal" in page
    assert "| backtracking | 0.0% | 0.00 | 0 | 33.3% | 0.67 | 4 |" in page
    assert "| responses with a false success claim | 0.0% |" in page


# ------------------------------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny Qwen2 built from a config, its tokenizer trained on the audit's Countdown prompts."""
    from cogrl.envs import load_env
    from cogrl.models import resolve_model

    env = load_env("countdown", {}, ENV_OPTIONS)
    return resolve_model(ModelConfig(tiny=TINY_SPEC), env, cache_dir=tmp_path_factory.mktemp("models"))


def _options() -> list[str]:
    return [arg for option in ENV_OPTIONS for arg in ("--env-option", option)]


def _audit_args(model, out, *extra: str) -> list[str]:
    args = ["audit", str(model), "--env", "countdown", *_options(), "--n", "6", "--samples-per-prompt", "4"]
    args += ["--max-new-tokens", "12", "--max-prompt-tokens", "512", "--backend", "hf", "--bootstrap", "50"]
    return [*args, "--seed", "3", "--out", str(out), *extra]


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "7"], "--n 7: the test split of countdown has 6 problems"),
        (["--samples-per-prompt", "1"], "samples per prompt 1: a group needs at least 2 samples"),
        (["--env-option", "n_tset=3"], "unknown key 'n_tset'; did you mean 'n_test'?"),
        (["--tag", "none"], "tag none: the audit's behavior table needs a tagger"),
        (["--backend", "tpu"], "unknown backend 'tpu' (registered: vllm, hf)"),
        (["--recipe", "nope.yaml"], "--recipe nope.yaml: no such file"),
        (["--judge-model", "j"], "--judge-model needs --endpoint"),
        (["--endpoint", "ftp://x"], "must be an http(s) URL, got 'ftp://x'"),
    ],
)
def test_bad_arguments_are_named_before_sampling(tiny_model, tmp_path, capsys, monkeypatch, args, message):
    code, _, err = run_cli(_audit_args(tiny_model, tmp_path / "out", *args), capsys, monkeypatch)
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_bad_model_path_is_named(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(
        ["audit", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], capsys, monkeypatch
    )
    assert code == 2 and "nope" in err and "not a model directory" in err


def test_a_judge_that_does_not_answer_is_refused_within_its_deadline(
    tiny_model, tmp_path, capsys, monkeypatch
):
    cache = ["--judge-cache", str(tmp_path / "cache.sqlite"), "--judge-timeout", "1"]
    url = _closed_port_url()
    code, _, err = run_cli(
        _audit_args(tiny_model, tmp_path / "a", "--endpoint", url, *cache), capsys, monkeypatch
    )
    assert code == 2 and f"judge endpoint {url}" in err and "Connect" in err, err
    with ScriptedOpenAIServer(lambda key, attempt: "hang", model="j", hang_s=10) as server:
        started = time.perf_counter()
        args = _audit_args(tiny_model, tmp_path / "b", "--endpoint", server.url, "--judge-model", "j", *cache)
        code, _, err = run_cli(args, capsys, monkeypatch)
        assert time.perf_counter() - started < 8
    assert code == 2 and "did not answer within 1s" in err and "deadline" in err, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cogrl_audit_writes_the_page_the_figures_and_the_samples(tiny_model, tmp_path, capsys, monkeypatch):
    out = tmp_path / "audit"
    code, _, err = run_cli(_audit_args(tiny_model, out), capsys, monkeypatch)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "audit.md", "samples.jsonl"]
    summary = json.loads((out / "audit.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 24 and [s["sample"] for s in samples[:4]] == [0, 1, 2, 3]
    assert all("claims" in s and "behaviors" in s for s in samples)
    f = summary["figures"]
    assert (f["problems"], f["samples_per_prompt"], summary["samples_per_problem"]) == (6, 4, 4)
    # The figures agree with the samples, recomputed by hand.
    groups = [samples[i : i + 4] for i in range(0, 24, 4)]
    mixed = sum(len({s["reward"] for s in g}) > 1 for g in groups) / 6
    assert f["groups"]["mixed_reward"] == mixed
    assert f["accuracy"] == sum(g[0]["correct"] for g in groups) / 6
    assert f["reward_mean"] == pytest.approx(sum(s["reward"] for s in samples) / 24)
    assert [row["k"] for row in f["passk"]] == [1, 2, 4] and f["passk"][0]["maj@k"] is not None
    assert set(f["behaviors"]) == {"regex"} and set(f["claims"]) >= {"claims/false_success_rate"}
    assert summary["env"]["options"]["n_test"] == 6 and summary["sampling"]["max_new_tokens"] == 12
    assert summary["seeds"]["sampling"] == 3 and "torch" in summary["metadata"]["packages"]
    page = (out / "audit.md").read_text()
    assert page.splitlines()[2] == f"**{summary['verdict']}**" and "## Reward groups at 4 samples" in page
    assert "RL signal" in err  # the verdict, also on the terminal


def test_cogrl_audit_with_the_judge(tiny_model, tmp_path, capsys, monkeypatch):
    """Every response is judged; a reply without a count leaves that behavior unknown (never 0)."""

    def identify(body):  # the endpoint check, or the (judged text, behavior) of a rubric request
        prompt = last_message(body)
        if "<<<" not in prompt:
            return "check"
        text = prompt.split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
        return text, next(b for b, rubric in RUBRICS.items() if rubric in prompt)

    def script(key, attempt):
        if key == "check":
            return "reply:OK"
        return "reply:no idea" if key[1] == "backtracking" else "reply:It does.\nCOUNT: 2"

    out = tmp_path / "judged"
    cache = ["--judge-cache", str(tmp_path / "cache.sqlite"), "--judge-timeout", "5"]
    with ScriptedOpenAIServer(script, identify=identify, model="fake-judge") as server:
        code, _, err = run_cli(
            _audit_args(tiny_model, out, "--endpoint", server.url, *cache), capsys, monkeypatch
        )
        assert server.requests["check"] == 1
    assert code == 0, err
    summary = json.loads((out / "audit.json").read_text())
    judge = summary["figures"]["behaviors"]["judge"]
    assert judge["verification"] == {"rate": 1.0, "mean_count": 2.0, "known": 24, "unknown": 0}
    assert judge["backtracking"] == {"rate": None, "mean_count": None, "known": 0, "unknown": 24}
    assert summary["taggers"]["judge"] == "llm:fake-judge" and summary["judge"]["unparsable"] > 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all(s["behaviors_judge"]["backtracking"] is None for s in samples)
    assert all(s["behaviors_judge"]["subgoal_setting"] == 2 for s in samples)
    assert "| backtracking |" in (out / "audit.md").read_text() and "n/a" in (out / "audit.md").read_text()


def test_a_recipe_lends_the_group_size_env_options_and_rollout(tiny_model, tmp_path, capsys, monkeypatch):
    from cogrl.config import dump_recipe, load_recipe

    recipe = load_recipe(
        Path(__file__).parents[1] / "recipes" / "cpu-tiny-grpo.yaml",
        ["rollout.samples_per_prompt=3", "rollout.backend=hf", "rollout.max_new_tokens=8"]
        + [f"env.options.{option}" for option in ENV_OPTIONS],
    )
    (tmp_path / "recipe.yaml").write_text(dump_recipe(recipe))
    args = ["audit", str(tiny_model), "--recipe", str(tmp_path / "recipe.yaml"), "--n", "2"]
    code, _, err = run_cli([*args, "--max-prompt-tokens", "512", "--bootstrap", "20", "--out", str(tmp_path / "o")],
                           capsys, monkeypatch)  # fmt: skip
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert summary["figures"]["samples_per_prompt"] == 3 and summary["figures"]["responses"] == 6
    assert summary["env"]["options"]["n_test"] == 6 and summary["env"]["options"]["min_count"] == 3
    assert summary["sampling"]["backend"] == "hf" and summary["sampling"]["max_new_tokens"] == 8
    assert summary["recipe"] == "cpu-tiny-grpo" and summary["prompts_per_step"] == 16
    assert "The recipe takes 16 prompts per step" in (tmp_path / "o" / "audit.md").read_text()
