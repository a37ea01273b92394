"""Tagging the four cognitive behaviors in reasoning traces: regex tagger, LLM judge, hybrid, analyses."""

from cogrl.behaviors.types import BEHAVIORS, BehaviorTags

__all__ = ["BEHAVIORS", "BehaviorTags"]
