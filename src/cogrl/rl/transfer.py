"""Moving weights between processes: their layout, a fingerprint to check them, and the broadcast group
that sends them straight from learner rank 0 to every rollout worker.

The object-store path (`cogrl.rl.sync`) moves a full float32 copy learner -> driver -> object store -> each
worker. Here rank 0 broadcasts the weights, already in the rollout dtype, in fixed-size buckets, to all
workers at once (gloo on CPU, NCCL between GPUs: one collective per bucket, no driver hop). The group is
made for one sync and torn down after it: a TCP store on rank 0, then a bare `ProcessGroupGloo` /
`ProcessGroupNCCL` that lives beside the learners' own default group (as vLLM's `StatelessProcessGroup`
does), so a restarted worker simply joins the next sync. Every wait has the sync's deadline; a member that
never arrives or stalls mid-transfer raises `TimeoutError` instead of hanging the run.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEFAULT_BUCKET_MB = 256
"""Bytes per broadcast (MiB): large enough to amortise a collective's latency, small enough to stage."""


@dataclass(frozen=True)
class TensorMeta:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return int(torch.Size(self.shape).numel())

    @property
    def nbytes(self) -> int:
        return self.numel * getattr(torch, self.dtype).itemsize


def weights_fingerprint(state: dict[str, torch.Tensor]) -> tuple[tuple[str, ...], float]:
    """Tensor names and a float64 sum of squares: cheap on any device, changes with any real update.

    The learner and every worker compute it on their copies of a pushed state, so a tensor lost or
    mangled in transit is caught before generation uses it."""
    total = 0.0
    for tensor in state.values():
        total += float(tensor.detach().to(torch.float64).square().sum())
    return tuple(sorted(state)), total


def describe(state: dict[str, torch.Tensor]) -> list[TensorMeta]:
    """What a receiver needs to allocate and split the buckets (a few KB, sent through Ray)."""
    return [TensorMeta(n, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for n, t in state.items()]


def buckets(metas: list[TensorMeta], bucket_bytes: int) -> list[list[TensorMeta]]:
    """Consecutive tensors of one dtype, at most `bucket_bytes` each (a larger tensor travels alone)."""
    out: list[list[TensorMeta]] = []
    size = 0
    for meta in metas:
        nbytes = meta.nbytes
        if out and out[-1][0].dtype == meta.dtype and size + nbytes <= bucket_bytes:
            out[-1].append(meta)
            size += nbytes
        else:
            out.append([meta])
            size = nbytes
    return out


class WeightGroup:
    """A private process group: rank 0 sends, ranks 1..world-1 receive. Rank 0 is built first: it hosts the
    group's TCP store on a free port (`address`) and returns at once; the group itself forms when every
    member has called `send` or `receive`."""

    def __init__(self, host: str, rank: int, world_size: int, device: torch.device, timeout_s: float) -> None:
        """`host`: rank 0's reachable address; ranks > 0 pass rank 0's `address` ("host:port")."""
        host, _, port = host.partition(":") if rank else (host, "", "0")
        self.rank, self.world_size, self.device = rank, world_size, device
        self.timeout = datetime.timedelta(seconds=timeout_s)
        self.store = dist.TCPStore(
            host, int(port), world_size, rank == 0, timeout=self.timeout, wait_for_workers=False
        )
        self.address = f"{host}:{self.store.port}"
        self._group: dist.ProcessGroup | None = None

    @property
    def group(self) -> dist.ProcessGroup:
        """The process group; building it waits (up to the deadline) for every member."""
        if self._group is None:
            if self.device.type == "cuda":
                options = dist.ProcessGroupNCCL.Options()
                options._timeout = self.timeout
                self._group = dist.ProcessGroupNCCL(self.store, self.rank, self.world_size, options)
            else:
                self._group = dist.ProcessGroupGloo(self.store, self.rank, self.world_size, self.timeout)
        return self._group

    def broadcast(self, buffer: torch.Tensor) -> None:
        options = dist.BroadcastOptions()
        options.rootRank = 0
        if not self.group.broadcast([buffer], options).wait(self.timeout):  # gloo raises on timeout
            raise TimeoutError(f"weight broadcast did not finish within {self.timeout.total_seconds():g} s")

    def send(self, state: dict[str, torch.Tensor], bucket_bytes: int) -> None:
        """Rank 0: every tensor of `state`, bucket by bucket, in `describe(state)` order."""
        for bucket in buckets(describe(state), bucket_bytes):
            flat = torch.cat([state[meta.name].reshape(-1) for meta in bucket]).to(self.device)
            self.broadcast(flat)

    def receive(self, metas: list[TensorMeta], bucket_bytes: int) -> Iterator[tuple[str, torch.Tensor]]:
        """Ranks 1..: the tensors rank 0 sends, as (name, tensor) on this group's device."""
        for bucket in buckets(metas, bucket_bytes):
            flat = torch.empty(
                sum(m.numel for m in bucket), dtype=getattr(torch, bucket[0].dtype), device=self.device
            )
            self.broadcast(flat)
            offset = 0
            for meta in bucket:
                yield meta.name, flat[offset : offset + meta.numel].view(meta.shape)
                offset += meta.numel
