"""Shared fixtures of the RL tests: one Ray runtime per session, one tiny model, one vLLM pool."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

TINY_SPEC = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128, "vocab_size": 400}


@pytest.fixture(scope="session")
def ray_session():
    """A private local Ray runtime (never joins a stale cluster) shared by every test that needs Ray."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny untied Qwen2 (about 0.2M parameters) built by cogrl.models, private to this session."""
    from cogrl.config import ModelConfig
    from cogrl.models import resolve_model

    return resolve_model(ModelConfig(tiny=TINY_SPEC), cache_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The learner tests' tiny untied Qwen2 (hidden size 32), private to this session."""
    from cogrl.config import TinyModelSpec
    from cogrl.models import build_tiny_model

    spec = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=300)
    corpus = ["Using the numbers [3, 7, 12], make 24. <think> 3 * 7 = 21 </think> <answer> 12 </answer>"]
    return build_tiny_model(spec, corpus, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def vllm_pool(ray_session, tiny_model_dir):
    """One vLLM rollout worker (Ray actor) for all vLLM tests: every engine start costs about 15 s."""
    from cogrl.config import RolloutConfig
    from cogrl.rl.rollout import RolloutPool

    pool = RolloutPool(
        1, "vllm", tiny_model_dir, RolloutConfig(max_new_tokens=24, samples_per_prompt=3), seed=0
    )
    yield pool
    pool.shutdown()
