"""The memory planner: what each GPU (or, on CPU, the host) will hold, from the model's config alone, so
that a run that cannot fit is refused before anything starts (`cogrl train` exits 2 with one line).

The model is built on the meta device (`AutoModelForCausalLM.from_config`): parameters are counted exactly
(tied embeddings once) and no weight is loaded. Each component is a small pure function of counts and byte
sizes. P parameters of a model, s shard factor (num_learners under `trainer.strategy: fsdp`, else 1), c
bytes of `model.dtype` (4 or 2), h hidden size, I intermediate size, L layers, V vocabulary, T tokens of a
micro-batch = micro_batch_size x (max_prompt_tokens + max_new_tokens), or max(max_tokens_per_micro_batch,
one sequence).

Learner rank, per trainable model (the policy; for `gae` also the critic = backbone + a scalar head, trained
in its own passes after the policy's, so only one model's activations are alive at a time):
  weights 4P/s (float32 masters), gradients 4P/s, optimizer state 8P/s (AdamW's two moments); all three
  0 on the GPU with trainer.cpu_offload.
  reference (kl_coef > 0): c P / s, frozen, in the compute dtype.
  compute copy: ddp in bfloat16: c x L x layer params, autocast's casts of the weights kept for backward (one
    model's); fsdp: c x (root params + 2 layers) per model, policy, critic and reference (a root unit may stay
    gathered between passes): the gathered root unit and a layer + its prefetched next.
  activations of one micro-batch of one model (HF Llama/Qwen2, SDPA, no dropout): T x (12h + L x a) bytes, a =
    16h + c (k h + 4h + 4I) per layer and token. 16h: the two RMSNorms' float32 input and normalised x; k h:
    their outputs as the linears save them (k = 2 in float32, where q/k/v and gate/up share one input; k = 5
    under autocast, which casts it per linear); 4h: q, k, v (repeated to every head) and the attention output;
    4I: SwiGLU's gate, up, activation and product; 12h: the final norm's input and x and the response hidden
    states. Gradient checkpointing: T x (12h + 4h L + a), the float32 residual entering each layer plus one
    layer recomputed in the backward pass.
  logits: min(micro_batch x max_new_tokens, logits_chunk_tokens) x V x 30 B: cogrl.rl.forward runs the LM
    head on chunks of the flattened response tokens, and one chunk's forward and checkpointed backward keep
    7 float32 [rows, V] blocks and the bfloat16 logits alive (measured on CPU: 28-30 B per entry).
  optimizer step: 4P/s of the largest model, foreach AdamW's sqrt temporary (cuda) or ddp's flat gradient
    buffer (several ranks). It follows the backward pass: peak = the rest + max(activations + logits +
    compute copy, optimizer step).
  reserve on a GPU hosting a learner: 5% of gpu_memory_gb + 1 GB (CUDA context, NCCL, fragmentation).
  Under LoRA (model.lora, rank r on the named linears, A = r x their in + out features, summed): the frozen
    base c P / s; masters, gradients and AdamW state of A only; no reference (the base with adapters off);
    a critic of its own frozen backbone c x backbone / s with its adapters and head; activations with a
    residual stream in the compute dtype (the base is held in it: norms (8 + 2c) h, no per-linear casts)
    plus c r per adapted linear and token (lora_B's input); compute copy: autocast's casts of A only.
Rollout worker: weights c P (+ c A for a served adapter). vLLM on GPU takes gpu_memory_utilization x gpu_memory_gb in all, its context
  included; the KV cache is that minus the weights (an upper bound: vLLM also sets aside its activation peak);
  on CPU it is rollout.kv_cache_gib. A batch needs 2 x L x kv_heads x head_dim x c bytes per token in flight
  (a worker's share of a step's or an evaluation's sequences at full length); a cache that cannot hold one
  full sequence does not fit. The hf backend holds what its share needs plus the prefill logits
  (sequences x max_prompt_tokens x V x c).
Layout: `trainer.placement: split` puts each learner rank and each rollout worker on its own GPU; `colocated`
  puts learner rank k and rollout worker k on GPU k, and the workers sleep (free everything) while the
  learners train. A GPU's total = its reserve + max(its roles while training: learner peaks, awake workers;
  while generating: learners' resident state (all but the transient parts) + the workers' totals). On CPU
  all processes share the host (sleeping frees nothing there): they fit unless their sum exceeds its RAM.
GB means 2**30 bytes throughout (an "80 GB" H100 has 79.6 of them).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cogrl.config import LoraConfig, ModelConfig, TrainRecipe
from cogrl.files import InputError

GB = float(1 << 30)
SHIPPED_CONFIGS = Path(__file__).resolve().parents[3] / "recipes" / "paper" / "configs"
"""config.json of the paper's models, for planning where the weights are not on this machine."""
DTYPE_BYTES = {"float32": 4, "bfloat16": 2}
LOGIT_BYTES = 30
"""Bytes per [row, vocab] entry alive in one LM-head chunk's forward + checkpointed backward: 7 float32 blocks
(logits, softmax, their gradients and temporaries) + the bfloat16 logits; measured 28-30 on CPU."""
RESERVE_FRACTION, RESERVE_GB = 0.05, 1.0
"""Kept free on a learner's GPU for the CUDA context, NCCL buffers and allocator fragmentation."""
TRAIN_PHASE = ("activations", "logits", "compute_copy")
STEP_PHASE = ("optimizer_step",)


