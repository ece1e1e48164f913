"""Demo data shipped with the package (see NOTICE.md for its source and licence).

``situations.json`` adds situations (办理情形) and the questions that tell them apart to some items of the
demo catalogue, whose portal export has none; :func:`add_situations` merges them in while importing.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from tongban.catalog.licences import mark_licence_materials
from tongban.catalog.schemas import ItemContent

SITUATIONS_FILE = "situations.json"


@cache
def situation_supplement() -> dict[str, dict[str, Any]]:
    """The entries of ``situations.json`` by item code."""
    raw = (resources.files("tongban.demo") / SITUATIONS_FILE).read_text(encoding="utf-8")
    return {entry["code"]: entry for entry in json.loads(raw)["items"]}


def add_situations(content: ItemContent) -> ItemContent:
    """The item with its situations, questions and material tags from ``situations.json`` (if it has any).

    Raises ``ValueError`` when the entry names a material the item lacks or does not validate.
    """
    entry = situation_supplement().get(content.code)
    if entry is None:
        return content
    data = content.model_dump(mode="json")
    data["situations"] = entry["situations"]
    data["situation_questions"] = entry["situation_questions"]
    tags = {m["name"]: m for m in entry["materials"]}
    missing = set(tags) - {m["name"] for m in data["materials"]}
    if missing:
        raise ValueError(f"{SITUATIONS_FILE}: item {content.code} has no material {sorted(missing)[0]!r}")
    for material in data["materials"]:
        tag = tags.get(material["name"])
        if tag is not None:
            material["situations"] = tag["situations"]
            material["required"] = tag.get("required", material["required"])
    return ItemContent.model_validate(data)


def amend_demo(content: ItemContent) -> ItemContent:
    """What the demo import adds to each guide: its situations (:func:`add_situations`), and the materials
    that are e-licences marked as such (``catalog.licences``), as a city's catalogue would carry them."""
    return mark_licence_materials(add_situations(content))
