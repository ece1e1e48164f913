#!/usr/bin/env bash
# Install the test dependencies into ./.venv and run every check and the whole test suite: lint, types,
# layer contracts, translations, then the tests on SQLite and on PostgreSQL.
#
# PostgreSQL: TONGBAN_TEST_POSTGRES_URL (default: postgresql+psycopg://postgres@127.0.0.1:5432/test).
# When CI is set, an unreachable PostgreSQL or a missing chromium is an error; elsewhere those parts are
# skipped with a notice.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tongban needs Python 3.11 or newer")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"; ruff check src tests bench; ruff format --check src tests bench
echo "== mypy"; mypy
echo "== import contracts"; lint-imports
echo "== translations"; bash scripts/i18n.sh check

echo "== tests on SQLite"
TONGBAN_TEST_DATABASE_URL= pytest -p no:cacheprovider "$@"

PG_URL=${TONGBAN_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
if python -c "import sys, sqlalchemy as sa; sa.create_engine(sys.argv[1]).connect().close()" "$PG_URL" 2>/dev/null; then
  echo "== tests on PostgreSQL"
  TONGBAN_TEST_DATABASE_URL="$PG_URL" pytest -p no:cacheprovider "$@"
elif [ -n "${CI:-}" ]; then
  echo "PostgreSQL is not reachable at $PG_URL" >&2
  exit 1
else
  echo "NOTICE: PostgreSQL not reachable at $PG_URL; the PostgreSQL run was skipped" >&2
fi
