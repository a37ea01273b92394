"""The learner's ranks as Ray actors (OpenRLHF style: one actor per rank), and how a batch is split among
them. `LearnerGroup` is what the driver and the weight sync talk to; each `LearnerActor` hosts one
`cogrl.rl.learner.Learner`. Rank 0 reports a rendezvous address first, so the ranks can form their process
group (gloo on CPU, NCCL on GPUs); checkpoints are written by rank 0 and read by every rank (a shared
filesystem across nodes)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cogrl.config import AlgorithmConfig, LoraConfig, TrainerConfig
from cogrl.rl.batch import Experience
from cogrl.rl.learner import Learner
from cogrl.rl.placement import Slot, place
from cogrl.rl.transfer import TensorMeta, WeightGroup, describe, weights_fingerprint


def shard_by_group(experiences: Sequence[Experience], num_shards: int) -> list[list[Experience]]:
    """Split a batch into ``num_shards`` shards of whole groups (group baselines stay on one rank) balanced
    in tokens, since a rank's time goes with its tokens: groups, longest first, each go to the shard with
    the fewest tokens so far (Graham's LPT rule). Each shard keeps batch order; shards may be empty when
    there are fewer groups than shards."""
    groups: dict[int, list[int]] = {}
    for index, experience in enumerate(experiences):
        groups.setdefault(experience.group, []).append(index)
    tokens = [0] * num_shards
    owner: dict[int, int] = {}
    for group, members in sorted(groups.items(), key=lambda g: -sum(experiences[i].length for i in g[1])):
        shard = min(range(num_shards), key=lambda k: (tokens[k], k))
        owner[group] = shard
        tokens[shard] += sum(experiences[i].length for i in members)
    return [[e for e in experiences if owner[e.group] == k] for k in range(num_shards)]


class LearnerActor:
    """The Ray actor around one `Learner`: created empty so rank 0 can report a rendezvous address first."""

    def __init__(self) -> None:
        self.learner: Learner | None = None
        self._outgoing: tuple[WeightGroup, dict[str, torch.Tensor]] | None = None

    def rendezvous_address(self) -> str:
        import ray

        with socket.socket() as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        return f"tcp://{ray.util.get_node_ip_address()}:{port}"

    def setup(self, **kwargs: Any) -> None:
        self.learner = Learner(**kwargs)

    def update(self, experiences: list[Experience]) -> dict[str, float]:
        assert self.learner is not None
        return self.learner.update(experiences)

    def policy_state(self) -> dict[str, torch.Tensor]:
        assert self.learner is not None
        return self.learner.policy_state()

    def open_weight_group(
        self, world_size: int, timeout_s: float
    ) -> tuple[str, list[TensorMeta], tuple[tuple[str, ...], float]] | None:
        """Every rank: gather the policy in the rollout dtype (fsdp: together). Rank 0 then opens the
        broadcast group's store and returns its address, the tensors' layout and their fingerprint."""
        import ray

        assert self.learner is not None
        state = self.learner.policy_state()
        if self.learner.rank != 0:
            return None
        group = WeightGroup(ray.util.get_node_ip_address(), 0, world_size, self.learner.device, timeout_s)
        self._outgoing = (group, state)
        return group.address, describe(state), weights_fingerprint(state)

    def send_weights(self, bucket_bytes: int) -> None:
        """Rank 0: broadcast what `open_weight_group` gathered (blocks until every worker has joined)."""
        assert self._outgoing is not None, "open_weight_group first"
        (group, state), self._outgoing = self._outgoing, None
        group.send(state, bucket_bytes)

    def logprobs(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[list[float]]:
        assert self.learner is not None
        return self.learner.logprobs(prompt_ids, response_ids)

    def save(self, directory: str) -> None:
        assert self.learner is not None
        self.learner.save(directory)

    def load(self, directory: str) -> None:
        assert self.learner is not None
        self.learner.load(directory)

    def close(self) -> None:
        if self.learner is not None:
            self.learner.close()


class LearnerGroup:
    """``num_learners`` data-parallel `Learner` ranks as Ray actors (starts a local Ray if none is running).

    ``slots``: each rank's Ray resources (`cogrl.rl.placement`); by default one GPU per rank, or on CPU
    ``num_cpus_per_learner`` CPUs of Ray's budget, failing clearly when the cluster lacks them.
    Checkpoints are written by rank 0 and read by every rank (a shared filesystem across nodes).
    """

    def __init__(
        self,
        num_learners: int,
        *,
        model_dir: str | Path,
        algorithm: AlgorithmConfig,
        trainer: TrainerConfig,
        max_new_tokens: int,
        seed: int,
        dtype: str = "float32",
        lora: LoraConfig | None = None,
        slots: list[Slot] | None = None,
        num_cpus_per_learner: float = 1.0,
    ) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address="local")  # never join a stale cluster; a driver that wants one inits Ray first
        if slots is None:
            slots = place("split", num_learners, 0, trainer.device, num_cpus_per_learner)[0]
        actor_class = ray.remote(LearnerActor)
        self.actors = [actor_class.options(**slot.options()).remote() for slot in slots]
        distributed = num_learners > 1 or trainer.strategy == "fsdp"
        dist_url = ray.get(self.actors[0].rendezvous_address.remote()) if distributed else None
        ray.get(
            [
                actor.setup.remote(
                    model_dir=str(model_dir),
                    algorithm=algorithm,
                    trainer=trainer,
                    max_new_tokens=max_new_tokens,
                    seed=seed,
                    rank=rank,
                    world_size=num_learners,
                    dist_url=dist_url,
                    dtype=dtype,
                    lora=lora,
                )
                for rank, actor in enumerate(self.actors)
            ]
        )

    def update(self, experiences: Sequence[Experience]) -> dict[str, float]:
        """Shard by group, update every rank, return rank 0's statistics (already summed over ranks)."""
        import ray

        shards = shard_by_group(experiences, len(self.actors))
        return ray.get(
            [actor.update.remote(shard) for actor, shard in zip(self.actors, shards, strict=True)]
        )[0]

    def policy_state(self) -> dict[str, torch.Tensor]:
        """Rank 0's full state (every rank takes part: under fsdp they gather the shards together)."""
        import ray

        return ray.get([actor.policy_state.remote() for actor in self.actors])[0]

    def logprobs(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[list[float]]:
        import ray

        return ray.get([actor.logprobs.remote(prompt_ids, response_ids) for actor in self.actors])[0]

    def open_weight_group(
        self, world_size: int, timeout_s: float
    ) -> tuple[str, list[TensorMeta], tuple[tuple[str, ...], float]]:
        """(address, layout, fingerprint) of rank 0's broadcast group for `world_size` members (rank 0
        included); see `cogrl.rl.transfer`."""
        import ray
        from ray.exceptions import GetTimeoutError

        refs = [actor.open_weight_group.remote(world_size, timeout_s) for actor in self.actors]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        if len(done) < len(refs):
            late = ", ".join(str(rank) for rank, ref in enumerate(refs) if ref not in done)
            raise GetTimeoutError(f"learner rank(s) {late} did not gather the weights within {timeout_s:g} s")
        return ray.get(refs)[0]

    def send_weights(self, bucket_bytes: int) -> Any:
        """Rank 0's broadcast, as a Ray reference (it completes once every receiver has taken part)."""
        return self.actors[0].send_weights.remote(bucket_bytes)

    def save(self, directory: str | Path) -> None:
        import ray

        ray.get([actor.save.remote(str(directory)) for actor in self.actors])

    def load(self, directory: str | Path) -> None:
        import ray

        ray.get([actor.load.remote(str(directory)) for actor in self.actors])

    def shutdown(self) -> None:
        import ray

        ray.get([actor.close.remote() for actor in self.actors])
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
