"""The quality commands run against a migrated database of the test's backend (subprocesses)."""

from __future__ import annotations

from tests.test_cli import cli_env, tongban

__all__ = ["cli_env"]


def test_quality_jobs_run_and_are_idempotent(cli_env: dict[str, str]) -> None:
    assert tongban(cli_env, "db", "upgrade").returncode == 0
    for args, said in (
        (("quality", "sync"), "0 closed applications recorded"),
        (("quality", "remind"), "0 reminders queued"),
        (("quality", "deadlines"), "0 return calls and 0 rectifications escalated; 0 rectifications closed"),
        (("quality", "alerts", "--period", "2026-03"), "0 alerts raised for 2026-03"),
    ):
        done = tongban(cli_env, *args)
        assert done.returncode == 0, done.stderr
        assert said in done.stdout
    wrong = tongban(cli_env, "quality", "alerts", "--period", "2026-Q1")
    assert wrong.returncode == 2
    assert "YYYY-MM" in wrong.stdout + wrong.stderr
