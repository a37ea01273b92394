"""The memory planner (cogrl.rl.memory): exact parameter counts of the paper's models from their shipped
configs, the component formulas, the refusal of a plan that cannot fit (CLI exit 2, one line, nothing
started), and the planner against what a tiny model's `Learner.update` really holds on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from clirunner import run_cli

from cogrl.cli import main
from cogrl.config import (
    ModelConfig,
    TinyModelSpec,
    TrainerConfig,
    TrainRecipe,
    read_recipe_yaml,
    validate_recipe,
)
from cogrl.files import InputError
from cogrl.models import build_tiny_model
from cogrl.rl import memory
from cogrl.rl.batch import Experience
from cogrl.rl.learner import Learner

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "recipes" / "paper"
PUBLISHED = {  # parameters as Hugging Face lists them (tied embeddings once)
    "Qwen2.5-3B": 3_085_938_688,
    "Llama-3.2-3B": 3_212_749_824,
    "Qwen2.5-0.5B": 494_032_768,
    "Qwen2.5-1.5B": 1_543_714_304,
}
ACTIVATION_MARGIN = 0.15
"""Planned activations are within 15% of the bytes autograd saves (docs/gpu.md); measured: 1-2%."""


def recipe(**blocks) -> TrainRecipe:
    return validate_recipe({"name": "t", **blocks}, TrainRecipe)


def yaml_of(path: Path) -> dict:
    """A recipe as a mapping (its `extends` resolved), to vary before validation."""
    raw = read_recipe_yaml(path)
    raw.setdefault("name", path.stem)
    return raw


REPLICATED = {
    "trainer": {
        "strategy": "ddp",
        "placement": "split",
        "gradient_checkpointing": False,
        "num_learners": 2,
    },
    "rollout": {"num_workers": 2, "gpu_memory_utilization": 0.6},
}
"""The layout the paper recipes had before FSDP and colocation: 2 replicated float32 learners on their own
GPUs, 2 vLLM workers on the others (the shipped recipes now fit 4 x 80 GB colocated)."""
REPLICATED_ARGS = [
    f"{block}.{k}={str(v).lower()}" for block, knobs in REPLICATED.items() for k, v in knobs.items()
]


def replicated(path: Path) -> dict:
    """A paper recipe as a mapping, in the old replicated split layout."""
    raw = yaml_of(path)
    for block, knobs in REPLICATED.items():
        raw[block] = {**raw.get(block, {}), **knobs}
    return raw


def paper_shape(name: str) -> memory.ModelShape:
    return memory.model_shape(memory.model_config(ModelConfig(path=f"models/{name}")))


# ---- the shipped GPU recipes fit the hardware they state ---------------------------------------------------
# RL recipes only: an SFT recipe (a top-level `sft` block, e.g. the paper's priming SFT) is checked in
# tests/priming/test_sft.py
GPU_RECIPES = sorted(
    path
    for path in [*PAPER.glob("*.yaml"), *(REPO / "recipes" / "gpu").glob("*.yaml")]
    if "sft" not in yaml_of(path)
)


@pytest.mark.parametrize("path", GPU_RECIPES, ids=[p.stem for p in GPU_RECIPES])
def test_every_shipped_gpu_recipe_fits_its_stated_hardware(path, capsys, monkeypatch):
    """`--dry-run --json` of each paper and single-GPU recipe: every GPU of its layout within
    trainer.gpu_memory_gb (the paper's runs: 4 x 80 GB colocated, the -40gb variants 4 x 40 GB)."""
    monkeypatch.setattr(sys, "argv", ["cogrl", "train", str(path), "--dry-run", "--json"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code in (0, None), capsys.readouterr().err
    plan = json.loads(capsys.readouterr().out)["memory"]
    assert plan["fits"] and plan["shortfall"] is None
    loaded = validate_recipe(yaml_of(path), TrainRecipe)
    assert plan["gpu_memory_gb"] == loaded.trainer.gpu_memory_gb
    assert len(plan["per_gpu_gb"]) == loaded.trainer.num_learners  # colocated: a learner and a worker per GPU
    assert max(plan["per_gpu_gb"].values()) <= loaded.trainer.gpu_memory_gb


# ---- configs and counts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_configs_give_the_published_parameter_counts(name):
    shape = paper_shape(name)
    assert shape.params == PUBLISHED[name]
    assert shape.backbone_params == shape.params  # tied: the LM head is the embedding, counted once
    assert shape.layers * shape.layer_params < shape.params


def test_published_sizes_of_the_paper_models():
    assert paper_shape("Qwen2.5-3B").params / 1e9 == pytest.approx(3.09, abs=0.005)
    assert paper_shape("Llama-3.2-3B").params / 1e9 == pytest.approx(3.21, abs=0.005)


def test_a_model_directory_wins_over_a_shipped_config(tmp_path):
    folder = tmp_path / "Qwen2.5-3B"  # same name as a shipped config, but a tiny model inside
    folder.mkdir()
    (folder / "config.json").write_text(
        memory.model_config(ModelConfig(tiny=TinyModelSpec())).to_json_string()
    )
    assert memory.model_shape(memory.model_config(ModelConfig(path=str(folder)))).hidden == 128


def test_a_tiny_model_is_planned_from_its_spec_without_a_tokenizer():
    spec = TinyModelSpec(hidden_size=64, num_layers=3, vocab_size=500)
    shape = memory.model_shape(memory.model_config(ModelConfig(tiny=spec)))
    assert (shape.hidden, shape.layers, shape.vocab) == (64, 3, 500)
    assert shape.params - shape.backbone_params == 64 * 500  # untied LM head


def test_no_config_is_one_clear_error():
    with pytest.raises(InputError, match=r"'models/Qwen9-7B' has no config.json .*Qwen2.5-3B"):
        memory.model_config(ModelConfig(path="models/Qwen9-7B"))


# ---- formulas ----------------------------------------------------------------------------------------------
def test_trainable_state_is_16_bytes_per_parameter_divided_by_the_shard_factor():
    p = 1_000
    full = memory.master_weights_bytes(p) + memory.gradient_bytes(p) + memory.adamw_bytes(p)
    assert full == 16 * p
    assert memory.master_weights_bytes(p, 4) + memory.gradient_bytes(p, 4) + memory.adamw_bytes(p, 4) == 4 * p


def test_checkpointing_keeps_one_hidden_state_per_layer():
    args = (4 * 1280, 36, 2048, 11008, 2)
    full, checkpointed = memory.activation_bytes(*args), memory.activation_bytes(*args, checkpointing=True)
    per_layer = (full - 4 * 1280 * 12 * 2048) / 36
    assert checkpointed == 4 * 1280 * (12 * 2048 + 36 * 4 * 2048) + per_layer
    assert full / checkpointed > 5


def test_kv_cache_of_qwen_3b():
    shape = paper_shape("Qwen2.5-3B")
    per_token = memory.kv_cache_bytes(1, shape.layers, shape.kv_heads, shape.head_dim, 2)
    assert per_token == 2 * 36 * 2 * 128 * 2


def test_logits_follow_the_chunk_size():
    paper = recipe(**yaml_of(PAPER / "qwen2.5-3b-grpo.yaml"))
    shape = paper_shape("Qwen2.5-3B")
    logits = memory.learner_components(paper, shape)["logits"]
    assert logits == 1024 * 151_936 * memory.LOGIT_BYTES  # 4 x 1024 response tokens, chunks of 1024
    paper.trainer.logits_chunk_tokens = 256
    assert memory.learner_components(paper, shape)["logits"] == logits / 4


def test_fsdp_shards_state_and_checkpointing_makes_the_paper_ppo_fit():
    base = replicated(PAPER / "qwen2.5-3b-ppo.yaml")
    ddp = memory.plan_memory(recipe(**base))
    assert not ddp.fits and ddp.worst()["role"] == "learner0"
    base["trainer"] |= {"strategy": "fsdp", "gradient_checkpointing": True}
    fsdp = memory.plan_memory(recipe(**base))
    assert fsdp.roles["learner"]["optimizer_state"] == ddp.roles["learner"]["optimizer_state"] / 2
    assert fsdp.fits, fsdp.table()


def test_colocated_gpus_hold_the_learner_state_while_the_workers_generate():
    base = replicated(PAPER / "qwen2.5-3b-ppo.yaml")
    base["trainer"] |= {"placement": "colocated", "strategy": "fsdp", "gradient_checkpointing": True}
    plan = memory.plan_memory(recipe(**base))
    assert plan.layout == {"gpu0": ["learner0", "rollout0"], "gpu1": ["learner1", "rollout1"]}
    generating = plan.resident("learner") + plan.role_total("rollout")  # the workers' 48 GB + learner state
    assert generating > plan.role_total("learner")
    assert plan.gpu_total("gpu0") == plan.reserve["gpu0"] + generating
    assert not plan.fits and plan.worst()["component"] == "rollout0 kv_cache"
    assert "try a smaller rollout.gpu_memory_utilization" in plan.worst()["message"]
    base["rollout"] |= {"gpu_memory_utilization": 0.3}
    assert memory.plan_memory(recipe(**base)).fits


def test_a_vllm_cache_that_cannot_hold_one_sequence_does_not_fit():
    base = yaml_of(PAPER / "qwen2.5-3b-grpo.yaml")
    base["trainer"] |= {"strategy": "fsdp", "gradient_checkpointing": True}
    base["rollout"] |= {"gpu_memory_utilization": 0.072}  # 5.76 GB: the weights (5.75) and 0.01 GB of cache
    plan = memory.plan_memory(recipe(**base))
    assert [p["role"] for p in plan.problems] == ["rollout0"]
    assert "less than one full sequence needs" in plan.worst()["message"]


def test_cpu_processes_share_the_host_ram():
    tiny = yaml_of(REPO / "recipes" / "cpu-tiny-grpo.yaml")
    plan = memory.plan_memory(recipe(**tiny))
    assert plan.layout == {"host": ["learner0", "rollout0"]} and plan.fits
    assert plan.gpu_total("host") == plan.role_total("learner") + plan.role_total("rollout")
    tiny["rollout"] = {**tiny.get("rollout", {}), "kv_cache_gib": plan.capacity / memory.GB}
    too_big = memory.plan_memory(recipe(**tiny))
    assert too_big.worst()["message"].startswith("plan does not fit: learner0 + rollout0 on the host needs ")
    assert too_big.worst()["component"] == "rollout0 kv_cache"


# ---- the CLI refuses what cannot fit -----------------------------------------------------------------------


def test_train_refuses_a_plan_that_does_not_fit_before_anything_starts(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    args = ["train", str(PAPER / "qwen2.5-3b-grpo.yaml"), *REPLICATED_ARGS, "trainer.gpu_memory_gb=8"]
    args += ["--out", str(run)]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("cogrl: error: plan does not fit: learner0 on gpu0 needs ")
    assert "GB of 8.0 GB, short by " in err and "largest component learner0 activations 27.188 GB" in err
    assert not run.exists()


def test_dry_run_prints_the_plan_then_refuses(capsys, monkeypatch):
    args = [
        "train",
        str(PAPER / "qwen2.5-3b-grpo.yaml"),
        *REPLICATED_ARGS,
        "trainer.gpu_memory_gb=8",
        "--dry-run",
    ]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 2
    assert "gpu0       learner0 + reserve 1.4 = " in out and "fits       no: learner0 on gpu0 short by" in out
    assert err.strip().splitlines() == [err.strip()] and "plan does not fit: learner0 on gpu0" in err


def test_dry_run_json_of_a_plan_that_fits(capsys, monkeypatch):
    overrides = [*REPLICATED_ARGS, "trainer.strategy=fsdp", "trainer.gradient_checkpointing=true"]
    args = ["train", str(PAPER / "qwen2.5-3b-ppo.yaml"), *overrides, "--dry-run", "--json"]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0
    plan = json.loads(out)
    assert plan["run"] == "paper-qwen2.5-3b-ppo (seed 0)"
    mem = plan["memory"]
    assert mem["fits"] is True and mem["shortfall"] is None and mem["gpu_memory_gb"] == 80.0
    assert mem["layout"] == {
        "gpu0": ["learner0"],
        "gpu1": ["learner1"],
        "gpu2": ["rollout0"],
        "gpu3": ["rollout1"],
    }
    assert set(mem["per_role"]["rollout"]) == {"weights", "kv_cache", "total"}
    assert mem["per_gpu_gb"]["gpu0"] == pytest.approx(mem["per_role"]["learner"]["total"] + 5.0, abs=0.01)
    assert max(mem["per_gpu_gb"].values()) <= 80


def test_resume_refuses_a_plan_that_does_not_fit_before_rewriting_the_run(tmp_path, capsys, monkeypatch):
    from cogrl.rl.runs import RunDir

    run = RunDir.create(recipe(**replicated(PAPER / "qwen2.5-3b-grpo.yaml")), tmp_path / "run")
    run.save_checkpoint(1, lambda directory: (directory / "state.txt").write_text("1"), keep=2)
    before = {name: (run.root / name).read_bytes() for name in ("config.yaml", "versions.json")}
    code, _, err = run_cli(
        ["train", "--resume", str(run.root), "trainer.gpu_memory_gb=8"], capsys, monkeypatch
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "plan does not fit: learner0 on gpu0 needs " in err
    assert {name: (run.root / name).read_bytes() for name in before} == before


def test_json_needs_dry_run(capsys, monkeypatch):
    code, _, err = run_cli(["train", str(PAPER / "qwen2.5-3b-ppo.yaml"), "--json"], capsys, monkeypatch)
    assert code == 2 and "--json goes with --dry-run" in err


# ---- against measurements on CPU ---------------------------------------------------------------------------
PROMPT, RESPONSE, MICRO_BATCH = 32, 96, 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    spec = TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, vocab_size=300)
    corpus = ["Using the numbers [3, 7, 12], make 24. <think> 3 * 7 = 21 </think> <answer> 12 </answer>"]
    return build_tiny_model(spec, corpus, tmp_path_factory.mktemp("models"))


def saved_activation_bytes(learner: Learner, batch: list[Experience]) -> int:
    """Peak over the update's training passes (a forward and its backward) of the bytes of the distinct
    non-parameter storages autograd saves. A pass ends at its backward: a save after an unpack starts the
    next one (the policy's, then the critic's)."""
    params = {p.untyped_storage().data_ptr() for p in learner.policy.parameters()}
    if learner.critic is not None:
        params |= {p.untyped_storage().data_ptr() for p in learner.critic.parameters()}
    passes: list[dict[int, int]] = [{}]
    unpacked = False

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal unpacked
        if unpacked:
            passes.append({})
            unpacked = False
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            passes[-1][storage.data_ptr()] = storage.nbytes()
        return tensor

    def unpack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal unpacked
        unpacked = True
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        learner.update(batch)
    assert len(passes) == (2 if learner.critic is not None else 1)  # one micro-batch per model
    return max(sum(saved.values()) for saved in passes)


def state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    tensors = [p for p in model.parameters()] + [p.grad for p in model.parameters() if p.grad is not None]
    tensors += [t for state in optimizer.state.values() for t in state.values() if t.dim() > 0]
    return sum(t.numel() * t.element_size() for t in tensors)


LORA = {"rank": 4, "alpha": 8.0}


@pytest.mark.parametrize(
    ("dtype", "advantage", "checkpointing", "lora"),
    [
        ("float32", "grpo", False, None),
        ("float32", "gae", False, None),
        ("bfloat16", "grpo", False, None),
        ("bfloat16", "gae", False, None),
        ("float32", "gae", True, None),
        ("float32", "gae", False, LORA),
        ("bfloat16", "gae", False, LORA),
    ],
)
def test_planner_matches_what_one_update_holds(model_dir, dtype, advantage, checkpointing, lora):
    kl = 0.001 if advantage == "gae" else 0.0
    algorithm = {
        "advantage": advantage,
        "kl_coef": kl,
        "micro_batch_size": MICRO_BATCH,
        "mini_batch_size": None,
    }
    planned = recipe(
        model={"path": str(model_dir), "dtype": dtype, "lora": lora},
        rollout={"max_prompt_tokens": PROMPT, "max_new_tokens": RESPONSE, "samples_per_prompt": 2},
        algorithm=algorithm,
        trainer={"gradient_checkpointing": checkpointing},
    )
    shape = memory.model_shape(memory.model_config(planned.model))
    parts = memory.learner_components(planned, shape)
    trainer = TrainerConfig(gradient_checkpointing=checkpointing)
    learner = Learner(
        model_dir, planned.algorithm, trainer, RESPONSE, seed=0, dtype=dtype, lora=planned.model.lora
    )
    batch = [  # every sequence at full length, so the batch is the planner's worst case
        Experience(tuple(range(10, 10 + PROMPT)), tuple(range(20, 20 + RESPONSE)), (), float(i % 2), i // 2)
        for i in range(MICRO_BATCH)
    ]
    measured = saved_activation_bytes(learner, batch)

    planned_saved = parts["activations"] + parts["compute_copy"]
    if checkpointing:  # the one layer recomputed in the backward pass is saved under checkpoint's own hooks
        tokens = MICRO_BATCH * (PROMPT + RESPONSE)
        layer = memory.activation_bytes(tokens, 1, shape.hidden, shape.intermediate, 4)
        planned_saved -= layer - tokens * 12 * shape.hidden
    assert measured == pytest.approx(planned_saved, rel=ACTIVATION_MARGIN)
    policy = (
        parts.get("frozen_base", 0) + parts["policy_weights"] + parts["gradients"] + parts["optimizer_state"]
    )
    assert state_bytes(learner.policy, learner.optimizer) == policy
    if learner.critic is not None:
        assert state_bytes(learner.critic, learner.critic_optimizer) == parts["critic"]
    if learner.reference is not None:
        reference = sum(p.numel() * p.element_size() for p in learner.reference.parameters())
        assert reference == parts["reference"]


LOGITS_PROBE = textwrap.dedent(
    """
    import sys, torch
    from torch.utils.checkpoint import checkpoint
    from cogrl.rl.forward import _head_chunk
    rows, vocab, dtype = 256, 50_000, sys.argv[1]
    hidden, weight = torch.randn(rows, 64, requires_grad=True), torch.randn(vocab, 64, requires_grad=True)
    tokens = torch.randint(0, vocab, (rows,))
    def chunk(n):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            args = (hidden[:n], tokens[:n], weight, None)
            logprobs, entropy = checkpoint(_head_chunk, *args, use_reentrant=False)
        (logprobs.sum() + entropy.sum()).backward()
    def status(key):
        return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))
    chunk(4)  # allocate the gradients
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
    before = status("VmRSS:")
    chunk(rows)
    print(status("VmHWM:") - before)
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_logits_term_matches_the_peak_of_one_chunk(dtype):
    """Peak resident memory of one LM-head chunk's forward and checkpointed backward, in a fresh process
    (measured: 28-30 bytes per [row, vocab] entry)."""
    result = subprocess.run(
        [sys.executable, "-c", LOGITS_PROBE, dtype], capture_output=True, text=True, timeout=300, check=True
    )
    measured = int(result.stdout.split()[-1])
    assert measured == pytest.approx(memory.logits_bytes(256, 50_000), rel=0.25)
