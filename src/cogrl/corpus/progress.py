"""Progress lines of a long sharded stage: shards and documents done, throughput, and the time left."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta


class Progress:
    """``Progress("label", shards_total, shards_done_before, log)``; ``advance(documents)`` after each
    shard logs one line. Throughput counts only this run's shards (a resumed job's earlier ones took no
    time here); the ETA assumes the remaining shards take as long as this run's have on average."""

    def __init__(self, stage: str, total: int, done: int, log: Callable[[str], None]) -> None:
        self.stage, self.total, self.done, self.log = stage, total, done, log
        self.start_done = done
        self.documents = 0
        self.started = time.perf_counter()

    def advance(self, documents: int) -> str:
        self.done += 1
        self.documents += documents
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        ran = self.done - self.start_done
        eta = timedelta(seconds=round(elapsed / ran * (self.total - self.done)))
        line = (
            f"{self.stage}: shard {self.done}/{self.total}, {self.documents:,} documents this run "
            f"({self.documents / elapsed:,.1f} docs/s, {ran / elapsed * 60:.1f} shards/min), ETA {eta}"
        )
        self.log(line)
        return line
