#!/usr/bin/env bash
# The test command of the README and of CI: set up (idempotent), lint, format check, then the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# tests/slurm brings up a private SLURM cluster: install Debian's slurm-wlm + munge when missing (root only;
# seconds, 14 MB). Without them that test skips locally and fails in CI.
if [[ $(id -u) == 0 ]] && ! command -v slurmctld >/dev/null && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null ||
    echo "test.sh: could not install slurm-wlm/munge" >&2
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
