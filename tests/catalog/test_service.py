"""The catalogue's life cycle through its service functions, on the real database."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import make_account
from tests.factories import item
from tongban.catalog import service
from tongban.catalog.repository import ItemFilter
from tongban.core import auth
from tongban.core.clock import FixedClock
from tongban.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unauthenticated,
)
from tongban.core.models import AuditEvent


@pytest.fixture
def editor(session: Session, clock: FixedClock) -> auth.Principal:
    return make_account(session, clock, "editor1", ["catalog_editor"])


@pytest.fixture
def reviewer(session: Session, clock: FixedClock) -> auth.Principal:
    return make_account(session, clock, "reviewer1", ["catalog_reviewer"])


def _audit_actions(session: Session, code: str) -> list[str]:
    rows = session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_id == code).order_by(AuditEvent.id)
    )
    return list(rows)


def test_draft_is_invisible_to_citizens_until_published(
    session: Session, clock: FixedClock, editor: auth.Principal, reviewer: auth.Principal
) -> None:
    # Given a new draft
    service.create_item(session, editor, item(), clock=clock, note="new")
    # Then citizens cannot see it
    with pytest.raises(NotFound):
        service.get_item(session, auth.ANONYMOUS, "11110000TEST0001")
    public = service.list_items(session, auth.ANONYMOUS, filters=ItemFilter())
    assert all(i.code != "11110000TEST0001" for i in public.items)
    # When it is submitted and published by another person
    service.submit_for_review(session, editor, "11110000TEST0001", clock=clock)
    out = service.publish_item(session, reviewer, "11110000TEST0001", clock=clock, note="ok")
    # Then it is public, at version 1, and every step was audited
    assert out.status == "published"
    assert out.published_version == 1
    assert out.pending_version is None
    assert service.get_item(session, auth.ANONYMOUS, "11110000TEST0001").content.name == "食品经营许可证核发"
    assert _audit_actions(session, "11110000TEST0001") == [
        "catalog.item.create",
        "catalog.item.submit",
        "catalog.item.publish",
    ]


def test_edits_to_a_published_item_wait_for_review(
    session: Session, clock: FixedClock, editor: auth.Principal, reviewer: auth.Principal
) -> None:
    service.create_item(session, editor, item(), clock=clock)
    service.submit_for_review(session, editor, "11110000TEST0001", clock=clock)
    service.publish_item(session, reviewer, "11110000TEST0001", clock=clock)
    # When the editor changes the promised limit
    changed = item(promised_limit={"value": 3, "unit": "working_day"})
    out = service.update_item(session, editor, "11110000TEST0001", changed, clock=clock, note="faster")
    assert out.version == 2
    assert out.pending_version == 2
    assert out.published_version == 1
    # Then citizens still see the published content
    assert service.get_item(session, auth.ANONYMOUS, "11110000TEST0001").content.promised_limit.value == 5  # type: ignore[union-attr]
    # And the editor works on the pending copy
    _, working = service.get_working_copy(session, editor, "11110000TEST0001")
    assert working.promised_limit is not None
    assert working.promised_limit.value == 3
    service.submit_for_review(session, editor, "11110000TEST0001", clock=clock)
    service.publish_item(session, reviewer, "11110000TEST0001", clock=clock)
    assert service.get_item(session, auth.ANONYMOUS, "11110000TEST0001").content.promised_limit.value == 3  # type: ignore[union-attr]
    versions = service.list_versions(session, editor, "11110000TEST0001")
    assert [(v.version, v.state) for v in versions] == [(2, "published"), (1, "superseded")]
    assert versions[0].changed_fields == ["promised_limit"]


def test_author_cannot_publish_own_change(
    session: Session, clock: FixedClock, reviewer: auth.Principal
) -> None:
    service.create_item(session, reviewer, item(), clock=clock)
    service.submit_for_review(session, reviewer, "11110000TEST0001", clock=clock)
    with pytest.raises(Forbidden, match="other than its author"):
        service.publish_item(session, reviewer, "11110000TEST0001", clock=clock)


def test_publishing_needs_review_first(
    session: Session, clock: FixedClock, editor: auth.Principal, reviewer: auth.Principal
) -> None:
    service.create_item(session, editor, item(), clock=clock)
    with pytest.raises(Conflict, match="submit"):
        service.publish_item(session, reviewer, "11110000TEST0001", clock=clock)


def test_reject_returns_to_editor_with_reason(
    session: Session, clock: FixedClock, editor: auth.Principal, reviewer: auth.Principal
) -> None:
    service.create_item(session, editor, item(), clock=clock)
    service.submit_for_review(session, editor, "11110000TEST0001", clock=clock)
    with pytest.raises(InvalidInput):
        service.reject_item(session, reviewer, "11110000TEST0001", clock=clock, note=" ")
    service.reject_item(session, reviewer, "11110000TEST0001", clock=clock, note="材料清单不全")
    versions = service.list_versions(session, editor, "11110000TEST0001")
    assert versions[0].state == "rejected"
    assert versions[0].reviewed_by == "reviewer1"


def test_permissions_are_enforced(session: Session, clock: FixedClock, editor: auth.Principal) -> None:
    with pytest.raises(Unauthenticated):
        service.create_item(session, auth.ANONYMOUS, item(), clock=clock)
    service.create_item(session, editor, item(), clock=clock)
    service.submit_for_review(session, editor, "11110000TEST0001", clock=clock)
    with pytest.raises(Forbidden):
        service.publish_item(session, editor, "11110000TEST0001", clock=clock)
    with pytest.raises(Unauthenticated):
        service.list_items(session, auth.ANONYMOUS, filters=ItemFilter(status="draft"))


def test_duplicate_code_and_stale_edit_are_refused(
    session: Session, clock: FixedClock, editor: auth.Principal
) -> None:
    service.create_item(session, editor, item(), clock=clock)
    with pytest.raises(Conflict):
        service.create_item(session, editor, item(name="另一个"), clock=clock)
    service.update_item(
        session, editor, "11110000TEST0001", item(name="改名"), clock=clock, expected_version=1
    )
    with pytest.raises(PreconditionFailed):
        service.update_item(
            session, editor, "11110000TEST0001", item(name="又改"), clock=clock, expected_version=1
        )
    with pytest.raises(InvalidInput, match="cannot change"):
        service.update_item(session, editor, "11110000TEST0001", item(code="OTHERCODE1"), clock=clock)


def test_saving_the_same_content_twice_makes_no_version(
    session: Session, clock: FixedClock, editor: auth.Principal
) -> None:
    service.create_item(session, editor, item(), clock=clock)
    out = service.update_item(session, editor, "11110000TEST0001", item(), clock=clock)
    assert out.version == 1


def test_import_is_idempotent_and_versions_changes(session: Session, clock: FixedClock) -> None:
    assert service.import_item(session, item(), actor="op", clock=clock, source="a.jsonl") == "created"
    assert service.import_item(session, item(), actor="op", clock=clock, source="a.jsonl") == "unchanged"
    assert (
        service.import_item(session, item(visits=1), actor="op", clock=clock, source="b.jsonl") == "updated"
    )
    out = service.get_item(session, auth.ANONYMOUS, "11110000TEST0001")
    assert out.version == 2
    assert out.content.visits == 1


def test_withdraw_and_restore(
    session: Session, clock: FixedClock, editor: auth.Principal, reviewer: auth.Principal
) -> None:
    service.import_item(session, item(), actor="op", clock=clock, source="a")
    with pytest.raises(InvalidInput):
        service.withdraw_item(session, reviewer, "11110000TEST0001", clock=clock, note="")
    service.withdraw_item(session, reviewer, "11110000TEST0001", clock=clock, note="事项已取消")
    with pytest.raises(NotFound):
        service.get_item(session, auth.ANONYMOUS, "11110000TEST0001")
    service.publish_item(session, reviewer, "11110000TEST0001", clock=clock)
    assert service.get_item(session, auth.ANONYMOUS, "11110000TEST0001").status == "published"


def test_filters_and_facets(session: Session, clock: FixedClock) -> None:
    service.import_item(session, item(), actor="op", clock=clock, source="a")
    service.import_item(
        session,
        item(code="11110000TEST0002", name="出生登记", audiences=["natural_person"], themes=["生小孩"]),
        actor="op",
        clock=clock,
        source="a",
    )
    anyone = auth.ANONYMOUS
    by_theme = service.list_items(session, anyone, filters=ItemFilter(theme="生小孩"))
    assert [i.code for i in by_theme.items] == ["11110000TEST0002"]
    by_audience = service.list_items(session, anyone, filters=ItemFilter(audience="legal_person"))
    assert [i.code for i in by_audience.items] == ["11110000TEST0001"]
    by_q = service.list_items(session, anyone, filters=ItemFilter(q="出生"))
    assert by_q.total == 1
    assert (
        service.list_items(session, anyone, filters=ItemFilter(q="%")).total == 0
    )  # LIKE wildcards are literal
    paged = service.list_items(session, anyone, filters=ItemFilter(), page=2, page_size=1)
    assert paged.total == 2
    assert len(paged.items) == 1
    facets = service.facets(session)
    assert ("生小孩", 1) in facets.themes
    assert facets.total == 2
    with pytest.raises(InvalidInput):
        service.list_items(session, anyone, filters=ItemFilter(), page_size=1000)
    count = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.actor == "op"))
    assert count == 2
