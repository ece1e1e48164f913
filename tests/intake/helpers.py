"""Shared data and steps of the intake tests (an item with a published form, a known citizen)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
from stdnum.cn import ric

from tests.intake.pdfs import pdf

CODE = "11110000INTK0001"
ID = "11010519900307123" + ric.calc_check_digit("11010519900307123" + "0")

MATERIALS = [
    {"name": "居民身份证", "source": "e_licence", "source_ref": "居民身份证"},
    {"name": "户口簿", "source": "shared_data", "source_ref": "户籍信息"},
    {"name": "房屋租赁合同", "source": "applicant"},
    {"name": "告知承诺书", "source": "exempt"},
]

DEFINITION: dict[str, Any] = {
    "fields": [
        {
            "key": "name",
            "label": "姓名",
            "label_en": "Name",
            "type": "text",
            "required": True,
            "profile_key": "person.name",
        },
        {
            "key": "id_number",
            "label": "公民身份号码",
            "label_en": "ID number",
            "type": "id_number",
            "required": True,
            "profile_key": "person.id_number",
        },
        {
            "key": "mobile",
            "label": "手机号码",
            "label_en": "Mobile",
            "type": "mobile",
            "required": True,
            "profile_key": "person.mobile",
        },
        {
            "key": "monthly_rent",
            "label": "月租金",
            "label_en": "Monthly rent",
            "type": "money",
            "required": True,
            "min": 1,
        },
        {
            "key": "months",
            "label": "租期（月）",
            "label_en": "Months",
            "type": "integer",
            "required": True,
            "min": 1,
            "max": 120,
        },
        {
            "key": "total_rent",
            "label": "租金总额",
            "label_en": "Total rent",
            "type": "money",
            "computed": {"*": [{"var": "monthly_rent"}, {"var": "months"}]},
        },
        {
            "key": "id_card",
            "label": "身份证扫描件",
            "label_en": "ID card scan",
            "type": "file",
            "required": True,
            "material": "居民身份证",
            "accept": ["application/pdf", "image/jpeg", "image/png"],
        },
        {
            "key": "household",
            "label": "户口簿扫描件",
            "label_en": "Household register scan",
            "type": "file",
            "required": True,
            "material": "户口簿",
            "accept": ["application/pdf"],
        },
        {
            "key": "lease",
            "label": "房屋租赁合同",
            "label_en": "Lease",
            "type": "file",
            "required": True,
            "material": "房屋租赁合同",
            "accept": ["application/pdf"],
            "max_bytes": 5_000_000,
        },
    ]
}


def field(key: str) -> dict[str, Any]:
    """A copy of the field ``key`` of :data:`DEFINITION`, for other test forms that have it too."""
    return copy.deepcopy(next(f for f in DEFINITION["fields"] if f["key"] == key))


def known_citizen(client: httpx.Client, h: dict[str, dict[str, str]], *, exempt: bool = True) -> None:
    """The citizen's profile: name and mobile stated, ID number from the ID-card licence, household shared."""
    citizen, officer = h["citizen.li"], h["officer.wang"]
    profile_id = client.get("/api/v1/me/profile", headers=citizen).json()["id"]
    assert (
        client.patch(
            "/api/v1/me/profile",
            headers=citizen,
            json={"data": {"person.name": "李明", "person.mobile": "13800138000"}},
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/v1/intake/profiles/{profile_id}/data",
            headers=officer,
            json={
                "data": {"person.id_number": ID, "person.household_address": "北京市东城区"},
                "source": "shared_data",
                "source_ref": "户籍信息",
                "reason": "户籍信息共享",
            },
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/v1/intake/profiles/{profile_id}/licences",
            headers=officer,
            json={
                "licence_type": "居民身份证",
                "number": ID,
                "issuer": "北京市公安局东城分局",
                "issued_on": "2015-05-01",
                "valid_until": "2035-05-01",
            },
        ).status_code
        == 200
    )
    for purpose in ("prefill", "exempt") if exempt else ("prefill",):
        assert (
            client.put(
                f"/api/v1/me/consents/{purpose}", headers=citizen, json={"purpose": purpose}
            ).status_code
            == 200
        )


def upload(
    client: httpx.Client, headers: dict[str, str], name: str, data: bytes, ctype: str = "application/pdf"
) -> httpx.Response:
    return client.post("/api/v1/intake/uploads", headers=headers, files={"file": (name, data, ctype)})


def values(lease: str) -> dict[str, Any]:
    return {
        "name": "李明",
        "id_number": ID,
        "mobile": "13800138000",
        "monthly_rent": "3500.50",
        "months": 12,
        "lease": [lease],
    }


def submit(client: httpx.Client, h: dict[str, dict[str, str]]) -> dict[str, Any]:
    known_citizen(client, h)
    citizen = h["citizen.li"]
    lease = upload(client, citizen, "lease.pdf", pdf(f"Lessee ID {ID}")).json()["id"]
    response = client.post(
        "/api/v1/intake/applications", headers=citizen, json={"item_code": CODE, "values": values(lease)}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def step(
    client: httpx.Client, headers: dict[str, str], app: dict[str, Any], decision: str | None, note: str = ""
) -> httpx.Response:
    task = app["waiting"][0]["task_id"]
    return client.post(
        f"/api/v1/intake/applications/{app['receipt_no']}/steps/{task}",
        headers=headers,
        json={"decision": decision, "note": note},
    )
