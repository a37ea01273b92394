"""The GPU check: what a recipe's learner really uses on a CUDA device, beside what the planner promised.

    python bench/gpu_check.py                      # on a GPU machine: the default recipes, < 5 minutes
    python bench/gpu_check.py --recipes recipes/gpu/qwen2.5-0.5b-grpo.yaml --strategies fsdp
    python bench/gpu_check.py --cpu-smoke          # the same code on a tiny model on CPU (the test suite runs it)

Learner part (torch + transformers only: no vLLM, Ray or downloaded weights): for each recipe, a model of the
recipe's shape is built from its config (the shipped `recipes/paper/configs/<model>/config.json`) with random
weights, and one `Learner.update` runs per strategy on one GPU, on a batch of two micro-batches of full-length
sequences at the recipe's micro-batch size and lengths. Printed per run: measured peak memory
(`torch.cuda.max_memory_allocated`), the planner's learner figure for the same one-rank layout
(`cogrl.rl.memory`), their ratio, and training tokens/s. A single GPU holds one rank, so fsdp runs with one
rank (sharding over 1) and the plan is computed for that layout.

Rollout part: vLLM on the same random-weight model (token-id prompts, no tokenizer): generation tokens/s,
colocated sleep and wake seconds with the free memory while asleep (GPU only), and the engine side of a weight
sync (`reload_weights` from in-memory tensors). It needs vLLM and is skipped with a message where
`import vllm` fails (the device image of this project has no vLLM).

Without CUDA (and without --cpu-smoke) the script prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cogrl.config import TrainRecipe
    from cogrl.rl.batch import Experience

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPES = (
    "recipes/gpu/qwen2.5-0.5b-grpo.yaml",
    "recipes/paper/qwen2.5-3b-ppo.yaml",
    "recipes/gpu/qwen2.5-3b-lora-grpo.yaml",
)


def _free_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def one_rank(recipe: TrainRecipe, strategy: str) -> TrainRecipe:
    """The recipe as one GPU runs it: one learner rank (and one rollout worker) with `strategy`."""
    from cogrl.config import TrainRecipe

    data = recipe.model_dump()
    data["trainer"].update(num_learners=1, strategy=strategy, cpu_offload=False)
    data["rollout"]["num_workers"] = 1
    return TrainRecipe.model_validate(data)


def random_model_dir(recipe: TrainRecipe, out: Path, device: str) -> Path:
    """A model directory of the recipe's shape with random weights and a byte-level tokenizer stand-in."""
    import torch
    from transformers import AutoModelForCausalLM

    from cogrl.rl.memory import model_config

    config = model_config(recipe.model)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    return out


