"""cogrl: a lab for the reasoning behaviors that let language models improve themselves under RL."""

__version__ = "0.1.0"
