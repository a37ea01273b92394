"""LoRA adapters on a Hugging Face causal LM: add them, read and write them, switch them off, merge them.

With ``model.lora`` set (`cogrl.config.LoraConfig`) every stage trains low-rank adapters (Hu et al., 2021)
on a frozen model. PEFT's `inject_adapter_in_model` adds them in place, so the model keeps its Hugging Face
class: the learner's chunked log-prob forward (`cogrl.rl.forward`), FSDP's layer list and `save_pretrained`
see the same modules as in full fine-tuning.

One name format everywhere, PEFT's file format (``base_model.model.<module>.lora_A.weight``): what the
learner sends in a weight sync, what a rollout engine loads (vLLM reads these files; the HF backend the same
tensors), and what a checkpoint holds. A checkpoint is an adapter directory (``adapter_config.json``, which
names the base model directory, ``adapter_model.safetensors``, and the tokenizer); `merged_model` turns it
into a plain model directory for evaluation, audits and later stages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from cogrl.files import InputError, atomic_path

if TYPE_CHECKING:
    from cogrl.config import LoraConfig

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
FILE_PREFIX = "base_model.model."
"""PEFT's saved names start here (the PeftModel wrapper's path to the base model's modules)."""
ADAPTER_NAME = "default"
"""PEFT's name for the one adapter; it sits in the model's own parameter names (``lora_A.default.weight``)."""
_MODULE_NAME = re.compile(rf"\.(lora_[AB])\.{ADAPTER_NAME}\.")
_FILE_NAME = re.compile(r"\.(lora_[AB])\.")


def peft_config(lora: LoraConfig, base_model: str | None = None, dropout: bool = True):
    """The `peft.LoraConfig` of `lora`; ``dropout=False`` for RL, whose updates must be deterministic."""
    import peft

    return peft.LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        target_modules=list(lora.target_modules),
        lora_dropout=lora.dropout if dropout else 0.0,
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=base_model,
    )


def add_adapters(model: nn.Module, lora: LoraConfig, dropout: bool = True) -> nn.Module:
    """Add adapters to ``model`` in place (B = 0, so the model computes what it computed before) and freeze
    every other weight. Raises ValueError when a target module does not exist in the model."""
    import peft

    try:
        model = peft.inject_adapter_in_model(peft_config(lora, dropout=dropout), model)
    except ValueError as exc:
        raise ValueError(f"model.lora.target_modules {lora.target_modules}: {exc}") from None
    for name, param in model.named_parameters():
        param.requires_grad_(".lora_" in name)
    return model


def adapter_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapter entries of a model's state dict, under PEFT's file names."""
    return {
        FILE_PREFIX + _MODULE_NAME.sub(r".\1.", name): tensor
        for name, tensor in state.items()
        if ".lora_" in name
    }


def module_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Adapter tensors under PEFT's file names -> the names of the model's own state dict (the inverse)."""
    return {
        _FILE_NAME.sub(rf".\1.{ADAPTER_NAME}.", name.removeprefix(FILE_PREFIX)): tensor
        for name, tensor in state.items()
    }


def load_adapter_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy adapter tensors (PEFT file names) into ``model``'s adapters (see `check_adapter_state`)."""
    check_adapter_state(model, state)
    with torch.no_grad():
        model.load_state_dict(module_names(state), strict=False)


def check_adapter_state(model: nn.Module, given: Mapping[str, torch.Tensor]) -> None:
    """ValueError unless ``given`` holds every adapter of ``model`` with its shape, and nothing else: a
    partial load would leave a model that is neither the old policy nor the new. (Under FSDP the parameters'
    shapes are the global ones.)"""
    expected = adapter_tensors(dict(model.named_parameters()))
    missing, unexpected = sorted(expected.keys() - given.keys()), sorted(given.keys() - expected.keys())
    if missing or unexpected:
        raise ValueError(
            f"adapter state does not fit the model's adapters: missing {missing[:3]} ({len(missing)}), "
            f"unexpected {unexpected[:3]} ({len(unexpected)})"
        )
    for name, tensor in expected.items():
        if given[name].shape != tensor.shape:
            raise ValueError(
                f"adapter tensor {name}: shape {tuple(given[name].shape)}, model has {tuple(tensor.shape)}"
            )


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    """Run ``model`` as its frozen base: the RL reference policy costs no second copy of the weights."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def save_adapter(directory: Path, state: dict[str, torch.Tensor], lora: LoraConfig, base_model: Path) -> None:
    """Write an adapter directory PEFT and vLLM load: the config (naming ``base_model``, absolute) and the
    tensors. ``directory`` is the caller's (checkpoints are written under a temporary name already)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    config = peft_config(lora, str(Path(base_model).resolve()))
    config.save_pretrained(str(directory))
    save_file({name: t.contiguous() for name, t in state.items()}, str(directory / ADAPTER_WEIGHTS))


def is_adapter_dir(path: Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def read_adapter(directory: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """An adapter directory's base model directory and tensors, with errors that name the file."""
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        base = json.loads((directory / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{directory / ADAPTER_CONFIG}: not a readable adapter config ({exc})") from None
    if not base or not (Path(base) / "config.json").is_file():
        raise InputError(
            f"{directory / ADAPTER_CONFIG}: base_model_name_or_path {base!r} is not a model directory here"
        )
    try:
        return Path(base), load_file(str(directory / ADAPTER_WEIGHTS))
    except Exception as exc:  # safetensors raises its own error types for a truncated or missing file
        raise InputError(f"{directory / ADAPTER_WEIGHTS}: {exc}") from None


def merged_model(adapter_dir: Path, cache_dir: Path) -> Path:
    """A plain model directory with the adapter of ``adapter_dir`` merged into its base (W + (alpha/r) B A),
    built once and cached under the hash of the adapter's files. The tokenizer comes from the adapter
    directory when it has one (checkpoints do), else from the base."""
    from peft import PeftModel

    from cogrl.models import load_causal_lm, load_tokenizer

    adapter_dir = Path(adapter_dir)
    base, _ = read_adapter(adapter_dir)
    digest = hashlib.sha256()
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        digest.update((adapter_dir / name).read_bytes())
    target = Path(cache_dir) / f"merged-{digest.hexdigest()[:16]}"
    if (target / "config.json").is_file():
        return target
    model = PeftModel.from_pretrained(load_causal_lm(base), str(adapter_dir)).merge_and_unload()
    has_tokenizer = (adapter_dir / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(adapter_dir if has_tokenizer else base)
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target