# ---- components: pure functions of counts and byte sizes ---------------------------------------------------
def master_weights_bytes(params: int, shard_factor: int = 1) -> float:
    return 4 * params / shard_factor


def gradient_bytes(params: int, shard_factor: int = 1) -> float:
    return 4 * params / shard_factor


def adamw_bytes(params: int, shard_factor: int = 1) -> float:
    return 8 * params / shard_factor


def frozen_weights_bytes(params: int, dtype_bytes: int, shard_factor: int = 1) -> float:
    return dtype_bytes * params / shard_factor


def activation_bytes(
    tokens: int,
    layers: int,
    hidden: int,
    intermediate: int,
    dtype_bytes: int,
    checkpointing: bool = False,
    residual_bytes: int = 4,
) -> float:
    """``residual_bytes``: of the residual stream, 4 with float32 weights (autocast then casts each linear's
    input), the compute dtype's under LoRA, whose frozen base is held in it (no casts)."""
    linear_inputs = 2 if dtype_bytes == residual_bytes else 5
    norms = (8 + 2 * residual_bytes) * hidden
    per_layer = norms + dtype_bytes * (linear_inputs * hidden + 4 * hidden + 4 * intermediate)
    kept = layers * residual_bytes * hidden + per_layer if checkpointing else layers * per_layer
    return tokens * (12 * hidden + kept)


def logits_bytes(rows: int, vocab: int, bytes_per_entry: int = LOGIT_BYTES) -> float:
    return rows * vocab * bytes_per_entry


def kv_cache_bytes(tokens: int, layers: int, kv_heads: int, head_dim: int, dtype_bytes: int) -> float:
    return 2 * layers * kv_heads * head_dim * dtype_bytes * tokens


# ---- the model's shape, from its config --------------------------------------------------------------------
@dataclass(frozen=True)
class ModelShape:
    params: int
    """Every parameter once (tied input and output embeddings are one tensor)."""
    backbone_params: int
    """Without the LM head: the critic's trunk."""
    layer_params: int
    layers: int
    hidden: int
    intermediate: int
    kv_heads: int
    head_dim: int
    vocab: int
    linears: tuple[tuple[str, int], ...] = ()
    """Per linear layer name of the decoder layers (q_proj, ...): in + out features summed over the model,
    what LoRA adapters on that name cost per unit of rank."""

    def adapter_params(self, lora: LoraConfig) -> int:
        """Parameters of rank-r adapters on the named linears: r (in + out) each (the LM head is never one)."""
        return lora.rank * sum(both for name, both in self.linears if name in lora.target_modules)

    def adapted_linears(self, lora: LoraConfig) -> int:
        """How many linears of one decoder layer carry an adapter."""
        return sum(1 for name, _ in self.linears if name in lora.target_modules)


