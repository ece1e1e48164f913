"""Test data made through the domains' own schemas and services."""

from __future__ import annotations

from typing import Any

from tongban.catalog.schemas import ItemContent


def item_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "code": "11110000TEST0001",
        "name": "食品经营许可证核发",
        "item_type": "administrative_licence",
        "department": "北京市市场监督管理局",
        "region": "北京市",
        "level": "municipal",
        "audiences": ["legal_person"],
        "conditions": "申请人应当取得营业执照等合法主体资格。",
        "materials": [
            {"name": "食品经营许可申请书", "form": "original", "copies": 1},
            {
                "name": "营业执照",
                "source": "e_licence",
                "source_ref": "营业执照",
            },
        ],
        "statutory_limit": {"value": 20, "unit": "working_day"},
        "promised_limit": {"value": 5, "unit": "working_day"},
        "channels": ["online", "offline"],
        "visits": 0,
        "themes": ["准营准办"],
    }
    data.update(overrides)
    return data


def item(**overrides: Any) -> ItemContent:
    return ItemContent.model_validate(item_data(**overrides))
