"""The tagger the RL loop runs on every rollout: the protocol any tagger meets, and how a recipe names one.

``behaviors.method`` in a train recipe picks it: ``regex`` (the span-level `RegexTagger`), ``exact`` (the
environment's own counter for its trace format, the regex tagger where it cannot count), or
``package.module:Class``, a class of your own constructed with no arguments. A tagger is anything with
``tag(text, **hints) -> BehaviorTags``; the hints are what the environment lets a tagger know of the task
(`cogrl.envs.tagger_hints`), and a tagger ignores the ones it does not use.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.behaviors.types import BehaviorTags

BUILT_IN = ("regex", "exact")
"""The methods cogrl ships; anything else is a ``module:Class`` path."""


@runtime_checkable
class Tagger(Protocol):
    def tag(self, text: str, **hints: Any) -> BehaviorTags: ...


def load_tagger(method: str, patterns: str | None = None) -> Tagger:
    """The rollout tagger of ``behaviors.method``: the regex tagger (over ``patterns``) for the built-in
    methods, else an instance of the named class, checked to be a `Tagger` (ValueError naming the method)."""
    if method in BUILT_IN:
        return RegexTagger(patterns)
    module_name, _, class_name = method.partition(":")
    try:
        tagger = getattr(importlib.import_module(module_name), class_name)()
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"behaviors.method {method!r}: cannot load the tagger ({exc})") from None
    if not isinstance(tagger, Tagger):
        raise ValueError(f"behaviors.method {method!r}: {class_name} has no tag(text, **hints) method")
    return tagger
