"""Shared pieces of the Open311 tests: the server's Open311 routes, services with a definition, API keys,
and reading the spec's XML. The service texts are written for these tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
from fastapi import FastAPI

from tongban.hotline import open311

BASE = open311.BASE

#: A service with a definition of every datatype, and one without attributes.
POTHOLE: dict[str, Any] = {
    "name": "Pothole",
    "description": "A hole in the road surface.",
    "group": "streets",
    "keywords": "road, hole, 坑",
    "category_path": "城乡建设/市政设施/道路维修",
    "attributes": [
        {
            "code": "depth",
            "datatype": "number",
            "required": True,
            "description": "Depth in centimetres",
            "order": 1,
        },
        {
            "code": "lane",
            "datatype": "singlevaluelist",
            "required": False,
            "description": "Which lane",
            "order": 2,
            "values": [{"key": "1", "name": "Left"}, {"key": "2", "name": "Right"}],
        },
        {
            "code": "hazards",
            "datatype": "multivaluelist",
            "required": False,
            "description": "What makes it dangerous",
            "order": 3,
            "values": [{"key": "water", "name": "Water in it"}, {"key": "dark", "name": "No light"}],
        },
        {"code": "seen", "datatype": "datetime", "required": False, "description": "Seen at", "order": 4},
        {
            "code": "info",
            "variable": False,
            "datatype": "text",
            "description": "Emergencies: call 110.",
            "order": 5,
        },
    ],
}
LIGHT: dict[str, Any] = {
    "name": "Street light out",
    "description": "A street light does not work.",
    "group": "streets",
    "keywords": "light, lamp",
    "category_path": "城乡建设/市政设施/路灯照明",
    "attributes": [],
}


def ensure_installed(app: FastAPI) -> None:
    """Serve Open311 on the test application (until ``web/app.py`` does it itself)."""
    if not any(getattr(r, "original_router", None) is open311.router for r in app.router.routes):
        open311.install(app)


def put_services(client: httpx.Client, admin: dict[str, str]) -> None:
    for code, body in (("pothole", POTHOLE), ("light", LIGHT), ("gone", {**LIGHT, "active": False})):
        r = client.put(f"/api/v1/hotline/services/{code}", json=body, headers=admin)
        assert r.status_code == 200, r.text


def issue_key(client: httpx.Client, admin: dict[str, str], name: str = "test app", rate: int = 1000) -> str:
    r = client.post("/api/v1/hotline/api-keys", json={"name": name, "rate_per_minute": rate}, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def xml_of(response: httpx.Response) -> ET.Element:
    assert response.headers["content-type"].startswith("text/xml"), response.headers["content-type"]
    assert response.text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.content)  # noqa: S314 - our own server's answer


def errors_of(response: httpx.Response) -> list[dict[str, str]]:
    """The spec's error list, from JSON or XML."""
    if response.headers["content-type"].startswith("application/json"):
        body = response.json()
        assert isinstance(body, list)
        return [dict(e) for e in body]
    root = xml_of(response)
    assert root.tag == "errors"
    return [{c.tag: c.text or "" for c in e} for e in root.findall("error")]
