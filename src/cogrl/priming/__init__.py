"""Priming: behavior-seeded SFT sets (synthetic or LLM-written) and the SFT step that applies them before RL."""
