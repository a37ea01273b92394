"""The rollout tagger a recipe names (`behaviors.method`): built-in, or a class of one's own by path."""

from __future__ import annotations

import pytest

from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.behaviors.taggers import Tagger, load_tagger
from cogrl.config import BehaviorTaggingConfig


def test_built_in_methods_give_the_regex_tagger():
    assert isinstance(load_tagger("regex"), RegexTagger)
    assert isinstance(load_tagger("exact"), RegexTagger)  # the fallback where the env's counter cannot count


def test_a_tagger_of_ones_own_is_loaded_by_path():
    tagger = load_tagger("plugins.line_tagger:LineTagger")
    assert isinstance(tagger, Tagger)
    assert (
        tagger.tag("Check: 3 + 4 = 7\nok\n  Check again", numbers=[3, 4], target=7).counts["verification"]
        == 2
    )


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("plugins.line_tagger:Missing", "cannot load the tagger"),
        ("no_such_module:Tagger", "cannot load the tagger"),
        ("plugins.line_tagger:NotATagger", "has no tag"),
    ],
)
def test_a_bad_tagger_path_is_one_clear_error(method, message):
    with pytest.raises(ValueError, match=message):
        load_tagger(method)


def test_the_recipe_refuses_a_method_that_is_neither_built_in_nor_a_path():
    with pytest.raises(ValueError, match="regex, exact, or a tagger class"):
        BehaviorTaggingConfig(method="judge")
    assert BehaviorTaggingConfig(method="pkg.mod:Cls").method == "pkg.mod:Cls"
