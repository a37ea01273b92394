"""The reasoning-gym adapter: prompt, scoring, splits and the semantics capabilities, through cogrl's registry."""

from __future__ import annotations

import json

import pytest
from cogrl_reasoning_gym import prompts
from cogrl_reasoning_gym.env import ReasoningGymEnv, ReasoningGymOptions

import cogrl.envs as envs
from cogrl.envs import Environment, Task, make_env

SMALL = {"n_train": 40, "n_val": 8, "n_test": 8}


@pytest.fixture(scope="module")
def env() -> ReasoningGymEnv:
    return make_env("reasoning_gym", SMALL)


def answered(env: ReasoningGymEnv, task: Task, answer: str, thought: str = "I work it out.") -> str:
    return env.completion(thought, answer)


def test_found_by_name_and_a_full_environment(env):
    assert envs.available_envs()["reasoning_gym"] == "cogrl_reasoning_gym.env:ReasoningGymEnv"
    assert isinstance(env, ReasoningGymEnv) and isinstance(env, Environment)
    assert env.splits == ("train", "val", "test")
    assert [len(env.tasks(s)) for s in env.splits] == [40, 8, 8]
    with pytest.raises(ValueError, match="unknown split"):
        env.tasks("dev")


def test_prompt_is_the_labs_think_answer_format(env):
    task = env.tasks("train")[0]
    question = task.data["question"]
    assert task.prompt == prompts.base_prompt(question)
    assert f"User: {question.strip()}\n" in task.prompt
    assert "<think> </think>" in task.prompt and "<answer> </answer>" in task.prompt
    assert task.prompt.endswith("Assistant: Let me solve this step by step.\n<think>")
    assert env.completion("a", "b") == "a</think>\n<answer>b</answer>"


def test_score_is_reasoning_gyms_verdict_on_the_last_answer(env):
    task = env.tasks("train")[0]
    right = task.data["answer"]
    good = env.score(answered(env, task, right), task)
    assert (good.reward, good.reason, good.correct) == (1.0, "correct", True)
    assert good.details == {"rg_score": 1.0}
    # the last complete answer span counts, whatever comes before it
    assert env.score(f"<answer>{right}</answer> " + answered(env, task, "7e99"), task).reason == "wrong"
    assert env.score(answered(env, task, "0") + f" <answer>{right}</answer>", task).correct
    wrong = env.score(answered(env, task, str(int(right) + 1)), task)
    assert (wrong.reward, wrong.reason, wrong.correct) == (0.1, "wrong", False)
    for text in ("", "no tags", "<answer>1", "1</answer>", "</answer><answer>"):
        assert env.score(text, task) == envs.Score(0.0, "no_answer", False)
    long = env.score(answered(env, task, "1" * 2_001), task)
    assert (long.reward, long.reason) == (0.1, "too_long")


def test_partial_credit_and_a_crashing_scorer_never_raise(env, monkeypatch):
    task = env.tasks("train")[0]
    monkeypatch.setattr(env._scorer, "score_answer", lambda answer, entry: 0.5)
    assert env.score(answered(env, task, "x"), task) == envs.Score(0.5, "partial", False, {"rg_score": 0.5})

    def boom(answer, entry):
        raise ZeroDivisionError

    monkeypatch.setattr(env._scorer, "score_answer", boom)
    crashed = env.score(answered(env, task, "x"), task)
    assert (crashed.reason, crashed.reward, crashed.details) == (
        "scorer_error",
        0.1,
        {"error": "ZeroDivisionError"},
    )


def test_answer_key_is_the_scored_answer(env):
    task = env.tasks("train")[0]
    assert env.answer_key(answered(env, task, "  42 "), task) == "42"
    assert env.answer_key("none", task) is None
    assert env.answer_key(answered(env, task, "9" * 3_000), task) is None


