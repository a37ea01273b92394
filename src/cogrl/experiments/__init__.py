"""Experiments across runs: the priming -> SFT -> RL sweep (`sweep`) and reports over its runs (`report`)."""