def batch_of(recipe: TrainRecipe, vocab: int) -> list[Experience]:
    """Two micro-batches of full-length sequences (the plan's worst case), in groups of samples_per_prompt."""
    import torch

    from cogrl.rl.batch import Experience

    r, a = recipe.rollout, recipe.algorithm
    n = 2 * a.micro_batch_size
    g = torch.Generator().manual_seed(0)
    experiences = []
    for i in range(n):
        prompt = tuple(torch.randint(10, vocab - 1, (r.max_prompt_tokens,), generator=g).tolist())
        response = tuple(torch.randint(10, vocab - 1, (r.max_new_tokens,), generator=g).tolist())
        experiences.append(Experience(prompt, response, (), float(i % 2), i // r.samples_per_prompt))
    return experiences


def check_learner(
    recipe_path: str, strategy: str, device: str, work: Path, extra: tuple[str, ...] = ()
) -> dict:
    import torch

    from cogrl.config import load_recipe
    from cogrl.rl.learner import Learner
    from cogrl.rl.memory import GB, plan_memory

    overrides = (["trainer.device=cpu"] if device == "cpu" else []) + list(extra)
    recipe = one_rank(load_recipe(ROOT / recipe_path, overrides), strategy)
    plan = plan_memory(recipe)
    model_dir = work / recipe.name
    if not (model_dir / "config.json").exists():
        random_model_dir(recipe, model_dir, device)
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    batch = batch_of(recipe, vocab)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    learner = Learner(
        model_dir,
        recipe.algorithm,
        recipe.trainer,
        recipe.rollout.max_new_tokens,
        seed=0,
        dist_url=_free_url() if strategy == "fsdp" else None,
        dtype=recipe.model.dtype,
        lora=recipe.model.lora,
    )
    start = time.perf_counter()
    stats = learner.update(batch)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / GB if device == "cuda" else None
    learner.close()
    del learner
    planned = plan.role_total("learner") / GB
    tokens = sum(len(e.prompt_ids) + len(e.response_ids) for e in batch)
    return {
        "recipe": " ".join([recipe_path, *extra]),
        "strategy": strategy,
        "peak_gb": round(peak, 2) if peak is not None else None,
        "planned_gb": round(planned, 2),
        "measured/planned": round(peak / planned, 3) if peak is not None else None,
        "tokens_per_s": round(tokens / seconds, 1),
        "pg_loss_finite": bool(torch.isfinite(torch.tensor(stats["pg_loss"]))),
    }


def check_rollout(recipe_path: str, device: str, work: Path) -> dict | str:
    """vLLM on the recipe's model (random weights, token-id prompts, no tokenizer): sleep and wake seconds
    (colocated placement; a no-op on CPU), generation tokens/s, and the engine side of a weight sync."""
    try:
        from vllm import LLM, SamplingParams, TokensPrompt
    except ImportError as exc:
        return f"rollout part skipped: vLLM is not installed here ({exc.__class__.__name__})"
    import torch
    from safetensors.torch import load_file

    from cogrl.config import load_recipe

    os.environ.setdefault(
        "VLLM_ENABLE_V1_MULTIPROCESSING", "0"
    )  # in-process engine: reload_weights in memory
    recipe = load_recipe(ROOT / recipe_path, ["trainer.device=cpu"] if device == "cpu" else [])
    r, model_dir = recipe.rollout, work / recipe.name
    sleep = device == "cuda"
    memory = (
        {"gpu_memory_utilization": r.gpu_memory_utilization} if sleep else {"kv_cache_memory_bytes": 1 << 28}
    )
    llm = LLM(
        model=str(model_dir),
        dtype=recipe.model.dtype,
        skip_tokenizer_init=True,
        enforce_eager=r.enforce_eager,
        max_model_len=r.max_prompt_tokens + r.max_new_tokens,
        enable_sleep_mode=sleep,
        **memory,
    )
    prompts = [TokensPrompt(prompt_token_ids=list(range(10, 10 + r.max_prompt_tokens)))] * 32
    params = SamplingParams(max_tokens=r.max_new_tokens, ignore_eos=True, detokenize=False)
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    generate_s = time.perf_counter() - start
    result = {
        "recipe": recipe_path,
        "generate_tokens_per_s": round(sum(len(o.outputs[0].token_ids) for o in outputs) / generate_s, 1),
    }
    if sleep:
        start = time.perf_counter()
        llm.sleep(level=2)
        result["sleep_s"] = round(time.perf_counter() - start, 3)
        result["free_gb_asleep"] = round(torch.cuda.mem_get_info()[0] / 2**30, 2)
        start = time.perf_counter()
        llm.wake_up()
        result["wake_s"] = round(time.perf_counter() - start, 3)
    weights = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        weights.update(load_file(file, device="cuda" if sleep else "cpu"))
    start = time.perf_counter()
    llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights.items())})
    result["engine_sync_s"] = round(time.perf_counter() - start, 3)
    del llm
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES))
    parser.add_argument("--strategies", nargs="+", default=["ddp", "fsdp"], choices=["ddp", "fsdp"])
    parser.add_argument("--cpu-smoke", action="store_true", help="run the learner part on CPU, tiny recipes")
    parser.add_argument("--no-rollout", action="store_true", help="skip the rollout (vLLM) part")
    parser.add_argument("--work", type=Path, default=None, help="where random-weight models are written")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    if args.cpu_smoke:
        device, recipes = (
            "cpu",
            args.recipes if args.recipes != list(DEFAULT_RECIPES) else ["recipes/cpu-tiny-ppo.yaml"],
        )
    elif torch.cuda.is_available():
        device, recipes = "cuda", args.recipes
        print(
            f"GPU: {torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
        )
    else:
        print(
            "gpu_check: no CUDA device here; nothing to measure (use --cpu-smoke to exercise the code on CPU)"
        )
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="cogrl-gpu-check-"))
    results = []
    runs = [(recipe, strategy, ()) for recipe in recipes for strategy in args.strategies]
    if args.cpu_smoke:  # the LoRA learner too (the GPU default runs it through its LoRA recipe)
        runs.append((recipes[0], "ddp", ("model.lora.rank=4",)))
    for recipe, strategy, extra in runs:
        result = check_learner(recipe, strategy, device, work, extra)
        results.append(result)
        print(json.dumps(result))
    for recipe in recipes if not args.no_rollout else []:
        result = check_rollout(recipe, device, work)
        results.append(result)
        print(json.dumps(result) if isinstance(result, dict) else result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
