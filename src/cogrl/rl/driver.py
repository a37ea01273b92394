"""The RL loop. Each step reads as the algorithm:

    tasks       = a seeded slice of the environment's train split
    generations = rollout workers sample `samples_per_prompt` completions per task
    scores      = the environment scores each completion
    tags        = the regex tagger marks the four behaviors in each completion
    stats       = the learner computes advantages and updates the policy (and critic)
    sync        = the new weights are pushed to every rollout worker
    log, evaluate every k steps, checkpoint every k steps

Everything random is derived from (recipe seed, step), so a resumed run redoes exactly the steps it lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from cogrl import QUIET_ENV
from cogrl.behaviors import BehaviorTags
from cogrl.behaviors.taggers import load_tagger
from cogrl.config import TrainRecipe
from cogrl.envs import (
    BehaviorCounter,
    ClaimChecker,
    ClaimCounts,
    Environment,
    Score,
    Task,
    format_failure_reasons,
    make_env,
    tagger_hints,
)
from cogrl.files import InputError
from cogrl.rl.algorithms import ADVANTAGE_ESTIMATORS
from cogrl.rl.batch import Experience, Generation
from cogrl.rl.memory import MemoryPlan, plan_memory
from cogrl.rl.metrics import claim_metrics, evaluation_metrics, rollout_metrics
from cogrl.rl.placement import place
from cogrl.rl.runs import RunDir
from cogrl.rl.sync import SyncReport, probe_tokens, push_weights
from cogrl.tracking import Tracker


def derive_seed(seed: int, *keys: object) -> int:
    """A stable 63-bit seed for one purpose (e.g. ("rollout", step)); identical on every machine."""
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def step_tasks(tasks: Sequence[Task], step: int, per_step: int, seed: int) -> list[Task]:
    """The prompts of step `step` (1-based): consecutive slices of a fresh seeded permutation per epoch.

    A pure function of the step, so resuming at any step (mid-epoch or at an epoch boundary) samples exactly
    what the uninterrupted run sampled."""
    first = (step - 1) * per_step
    n = len(tasks)
    return [tasks[_permutation(n, seed, i // n)[i % n]] for i in range(first, first + per_step)]


@lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(derive_seed(seed, "epoch", epoch)).shuffle(order)
    return tuple(order)


def rollout_records(
    step: int,
    tasks: Sequence[Task],
    generations: Sequence[Generation],
    scores: Sequence[Score],
    tags: Sequence[BehaviorTags] | None,
    samples_per_prompt: int,
    claims: Sequence[ClaimCounts] | None = None,
) -> list[dict[str, Any]]:
    """One log line per completion: what was asked, what came back, how it scored (with the score's details,
    e.g. a second scorer's verdict), its behavior counts, and (``claims``) how many of its stated results and
    checks are true."""
    return [
        {
            "step": step,
            "task_id": tasks[g.prompt_index].id,
            "sample": i % samples_per_prompt,
            "completion": g.text,
            "response_tokens": len(g.response_ids),
            "finish_reason": g.finish_reason,
            "reward": s.reward,
            "reason": s.reason,
            "correct": s.correct,
            **s.details,
            **(tags[i].to_json() if tags else {}),
            **({"claims": claims[i].to_json()} if claims else {}),
        }
        for i, (g, s) in enumerate(zip(generations, scores, strict=True))
    ]


def to_experiences(
    generations: Sequence[Generation], scores: Sequence[Score], group_offset: int = 0
) -> list[Experience]:
    """The learner's records of scored generations; a prompt's samples share the group ``prompt_index +
    group_offset`` (an offset keeps groups of further draws apart)."""
    return [
        Experience(
            g.prompt_ids,
            g.response_ids,
            g.logprobs,
            s.reward,
            group=g.prompt_index + group_offset,
            truncated=g.finish_reason == "length",
        )
        for g, s in zip(generations, scores, strict=True)
    ]


def informative_groups(experiences: Sequence[Experience], limit: int) -> list[Experience]:
    """The experiences of the first ``limit`` groups (in order of appearance) whose rewards are not all
    equal, DAPO's dynamic-sampling filter; a group of one is never informative."""
    rewards: dict[int, set[float]] = {}
    for e in experiences:
        rewards.setdefault(e.group, set()).add(e.reward)
    chosen = set([group for group, seen in rewards.items() if len(seen) > 1][:limit])
    return [e for e in experiences if e.group in chosen]


def init_ray(recipe: TrainRecipe) -> None:
    """Join the cluster named by RAY_ADDRESS (SLURM launchers set it) or start a private local one that has a
    logical CPU for every actor of the recipe, even on a 2-core laptop. A local cluster gets a watchdog that
    kills what is left of it when this process dies, even by SIGKILL (`cogrl.rl.watchdog`)."""
    import psutil
    import ray

    from cogrl.rl import watchdog

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": QUIET_ENV}
    if address := os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, runtime_env=runtime_env)
        return
    actors = recipe.rollout.num_workers + recipe.trainer.num_learners
    before = {child.pid for child in psutil.Process().children()}
    ray.init(
        address="local",
        num_cpus=max(os.cpu_count() or 1, actors),
        include_dashboard=False,
        runtime_env=runtime_env,
    )
    watchdog.start(child.pid for child in psutil.Process().children() if child.pid not in before)


