"""A real Open311 client against the server: ``georeport`` from PyPI (``requests`` + ``xmltodict``), in its
JSON and its XML output formats.

georeport 0.3.1 reads only (service list, definitions, requests, one request); it has no POST, so requests
are filed here with ``requests`` itself, as the spec's example sends them (form-encoded, ``api_key`` in the
body), and tokens are read the same way."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
import requests
from fastapi import FastAPI
from georeport import GeoReport  # type: ignore[import-untyped]

from tests.hotline.open311_support import BASE, ensure_installed, issue_key, put_services
from tongban.core.clock import FixedClock


def _as_list(value: Any) -> list[Any]:
    """xmltodict gives one element as a dict and several as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@pytest.fixture
def filed(
    app: FastAPI, client: httpx.Client, base_url: str, hl: dict[str, dict[str, str]], clock: FixedClock
) -> dict[str, Any]:
    """Three requests filed by a client with ``requests``: two potholes (one a day later), a street light."""
    ensure_installed(app)
    put_services(client, hl["hl.admin"])
    key = issue_key(client, hl["hl.admin"], "georeport")
    refs: dict[str, str] = {}
    for name, form in (
        ("pothole1", {"service_code": "pothole", "lat": "39.9", "long": "116.4", "attribute[depth]": "5"}),
        ("light", {"service_code": "light", "address_string": "东三环中路1号, 100020"}),
        ("pothole2", {"service_code": "pothole", "address_string": "建国路", "attribute[depth]": "30"}),
    ):
        if name == "pothole2":
            clock.advance(dt.timedelta(days=1))
        body = {"api_key": key, "jurisdiction_id": "tongban.local", "description": f"{name} report", **form}
        r = requests.post(f"{base_url}{BASE}/requests.json", data=body, timeout=30)
        assert r.status_code == 200, r.text
        [created] = r.json()
        refs[name] = created["service_request_id"]
        token = requests.get(f"{base_url}{BASE}/tokens/{created['token']}.json", timeout=30).json()
        assert token == [{"service_request_id": created["service_request_id"], "token": created["token"]}]
    r = requests.post(
        f"{base_url}{BASE}/requests.xml", data={"service_code": "light", "lat": "1", "long": "2"}, timeout=30
    )
    assert r.status_code == 403
    return {"key": key, "refs": refs}


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_georeport_client_reads_everything(filed: dict[str, Any], base_url: str, fmt: str) -> None:
    refs = filed["refs"]
    geo = GeoReport(
        root_address=base_url + BASE, api_key=filed["key"], jurisdiction="tongban.local", output_format=fmt
    )

    services = geo.get_service_list()
    assert [s["service_code"] for s in services] == ["light", "pothole"]
    assert [s["metadata"] for s in services] == ([False, True] if fmt == "json" else ["false", "true"])

    definition = geo.get_service_definition("pothole")
    assert definition["service_code"] == "pothole"
    attributes = (
        definition["attributes"] if fmt == "json" else _as_list(definition["attributes"]["attribute"])
    )
    assert [a["code"] for a in attributes] == ["depth", "lane", "hazards", "seen", "info"]
    lane = attributes[1]
    values = lane["values"] if fmt == "json" else _as_list(lane["values"]["value"])
    assert [(v["key"], v["name"]) for v in values] == [("1", "Left"), ("2", "Right")]

    everything = _as_list(geo.get_service_requests())
    assert [r["service_request_id"] for r in everything] == [
        refs["pothole2"],
        refs["light"],
        refs["pothole1"],
    ]
    potholes = _as_list(geo.get_service_requests(service_code="pothole", status="open"))
    assert [r["service_request_id"] for r in potholes] == [refs["pothole2"], refs["pothole1"]]
    first_day = _as_list(
        geo.get_service_requests(
            service_code="pothole,light",
            start_date="2026-03-02T00:00:00+08:00",
            end_date="2026-03-02T23:59:59+08:00",
        )
    )
    assert [r["service_request_id"] for r in first_day] == [refs["light"], refs["pothole1"]]
    if fmt == "json":
        assert geo.get_service_requests(status="closed") == []
    else:  # the client cannot read an empty list in XML (xmltodict makes it None): what it was sent
        r = requests.get(f"{base_url}{BASE}/requests.xml", params={"status": "closed"}, timeout=30)
        assert r.text.endswith("<service_requests />")
    picked = _as_list(geo.get_service_requests(service_request_id=f"{refs['light']},{refs['pothole1']}"))
    assert {r["service_request_id"] for r in picked} == {refs["light"], refs["pothole1"]}

    one = geo.get_service_request(refs["light"])
    assert one["service_request_id"] == refs["light"]
    assert one["status"] == "open"
    assert one["service_code"] == "light"
    assert one["address"] == "东三环中路1号, 100020"
    assert one["zipcode"] == "100020"
    assert one["description"] == "light report"
    assert one["requested_datetime"] == "2026-03-02T17:00:00+08:00"
    pothole = geo.get_service_request(refs["pothole1"])
    assert str(pothole["lat"]) == "39.9"
    assert str(pothole["long"]) == "116.4"


def test_georeport_client_with_quirky_roots_and_wrong_jurisdiction(
    filed: dict[str, Any], base_url: str
) -> None:
    # A root with a trailing slash (the client strips it) and one with '//' inside.
    for root in (base_url + BASE + "/", base_url + "/open311//v2"):
        geo = GeoReport(root_address=root)
        assert [s["service_code"] for s in geo.get_service_list()] == ["light", "pothole"]
        assert geo.get_service_request(filed["refs"]["light"])["service_code"] == "light"
    wrong = GeoReport(root_address=base_url + BASE, jurisdiction="sfgov.org", output_format="xml")
    with pytest.raises(requests.HTTPError) as info:
        wrong.get_service_list()
    assert info.value.response is not None
    assert info.value.response.status_code == 404
    assert b"<errors><error><code>404</code>" in info.value.response.content
