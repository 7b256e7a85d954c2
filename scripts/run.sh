#!/usr/bin/env bash
# Set everything up, then run the Consensus Playground bot.
# With no DISCORD_TOKEN (in the environment or .env) it plays in the built-in
# local Discord sandbox, with a terminal client: type `alice: /mine start`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m bot "$@"
