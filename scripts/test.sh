#!/usr/bin/env bash
# Set everything up, then lint, type-check and run the whole test suite; the first failure stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "ruff check ."
.venv/bin/ruff check .
echo "mypy (strict on chain/)"
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
