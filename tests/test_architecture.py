"""What docs/architecture.md promises about the code's shape, checked: layers import one way, every module
over 400 lines is named there with its reason, and a new priming condition is one registration. A new
estimator or loss: tests/rl/test_extension.py; a fifth behavior: tests/behaviors/test_catalog.py; a second
environment: tests/reasoning_gym."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "cogrl"
LAYERS = {
    # package -> the cogrl packages it must never import (a higher layer)
    "behaviors": ("rl", "priming", "experiments", "cli", "corpus"),
    "rl": ("priming", "experiments", "cli"),
    "priming": ("rl", "experiments", "cli"),
    "corpus": ("experiments", "cli"),
    "experiments": ("cli",),
}
"""envs and behaviors < rl, priming < experiments < cli. rl and priming are side by side: neither imports the
other (the RL warm-up SFT runs from experiments/training.py)."""


def imported_cogrl_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        names = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        for name in names:
            if name.startswith("cogrl."):
                found.add(name.split(".")[1])
    return found


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_import_one_way(package):
    wrong = {
        f"{path.relative_to(SRC)} imports cogrl.{other}"
        for path in (SRC / package).rglob("*.py")
        for other in imported_cogrl_packages(path) & set(LAYERS[package])
    }
    assert not wrong, sorted(wrong)


def test_every_module_over_400_lines_is_named_with_its_reason():
    table = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([\w/.]+\.py)` \| \d+ \| .+ \|$", table, flags=re.M))
    long = {
        str(path.relative_to(REPO))
        for path in [*SRC.rglob("*.py"), *(REPO / "envs").glob("*/cogrl_*/*.py")]
        if len(path.read_text(encoding="utf-8").splitlines()) > 400
    }
    assert long <= listed, f"over 400 lines without a stated reason: {sorted(long - listed)}"


@pytest.fixture
def registries():
    """Registrations made by a test are removed afterwards (the registries are module-level dicts)."""
    from cogrl.priming import conditions

    before = dict(conditions.CONDITIONS)
    yield
    conditions.CONDITIONS.clear()
    conditions.CONDITIONS.update(before)


def test_a_new_priming_condition_is_one_registration(registries):
    from cogrl.envs import make_env
    from cogrl.priming.conditions import Condition, get_condition, register
    from cogrl.priming.dataset import build_synthetic

    register(Condition("verify_only", frozenset({"verification"}), description="checks, nothing else"))
    condition = get_condition("verify_only+incorrect")
    env = make_env("countdown", {"preset": "priming", "n_train": 40, "n_test": 4})
    dataset = build_synthetic(env, condition, 8, 0, seed=0)
    assert dataset["train"].num_rows == 8
