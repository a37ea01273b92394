"""The one config system: YAML recipes, dotted overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cogrl.config import (
    PretrainRecipe,
    SFTRecipe,
    TrainRecipe,
    apply_override,
    dump_recipe,
    load_recipe,
    validate_recipe,
)
from cogrl.files import InputError

RECIPES = sorted(  # sweeps (recipes/sweeps/) and corpora (recipes/corpus/) have their own tests
    p
    for p in Path(__file__).resolve().parents[1].glob("recipes/**/*.yaml")
    if "sweeps" not in p.parts and "corpus" not in p.parts
)

MINIMAL = """
name: t
model: {path: /tmp/model}
trainer: {steps: 3}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_minimal_recipe_gets_documented_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL))
    assert recipe.trainer.steps == 3
    assert recipe.algorithm.kl_coef == 0.001  # the paper's value is the default
    assert recipe.rollout.samples_per_prompt == 4


def test_dotted_overrides_parse_yaml_values(tmp_path):
    recipe = load_recipe(
        write(tmp_path, MINIMAL),
        [
            "trainer.lr=1e-5",
            "algorithm.kl_in_reward=false",
            "rollout.backend=hf",
            "algorithm.mini_batch_size=null",
        ],
    )
    assert recipe.trainer.lr == 1e-5
    assert recipe.algorithm.kl_in_reward is False
    assert recipe.rollout.backend == "hf"


def test_unknown_key_names_it_and_suggests(tmp_path):
    with pytest.raises(InputError) as err:
        load_recipe(write(tmp_path, MINIMAL), ["trainer.lrr=1e-6"])
    message = str(err.value)
    assert "unknown key 'trainer.lrr'" in message
    assert "did you mean 'trainer.lr'" in message
    assert "recipe.yaml" in message


def test_unknown_top_level_key_suggests(tmp_path):
    with pytest.raises(InputError, match="did you mean 'algorithm'"):
        load_recipe(write(tmp_path, MINIMAL + "algoritm: {}\n"))


def test_bad_value_names_the_field(tmp_path):
    with pytest.raises(InputError, match=r"trainer\.steps"):
        load_recipe(write(tmp_path, MINIMAL), ["trainer.steps=-1"])


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(InputError, match=r"recipe\.yaml:3"):
        load_recipe(write(tmp_path, "name: t\nmodel: {path: m}\n  - bad indent\n"))


def test_override_syntax_errors():
    with pytest.raises(InputError, match="dotted.key=value"):
        apply_override({}, "trainer.lr")
    with pytest.raises(InputError, match="not a mapping"):
        apply_override({"trainer": 3}, "trainer.lr=1")


def test_model_needs_exactly_one_source():
    with pytest.raises(InputError, match="exactly one of model.path and model.tiny"):
        validate_recipe({"name": "t", "model": {}}, TrainRecipe)


def test_group_estimators_need_groups():
    with pytest.raises(InputError, match="samples_per_prompt >= 2"):
        validate_recipe(
            {"name": "t", "model": {"path": "m"}, "rollout": {"samples_per_prompt": 1}}, TrainRecipe
        )


def test_dump_round_trips(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL), ["algorithm.advantage=gae"])
    again = write(tmp_path, dump_recipe(recipe))
    assert load_recipe(again) == recipe


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_recipe_validates(path):
    kind = (
        SFTRecipe if "sft" in path.stem else PretrainRecipe if path.parent.name == "pretrain" else TrainRecipe
    )
    load_recipe(path, kind=kind)


def test_extends_deep_merges_a_base_recipe(tmp_path):
    (tmp_path / "base.yaml").write_text(MINIMAL + "algorithm: {advantage: gae, kl_coef: 0.001}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\nalgorithm: {advantage: grpo}\n")
    recipe = load_recipe(child)
    assert (recipe.name, recipe.algorithm.advantage, recipe.algorithm.kl_coef) == ("child", "grpo", 0.001)
    assert recipe.trainer.steps == 3


def test_extends_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(InputError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")