def model_config(model: ModelConfig) -> Any:
    """The HF config of `model`: `<path>/config.json`, else a shipped config named like the path's last
    component, else the tiny spec's, else a packaged model's (read from its GGUF header)."""
    from transformers import AutoConfig

    from cogrl import models

    if model.tiny is not None:
        return models.tiny_config(model.tiny)
    assert model.path is not None
    path = Path(model.path).expanduser()
    for folder in (path, SHIPPED_CONFIGS / path.name):
        if (folder / "config.json").is_file():
            try:
                return AutoConfig.from_pretrained(str(folder))
            except (OSError, ValueError) as exc:
                raise InputError(f"{folder / 'config.json'}: not a model config ({exc})") from None
    if model.path in models.PACKAGED_MODELS:
        gguf = models.packaged_gguf(model.path)
        return AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    shipped = ", ".join(sorted(d.parent.name for d in SHIPPED_CONFIGS.glob("*/config.json"))) or "none"
    raise InputError(
        f"model.path: {model.path!r} has no config.json and no shipped config is named {path.name!r} "
        f"(in {SHIPPED_CONFIGS}: {shipped}); cannot plan memory"
    )


def model_shape(config: Any) -> ModelShape:
    """Count parameters exactly on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    text = config.get_text_config()
    decoder_layers = set(model._no_split_modules or ())
    layer = next(m for m in model.modules() if type(m).__name__ in decoder_layers)
    backbone = getattr(model, model.base_model_prefix)
    linears: dict[str, int] = {}
    for name, module in backbone.named_modules():
        if isinstance(module, torch.nn.Linear):
            leaf = name.rsplit(".", 1)[-1]
            linears[leaf] = linears.get(leaf, 0) + module.in_features + module.out_features
    return ModelShape(
        params=sum(p.numel() for p in model.parameters()),
        backbone_params=sum(p.numel() for p in backbone.parameters()),
        layer_params=sum(p.numel() for p in layer.parameters()),
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=text.intermediate_size,
        kv_heads=getattr(text, "num_key_value_heads", None) or text.num_attention_heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads,
        vocab=text.vocab_size,
        linears=tuple(sorted(linears.items())),
    )


# ---- the plan ----------------------------------------------------------------------------------------------
def learner_components(recipe: TrainRecipe, shape: ModelShape) -> dict[str, float]:
    """One learner rank's components in bytes (see the module docstring)."""
    from cogrl.rl.algorithms import ADVANTAGE_ESTIMATORS

    r, a, t = recipe.rollout, recipe.algorithm, recipe.trainer
    c = DTYPE_BYTES[recipe.model.dtype]
    s = t.num_learners if t.strategy == "fsdp" else 1
    resident = 0 if t.cpu_offload else 1
    critic = ADVANTAGE_ESTIMATORS[a.advantage].needs_critic
    lora = recipe.model.lora
    if lora is not None:
        return lora_learner_components(recipe, shape, lora, critic)
    trainable = [shape.params] + ([shape.backbone_params + shape.hidden] if critic else [])
    sequence = r.max_prompt_tokens + r.max_new_tokens
    if a.max_tokens_per_micro_batch:  # packed by padded tokens; a longer sequence goes alone
        tokens = response_tokens = max(a.max_tokens_per_micro_batch, sequence)
    else:
        tokens, response_tokens = a.micro_batch_size * sequence, a.micro_batch_size * r.max_new_tokens
    # the policy's and the critic's training passes run one after the other: one model's activations at a time
    activations = activation_bytes(
        tokens, shape.layers, shape.hidden, shape.intermediate, c, t.gradient_checkpointing
    )
    layers = shape.layers * shape.layer_params
    # a float32 buffer of the largest model's size at the step: foreach AdamW's sqrt (cuda), ddp's flat grads
    step_buffer = t.device == "cuda" or (t.strategy == "ddp" and t.num_learners > 1)
    if t.strategy == "fsdp":  # each model's gathered root unit and two layers
        roots = [p - layers for p in trainable] + ([shape.params - layers] if a.kl_coef else [])
        compute_copy = sum(frozen_weights_bytes(root + 2 * shape.layer_params, c) for root in roots)
    else:  # autocast's casts of the layers' weights, kept for backward (none in float32)
        compute_copy = frozen_weights_bytes(layers, c) if c < 4 else 0.0
    return {
        "policy_weights": resident * master_weights_bytes(shape.params, s),
        "gradients": resident * gradient_bytes(shape.params, s),
        "optimizer_state": resident * adamw_bytes(shape.params, s),
        "critic": sum(
            resident * (master_weights_bytes(p, s) + gradient_bytes(p, s) + adamw_bytes(p, s))
            for p in trainable[1:]
        ),
        "reference": frozen_weights_bytes(shape.params, c, s) if a.kl_coef > 0 else 0.0,
        "activations": activations,
        "logits": logits_bytes(min(response_tokens, t.logits_chunk_tokens), shape.vocab),
        "compute_copy": compute_copy,
        "optimizer_step": resident * 4 * max(trainable) / s if step_buffer else 0.0,
    }


