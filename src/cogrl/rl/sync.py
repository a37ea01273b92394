"""Weight sync: after each learner update, put the new policy into every rollout worker, and prove it.

One interface, `push_weights(pool, source, ...)`, two ways to move the tensors:

- broadcast (``rollout.weight_sync: broadcast``, the default; `source` is the `LearnerGroup`): learner
  rank 0 sends the weights, in the rollout dtype and in buckets, straight to every worker over a process
  group of their own (gloo on CPU, NCCL on GPUs; `cogrl.rl.transfer`). Nothing passes through the driver.
- object store (``object_store``, or `source` a state dict): the driver puts the state into Ray's object
  store once and every worker fetches it. Also the fallback when a worker dies mid-broadcast (the pool
  restarts it; a collective cannot be replayed for one member).

The last hop is each backend's `load_weights` (`cogrl.rl.rollout`): vLLM's
`collective_rpc("reload_weights", weights_iterator=...)` with in-memory tensors (in-process, workers run with
`VLLM_ENABLE_V1_MULTIPROCESSING=0`; the prefix cache is reset), or HF's `load_state_dict(strict=True)`.

A sync is checked twice, so a silent no-op cannot pass: every worker reports a fingerprint of the tensors it
received (names + float64 sum of squares), which must equal the learner's; and the log-probs of a fixed probe
continuation, scored by each worker's live engine, must match the learner's own log-probs of the same probe
(`reference_logprobs`) within the dtype's tolerance. (A check that the probe merely *moved* would fail on
steps whose update is zero, e.g. GRPO on a batch where every completion got the same reward.) The whole sync
runs under a deadline and raises `SyncTimeoutError`, naming the workers that did not finish, instead of
hanging a run. vLLM 0.32's own weight-transfer engines (NCCL, CUDA IPC) live in its GPU worker only, so
they cannot be exercised on CPU; this path is the one tested here and used on both.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cogrl.rl.rollout import RolloutPool
from cogrl.rl.transfer import describe, weights_fingerprint

if TYPE_CHECKING:
    import torch

    from cogrl.rl.learner_group import LearnerGroup

PROBE_PROMPT = "Using the numbers [3, 7, 12], create an equation that equals 48."
PROBE_RESPONSE = (
    " <think> 7 - 3 = 4. 4 * 12 = 48. That is the target. </think> <answer> (7 - 3) * 12 </answer>"
)
"""A fixed continuation whose log-probs show whether a worker's live weights are the learner's. It is no
environment's task on purpose: the probe compares two copies of the same weights on any fixed text, so its
wording does not matter (in-distribution text only makes the log-probs less extreme); it stays the same for
every environment, so sync checks of runs on different environments are alike, and it is not a capability."""
SYNC_TOLERANCE = {"float32": 1e-3, "bfloat16": 0.05}
"""Default probe tolerance per rollout dtype (see `rollout.sync_tolerance` in cogrl.config)."""


class SyncError(RuntimeError):
    """A weight sync finished but the workers do not hold the learner's weights."""


class SyncTimeoutError(SyncError, TimeoutError):
    """A weight sync did not finish within its deadline."""


@dataclass(frozen=True)
class SyncReport:
    seconds: float
    probe_logprobs: list[float]
    """The workers' log-probs of the probe continuation after the sync (worker 0's; all agree)."""
    path: str = "object_store"
    """How the tensors travelled: `broadcast`, `object_store`, or `object_store (broadcast failed: ...)`."""
    bytes: int = 0
    """The size of the state sent (once; every worker receives a copy): the full policy in the rollout dtype,
    or under LoRA the adapter tensors only."""


def probe_tokens(pool: RolloutPool) -> tuple[list[int], list[int]]:
    """The probe as (prompt ids, response ids) in the pool's tokenizer; the learner scores the same."""
    return _probe_tokens(str(pool.model_dir))


@functools.lru_cache(maxsize=4)
def _probe_tokens(model_dir: str) -> tuple[list[int], list[int]]:
    from cogrl.models import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    prompt = tokenizer(PROBE_PROMPT, add_special_tokens=True).input_ids
    response = tokenizer(PROBE_RESPONSE, add_special_tokens=False).input_ids
    return prompt, response


