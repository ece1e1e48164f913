"""Crash safety of submission (issue 5): the real server is SIGKILLed while 200 submissions with
idempotency keys are in flight, restarted on the same database and data directory, and every request is
retried. Exactly 200 applications must exist, each complete, with its file, and no file or upload row
without the other.

Runs on SQLite (a file of its own) and on PostgreSQL (a database of its own when
``TONGBAN_TEST_DATABASE_URL`` is set). The server is ``tongban serve`` in a child process: no shared
connection, no rollback at the end, the same code path as production.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import select

from tests.intake.crash_support import (
    SUBMIT,
    ServerProcess,
    Submission,
    count,
    fresh_database,
    lease,
    prepare,
    submit_all,
    upload_all,
)
from tests.intake.helpers import CODE, MATERIALS
from tongban.core import auth
from tongban.core.clock import SystemClock
from tongban.core.config import Settings
from tongban.core.db import make_engine, make_sessionmaker, session_scope
from tongban.core.files import FileStore
from tongban.core.migrate import upgrade
from tongban.intake import service
from tongban.intake.models import Application, Upload, WorkItem

SUBMISSIONS = 200
CITIZENS = 10
#: The server is killed once this many whole answers have arrived (some, not all).
KILL_AFTER = 50


def test_sigkill_during_200_submissions_then_retry_leaves_200_complete_applications(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with fresh_database(tmp_path) as url:
        settings = Settings(data_dir=data_dir, database_url=url)
        sealer = settings.sealer()  # the key files the server will read from the data dir
        store = FileStore(data_dir / "files", sealer)
        engine = make_engine(url)
        server = ServerProcess(data_dir=data_dir, database_url=url, log_path=tmp_path / "server.log")
        try:
            upgrade(engine)
            citizens = prepare(engine, sealer, CITIZENS)
            server.start()

            # Every request is prepared before the crash, its upload included.
            owners = [citizens[n % CITIZENS] for n in range(SUBMISSIONS)]
            files = [lease(c, n) for n, c in enumerate(owners)]
            ids = upload_all(server.base_url, list(zip(owners, files, strict=True)))
            submissions = [
                Submission(
                    citizen=c,
                    key=f"crash-test-{n:04d}",
                    body={
                        "item_code": CODE,
                        "values": {
                            "name": "李明",
                            "id_number": c.id_number,
                            "mobile": "13800138000",
                            "monthly_rent": f"{1000 + n}.50",
                            "months": 1 + n % 120,
                            "lease": [ids[n]],
                        },
                    },
                    upload_id=ids[n],
                    file=files[n],
                )
                for n, c in enumerate(owners)
            ]

            # 1. All 200 at once; SIGKILL once KILL_AFTER answers have arrived.
            first = submit_all(server.base_url, submissions, kill_after=KILL_AFTER, kill=server.kill)
            assert first.killed, first
            assert first.sent_before_kill == SUBMISSIONS
            answered = [a for a in first.answers if a.status is not None]
            # Nothing failed before the kill: no "database is locked", no conflict, no 5xx.
            assert {a.status for a in answered} == {201}, [a.body for a in answered if a.status != 201]
            assert KILL_AFTER <= len(answered) < SUBMISSIONS
            lost = [a for a in first.answers if a.status is None]
            assert all(a.error for a in lost)
            print(
                f"\nbefore the kill: {len(answered)} answered, {len(lost)} in flight ({first.errors})",
                file=sys.stderr,
            )

            # 2. Restart on the same database and data dir; retry every request, same keys, same bodies.
            server.start()
            retry = submit_all(server.base_url, submissions)
            server.stop()
            statuses = [a.status for a in retry.answers]
            assert statuses == [201] * SUBMISSIONS, (retry.errors, [a.body for a in retry.answers][:3])
            for one, again in zip(first.answers, retry.answers, strict=True):
                if one.status is not None:
                    assert again.replayed
                    assert again.body == one.body  # the first answer, same receipt number
            replayed_lost = sum(
                1
                for one, again in zip(first.answers, retry.answers, strict=True)
                if one.status is None and again.replayed
            )
            print(f"in flight but committed before the kill: {replayed_lost}", file=sys.stderr)
            receipts = [a.body["receipt_no"] for a in retry.answers]
            assert len(set(receipts)) == SUBMISSIONS

            # 3. Exactly 200 applications, each complete.
            clock = SystemClock()
            with session_scope(make_sessionmaker(engine)) as session:
                stored = {a.receipt_no: a for a in session.scalars(select(Application))}
                assert set(stored) == set(receipts)
                for s, receipt in zip(submissions, receipts, strict=True):
                    principal = auth.resolve_session(session, s.citizen.token, clock=clock)
                    assert principal is not None
                    app = service.get_application(session, principal, receipt, sealer=sealer, clock=clock)
                    assert app.status == "submitted"
                    assert app.values["lease"] == [s.upload_id]
                    assert app.values["months"] == s.body["values"]["months"]
                    assert app.values["id_number"] == s.citizen.id_number
                    assert [m.name for m in app.materials] == [m["name"] for m in MATERIALS]
                    assert [u.id for u in app.uploads] == [s.upload_id]
                    assert [e.action for e in app.events] == ["submit"]
                    assert [w.step for w in app.waiting] == ["accept"]
                    assert stored[receipt].process_state
                    assert store.get(s.upload_id) == s.file  # present and decryptable
                work_items = session.scalars(select(WorkItem.application_id)).all()
                assert sorted(work_items) == sorted(a.id for a in stored.values())
                assert count(session, "SELECT count(*) FROM intake_application_event") == SUBMISSIONS
                audited = count(
                    session,
                    "SELECT count(*) FROM core_audit_event WHERE action = 'intake.application.submit'",
                )
                assert audited == SUBMISSIONS
                kept = count(session, "SELECT count(*) FROM core_idempotency WHERE path = :p", p=SUBMIT)
                assert kept == SUBMISSIONS
                # Uploads not attached: none. Every row has its file, every file its row.
                rows = {u.id: u.application_id for u in session.scalars(select(Upload))}
                assert set(rows) == {s.upload_id for s in submissions}
                assert None not in rows.values()
                assert {key for key, _ in store.stored()} == set(rows)
                assert not list((data_dir / "files").glob("*/.*.tmp"))

                # 4. The sweep with cut-off now (every unattached upload, every file without a row; the CLI's
                # `sweep-uploads --hours` starts at 1, hence the service) finds nothing.
                assert service.sweep_uploads(session, store, clock=clock, hours=0) == 0
            with session_scope(make_sessionmaker(engine)) as session:
                rows_after = {u.id for u in session.scalars(select(Upload))}
            assert rows_after == set(rows)
            assert {key for key, _ in store.stored()} == rows_after
            assert all(store.exists(key) for key in rows_after)
        except BaseException:
            print(f"--- server log ---\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            server.stop()
            engine.dispose()