def lora_learner_components(
    recipe: TrainRecipe, shape: ModelShape, lora: LoraConfig, critic: bool
) -> dict[str, float]:
    """One learner rank under LoRA: the frozen base in the compute dtype, float32 masters, gradients and AdamW
    state of the adapters only, no reference (the base with adapters off), a critic of its own frozen
    backbone, adapters and head; activations of a residual stream in the compute dtype, plus each adapted
    linear's rank-r hidden (lora_A shares its input with the frozen linear)."""
    r, a, t = recipe.rollout, recipe.algorithm, recipe.trainer
    c = DTYPE_BYTES[recipe.model.dtype]
    s = t.num_learners if t.strategy == "fsdp" else 1
    resident = 0 if t.cpu_offload else 1
    adapters = shape.adapter_params(lora)
    trainable = [adapters] + ([adapters + shape.hidden] if critic else [])
    sequence = r.max_prompt_tokens + r.max_new_tokens
    if a.max_tokens_per_micro_batch:
        tokens = response_tokens = max(a.max_tokens_per_micro_batch, sequence)
    else:
        tokens, response_tokens = a.micro_batch_size * sequence, a.micro_batch_size * r.max_new_tokens
    rank_hidden = c * lora.rank * shape.adapted_linears(lora)  # per token and layer
    kept_layers = 1 if t.gradient_checkpointing else shape.layers
    activations = (
        activation_bytes(
            tokens,
            shape.layers,
            shape.hidden,
            shape.intermediate,
            c,
            t.gradient_checkpointing,
            residual_bytes=c,
        )
        + tokens * rank_hidden * kept_layers
    )
    step_buffer = t.device == "cuda" or (t.strategy == "ddp" and t.num_learners > 1)
    layers = shape.layers * shape.layer_params
    models = [shape.params] + ([shape.backbone_params] if critic else [])
    if t.strategy == "fsdp":  # each model's gathered root unit and two layers
        compute_copy = sum(frozen_weights_bytes(m - layers + 2 * shape.layer_params, c) for m in models)
    else:  # autocast casts only the float32 adapters; the base is already in the compute dtype
        compute_copy = frozen_weights_bytes(adapters, c) if c < 4 else 0.0
    return {
        "frozen_base": frozen_weights_bytes(shape.params, c, s),
        "policy_weights": resident * master_weights_bytes(adapters, s),
        "gradients": resident * gradient_bytes(adapters, s),
        "optimizer_state": resident * adamw_bytes(adapters, s),
        "critic": sum(
            frozen_weights_bytes(shape.backbone_params, c, s)
            + resident * (master_weights_bytes(p, s) + gradient_bytes(p, s) + adamw_bytes(p, s))
            for p in trainable[1:]
        ),
        "reference": 0.0,
        "activations": activations,
        "logits": logits_bytes(min(response_tokens, t.logits_chunk_tokens), shape.vocab),
        "compute_copy": compute_copy,
        "optimizer_step": resident * 4 * max(trainable) / s if step_buffer else 0.0,
    }


def rollout_components(recipe: TrainRecipe, shape: ModelShape) -> tuple[dict[str, float], float, float]:
    """One rollout worker's components, the KV cache its share of a batch needs, and one sequence's."""
    r, t = recipe.rollout, recipe.trainer
    c = DTYPE_BYTES[recipe.model.dtype]
    sequence = r.max_prompt_tokens + r.max_new_tokens
    share = -(
        -max(t.prompts_per_step * r.samples_per_prompt, t.eval_problems * t.eval_samples) // r.num_workers
    )
    needed, one = (
        kv_cache_bytes(n, shape.layers, shape.kv_heads, shape.head_dim, c)
        for n in (share * sequence, sequence)
    )
    weights = frozen_weights_bytes(shape.params, c)
    if recipe.model.lora is not None:  # the served adapter, sized for vLLM's max_lora_rank
        weights += frozen_weights_bytes(shape.adapter_params(recipe.model.lora), c)
    if r.backend == "hf":  # generates its whole share at once
        prefill = logits_bytes(share * r.max_prompt_tokens, shape.vocab, bytes_per_entry=c)
        return {"weights": weights, "kv_cache": needed, "prefill_logits": prefill}, needed, one
    if t.device == "cuda":  # vLLM takes its fraction of the GPU, weights included
        budget = r.gpu_memory_utilization * t.gpu_memory_gb * GB
        return {"weights": weights, "kv_cache": max(budget - weights, 0.0)}, needed, one
    return {"weights": weights, "kv_cache": r.kv_cache_gib * GB}, needed, one


