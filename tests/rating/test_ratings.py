"""Ratings over HTTP: who may rate what and when, bad reviews through rectification, follow-up and appeal."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tests.conftest import bearer
from tests.intake.helpers import submit
from tests.rating.conftest import UNIT
from tongban.core.clock import FixedClock
from tongban.core.models import AuditEvent
from tongban.intake.models import Notice

H = dict[str, dict[str, str]]
BAD = {
    "level": 1,
    "dimensions": {"efficiency": 1, "attitude": 2},
    "text": "窗口工作人员态度很差，材料让我反复补交，打电话13800138000也没人接。",
}


def rate(client: httpx.Client, headers: dict[str, str], receipt: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/api/v1/ratings/application/{receipt}", headers=headers, json=body)


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}", body
    return body


def test_closing_invites_and_a_satisfied_rating_is_stored_once(
    client: httpx.Client, quality: H, closed: str, session: Session
) -> None:
    citizen = quality["citizen.li"]
    invited = session.scalars(select(Notice.status).where(Notice.status.like("rating_%"))).all()
    assert invited == ["rating_invite"]
    mine = client.get(f"/api/v1/ratings/application/{closed}", headers=citizen).json()
    assert mine["may_rate"] == "initial"
    assert mine["case"]["outcome"] == "approved"
    assert mine["case"]["department"] == UNIT
    assert mine["case"]["materials_total"] >= 1
    given = rate(client, citizen, closed, {"level": 5, "dimensions": {"guide": 5}, "text": "很方便"})
    assert given.status_code == 201, given.text
    assert given.json()["round"] == "initial"
    assert given.json()["rectification_id"] is None
    problem(rate(client, citizen, closed, {"level": 4}), 409, "already-rated")
    listed = client.get("/api/v1/me/ratings", headers=citizen).json()
    assert [c["case"]["ref"] for c in listed] == [closed]
    assert listed[0]["may_rate"] is None
    assert listed[0]["ratings"][0]["level"] == 5


def test_ratings_refused_with_clear_errors(
    client: httpx.Client, quality: H, session: Session, clock: FixedClock
) -> None:
    running = submit(client, quality)["receipt_no"]
    citizen, other = quality["citizen.li"], quality["citizen.zhang"]
    problem(rate(client, citizen, running, {"level": 5}), 409, "case-not-closed")
    problem(rate(client, other, running, {"level": 5}), 403, "not-your-case")
    problem(rate(client, citizen, "NOPE000000000001", {"level": 5}), 404, "not-found")
    problem(rate(client, citizen, running, {"level": 6}), 422, "invalid-input")
    problem(rate(client, citizen, running, {"level": 3, "dimensions": {"speed": 3}}), 422, "invalid-input")
    assert client.post(f"/api/v1/ratings/application/{running}", json={"level": 5}).status_code == 401


def test_out_of_window_and_other_raters_refused(
    client: httpx.Client, quality: H, closed: str, clock: FixedClock
) -> None:
    problem(rate(client, quality["citizen.zhang"], closed, {"level": 1}), 403, "not-your-case")
    problem(rate(client, quality["officer.wang"], closed, {"level": 5}), 403, "not-your-case")
    window = client.get("/api/v1/quality/settings", headers=quality["analyst.ma"]).json()["window_days"]
    clock.advance(dt.timedelta(days=window, minutes=1))
    again = bearer(client, "citizen.li")  # signed in afresh: sessions end long before a rating window
    body = problem(rate(client, again, closed, {"level": 5}), 409, "rating-window-closed")
    assert "ended" in body["detail"]


def test_idempotent_retry_returns_the_first_rating(client: httpx.Client, quality: H, closed: str) -> None:
    headers = {**quality["citizen.li"], "Idempotency-Key": "rate-once-1"}
    first = rate(client, headers, closed, {"level": 4})
    again = rate(client, headers, closed, {"level": 4})
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]


def test_bad_review_rectified_then_follow_up(
    client: httpx.Client, quality: H, closed: str, session: Session, clock: FixedClock
) -> None:
    citizen, unit, analyst = quality["citizen.li"], quality["unit.zhao"], quality["analyst.ma"]
    before = client.get("/api/v1/quality/indicators", headers=analyst).json()["total"]
    given = rate(client, citizen, closed, BAD)
    assert given.status_code == 201, given.text
    rating = given.json()
    assert "13800138000" not in rating["text"]
    assert "[手机号]" in rating["text"]
    assert "attitude" in rating["reasons"]
    assert "repeat_materials" in rating["reasons"]
    rect_id = rating["rectification_id"]
    assert rect_id is not None

    # the unit sees it (another unit does not), with the deadlines: 1 and 15 working days
    mine = client.get("/api/v1/rectifications", headers=unit).json()
    assert [r["id"] for r in mine] == [rect_id]
    assert client.get("/api/v1/rectifications", headers=quality["unit.other"]).json() == []
    assert client.get(f"/api/v1/rectifications/{rect_id}", headers=quality["unit.other"]).status_code == 404
    rect = mine[0]
    assert rect["state"] == "open"
    assert rect["rater"] == "Citizen.Li"
    assert rect["level"] == 1
    opened = dt.date.fromisoformat(rect["opened_at"][:10])
    assert dt.date.fromisoformat(rect["contact_due"]) > opened
    assert (dt.date.fromisoformat(rect["rectify_due"]) - opened).days >= 15 + 4  # 15 working days, weekends

    mid = client.get("/api/v1/quality/indicators", headers=analyst).json()["total"]
    assert mid["bad"] == before["bad"] + 1
    assert mid["rectification_rate"] == 0.0

    # rectify before the return call: refused; a citizen cannot act on it
    assert (
        client.post(
            f"/api/v1/rectifications/{rect_id}/rectify", headers=unit, json={"note": "已经整改完毕"}
        ).status_code
        == 409
    )
    assert (
        client.post(
            f"/api/v1/rectifications/{rect_id}/contact", headers=citizen, json={"note": "x" * 5}
        ).status_code
        == 403
    )
    called = client.post(
        f"/api/v1/rectifications/{rect_id}/contact",
        headers=unit,
        json={"note": "已电话回访，申请人反映补交材料多次。"},
    )
    assert called.status_code == 200
    assert called.json()["state"] == "contacted"
    stale = client.post(
        f"/api/v1/rectifications/{rect_id}/rectify",
        headers={**unit, "If-Match": 'W/"1-1"'},
        json={"note": "已整改一次性告知清单"},
    )
    problem(stale, 409, "conflict")
    done = client.post(
        f"/api/v1/rectifications/{rect_id}/rectify",
        headers={**unit, "If-Match": called.headers["ETag"]},
        json={"note": "已修订一次性告知清单，窗口人员培训。"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "rectified"
    assert done.json()["follow_up_until"]
    assert session.scalars(select(Notice.status).where(Notice.status == "rating_follow_up")).all()

    after_fix = client.get("/api/v1/quality/indicators", headers=analyst).json()["total"]
    assert after_fix["rectification_rate"] == 1.0
    assert after_fix["rectified_on_time_rate"] == 1.0
    assert after_fix["satisfaction_rate"] == 0.0

    mine = client.get(f"/api/v1/ratings/application/{closed}", headers=citizen).json()
    assert mine["may_rate"] == "follow_up"
    assert mine["rectification"]["rectify_note"].startswith("已修订")
    follow = rate(client, citizen, closed, {"level": 4, "text": "整改后满意"})
    assert follow.status_code == 201
    assert follow.json()["round"] == "follow_up"
    problem(rate(client, citizen, closed, {"level": 5}), 409, "already-rated")

    final = client.get("/api/v1/quality/indicators", headers=analyst).json()["total"]
    assert final["satisfaction_rate"] == 1.0
    assert final["bad"] == before["bad"] + 1
    assert client.get(f"/api/v1/rectifications/{rect_id}", headers=unit).json()["state"] == "closed"
    actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("rating.%"))))
    assert {"rating.rate", "rating.rectification.open", "rating.rectification.contact"} <= actions
    assert "rating.rectification.rectify" in actions


def test_appeal_upheld_strikes_the_rating_out(client: httpx.Client, quality: H, closed: str) -> None:
    unit, analyst = quality["unit.zhao"], quality["analyst.ma"]
    rect_id = rate(
        client, quality["citizen.li"], closed, {"level": 2, "anonymous": True, "text": "乱写的"}
    ).json()["rectification_id"]
    rect = client.get(f"/api/v1/rectifications/{rect_id}", headers=unit).json()
    assert rect["anonymous"]
    assert rect["rater"] is None
    assert rect["contact_due"] is None
    assert (
        client.post(
            f"/api/v1/rectifications/{rect_id}/contact", headers=unit, json={"note": "回访一下"}
        ).status_code
        == 409
    )
    assert client.get("/api/v1/quality/indicators", headers=analyst).json()["total"]["bad"] == 1
    filed = client.post(
        f"/api/v1/rectifications/{rect_id}/appeal",
        headers=quality["super.he"],
        json={"note": "评价内容与办件无关"},
    )
    assert filed.status_code == 200
    assert filed.json()["appeal"] == "pending"
    again = client.post(f"/api/v1/rectifications/{rect_id}/appeal", headers=unit, json={"note": "再申诉一次"})
    problem(again, 409, "conflict")
    self_decided = client.post(
        f"/api/v1/rectifications/{rect_id}/appeal-decision",
        headers=quality["super.he"],
        json={"upheld": True, "note": "自己审自己"},
    )
    problem(self_decided, 403, "forbidden")
    assert (
        client.post(
            f"/api/v1/rectifications/{rect_id}/appeal-decision",
            headers=unit,
            json={"upheld": True, "note": "单位自己"},
        ).status_code
        == 403
    )
    decided = client.post(
        f"/api/v1/rectifications/{rect_id}/appeal-decision",
        headers=quality["super.lu"],
        json={"upheld": True, "note": "经核实为误评，予以剔除。"},
    )
    assert decided.status_code == 200
    assert decided.json()["state"] == "void"
    total = client.get("/api/v1/quality/indicators", headers=analyst).json()["total"]
    assert total["bad"] == 0
    assert total["rated"] == 0  # struck out of every figure, the share rated included
    assert total["rating_rate"] == 0.0
    assert total["satisfaction_rate"] is None


def test_appeal_rejected_keeps_the_rectification(client: httpx.Client, quality: H, closed: str) -> None:
    unit = quality["unit.zhao"]
    rect_id = rate(client, quality["citizen.li"], closed, BAD).json()["rectification_id"]
    client.post(f"/api/v1/rectifications/{rect_id}/appeal", headers=unit, json={"note": "申请人诉求不合理"})
    pending = client.post(
        f"/api/v1/rectifications/{rect_id}/contact", headers=unit, json={"note": "回访申请人"}
    )
    problem(pending, 409, "conflict")
    decided = client.post(
        f"/api/v1/rectifications/{rect_id}/appeal-decision",
        headers=quality["super.he"],
        json={"upheld": False, "note": "评价属实，应整改。"},
    )
    assert decided.json()["appeal"] == "rejected"
    assert decided.json()["state"] == "open"
    assert (
        client.post(
            f"/api/v1/rectifications/{rect_id}/contact", headers=unit, json={"note": "回访申请人"}
        ).status_code
        == 200
    )


def test_deadlines_escalate_once_and_follow_up_period_closes(
    client: httpx.Client, quality: H, closed: str, session: Session, clock: FixedClock
) -> None:
    from tongban.rating import service

    rect_id = rate(client, quality["citizen.li"], closed, BAD).json()["rectification_id"]
    clock.advance(dt.timedelta(days=4))
    assert service.run_deadlines(session, clock=clock) == {"contact_escalated": 1}
    assert service.run_deadlines(session, clock=clock) == {}
    session.commit()
    unit = bearer(client, "unit.zhao")  # signed in afresh after days pass
    overdue = client.get("/api/v1/rectifications?overdue=true", headers=unit).json()
    assert [r["id"] for r in overdue] == [rect_id]
    assert overdue[0]["overdue"] == ["contact"]
    called = client.post(
        f"/api/v1/rectifications/{rect_id}/contact", headers=unit, json={"note": "已回访（逾期）"}
    )
    assert called.status_code == 200, called.text
    clock.advance(dt.timedelta(days=30))
    assert service.run_deadlines(session, clock=clock) == {"rectify_escalated": 1}
    session.commit()
    unit = bearer(client, "unit.zhao")
    fixed = client.post(
        f"/api/v1/rectifications/{rect_id}/rectify", headers=unit, json={"note": "已整改（逾期）"}
    )
    assert fixed.status_code == 200, fixed.text
    total = client.get("/api/v1/quality/indicators", headers=bearer(client, "analyst.ma")).json()["total"]
    assert total["rectification_rate"] == 1.0
    assert total["rectified_on_time_rate"] == 0.0
    clock.advance(dt.timedelta(days=16))
    assert service.run_deadlines(session, clock=clock) == {"closed": 1}
    session.commit()
    problem(rate(client, bearer(client, "citizen.li"), closed, {"level": 5}), 409, "already-rated")


def test_reminder_once_within_the_window(
    client: httpx.Client, quality: H, closed: str, session: Session, clock: FixedClock, app: FastAPI
) -> None:
    from tongban.rating import service

    seal = app.state.runtime.sealer
    assert service.remind(session, clock=clock, sealer=seal) == 0  # too early
    clock.advance(dt.timedelta(days=3, minutes=1))
    assert service.remind(session, clock=clock, sealer=seal) == 1
    assert service.remind(session, clock=clock, sealer=seal) == 0  # at most one reminder by default
    session.commit()
    statuses = session.scalars(select(Notice.status).where(Notice.status.like("rating_%"))).all()
    assert sorted(statuses) == ["rating_invite", "rating_reminder"]


def test_settings_change_the_deadlines(client: httpx.Client, quality: H, closed: str) -> None:
    assert (
        client.put(
            "/api/v1/quality/settings", headers=quality["analyst.ma"], json={"rectify_working_days": 5}
        ).status_code
        == 403
    )
    bad = client.put(
        "/api/v1/quality/settings", headers=quality["super.he"], json={"rectify_working_days": 0}
    )
    problem(bad, 422, "invalid-input")
    changed = client.put(
        "/api/v1/quality/settings", headers=quality["super.he"], json={"rectify_working_days": 5}
    )
    assert changed.status_code == 200
    assert changed.json()["rectify_working_days"] == 5
    rect_id = rate(client, quality["citizen.li"], closed, BAD).json()["rectification_id"]
    rect = client.get(f"/api/v1/rectifications/{rect_id}", headers=quality["unit.zhao"]).json()
    span = dt.date.fromisoformat(rect["rectify_due"]) - dt.date.fromisoformat(rect["opened_at"][:10])
    assert 5 <= span.days <= 9


def test_an_application_closed_before_rating_existed_is_read_without_writing_then_recorded(
    client: httpx.Client, quality: H, closed: str, session: Session, clock: FixedClock
) -> None:
    from tongban.rating import service
    from tongban.rating.models import Case

    session.execute(delete(Case))
    session.commit()
    mine = client.get(f"/api/v1/ratings/application/{closed}", headers=quality["citizen.li"])
    assert mine.status_code == 200, mine.text
    assert mine.json()["may_rate"] == "initial"
    assert session.scalar(select(func.count()).select_from(Case)) == 0  # a GET writes nothing
    assert service.sync_applications(session, clock=clock) == 1
    assert service.sync_applications(session, clock=clock) == 0
    session.commit()
    assert rate(client, quality["citizen.li"], closed, {"level": 5}).status_code == 201
