"""The paper-compatible Countdown scorer: the paper's decisions on its known faults (expected verdicts worked out
by hand from its reward function's rules), hostile answers that its ``eval`` would hang on, the environment's
two verdicts, and `cogrl score --scorer paper`.

``COGRL_PAPER_COUNTDOWN`` may name a local copy of the paper's ``verl/utils/reward_score/countdown.py``; then
``test_matches_the_paper_function`` runs it, in a subprocess, on completions generated here and compares
every reward (the file is never part of this repository)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from adversarial import adversarial_texts, bounded_call
from clirunner import run_cli
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from cogrl_countdown.env import CountdownEnv, CountdownOptions
from cogrl_countdown.paper_scorer import MAX_TOKENS, extract_answer, score
from cogrl_countdown.prompts import base_prompt

PROMPT = base_prompt([1, 2, 3], 6)  # ends with "Assistant: Let me solve this step by step.\n<think>"
REASONS = {
    "no_marker",
    "no_answer",
    "wrong_numbers",
    "unparsable",
    "eval_error",
    "too_long",
    "too_big",
    "wrong_value",
    "correct",
}


def verdict(response: str, numbers, target) -> tuple[float, str]:
    s = score(PROMPT + response, numbers, target)
    assert s.correct == (s.reason == "correct")
    return s.reward, s.reason


def answer(expression: str, numbers, target) -> tuple[float, str]:
    return verdict(f"work</think>\n<answer>{expression}</answer>", numbers, target)


# ----------------------------------------------------------------------------------------------------------
# Where the paper reads
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("x</think>\n<answer>1+2+3</answer>", (1.0, "correct")),
        ("x</think> <answer>1+2+3</answer>", (1.0, "correct")),  # one line with the prompt's "<think>"
        (
            "x</think>\n<answer>1+2+3</answer>\n",
            (0.0, "no_answer"),
        ),  # a final newline: the last line is empty
        ("x</think>\n<answer>1+2+3</answer>\nDone.", (0.0, "no_answer")),  # the answer not on the last line
        ("x</think>\n<answer>1+2\n+3</answer>", (0.0, "no_answer")),  # an answer over two lines
        ("x</think>\n<answer>\n1+2+3\n</answer>", (0.0, "no_answer")),
        ("<answer>1+2+3</answer> then <answer>3*2*1</answer>", (1.0, "correct")),  # the last span
        ("<answer>1+2+3</answer> then <answer>3*2+1</answer>", (0.1, "wrong_value")),
        ("<answer>1+2+3</answer> then <answer>", (1.0, "correct")),  # an unclosed tag is no span
        ("<answer>x<answer>1+2+3</answer>", (0.1, "unparsable")),  # non-greedy: "x<answer>1+2+3"
        ("<answer>1+2+3</answer> Assistant: thanks", (1.0, "correct")),  # only the first marker splits
    ],
)
def test_only_the_last_line_is_read(response, expected):
    assert verdict(response, [1, 2, 3], 6) == expected


def test_the_text_before_the_first_marker_is_ignored_and_without_one_nothing_scores():
    assert score("no marker <answer>1+2+3</answer>", [1, 2, 3], 6).reason == "no_marker"
    assert score("<|im_start|>assistant\n<answer>1+2+3</answer>", [1, 2, 3], 6).reason == "correct"
    # "Assistant:" is looked for first, wherever it is: here it splits inside the answer's line
    text = "<|im_start|>assistant\n<answer>1+2+3</answer> Assistant: x"
    assert score(text, [1, 2, 3], 6).reason == "no_answer"
    assert extract_answer(PROMPT + "<answer>  1 + 2 </answer>") == "1 + 2"
    assert extract_answer(PROMPT + "<answer>1</answer>\n") is None


# ----------------------------------------------------------------------------------------------------------
# What the paper's eval accepts
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "numbers", "target", "expected"),
    [
        ("-1 + 2 + 3 * 3", [1, 2, 3, 3], 10, "correct"),  # unary minus
        ("- -1 + 2 + 3", [1, 2, 3], 6, "correct"),
        ("+1 + 2 + 3", [1, 2, 3], 6, "correct"),
        ("3 ** 2 * 1", [3, 2, 1], 9, "correct"),  # power
        ("-3 ** 2 + 18", [3, 2, 18], 9, "correct"),  # -(3 ** 2): power binds tighter than unary minus
        ("2 ** 3 ** 2", [2, 3, 2], 512, "correct"),  # right-associative
        ("2 ** -1 * 8", [2, 1, 8], 4, "correct"),  # 0.5 * 8
        ("7 // 2 + 1", [7, 2, 1], 4, "correct"),  # floor division
        ("2.5 * 4", [2, 5, 4], 10, "correct"),  # a decimal uses 2 and 5
        ("5. * 2", [5, 2], 10, "correct"),
        (".5 * 20", [5, 20], 10, "correct"),
        ("05 * 2", [5, 2], 10, "unparsable"),  # numbers match (5), but Python refuses the literal
        ("00 + 10", [0, 10], 10, "correct"),
        ("05. * 2", [5, 2], 10, "correct"),  # a float literal may have leading zeros
        ("2 + 1 / (99 * 99 * 99)", [2, 1, 99, 99, 99], 2, "correct"),  # 2.000001: within 1e-5
        ("2 + 1 / (99 * 99)", [2, 1, 99, 99], 2, "wrong_value"),  # 2.0001 is not
        ("7 / 10 * 10", [7, 10, 10], 7, "correct"),  # 7.000000000000001
        ("(0 - 8) ** (1 / 3)", [0, 8, 1, 3], 2, "wrong_value"),  # complex (1+1.73j): |v - 2| = 2
        ("1 + 2 + 3 = 6", [1, 2, 3, 6], 6, "unparsable"),  # "=" is not an allowed character
        ("1 + 2 + 3 = 6", [1, 2, 3], 6, "wrong_numbers"),  # the digits are checked first
        ("(1 + 2 + 3)", [1, 2, 3], 6, "correct"),
        ("1 + 2 + 3 + 0", [1, 2, 3], 6, "wrong_numbers"),
        ("1 + 2 + 3", [1, 2, 3, 3], 6, "wrong_numbers"),
        ("", [1, 2, 3], 6, "wrong_numbers"),
        ("2 (3) * 1", [2, 3, 1], 6, "eval_error"),  # a call: valid syntax, TypeError
        ("6 / (1 - 1)", [6, 1, 1], 6, "eval_error"),  # ZeroDivisionError
        ("2. ** 1024 * 1", [2, 1024, 1], 6, "eval_error"),  # OverflowError
        ("()", [], 6, "unparsable"),  # an empty tuple: the numbers match (none), the value is no number
        ("1 + 2 + 3 + ...", [1, 2, 3], 6, "unparsable"),
        ("1 + * 2 + 3", [1, 2, 3], 6, "unparsable"),
        ("1 ++ 2 + 3", [1, 2, 3], 6, "correct"),
        ("1 * * 2 * 3", [1, 2, 3], 6, "unparsable"),  # "* *" is not "**"
        ("1..2 + 3", [1, 2, 3], 6, "unparsable"),
        ("1 2 + 3", [1, 2, 3], 6, "unparsable"),
        ("(1 + 2 + 3", [1, 2, 3], 6, "unparsable"),
        ("1 + 2 + 3)", [1, 2, 3], 6, "unparsable"),
        ("1 × 2 × 3", [1, 2, 3], 6, "unparsable"),  # the exact scorer's aliases are not the paper's
        ("1 + 2 + ٣", [1, 2, 3], 6, "unparsable"),  # a Unicode digit matches the numbers, not Python's syntax
        ("1 +\t2\x0c+ 3", [1, 2, 3], 6, "correct"),
        ("(1 +\r2) + 3", [1, 2, 3], 6, "correct"),  # a carriage return is a newline: fine inside parentheses
        ("1 +\r2 + 3", [1, 2, 3], 6, "unparsable"),  # ... and ends the expression outside them
        ("1 +\x0b2 + 3", [1, 2, 3], 6, "unparsable"),
        ("1 +\xa02 + 3", [1, 2, 3], 6, "unparsable"),
        ("(" * 200 + "1 + 2 + 3" + ")" * 200, [1, 2, 3], 6, "correct"),
        ("(" * 201 + "1 + 2 + 3" + ")" * 201, [1, 2, 3], 6, "unparsable"),  # CPython's nesting limit
    ],
)
def test_the_papers_eval_decisions(expression, numbers, target, expected):
    reward = 1.0 if expected == "correct" else 0.1
    assert answer(expression, numbers, target) == (reward, expected)


def test_rewards_are_configurable():
    assert score(PROMPT + "<answer>1+2+3</answer>", [1, 2, 3], 6, 0.5, 2.0).reward == 2.0
    assert score(PROMPT + "<answer>1+2+4</answer>", [1, 2, 4], 6, 0.5, 2.0).reward == 0.5
    assert score(PROMPT + "<answer>1+2+4</answer>\n", [1, 2, 4], 6, 0.5, 2.0).reward == 0.0


# ----------------------------------------------------------------------------------------------------------
# Hostile answers: the paper's eval would hang or exhaust memory; this scorer answers at once
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "numbers", "reason"),
    [
        ("9 ** 9 ** 9 ** 9", [9, 9, 9, 9], "too_big"),
        ("99 ** 98 ** 97", [99, 98, 97], "too_big"),
        ("2 ** 99 ** 2", [2, 99, 2], "wrong_value"),  # 9,801 bits: computed
        ("(99 ** 99 ** 2) // (99 ** 99 ** 2) + 5", [99, 99, 2, 99, 99, 2, 5], "correct"),  # exact: 1 + 5
        ("-" * MAX_TOKENS + "6", [6], "too_long"),
        ("(" * 100_000 + "6" + ")" * 100_000, [6], "unparsable"),
        ("1" + " " * 200_000 + "+ 5", [1, 5], "correct"),
        ("0" * 100_000 + "6.", [6], "correct"),  # digit runs are compared as integers of any length
    ],
)
def test_hostile_answers_finish_fast(expression, numbers, reason):
    result = bounded_call(score, f"{PROMPT}<answer>{expression}</answer>", numbers, 6)
    assert result.reason == reason


def test_many_unclosed_tags_on_one_line_are_linear():
    text = PROMPT + "<answer>" * 100_000 + "1+2+3"
    assert bounded_call(score, text, [1, 2, 3], 6).reason == "no_answer"
    text = PROMPT + "<answer>1+2+3</answer>" * 20_000
    assert bounded_call(score, text, [1, 2, 3], 6).reason == "correct"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=adversarial_texts())
def test_bounded_on_adversarial_completions(text: str) -> None:
    for completion in (text, f"<answer>{text}</answer>", f"{text}<answer>{text[:500]}</answer>"):
        result = bounded_call(score, PROMPT + completion, [1, 2, 3], 32)
        assert result.reason in REASONS
        assert result.reward in (0.0, 0.1, 1.0)


# ----------------------------------------------------------------------------------------------------------
# The environment and the CLI
# ----------------------------------------------------------------------------------------------------------
def _env(**options) -> CountdownEnv:
    return CountdownEnv(CountdownOptions(n_train=4, n_test=4, **options))


def test_env_scores_with_one_scorer_and_logs_the_others_verdict():
    task = _env().task_from_record({"numbers": [1, 2, 3, 3], "target": 10})
    unary = "work</think>\n<answer>-1 + 2 + 3 * 3</answer>"
    exact = _env().score(unary, task)
    assert (exact.reward, exact.reason, exact.correct) == (0.1, "unparsable", False)
    assert exact.details == {
        "scorer": "exact",
        "paper_reward": 1.0,
        "paper_reason": "correct",
        "paper_correct": True,
    }
    paper = _env(scorer="paper").score(unary + "\n", task)  # a final newline: the paper reads nothing
    assert (paper.reward, paper.reason, paper.correct) == (0.0, "no_answer", False)
    assert paper.details == {
        "scorer": "paper",
        "exact_reward": 0.1,
        "exact_reason": "unparsable",
        "exact_correct": False,
    }


def test_env_paper_prefix_follows_the_template():
    text = "work</think>\n<answer>1 + 2 + 3</answer>"
    chat = _env(template="chat", scorer="paper")
    assert chat.score(text, chat.task_from_record({"numbers": [1, 2, 3], "target": 6})).reason == "correct"
    custom = _env(
        template="custom", custom_template="Use {numbers} for {target}.\nAssistant:", scorer="paper"
    )
    assert custom.score(text, custom.task_from_record({"numbers": [1, 2, 3], "target": 6})).correct
    with pytest.raises(ValidationError, match="custom_template lacks"):
        _env(template="custom", custom_template="Use {numbers} for {target}.", scorer="paper")
    with pytest.raises(ValidationError, match="scorer"):
        _env(scorer="lenient")


def test_rollout_logs_carry_both_verdicts():
    from cogrl.rl.batch import Generation
    from cogrl.rl.driver import rollout_records

    env = _env()
    task = env.task_from_record({"numbers": [1, 2, 3], "target": 6})
    text = "x</think>\n<answer>1 + 2 + 3</answer>\n"
    generation = Generation(0, (1,), (2, 3), (-0.5, -0.5), text, "stop")
    (record,) = rollout_records(4, [task], [generation], [env.score(text, task)], None, 1)
    assert (record["reward"], record["reason"], record["correct"]) == (1.0, "correct", True)
    assert (record["scorer"], record["paper_reward"], record["paper_reason"]) == ("exact", 0.0, "no_answer")
    assert record["paper_correct"] is False


def test_cli_score_with_the_paper_scorer(tmp_path, capsys, monkeypatch):
    lines = [
        {"numbers": [1, 2, 3, 3], "target": 10, "completion": "x</think>\n<answer>-1 + 2 + 3 * 3</answer>"},
        {"numbers": [1, 2, 3], "target": 6, "completion": "x</think>\n<answer>1 + 2 + 3</answer>\n"},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, out, err = run_cli(["score", "--scorer", "paper", str(path)], capsys, monkeypatch)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["reward"], r["reason"], r["correct"], r["exact_reason"]) for r in rows] == [
        (1.0, "correct", True, "unparsable"),
        (0.0, "no_answer", False, "correct"),
    ]
    code, out, err = run_cli(["score", str(path)], capsys, monkeypatch)
    assert [json.loads(line)["paper_reward"] for line in out.splitlines()] == [1.0, 0.0]
    code, out, err = run_cli(["score", "--scorer", "lenient", str(path)], capsys, monkeypatch)
    assert code == 2 and "scorer" in err


# ----------------------------------------------------------------------------------------------------------
# Against the paper's own function, when a copy of it is at hand
# ----------------------------------------------------------------------------------------------------------
_PIECES = ("+", "-", "*", "**", "/", "//", "(", ")", " ", ".", "..", "()", "\r", "\t", "0", "7", "٣", "\xa0")


def _completions(n: int, rng: random.Random) -> list[dict]:
    """Answers built from the given numbers with every operator, decimals, unary signs and random edits, in
    each of the response shapes the paper reads differently."""
    cases = []
    for _ in range(n):
        numbers = [rng.randint(1, rng.choice((9, 99))) for _ in range(rng.randint(2, 4))]
        parts = []
        for number in rng.sample(numbers, len(numbers)):
            literal = rng.choice(("{}", "{}", "{}", "-{}", "0{}", "{}.", "{}.0", "({})"))
            parts += [literal.format(number), rng.choice(("+", "-", "*", "/", " * ", "//", "**"))]
        expression = "".join(parts[:-1]).replace("**", "*" if max(numbers) > 9 else "**")
        if rng.random() < 0.3:
            at = rng.randint(0, len(expression))
            expression = expression[:at] + rng.choice(_PIECES) + expression[at + 1 :]
        target = rng.randint(1, 100)
        shape = rng.choice(
            (
                "x</think>\n<answer>{}</answer>",
                "<answer>{}</answer>\n",
                "<answer>{}</answer>\nok",
                "<answer>{}\n</answer>",
                "<answer> {} </answer><|endoftext|>",
                "<answer>1</answer><answer>{}</answer>",
            )
        )
        cases.append({"text": PROMPT + shape.format(expression), "numbers": numbers, "target": target})
    for case in cases[::3]:  # make a third of them reach their target when they evaluate
        try:
            value = _reference_value(case["text"])
        except Exception:
            continue
        if isinstance(value, int | float) and abs(value) < 1e6:
            case["target"] = round(value)
    return cases


def _reference_value(text: str):
    """The value our scorer gives an answer (to pick reachable targets for the comparison)."""
    from cogrl_countdown.paper_scorer import evaluate

    found = extract_answer(text)
    if found is None:
        raise ValueError
    return evaluate(found)


@pytest.mark.skipif(
    not os.environ.get("COGRL_PAPER_COUNTDOWN"),
    reason="set COGRL_PAPER_COUNTDOWN to a copy of the paper's verl/utils/reward_score/countdown.py",
)
def test_matches_the_paper_function(tmp_path):
    cases = _completions(600, random.Random(13))
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(case) + "\n" for case in cases))
    runner = (
        "import contextlib, importlib.util, io, json, sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "spec = importlib.util.spec_from_file_location('paper', sys.argv[1])\n"
        "paper = importlib.util.module_from_spec(spec); spec.loader.exec_module(paper)\n"
        "for line in open(sys.argv[2]):\n"
        "    case = json.loads(line)\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        reward = paper.compute_score(case['text'], {'target': case['target'], 'numbers': case['numbers']})\n"
        "    print(reward)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", runner, str(Path(os.environ["COGRL_PAPER_COUNTDOWN"])), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    theirs = [float(line) for line in proc.stdout.split()]
    ours = [score(c["text"], c["numbers"], c["target"]).reward for c in cases]
    mismatches = [(c, t, o) for c, t, o in zip(cases, theirs, ours, strict=True) if t != o]
    assert not mismatches, mismatches[:5]
    assert {0.0, 0.1, 1.0} <= set(ours)