@dataclass
class MemoryPlan:
    """Bytes per role (one learner rank, one rollout worker) and per GPU, or per host on CPU."""

    device: str
    capacity: float
    """Bytes of one GPU (trainer.gpu_memory_gb) or, on CPU, of the machine's RAM."""
    roles: dict[str, dict[str, float]]
    layout: dict[str, list[str]]
    """GPU label (or "host") -> the role instances it hosts, e.g. {"gpu0": ["learner0"]}."""
    reserve: dict[str, float]
    kv_needed: float
    workers_sleep: bool = False
    """Colocated on GPUs: the rollout workers free their memory while the learners train."""
    problems: list[dict[str, Any]] = field(default_factory=list)
    """What does not fit: where, which role, its largest component, the shortfall in bytes, one line."""

    def resident(self, role: str) -> float:
        """Bytes a role holds between its busy phases (a learner's state while the workers generate)."""
        return sum(v for k, v in self.roles[role].items() if k not in TRAIN_PHASE + STEP_PHASE)

    def role_total(self, role: str) -> float:
        """Peak bytes of a role: its resident parts plus the larger of its two transient phases."""
        parts = self.roles[role]
        busy = max(sum(parts.get(k, 0.0) for k in phase) for phase in (TRAIN_PHASE, STEP_PHASE))
        return self.resident(role) + busy

    def gpu_total(self, gpu: str) -> float:
        """Peak bytes of a GPU: its reserve plus the larger of its roles' sums while the learners train and
        while the workers generate (a learner then holds its resident state; a sleeping worker nothing)."""
        roles = [_role(instance) for instance in self.layout[gpu]]
        training = sum(self.role_total(r) for r in roles if r == "learner" or not self.workers_sleep)
        generating = sum(self.resident(r) if r == "learner" else self.role_total(r) for r in roles)
        return self.reserve.get(gpu, 0.0) + max(training, generating)

    @property
    def fits(self) -> bool:
        return not self.problems

    def worst(self) -> dict[str, Any] | None:
        return max(self.problems, key=lambda p: p["shortfall"], default=None)

    def check(self) -> None:
        """Refuse a plan that does not fit: an InputError naming the worst shortfall (one line)."""
        if (worst := self.worst()) is not None:
            raise InputError(worst["message"])

    def to_json(self) -> dict[str, Any]:
        worst = self.worst()
        return {
            "device": self.device,
            "gpu_memory_gb" if self.device == "cuda" else "host_memory_gb": _gb(self.capacity),
            "per_gpu_gb": {gpu: _gb(self.gpu_total(gpu)) for gpu in self.layout},
            "layout": self.layout,
            "per_role": {
                role: {**{k: _gb(v) for k, v in parts.items()}, "total": _gb(self.role_total(role))}
                for role, parts in self.roles.items()
            },
            "reserve_gb": {gpu: _gb(v) for gpu, v in self.reserve.items()},
            "kv_cache_needed_gb": _gb(self.kv_needed),
            "fits": self.fits,
            "shortfall": worst and {**worst, "shortfall": _gb(worst["shortfall"])},
        }

    def table(self) -> str:
        """Text lines for `cogrl train --dry-run`."""
        where = "per GPU" if self.device == "cuda" else "host RAM"
        lines = [f"memory       GB = 2^30 bytes; {where} {_gb(self.capacity)}"]
        for role, parts in self.roles.items():
            text = ", ".join(f"{k.replace('_', ' ')} {_gb(v)}" for k, v in parts.items() if v)
            head = f"  {role:<10} peak {_gb(self.role_total(role))}: "
            lines.append(textwrap.fill(text, 110, initial_indent=head, subsequent_indent=" " * 13))
        waves = " (vLLM runs it in waves)" if self.kv_needed > self.roles["rollout"]["kv_cache"] else ""
        lines.append(
            f"  {'':<10} the rollout batch needs {_gb(self.kv_needed)} of KV cache per worker{waves}"
        )
        for gpu, hosted in self.layout.items():
            reserve = f" + reserve {_gb(self.reserve[gpu])}" if gpu in self.reserve else ""
            lines.append(f"  {gpu:<10} {' + '.join(hosted)}{reserve} = {_gb(self.gpu_total(gpu))}")
        short = [f"{p['role']} on {p['gpu']} short by {_gb(p['shortfall'])}" for p in self.problems]
        lines.append(f"  {'fits':<10} {'no: ' + '; '.join(short) if short else 'yes'}")
        return "\n".join(lines)


