"""Open311 GeoReport v2 over real HTTP: every endpoint in XML and JSON, the spec's filters and errors, the
tolerated quirks of real clients, ``extensions=true``, API keys and their rate limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import bearer
from tests.hotline.conftest import act, new_ticket
from tests.hotline.open311_support import BASE, ensure_installed, errors_of, issue_key, put_services, xml_of
from tongban.core.auth import system_principal
from tongban.core.clock import FixedClock
from tongban.core.config import Settings
from tongban.core.db import make_engine, make_sessionmaker
from tongban.core.errors import Busy
from tongban.core.migrate import upgrade
from tongban.core.models import AuditEvent
from tongban.hotline import apikeys, open311
from tongban.hotline.models import ApiKeyWindow, Ticket
from tongban.hotline.schemas import ApiKeyWrite
from tongban.hotline.vocab import ADMIN
from tongban.web.app import create_app

EN = {"Accept-Language": "en"}


@pytest.fixture
def o311(app: FastAPI, client: httpx.Client, hl: dict[str, dict[str, str]]) -> str:
    """Open311 served, the test services defined; an API key."""
    ensure_installed(app)
    put_services(client, hl["hl.admin"])
    return issue_key(client, hl["hl.admin"])


def _post(client: httpx.Client, key: str | None, fmt: str = "json", /, **fields: Any) -> httpx.Response:
    data: dict[str, Any] = {"service_code": "pothole", "lat": "39.9087", "long": "116.3975"}
    if fields.get("service_code", "pothole") == "pothole":
        data["attribute[depth]"] = "12"  # required by the pothole's definition
    if key is not None:
        data["api_key"] = key
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(f"{BASE}/requests.{fmt}", data=data, headers=EN)


def _tickets(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)


# --- discovery, services, definitions --------------------------------------------------------------------


def test_discovery_in_both_formats(o311: str, client: httpx.Client) -> None:
    for path in ("/open311/discovery", BASE + "/discovery"):
        doc = client.get(path + ".json").json()
        assert doc["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
        assert doc["endpoints"][0]["url"].endswith("/open311/v2")
        assert set(doc["endpoints"][0]["formats"]) == {"text/xml", "application/json"}
        assert doc["changeset"].endswith("+08:00")
        root = xml_of(client.get(path + ".xml"))
        assert root.tag == "discovery"
        assert [f.text for f in root.iter("format")] == ["text/xml", "application/json"]
        assert root.findtext("endpoints/endpoint/type") == "production"


def test_service_list_in_json_and_xml(o311: str, client: httpx.Client) -> None:
    r = client.get(BASE + "/services.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    services = r.json()
    assert [s["service_code"] for s in services] == ["light", "pothole"]  # the inactive one is not listed
    pothole = services[1]
    assert pothole == {
        "service_code": "pothole",
        "service_name": "Pothole",
        "description": "A hole in the road surface.",
        "metadata": True,
        "type": "realtime",
        "keywords": "road, hole, 坑",
        "group": "streets",
    }
    assert services[0]["metadata"] is False
    root = xml_of(client.get(BASE + "/services.xml"))
    assert root.tag == "services"
    items = root.findall("service")
    assert [s.findtext("service_code") for s in items] == ["light", "pothole"]
    assert items[1].findtext("metadata") == "true"
    assert items[1].findtext("keywords") == "road, hole, 坑"


def test_service_definition_in_json_and_xml(o311: str, client: httpx.Client) -> None:
    d = client.get(BASE + "/services/pothole.json").json()
    assert d["service_code"] == "pothole"
    assert [a["code"] for a in d["attributes"]] == ["depth", "lane", "hazards", "seen", "info"]
    depth, lane, hazards = d["attributes"][:3]
    assert depth == {
        "variable": True,
        "code": "depth",
        "datatype": "number",
        "required": True,
        "datatype_description": None,
        "order": 1,
        "description": "Depth in centimetres",
    }
    assert lane["values"] == [{"key": "1", "name": "Left"}, {"key": "2", "name": "Right"}]
    assert hazards["datatype"] == "multivaluelist"
    assert d["attributes"][4]["variable"] is False
    root = xml_of(client.get(BASE + "/services/pothole.xml"))
    assert root.tag == "service_definition"
    attrs = root.findall("attributes/attribute")
    assert [a.findtext("code") for a in attrs] == ["depth", "lane", "hazards", "seen", "info"]
    assert [v.findtext("key") for v in attrs[1].findall("values/value")] == ["1", "2"]
    assert attrs[0].findtext("required") == "true"
    # A service without attributes has an empty definition; unknown and inactive ones are not found.
    assert client.get(BASE + "/services/light.json").json() == {"service_code": "light", "attributes": []}
    for code in ("nope", "gone"):
        for fmt in ("json", "xml"):
            r = client.get(f"{BASE}/services/{code}.{fmt}", headers=EN)
            assert r.status_code == 404
            assert errors_of(r)[0]["code"] == "404"
            assert code in errors_of(r)[0]["description"]


# --- POST, tokens, GET one -------------------------------------------------------------------------------


def test_post_then_read_back_without_personal_data(
    o311: str, client: httpx.Client, clock: FixedClock, session: Session
) -> None:
    r = _post(
        client,
        o311,
        description="Deep hole in front of No. 88, a bike fell in.",
        address_string="建国路88号, 100020",
        address_id="BJ-CY-000123",
        email="li.ming@example.com",
        device_id="device-77",
        account_id="acct-9",
        first_name="Ming",
        last_name="Li",
        phone="(138) 1234-5678",
        media_url="https://img.example.com/hole.jpg",
        **{
            "attribute[lane]": "2",
            "attribute[hazards][]": ["water", "dark"],
            "attribute[seen]": "2026-03-01T20:00Z",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    created = r.json()
    assert isinstance(created, list)
    assert len(created) == 1
    sid, token = created[0]["service_request_id"], created[0]["token"]
    assert isinstance(sid, str)
    assert sid.startswith("20260302")
    assert isinstance(token, str)
    assert len(token) >= 16
    assert sid in created[0]["service_notice"]
    assert created[0]["account_id"] is None
    assert r.headers["x-ratelimit-limit"] == "1000"

    t = session.scalars(select(Ticket).where(Ticket.ref == sid)).one()
    assert t.channel == "open311"
    assert t.api_key_id is not None
    assert t.contact_hint == "138****5678"
    assert t.attributes == {
        "depth": 12,
        "lane": "2",
        "hazards": ["water", "dark"],
        "seen": "2026-03-02T04:00:00+08:00",
        "@address_id": "BJ-CY-000123",
    }
    assert t.category_path == "城乡建设/市政设施/道路维修"  # the service's category

    tok = client.get(f"{BASE}/tokens/{token}.json").json()
    assert tok == [{"service_request_id": sid, "token": token}]
    root = xml_of(client.get(f"{BASE}/tokens/{token}.xml"))
    assert root.findtext("request/service_request_id") == sid

    r = client.get(f"{BASE}/requests/{sid}.json", headers=EN)
    assert r.status_code == 200
    [item] = r.json()
    assert item["service_request_id"] == sid
    assert item["status"] == "open"
    assert item["status_notes"] == "Received"
    assert item["service_code"] == "pothole"
    assert item["service_name"] == "Pothole"
    assert item["description"] == "Deep hole in front of No. 88, a bike fell in."
    assert item["address"] == "建国路88号, 100020"
    assert item["address_id"] == "BJ-CY-000123"
    assert item["zipcode"] == "100020"
    assert item["lat"] == pytest.approx(39.9087)
    assert item["long"] == pytest.approx(116.3975)
    assert item["media_url"] == "https://img.example.com/hole.jpg"
    assert item["requested_datetime"] == "2026-03-02T17:00:00+08:00"
    assert item["updated_datetime"] == "2026-03-02T17:00:00+08:00"
    assert item["expected_datetime"] is None
    assert "extended_attributes" not in item
    assert "notes" not in item
    everything = client.get(f"{BASE}/requests.json").text + client.get(f"{BASE}/requests/{sid}.xml").text
    for secret in ("Ming", "li.ming", "1234", "5678", "device-77", "acct-9", token):
        assert secret not in everything.replace(sid, "")

    root = xml_of(client.get(f"{BASE}/requests/{sid}.xml"))
    [request] = root.findall("request")
    assert request.findtext("service_request_id") == sid
    assert request.findtext("requested_datetime") == "2026-03-02T17:00:00+08:00"
    assert request.findtext("lat") == "39.9087"
    assert request.find("expected_datetime") is not None
    assert not request.findtext("expected_datetime")

    # POST answered in XML.
    r = _post(client, o311, "xml", address_string="朝阳路1号", lat=None, long=None)
    assert r.status_code == 200
    root = xml_of(r)
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id", "").startswith("20260302")
    assert root.findtext("request/token")
    assert _tickets(session) == 2


def test_post_errors_follow_the_spec(
    o311: str, client: httpx.Client, session: Session, hl: dict[str, dict[str, str]]
) -> None:
    def refused(status: int, response: httpx.Response, *words: str) -> None:
        assert response.status_code == status, response.text
        errors = errors_of(response)
        assert errors
        assert all(e["code"] == str(status) for e in errors)
        text = " ".join(e["description"] for e in errors)
        for w in words:
            assert w in text, text

    refused(403, _post(client, None), "api_key")
    refused(403, _post(client, "o311_not-a-key"), "api_key")
    refused(403, _post(client, None, "xml"), "api_key")
    refused(400, _post(client, o311, service_code=None), "service_code")
    refused(404, _post(client, o311, service_code="nope"), "nope")
    refused(404, _post(client, o311, service_code="gone"), "gone")
    refused(400, _post(client, o311, lat="91"), "lat")
    refused(400, _post(client, o311, long="abc"), "long")
    refused(400, _post(client, o311, lat="nan"), "lat")
    refused(400, _post(client, o311, long=None), "lat and long")
    refused(400, _post(client, o311, lat=None, long=None), "location")
    refused(400, _post(client, o311, **{"attribute[depth]": None}), "attribute[depth] is required")
    refused(400, _post(client, o311, **{"attribute[depth]": "deep"}), "attribute[depth]", "number")
    refused(400, _post(client, o311, **{"attribute[lane]": "3"}), "attribute[lane]", "3")
    refused(400, _post(client, o311, **{"attribute[lane][]": ["1", "2"]}), "attribute[lane] takes one value")
    refused(400, _post(client, o311, **{"attribute[hazards][]": ["water", "fire"]}), "fire")
    refused(400, _post(client, o311, **{"attribute[seen]": "yesterday"}), "attribute[seen]")
    refused(400, _post(client, o311, **{"attribute[colour]": "red"}), "attribute[colour]")
    refused(400, _post(client, o311, description="x" * 4001), "description")
    refused(400, _post(client, o311, description="bad\x00byte"), "description")
    refused(400, _post(client, o311, phone="call me"), "phone")
    refused(400, _post(client, o311, email="nobody"), "email")
    refused(400, _post(client, o311, media_url="javascript:alert(1)"), "media_url")
    refused(404, _post(client, o311, jurisdiction_id="sfgov.org"), "sfgov.org")
    # Several problems of the attributes come together.
    r = _post(client, o311, **{"attribute[depth]": None, "attribute[lane]": "9"})
    assert r.status_code == 400
    assert len(errors_of(r)) == 2
    # A body that is neither a form nor JSON.
    r = client.post(
        f"{BASE}/requests.json",
        params={"api_key": o311},
        content=b"<x/>",
        headers={"Content-Type": "text/plain"},
    )
    refused(400, r)
    assert _tickets(session) == 0
    # The right jurisdiction (any case) is fine; so is a JSON body, with its attributes as an object.
    assert _post(client, o311, jurisdiction_id="TONGBAN.local").status_code == 200
    body = {
        "api_key": o311,
        "service_code": "pothole",
        "address_string": "东三环",
        "attribute": {"depth": 3, "hazards": ["dark"]},
    }
    r = client.post(f"{BASE}/requests.json", json=body)
    assert r.status_code == 200, r.text
    assert _tickets(session) == 2
    # A revoked key is refused.
    key_id = client.get("/api/v1/hotline/api-keys", headers=hl["hl.admin"]).json()[0]["id"]
    assert client.post(f"/api/v1/hotline/api-keys/{key_id}/revoke", headers=hl["hl.admin"]).status_code == 200
    refused(403, _post(client, o311), "revoked")


def test_quirks_of_real_clients(o311: str, client: httpx.Client, session: Session) -> None:
    # '//' in the path, at either place.
    assert client.get(BASE + "//services.json").json()[0]["service_code"] == "light"
    assert client.get("/open311//v2/services/pothole.json").json()["service_code"] == "pothole"
    # The singular service/{code}.
    assert client.get(BASE + "/service/pothole.json").json()["service_code"] == "pothole"
    assert xml_of(client.get(BASE + "/service/pothole.xml")).findtext("service_code") == "pothole"
    # api_key and jurisdiction_id in the query string of a POST, and a '//' too.
    r = client.post(
        BASE + "//requests.json",
        params={"api_key": o311, "jurisdiction_id": "tongban.local"},
        data={"service_code": "light", "address_string": "东三环中路"},
    )
    assert r.status_code == 200, r.text
    sid = r.json()[0]["service_request_id"]
    # ... a wrong jurisdiction in the query string is refused even so.
    r = client.post(
        BASE + "/requests.json",
        params={"api_key": o311, "jurisdiction_id": "elsewhere.gov"},
        data={"service_code": "light", "address_string": "东三环中路"},
    )
    assert r.status_code == 404
    # No extension: XML, the spec's required format, unless Accept asks for JSON.
    assert xml_of(client.get(BASE + "/services")).tag == "services"
    assert (
        client.get(BASE + "/services", headers={"Accept": "application/json"}).json()[0]["service_code"]
        == "light"
    )
    assert xml_of(client.get(f"{BASE}/requests/{sid}")).findtext("request/service_request_id") == sid
    # Upper-case format; an empty optional parameter is as good as none.
    assert client.get(BASE + "/services.JSON").json()[0]["service_code"] == "light"
    assert len(client.get(BASE + "/requests.json", params={"status": "", "service_code": ""}).json()) == 1
    # Multipart forms are read too.
    r = client.post(
        BASE + "/requests.json",
        data={"api_key": o311, "service_code": "light", "address_string": "三里屯"},
        files={"media": ("x.jpg", b"\xff\xd8", "image/jpeg")},
    )
    assert r.status_code == 200, r.text


def test_unknown_things_and_methods(o311: str, client: httpx.Client) -> None:
    for path, status in (
        (BASE + "/requests/20990101999.json", 404),
        (BASE + "/requests/../../etc.json", 404),
        (BASE + "/tokens/nope.json", 404),
        (BASE + "/services.html", 404),
        (BASE + "/nothing.json", 404),
        ("/open311/v3/services.json", 404),
    ):
        r = client.get(path, headers=EN)
        assert r.status_code == status, (path, r.text)
        assert errors_of(r)[0]["code"] == str(status)
    r = client.delete(BASE + "/requests.json")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    assert errors_of(r)[0]["code"] == "405"
    assert errors_of(client.put(BASE + "/services.xml"))[0]["code"] == "405"
    # A wrong jurisdiction on a GET, in both formats.
    for fmt in ("json", "xml"):
        r = client.get(f"{BASE}/services.{fmt}", params={"jurisdiction_id": "sfgov.org"}, headers=EN)
        assert r.status_code == 404
        assert "jurisdiction_id" in errors_of(r)[0]["description"]


# --- GET requests with the spec's filters ------------------------------------------------------------------


def test_get_requests_filters(
    o311: str, client: httpx.Client, clock: FixedClock, hl: dict[str, dict[str, str]]
) -> None:
    made: dict[str, str] = {}
    old = _post(client, o311, description="An old hole").json()[0]["service_request_id"]  # day 0
    clock.advance(dt.timedelta(days=100))
    for n, (code, day) in enumerate((("pothole", 0), ("light", 1), ("light", 2), ("pothole", 3))):
        if n:
            clock.advance(dt.timedelta(days=1))
        r = _post(client, o311, service_code=code, description=f"request {n} on day {day}")
        made[f"{code}{day}"] = r.json()[0]["service_request_id"]
    # A web ticket without a service is not an Open311 request.
    web = new_ticket(client)["ref"]
    # One is cancelled: closed for Open311.
    act(client, bearer(client, "op.li"), made["light1"], "cancel", {"note": "test call"})  # signed in anew

    def ids(fmt: str = "json", **params: str) -> list[str]:
        r = client.get(f"{BASE}/requests.{fmt}", params=params, headers=EN)
        assert r.status_code == 200, r.text
        if fmt == "xml":
            return [e.findtext("service_request_id") or "" for e in xml_of(r).findall("request")]
        return [i["service_request_id"] for i in r.json()]

    # Default: the last 90 days (of the clock), newest first; the web ticket and the old one are not there.
    newest_first = [made["pothole3"], made["light2"], made["light1"], made["pothole0"]]
    assert ids() == newest_first
    assert ids("xml") == newest_first
    assert web not in ids()
    assert old not in ids()
    assert ids(service_code="light") == [made["light2"], made["light1"]]
    assert ids(service_code="light,pothole") == newest_first
    assert ids(service_code="light, nope") == [made["light2"], made["light1"]]
    assert ids(status="closed") == [made["light1"]]
    assert ids(status="open") == [made["pothole3"], made["light2"], made["pothole0"]]
    assert ids(status="open,closed") == newest_first
    assert ids("xml", status="closed", service_code="light") == [made["light1"]]
    # Dates (w3, any zone; the range is inclusive).
    day1 = dt.datetime(2026, 6, 11, 17, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # T0 + 101 days
    assert ids(start_date=day1.isoformat(), end_date=day1.isoformat()) == [made["light1"]]
    assert ids(start_date="2026-06-11T09:00:00Z", end_date="2026-06-12T09:00:00Z") == [
        made["light2"],
        made["light1"],
    ]
    assert ids(start_date="2026-06-12") == [made["pothole3"], made["light2"]]
    assert ids(end_date="2026-03-03T00:00:00+08:00") == [old]
    assert ids(start_date="2026-03-01T00:00:00-05:00", end_date="2026-05-01T00:00:00-05:00") == [old]
    # service_request_id overrides every other filter (and skips what is not an Open311 request).
    assert ids(service_request_id=f"{old},{made['light1']},{web}", status="open") == [made["light1"], old]
    # The page / page_size extension.
    assert ids(page_size="3") == newest_first[:3]
    assert ids(page_size="3", page="2") == newest_first[3:]
    assert ids(page_size="3", page="3") == []
    # The spec's errors: 400 for what cannot be served.
    for params in (
        {"status": "pending"},
        {"start_date": "yesterday"},
        {"end_date": "2026-13-01T00:00:00Z"},
        {"start_date": "2026-01-01T00:00:00Z", "end_date": "2025-12-01T00:00:00Z"},
        {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
        {"page_size": "1001"},
        {"page": "0"},
        {"page": "x"},
    ):
        for fmt in ("json", "xml"):
            r = client.get(f"{BASE}/requests.{fmt}", params=params, headers=EN)
            assert r.status_code == 400, (params, r.text)
            assert errors_of(r)[0]["code"] == "400"


def test_extensions_show_the_hotline_states(
    o311: str, client: httpx.Client, clock: FixedClock, hl: dict[str, dict[str, str]]
) -> None:
    sid = _post(client, o311, description="Hole at the crossing").json()[0]["service_request_id"]
    act(client, hl["op.li"], sid, "classify", {"category_path": "城乡建设/市政设施/道路维修"})
    clock.advance(dt.timedelta(hours=1))
    act(client, hl["op.li"], sid, "dispatch", {})
    act(client, hl["u.roads"], sid, "sign")
    clock.advance(dt.timedelta(hours=2))
    act(client, hl["u.roads"], sid, "reply", {"reply": "已修复，联系人王师傅 13900001111。"})

    plain = client.get(f"{BASE}/requests/{sid}.json", headers=EN).json()[0]
    assert plain["status"] == "open"
    assert plain["agency_responsible"] == "市交通委员会"
    assert plain["expected_datetime"] == "2026-03-09T18:00:00+08:00"  # 7 days after the dispatch
    assert "notes" not in plain

    [item] = client.get(f"{BASE}/requests/{sid}.json", params={"extensions": "true"}, headers=EN).json()
    ext = item["extended_attributes"]
    assert ext["hotline_status"] == "replied"
    assert ext["channel"] == "open311"
    assert ext["dispatch_count"] == 1
    notes = item["notes"]
    assert [n["type"] for n in notes] == ["received", "dispatched", "signed", "replied"]
    assert [n["status"] for n in notes] == ["received", "dispatched", "signed", "replied"]
    assert notes[1]["agency"] == "市交通委员会"
    assert notes[0]["datetime"] == "2026-03-02T17:00:00+08:00"
    assert notes[3]["datetime"] == "2026-03-02T20:00:00+08:00"
    assert all(n["summary"] and n["description"] for n in notes)
    # The reply's free text (here with a name and a phone number) is not published.
    assert "王师傅" not in json.dumps(item, ensure_ascii=False)
    assert "13900001111" not in json.dumps(item)

    root = xml_of(client.get(f"{BASE}/requests.xml", params={"extensions": "true"}))
    request = root.find("request")
    assert request is not None
    assert request.findtext("extended_attributes/hotline_status") == "replied"
    assert [n.findtext("type") for n in request.findall("notes/note")] == [
        "received",
        "dispatched",
        "signed",
        "replied",
    ]

    # The return visit closes it: Open311 "closed", updated when it was closed.
    clock.advance(dt.timedelta(days=1))
    act(client, bearer(client, "op.li"), sid, "revisit", {"resolved": True, "satisfaction": 5})
    clock.advance(dt.timedelta(days=1))
    [item] = client.get(f"{BASE}/requests/{sid}.json", params={"extensions": "true"}).json()
    assert item["status"] == "closed"
    assert item["updated_datetime"] == "2026-03-03T20:00:00+08:00"
    assert item["extended_attributes"]["hotline_status"] == "closed"
    assert item["notes"][-1]["type"] == "revisited"


def test_tickets_of_other_channels_show_their_subject_only(
    o311: str, client: httpx.Client, hl: dict[str, dict[str, str]]
) -> None:
    t = new_ticket(client, hl["citizen.chen"], service_code="light", subject="路灯不亮")
    assert client.get(f"{BASE}/requests/{t['ref']}.json").status_code == 200
    [item] = client.get(f"{BASE}/requests/{t['ref']}.json").json()
    assert item["description"] == "路灯不亮"
    assert "陈" not in json.dumps(item, ensure_ascii=False)
    other = new_ticket(client, hl["citizen.chen"])  # no service: not an Open311 request
    assert client.get(f"{BASE}/requests/{other['ref']}.json").status_code == 404


# --- API keys --------------------------------------------------------------------------------------------


def test_api_keys_are_issued_listed_revoked_and_audited(
    app: FastAPI, client: httpx.Client, hl: dict[str, dict[str, str]], session: Session, clock: FixedClock
) -> None:
    ensure_installed(app)
    admin = hl["hl.admin"]
    url = "/api/v1/hotline/api-keys"
    for who in ("op.li", "sup.wang", "citizen.chen"):
        assert client.get(url, headers=hl[who]).status_code == 403
        assert client.post(url, json={"name": "x"}, headers=hl[who]).status_code == 403
    assert client.get(url).status_code == 401
    r = client.post(url, json={"name": "Street app", "rate_per_minute": 30}, headers=admin)
    assert r.status_code == 201
    issued = r.json()
    key = issued["key"]
    assert key.startswith("o311_")
    assert len(key) > 40
    assert issued["prefix"] == key[:12]
    listed = client.get(url, headers=admin).json()
    assert [(k["name"], k["rate_per_minute"], k["key"]) for k in listed] == [("Street app", 30, None)]
    assert key not in client.get(url, headers=admin).text
    assert client.post(url, json={"name": ""}, headers=admin).status_code == 422
    assert client.post(url, json={"name": "x", "rate_per_minute": 0}, headers=admin).status_code == 422
    r = client.post(f"{url}/{issued['id']}/revoke", headers=admin)
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    assert client.post(f"{url}/{issued['id']}/revoke", headers=admin).status_code == 200  # no change
    assert client.post(f"{url}/99999/revoke", headers=admin).status_code == 404
    audits = session.scalars(
        select(AuditEvent).where(AuditEvent.target_type == "hotline_api_key").order_by(AuditEvent.id)
    ).all()
    assert [(a.action, a.actor) for a in audits] == [
        ("hotline.api_key.issue", "hl.admin"),
        ("hotline.api_key.revoke", "hl.admin"),
    ]
    assert all(key not in json.dumps(a.detail) for a in audits)

    # The functions the command line calls.
    cli = system_principal("cli", frozenset({ADMIN}))
    made = apikeys.issue_key(
        session, cli, ApiKeyWrite(name="batch importer", rate_per_minute=600), clock=clock
    )
    assert made.key
    assert apikeys.check_key(session, made.key, clock=clock).ok
    assert [k.name for k in apikeys.list_keys(session, cli)] == ["Street app", "batch importer"]
    assert apikeys.revoke_key(session, cli, made.id, clock=clock).revoked_at is not None
    assert apikeys.check_key(session, made.key, clock=clock).refused == "revoked"


def test_rate_limit_per_key_per_minute(
    app: FastAPI, client: httpx.Client, hl: dict[str, dict[str, str]], clock: FixedClock
) -> None:
    ensure_installed(app)
    put_services(client, hl["hl.admin"])
    slow, other = (
        issue_key(client, hl["hl.admin"], "slow", rate=3),
        issue_key(client, hl["hl.admin"], "other", rate=3),
    )
    clock.advance(dt.timedelta(seconds=15))  # 09:00:15: 45 s left in the minute
    for n in range(3):
        r = _post(client, slow)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining"] == str(2 - n)
    for fmt in ("json", "xml"):
        r = _post(client, slow, fmt)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "45"
        assert errors_of(r)[0]["code"] == "429"
    # A failed request counts too; another key has its own count.
    assert _post(client, other, service_code="nope").status_code == 404
    assert _post(client, other).status_code == 200
    # The next minute starts afresh.
    clock.advance(dt.timedelta(seconds=45))
    assert _post(client, slow).status_code == 200


@contextmanager
def _fresh_database(tmp_path: Path) -> Iterator[str]:
    """A database of its own (real commits from several threads), SQLite or PostgreSQL as the suite runs."""
    configured = os.environ.get("TONGBAN_TEST_DATABASE_URL")
    if not configured:
        yield f"sqlite:///{tmp_path / 'keys.sqlite3'}"
        return
    url = Settings(database_url=configured).resolved_database_url()
    name = f"test_keys_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[Engine]:
    with _fresh_database(tmp_path) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()


def test_concurrent_requests_of_one_key_are_all_counted(own_engine: Engine) -> None:
    """Many workers counting the same key in the same new minute: no error, every request counted once,
    exactly the key's rate let through."""
    sessions = make_sessionmaker(own_engine)
    clock = FixedClock(dt.datetime(2026, 3, 2, 9, 0, 30, tzinfo=dt.UTC))
    with sessions() as s:
        made = apikeys.issue_key(
            s,
            system_principal("cli", frozenset({ADMIN})),
            ApiKeyWrite(name="busy", rate_per_minute=25),
            clock=clock,
        )
        s.commit()
    assert made.key
    key = made.key
    results: list[apikeys.KeyCheck] = []
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(5):
                results.append(apikeys.check_key_apart(sessions, key, clock=clock))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(results) == 40
    assert sorted(r.count for r in results) == list(range(1, 41))
    assert sum(r.ok for r in results) == 25
    assert sum(r.limited for r in results) == 15
    with sessions() as s:
        assert s.scalar(select(ApiKeyWindow.count)) == 40


