"""cogrl: a lab for the reasoning behaviors that let language models improve themselves under RL."""

__version__ = "0.1.0"

# Process-wide defaults for every cogrl process and Ray actor: models load offline, and libraries keep their
# logs to warnings (the progress bars of every model load and dataset map drown a training loop's log).
QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "VLLM_LOGGING_LEVEL": "WARNING",
    "TOKENIZERS_PARALLELISM": "false",
}