def plan_memory(recipe: TrainRecipe, shape: ModelShape | None = None) -> MemoryPlan:
    """The memory plan of `recipe` (the model's shape from its config, unless given)."""
    t, r = recipe.trainer, recipe.rollout
    shape = shape or model_shape(model_config(recipe.model))
    rollout, kv_needed, kv_one = rollout_components(recipe, shape)
    roles = {"learner": learner_components(recipe, shape), "rollout": rollout}
    ranks = [f"learner{i}" for i in range(t.num_learners)]
    workers = [f"rollout{i}" for i in range(r.num_workers)]
    if t.device == "cpu":
        capacity = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        layout, reserve = {"host": ranks + workers}, {}
    else:
        capacity = t.gpu_memory_gb * GB
        if t.placement == "colocated":  # learner rank k and rollout worker k share GPU k
            layout = {
                f"gpu{k}": [rank, worker] for k, (rank, worker) in enumerate(zip(ranks, workers, strict=True))
            }
        else:
            layout = {f"gpu{k}": [instance] for k, instance in enumerate(ranks + workers)}
        learner_gpus = [gpu for gpu, hosted in layout.items() if any(_role(i) == "learner" for i in hosted)]
        reserve = dict.fromkeys(learner_gpus, RESERVE_FRACTION * capacity + RESERVE_GB * GB)
    sleep = t.device == "cuda" and t.placement == "colocated"
    plan = MemoryPlan(t.device, capacity, roles, layout, reserve, kv_needed, workers_sleep=sleep)
    for gpu, hosted in layout.items():
        if (total := plan.gpu_total(gpu)) > capacity:
            size, instance, component = max((v, i, k) for i in hosted for k, v in roles[_role(i)].items())
            why = f"needs {_gb(total)} GB of {_gb(capacity)} GB"
            problem = (gpu, " + ".join(hosted), f"{instance} {component}", size, total - capacity, why)
            _refuse(plan, *problem, REMEDIES[_role(instance)])
    if r.backend == "vllm":  # vLLM refuses to start when its cache cannot hold one full sequence
        gpu = next(gpu for gpu, hosted in layout.items() if "rollout0" in hosted)
        room = rollout["kv_cache"]
        if t.device == "cuda":
            room = r.gpu_memory_utilization * capacity - rollout["weights"]
        if room < kv_one:
            why = f"has {_gb(room)} GB of KV cache, less than one full sequence needs ({_gb(kv_one)} GB)"
            remedy = "a larger rollout.gpu_memory_utilization or rollout.kv_cache_gib"
            _refuse(plan, gpu, "rollout0", "rollout0 weights", rollout["weights"], kv_one - room, why, remedy)
    return plan


REMEDIES = {
    "learner": "trainer.strategy=fsdp, trainer.gradient_checkpointing=true or a smaller micro-batch",
    "rollout": "a smaller rollout.gpu_memory_utilization or rollout.kv_cache_gib",
}


def _refuse(
    plan: MemoryPlan, gpu: str, who: str, largest: str, size: float, shortfall: float, why: str, remedy: str
) -> None:
    """Record a problem: `who` (what `gpu` hosts) is short by `shortfall` bytes; `largest` is its largest
    component."""
    where = "the host" if gpu == "host" else gpu
    plan.problems.append(
        {
            "gpu": gpu,
            "role": who,
            "component": largest,
            "shortfall": shortfall,
            "message": f"plan does not fit: {who} on {where} {why}, short by {_gb(shortfall)} GB; largest "
            f"component {largest} {_gb(size)} GB (try {remedy}; see docs/gpu.md)",
        }
    )


def _role(instance: str) -> str:
    return instance.rstrip("0123456789")


def _gb(value: float) -> float:
    return round(value / GB, 3)
