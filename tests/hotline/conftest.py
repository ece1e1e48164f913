"""Fixtures of the hotline tests: a small taxonomy, units, a dispatch catalogue and signed-in accounts of
every hotline role. The texts are written for these tests (the shared data are evaluation-only)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tongban.core.clock import FixedClock
from tongban.hotline import service
from tongban.hotline.schemas import RuleWrite, UnitWrite

TAXONOMY = [
    {"level1": "城乡建设", "level2": "市政设施", "level3": "道路维修"},
    {"level1": "城乡建设", "level2": "市政设施", "level3": "路灯照明"},
    {"level1": "城乡建设", "level2": "供水", "level3": "停水"},
    {"level1": "环境保护", "level2": "噪声污染", "level3": "施工噪音"},
    {"level1": "劳动和社会保障", "level2": "工资福利", "level3": "拖欠工资"},
    {"level1": "交通运输", "level2": "公交", "level3": "线路调整"},
]

UNITS = {
    "cy": ("朝阳区", "district", "110105"),
    "hd": ("海淀区", "district", "110108"),
    "cy-jsq": ("朝阳区建国门街道", "street", "110105001"),
    "roads": ("市交通委员会", "department", None),
    "water": ("市自来水集团", "enterprise", None),
    "env": ("市生态环境局", "department", None),
    "labour": ("市人力资源和社会保障局", "department", None),
}


def seed(session: Session, clock: FixedClock) -> None:
    admin = make_account(session, clock, "hl.admin", ["hotline_admin"])
    service.import_taxonomy(session, TAXONOMY, clock=clock)
    for code, (name, kind, region) in UNITS.items():
        service.put_unit(
            session, admin, code, UnitWrite(name=name, kind=kind, region_code=region), clock=clock
        )
    service.put_rule(
        session, admin, RuleWrite(category_path="城乡建设/市政设施", lead_unit="roads"), clock=clock
    )
    service.put_rule(session, admin, RuleWrite(category_path="城乡建设/供水", lead_unit="water"), clock=clock)
    service.put_rule(
        session, admin, RuleWrite(category_path="环境保护", lead_unit="env", helper_units=["cy"]), clock=clock
    )
    service.put_rule(
        session, admin, RuleWrite(category_path="劳动和社会保障", lead_unit="labour"), clock=clock
    )
    service.put_rule(
        session,
        admin,
        RuleWrite(category_path="劳动和社会保障/工资福利", region_code="110105", lead_unit="cy"),
        clock=clock,
    )


@pytest.fixture
def hl(session: Session, clock: FixedClock, client: httpx.Client) -> dict[str, dict[str, str]]:
    """Seeded hotline and signed-in accounts: operator, supervisor, analyst, admin, units and citizens."""
    seed(session, clock)
    roles: dict[str, list[str]] = {
        "op.li": ["hotline_operator"],
        "sup.wang": ["hotline_supervisor"],
        "ana.zhou": ["hotline_analyst"],
        "u.roads": ["hotline_unit:roads"],
        "u.water": ["hotline_unit:water"],
        "u.env": ["hotline_unit:env"],
        "u.cy": ["hotline_unit:cy"],
        "u.labour": ["hotline_unit:labour"],
        "citizen.chen": [],
        "citizen.zhao": [],
    }
    for name, r in roles.items():
        make_account(session, clock, name, r)
    session.commit()
    return {name: bearer(client, name) for name in (*roles, "hl.admin")}


def new_ticket(client: httpx.Client, h: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "web",
        "subject": "建国路路面塌陷",
        "body": "朝阳区建国路88号门口路面塌陷一个大坑，晚上很危险，请尽快修复。",
        "contact": {"name": "陈先生", "phone": "13812345678"},
        "address": "北京市朝阳区建国路88号",
    }
    body.update(extra)
    response = client.post("/api/v1/tickets", json=body, headers=h or {})
    assert response.status_code == 201, response.text
    return dict(response.json())


def act(client: httpx.Client, h: dict[str, str], ref: str, action: str, body: Any = None) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/tickets/{ref}/{action}", json=body if body is not None else {}, headers=h
    )
    assert response.status_code == 200, f"{action}: {response.text}"
    return dict(response.json())
