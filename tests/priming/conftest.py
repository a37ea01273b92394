from __future__ import annotations

import pytest

from cogrl.envs import make_env


@pytest.fixture(scope="session")
def priming_env():
    """The Countdown priming distribution (numbers 1-24, targets 10-25), small."""
    env = make_env("countdown", {"preset": "priming", "n_train": 400, "n_test": 0})
    env.tasks("train")
    return env
