"""Tagging cognitive behaviors in reasoning traces: the catalog, regex tagger, LLM judge, hybrid, analyses."""

from cogrl.behaviors.catalog import (
    PAPER_BEHAVIORS,
    Behavior,
    catalog,
    get_behavior,
    register_behavior,
    unregister_behavior,
)
from cogrl.behaviors.types import BEHAVIORS, BehaviorTags

__all__ = [
    "BEHAVIORS",
    "PAPER_BEHAVIORS",
    "Behavior",
    "BehaviorTags",
    "catalog",
    "get_behavior",
    "register_behavior",
    "unregister_behavior",
]
