"""The demo hotline seeds once, with tickets at every stage; closed tickets reach quality monitoring."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tongban.core.clock import FixedClock
from tongban.core.crypto import Sealer, new_key
from tongban.hotline import demo, service
from tongban.hotline.models import Ticket
from tongban.rating.models import Case


def test_demo_seed_is_idempotent_and_registers_closed_tickets(session: Session, clock: FixedClock) -> None:
    sealer = Sealer(new_key())
    assert demo.seed(session, sealer=sealer, clock=clock) == {"tickets": 6}
    assert demo.seed(session, sealer=sealer, clock=clock) == {"tickets": 0}
    statuses = dict(session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())
    assert statuses == {"received": 1, "dispatched": 1, "signed": 1, "replied": 1, "closed": 2}
    # Every demo rule routes to an existing unit; districts are the fallback.
    assert service.plan_dispatch(session, "城乡建设/供热/暖气不热", "110105").lead_unit == "heating"
    assert service.plan_dispatch(session, "城乡建设/物业管理/物业服务", "110105").lead_unit == "d110105"
    assert service.plan_dispatch(session, "企业服务", "110108").lead_unit == "business"
    cases = session.scalars(select(Case).where(Case.kind == "ticket")).all()
    assert len(cases) == 2
    assert all(c.closed_at is not None and c.outcome == "solved" for c in cases)
    assert {c.department for c in cases} <= {"市人力资源和社会保障局", "市城市管理委员会"}
    # Water, power, gas and heating get the utility deadline class.
    water = next(c for c in service.categories(session) if c.path == "城乡建设/供水排水/停水")
    assert water.deadline_class == "utility"
