"""Where the roles run: which Ray resources each learner rank and each rollout worker asks for.

- ``split``: every learner rank and every rollout worker gets a device of its own (a GPU, or a CPU slot),
  so N learners + M workers need N + M GPUs, and each side idles while the other works.
- ``colocated``: learner rank k and rollout worker k share device k (veRL's "hybrid engine", the paper's
  4-GPU layout): a Ray placement group holds one bundle per device, and the two actors each take half of it.
  The workers sleep (vLLM frees its weights and KV cache) while the learners train, and wake for the weight
  sync and the next generation (`cogrl.rl.driver`). On CPU the same schedule runs; sleeping frees nothing.

Either way the cluster is checked first: a layout Ray cannot place fails within `patience_s` with one line
saying what is missing, instead of waiting forever.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

Placement = str  # "split" | "colocated" (config.TrainerConfig.placement)


@dataclass(frozen=True)
class Slot:
    """The Ray options of one actor: its resources, and its bundle of a placement group (colocated)."""

    resources: dict[str, float]
    bundle: tuple[Any, int] | None = field(default=None, compare=False)

    def options(self) -> dict[str, Any]:
        if self.bundle is None:
            return dict(self.resources)
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        group, index = self.bundle
        strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)
        return {**self.resources, "scheduling_strategy": strategy}


def place(
    placement: Placement,
    num_learners: int,
    num_workers: int,
    device: str,
    cpus_per_actor: float = 1.0,
    patience_s: float = 60.0,
) -> tuple[list[Slot], list[Slot]]:
    """Slots of the learner ranks and of the rollout workers. ``cpus_per_actor``: the CPUs each actor
    reserves on a CPU machine (a fraction packs several actors per core, as the tests do)."""
    kind = "GPU" if device == "cuda" else "CPU"
    if placement == "split":
        unit = {"num_gpus": 1.0} if device == "cuda" else {"num_cpus": cpus_per_actor}
        wait_for_resources(kind, next(iter(unit.values())) * (num_learners + num_workers), patience_s)
        return [Slot(unit)] * num_learners, [Slot(unit)] * num_workers
    if num_learners != num_workers:
        raise ValueError(
            f"placement colocated pairs learner rank k with rollout worker k: trainer.num_learners "
            f"({num_learners}) must equal rollout.num_workers ({num_workers})"
        )
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    bundle = {"GPU": 1.0, "CPU": 2 * cpus_per_actor} if device == "cuda" else {"CPU": 2 * cpus_per_actor}
    group = placement_group([bundle] * num_learners, strategy="PACK")
    try:
        ray.get(group.ready(), timeout=patience_s)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(group)
        raise RuntimeError(
            f"placement colocated needs {num_learners} bundle(s) of {bundle} but the Ray cluster could not "
            f"provide them within {patience_s:g} s (it has {ray.cluster_resources().get(kind, 0.0):g} {kind})"
        ) from None
    half = {"num_gpus": 0.5, "num_cpus": cpus_per_actor} if device == "cuda" else {"num_cpus": cpus_per_actor}
    slots = [Slot(half, (group, k)) for k in range(num_learners)]
    return slots, list(slots)


def wait_for_resources(kind: str, need: float, patience_s: float = 60.0) -> None:
    """Fail clearly, instead of waiting forever, when Ray cannot place the actors (resources held by other
    actors are given some time to be released)."""
    import ray

    deadline = time.monotonic() + patience_s
    while (free := ray.available_resources().get(kind, 0.0)) < need:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the recipe's learners and rollout workers need {need:g} {kind} but the Ray cluster has "
                f"{free:g} free (of {ray.cluster_resources().get(kind, 0.0):g}) after {patience_s:g} s"
            )
        time.sleep(0.5)
