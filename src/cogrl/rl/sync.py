"""Weight sync: after each learner update, put the new policy into every rollout worker, and prove it.

One interface, `push_weights(pool, state_dict, timeout_s)`; each backend implements the last hop in its
`load_weights` (`cogrl.rl.rollout`):

- vLLM (CPU and GPU): `llm.collective_rpc("reload_weights", weights_iterator=...)` with in-memory tensors,
  in-process because workers run with `VLLM_ENABLE_V1_MULTIPROCESSING=0`; then the prefix cache is reset
  (cached keys/values belong to the old weights). The tensors travel once through Ray's object store
  (`ray.put`), so N workers cost one serialisation.
- HF: `model.load_state_dict(strict=True)`.

A sync is checked twice, so a silent no-op cannot pass: every worker reports a fingerprint of the tensors it
received (names + float64 sum of squares), which must equal the learner's; and the log-probs of a fixed probe
continuation, scored by each worker's live engine, must match the learner's own log-probs of the same probe
(`reference_logprobs`) within `rollout.sync_tolerance`. (A check that the probe merely *moved* would fail on
steps whose update is zero, e.g. GRPO on a batch where every completion got the same reward.) The whole sync
runs under a deadline and raises `SyncTimeoutError` instead of hanging a run.

On GPUs the same code path works (tensors go learner -> object store -> worker GPU). For large models
the faster path is a broadcast: vLLM's worker-extension mechanism (`LLM(worker_extension_cls=...)`) lets
each worker join a `StatelessProcessGroup` + `PyNcclCommunicator` with learner rank 0, which then
broadcasts each parameter and calls `model.load_weights([(name, tensor)])` on the receiving side (TRL's
`vllm_serve` does this). It needs CUDA and is not implemented here; `push_weights` is where it would plug in.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cogrl.rl.rollout import RolloutPool, weights_fingerprint

if TYPE_CHECKING:
    import torch

PROBE_PROMPT = "Using the numbers [3, 7, 12], create an equation that equals 48."
PROBE_RESPONSE = (
    " <think> 7 - 3 = 4. 4 * 12 = 48. That is the target. </think> <answer> (7 - 3) * 12 </answer>"
)
"""A fixed continuation whose log-probs show whether a worker's live weights are the learner's."""
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
    state_dict: dict[str, torch.Tensor],
    reference_logprobs: list[float],
    timeout_s: float | None = None,
    tolerance: float | None = None,
) -> SyncReport:
    """Send `state_dict` (HF parameter names, CPU tensors) to every worker of `pool` and verify it.

    `reference_logprobs`: the learner's log-probs of `probe_tokens(pool)`; each worker's must match within
    `tolerance` (mean absolute gap per token; default rollout.sync_tolerance, or the pool dtype's entry of
    `SYNC_TOLERANCE`). `timeout_s` defaults to rollout.sync_timeout_s."""
    import ray
    from ray.exceptions import GetTimeoutError

    timeout_s = pool.rollout.sync_timeout_s if timeout_s is None else timeout_s
    if tolerance is None:
        tolerance = pool.rollout.sync_tolerance or SYNC_TOLERANCE[pool.dtype]
    started = time.monotonic()
    prompt, response = probe_tokens(pool)
    expected = weights_fingerprint(state_dict)

    def remaining() -> float:
        return max(timeout_s - (time.monotonic() - started), 1e-3)

    def on_every_worker(call: Callable[[Any], Any]) -> dict[int, Any]:
        return pool._run_all(
            {rank: lambda r: call(pool.workers[r]) for rank in range(pool.num_workers)}, remaining()
        )

    try:
        pool.weights_ref = ray.put(state_dict)
        received = on_every_worker(lambda w: w.load_weights.remote(pool.weights_ref))
        after = on_every_worker(lambda w: w.score.remote([prompt], [response]))
    except GetTimeoutError as exc:
        raise SyncTimeoutError(
            f"weight sync to {pool.num_workers} rollout worker(s) did not finish within {timeout_s:g} s "
            "(rollout.sync_timeout_s); a worker is hung or busy"
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
    return SyncReport(time.monotonic() - started, probes[0])


def _same_fingerprint(a: tuple[tuple[str, ...], float], b: tuple[tuple[str, ...], float]) -> bool:
    return tuple(a[0]) == tuple(b[0]) and math.isclose(a[1], b[1], rel_tol=1e-12, abs_tol=0.0)


def _mean_gap(a: list[float], b: list[float]) -> float:
    if len(a) != len(b) or not a:
        return math.inf
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)
