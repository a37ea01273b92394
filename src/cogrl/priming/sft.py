"""The SFT step of priming: fine-tune a model on a priming set with TRL's SFTTrainer, then hand it to RL.

As in the paper (Gandhi et al., 2025, section 5): prompt/completion rows, loss on the completion only, no chat
template (the prompt is the RL prompt as plain text), 5 epochs, batch 64, lr 1e-5 with a cosine schedule and
10% warm-up, max length 2,048 (the defaults of `SFTConfig`); the paper's AdamW settings and prompt split are
knobs (`betas`, `weight_decay`, `think_tag`; recipes/paper/llama3.2-3b-prime-sft.yaml sets them). A row longer than the max length is dropped and
counted, never truncated silently. The output is a model directory with its tokenizer that a train recipe
starts from (`model.path: <dir>`), with the resolved config, the seed and package versions beside it.
With `model.lora` the SFT trains LoRA adapters (TRL's PEFT integration, adapter dropout as configured) and
merges them into the weights before saving, so the output is a plain model directory either way.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogrl.config import LoggingConfig, LoraConfig, SFTConfig, SFTRecipe, dump_recipe
from cogrl.envs import Environment, make_env
from cogrl.files import InputError, atomic_path
from cogrl.lora import peft_config
from cogrl.models import load_causal_lm, load_tokenizer, resolve_model
from cogrl.priming.conditions import get_condition
from cogrl.priming.dataset import build_synthetic, load_priming_set
from cogrl.tracking import Tracker

if TYPE_CHECKING:
    import datasets

METADATA_FILE = "sft.json"
THINK_START = "<think>"
"""The opening think tag that `SFTConfig.think_tag: completion` moves from the prompt to the completion."""


def run_sft(
    recipe_or_model: SFTRecipe | str | Path,
    sft: SFTConfig | str | Path | None = None,
    env: Environment | None = None,
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    logging: LoggingConfig | None = None,
    lora: LoraConfig | None = None,
) -> Path:
    """Fine-tune on a priming set and return the output model directory. Two ways to call it (``logging``
    and ``lora``: wandb settings and adapters for the second; a recipe carries its own):

    run_sft(recipe, out_dir)                                       # `cogrl prime sft RECIPE.yaml`
    run_sft(model_dir, sft_config, env, seed=0, out_dir=out_dir)   # an RL recipe's `warmup` block
    """
    if isinstance(recipe_or_model, SFTRecipe):
        recipe = recipe_or_model
        out = out_dir if out_dir is not None else sft
        if out is None or isinstance(out, SFTConfig):
            raise TypeError("run_sft(recipe, out_dir): out_dir is required")
        env = make_env(recipe.env.name, recipe.env.options)
        model_dir = resolve_model(recipe.model, env)
        return fine_tune(model_dir, recipe.sft, env, recipe.seed, Path(out), log, recipe=recipe)
    if not isinstance(sft, SFTConfig) or env is None or out_dir is None:
        raise TypeError("run_sft(model_dir, sft_config, env, seed=..., out_dir=...) needs all four")
    return fine_tune(Path(recipe_or_model), sft, env, seed, Path(out_dir), log, logging=logging, lora=lora)


def priming_rows(config: SFTConfig, env: Environment, tokenizer: Any, seed: int) -> datasets.DatasetDict:
    """The saved set named by ``config.dataset``, or a synthetic one built now from ``condition`` and ``n``."""
    if config.dataset is not None:
        return load_priming_set(config.dataset)
    try:
        condition = get_condition(config.condition)
    except KeyError as exc:
        raise InputError(f"sft.condition: {exc.args[0]}") from None
    return build_synthetic(env, condition, config.n, n_val=0, seed=seed, tokenizer=tokenizer)


def think_tag_in_completion(dataset: datasets.Dataset) -> datasets.Dataset:
    """Rows whose prompt ends before the opening think tag: the tag and the whitespace before it start the
    completion instead (the paper's SFT format); prompt + completion is unchanged."""
    endings = [prompt.rstrip().endswith(THINK_START) for prompt in dataset["prompt"]]
    if not all(endings):
        raise InputError(
            f"sft.think_tag completion: {endings.count(False)} of {len(endings)} prompts do not end with "
            f"{THINK_START!r}"
        )

    def move(row: dict) -> dict:
        head = row["prompt"].rstrip()[: -len(THINK_START)].rstrip()
        return {"prompt": head, "completion": row["prompt"][len(head) :] + row["completion"]}

    return dataset.map(move)


def within_length(dataset: datasets.Dataset, tokenizer: Any, max_length: int) -> tuple[datasets.Dataset, int]:
    """Rows whose prompt + completion + EOS fit ``max_length`` tokens (as TRL tokenizes them), and how many
    were dropped."""
    eos = tokenizer.eos_token or ""
    lengths = [
        len(tokenizer(prompt + completion + eos)["input_ids"])
        for prompt, completion in zip(dataset["prompt"], dataset["completion"], strict=True)
    ]
    keep = [i for i, n in enumerate(lengths) if n <= max_length]
    return dataset.select(keep), len(lengths) - len(keep)


def fine_tune(
    model_dir: Path,
    config: SFTConfig,
    env: Environment,
    seed: int,
    out_dir: Path,
    log: Callable[[str], None] = print,
    recipe: SFTRecipe | None = None,
    logging: LoggingConfig | None = None,
    lora: LoraConfig | None = None,
) -> Path:
    import torch
    from transformers import set_seed
    from trl import SFTTrainer

    from cogrl.rl.runs import run_metadata

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    set_seed(seed)
    tokenizer = load_tokenizer(model_dir)
    tokenizer.padding_side = "right"  # training pads on the right; generation (load_tokenizer) on the left
    splits = priming_rows(config, env, tokenizer, seed)
    columns = ["prompt", "completion"]
    splits = {split: rows.select_columns(columns) for split, rows in splits.items()}
    if config.think_tag == "completion":
        splits = {split: think_tag_in_completion(rows) for split, rows in splits.items()}
    train, dropped = within_length(splits["train"], tokenizer, config.max_length)
    if dropped:
        log(
            f"sft: dropped {dropped} of {dropped + train.num_rows} training rows longer than {config.max_length} tokens"
        )
    if train.num_rows == 0:
        raise InputError(f"sft: every training row is longer than sft.max_length={config.max_length} tokens")
    validation = None
    if "validation" in splits and splits["validation"].num_rows:
        validation, _ = within_length(splits["validation"], tokenizer, config.max_length)

    on_gpu = torch.cuda.is_available()
    dtype = recipe.model.dtype if recipe is not None else ("bfloat16" if on_gpu else "float32")
    model = load_causal_lm(model_dir, dtype=dtype)
    lora = recipe.model.lora if recipe is not None else lora
    logging = recipe.logging if recipe is not None else logging or LoggingConfig(wandb_mode="disabled")
    tracker = Tracker(
        out_dir.with_name(f"{out_dir.name}-wandb"), logging, config.model_dump(mode="json"), "sft"
    )
    with atomic_path(out_dir) as tmp:
        bf16 = on_gpu and model.dtype == torch.bfloat16
        args = trainer_arguments(config, tmp / "trainer", seed, on_gpu, bf16, train.num_rows)
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=validation,
            processing_class=tokenizer,
            callbacks=[tracking_callback(tracker)],
            peft_config=None if lora is None else peft_config(lora, str(model_dir)),
        )
        result = trainer.train()
        evaluation = trainer.evaluate() if validation is not None and validation.num_rows else {}
        tracker.finish()
        if lora is None:
            trainer.save_model(str(tmp))
        else:  # W + (alpha / r) B A: a plain model directory, like full fine-tuning's
            trainer.model.merge_and_unload().save_pretrained(str(tmp))
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(tmp / "trainer", ignore_errors=True)  # TRL's scratch checkpoints
        metadata = {
            **run_metadata(seed),
            "base_model": str(model_dir),
            "sft": config.model_dump(mode="json"),
            "lora": None if lora is None else lora.model_dump(mode="json"),
            "train_rows": train.num_rows,
            "dropped_too_long": dropped,
            "train_loss": result.training_loss,
            "steps": result.global_step,
            "eval_loss": evaluation.get("eval_loss"),
        }
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        if recipe is not None:
            (tmp / "config.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    log(f"sft: {result.global_step} steps, train loss {result.training_loss:.4f} -> {out_dir}")
    return out_dir


def trainer_arguments(
    config: SFTConfig, output_dir: Path, seed: int, on_gpu: bool, bf16: bool, train_rows: int
) -> Any:
    """TRL's SFTConfig for one SFT run: every optimizer knob of ``config`` (a batch of ``batch_size`` rows
    accumulated from micro-batches), loss on the completion only, no packing, no checkpoints."""
    from trl import SFTConfig as TRLConfig

    micro = config.micro_batch_size or config.batch_size
    return TRLConfig(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=micro,
        gradient_accumulation_steps=config.batch_size // micro,
        learning_rate=config.lr,
        adam_beta1=config.betas[0],
        adam_beta2=config.betas[1],
        weight_decay=config.weight_decay,
        max_grad_norm=config.grad_clip,
        lr_scheduler_type=config.lr_schedule,
        warmup_steps=config.warmup_ratio,
        max_length=config.max_length,
        completion_only_loss=True,
        packing=False,
        seed=seed,
        data_seed=seed,
        use_cpu=not on_gpu,
        bf16=bf16,
        gradient_checkpointing=on_gpu,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=max(1, min(50, train_rows // config.batch_size)),
        report_to=[],
        disable_tqdm=True,
    )


def tracking_callback(tracker: Tracker) -> Any:
    """A transformers callback that sends the trainer's logs (loss, lr, grad norm) to cogrl's tracker as
    `sft/*`, so SFT logs to wandb like every other stage, named and grouped by the same settings."""
    from transformers import TrainerCallback

    class TrackerCallback(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
        ) -> None:
            numbers = {f"sft/{k}": v for k, v in (logs or {}).items() if isinstance(v, int | float)}
            tracker.log(state.global_step, numbers)

    return TrackerCallback()
