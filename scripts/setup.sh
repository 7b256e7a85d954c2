#!/usr/bin/env bash
# Create .venv and install the project with its test extras; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  # Run each candidate rather than trusting `command -v`: pyenv's shims exist for every
  # version it knows and only fail (noisily) when run, so their output is silenced here.
  for candidate in python3.13 python3.12 python3.11 python3; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
      PYTHON="$candidate"
      break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "Consensus Playground needs Python 3.11 or later (python3.11 / python3 on PATH)." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi

# The install also builds the native nonce search (setup.py: chain/adapters/_noncesearch.c, with the
# machine's C compiler and Python headers; nothing is downloaded). It is optional: without a compiler
# the install still succeeds and the hashing core runs its Python backend (the bot's log says which).
# So the stamp covers the C source too: changing it rebuilds.
stamp=.venv/.installed-$(cat pyproject.toml setup.py chain/adapters/_noncesearch.c | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# PostgreSQL server binaries for the tests of the PostgreSQL backend (the suite starts its own
# server, tests/postgres_server.py). Debian's package, only when missing and only as root with apt;
# elsewhere those tests skip and say why. Running the bot on SQLite never needs them.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's postgresql package for the PostgreSQL tests"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
# The classroom dashboard's browser tests (tests/e2e/test_dashboard_browser.py) drive Debian's chromium
# through Playwright; Playwright's own browser download is never used. Installed as root with apt-get
# when it is missing (waiting for another apt to finish); elsewhere those tests say why they skip.
# An emoji font too: the page's news titles start with the announcements' emoji (the screenshot shows them).
EMOJI_FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
if { [ ! -x /usr/bin/chromium ] || [ ! -f "$EMOJI_FONT" ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
then
  echo "installing chromium and an emoji font (apt-get) for the dashboard's browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium fonts-noto-color-emoji >/dev/null
fi
