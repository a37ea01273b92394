"""The SFT step end to end: build a priming set, fine-tune a tiny model on CPU, sample from it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cogrl.config import SFTRecipe, load_recipe
from cogrl.envs import make_env
from cogrl.files import InputError
from cogrl.priming.conditions import get_condition
from cogrl.priming.dataset import build_synthetic
from cogrl.priming.sft import think_tag_in_completion, trainer_arguments

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "cpu-tiny-prime-sft.yaml"
SMALL = [
    "model.tiny.hidden_size=64",
    "model.tiny.num_layers=2",
    "model.tiny.intermediate_size=192",
    "sft.n=240",
    "sft.epochs=6",
    "sft.batch_size=8",
    "sft.lr=8e-3",
]


def test_recipe_loads_with_overrides():
    recipe = load_recipe(RECIPE, ["sft.condition=backtracking_only"], kind=SFTRecipe)
    assert recipe.sft.condition == "backtracking_only" and recipe.model.tiny is not None
    with pytest.raises(InputError, match="did you mean 'sft.epochs'"):
        load_recipe(RECIPE, ["sft.epoch=2"], kind=SFTRecipe)


PAPER_RECIPE = RECIPE.parent / "paper" / "llama3.2-3b-prime-sft.yaml"


def test_paper_recipe_sets_the_papers_optimizer_and_prompt_split(tmp_path):
    recipe = load_recipe(PAPER_RECIPE, kind=SFTRecipe)
    sft = recipe.sft
    assert (sft.epochs, sft.batch_size, sft.micro_batch_size, sft.lr, sft.max_length) == (
        5,
        64,
        8,
        1e-5,
        2048,
    )
    assert (sft.betas, sft.weight_decay, sft.grad_clip, sft.think_tag) == (
        (0.9, 0.95),
        0.01,
        1.0,
        "completion",
    )
    args = trainer_arguments(sft, tmp_path, 0, on_gpu=False, bf16=False, train_rows=1000)
    assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.max_grad_norm) == (0.9, 0.95, 0.01, 1.0)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (8, 8)
    with pytest.raises(InputError, match="must divide"):
        load_recipe(PAPER_RECIPE, ["sft.micro_batch_size=7"], kind=SFTRecipe)


def test_think_tag_moves_to_the_completion():
    env = make_env("countdown", {"preset": "priming", "n_train": 20, "n_test": 0})
    rows = build_synthetic(env, get_condition("backtracking_only"), 4, 0)["train"].select_columns(
        ["prompt", "completion"]
    )
    moved = think_tag_in_completion(rows)
    for before, after in zip(rows, moved, strict=True):
        assert after["prompt"].endswith("Let me solve this step by step.")
        assert after["completion"].startswith("\n<think>")
        assert after["prompt"] + after["completion"] == before["prompt"] + before["completion"]
    with pytest.raises(InputError, match="do not end with"):
        think_tag_in_completion(moved)


@pytest.mark.slow
def test_build_then_sft_gives_a_model_that_writes_the_format(tmp_path):
    import torch

    from cogrl.models import load_causal_lm, load_tokenizer
    from cogrl.priming.conditions import get_condition
    from cogrl.priming.dataset import build_synthetic, save_priming_set
    from cogrl.priming.sft import run_sft

    os.environ["HF_HUB_OFFLINE"] = "1"
    recipe = load_recipe(RECIPE, SMALL, kind=SFTRecipe)
    env = make_env(recipe.env.name, recipe.env.options)
    data = tmp_path / "prime"
    save_priming_set(build_synthetic(env, get_condition("no_behavior"), 240, 16, seed=0), data, {}, env)
    recipe.sft.dataset = str(data)
    out = run_sft(recipe, tmp_path / "model")

    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    meta = json.loads((out / "sft.json").read_text())
    assert meta["seed"] == 0 and meta["train_rows"] == 240 and meta["dropped_too_long"] == 0
    assert "torch" in meta["packages"] and (out / "config.yaml").is_file()

    tokenizer, model = load_tokenizer(out), load_causal_lm(out)
    tasks = list(env.tasks("test"))[:16]
    batch = tokenizer([t.prompt for t in tasks], return_tensors="pt", padding=True)

    def sample(**how) -> tuple[list[str], float]:
        torch.manual_seed(0)
        with torch.no_grad():
            ids = model.generate(**batch, max_new_tokens=200, pad_token_id=tokenizer.pad_token_id, **how)
        texts = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        rewards = [env.score(text, task).reward for text, task in zip(texts, tasks, strict=True)]
        return texts, sum(rewards) / len(rewards)

    # Greedy samples show what the model learned most surely; temperature-1 samples (the paper's) are noisier.
    greedy, greedy_reward = sample(do_sample=False)
    framed = sum("</think>" in t and "<answer>" in t and "</answer>" in t for t in greedy)
    assert framed >= len(greedy) // 2, greedy
    assert greedy_reward > 0, greedy
    sampled, sampled_reward = sample(do_sample=True, temperature=1.0)
    assert sampled_reward > 0, sampled


@pytest.mark.slow
def test_rows_over_the_max_length_are_dropped_and_counted(tmp_path):
    from cogrl.priming.sft import run_sft

    recipe = load_recipe(RECIPE, SMALL + ["sft.n=8", "sft.epochs=1", "sft.max_length=150"], kind=SFTRecipe)
    with pytest.raises(InputError, match="every training row is longer than sft.max_length=150"):
        run_sft(recipe, tmp_path / "model")
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_warmup_form_builds_the_condition_on_the_fly(tmp_path):
    """How an RL recipe's `warmup` block calls it: (model dir, SFTConfig, env, seed, out_dir)."""
    from cogrl.config import SFTConfig
    from cogrl.models import resolve_model
    from cogrl.priming.sft import run_sft

    recipe = load_recipe(RECIPE, SMALL, kind=SFTRecipe)
    env = make_env(recipe.env.name, recipe.env.options)
    model_dir = resolve_model(recipe.model, env)
    config = SFTConfig(condition="backtracking_only", n=16, epochs=1, batch_size=8, lr=1e-3, max_length=1024)
    out = run_sft(model_dir, config, env, seed=3, out_dir=tmp_path / "warmup", log=lambda m: None)
    meta = json.loads((out / "sft.json").read_text())
    assert meta["seed"] == 3 and meta["train_rows"] == 16 and meta["steps"] == 2
    assert meta["sft"]["condition"] == "backtracking_only" and meta["base_model"] == str(model_dir)
    assert (out / "model.safetensors").is_file() and not (out / "trainer").exists()


@pytest.mark.slow
def test_lora_sft_changes_only_the_targeted_layers(tmp_path):
    """`model.lora` in an SFT recipe: adapters trained, then merged; every other weight is the base's."""
    import torch

    from cogrl.models import load_causal_lm, resolve_model
    from cogrl.priming.sft import run_sft

    overrides = [
        *SMALL,
        "sft.n=16",
        "sft.epochs=1",
        "model.lora.rank=4",
        "model.lora.target_modules=[up_proj]",
    ]
    recipe = load_recipe(RECIPE, overrides, kind=SFTRecipe)
    out = run_sft(recipe, tmp_path / "model")
    base = load_causal_lm(resolve_model(recipe.model, make_env(recipe.env.name, recipe.env.options)))
    tuned = load_causal_lm(out).state_dict()
    changed = {name for name, tensor in base.state_dict().items() if not torch.equal(tensor, tuned[name])}
    assert changed and all(name.endswith("mlp.up_proj.weight") for name in changed)
    assert json.loads((out / "sft.json").read_text())["lora"]["target_modules"] == ["up_proj"]
