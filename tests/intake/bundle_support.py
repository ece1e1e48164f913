"""A bundle for the tests: a newborn's registrations (出生“一件事”) — three items of three departments, a
fourth that applies only when a parent is employed; each item with its own published form."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.orm import Session

from tests.factories import item
from tongban.catalog import service as catalog
from tongban.core.clock import FixedClock

BUNDLE = "newborn"
BIRTH_CERT = "出生医学证明"
PARENT = [
    {
        "key": "name",
        "label": "申请人姓名",
        "label_en": "Applicant's name",
        "type": "text",
        "required": True,
        "profile_key": "person.name",
    },
    {
        "key": "id_number",
        "label": "申请人公民身份号码",
        "label_en": "Applicant's ID number",
        "type": "id_number",
        "required": True,
        "profile_key": "person.id_number",
    },
    {
        "key": "mobile",
        "label": "联系电话",
        "label_en": "Mobile",
        "type": "mobile",
        "required": True,
        "profile_key": "person.mobile",
    },
    {
        "key": "baby_name",
        "label": "新生儿姓名",
        "label_en": "Baby's name",
        "type": "text",
        "required": True,
        "max_length": 20,
    },
    {
        "key": "baby_birth_date",
        "label": "出生日期",
        "label_en": "Date of birth",
        "type": "date",
        "required": True,
    },
    {
        "key": "birth_cert",
        "label": "出生医学证明",
        "label_en": "Medical birth certificate",
        "type": "file",
        "required": True,
        "material": BIRTH_CERT,
        "accept": ["application/pdf"],
    },
]
ITEMS: list[dict[str, Any]] = [
    {
        "code": "11110000NBRN0001",
        "name": "出生登记（新生儿落户）",
        "name_en": "Birth registration (household)",
        "department": "北京市公安局",
        "materials": [{"name": BIRTH_CERT, "source": "applicant"}],
        "extra": [
            {
                "key": "household_address",
                "label": "落户地址",
                "label_en": "Household address",
                "type": "address",
                "required": True,
                "profile_key": "person.household_address",
            },
        ],
    },
    {
        "code": "11110000NBRN0002",
        "name": "城乡居民基本医疗保险参保登记",
        "name_en": "Basic medical insurance enrolment",
        "department": "北京市医疗保障局",
        "materials": [{"name": BIRTH_CERT, "source": "applicant"}],
        "extra": [],
    },
    {
        "code": "11110000NBRN0003",
        "name": "社会保障卡申领",
        "name_en": "Social security card application",
        "department": "北京市人力资源和社会保障局",
        "materials": [{"name": BIRTH_CERT, "source": "applicant"}, {"name": "照片", "source": "applicant"}],
        "extra": [
            {
                "key": "photo",
                "label": "证件照片",
                "label_en": "Photo",
                "type": "file",
                "required": True,
                "material": "照片",
                "accept": ["application/pdf", "image/png", "image/jpeg"],
            },
        ],
    },
    {
        "code": "11110000NBRN0004",
        "name": "生育津贴申领",
        "name_en": "Maternity allowance",
        "department": "北京市医疗保障局",
        "materials": [{"name": BIRTH_CERT, "source": "applicant"}],
        "extra": [
            {
                "key": "bank_account",
                "label": "收款银行账号",
                "label_en": "Bank account",
                "type": "text",
                "required": True,
                "pattern": "^[0-9]{12,19}$",
            },
        ],
    },
]
DEFINITION: dict[str, Any] = {
    "name": {"zh": "新生儿出生“一件事”", "en": "A newborn's registrations, at once"},
    "description": {
        "zh": "一次申请，办理落户、医保参保和社保卡。",
        "en": "One application for household registration, medical insurance and the social security card.",
    },
    "questions": [
        {
            "key": "employed",
            "label": {"zh": "父母一方是否在职参加生育保险？", "en": "Is a parent employed and insured?"},
            "type": "boolean",
        },
    ],
    "items": [
        {"item_code": ITEMS[0]["code"]},
        {"item_code": ITEMS[1]["code"]},
        {"item_code": ITEMS[2]["code"]},
        {"item_code": ITEMS[3]["code"], "when": {"==": [{"var": "employed"}, True]}},
    ],
}


def import_items(session: Session, clock: FixedClock) -> None:
    for spec in ITEMS:
        catalog.import_item(
            session,
            item(
                code=spec["code"],
                name=spec["name"],
                name_en=spec["name_en"],
                department=spec["department"],
                audiences=["natural_person"],
                materials=spec["materials"],
            ),
            actor="test",
            clock=clock,
            source="test",
        )


def publish_forms(client: httpx.Client, h: dict[str, dict[str, str]]) -> None:
    for spec in ITEMS:
        definition = {"fields": PARENT + spec["extra"]}
        saved = client.post(
            f"/api/v1/intake/items/{spec['code']}/forms",
            headers=h["editor.sun"],
            json={"definition": definition},
        )
        assert saved.status_code == 201, saved.text
        version = saved.json()["version"]
        done = client.post(
            f"/api/v1/intake/items/{spec['code']}/forms/{version}/publish", headers=h["publisher.qian"]
        )
        assert done.status_code == 200, done.text


def publish_bundle(client: httpx.Client, h: dict[str, dict[str, str]]) -> None:
    saved = client.post(
        f"/api/v1/intake/bundles/{BUNDLE}/versions", headers=h["editor.sun"], json={"definition": DEFINITION}
    )
    assert saved.status_code == 201, saved.text
    done = client.post(
        f"/api/v1/intake/bundles/{BUNDLE}/versions/{saved.json()['version']}/publish",
        headers=h["publisher.qian"],
    )
    assert done.status_code == 200, done.text