def test_errors_raised_outside_the_handlers_keep_the_spec_format(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``install`` (called by ``create_app``) answers 503s and 500s under ``/open311/`` in the spec's format
    (an app made for the test, without its lifespan)."""
    settings = Settings(
        data_dir=tmp_path, database_url=engine.url.render_as_string(hide_password=False), log_level="WARNING"
    )
    fresh = create_app(settings, engine=engine, clock=clock)
    fresh.state.runtime.sessions = sessions

    def get(path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=fresh, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.get(path)

        # On a thread of its own: a browser test earlier in the session leaves an event loop in this one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(lambda: asyncio.run(go())).result()

    def busy(*args: Any, **kwargs: Any) -> Any:
        raise Busy("the database is busy; retry in a few seconds")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(open311, "_answer", busy)
    r = get(BASE + "/services.json")
    assert r.status_code == 503
    assert r.json()[0]["code"] == "503"
    r = get(BASE + "/services.xml")
    assert r.status_code == 503
    assert r.text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<errors><error><code>503</code>')
    monkeypatch.setattr(open311, "_answer", broken)
    r = get(BASE + "/requests.json")
    assert r.status_code == 500
    assert r.json()[0]["code"] == "500"
    # Elsewhere the application's own answers stay.
    r = get("/api/v1/tickets/20990101000001")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