def push_weights(
    pool: RolloutPool,
    source: dict[str, torch.Tensor] | LearnerGroup,
    reference_logprobs: list[float],
    timeout_s: float | None = None,
    tolerance: float | None = None,
) -> SyncReport:
    """Put the learner's weights into every worker of `pool` and verify them.

    `source`: a `LearnerGroup` (broadcast from its rank 0) or a state dict (HF parameter names, CPU tensors;
    through the object store). `reference_logprobs`: the learner's log-probs of `probe_tokens(pool)`; each
    worker's must match within `tolerance` (mean absolute gap per token; default rollout.sync_tolerance, or
    the pool dtype's entry of `SYNC_TOLERANCE`). `timeout_s` defaults to rollout.sync_timeout_s."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    timeout_s = pool.rollout.sync_timeout_s if timeout_s is None else timeout_s
    if tolerance is None:
        tolerance = pool.rollout.sync_tolerance or SYNC_TOLERANCE[pool.dtype]
    started = time.monotonic()
    prompt, response = probe_tokens(pool)

    def remaining() -> float:
        return max(timeout_s - (time.monotonic() - started), 1e-3)

    def on_every_worker(call: Callable[[Any], Any]) -> dict[int, Any]:
        return pool._run_all(
            {rank: lambda r: call(pool.workers[r]) for rank in range(pool.num_workers)}, remaining()
        )

    def through_object_store(state: dict[str, torch.Tensor]) -> tuple[dict[int, Any], Any, str, int]:
        ref = ray.put(state)
        pool.latest_weights = lambda: ref
        return (
            on_every_worker(lambda w: w.load_weights.remote(ref)),
            weights_fingerprint(state),
            "object_store",
            sum(meta.nbytes for meta in describe(state)),
        )

    try:
        if isinstance(source, dict):
            received, expected, path, size = through_object_store(source)
        else:
            pool.latest_weights = lambda: ray.put(source.policy_state())
            try:
                received, expected, size = _broadcast(pool, source, remaining)
                path = "broadcast"
            except (RayActorError, RayTaskError) as exc:  # a member died mid-broadcast: the pool restarts it
                received, expected, _, size = through_object_store(source.policy_state())
                path = f"object_store (broadcast failed: {str(exc).splitlines()[0][:200]})"
        after = on_every_worker(lambda w: w.score.remote([prompt], [response]))
    except GetTimeoutError as exc:
        raise SyncTimeoutError(
            f"weight sync to {pool.num_workers} rollout worker(s) did not finish within {timeout_s:g} s "
            f"(rollout.sync_timeout_s): {exc}"
        ) from exc
    for rank, fingerprint in sorted(received.items()):
        if not _same_fingerprint(fingerprint, expected):
            raise SyncError(f"rollout worker {rank} received different tensors than the learner sent")
    probes = [after[rank][0] for rank in range(pool.num_workers)]
    for rank, probe in enumerate(probes):
        gap = _mean_gap(probe, reference_logprobs)
        if gap > tolerance:
            raise SyncError(
                f"rollout worker {rank}'s probe log-probs differ from the learner's by {gap:.2e} per token "
                f"> tolerance {tolerance:g} (rollout.sync_tolerance, {pool.dtype} rollouts): the worker does "
                "not run the learner's weights"
            )
    return SyncReport(time.monotonic() - started, probes[0], path, size)


def _broadcast(
    pool: RolloutPool, learners: LearnerGroup, remaining: Callable[[], float]
) -> tuple[dict[int, Any], tuple[tuple[str, ...], float], int]:
    """Learner rank 0 -> every worker over a `WeightGroup`; returns each worker's fingerprint, rank 0's, and
    the bytes sent."""
    import ray
    from ray.exceptions import GetTimeoutError

    # A dead worker would leave the others waiting for it: restart it first (on the learner's current weights).
    pool._run_all(
        {rank: lambda r: pool.workers[r].ready.remote() for rank in range(pool.num_workers)}, remaining()
    )
    world = pool.num_workers + 1
    bucket_bytes = pool.rollout.sync_bucket_mb << 20
    address, layout, expected = learners.open_weight_group(world, remaining())
    deadline = remaining()
    receivers = {
        rank: pool.workers[rank].receive_weights.remote(
            address, rank + 1, world, layout, bucket_bytes, deadline
        )
        for rank in range(pool.num_workers)
    }
    sender = learners.send_weights(bucket_bytes)
    refs = [sender, *receivers.values()]
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=remaining())
    if len(done) < len(refs):
        late = [f"worker {rank}" for rank, ref in receivers.items() if ref not in done]
        raise GetTimeoutError(f"no answer from {', '.join(late) or 'learner rank 0'} within the deadline")
    ray.get(sender)
    return {rank: ray.get(ref) for rank, ref in receivers.items()}, expected, sum(m.nbytes for m in layout)


def _same_fingerprint(a: tuple[tuple[str, ...], float], b: tuple[tuple[str, ...], float]) -> bool:
    return tuple(a[0]) == tuple(b[0]) and math.isclose(a[1], b[1], rel_tol=1e-12, abs_tol=0.0)


def _mean_gap(a: list[float], b: list[float]) -> float:
    if len(a) != len(b) or not a:
        return math.inf
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)
