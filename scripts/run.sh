#!/usr/bin/env bash
# Set everything up, then run Consensus Playground.
# Until the Discord bot lands this runs the engine's command line; with no
# arguments it plays the demo (create a chain, mine, pay, verify).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- demo
fi
exec .venv/bin/python -m chain "$@"