def test_splits_are_disjoint_seeded_and_reproducible(env):
    questions = {s: [t.data["question"] for t in env.tasks(s)] for s in env.splits}
    flat = [q for qs in questions.values() for q in qs]
    assert len(flat) == len(set(flat))  # disjoint, and no question twice within a split
    again = make_env("reasoning_gym", SMALL)
    assert [t.prompt for t in again.tasks("test")] == [t.prompt for t in env.tasks("test")]
    other = make_env("reasoning_gym", {**SMALL, "seed": 1})
    assert not {t.data["question"] for t in other.tasks("train")} & set(questions["train"])
    # train is the same whatever the held-out sizes, as long as they do not collide with it
    bigger = make_env("reasoning_gym", {**SMALL, "n_train": 60})
    assert [t.prompt for t in bigger.tasks("train")][:40] == [t.prompt for t in env.tasks("train")]


def test_a_small_task_space_skips_repeats_and_says_when_it_runs_out():
    tiny = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+"]}
    env = make_env("reasoning_gym", {"config": tiny, "n_train": 30, "n_test": 20, "n_val": 0})
    train = {t.data["question"] for t in env.tasks("train")}
    test = {t.data["question"] for t in env.tasks("test")}
    assert len(train) == 30 and len(test) == 20 and not train & test
    greedy = make_env("reasoning_gym", {"config": tiny, "n_train": 5_000, "n_test": 0})
    with pytest.raises(ValueError, match="distinct train questions"):
        greedy.tasks("train")


def test_options_fail_at_load_time_with_the_field_named():
    with pytest.raises(ValueError, match="did you mean 'basic_arithmetic'"):
        ReasoningGymOptions(dataset="basic_arithmatic")
    with pytest.raises(ValueError, match="seed"):
        ReasoningGymOptions(config={"seed": 3})
    with pytest.raises(ValueError, match="extra"):
        ReasoningGymOptions(n_trian=3)
    with pytest.raises(ValueError, match="config"):
        make_env("reasoning_gym", {"config": {"no_such_field": 1}, "n_train": 1, "n_test": 0})


def test_any_family_runs_through_the_same_adapter():
    for name in ("countdown", "mini_sudoku", "leg_counting"):
        env = make_env("reasoning_gym", {"dataset": name, "n_train": 3, "n_test": 2})
        task = env.tasks("test")[0]
        assert env.score(answered(env, task, task.data["answer"]), task).correct, name
        assert not env.score(answered(env, task, "no idea"), task).correct, name
        assert name.replace("_", " ") in envs.judge_domain(env)


def test_semantics_capabilities(env):
    task = env.tasks("train")[3]
    for capability in (
        envs.TaskRecorder,
        envs.TaggerHints,
        envs.JudgeSubject,
        envs.WriterSubject,
        envs.CompletionRenderer,
        envs.FormatFailures,
        envs.AnswerExtractor,
    ):
        assert isinstance(env, capability), capability.__name__
    assert not isinstance(env, envs.TraceWriter)  # priming sets come from an LLM writer or samples
    record = envs.task_record(env, task)
    assert set(record) == {"question", "answer", "metadata"}
    rebuilt = env.task_from_record(json.loads(json.dumps(record)))
    assert rebuilt.prompt == task.prompt and rebuilt.data["answer"] == task.data["answer"]
    completion = answered(env, task, task.data["answer"])
    assert env.score(completion, rebuilt) == env.score(completion, task)
    with pytest.raises(ValueError, match="'answer'"):
        env.task_from_record({"question": "q"})
    assert envs.tagger_hints(env, task) == {} and envs.record_hints(env, {"numbers": "x"}) == {}
    assert envs.judge_domain(env) == "a basic arithmetic problem (a reasoning-gym task)"
    assert envs.judge_problem(env, task) == f"Problem: {task.data['question']}"
    assert envs.writer_problem(env, task) == task.data["question"]
    brief = envs.writer_brief(env)
    assert "basic arithmetic problems" in brief.task and "<answer>" in brief.reply_format
    assert envs.format_failure_reasons(env) == {"no_answer"}
    assert envs.priming_options(ReasoningGymEnv, 7) == {"n_train": 7, "n_val": 0, "n_test": 0}
