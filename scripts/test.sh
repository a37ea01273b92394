#!/usr/bin/env bash
# The test command of the README and of CI: set up (idempotent), lint, format check, then the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
