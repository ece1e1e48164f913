"""Fixtures of the intake tests."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tests.factories import item
from tests.intake.helpers import CODE, DEFINITION, MATERIALS
from tongban.catalog import service as catalog
from tongban.core.clock import FixedClock


@pytest.fixture
def published(session: Session, clock: FixedClock, client: httpx.Client) -> dict[str, dict[str, str]]:
    catalog.import_item(
        session,
        item(code=CODE, name="租房提取住房公积金", audiences=["natural_person"], materials=MATERIALS),
        actor="test",
        clock=clock,
        source="test",
    )
    make_account(session, clock, "editor.sun", ["intake_form_editor"])
    make_account(session, clock, "publisher.qian", ["intake_form_publisher"])
    make_account(session, clock, "citizen.li", [])
    make_account(session, clock, "officer.wang", ["intake_officer"])
    session.commit()
    headers = {u: bearer(client, u) for u in ("editor.sun", "publisher.qian", "citizen.li", "officer.wang")}
    saved = client.post(
        f"/api/v1/intake/items/{CODE}/forms", headers=headers["editor.sun"], json={"definition": DEFINITION}
    )
    assert saved.status_code == 201, saved.text
    done = client.post(f"/api/v1/intake/items/{CODE}/forms/1/publish", headers=headers["publisher.qian"])
    assert done.status_code == 200, done.text
    return headers


@pytest.fixture
def staff(
    published: dict[str, dict[str, str]], session: Session, clock: FixedClock, client: httpx.Client
) -> dict[str, dict[str, str]]:
    make_account(session, clock, "reviewer.zhou", ["intake_reviewer"])
    make_account(session, clock, "decider.wu", ["intake_decider"])
    session.commit()
    return {
        **published,
        "reviewer.zhou": bearer(client, "reviewer.zhou"),
        "decider.wu": bearer(client, "decider.wu"),
    }
