"""Fixtures of the rating tests: a closed (approved) application of citizen.li, and quality staff."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tests.intake.conftest import published, staff  # noqa: F401 - fixtures used through ``quality``
from tests.intake.helpers import step, submit
from tongban.core.clock import FixedClock

UNIT = "北京市市场监督管理局"


@pytest.fixture
def quality(
    staff: dict[str, dict[str, str]],  # noqa: F811
    session: Session,
    clock: FixedClock,
    client: httpx.Client,
) -> dict[str, dict[str, str]]:
    """Every account of the rating tests, signed in: the citizen and intake officers, a unit officer of
    the item's department, another unit's officer, two quality supervisors, an analyst, a terminal and
    another system."""
    make_account(session, clock, "unit.zhao", [f"quality_unit:{UNIT}"])
    make_account(session, clock, "unit.other", ["quality_unit:北京市公安局"])
    make_account(session, clock, "super.he", ["quality_supervisor"])
    make_account(session, clock, "super.lu", ["quality_supervisor"])
    make_account(session, clock, "analyst.ma", ["quality_analyst"])
    make_account(session, clock, "terminal.01", ["rating_terminal"])
    make_account(session, clock, "hotline.sys", ["rating_system"])
    make_account(session, clock, "citizen.zhang", [])
    session.commit()
    names = ("unit.zhao", "unit.other", "super.he", "super.lu", "analyst.ma", "terminal.01", "hotline.sys")
    return {**staff, **{u: bearer(client, u) for u in (*names, "citizen.zhang")}}


def close_application(
    client: httpx.Client, h: dict[str, dict[str, str]], *, decision: str = "approve"
) -> str:
    """Submit citizen.li's application and take it through the standard process to its end."""
    app: dict[str, Any] = submit(client, h)
    for who, d in (("officer.wang", "accept"), ("reviewer.zhou", "pass"), ("decider.wu", decision)):
        response = step(client, h[who], app, d, "依法审查，材料齐全。" if d != "approve" else "")
        assert response.status_code == 200, response.text
        app = response.json()
    if app["status"] not in ("approved", "refused"):
        response = step(client, h["officer.wang"], app, "done")
        assert response.status_code == 200, response.text
        app = response.json()
    assert app["status"] in ("approved", "refused"), app["status"]
    return str(app["receipt_no"])


@pytest.fixture
def closed(quality: dict[str, dict[str, str]], client: httpx.Client) -> str:
    return close_application(client, quality)
