"""The miniature's pretraining corpus: what a "Llama-like" base may and may not read."""

from __future__ import annotations

from cogrl.envs import make_env
from cogrl_countdown.corpus import CorpusOptions, equations, held_out

OPTIONS = dict(
    preset="priming", min_count=3, max_count=3, max_number=15, min_target=10, max_target=50,
    n_train=400, n_test=64, template="custom", custom_template="Use {numbers} to make {target}.\n<think>",
    trace_style="search", search_max_value=100, search_max_chars=400,
)  # fmt: skip


def env():
    return make_env("countdown", OPTIONS)


def derivations(documents):
    return [d for d in documents if d.startswith("Use ")]


def test_llama_like_corpus_shows_no_behavior_no_test_problem_and_no_held_out_equation():
    e = env()
    documents = e.write_corpus(CorpusOptions(documents=600, arithmetic_fraction=0.4))
    assert len(documents) == 600
    written = derivations(documents)
    assert abs(len(written) - 360) <= 1  # 60% derivations, 40% arithmetic
    tests = {t.prompt for t in e.tasks("test")}
    trains = {t.prompt for t in e.tasks("train")}
    for document in written:
        prompt, _, completion = document.partition("<think>")
        assert prompt + "<think>" in trains and prompt + "<think>" not in tests
        task = next(t for t in e.tasks("train") if t.prompt == prompt + "<think>")
        counts = e.search_counts(completion, task)
        assert sum(counts.tags.counts.values()) == 0, (
            document
        )  # no check, no back-to, no subgoal, no work-back
        assert counts.false_steps == 0 and counts.steps == 2  # the solution path: two true steps
        assert e.score(completion, task).correct
    for document in documents:
        for a, op, b in equations(document):
            assert not held_out(a, op, b)
            assert a <= 100 and b <= 100


def test_qwen_like_corpus_holds_the_asked_share_of_search_traces():
    e = env()
    tasks = {t.prompt: t for t in e.tasks("train")}
    documents = e.write_corpus(CorpusOptions(documents=400, search_fraction=0.1))
    with_behaviors = 0
    for document in derivations(documents):
        prompt, _, completion = document.partition("<think>")
        counts = e.search_counts(completion, tasks[prompt + "<think>"])
        with_behaviors += sum(counts.tags.counts.values()) > 0
        assert counts.false_steps == 0 and counts.false_success_claims == 0
    # 40 search traces were asked for; a search that meets the answer on its first path shows only the final
    # check, which still counts as a behavior, so every one of them is counted.
    assert with_behaviors == 40


def test_corpus_and_probes_are_deterministic_and_probes_are_sorted_by_what_the_corpus_shows():
    e = env()
    options = CorpusOptions(documents=200, probes=64)
    assert e.write_corpus(options) == e.write_corpus(options)
    assert e.write_corpus(options) != e.write_corpus(CorpusOptions(documents=200, probes=64, seed=1))
    probes = e.corpus_probes(options)
    assert probes == e.corpus_probes(options)
    assert len(probes["arithmetic"]) == 64 and len(probes["unseen_equations"]) == 64
    for name, pairs in probes.items():
        for prompt, expected in pairs:
            a, op, b = prompt.removesuffix(" =").split(" ")
            assert held_out(int(a), op, int(b)) == (name == "unseen_equations")
            value = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b), "/": int(a) // int(b)}[
                op
            ]
            assert expected == f" {value}"
