"""Pretraining: causal-LM training of a model on a corpus, resumable, with held-out probes at the end.

The paper's first claim is about what base models bring to RL (Gandhi et al., 2025, section 3): Qwen-2.5's
pretraining showed it the four behaviors, Llama-3.2's hardly. On a CPU the base is a tiny model, so cogrl
pretrains it here: `cogrl pretrain RECIPE --out DIR`, or a sweep's `base` stage, which builds it once under a
content address (the hash of everything that decides it) and shares it with every condition and seed. The
same loop continues pretraining any model on a text dataset (`dataset`): the paper's third intervention,
a behavior-rich or behavior-minimal corpus from `cogrl corpus build` (section 6), before the same RL.

The loop is plain PyTorch: documents (each ended by EOS) packed into `seq_len` blocks, AdamW with a
warm-up and cosine schedule, mixed precision on GPUs. Every `checkpoint_every` steps the model, optimizer,
schedule and step are saved to `<out>.work/state.pt` (atomically); a killed run started again with the same
recipe resumes there and sees exactly the blocks it would have seen. The finished model directory is written
atomically, with `pretrain.json`: the recipe, package versions, loss curve, throughput and probe accuracy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cogrl.config import PretrainConfig, PretrainRecipe, dump_recipe
from cogrl.envs import CorpusWriter, make_env
from cogrl.files import InputError, atomic_path, remove_dir_atomic
from cogrl.models import DEFAULT_CACHE_DIR, TINY_INIT_SEED, load_causal_lm, load_tokenizer, resolve_model

Log = Callable[[str], None]
METADATA_FILE = "pretrain.json"
STATE_FILE = "state.pt"


def content_address(recipe: PretrainRecipe) -> str:
    """A hash of everything that decides the pretrained model (not its name or logging): with a `dataset`,
    also its content (the fingerprint `save_to_disk` records), so a rebuilt corpus makes a new base."""
    decided = recipe.model_dump(mode="json", exclude={"name", "logging"})
    if recipe.dataset is not None:
        decided["dataset_fingerprint"] = dataset_fingerprint(recipe.dataset)
    return hashlib.sha256(f"{json.dumps(decided, sort_keys=True)}/{TINY_INIT_SEED}".encode()).hexdigest()[:16]


def dataset_fingerprint(path: str | Path) -> str | None:
    """A hash of a `save_to_disk` dataset's Arrow files (the fingerprint `datasets` records may be random);
    None while it does not exist: a sweep's plan may name a corpus that is built later."""
    if not (Path(path) / "state.json").is_file():
        return None
    digest = hashlib.sha256()
    for file in sorted(Path(path).glob("*.arrow")):
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def dataset_documents(path: str | Path) -> list[str]:
    """The `text` column of a `save_to_disk` dataset (a `cogrl corpus build` arm)."""
    import datasets

    if dataset_fingerprint(path) is None:
        raise InputError(
            f"dataset: {path} is not a saved dataset (no state.json); build it with cogrl corpus"
        )
    dataset = datasets.load_from_disk(str(path))
    if "text" not in dataset.column_names:
        raise InputError(f"dataset: {path} has no 'text' column (columns: {dataset.column_names})")
    return list(dataset["text"])


def cached_base_dir(recipe: PretrainRecipe, cache_dir: Path | None = None) -> Path:
    """Where the base of a recipe lives: built once, then shared by every sweep that asks for the same one."""
    return (cache_dir or DEFAULT_CACHE_DIR) / f"base-{content_address(recipe)}"


