"""The staff edit form: HTML form fields to and from :class:`ItemContent` (works without JavaScript)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from tongban.catalog.schemas import ItemContent

BLANK_ROWS = 3
SCALARS = (
    "code",
    "basic_code",
    "name",
    "name_en",
    "item_type",
    "department",
    "co_departments",
    "region",
    "region_code",
    "level",
    "legal_basis",
    "conditions",
    "location",
    "office_hours",
    "consult_phone",
    "complaint_phone",
    "online_url",
)
MATERIAL_FIELDS = ("name", "form", "copies", "required", "source", "source_ref", "note", "situations")
FEE_FIELDS = ("name", "amount_yuan", "basis")
SITUATION_FIELDS = ("key", "name", "description", "extra_conditions")


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _rows(form: FormData, prefix: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    count = 0
    for key in form:
        if key.startswith(prefix + "-"):
            try:
                count = max(count, int(key.split("-")[1]) + 1)
            except (IndexError, ValueError):
                continue
    rows = []
    for i in range(min(count, 200)):
        row = {f: str(form.get(f"{prefix}-{i}-{f}", "")).strip() for f in fields}
        if any(v for k, v in row.items() if k not in ("required", "copies", "form", "source")) and row.get(
            "name", row.get("key", "")
        ):
            rows.append(row)
    return rows


def form_to_data(form: FormData) -> dict[str, Any]:
    """Turn posted fields into the dict :class:`ItemContent` validates; blank optional fields become None."""
    data: dict[str, Any] = {}
    for name in SCALARS:
        value = str(form.get(name, "")).strip()
        data[name] = value or None
    data["audiences"] = [str(v) for v in form.getlist("audiences")]
    data["channels"] = [str(v) for v in form.getlist("channels")]
    data["themes"] = _lines(str(form.get("themes", "")))
    data["audience_detail"] = _lines(str(form.get("audience_detail", "")))
    visits = str(form.get("visits", "0")).strip() or "0"
    data["visits"] = int(visits) if visits.isdigit() else visits
    for which in ("statutory_limit", "promised_limit"):
        value = str(form.get(f"{which}_value", "")).strip()
        unit = str(form.get(f"{which}_unit", "working_day"))
        data[which] = {"value": int(value) if value.isdigit() else value, "unit": unit} if value else None
    charges = str(form.get("charges_fee", ""))
    data["charges_fee"] = {"yes": True, "no": False}.get(charges)
    materials = []
    for row in _rows(form, "material", MATERIAL_FIELDS):
        materials.append(
            {
                "name": row["name"],
                "form": row["form"] or None,
                "copies": int(row["copies"]) if row["copies"].isdigit() else (row["copies"] or 1),
                "required": row["required"] == "on",
                "source": row["source"] or "applicant",
                "source_ref": row["source_ref"] or None,
                "note": row["note"] or None,
                "situations": [s.strip() for s in row["situations"].split(",") if s.strip()],
            }
        )
    data["materials"] = materials
    fees = []
    for row in _rows(form, "fee", FEE_FIELDS):
        amount: Any = None
        if row["amount_yuan"]:
            try:
                amount = int((Decimal(row["amount_yuan"]) * 100).to_integral_exact())
            except (InvalidOperation, ValueError):
                amount = row["amount_yuan"]
        fees.append({"name": row["name"], "amount_fen": amount, "basis": row["basis"] or None})
    data["fees"] = fees
    data["situations"] = [
        {
            "key": row["key"],
            "name": row["name"],
            "description": row["description"] or None,
            "extra_conditions": row["extra_conditions"] or None,
        }
        for row in _rows(form, "situation", SITUATION_FIELDS)
    ]
    return data


def keep_unedited(data: dict[str, Any], working: ItemContent) -> dict[str, Any]:
    """Carry over what the form does not edit: the situation questions (情形引导) and the English names of
    situations that are still there. A question naming a situation the form removed fails validation with
    a message, rather than being dropped in silence."""
    english = {s.key: s.name_en for s in working.situations if s.name_en}
    for situation in data.get("situations", []):
        if situation.get("key") in english:
            situation["name_en"] = english[situation["key"]]
    if working.situation_questions:
        data["situation_questions"] = [q.model_dump(mode="json") for q in working.situation_questions]
    return data


def validate(data: dict[str, Any]) -> tuple[ItemContent | None, list[tuple[str, str]]]:
    try:
        return ItemContent.model_validate(data), []
    except ValidationError as exc:
        return None, [(".".join(str(p) for p in e["loc"]) or "item", e["msg"]) for e in exc.errors()]


def content_to_form(content: ItemContent | None) -> dict[str, Any]:
    """Values for the form template, with blank rows to add materials, fees and situations."""
    data: dict[str, Any] = content.model_dump(mode="json") if content else {}
    return with_blank_rows(data)


def with_blank_rows(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["materials"] = list(data.get("materials") or []) + [
        {"name": "", "copies": 1, "required": True, "source": "applicant"} for _ in range(BLANK_ROWS)
    ]
    data["fees"] = list(data.get("fees") or []) + [{"name": ""} for _ in range(BLANK_ROWS)]
    data["situations"] = list(data.get("situations") or []) + [{"key": "", "name": ""} for _ in range(2)]
    return data
