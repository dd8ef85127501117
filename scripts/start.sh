#!/usr/bin/env bash
# Install mdsdx into ./.venv and start the service on embedded defaults: SQLite under ./mdsdx-home,
# the shipped models, and the bundled example smears diagnosed on the first start.
# Set MDSDX_HOME, MDSDX_DATABASE_URL, MDSDX_HOST or MDSDX_PORT to change them; extra arguments go to `mdsdx serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
# Install once, and again only when pyproject.toml changes: later starts need no package index.
stamp=.venv/.mdsdx-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/mdsdx ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
  echo "$wanted" > "$stamp"
fi
export MDSDX_HOME="${MDSDX_HOME:-$PWD/mdsdx-home}"
exec .venv/bin/mdsdx serve --host "${MDSDX_HOST:-127.0.0.1}" --port "${MDSDX_PORT:-8000}" "$@"
