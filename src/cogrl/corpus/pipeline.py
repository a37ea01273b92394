"""The corpus job on Ray Data: shards through read, prefilter and label; select; rewrite; write the arms.

    <out>/corpus.yaml                 the resolved recipe
    <out>/manifest.json               finished shards per stage (`cogrl.corpus.manifest`)
    <out>/labels/shard-NNNNN.jsonl    every candidate of a shard: text, tokens, prefilter view, label or error
    <out>/selections/shard-NNNNN.jsonl  the matched pairs, rich and minimal in turn, cut into the rewrite
                                      stage's shards (its input)
    <out>/rewrites/shard-NNNNN.jsonl  per selected document, its rewrite or why it was rejected
    <out>/rich/, <out>/minimal/       the two Hugging Face datasets, each with README.md and corpus.json
    <out>/summary.json                the figures of every stage

The sharded stages run as a Ray Data `map` over shard indices on an actor pool of `workers` actors (each
opens the source, compiles the prefilter and holds its judge connection once, for many shards), one block
per shard so that a shard's summary reaches the driver the moment it is finished; the driver records it in
the manifest before anything else. On a cluster (`address`, or RAY_ADDRESS) the actors spread over the
nodes and `--out` must be a file system they share. Selection and the output are cheap and run on the
driver; they are recomputed from the shard files on every run, so they are never stale.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cogrl.config import CorpusRecipe, dump_recipe
from cogrl.corpus.card import arm_stats, card_text, write_arm
from cogrl.corpus.label import Label, label_record, label_texts
from cogrl.corpus.manifest import Manifest
from cogrl.corpus.prefilter import Prefilter
from cogrl.corpus.progress import Progress
from cogrl.corpus.rewrite import rewrite_texts
from cogrl.corpus.select import Selection, select
from cogrl.corpus.source import Source
from cogrl.files import InputError, dumps, read_jsonl, write_atomic
from cogrl.llm_client import ClientStats

Log = Callable[[str], None]
LABEL, SELECTION, REWRITE = "label", "selection", "rewrite"
SUMMARY_FILE = "summary.json"


def shard_file(out: Path, stage: str, shard: int) -> Path:
    return out / f"{stage}s" / f"shard-{shard:05d}.jsonl"


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    write_atomic(path, "".join(f"{dumps(row)}\n" for row in rows))


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    for line in read_jsonl(path):
        if line.error is not None:
            raise InputError(f"{path}:{line.number}: {line.error}")
        yield line.record


# --------------------------------------------------------------------------------------------------------
# The workers
# --------------------------------------------------------------------------------------------------------
class ShardWorker:
    """A Ray Data actor: does whole shards of a stage and writes each one's output file atomically; returns
    the shard's summary (as JSON text: summaries differ in keys, Arrow rows may not)."""

    def __init__(self, recipe: dict[str, Any], out: str) -> None:
        self.recipe = CorpusRecipe.model_validate(recipe)
        self.out = Path(out)
        self.source = Source(self.recipe.source)
        self.prefilter = Prefilter(self.recipe.prefilter, self.recipe.seed)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import ray

        stage, shard = row["stage"], int(row["shard"])
        summary = self.label_shard(shard) if stage == LABEL else self.rewrite_shard(shard)
        summary["node"] = ray.get_runtime_context().get_node_id()  # which machine did it (provenance)
        return {"shard": shard, "summary": json.dumps(summary)}

    def label_shard(self, shard: int) -> dict[str, Any]:
        buckets: Counter[str] = Counter()
        candidates = []
        read = 0
        for doc in self.source.read(shard):
            read += 1
            if doc.too_short:
                buckets["too_short"] += 1
                continue
            view = self.prefilter(doc.id, doc.text)
            buckets[view.bucket] += 1
            if view.kept:
                candidates.append((doc, view))
        stats = ClientStats()
        judge = None
        if self.recipe.label is not None:
            records, judge = label_texts(self.recipe.label, [doc.text for doc, _ in candidates], stats)
        else:  # the regex counts stand in; every candidate is taken to hold a problem and its solution
            records = [
                label_record(Label({b: c or 0 for b, c in view.counts.items()}, True, True), None, None)
                for _, view in candidates
            ]
        rows = [
            {
                "id": doc.id,
                "text": doc.text,
                "tokens": doc.tokens,
                "truncated": doc.truncated,
                "prefilter": {
                    "bucket": view.bucket,
                    "counts": view.counts,
                    "math_density": view.math_density,
                },
                **record,
            }
            for (doc, view), record in zip(candidates, records, strict=True)
        ]
        write_rows(shard_file(self.out, LABEL, shard), rows)
        failed = sum(1 for r in rows if r["label_error"] and r["label_reply"] is None)
        return {
            "documents": read,
            "buckets": dict(buckets),
            "candidates": len(rows),
            "labelled": sum(1 for r in rows if r["label"] is not None),
            "unreadable": sum(1 for r in rows if r["label_error"] and r["label_reply"] is not None),
            "request_failures": failed,
            "requests": stats.requests,
            "retries": stats.retries,
            "judge": judge,
        }

    def rewrite_shard(self, shard: int) -> dict[str, Any]:
        assert self.recipe.rewrite is not None
        rows = list(read_rows(shard_file(self.out, SELECTION, shard)))
        variants = self.recipe.rewrite.variants
        todo = [(r["text"], variants.get(r["arm"], "plain")) for r in rows]
        stats = ClientStats()
        records = rewrite_texts(
            self.recipe.rewrite, todo, lambda text: self.prefilter.tagger.tag(text, numbers=[]).counts, stats
        )
        out = [
            {"pair": r["pair"], "arm": r["arm"], "id": r["id"], **rec}
            for r, rec in zip(rows, records, strict=True)
        ]
        write_rows(shard_file(self.out, REWRITE, shard), out)
        return {
            "documents": len(out),
            "accepted": sum(1 for r in out if r["rewrite"] is not None),
            "rejected": sum(1 for r in out if r["rewrite"] is None),
            "requests": stats.requests,
            "retries": stats.retries,
        }


