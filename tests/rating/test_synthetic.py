"""The demo's synthetic quality history: consistent facts that the indicators can read."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tests.factories import item
from tongban.catalog import service as catalog
from tongban.core.clock import FixedClock
from tongban.rating import service, synthetic
from tongban.rating.schemas import Filters


def test_synthetic_history_is_consistent_and_added_once(session: Session, clock: FixedClock) -> None:
    for n in range(3):
        catalog.import_item(
            session,
            item(code=f"1111000SYN{n:06d}", name=f"事项{n}", department=f"部门{n}"),
            actor="test",
            clock=clock,
            source="test",
        )
    assert synthetic.generate(session, clock=clock, cases=400) == 400
    assert synthetic.generate(session, clock=clock, cases=400) == 0
    total, departments = service.compute(session, Filters(), "department")
    assert total.cases == 400
    assert {d.group for d in departments} <= {"部门0", "部门1", "部门2"}
    assert 0.2 < (total.rating_rate or 0) < 0.7
    assert (total.satisfaction_rate or 0) > 0.8
    assert total.rectified <= total.bad
    assert sum(total.levels.values()) == total.rated
    _, months = service.compute(session, Filters(), "month")
    assert 10 <= len(months) <= 13