def pretrain(
    recipe: PretrainRecipe, out_dir: str | Path, log: Log = print, tracking_dir: Path | None = None
) -> Path:
    """Pretrain the recipe's model on its environment's corpus and write the model directory ``out_dir``.
    wandb (when the recipe's logging enables it) keeps its files in ``tracking_dir`` (default
    ``<out_dir>-wandb``: the model directory itself is written atomically at the end)."""
    import torch

    out_dir = Path(out_dir)
    env = make_env(recipe.env.name, recipe.env.options)
    generated = recipe.dataset is None
    if generated and not isinstance(env, CorpusWriter):
        raise InputError(f"env {recipe.env.name!r} cannot generate a pretraining corpus")
    corpus_options = env.CorpusOptions.model_validate(recipe.corpus) if generated else None
    model_dir = resolve_model(recipe.model, env)
    tokenizer = load_tokenizer(model_dir)
    started = time.perf_counter()
    documents = env.write_corpus(corpus_options) if generated else dataset_documents(recipe.dataset)
    blocks = pack(tokenizer, documents, recipe.pretrain.seq_len, recipe.pretrain.packing)
    n_tokens = sum(len(block) for block in blocks)
    log(
        f"pretrain: {len(documents)} documents -> {n_tokens:,} tokens in {len(blocks)} blocks of "
        f"{recipe.pretrain.seq_len} ({recipe.pretrain.packing} packing, "
        f"{n_tokens / max(1, len(blocks) * recipe.pretrain.seq_len):.0%} filled; "
        f"{time.perf_counter() - started:.1f}s)"
    )
    if not blocks:
        raise InputError(
            f"pretrain: the corpus is shorter than one block of {recipe.pretrain.seq_len} tokens"
        )

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(recipe.seed)
    model = load_causal_lm(model_dir).to(device)
    if recipe.pretrain.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    config = recipe.pretrain
    steps = max(1, math.ceil(config.epochs * len(blocks) / config.batch_size))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps, config))
    work = out_dir.with_name(out_dir.name + ".work")
    start, curve = resume_state(work, recipe, model, optimizer, schedule, log)

    from cogrl.tracking import Tracker

    tracking_dir = tracking_dir or out_dir.with_name(out_dir.name + "-wandb")
    tracker = Tracker(tracking_dir, recipe.logging, recipe.model_dump(mode="json"), job_type="pretrain")
    data = block_tensors(blocks, config.seq_len, tokenizer.pad_token_id)
    tokens_done, clock = 0, time.perf_counter()
    for step in range(start + 1, steps + 1):
        rows = batch_indices(len(blocks), step, config.batch_size, recipe.seed)
        loss = accumulate(model, {key: tensor[rows] for key, tensor in data.items()}, config, device)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        tokens_done += int(data["attention_mask"][rows].sum())
        if step % config.log_every == 0 or step == steps:
            rate = tokens_done / max(time.perf_counter() - clock, 1e-9)
            curve.append(
                {"step": step, "loss": loss.item(), "lr": schedule.get_last_lr()[0], "tokens_per_s": rate}
            )
            log(f"pretrain step {step}/{steps}  loss {loss.item():.4f}  {rate:,.0f} tokens/s")
            tracker.log(step, {f"pretrain/{key}": value for key, value in curve[-1].items() if key != "step"})
        if step % config.checkpoint_every == 0 and step < steps:
            save_state(work, recipe, model, optimizer, schedule, step, curve)

    model.eval()
    probe_sets = env.corpus_probes(corpus_options) if generated else {}
    probes = {name: {"n": len(pairs), "accuracy": probe(model, tokenizer, pairs, device) if pairs else None}
              for name, pairs in probe_sets.items()}  # fmt: skip
    for name, result in probes.items():
        if result["accuracy"] is not None:
            log(f"pretrain: probe {name}: accuracy {result['accuracy']:.3f} on {result['n']}")
    tracker.log(steps, {f"pretrain/probe_{name}": r["accuracy"] for name, r in probes.items() if r["n"]})
    tracker.finish()
    from cogrl.provenance import run_metadata

    metadata = {
        **run_metadata(recipe.seed),
        "content_address": content_address(recipe),
        "initial_model": str(model_dir),
        "dataset": recipe.dataset,
        "documents": len(documents),
        "blocks": len(blocks),
        "tokens": n_tokens,
        "steps": steps,
        "final_loss": curve[-1]["loss"] if curve else None,
        "curve": curve,
        "probes": probes,
        "seconds": time.perf_counter() - started,
    }
    with atomic_path(out_dir) as tmp:
        model.to("cpu").save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        (tmp / "config.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    if work.exists():
        remove_dir_atomic(work)
    return out_dir


def accumulate(model: Any, batch: dict[str, Any], config: PretrainConfig, device: str) -> Any:
    """Forward and backward over ``batch`` in passes of `micro_batch_size` blocks; each pass's mean loss is
    weighted by its share of the batch's predicted tokens, so the gradient (and the returned loss) equal the
    whole batch's in one pass."""
    import torch

    rows = batch["input_ids"].shape[0]
    size = config.micro_batch_size or rows
    predicted = (batch["labels"][:, 1:] != -100).sum().clamp(min=1)
    total = torch.zeros(())
    for start in range(0, rows, size):
        micro = {key: tensor[start : start + size].to(device) for key, tensor in batch.items()}
        share = (micro["labels"][:, 1:] != -100).sum().cpu() / predicted
        if share == 0:  # blocks of one token predict nothing (their mean loss is 0/0)
            continue
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(**micro).loss * share.to(device)
        loss.backward()
        total += loss.detach().cpu()
    return total


def pack(tokenizer: Any, documents: Sequence[str], seq_len: int, packing: str = "aligned") -> list[list[int]]:
    """The documents' tokens, each document followed by EOS, in blocks of at most ``seq_len`` tokens.
    `stream`: concatenated and cut into full blocks (a short tail is dropped). `aligned`: every block starts
    at a document's start; a document longer than a block is cut into blocks of its own, and the rest go
    best-fit (longest first, each into the fullest block it fits). How full the blocks get depends on the
    lengths: short documents fill them (over 95% in the tests), but on the CPU miniature's corpus, where most
    documents are longer than half a block, 77% of positions hold a token, as with first-fit in order."""
    ids = tokenizer(list(documents), add_special_tokens=False)["input_ids"]
    documents_ids = [[*document, tokenizer.eos_token_id] for document in ids]
    if packing == "stream":
        stream = [token for document in documents_ids for token in document]
        return [stream[i : i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]
    blocks: list[list[int]] = []
    pieces = []
    for document in documents_ids:
        while len(document) > seq_len:
            blocks.append(document[:seq_len])
            document = document[seq_len:]
        pieces.append(document)
    open_blocks: dict[int, list[int]] = {}  # free positions -> indices of the blocks with that much room
    for piece in sorted(pieces, key=len, reverse=True):  # stable: equal lengths keep the corpus's order
        room = next((r for r in range(len(piece), seq_len) if open_blocks.get(r)), None)
        if room is None:
            blocks.append([])
            index, room = len(blocks) - 1, seq_len
        else:
            index = open_blocks[room].pop()
        blocks[index].extend(piece)
        if room - len(piece) > 0:
            open_blocks.setdefault(room - len(piece), []).append(index)
    return blocks


def block_tensors(blocks: Sequence[list[int]], seq_len: int, pad_id: int) -> dict[str, Any]:
    """`input_ids`, `attention_mask` and `labels` of right-padded blocks: padding is neither attended to nor
    learned (the mask, not the pad id, says which positions are padding: a pad id may equal EOS)."""
    import torch

    input_ids = torch.full((len(blocks), seq_len), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(blocks), seq_len), dtype=torch.long)
    for row, block in enumerate(blocks):
        input_ids[row, : len(block)] = torch.tensor(block, dtype=torch.long)
        attention_mask[row, : len(block)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def batch_indices(n_blocks: int, step: int, batch_size: int, seed: int) -> list[int]:
    """The blocks of optimizer step ``step`` (1-based): consecutive slices of a seeded permutation per epoch,
    a pure function of the step so that a resumed run reads what the uninterrupted one would have."""
    first = (step - 1) * batch_size
    out = []
    for i in range(first, first + batch_size):
        epoch, k = divmod(i, n_blocks)
        order = list(range(n_blocks))
        random.Random(f"pretrain/{seed}/{epoch}").shuffle(order)
        out.append(order[k])
    return out


def lr_factor(step: int, steps: int, config: PretrainConfig) -> float:
    """Linear warm-up, then constant or cosine decay to 0 (the multiplier of the peak lr at ``step``)."""
    warmup = int(steps * config.warmup_ratio)
    if step < warmup:
        return (step + 1) / warmup
    if config.lr_schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def save_state(
    work: Path, recipe: PretrainRecipe, model, optimizer, schedule, step: int, curve: list
) -> None:
    import torch

    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f".{STATE_FILE}.tmp"
    torch.save(
        {
            "address": content_address(recipe),
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "curve": curve,
        },
        tmp,
    )
    os.replace(tmp, work / STATE_FILE)


def resume_state(
    work: Path, recipe: PretrainRecipe, model, optimizer, schedule, log: Log
) -> tuple[int, list]:
    """The step to continue after and the loss curve so far (0 and [] for a fresh run). A state saved for
    another recipe is refused, never mixed in."""
    import torch

    path = work / STATE_FILE
    if not path.is_file():
        return 0, []
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("address") != content_address(recipe):
        raise InputError(f"{path}: a pretraining state of another recipe; remove {work} or use another --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    log(f"pretrain: resumed at step {state['step']} from {path}")
    return state["step"], state["curve"]


def probe(
    model: Any, tokenizer: Any, probes: Sequence[tuple[str, str]], device: str, batch: int = 64
) -> float:
    """Exact-match accuracy of greedy continuations of held-out prompts (up to the first newline or EOS),
    each prompt at position 0 as an RL prompt is."""
    import torch

    correct = 0
    tokenizer.padding_side = "left"
    for i in range(0, len(probes), batch):
        chunk = probes[i : i + batch]
        inputs = tokenizer([p for p, _ in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        longest = max(len(tokenizer(e, add_special_tokens=False)["input_ids"]) for _, e in chunk)
        with torch.no_grad():
            out = model.generate(
                **inputs.to(device),
                max_new_tokens=longest + 1,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        texts = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        correct += sum(
            text.split("\n")[0] == expected for text, (_, expected) in zip(texts, chunk, strict=True)
        )
    return correct / len(probes)
