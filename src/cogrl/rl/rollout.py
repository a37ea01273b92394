"""Rollout workers: sample completions (with per-token log-probs) from the current policy.

A `RolloutWorker` hosts one generation backend (`cogrl.rl.backends`); a `RolloutPool` runs one worker per Ray
actor (OpenRLHF style: one actor per role), splits every prompt batch into contiguous equal shares, gathers
the results in prompt order, and restarts a worker that dies, replaying its share on the latest synced
weights.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogrl.config import LoraConfig, RolloutConfig
from cogrl.rl.backends import BACKENDS, Backend
from cogrl.rl.batch import Generation
from cogrl.rl.placement import Slot, place
from cogrl.rl.transfer import TensorMeta, WeightGroup, weights_fingerprint

if TYPE_CHECKING:
    import torch

ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
"""Environment of every rollout worker. In-process vLLM engine core: weight sync hands tensors straight to the
model (`collective_rpc("reload_weights", ...)` with in-memory tensors needs it; see `cogrl.rl.sync`)."""


# --------------------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------------------
class RolloutWorker:
    """One backend in one process (a Ray actor in a pool); a thin shell so Ray sees plain methods."""

    def __init__(
        self,
        backend: str,
        model_dir: str | Path,
        rollout: RolloutConfig,
        seed: int,
        device: str = "cpu",
        dtype: str = "float32",
        sleep_mode: bool = False,
        lora: LoraConfig | None = None,
    ) -> None:
        for key, value in ENGINE_ENV.items():
            os.environ.setdefault(key, value)
        if backend not in BACKENDS:
            raise ValueError(f"rollout.backend: unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
        self.device = device
        self.backend: Backend = BACKENDS[backend](
            Path(model_dir), rollout, seed, device, dtype, sleep_mode, lora
        )

    def ready(self) -> int:
        """The worker's process id, once its engine is up."""
        return os.getpid()

    def generate(
        self,
        prompts: list[str],
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
        first_index: int = 0,
    ) -> list[Generation]:
        return self.backend.generate(prompts, n, temperature, top_p, max_new_tokens, seed, first_index)

    def score(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[list[float]]:
        return self.backend.score(prompt_ids, response_ids)

    def sleep(self) -> bool:
        return self.backend.sleep()

    def wake_up(self) -> None:
        self.backend.wake_up()

    def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> tuple[tuple[str, ...], float]:
        """Load, and return the fingerprint of what arrived (the pool compares it with the learner's)."""
        self.backend.load_weights(named_tensors)
        return weights_fingerprint(named_tensors)

    def receive_weights(
        self,
        address: str,
        rank: int,
        world_size: int,
        layout: list[TensorMeta],
        bucket_bytes: int,
        timeout_s: float,
    ) -> tuple[tuple[str, ...], float]:
        """Join learner rank 0's broadcast group as `rank`, take the weights it sends, load them; returns
        their fingerprint (see `cogrl.rl.transfer`)."""
        import torch

        device = (
            torch.device("cuda", torch.cuda.current_device())
            if self.device == "cuda"
            else torch.device("cpu")
        )
        group = WeightGroup(address, rank, world_size, device, timeout_s)
        return self.load_weights(dict(group.receive(layout, bucket_bytes)))


def split_evenly(total: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) shares whose sizes differ by at most one, larger shares first."""
    base, extra = divmod(total, parts)
    bounds, start = [], 0
    for rank in range(parts):
        stop = start + base + (rank < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


class RolloutPool:
    """`num_workers` rollout workers as Ray actors (CPU: one core each; GPU: one device each).

    The pool remembers the last state pushed by `cogrl.rl.sync.push_weights` (as a Ray object) so that a
    restarted worker resumes on the same weights as its peers; a share whose worker died is replayed with
    the same seeds, so a run with a crash yields the same generations as one without.
    """

    def __init__(
        self,
        num_workers: int,
        backend: str,
        model_dir: str | Path,
        rollout: RolloutConfig,
        seed: int,
        device: str = "cpu",
        dtype: str = "float32",
        cpus_per_worker: float = 1.0,
        slots: list[Slot] | None = None,
        sleep_mode: bool = False,
        lora: LoraConfig | None = None,
    ) -> None:
        """`slots`: each worker's Ray resources (`cogrl.rl.placement`); by default one GPU per worker, or
        on CPU `cpus_per_worker` CPUs (below 1 packs several workers per core, e.g. in tests on a 2-core
        machine). `sleep_mode`: workers can free their device memory between generations (colocated).
        `lora`: workers serve `model_dir` plus the learner's adapter; syncs carry adapter tensors only."""
        import ray

        if num_workers < 1:
            raise ValueError("rollout.num_workers must be at least 1")
        self.backend = backend
        self.model_dir = Path(model_dir)
        self.rollout = rollout
        self.seed = seed
        self.dtype = dtype
        self.restarts = 0
        self.latest_weights: Callable[[], Any] | None = None
        """The Ray object of the last pushed state dict, on demand (None: the weights of `model_dir`); a
        restarted worker loads it. Set by `cogrl.rl.sync.push_weights`."""
        self.slots = (
            slots if slots is not None else place("split", 0, num_workers, device, cpus_per_worker)[1]
        )
        self._actor_class = ray.remote(runtime_env={"env_vars": dict(ENGINE_ENV)})(RolloutWorker)
        self._worker_args = (backend, str(self.model_dir), rollout, seed, device, dtype, sleep_mode, lora)
        self.workers = [self._spawn(rank) for rank in range(num_workers)]
        self.pids = ray.get([worker.ready.remote() for worker in self.workers])

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    def generate(self, prompts: list[str], seed: int, n: int | None = None) -> list[Generation]:
        """`n` (default rollout.samples_per_prompt) samples per prompt, in prompt order, with the recipe's
        sampling knobs; `prompt_index` refers to `prompts`."""
        n = self.rollout.samples_per_prompt if n is None else n
        shares = split_evenly(len(prompts), self.num_workers)

        def submit(rank: int) -> Any:
            start, stop = shares[rank]
            return self.workers[rank].generate.remote(
                prompts[start:stop],
                n,
                self.rollout.temperature,
                self.rollout.top_p,
                self.rollout.max_new_tokens,
                seed,
                start,
            )

        results = self._run_all(
            {rank: submit for rank in range(self.num_workers) if shares[rank][0] < shares[rank][1]}
        )
        generations = []
        for rank in sorted(results):
            start = shares[rank][0]
            generations += [
                dataclasses.replace(g, prompt_index=g.prompt_index + start) for g in results[rank]
            ]
        return generations

    def score(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[list[list[float]]]:
        """Every worker's log-probs of the same continuations (one list per worker)."""
        results = self._run_all(
            {
                rank: lambda r: self.workers[r].score.remote(prompt_ids, response_ids)
                for rank in range(self.num_workers)
            }
        )
        return [results[rank] for rank in range(self.num_workers)]

    def _run_all(self, calls: dict[int, Any], timeout_s: float | None = None) -> dict[int, Any]:
        """Run `calls[rank](rank)` on each worker; a worker that dies is restarted and its call replayed."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        pending = {rank: submit(rank) for rank, submit in calls.items()}
        results = {}
        while pending:
            rank, ref = next(iter(pending.items()))
            try:
                results[rank] = ray.get(ref, timeout=timeout_s)
            except GetTimeoutError as exc:
                raise GetTimeoutError(f"rollout worker {rank} did not answer within {timeout_s:g} s") from exc
            except RayActorError as exc:
                self._restart(rank, exc)
                pending[rank] = calls[rank](rank)
                continue
            del pending[rank]
        return results

    def _restart(self, rank: int, cause: Exception) -> None:
        import ray

        if self.restarts >= self.rollout.max_restarts:
            raise RuntimeError(
                f"rollout worker {rank} died and the restart budget (rollout.max_restarts="
                f"{self.rollout.max_restarts}) is spent: {cause}"
            ) from cause
        self.restarts += 1
        worker = self._spawn(rank)
        if self.latest_weights is not None:
            ray.get(worker.load_weights.remote(self.latest_weights()))
        self.pids[rank] = ray.get(worker.ready.remote())
        self.workers[rank] = worker

    def _spawn(self, rank: int) -> Any:
        return self._actor_class.options(**self.slots[rank].options()).remote(*self._worker_args)

    def sleep(self) -> None:
        """Every worker frees its device memory (colocated placement; see `Backend.sleep`)."""
        self._run_all({rank: lambda r: self.workers[r].sleep.remote() for rank in range(self.num_workers)})

    def wake_up(self) -> None:
        self._run_all({rank: lambda r: self.workers[r].wake_up.remote() for rank in range(self.num_workers)})

    def shutdown(self) -> None:
        """Stop every worker process (the pool is unusable afterwards)."""
        import ray

        for worker in self.workers:
            ray.kill(worker)
        self.workers = []
