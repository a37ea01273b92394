"""Weight sync: the broadcast path (learner rank 0 -> workers over a gloo group, cogrl.rl.transfer) against
the named baseline, the object-store path (learner -> driver -> Ray object store -> workers), side by side
in one run on a model of at least 100M parameters.

    python bench/sync.py [--model package:smollm2] [--workers 1] [--rounds 3] [--dtype float32]

Both paths are timed end to end as the driver sees a sync (`cogrl.rl.sync.push_weights`: transfer, load into
the HF backend, fingerprint and probe checks), interleaved round by round after one warm-up each. Bytes are
what crosses a process boundary: the object store moves the learner's state to the driver, then into the
store, then to each worker; the broadcast moves it once per worker, in the rollout dtype.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rl import _ensure_ray, _interleaved

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def sync_bench(model: str, workers: int, rounds: int, dtype: str, cache_dir: Path) -> dict[str, float]:
    import ray

    from cogrl.config import AlgorithmConfig, ModelConfig, RolloutConfig, TrainerConfig
    from cogrl.models import resolve_model
    from cogrl.rl.learner_group import LearnerGroup
    from cogrl.rl.rollout import RolloutPool
    from cogrl.rl.sync import probe_tokens, push_weights

    _ensure_ray()
    model_dir = resolve_model(ModelConfig(path=model), cache_dir=cache_dir)
    learners = LearnerGroup(
        1,
        model_dir=model_dir,
        algorithm=AlgorithmConfig(kl_coef=0.0),
        trainer=TrainerConfig(),
        max_new_tokens=8,
        seed=0,
        dtype=dtype,
        num_cpus_per_learner=0.5,
    )
    pool = RolloutPool(
        workers, "hf", model_dir, RolloutConfig(max_new_tokens=8), seed=0, dtype=dtype, cpus_per_worker=0.5
    )
    try:
        prompt, response = probe_tokens(pool)
        reference = learners.logprobs([prompt], [response])[0]
        state_bytes = sum(t.numel() * t.element_size() for t in learners.policy_state().values())
        params = sum(t.numel() for t in learners.policy_state().values())

        def timed(source_of: Callable[[], Any]) -> Callable[[], float]:
            def run() -> float:
                start = time.perf_counter()
                push_weights(pool, source_of(), reference, timeout_s=600)
                return time.perf_counter() - start

            return run

        seconds = _interleaved(
            {"object_store": timed(learners.policy_state), "broadcast": timed(lambda: learners)}, rounds
        )
    finally:
        pool.shutdown()
        learners.shutdown()
        ray.shutdown()
    return {
        "params": params,
        "object_store_s": seconds["object_store"],
        "broadcast_s": seconds["broadcast"],
        "object_store_bytes": state_bytes * (2 + workers),
        "broadcast_bytes": state_bytes * workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="package:smollm2", help="model.path (default: SmolLM2-135M)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per path (after one warm-up)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "cogrl" / "models")
    args = parser.parse_args()
    r = sync_bench(args.model, args.workers, args.rounds, args.dtype, args.cache_dir)
    print(
        f"Weight sync: {args.model} ({r['params'] / 1e6:.0f}M parameters, {args.dtype}), {args.workers} HF "
        f"worker(s), mean of {args.rounds} interleaved rounds after a warm-up\n\n"
        "| path | seconds per sync | bytes moved |\n|---|---:|---:|\n"
        f"| object store (baseline) | {r['object_store_s']:.2f} | {r['object_store_bytes'] / 1e9:.2f} GB |\n"
        f"| broadcast | {r['broadcast_s']:.2f} | {r['broadcast_bytes'] / 1e9:.2f} GB |\n\n"
        f"speed-up: **{r['object_store_s'] / r['broadcast_s']:.2f}x**, bytes: "
        f"**{r['object_store_bytes'] / r['broadcast_bytes']:.1f}x** fewer"
    )


if __name__ == "__main__":
    main()
