"""The demo hotline: a compact taxonomy, the city's districts and departments, a dispatch catalogue, Open311
services, labelled examples and a few tickets at every stage (``tongban demo``). Idempotent."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from typing import Any

from sqlalchemy.orm import Session

from tongban.core.auth import system_principal
from tongban.core.clock import Clock, FixedClock
from tongban.core.crypto import Sealer
from tongban.hotline import repository as repo
from tongban.hotline import service
from tongban.hotline.schemas import (
    Classification,
    Contact,
    DispatchWrite,
    ReplyWrite,
    RuleWrite,
    ServiceWrite,
    TicketWrite,
    UnitWrite,
    VisitWrite,
)
from tongban.hotline.vocab import ADMIN, HANDLE, HANDLE_ANY, INTAKE, SUPERVISE, Channel

DEMO = system_principal("demo", frozenset({ADMIN, INTAKE, HANDLE, HANDLE_ANY, SUPERVISE}))

#: Tickets of the demo: (subject, body, address, category, what happens to it).
_TICKETS: list[tuple[str, str, str, str, str]] = [
    (
        "朝阳路井盖缺失",
        "朝阳路与青年路交叉口东侧人行道上的井盖不见了，晚上路过很危险。",
        "北京市朝阳区朝阳路青年路口",
        "城乡建设/市政设施/井盖缺损",
        "received",
    ),
    (
        "中关村大街路灯不亮",
        "中关村大街南段东侧连续五盏路灯不亮，已经一周了。",
        "北京市海淀区中关村大街",
        "城乡建设/市政设施/路灯照明",
        "dispatched",
    ),
    (
        "小区停水",
        "方庄芳城园一区从今天早上开始停水，没有任何通知。",
        "北京市丰台区方庄芳城园一区",
        "城乡建设/供水排水/停水",
        "signed",
    ),
    (
        "工地夜间打桩",
        "通州区运河西大街工地每天夜里十二点还在打桩，严重影响休息。",
        "北京市通州区运河西大街",
        "环境保护/噪声污染/施工噪音",
        "replied",
    ),
    (
        "拖欠农民工工资",
        "我在昌平区一个工地干活，包工头拖欠两个月工资不给。",
        "北京市昌平区回龙观",
        "劳动和社会保障/工资福利/拖欠工资",
        "closed",
    ),
    (
        "垃圾无人清运",
        "西城区白纸坊街道一个胡同口的垃圾堆了三天没人清运。",
        "北京市西城区白纸坊街道",
        "环境保护/市容环卫/垃圾清运",
        "closed",
    ),
]


def _data() -> dict[str, Any]:
    source = resources.files("tongban.hotline") / "data" / "demo_city.json"
    return dict(json.loads(source.read_text(encoding="utf-8")))


def seed(session: Session, *, sealer: Sealer, clock: Clock) -> dict[str, int]:
    """Set up the demo hotline once: nothing is added again when its taxonomy exists."""
    data = _data()
    if repo.category(session, data["taxonomy"][0][0]) is not None:
        return {"tickets": 0}
    utility = tuple(data["utility"])
    service.import_taxonomy(
        session,
        [
            {
                "level1": l1,
                "level2": l2,
                "level3": l3,
                "label_en": en,
                "deadline_class": "utility" if f"{l1}/{l2}".startswith(utility) else "ordinary",
            }
            for l1, l2, l3, en in data["taxonomy"]
        ],
        clock=clock,
    )
    for code, name in data["districts"]:
        service.put_unit(
            session, DEMO, f"d{code}", UnitWrite(name=name, kind="district", region_code=code), clock=clock
        )
    for code, name, name_en, kind in data["departments"]:
        service.put_unit(session, DEMO, code, UnitWrite(name=name, name_en=name_en, kind=kind), clock=clock)
    for path, lead, helpers in data["rules"]:
        service.put_rule(
            session, DEMO, RuleWrite(category_path=path, lead_unit=lead, helper_units=helpers), clock=clock
        )
    for code, name, description, group, path, attributes in data["services"]:
        service.put_service(
            session,
            DEMO,
            code,
            ServiceWrite(
                name=name, description=description, group=group, category_path=path, attributes=attributes
            ),
            clock=clock,
        )
    service.import_examples(
        session,
        [
            {"id": n, "subject": s, "body": b, "category": c}
            for n, (s, b, c) in enumerate(data["examples"], 1)
        ],
        source="demo",
        clock=clock,
    )
    return {"tickets": _tickets(session, sealer=sealer, clock=clock)}


def _tickets(session: Session, *, sealer: Sealer, clock: Clock) -> int:
    """A few tickets at every stage, dated over the last days (the clock of each step is its own)."""
    start = clock.now() - dt.timedelta(days=6)
    for n, (subject, body, address, category, stage) in enumerate(_TICKETS):
        at = FixedClock(start + dt.timedelta(hours=9 + 20 * n))
        t = service.create_ticket(
            session,
            DEMO,
            TicketWrite(
                channel=Channel.PHONE,
                subject=subject,
                body=body,
                address=address,
                contact=Contact(name="演示用户", phone=f"1380000{n:04d}"),
            ),
            sealer=sealer,
            clock=at,
        )
        if stage == "received":
            continue
        service.classify(session, DEMO, t.ref, Classification(category_path=category), clock=at)
        service.dispatch(session, DEMO, t.ref, DispatchWrite(), clock=at)
        if stage == "dispatched":
            continue
        at.advance(dt.timedelta(hours=1))
        service.sign(session, DEMO, t.ref, clock=at)
        if stage == "signed":
            continue
        at.advance(dt.timedelta(hours=20))
        service.reply(
            session,
            DEMO,
            t.ref,
            ReplyWrite(reply="经现场核实，已协调相关单位处理完毕，感谢您的反映。"),
            sealer=sealer,
            clock=at,
        )
        if stage == "replied":
            continue
        at.advance(dt.timedelta(hours=4))
        service.revisit(
            session, DEMO, t.ref, VisitWrite(resolved=True, satisfaction=4 + n % 2), sealer=sealer, clock=at
        )
    return len(_TICKETS)