class Trainer:
    """Owns the roles of one run and steps them. Construct, then call `run()`."""

    def __init__(
        self, run: RunDir, log: Callable[[str], None] = print, model_dir: Path | None = None
    ) -> None:
        """``model_dir``: the model RL starts from (default: the recipe's ``model``). A recipe's ``warmup``
        SFT runs above RL (`cogrl.experiments.training.start_trainer`), which passes its output here."""
        from cogrl.models import resolve_model
        from cogrl.rl.learner_group import LearnerGroup
        from cogrl.rl.rollout import RolloutPool

        self.run_dir = run
        self.recipe: TrainRecipe = run.recipe
        self.log = log
        recipe = self.recipe
        self.env: Environment = make_env(recipe.env.name, recipe.env.options)
        try:
            self.train_tasks = self.env.tasks("train")
            self.test_tasks = list(self.env.tasks("test"))[: recipe.trainer.eval_problems]
        except ValueError as exc:  # e.g. a missing or malformed dataset file
            raise InputError(f"env {recipe.env.name}: {exc}") from None
        b = recipe.behaviors
        try:
            self.tagger = load_tagger(b.method, b.patterns) if b.tag_rollouts else None
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.counter = self.env if isinstance(self.env, BehaviorCounter) else None
        self.claim_checker = self.env if isinstance(self.env, ClaimChecker) else None
        if recipe.behaviors.method != "exact":
            self.counter = None
        elif self.counter is None:
            raise InputError(f"behaviors.method exact: env {recipe.env.name!r} has no exact behavior counter")

        if model_dir is None:
            if recipe.warmup is not None:
                raise ValueError(
                    "a recipe with a warmup starts through cogrl.experiments.training.start_trainer"
                )
            model_dir = resolve_model(recipe.model, self.env)
        init_ray(recipe)
        checkpoint = run.last_checkpoint()
        self.start_step = checkpoint[0] if checkpoint else 0
        t = recipe.trainer
        learner_slots, worker_slots = place(t.placement, t.num_learners, recipe.rollout.num_workers, t.device)
        self.learners = LearnerGroup(
            recipe.trainer.num_learners,
            model_dir=model_dir,
            algorithm=recipe.algorithm,
            trainer=recipe.trainer,
            max_new_tokens=recipe.rollout.max_new_tokens,
            seed=recipe.seed,
            dtype=recipe.model.dtype,
            lora=recipe.model.lora,
            slots=learner_slots,
        )
        if checkpoint:
            self.learners.load(checkpoint[1])
            log(f"resumed from {checkpoint[1]}")
        # Workers start from the policy the learner holds now: the checkpoint's, after a resume. Under LoRA
        # they start from the base and take the learner's adapter (fresh or resumed) before any generation.
        lora = recipe.model.lora
        self.pool = RolloutPool(
            recipe.rollout.num_workers,
            backend=recipe.rollout.backend,
            model_dir=checkpoint[1] if checkpoint and lora is None else model_dir,
            rollout=recipe.rollout,
            seed=recipe.seed,
            device=recipe.trainer.device,
            dtype=recipe.model.dtype,
            slots=worker_slots,
            sleep_mode=t.placement == "colocated",
            lora=lora,
        )
        if lora is not None:
            self.sync_weights()
        self.tracker = Tracker(run.root, recipe.logging, recipe.model_dump(mode="json"))

    # ------------------------------------------------------------------------------------------ phases
    def generate(self, tasks: Sequence[Task], n: int, seed: int) -> list[Generation]:
        return self.pool.generate([task.prompt for task in tasks], seed=seed, n=n)

    def score(self, tasks: Sequence[Task], generations: Sequence[Generation]) -> list[Score]:
        return [self.env.score(g.text, tasks[g.prompt_index]) for g in generations]

    def tag(self, tasks: Sequence[Task], generations: Sequence[Generation]) -> list[BehaviorTags] | None:
        if self.tagger is None:
            return None
        return [self._tag_one(g.text, tasks[g.prompt_index]) for g in generations]

    def _tag_one(self, text: str, task: Task) -> BehaviorTags:
        if self.counter is not None and (tags := self.counter.count_behaviors(text, task)) is not None:
            return tags
        return self.tagger.tag(text, **tagger_hints(self.env, task))

    def check_claims(
        self, tasks: Sequence[Task], generations: Sequence[Generation]
    ) -> list[ClaimCounts] | None:
        """True and false claims of each completion, when the environment can check them."""
        if self.claim_checker is None:
            return None
        return [self.claim_checker.check_claims(g.text, tasks[g.prompt_index]) for g in generations]

    def evaluate(self, step: int) -> dict[str, float]:
        """The paper's protocol on the test split: sampled at the training temperature, first sample scored
        for accuracy, plus avg@k/pass@k when trainer.eval_samples > 1."""
        t = self.recipe.trainer
        k = t.eval_samples
        many = self.test_tasks[: t.eval_sampled_problems or len(self.test_tasks)]
        once = self.test_tasks[len(many) :]
        seed = derive_seed(self.recipe.seed, "eval", step)
        generations = self.generate(many, n=k, seed=seed)
        if once:
            generations += [
                dataclasses.replace(g, prompt_index=g.prompt_index + len(many))
                for g in self.generate(once, n=1, seed=derive_seed(seed, "once"))
            ]
        scores = self.score(self.test_tasks, generations)
        tags = self.tag(self.test_tasks, generations)
        claims = self.check_claims(self.test_tasks, generations)
        metrics = evaluation_metrics(
            len(self.test_tasks), generations, scores, tags, claims, format_failure_reasons(self.env)
        )
        # The test responses themselves, so reports count behaviors on them (as the paper did).
        records = rollout_records(step, self.test_tasks, generations, scores, tags, k, claims)
        seen: Counter[int] = Counter()
        for record, generation in zip(records, generations, strict=True):  # k samples, then one each
            record["sample"] = seen[generation.prompt_index]
            seen[generation.prompt_index] += 1
        self.run_dir.log("eval_rollouts.jsonl", records)
        return metrics

    def sync_weights(self) -> SyncReport:
        """The learner's policy (under LoRA: its adapter) into every rollout worker, verified."""
        recipe = self.recipe
        probe_prompt, probe_response = probe_tokens(self.pool)
        reference = self.learners.logprobs([probe_prompt], [probe_response])[0]
        source = self.learners if recipe.rollout.weight_sync == "broadcast" else self.learners.policy_state()
        return push_weights(self.pool, source, reference, timeout_s=recipe.rollout.sync_timeout_s)

    # -------------------------------------------------------------------------------------------- loop
    def step(self, step: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
        recipe = self.recipe
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[f"time/{phase}"] = now - clock
            clock = now

        tasks = step_tasks(self.train_tasks, step, recipe.trainer.prompts_per_step, recipe.seed)
        generations = self.generate(
            tasks, n=recipe.rollout.samples_per_prompt, seed=derive_seed(recipe.seed, "rollout", step)
        )
        lap("generate")
        scores = self.score(tasks, generations)
        lap("score")
        tags = self.tag(tasks, generations)
        claims = self.check_claims(tasks, generations)
        lap("tag")
        experiences = to_experiences(generations, scores)
        sampling: dict[str, float] = {}
        if recipe.algorithm.dynamic_sampling_rounds:
            experiences, sampling = self.refill(step, experiences)
            lap("refill")
        colocated = recipe.trainer.placement == "colocated"
        if colocated:  # the learners train on the workers' devices: the engines free them meanwhile
            self.pool.sleep()
        stats = self.learners.update(experiences)
        if colocated:
            self.pool.wake_up()
        lap("update")
        synced = self.sync_weights()
        lap("sync")

        generated_tokens = sum(len(g.response_ids) for g in generations)
        metrics = {
            "step": step,
            **rollout_metrics(generations, scores, tags, format_failures=format_failure_reasons(self.env)),
            **claim_metrics(claims or []),
        }
        metrics.update({f"train/{key}": value for key, value in stats.items()})
        metrics.update(sampling)
        metrics.update(timings)
        metrics["sync/bytes"] = synced.bytes
        metrics["throughput/generate_tokens_per_s"] = generated_tokens / max(timings["time/generate"], 1e-9)
        records = rollout_records(
            step, tasks, generations, scores, tags, recipe.rollout.samples_per_prompt, claims
        )
        return metrics, records

    def refill(self, step: int, experiences: list[Experience]) -> tuple[list[Experience], dict[str, float]]:
        """DAPO's dynamic sampling (algorithm.dynamic_sampling_rounds): keep the informative groups, then draw
        further rounds of prompts until trainer.prompts_per_step groups are kept or the rounds run out. With
        none kept the step trains on its own batch (no policy gradient from the groups, as without dynamic
        sampling) rather than on nothing, which would leave only weight decay to act."""
        recipe = self.recipe
        want, n = recipe.trainer.prompts_per_step, recipe.rollout.samples_per_prompt
        kept = informative_groups(experiences, want)
        rounds = 0
        while len({e.group for e in kept}) < want and rounds < recipe.algorithm.dynamic_sampling_rounds:
            rounds += 1
            rng = random.Random(derive_seed(recipe.seed, "refill", step, rounds))
            draw = rng.sample(range(len(self.train_tasks)), min(want, len(self.train_tasks)))
            tasks = [self.train_tasks[i] for i in draw]
            generations = self.generate(tasks, n=n, seed=derive_seed(recipe.seed, "rollout", step, rounds))
            extra = to_experiences(generations, self.score(tasks, generations), group_offset=rounds * want)
            kept += informative_groups(extra, want - len({e.group for e in kept}))
        stats = {
            "sampling/prompts_drawn": float(want + rounds * min(want, len(self.train_tasks))),
            "sampling/groups_kept": float(len({e.group for e in kept})),
        }
        return kept or experiences, stats

    def run(self, on_step: Callable[[int], None] = lambda step: None) -> None:
        """Train from the step after the last checkpoint to trainer.steps; `on_step` reports progress."""
        recipe = self.recipe
        trainer = recipe.trainer
        try:
            if self.start_step == 0 and trainer.eval_every:
                self._log_eval(0)
            for step in range(self.start_step + 1, trainer.steps + 1):
                metrics, records = self.step(step)
                self.run_dir.log("rollouts.jsonl", records)
                self.run_dir.log("metrics.jsonl", [metrics])
                self.tracker.log(step, metrics, records)
                self.log(
                    f"step {step}/{trainer.steps}  reward {metrics['reward_mean']:.3f}  "
                    f"accuracy {metrics['accuracy']:.3f}  format {metrics['format_rate']:.2f}"
                )
                if trainer.eval_every and (step % trainer.eval_every == 0 or step == trainer.steps):
                    self._log_eval(step)
                if step % trainer.checkpoint_every == 0 or step == trainer.steps:
                    self.run_dir.save_checkpoint(step, self.learners.save, keep=trainer.keep_checkpoints)
                on_step(step)
        finally:
            self.close()

    def _log_eval(self, step: int) -> None:
        metrics = {"step": step, **self.evaluate(step)}
        self.run_dir.log("eval.jsonl", [metrics])
        self.tracker.log(step, metrics)
        self.log(f"eval @ step {step}: accuracy {metrics['eval/accuracy']:.3f}")

    def close(self) -> None:
        self.tracker.finish()
        self.pool.shutdown()
        self.learners.shutdown()
        self.run_dir.close()


def plan_fields(recipe: TrainRecipe) -> dict[str, str]:
    """The resolved plan of a run (roles, devices, batch shapes, schedule), one line of text per field."""
    r, a, t = recipe.rollout, recipe.algorithm, recipe.trainer
    batch = t.prompts_per_step * r.samples_per_prompt
    mini = a.mini_batch_size or batch
    device = "GPU" if t.device == "cuda" else "CPU"
    return {
        "run": f"{recipe.name} (seed {recipe.seed})",
        "environment": f"{recipe.env.name} {json.dumps(recipe.env.options)}",
        "model": f"{recipe.model.path or f'tiny {recipe.model.tiny.arch} built from config'} ({recipe.model.dtype})",
        "warm-up": f"{'SFT on ' + recipe.warmup.condition if recipe.warmup else 'none'}",
        "rollout": f"{r.num_workers} x {r.backend} worker(s) on {device}, temperature {r.temperature}",
        "learner": f"{t.num_learners} rank(s) on {device}; advantage {a.advantage}"
        + (" with critic" if ADVANTAGE_ESTIMATORS[a.advantage].needs_critic else "")
        + f"; {a.policy_loss} loss"
        + (f"; reference policy (KL {a.kl_coef}, {a.kl_estimator}, {'in reward' if a.kl_in_reward else 'in loss'})" if a.kl_coef else ""),
        "batch": f"{t.prompts_per_step} prompts x {r.samples_per_prompt} samples = {batch} sequences of "
        f"<= {r.max_prompt_tokens} + {r.max_new_tokens} tokens",
        "updates": f"{a.ppo_epochs} epoch(s) x {-(-batch // mini)} mini-batch(es) of {mini}, micro-batch "
        f"{a.micro_batch_size}, {-(-batch // mini) * a.ppo_epochs} optimizer step(s) per RL step",
        "schedule": f"{t.steps} steps; eval every {t.eval_every or '-'} on {t.eval_problems} problems x "
        f"{t.eval_samples}; checkpoint every {t.checkpoint_every}",
    }  # fmt: skip


def plan(recipe: TrainRecipe, memory: MemoryPlan | None = None) -> str:
    """`plan_fields` as text, then the memory plan (cogrl.rl.memory), computed from the model's config alone
    unless given: no weights are loaded."""
    fields = plan_fields(recipe)
    lines = [f"run {fields.pop('run')}"] + [f"{label:<12} {value}" for label, value in fields.items()]
    return "\n".join([*lines, (memory or plan_memory(recipe)).table()])
