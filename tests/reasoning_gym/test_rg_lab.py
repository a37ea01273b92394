"""The lab's LLM tools on reasoning-gym tasks, against the shared fake OpenAI server: `cogrl prime build
--source llm` (the writer asked in the environment's words, its replies scored by reasoning-gym) and the
judge (`cogrl behaviors tag --env reasoning_gym`, shown the environment's problem and domain)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from clirunner import run_cli
from cogrl_reasoning_gym.env import ReasoningGymEnv
from servers.fake_openai import ScriptedOpenAIServer

from cogrl.envs import make_env, priming_options, task_record
from cogrl.priming.card import row_task

OPTIONS = {"dataset": "basic_arithmetic", "config": {"max_terms": 3, "max_digits": 2}}
ENV_ARGS = [arg for key in ("dataset=basic_arithmetic", "config.max_terms=3", "config.max_digits=2")
            for arg in ("--env-option", key)]  # fmt: skip


def judge_server() -> ScriptedOpenAIServer:
    """A judge that finds one instance of every behavior in every response."""
    return ScriptedOpenAIServer(lambda prompt, attempt: "reply:It does.\nCOUNT: 1", model="fake-judge")


class WriterServer(ScriptedOpenAIServer):
    """Request k gets kind KINDS[k % 4]: a plain right answer, one that verifies (unwanted by no_behavior),
    a plain wrong answer, a reply without tags. The question is the user message (``writer_problem``)."""

    KINDS = ("good", "verifying", "wrong", "unreadable")

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.served = 0
        super().__init__(self._answer, model="canned-writer")

    def _answer(self, question: str, attempt: int) -> str:
        kind = self.KINDS[self.served % len(self.KINDS)]
        self.served += 1
        right = self.answers[question]
        if kind == "unreadable":
            return f"reply:It is {right}."
        answer = right if kind != "wrong" else str(int(right) + 1)
        check = (
            f" Let me verify this by recomputing: I get {answer} again, so it is correct."
            if kind == "verifying"
            else ""
        )
        return f"reply:<think>I add and subtract the terms in order and get {answer}.{check}</think>\n<answer>{answer}</answer>"


def _answers(n_tasks: int) -> dict[str, str]:
    """Question -> answer for every task the build can draw (the env the CLI builds, same options)."""
    env = make_env("reasoning_gym", {**OPTIONS, **priming_options(ReasoningGymEnv, n_tasks)})
    return {t.data["question"]: t.data["answer"] for t in env.tasks("train")}


def test_prime_build_with_an_llm_writer(tmp_path, capsys, monkeypatch):
    out = tmp_path / "prime"
    with WriterServer(_answers((6 + 2) * 5)) as server:
        args = [
            "prime",
            "build",
            "--env",
            "reasoning_gym",
            *ENV_ARGS,
            "--source",
            "llm",
            "--endpoint",
            server.url,
        ]
        code, _, err = run_cli(
            [*args, "--condition", "no_behavior", "--n", "6", "--n-val", "2", "--out", str(out)],
            capsys,
            monkeypatch,
        )
        assert code == 0, err
        system = {body["messages"][0]["content"] for body in server.bodies}
        users = [body["messages"][1]["content"] for body in server.bodies]
        code, _, err = run_cli(
            [
                *args,
                "--condition",
                "no_behavior+incorrect",
                "--n",
                "3",
                "--n-val",
                "0",
                "--out",
                str(tmp_path / "wrong"),
            ],
            capsys,
            monkeypatch,
        )
        assert code == 0, err
    # the writer is asked in the environment's words, for reasoning-gym's questions
    assert len(system) == 1 and "basic arithmetic problems" in next(iter(system))
    assert "Countdown" not in next(iter(system)) and all(u.startswith("Calculate ") for u in users)
    dataset = datasets.load_from_disk(str(out))
    rows = dataset["train"].to_list() + dataset["validation"].to_list()
    assert len(rows) == 8 and all(r["correct"] and r["reward"] == 1.0 for r in rows)
    assert all(r["condition"] == "no_behavior" and r["source"] == "llm:canned-writer" for r in rows)
    env = make_env("reasoning_gym", OPTIONS)
    for row in rows:
        task = row_task(env, row)  # the generic task column rebuilds the task
        assert row["prompt"] == task.prompt and json.loads(row["task"]) == task_record(env, task)
        assert env.score(row["completion"], task).correct
    meta = json.loads((out / "priming.json").read_text())
    assert meta["env"] == "reasoning_gym" and meta["env_options"]["n_test"] == 0
    assert {"unwanted:verification", "wrong_answer", "unreadable_format"} <= set(meta["rejections"])
    wrong = datasets.load_from_disk(str(tmp_path / "wrong"))["train"]
    assert wrong.num_rows == 3 and not any(wrong["correct"])


def test_judge_is_shown_the_environments_problem_and_domain(tmp_path, capsys, monkeypatch):
    env = make_env("reasoning_gym", {**OPTIONS, "n_train": 2, "n_test": 0})
    task = env.tasks("train")[0]
    lines = [
        {"completion": "I add them. Let me verify: yes.", **task_record(env, task)},
        {"completion": "No task fields here."},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with judge_server() as server:
        args = ["behaviors", "tag", "--env", "reasoning_gym", "--method", "llm", "--endpoint", server.url]
        code, out, err = run_cli(
            [*args, "--cache", str(tmp_path / "cache.sqlite"), str(path)], capsys, monkeypatch
        )
        bodies = list(server.bodies)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["behaviors"]["verification"] for r in records] == [1, 1]
    systems = {body["messages"][0]["content"] for body in bodies}
    assert systems == {
        "You annotate reasoning traces. You are given the definition of one reasoning behavior and one response "
        "written for a basic arithmetic problem (a reasoning-gym task). Count the distinct instances of that "
        "behavior in the response. Think briefly (at most three sentences), then end with a final line of exactly "
        "the form\nCOUNT: <n>\nwhere <n> is a non-negative integer (0 if the behavior never occurs)."
    }
    prompts = [body["messages"][-1]["content"] for body in bodies]
    with_task = [p for p in prompts if "I add them." in p]
    assert with_task and all(f"Problem: {task.data['question']}\n\nResponse:" in p for p in with_task)
    assert all("Problem:" not in p for p in prompts if "No task fields" in p)
    # the same response judged for another environment is another judgment (the system prompt is in the key)
    countdown = tmp_path / "cd.jsonl"
    countdown.write_text(json.dumps({"completion": "No task fields here."}) + "\n")
    with judge_server() as server:
        args = [
            "behaviors",
            "tag",
            "--method",
            "llm",
            "--endpoint",
            server.url,
            "--cache",
            str(tmp_path / "cache.sqlite"),
        ]
        code, _, err = run_cli([*args, str(countdown)], capsys, monkeypatch)
        assert code == 0, err
        assert server.total() == 4  # not read from the cache
        assert "Countdown" in server.bodies[0]["messages"][0]["content"]


def test_score_command_reads_reasoning_gym_records(tmp_path, capsys, monkeypatch):
    env = make_env("reasoning_gym", {"n_train": 1, "n_test": 0})
    task = env.tasks("train")[0]
    path = Path(tmp_path / "c.jsonl")
    good = {"completion": env.completion("t", task.data["answer"]), **task_record(env, task)}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"completion": "x", "question": "q"}) + "\n")
    code, out, err = run_cli(["score", "--env", "reasoning_gym", str(path)], capsys, monkeypatch)
    scored = [json.loads(line) for line in out.splitlines()]
    assert scored[0]["correct"] is True and scored[0]["reason"] == "correct"
    assert code == 2 and "'answer'" in err
