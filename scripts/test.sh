#!/usr/bin/env bash
# Install mdsdx with its test tools into ./.venv and run the default test suite.
# Training and benchmark tests are marked `slow` and run with: .venv/bin/python -m pytest -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
exec .venv/bin/python -m pytest "$@"
