"""The ``tongban`` command line, run as a user would: a real process against a real database."""

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import create_engine, text

from tests.factories import item_data


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh database of the backend under test, separate from the transactional test database."""
    # The suite's own settings stay out, except its cheap password hashing (tests/conftest.py).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TONGBAN_") or k.startswith("TONGBAN_PASSWORD_HASH_")
    }
    env["TONGBAN_DATA_DIR"] = str(tmp_path / "data")
    env["TONGBAN_LOG_JSON"] = "false"
    test_url = os.environ.get("TONGBAN_TEST_DATABASE_URL", "")
    if test_url.startswith("postgresql"):
        name = f"test_cli_{uuid.uuid4().hex[:10]}"
        admin = create_engine(test_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        env["TONGBAN_DATABASE_URL"] = test_url.rsplit("/", 1)[0] + f"/{name}"
        yield env
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        yield env


def tongban(
    env: dict[str, str], *args: str, stdin: str | None = None, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``tongban ARGS`` with ``env`` as its whole environment: in this process through Click's test
    runner (the same commands, arguments, output streams and exit codes, without the 3 s a new Python
    process takes to import the platform), or as a real process with ``process=True``
    (:func:`test_the_command_is_a_real_process` keeps one such run)."""
    if process:
        return subprocess.run(
            [sys.executable, "-m", "tongban", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    from typer.testing import CliRunner

    from tongban.cli import app
    from tongban.core.config import get_settings

    # The settings are read again from ``env``: ours that it lacks are unset for the run.
    overrides: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("TONGBAN_") and k not in env
    }
    overrides.update({k: v for k, v in env.items() if k.startswith("TONGBAN_")})
    get_settings.cache_clear()
    # A command configures logging onto the runner's streams: put this process's back afterwards.
    structlog_config = structlog.get_config()
    loggers = {
        name: (list(log.handlers), log.level, log.propagate)
        for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access")
        for log in [logging.getLogger(name or None)]
    }
    try:
        result = CliRunner().invoke(app, list(args), input=stdin, env=overrides, catch_exceptions=True)
    finally:
        get_settings.cache_clear()
        structlog.configure(**structlog_config)
        for name, (handlers, level, propagate) in loggers.items():
            log = logging.getLogger(name or None)
            log.handlers[:] = handlers
            log.setLevel(level)
            log.propagate = propagate
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug, not an exit: show its traceback
    return subprocess.CompletedProcess(
        ["tongban", *args], result.exit_code, stdout=result.stdout, stderr=result.stderr
    )


def _jsonl(path: Path, rows: list[dict[str, object] | str]) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


def test_commands_refuse_an_unmigrated_database(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = tongban(cli_env, "catalog", "check")
    assert result.returncode == 2
    assert "tongban db upgrade" in result.stderr


def test_the_command_is_a_real_process(cli_env: dict[str, str]) -> None:
    """``python -m tongban`` as a user runs it: a refusal on stderr with its exit code, then the schema
    migrated and a command that reads it."""
    refused = tongban(cli_env, "catalog", "check", process=True)
    assert refused.returncode == 2
    assert "tongban db upgrade" in refused.stderr
    assert tongban(cli_env, "db", "upgrade", process=True).returncode == 0
    checked = tongban(cli_env, "catalog", "check", process=True)
    assert checked.returncode == 0, checked.stderr


def test_import_export_check_round_trip(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert tongban(cli_env, "db", "upgrade").returncode == 0
    good = _jsonl(
        tmp_path / "items.jsonl",
        [
            item_data(),
            item_data(
                code="12120000TEST0001",
                region="天津市",
                department="天津市市场监督管理局",
                visits=1,
                promised_limit={"value": 10, "unit": "working_day"},
            ),
        ],
    )
    imported = tongban(cli_env, "catalog", "import", str(good))
    assert imported.returncode == 0, imported.stderr
    assert "2 created" in imported.stdout
    again = tongban(cli_env, "catalog", "import", str(good))
    assert "0 created, 0 updated, 2 unchanged" in again.stdout

    check = tongban(cli_env, "catalog", "check", "--json")
    report = json.loads(check.stdout)
    assert report["groups_inconsistent"] == 1
    assert report["totals"]["promised_limit"] == 1
    human = tongban(cli_env, "catalog", "check")
    assert "食品经营许可证核发" in human.stdout

    for fmt, name in (("tongban-jsonl", "out.jsonl"), ("tongban-csv", "out.csv")):
        out = tmp_path / name
        exported = tongban(cli_env, "catalog", "export", "--format", fmt, "--output", str(out))
        assert exported.returncode == 0, exported.stderr
        reimport = tongban(cli_env, "catalog", "import", str(out))
        assert "2 unchanged" in reimport.stdout, reimport.stdout + reimport.stderr


def test_bad_rows_exit_1_and_bad_files_exit_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    tongban(cli_env, "db", "upgrade")
    mixed = _jsonl(
        tmp_path / "mixed.jsonl", [item_data(), item_data(code="X1234567", level="galactic"), "oops"]
    )
    result = tongban(cli_env, "catalog", "import", str(mixed))
    assert result.returncode == 1
    assert "1 created" in result.stdout
    assert "level" in result.stderr
    strict = _jsonl(tmp_path / "strict.jsonl", [item_data(code="NEW00000001"), "oops"])
    result = tongban(cli_env, "catalog", "import", "--strict", str(strict))
    assert result.returncode == 1
    assert "nothing was stored" in result.stderr
    export = tongban(cli_env, "catalog", "export")
    assert "NEW00000001" not in export.stdout
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\x00\x01\x02garbage")
    assert tongban(cli_env, "catalog", "import", str(binary)).returncode == 2
    assert tongban(cli_env, "catalog", "import", str(tmp_path / "missing.jsonl")).returncode == 2
    assert tongban(cli_env, "catalog", "import", "--format", "xml", str(mixed)).returncode == 2


def test_admin_and_calendar(cli_env: dict[str, str], tmp_path: Path) -> None:
    tongban(cli_env, "db", "upgrade")
    created = tongban(
        cli_env,
        "admin",
        "create",
        "chief",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long enough secret\n",
    )
    assert created.returncode == 0, created.stderr
    short = tongban(cli_env, "admin", "create", "other", "--password-stdin", stdin="short\n")
    assert short.returncode == 2
    assert "12 characters" in short.stderr

    refused = tongban(cli_env, "calendar", "deadline", "2027-03-01", "5")
    assert refused.returncode == 2
    assert "2027" in refused.stderr
    schedule = tmp_path / "2027.json"
    schedule.write_text(
        json.dumps(
            {
                "year": 2027,
                "source": "test schedule",
                "holidays": [{"name": "元旦", "start": "2027-01-01", "end": "2027-01-03"}],
                "workdays": [],
            }
        )
    )
    assert tongban(cli_env, "calendar", "load", str(schedule)).returncode == 0
    assert "unchanged" in tongban(cli_env, "calendar", "load", str(schedule)).stdout
    due = tongban(cli_env, "calendar", "deadline", "2026-12-31", "1")
    assert due.stdout.strip() == "2027-01-04"


def test_demo_loads_the_shipped_catalogue(cli_env: dict[str, str]) -> None:
    result = tongban(cli_env, "demo", "--no-serve")
    assert result.returncode == 0, result.stderr
    assert "1843 created" in result.stdout
    accounts = Path(cli_env["TONGBAN_DATA_DIR"]) / "demo-accounts.txt"
    assert oct(accounts.stat().st_mode & 0o777) == "0o600"
    assert "reviewer" in accounts.read_text()
    assert "policyapprover" in accounts.read_text()
    # the policy library and a synthetic city to compute runs over
    assert (Path(cli_env["TONGBAN_DATA_DIR"]) / "policy" / "snapshots" / "demo-city.duckdb").is_file()


def test_intake_jobs_run_and_are_idempotent(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert tongban(cli_env, "db", "upgrade").returncode == 0
    orphan = tmp_path / "data" / "files" / "ab" / ("ab" * 16)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"a file whose record never committed")
    old = 1_000_000_000  # 2001: older than any retention window
    os.utime(orphan, (old, old))
    first = tongban(cli_env, "intake", "sweep-uploads")
    assert first.returncode == 0, first.stderr
    assert "1 files removed" in first.stdout
    assert not orphan.exists()
    assert "0 files removed" in tongban(cli_env, "intake", "sweep-uploads").stdout
    escalated = tongban(cli_env, "intake", "escalate")
    assert escalated.returncode == 0, escalated.stderr
    assert "0 overdue applications escalated" in escalated.stdout
    assert tongban(cli_env, "intake", "sweep-uploads", "--hours", "0").returncode == 2


def test_invalid_settings_are_a_message_not_a_traceback(cli_env: dict[str, str]) -> None:
    result = tongban({**cli_env, "TONGBAN_PASSWORD_HASH_TIME_COST": "0"}, "db", "upgrade")
    assert result.returncode == 2
    assert "TONGBAN_PASSWORD_HASH_TIME_COST" in result.stderr
    assert "Traceback" not in result.stderr
