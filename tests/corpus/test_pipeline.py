"""The corpus job for real: `cogrl corpus build` on Ray Data with two workers, labelling and rewriting the
sample corpus against the fake OpenAI server; a rerun that finds everything done; and a job killed
(SIGKILL) mid-run that resumes without redoing a finished shard or losing or duplicating a row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import psutil
import pytest
from corpus_helpers import LOSSY, ROWS, SAMPLE, UNREADABLE
from processes import kill_all, wait_until_gone
from servers.fake_openai import ScriptedOpenAIServer

from cogrl.corpus.manifest import MANIFEST

pytestmark = pytest.mark.slow  # a Ray cluster per run

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes/corpus/cpu-sample.yaml"


def start(out: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from cogrl.cli import main; main()", "corpus", "build", str(RECIPE),
         f"source.path={SAMPLE}", *overrides, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "RAY_ADDRESS": ""},
    )  # fmt: skip


def build(out: Path, *overrides: str) -> str:
    process = start(out, *overrides)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


def labelled(out: Path) -> list[dict]:
    return [
        json.loads(line)
        for f in sorted((out / "labels").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


def test_two_workers_label_select_rewrite_and_write_matched_arms(fake_llm, tmp_path):
    out = tmp_path / "corpus"
    endpoint = [f"label.endpoint={fake_llm.url}", f"rewrite={{endpoint: {fake_llm.url}}}"]
    output = build(out, *endpoint)
    assert "label: shard 5/5" in output and "ETA" in output and "docs/s" in output
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["stages"]["label"]["shards"], key=int) == [str(k) for k in range(5)]

    rows = labelled(out)
    math_rows = [r for r in ROWS if r["kind"] != "not_math"]
    assert sorted(r["id"] for r in rows) == sorted(
        f"{i // 25}:{i % 25}" for i, r in enumerate(ROWS) if r["kind"] != "not_math"
    )
    assert len(rows) == len(math_rows)
    bad = [r for r in rows if r["text"] == UNREADABLE]
    assert len(bad) == 1 and bad[0]["label"] is None and "backtracking" in bad[0]["label_error"]

    summary = json.loads((out / "summary.json").read_text())
    rich, minimal = (datasets.load_from_disk(str(out / arm)) for arm in ("rich", "minimal"))
    assert len(rich) == len(minimal) > 0
    pairs = summary["selection"]["documents"]["rich"]
    lossy_selected = sum(
        1
        for f in (out / "selections").glob("*.jsonl")
        for line in f.read_text().splitlines()
        if json.loads(line)["text"] in LOSSY
    )
    assert len(rich) == pairs - lossy_selected  # a rejected rewrite takes its pair out of both arms
    assert all(t.startswith("Question: ") and "<think>" in t for t in [*rich["text"], *minimal["text"]])
    assert min(rich["verification"]) > 0 and max(minimal["verification"]) == 0
    assert summary["selection"]["length_ks"] <= 0.5
    rejections = {(r["stage"], r["what"]): r["documents"] for r in summary["rejections"]}
    assert rejections[("label", "unreadable judge reply")] == 1
    assert rejections[("prefilter", "not mathematics")] == sum(1 for r in ROWS if r["kind"] == "not_math")
    assert rejections[("rewrite", "rewrite failed the content check")] == lossy_selected
    card = (out / "rich" / "README.md").read_text()
    assert "| verification | 1.000 |" in card and "LLM judge fake-curator" in card

    requests = fake_llm.total()
    again = build(out, *endpoint)
    assert "label: 5 shard(s), 5 finished before, 0 to do" in again and fake_llm.total() == requests
    assert list(datasets.load_from_disk(str(out / "rich"))["text"]) == list(rich["text"])


def test_a_killed_job_resumes_without_redoing_a_finished_shard(tmp_path):
    assert len({r["text"] for r in ROWS}) == len(ROWS)  # a request names its document
    from corpus_helpers import identify, script

    with ScriptedOpenAIServer(script, identify=identify, model="fake-curator", delay_s=0.4) as server:
        out = tmp_path / "corpus"
        overrides = (
            f"label.endpoint={server.url}",
            "label.concurrency=2",
            "source.rows_per_shard=7",
        )  # 15 shards
        process = start(out, *overrides)
        manifest = out / MANIFEST

        def finished() -> dict:
            if not manifest.is_file():
                return {}
            return json.loads(manifest.read_text())["stages"].get("label", {}).get("shards", {})

        deadline = time.monotonic() + 300
        while len(finished()) < 2:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no shard finished in time"
            time.sleep(0.1)
        cluster = psutil.Process(process.pid).children(recursive=True)
        try:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            assert not wait_until_gone(cluster, limit_s=30)
        finally:
            kill_all(cluster)
        before = finished()
        assert 2 <= len(before) < 15
        requests_before = dict(server.requests)

        output = build(out, *overrides)
        assert f"label: 15 shard(s), {len(before)} finished before, {15 - len(before)} to do" in output
        after = finished()
        assert sorted(after, key=int) == [str(k) for k in range(15)]
        assert all(after[k] == v for k, v in before.items())  # finished shards untouched
        done_texts = {
            ROWS[7 * int(k) + i]["text"]
            for k in before
            for i in range(7)
            if ROWS[7 * int(k) + i]["kind"] != "not_math"
        }
        assert all(server.requests[("label", t)] == 1 for t in done_texts)  # not asked again after the kill
        assert all(server.requests[("label", t)] == requests_before[("label", t)] for t in done_texts)
        rows = labelled(out)
        assert len(rows) == len({r["id"] for r in rows}) == sum(s["candidates"] for s in after.values())
        assert {r["id"] for r in rows} == {
            f"{i // 7}:{i % 7}" for i, r in enumerate(ROWS) if r["kind"] != "not_math"
        }


def test_given_a_cluster_the_workers_spread_over_its_nodes(tmp_path, monkeypatch):
    """A two-node Ray cluster (two raylets on this machine, `ray.cluster_utils`): `address` joins it, and
    the shards are done on both nodes (each summary names the node that did it)."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        out = tmp_path / "corpus"
        build(out, f"address={cluster.address}")
        shards = json.loads((out / MANIFEST).read_text())["stages"]["label"]["shards"]
        assert len(shards) == 5 and len({s["node"] for s in shards.values()}) == 2
        assert len(datasets.load_from_disk(str(out / "rich"))) > 0
    finally:
        cluster.shutdown()
