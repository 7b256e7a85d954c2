#!/usr/bin/env bash
# Set everything up, then lint, type-check and run the whole test suite; the first failure stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "ruff check ."
.venv/bin/ruff check .
echo "mypy (strict on chain/)"
.venv/bin/mypy
# CI runs the PostgreSQL tests for certain: a missing server fails them instead of skipping them.
export PLAYGROUND_REQUIRE_POSTGRES="${PLAYGROUND_REQUIRE_POSTGRES:-1}"
# Likewise the native nonce search: scripts/setup.sh builds it with the machine's C compiler, and a
# build that silently failed must fail its tests here, not skip them.
export PLAYGROUND_REQUIRE_NATIVE="${PLAYGROUND_REQUIRE_NATIVE:-1}"
exec .venv/bin/python -m pytest "$@"