# --------------------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------------------
def init_ray(recipe: CorpusRecipe) -> None:
    """Join `recipe.address` or RAY_ADDRESS, else start a private local cluster with a logical CPU for every
    worker, taken down with this process however it dies (`cogrl.rl.watchdog`)."""
    import psutil
    import ray

    from cogrl import QUIET_ENV
    from cogrl.rl import watchdog

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": {**QUIET_ENV, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}}
    if address := recipe.address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, runtime_env=runtime_env)
        return
    before = {child.pid for child in psutil.Process().children()}
    ray.init(
        address="local",
        num_cpus=max(os.cpu_count() or 1, math.ceil(recipe.workers * recipe.cpus_per_worker)),
        include_dashboard=False,
        runtime_env=runtime_env,
        log_to_driver=False,
    )
    watchdog.start(child.pid for child in psutil.Process().children() if child.pid not in before)


def run_stage(
    recipe: CorpusRecipe, out: Path, manifest: Manifest, stage: str, n_shards: int, log: Log
) -> None:
    """Do every shard of ``stage`` that the manifest does not name, recording each as it finishes."""
    import ray.data

    manifest.plan(stage, n_shards)
    done = manifest.done(stage)
    todo = [k for k in range(n_shards) if k not in done]
    log(
        f"{stage}: {n_shards} shard(s), {len(done)} finished before, {len(todo)} to do on {recipe.workers} worker(s)"
    )
    if not todo:
        return
    init_ray(recipe)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    items = [{"stage": stage, "shard": k} for k in todo]
    dataset = ray.data.from_items(
        items, override_num_blocks=len(items)
    ).map(
        ShardWorker,
        fn_constructor_kwargs={"recipe": recipe.model_dump(mode="json"), "out": str(out)},
        compute=ray.data.ActorPoolStrategy(size=min(recipe.workers, len(items))),
        num_cpus=recipe.cpus_per_worker,  # Ray's retries of a lost actor's shard are safe: shard writes are idempotent
    )
    progress = Progress(stage, n_shards, len(done), log)
    for row in dataset.iter_rows():
        summary = json.loads(row["summary"])
        manifest.record(stage, int(row["shard"]), summary)
        progress.advance(summary["documents"])


def labelled_rows(out: Path, n_shards: int) -> Iterator[dict[str, Any]]:
    """Every labelled document without its text, and `where` its text is (shard, row): selection needs only
    ids, lengths and labels, and a corpus's candidates need not fit in memory; the chosen few get their
    texts back (`attach_texts`)."""
    for shard in range(n_shards):
        for i, row in enumerate(read_rows(shard_file(out, LABEL, shard))):
            del row["text"], row["label_reply"]
            yield {**row, "where": [shard, i]}


