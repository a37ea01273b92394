"""The documents: a Hugging Face dataset read shard by shard, each document measured and cut in tokens.

A shard is the pipeline's unit of work and of resume, so it must be the same rows every time it is read:
a local source (JSONL or parquet, read as a memory-mapped Arrow dataset) is cut into consecutive runs of
`rows_per_shard` rows; a hub source is streamed and sharded by its files (`IterableDataset.shard`), which
needs no pass over the data to plan. Token counts are those of the model the corpus is for, so a token
budget means what the continued-pretraining run will see.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cogrl.config import CorpusSourceConfig, ModelConfig
from cogrl.files import InputError

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
"""File suffix -> the `datasets` builder that reads it."""

TOKENIZE_BATCH = 256
"""Documents tokenized per call (fast tokenizers parallelise a batch)."""


@dataclass(frozen=True)
class Document:
    """One document as the later stages see it: cut to the token budget, with its length in tokens."""

    id: str
    text: str
    tokens: int
    truncated: bool
    too_short: bool = False
    """Shorter than `min_doc_tokens`: counted, then dropped by the caller."""


def local_files(path: str) -> tuple[list[str], str]:
    """The files of a local source and their builder; InputError naming the path when there are none or
    their kinds are mixed."""
    root = Path(path).expanduser()
    if root.is_dir():
        files = sorted(str(p) for p in root.iterdir() if p.suffix in BUILDERS)
    else:
        files = sorted(glob.glob(str(root))) if any(c in path for c in "*?[") else [str(root)]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise InputError(f"source.path: {path!r} names no JSONL or parquet file")
    kinds = {BUILDERS.get(Path(f).suffix) for f in files}
    if None in kinds or len(kinds) > 1:
        raise InputError(
            f"source.path: {path!r}: files must all be JSONL (.jsonl, .json) or all parquet ({files[:5]})"
        )
    return files, kinds.pop()


class Source:
    """The documents of a `CorpusSourceConfig`, by shard: ``n_shards`` and ``read(shard)``. Opening is lazy
    (a Ray worker builds its own), and a worker reads many shards through one open dataset."""

    def __init__(self, config: CorpusSourceConfig) -> None:
        self.config = config

    @cached_property
    def _dataset(self) -> Any:
        import datasets

        config = self.config
        try:
            if config.path is not None:
                files, builder = local_files(config.path)
                dataset = datasets.load_dataset(builder, data_files=files, split="train")
                if config.max_documents is not None:
                    dataset = dataset.select(range(min(len(dataset), config.max_documents)))
            else:
                dataset = datasets.load_dataset(
                    config.hub, config.hub_config, split=config.split, streaming=True
                )
        except InputError:
            raise
        except Exception as exc:  # datasets raises many kinds; the user needs the source and the reason
            where = config.path or config.hub
            raise InputError(f"source: cannot read {where!r}: {type(exc).__name__}: {exc}") from None
        columns = dataset.column_names
        if columns is not None:
            for field in (config.text_field, config.id_field):
                if field is not None and field not in columns:
                    raise InputError(
                        f"source: {config.path or config.hub!r} has no column {field!r} (columns: {columns})"
                    )
        return dataset

    @cached_property
    def tokenizer(self) -> Any:
        from cogrl.models import char_tokenizer, load_tokenizer, resolve_model

        if self.config.tokenizer == "char":
            return char_tokenizer()
        return load_tokenizer(resolve_model(ModelConfig(path=self.config.tokenizer)))

    @cached_property
    def n_shards(self) -> int:
        if self.config.path is not None:
            return max(1, math.ceil(len(self._dataset) / self.config.rows_per_shard))
        return self._dataset.num_shards

    def read(self, shard: int) -> Iterator[Document]:
        """The documents of ``shard`` in order, cut to ``max_doc_tokens`` (those too short are flagged)."""
        if not 0 <= shard < self.n_shards:
            raise InputError(f"source: shard {shard} of {self.n_shards}")
        config = self.config
        if config.path is not None:
            start = shard * config.rows_per_shard
            rows: Any = self._dataset.select(
                range(start, min(start + config.rows_per_shard, len(self._dataset)))
            )
        else:
            rows = self._dataset.shard(num_shards=self.n_shards, index=shard)
            if config.max_documents is not None:
                rows = rows.take(math.ceil(config.max_documents / self.n_shards))
        batch: list[tuple[str, str]] = []
        for i, row in enumerate(rows):
            missing = [f for f in (config.text_field, config.id_field) if f is not None and f not in row]
            if missing:  # a streamed dataset names its columns only as rows arrive
                raise InputError(
                    f"source: shard {shard}, row {i} has no column {missing[0]!r} ({sorted(row)})"
                )
            text = row[config.text_field]
            if not isinstance(text, str):
                raise InputError(
                    f"source: shard {shard}, row {i}: {config.text_field!r} is not text: {text!r:.80}"
                )
            doc_id = str(row[config.id_field]) if config.id_field else f"{shard}:{i}"
            batch.append((doc_id, text))
            if len(batch) == TOKENIZE_BATCH:
                yield from self._cut(batch)
                batch = []
        yield from self._cut(batch)

    def _cut(self, batch: list[tuple[str, str]]) -> Iterator[Document]:
        if not batch:
            return
        limit = self.config.max_doc_tokens
        encoded = self.tokenizer(
            [text for _, text in batch], add_special_tokens=False, return_offsets_mapping=True
        )
        for (doc_id, text), offsets in zip(batch, encoded["offset_mapping"], strict=True):
            n = len(offsets)
            if n < self.config.min_doc_tokens:
                yield Document(doc_id, text, n, False, too_short=True)
            elif n > limit:
                yield Document(doc_id, text[: offsets[limit - 1][1]], limit, True)
            else:
                yield Document(doc_id, text, n, False)
