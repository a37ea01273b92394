"""Starting an RL run from a recipe: its optional SFT warm-up first (priming's SFT, a layer above RL), then
the trainer on the warm-up's output. `cogrl train` starts every run here; the RL trainer itself knows
nothing of SFT."""

from __future__ import annotations

from collections.abc import Callable

from cogrl.envs import make_env
from cogrl.models import resolve_model
from cogrl.priming.sft import run_sft
from cogrl.rl.driver import Trainer
from cogrl.rl.runs import RunDir

WARMUP_DIR = "warmup"
"""The warm-up model's folder inside the run directory (built once; a resumed run reuses it)."""


def start_trainer(run: RunDir, log: Callable[[str], None] = print) -> Trainer:
    """The trainer of ``run``, after the recipe's warm-up SFT when it has one."""
    recipe = run.recipe
    if recipe.warmup is None:
        return Trainer(run, log=log)
    out = run.root / WARMUP_DIR
    if not (out / "config.json").exists():
        env = make_env(recipe.env.name, recipe.env.options)
        log(f"warm-up SFT on {recipe.warmup.condition} ...")
        model_dir = resolve_model(recipe.model, env)
        run_sft(model_dir, recipe.warmup, env, seed=recipe.seed, out_dir=out, lora=recipe.model.lora)
    return Trainer(run, log=log, model_dir=out)