def attach_texts(out: Path, docs: list[dict[str, Any]]) -> None:
    """Give each selected document its text back, reading each label shard once."""
    wanted: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    for doc in docs:
        wanted[doc["where"][0]][doc["where"][1]] = doc
    for shard, rows in sorted(wanted.items()):
        for i, row in enumerate(read_rows(shard_file(out, LABEL, shard))):
            if i in rows:
                rows[i]["text"] = row["text"]


def run_corpus(recipe: CorpusRecipe, out: Path, log: Log = print) -> dict[str, Any]:
    """Run (or resume) the whole job into ``out``; returns the summary also written to summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, recipe)
    write_atomic(out / "corpus.yaml", dump_recipe(recipe))
    source = Source(recipe.source)
    n_label = source.n_shards
    run_stage(recipe, out, manifest, LABEL, n_label, log)

    selection = select(labelled_rows(out, n_label), recipe.select)
    if not selection.rich:
        raise InputError(
            f"select: no matched pair (rich pool {selection.pools.get('rich', 0)}, minimal pool "
            f"{selection.pools.get('minimal', 0)} documents); see {out / 'labels'} and the select knobs"
        )
    pairs = [
        {"pair": i, "arm": arm, **{k: doc[k] for k in ("id", "tokens", "label", "where")}}
        for i, (rich, minimal) in enumerate(zip(selection.rich, selection.minimal, strict=True))
        for arm, doc in (("rich", rich), ("minimal", minimal))
    ]
    attach_texts(out, pairs)
    per_shard = recipe.source.rows_per_shard
    n_rewrite = math.ceil(len(pairs) / per_shard)
    for shard in range(n_rewrite):
        write_rows(shard_file(out, SELECTION, shard), pairs[shard * per_shard : (shard + 1) * per_shard])
    log(f"select: {len(selection.rich)} matched pairs, {json.dumps(selection.stats()['tokens'])} tokens")

    rewrites: dict[tuple[int, str], dict[str, Any]] = {}
    if recipe.rewrite is not None:
        run_stage(recipe, out, manifest, REWRITE, n_rewrite, log)
        for shard in range(n_rewrite):
            for row in read_rows(shard_file(out, REWRITE, shard)):
                rewrites[(row["pair"], row["arm"])] = row
    summary = write_outputs(recipe, out, manifest, selection, pairs, rewrites, source)
    log(f"done: {out / 'rich'} and {out / 'minimal'}: {json.dumps(summary['arms'])}")
    return summary


def rate(k: int, n: int) -> float:
    return k / n if n else 0.0


def write_outputs(
    recipe: CorpusRecipe,
    out: Path,
    manifest: Manifest,
    selection: Selection,
    pairs: list[dict[str, Any]],
    rewrites: dict[tuple[int, str], dict[str, Any]],
    source: Source,
) -> dict[str, Any]:
    """The two arms (a pair whose rewrite was rejected on either side leaves both, so the arms stay
    matched), their cards and summary.json."""
    arms: dict[str, list[dict[str, Any]]] = {"rich": [], "minimal": []}
    dropped_pairs = set()
    if rewrites:
        dropped_pairs = {pair for (pair, _), row in rewrites.items() if row["rewrite"] is None}
    for row in pairs:
        if row["pair"] in dropped_pairs:
            continue
        doc = dict(row)
        if rewrites:
            doc["text"] = rewrites[(row["pair"], row["arm"])]["rewrite"]
            doc["tokens"] = len(source.tokenizer(doc["text"], add_special_tokens=False)["input_ids"])
        arms[row["arm"]].append(doc)

    label_summaries = manifest.done(LABEL).values()
    buckets: Counter[str] = Counter()
    for s in label_summaries:
        buckets.update(s["buckets"])
    read = sum(s["documents"] for s in label_summaries)
    candidates = sum(s["candidates"] for s in label_summaries)
    labelled = sum(s["labelled"] for s in label_summaries)
    rejections = [
        {
            "stage": "source",
            "what": f"shorter than {recipe.source.min_doc_tokens} tokens",
            "documents": buckets["too_short"],
            "rate": rate(buckets["too_short"], read),
        },
        {
            "stage": "prefilter",
            "what": "not mathematics",
            "documents": buckets["not_math"],
            "rate": rate(buckets["not_math"], read),
        },
        {
            "stage": "prefilter",
            "what": "no behavior phrase, outside the minimal sample",
            "documents": buckets["sampled_out"],
            "rate": rate(buckets["sampled_out"], read),
        },
        {
            "stage": "label",
            "what": "request failed",
            "documents": sum(s["request_failures"] for s in label_summaries),
            "rate": rate(sum(s["request_failures"] for s in label_summaries), candidates),
        },
        {
            "stage": "label",
            "what": "unreadable judge reply",
            "documents": sum(s["unreadable"] for s in label_summaries),
            "rate": rate(sum(s["unreadable"] for s in label_summaries), candidates),
        },
        {
            "stage": "select",
            "what": "in neither arm's pool",
            "documents": labelled - sum(selection.pools.values()),
            "rate": rate(labelled - sum(selection.pools.values()), labelled),
        },
    ]
    if rewrites:
        rejected = [row for row in rewrites.values() if row["rewrite"] is None]
        for what, test in (
            ("rewrite request failed or unparsable", lambda e: not e.startswith("content check")),
            ("rewrite failed the content check", lambda e: e.startswith("content check")),
        ):
            k = sum(1 for row in rejected if test(row["rewrite_error"]))
            rejections.append(
                {"stage": "rewrite", "what": what, "documents": k, "rate": rate(k, len(rewrites))}
            )
        k = 2 * len(dropped_pairs)
        rejections.append(
            {
                "stage": "rewrite",
                "what": "left the arms with their pair",
                "documents": k,
                "rate": rate(k, len(rewrites)),
            }
        )
    pipeline = {
        "tokenizer": recipe.source.tokenizer,
        "labels_from": (
            f"LLM judge {', '.join(sorted({s['judge'] for s in label_summaries if s.get('judge')}))} at "
            f"{recipe.label.endpoint}"
            if recipe.label
            else "the regex prefilter (no judge configured)"
        ),
        "rewritten": "yes, " + json.dumps(recipe.rewrite.variants) if recipe.rewrite else "no",
        "selection": {**selection.stats(), "pairs_after_rewrite": len(arms["rich"])},
        "rejections": rejections,
    }
    summary = {
        "name": recipe.name,
        "documents_read": read,
        "prefilter_buckets": dict(buckets),
        "candidates": candidates,
        "labelled": labelled,
        **pipeline,
        "arms": {},
    }
    for arm, rows in arms.items():
        stats = arm_stats(rows)
        summary["arms"][arm] = {"documents": stats["documents"], "tokens": stats["tokens"]}
        write_arm(
            out / arm, rows, card_text(recipe.name, arm, stats, pipeline), {**stats, "pipeline": pipeline}
        )
    write_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    return summary


def plan_text(recipe: CorpusRecipe, out: Path) -> str:
    """What a build would do: the source, the stages with their knobs, and the shards finished so far."""
    source = Source(recipe.source)
    manifest = Manifest(out, recipe) if (out / "manifest.json").is_file() else None
    done = len(manifest.done(LABEL)) if manifest else 0
    lines = [
        f"corpus {recipe.name} -> {out}",
        f"source    {recipe.source.path or recipe.source.hub}: {source.n_shards} shard(s) ({done} finished), "
        f"documents cut to {recipe.source.max_doc_tokens} tokens of {recipe.source.tokenizer}",
        f"prefilter math density >= {recipe.prefilter.min_math_density:g}/1k chars, minimal sample "
        f"{recipe.prefilter.minimal_sample:g}",
        f"label     {'judge ' + recipe.label.endpoint if recipe.label else 'regex counts (no judge)'}",
        f"select    rich >= {recipe.select.rich_min_count} instances, minimal <= "
        f"{recipe.select.minimal_max_count}, budget {recipe.select.token_budget or 'all pairs'} tokens per arm",
        f"rewrite   {json.dumps(recipe.rewrite.variants) if recipe.rewrite else 'no'}",
        f"workers   {recipe.workers} on {recipe.address or os.environ.get('RAY_ADDRESS') or 'a local Ray cluster'}",
    ]
    return "\n".join(lines)
