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

# The two backends run at the same time (separate databases, separate temporary directories), each
# with its output in a log that is printed when it ends.
logs=$(mktemp -d)
PG_URL=${TONGBAN_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
pg_up=0
python -c "import sys, sqlalchemy as sa; sa.create_engine(sys.argv[1]).connect().close()" "$PG_URL" 2>/dev/null && pg_up=1
# Browser tests run each language in one pass (tests/conftest.py); without PostgreSQL, SQLite runs both.
all_locales=${TONGBAN_TEST_ALL_LOCALES:-}
[ "$pg_up" = 1 ] || all_locales=1
TONGBAN_TEST_DATABASE_URL= TONGBAN_TEST_ALL_LOCALES=$all_locales pytest -p no:cacheprovider "$@" \
  >"$logs/sqlite.log" 2>&1 &
sqlite_pid=$!

pg_status=0
if [ "$pg_up" = 1 ]; then
  TONGBAN_TEST_DATABASE_URL="$PG_URL" pytest -p no:cacheprovider "$@" >"$logs/pg.log" 2>&1 || pg_status=$?
  pg_ran=1
elif [ -n "${CI:-}" ]; then
  echo "PostgreSQL is not reachable at $PG_URL" >&2
  pg_status=1
  pg_ran=0
else
  echo "NOTICE: PostgreSQL not reachable at $PG_URL; the PostgreSQL run was skipped" >&2
  pg_ran=0
fi
sqlite_status=0
wait "$sqlite_pid" || sqlite_status=$?

echo "== tests on SQLite"; cat "$logs/sqlite.log"
if [ "$pg_ran" = 1 ]; then echo "== tests on PostgreSQL"; cat "$logs/pg.log"; fi
rm -rf "$logs"
[ "$sqlite_status" = 0 ] && [ "$pg_status" = 0 ]
