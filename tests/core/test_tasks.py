import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, make_account
from tongban.core import auth, idempotency
from tongban.core.clock import FixedClock
from tongban.core.models import AuthSession, IdempotencyRecord, LoginFailure
from tongban.core.tasks import purge_expired


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_purge_removes_only_what_has_ended(session: Session, clock: FixedClock) -> None:
    make_account(session, clock, "editor1", ["catalog_editor"])
    account = auth.authenticate(session, username="editor1", password=PASSWORD, clock=clock)
    assert account is not None
    short_token, _ = auth.start_session(session, account, clock=clock, hours=1)
    long_token, _ = auth.start_session(session, account, clock=clock, hours=48)
    assert auth.authenticate(session, username="editor1", password="wrong", clock=clock) is None
    idempotency.remember(
        session,
        key="key-00000001",
        actor="editor1",
        method="POST",
        path="/x",
        body=b"{}",
        status=201,
        response_body="{}",
        clock=clock,
    )

    assert purge_expired(session, clock=clock).sessions == 0  # nothing has ended yet
    clock.advance(dt.timedelta(hours=2))
    purged = purge_expired(session, clock=clock)
    assert purged.sessions == 1
    assert purged.login_failures == 1
    assert auth.resolve_session(session, long_token, clock=clock) is not None
    assert auth.resolve_session(session, short_token, clock=clock) is None
    assert _count(session, AuthSession) == 1
    assert _count(session, LoginFailure) == 0
    assert _count(session, IdempotencyRecord) == 1
    clock.advance(dt.timedelta(days=8))
    assert purge_expired(session, clock=clock).idempotency_keys == 1
    assert purge_expired(session, clock=clock) == purge_expired(session, clock=clock)  # idempotent
