"""Continued pretraining on a curated corpus: `cogrl pretrain` on a text dataset, gradient accumulation, and
the sweep's `base` stage with corpus arms; end to end, the sample corpus through `cogrl corpus build` to two
matched datasets, a tiny model continued-pretrained on each, and the RL stage started from each arm's base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from corpus_helpers import SAMPLE

from cogrl import pretraining
from cogrl.config import PretrainConfig, PretrainRecipe
from cogrl.experiments.sweep import Stages, load_sweep, rl_recipe, run_sweep
from cogrl.files import InputError
from cogrl.models import load_causal_lm

REPO = Path(__file__).resolve().parents[2]
CHAR = "{hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, tokenizer: char}"


def text_dataset(path: Path, texts: list[str]) -> Path:
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(path))
    return path


def recipe(dataset: Path, **pretrain) -> PretrainRecipe:
    settings = dict(epochs=1, seq_len=64, batch_size=4, lr=3e-3, log_every=1) | pretrain
    tiny = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, tokenizer="char")
    return PretrainRecipe(
        name="t",
        model={"tiny": tiny},
        dataset=str(dataset),
        pretrain=settings,
        logging={"wandb_mode": "disabled"},
    )


def test_micro_batches_give_the_whole_batch_gradient(tokenizer_dir):
    blocks = [[5 + (i * 7 + j) % 90 for j in range(1 + (i * 13) % 30)] for i in range(6)]  # ragged blocks
    batch = pretraining.block_tensors(blocks, 32, pad_id=0)
    grads = []
    for micro in (None, 2, 1):
        model = load_causal_lm(tokenizer_dir)
        model.train()
        loss = pretraining.accumulate(model, batch, PretrainConfig(micro_batch_size=micro), "cpu")
        grads.append(
            (loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        )
    for loss, grad in grads[1:]:
        assert loss == pytest.approx(grads[0][0], rel=1e-5)
        torch.testing.assert_close(grad, grads[0][1], rtol=1e-4, atol=1e-6)


def test_pretraining_on_a_dataset_and_its_content_address(tmp_path):
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text().splitlines()]
    arm = text_dataset(tmp_path / "arm", texts[:30])
    first = recipe(arm)
    out = pretraining.pretrain(first, tmp_path / "model", log=lambda _: None)
    meta = json.loads((out / pretraining.METADATA_FILE).read_text())
    assert meta["dataset"] == str(arm) and meta["documents"] == 30 and meta["probes"] == {}
    assert meta["curve"][-1]["loss"] < meta["curve"][0]["loss"]
    address = pretraining.content_address(first)
    assert address == pretraining.content_address(recipe(arm))
    other = text_dataset(tmp_path / "other", texts[30:60])
    assert address != pretraining.content_address(recipe(other))
    text_dataset(tmp_path / "arm", texts[:29])  # the same path, rebuilt with other content
    assert address != pretraining.content_address(first)
    with pytest.raises(ValueError, match="corpus: generated-corpus options do not apply with dataset"):
        PretrainRecipe(name="t", model={"path": "m"}, dataset=str(arm), corpus={"documents": 3})
    datasets.Dataset.from_dict({"body": ["x"]}).save_to_disk(str(tmp_path / "bodies"))
    with pytest.raises(InputError, match="has no 'text' column"):
        pretraining.dataset_documents(tmp_path / "bodies")
    with pytest.raises(InputError, match="is not a saved dataset"):
        pretraining.dataset_documents(tmp_path / "missing")


def test_corpus_recipes_and_arm_conditions_validate(tmp_path):
    from cogrl.config import CorpusRecipe, load_recipe

    for path in sorted((REPO / "recipes/corpus").glob("*.yaml")):
        assert load_recipe(path, kind=CorpusRecipe).source
    sweep = load_sweep(REPO / "recipes/sweeps/paper-llama-corpus.yaml")
    assert (
        sweep.conditions == ["none@rich", "none@minimal"] and sweep.train.model.path == "models/Llama-3.2-3B"
    )
    assert sweep.base.pretrain.micro_batch_size == 4
    path = tmp_path / "s.yaml"
    for body, error in (
        ("conditions: [none@rich]\n", "names a corpus arm; set base.datasets"),
        ("conditions: [none]\nbase: {datasets: {rich: a}}\n", "every condition names its arm"),
        ("conditions: [none@x]\nbase: {datasets: {rich: a}}\n", "every condition names its arm"),
        ("conditions: [none@rich]\nbase: {datasets: {rich: a}, corpus: {documents: 3}}\n", "not both"),
    ):
        path.write_text(f"name: s\ntrain: {REPO / 'recipes/cpu-tiny-grpo.yaml'}\n{body}")
        with pytest.raises(InputError, match=error):
            load_sweep(path)


@pytest.mark.slow  # a Ray cluster and two pretraining runs
def test_sample_corpus_to_matched_arms_to_continued_pretraining_before_rl(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    built = subprocess.run(
        [sys.executable, "-c", "from cogrl.cli import main; main()", "corpus", "build",
         str(REPO / "recipes/corpus/cpu-sample.yaml"), f"source.path={SAMPLE}", "--out", str(corpus)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "RAY_ADDRESS": ""},
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    arms = {arm: datasets.load_from_disk(str(corpus / arm)) for arm in ("rich", "minimal")}
    assert len(arms["rich"]) == len(arms["minimal"]) >= 10
    tokens = {arm: sum(d["tokens"]) for arm, d in arms.items()}
    assert abs(tokens["rich"] - tokens["minimal"]) <= 0.1 * tokens["rich"]  # matched budgets
    assert sum(arms["rich"]["backtracking"]) > 0 and sum(arms["minimal"]["backtracking"]) == 0

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(
        f"name: corpus-arm\ntrain:\n  extends: {REPO / 'recipes/cpu-tiny-grpo.yaml'}\n  model: {{tiny: {CHAR}}}\n"
        "  logging: {wandb_mode: disabled}\nconditions: [none@rich, none@minimal]\n"
        f"base:\n  datasets: {{rich: {corpus / 'rich'}, minimal: {corpus / 'minimal'}}}\n"
        "  pretrain: {epochs: 2, seq_len: 128, batch_size: 4, micro_batch_size: 2, lr: 3.0e-3, log_every: 1}\n"
    )
    monkeypatch.setattr(pretraining, "DEFAULT_CACHE_DIR", tmp_path / "cache")
    started: dict[str, str] = {}

    def rl(recipe, run, log):  # the RL stage's recipe, not its run: that is tests/experiments' business
        started[run.condition] = rl_recipe(recipe, run).model.path
        (run.stage_dir("rl") / "checkpoints").mkdir(parents=True)

    result = run_sweep(load_sweep(sweep_file), tmp_path / "sweep", log=lambda _: None, stages=Stages(rl=rl))
    bases = result.base["arms"]
    assert set(bases) == {"rich", "minimal"} and bases["rich"]["dir"] != bases["minimal"]["dir"]
    for arm, base in bases.items():
        meta = json.loads((Path(base["dir"]) / pretraining.METADATA_FILE).read_text())
        assert meta["dataset"] == str(corpus / arm) and meta["documents"] == len(arms[arm])
        assert meta["curve"][-1]["loss"] < meta["curve"][0]["loss"]
        assert started[f"none@{arm}"] == base["dir"]
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert set(summary["base"]["arms"]) == {"rich", "minimal"}
