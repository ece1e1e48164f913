#!/usr/bin/env bash
# Install tongban into ./.venv and run it on its embedded default: SQLite in ./data, the demo catalogue
# loaded, web on http://127.0.0.1:8000 (TONGBAN_HOST / TONGBAN_PORT change that).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tongban needs Python 3.11 or newer")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet .
exec .venv/bin/tongban demo
