"""Profiles over real HTTP: sourced data, verified values, masking by role, consent, sealing at rest;
and prefill and exemption of materials through the service."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from stdnum.cn import ric

from tests.conftest import bearer, make_account
from tongban.core import audit
from tongban.core.clock import FixedClock
from tongban.core.crypto import Sealer, new_key
from tongban.intake import service
from tongban.intake.vocab import DataSource, ProfileKind, Purpose

PROBLEM = "application/problem+json"


def id_number(body17: str) -> str:
    return body17 + ric.calc_check_digit(body17 + "0")  # stdnum expects a placeholder check character


ID = id_number("11010519900307123")  # born 1990-03-07, 17th digit 3: male
OTHER_ID = id_number("31010419850611002")  # born 1985-06-11, female


def wrong_check(number: str) -> str:
    digits = "0123456789X"
    return number[:17] + next(c for c in digits if c != number[17])


@pytest.fixture
def citizen(session: Session, clock: FixedClock, client: httpx.Client) -> dict[str, str]:
    make_account(session, clock, "citizen.li", [])
    session.commit()
    return bearer(client, "citizen.li")


@pytest.fixture
def officer(session: Session, clock: FixedClock, client: httpx.Client) -> dict[str, str]:
    make_account(session, clock, "officer.wang", ["intake_officer"])
    session.commit()
    return bearer(client, "officer.wang")


@pytest.fixture
def supervisor(session: Session, clock: FixedClock, client: httpx.Client) -> dict[str, str]:
    make_account(session, clock, "supervisor.zhao", ["intake_supervisor"])
    session.commit()
    return bearer(client, "supervisor.zhao")


def _data(profile: Any) -> dict[str, dict[str, Any]]:
    return {d["key"]: d for d in profile["data"]}


def test_anonymous_callers_have_no_profile(client: httpx.Client) -> None:
    response = client.get("/api/v1/me/profile")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)


def test_holder_records_own_data_with_source_and_time(
    client: httpx.Client, citizen: dict[str, str], clock: FixedClock
) -> None:
    empty = client.get("/api/v1/me/profile", headers=citizen)
    assert empty.status_code == 200
    assert empty.json()["data"] == []
    response = client.patch(
        "/api/v1/me/profile",
        headers=citizen,
        json={
            "data": {
                "person.name": "李明",
                "person.id_number": ID.lower(),
                "person.mobile": "+86 138-0013-8000",
            }
        },
    )
    assert response.status_code == 200, response.text
    data = _data(response.json())
    assert data["person.id_number"]["value"] == ID  # canonical: upper-case check character
    assert data["person.mobile"]["value"] == "13800138000"
    assert data["person.name"]["masked"] is False  # the holder sees their own values
    assert {d["source"] for d in data.values()} == {"applicant"}
    assert all(d["verified"] is False for d in data.values())
    assert dt.datetime.fromisoformat(str(data["person.name"]["recorded_at"])) == clock.now()


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"person.id_number": wrong_check(ID)}, "check"),
        ({"person.id_number": ID, "person.birth_date": "1990-03-08"}, "date of birth"),
        ({"person.id_number": ID, "person.sex": "female"}, "sex"),
        ({"person.mobile": "12345"}, "mobile"),
        ({"person.unknown": "x"}, "unknown data key"),
        ({"enterprise.name": "某公司"}, "enterprise profiles"),
        ({"person.birth_date": "1990-02-30"}, "YYYY-MM-DD"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_stored(
    client: httpx.Client, citizen: dict[str, str], values: dict[str, str], fragment: str
) -> None:
    response = client.patch(
        "/api/v1/me/profile", headers=citizen, json={"data": {"person.name": "李明", **values}}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert fragment in response.json()["detail"]
    assert client.get("/api/v1/me/profile", headers=citizen).json()["data"] == []


def test_verified_values_cannot_be_overwritten_by_the_holder(
    client: httpx.Client, citizen: dict[str, str], officer: dict[str, str], session: Session
) -> None:
    profile_id = client.get("/api/v1/me/profile", headers=citizen).json()["id"]
    recorded = client.post(
        f"/api/v1/intake/profiles/{profile_id}/data",
        headers=officer,
        json={
            "data": {"person.household_address": "北京市东城区东华门街道"},
            "source": "shared_data",
            "source_ref": "公安户籍信息",
            "reason": "户籍信息共享",
        },
    )
    assert recorded.status_code == 200, recorded.text
    mine = _data(client.get("/api/v1/me/profile", headers=citizen).json())
    assert mine["person.household_address"]["verified"] is True
    assert mine["person.household_address"]["source_ref"] == "公安户籍信息"
    change = client.patch(
        "/api/v1/me/profile", headers=citizen, json={"data": {"person.household_address": "上海市"}}
    )
    assert change.status_code == 409
    assert "shared_data" in change.json()["detail"]
    same = client.patch(
        "/api/v1/me/profile",
        headers=citizen,
        json={"data": {"person.household_address": "北京市东城区东华门街道"}},
    )
    assert same.status_code == 200
    # a shared-data value needs the item it came from
    missing_ref = client.post(
        f"/api/v1/intake/profiles/{profile_id}/data",
        headers=officer,
        json={"data": {"person.education": "本科"}, "source": "shared_data", "reason": "学历共享"},
    )
    assert missing_ref.status_code == 422


def test_personal_data_is_masked_by_role_and_officer_views_are_audited(
    client: httpx.Client,
    citizen: dict[str, str],
    officer: dict[str, str],
    supervisor: dict[str, str],
    session: Session,
) -> None:
    client.patch(
        "/api/v1/me/profile", headers=citizen, json={"data": {"person.name": "李明", "person.id_number": ID}}
    )
    profile_id = client.get("/api/v1/me/profile", headers=citizen).json()["id"]
    as_officer = _data(client.get(f"/api/v1/intake/profiles/{profile_id}", headers=officer).json())
    assert as_officer["person.name"]["value"] == "李明"  # personal: counter officers see it
    assert as_officer["person.id_number"]["masked"] is True
    assert as_officer["person.id_number"]["value"] != ID
    assert as_officer["person.id_number"]["value"][:6] == ID[:6]
    as_supervisor = _data(client.get(f"/api/v1/intake/profiles/{profile_id}", headers=supervisor).json())
    assert as_supervisor["person.id_number"]["value"] == ID
    views = audit.list_events(session, target_type="intake_profile", target_id=str(profile_id))
    viewed = {(e.actor, tuple(sorted(e.detail["keys"]))) for e in views if e.action == "intake.profile.view"}
    assert ("supervisor.zhao", ("person.id_number", "person.name")) in viewed
    assert ("officer.wang", ("person.name",)) in viewed  # the masked ID number was not seen


def test_citizens_cannot_reach_other_profiles(
    client: httpx.Client, citizen: dict[str, str], session: Session, clock: FixedClock
) -> None:
    make_account(session, clock, "citizen.zhou", [])
    session.commit()
    other = bearer(client, "citizen.zhou")
    profile_id = client.get("/api/v1/me/profile", headers=citizen).json()["id"]
    assert client.get(f"/api/v1/intake/profiles/{profile_id}", headers=other).status_code == 403
    assert client.get("/api/v1/me/profile", headers=other).json()["id"] != profile_id


def test_a_verified_id_number_belongs_to_one_profile(
    client: httpx.Client,
    citizen: dict[str, str],
    officer: dict[str, str],
    session: Session,
    clock: FixedClock,
) -> None:
    make_account(session, clock, "citizen.zhou", [])
    session.commit()
    other = bearer(client, "citizen.zhou")
    mine = client.get("/api/v1/me/profile", headers=citizen).json()["id"]
    theirs = client.get("/api/v1/me/profile", headers=other).json()["id"]
    # a number someone types claims nothing and reveals nothing
    assert (
        client.patch("/api/v1/me/profile", headers=other, json={"data": {"person.id_number": ID}}).status_code
        == 200
    )
    verified = {
        "data": {"person.id_number": ID},
        "source": "e_licence",
        "source_ref": "居民身份证",
        "reason": "核验",
    }
    assert (
        client.post(f"/api/v1/intake/profiles/{mine}/data", headers=officer, json=verified).status_code == 200
    )
    taken = client.post(f"/api/v1/intake/profiles/{theirs}/data", headers=officer, json=verified)
    assert taken.status_code == 409
    assert "another profile" in taken.json()["detail"]
    assert (
        client.patch(
            "/api/v1/me/profile", headers=citizen, json={"data": {"person.id_number": ID}}
        ).status_code
        == 200
    )


def test_values_are_sealed_at_rest(client: httpx.Client, citizen: dict[str, str], session: Session) -> None:
    client.patch(
        "/api/v1/me/profile", headers=citizen, json={"data": {"person.id_number": ID, "person.name": "李明"}}
    )
    stored = session.execute(text("SELECT value_sealed FROM intake_profile_datum")).scalars().all()
    assert len(stored) == 2
    assert all(ID not in s and "李明" not in s and s.startswith("v1.") for s in stored)


def test_consents_are_granted_listed_and_revoked(
    client: httpx.Client, citizen: dict[str, str], clock: FixedClock
) -> None:
    granted = client.put(
        "/api/v1/me/consents/prefill", headers=citizen, json={"purpose": "prefill", "days": 30}
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["active"] is True
    mismatch = client.put("/api/v1/me/consents/exempt", headers=citizen, json={"purpose": "prefill"})
    assert mismatch.status_code == 422
    unknown = client.put("/api/v1/me/consents/marketing", headers=citizen, json={"purpose": "marketing"})
    assert unknown.status_code == 422
    consents = client.get("/api/v1/me/profile", headers=citizen).json()["consents"]
    assert [(c["purpose"], c["active"]) for c in consents] == [("prefill", True)]
    assert client.delete("/api/v1/me/consents/prefill", headers=citizen).status_code == 204
    assert client.delete("/api/v1/me/consents/prefill", headers=citizen).status_code == 204  # idempotent
    consents = client.get("/api/v1/me/profile", headers=citizen).json()["consents"]
    assert [(c["purpose"], c["active"]) for c in consents] == [("prefill", False)]


def test_data_keys_are_published(client: httpx.Client) -> None:
    body = client.get("/api/v1/intake/data-keys").json()
    keys = {k["key"]: k for k in body["keys"]}
    assert keys["person.id_number"]["classification"] == "sensitive"
    assert {p["purpose"] for p in body["purposes"]} == {"prefill", "exempt", "policy_match"}


# --- prefill and exemption (service) -----------------------------------------------------------------


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(new_key())


def test_prefill_needs_consent_and_shows_sources(session: Session, clock: FixedClock, sealer: Sealer) -> None:
    holder = make_account(session, clock, "citizen.li", [])
    officer = make_account(session, clock, "officer.wang", ["intake_officer"])
    profile = service.my_profile(session, holder, ProfileKind.PERSON, clock=clock)
    service.set_own_data(
        session,
        holder,
        profile,
        {"person.name": "李明", "person.mobile": "13800138000"},
        sealer=sealer,
        clock=clock,
    )
    service.record_data(
        session,
        officer,
        profile,
        {"person.id_number": ID},
        source=DataSource.E_LICENCE,
        source_ref="居民身份证",
        reason="核验身份证",
        sealer=sealer,
        clock=clock,
    )
    fields = {"applicant_name": "person.name", "applicant_id": "person.id_number", "email": "person.email"}
    assert service.prefill(session, profile, fields, sealer=sealer, clock=clock) == []
    service.grant_consent(session, holder, profile, Purpose.PREFILL, days=1, clock=clock)
    filled = {p.field: p for p in service.prefill(session, profile, fields, sealer=sealer, clock=clock)}
    assert set(filled) == {"applicant_name", "applicant_id"}  # nothing known about the email
    assert filled["applicant_id"].value == ID
    assert filled["applicant_id"].verified
    assert filled["applicant_name"].source == DataSource.APPLICANT
    clock.advance(dt.timedelta(days=2))  # the consent lapses
    assert service.prefill(session, profile, fields, sealer=sealer, clock=clock) == []


def test_materials_are_exempted_by_valid_licences_and_shared_data(
    session: Session, clock: FixedClock, sealer: Sealer
) -> None:
    holder = make_account(session, clock, "citizen.li", [])
    officer = make_account(session, clock, "officer.wang", ["intake_officer"])
    profile = service.my_profile(session, holder, ProfileKind.PERSON, clock=clock)
    today = clock.now().date()
    service.record_licence(
        session,
        officer,
        profile,
        licence_type="居民身份证",
        number=ID,
        issuer="北京市公安局东城分局",
        issued_on=today - dt.timedelta(days=3000),
        valid_until=today + dt.timedelta(days=600),
        status="valid",
        data={},
        sealer=sealer,
        clock=clock,
    )
    service.record_licence(
        session,
        officer,
        profile,
        licence_type="机动车驾驶证",
        number="110105000001",
        issuer="北京市公安局交管局",
        issued_on=today - dt.timedelta(days=4000),
        valid_until=today - dt.timedelta(days=1),
        status="valid",
        data={},
        sealer=sealer,
        clock=clock,
    )
    service.record_data(
        session,
        officer,
        profile,
        {"person.household_address": "北京市东城区"},
        source=DataSource.SHARED_DATA,
        source_ref="户籍信息",
        reason="共享",
        sealer=sealer,
        clock=clock,
    )
    needs = [
        service.MaterialNeed("居民身份证", True, "e_licence", "居民身份证"),
        service.MaterialNeed("驾驶证", True, "e_licence", "机动车驾驶证"),
        service.MaterialNeed("户口簿", True, "shared_data", "户籍信息"),
        service.MaterialNeed("婚姻登记证明", False, "shared_data", "婚姻登记信息"),
        service.MaterialNeed("申请表", True, "applicant", None),
        service.MaterialNeed("承诺书", True, "exempt", None),
    ]
    before = service.material_status(session, profile, needs, clock=clock)
    assert [s.status for s in before] == ["upload", "upload", "upload", "upload", "upload", "not_needed"]
    assert "consented" in (before[0].reason_en or "")
    service.grant_consent(session, holder, profile, Purpose.EXEMPT, days=None, clock=clock)
    after = {s.name: s for s in service.material_status(session, profile, needs, clock=clock)}
    assert after["居民身份证"].status == "exempt"
    assert after["居民身份证"].satisfied_by == "e_licence:居民身份证"
    assert after["驾驶证"].status == "upload"
    assert after["驾驶证"].reason_en == "the e-licence has expired"
    assert after["户口簿"].status == "exempt"
    assert after["婚姻登记证明"].status == "upload"
    assert service.exempted_share(after.values()) == pytest.approx(3 / 5)
    # revoking the consent takes the exemptions back
    service.revoke_consent(session, holder, profile, Purpose.EXEMPT, clock=clock)
    assert service.exempted_share(
        service.material_status(session, profile, needs, clock=clock)
    ) == pytest.approx(1 / 5)


def test_a_licence_number_belongs_to_one_holder(session: Session, clock: FixedClock, sealer: Sealer) -> None:
    officer = make_account(session, clock, "officer.wang", ["intake_officer"])
    a = service.create_profile(session, officer, ProfileKind.PERSON, owner_account_id=None, clock=clock)
    b = service.create_profile(session, officer, ProfileKind.PERSON, owner_account_id=None, clock=clock)
    kwargs = dict(
        licence_type="居民身份证",
        number=OTHER_ID,
        issuer="公安局",
        issued_on=dt.date(2020, 1, 1),
        valid_until=None,
        status="valid",
        data={},
        sealer=sealer,
        clock=clock,
    )
    service.record_licence(session, officer, a, **kwargs)  # type: ignore[arg-type]
    again = service.record_licence(session, officer, a, **{**kwargs, "status": "revoked"})  # type: ignore[arg-type]
    assert again.state == "revoked"
    from tongban.core.errors import Conflict

    with pytest.raises(Conflict):
        service.record_licence(session, officer, b, **kwargs)  # type: ignore[arg-type]
