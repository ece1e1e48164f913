"""Import and export file formats of the catalogue. Pure parsing: no database.

Three formats are read (see ``docs/catalog-import.md``):

``guangdong``
    JSONL of the Guangdong portal's service guides (keys ``TASK_CODE``, ``matter_name``, ...), mapped to
    :class:`~tongban.catalog.schemas.ItemContent` by :func:`guangdong_to_content`.
``tongban-jsonl``
    JSONL where every line is exactly an :class:`ItemContent` (extra fields are rejected).
``tongban-csv``
    CSV with a header row of :data:`CSV_COLUMNS`; written by :func:`content_to_csv_row`.

:func:`read_items` streams :class:`ParsedRow` objects. A bad row never stops the reading: it comes back with
``error`` set. Only a file that cannot be read at all raises :class:`FileFormatError`, and it does so when
:func:`read_items` is called, before any row is produced.
"""

from __future__ import annotations

import codecs
import csv
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from tongban.catalog.schemas import ItemContent, Material, TimeLimit
from tongban.catalog.vocab import (
    ITEM_TYPE_BY_ZH,
    LEVEL_BY_ZH,
    Audience,
    Channel,
    LimitUnit,
    MaterialForm,
    MaterialSource,
)
from tongban.core.text import chinese_number

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "MAX_LINE_BYTES",
    "FileFormatError",
    "ParsedRow",
    "RowError",
    "content_to_csv_row",
    "detect_format",
    "guangdong_to_content",
    "parse_materials",
    "parse_time_limit",
    "read_items",
]

#: A JSONL line longer than this (in bytes, without the line break) is reported as a bad row, unread.
MAX_LINE_BYTES = 1_000_000

GUANGDONG = "guangdong"
TONGBAN_JSONL = "tongban-jsonl"
TONGBAN_CSV = "tongban-csv"
FORMATS: tuple[str, ...] = (GUANGDONG, TONGBAN_JSONL, TONGBAN_CSV)

_MAX_ERRORS_SHOWN = 5
_CHUNK = 1 << 16


@dataclass(frozen=True)
class ParsedRow:
    """One record of an import file, parsed or not."""

    #: 1-based line number in the file (CSV: the first physical line of the record; the header is line 1).
    line: int
    content: ItemContent | None
    #: Why the row was rejected, in plain English; None when the row is fine.
    error: str | None
    #: Things changed or dropped on the way in (the row is still imported).
    warnings: tuple[str, ...] = ()
    #: The row's item code when it could be read, even if the row failed.
    code: str | None = None


class FileFormatError(Exception):
    """The whole file cannot be read: missing, not UTF-8, empty, binary, wrong CSV header, unknown format."""


class RowError(ValueError):
    """One record cannot be turned into an item; the message says why."""


# --------------------------------------------------------------------------------------------------------
# Small helpers


_EMPTY_MARKERS = frozenset({"", "无", "/"})


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in _EMPTY_MARKERS)


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format_validation_error(exc: ValidationError, names: dict[str, str] | None = None) -> str:
    """Pydantic's errors as one line, e.g. ``materials.0.name: String should have at most 200 characters``."""
    parts: list[str] = []
    errors = exc.errors(include_url=False)
    for err in errors[:_MAX_ERRORS_SHOWN]:
        loc = [str(p) for p in err["loc"]]
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if loc:
            if names and loc[0] in names:
                loc[0] = f"{loc[0]} ({names[loc[0]]})"
            parts.append(f"{'.'.join(loc)}: {msg}")
        else:
            parts.append(msg)
    if len(errors) > _MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - _MAX_ERRORS_SHOWN} more error(s)")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------------------
# Time limits


_LIMIT_RE = re.compile(
    r"^(?P<n>\d{1,6})\s*"
    r"(?:[(（]\s*(?P<u1>工作日|自然日)\s*[)）]"
    r"|个?\s*(?P<u2>工作日|自然日)"
    r"|(?P<u3>天|日))$"
)
_IMMEDIATE = frozenset({"即办", "即时办结", "当场办结", "即时办理", "当场办理"})
_UNIT_BY_ZH = {"工作日": LimitUnit.WORKING_DAY, "自然日": LimitUnit.CALENDAR_DAY}


def parse_time_limit(value: str | None) -> TimeLimit | None:
    """Read a time limit as the portals write it.

    ``30(工作日)``, ``30（工作日）``, ``30个工作日``, ``30工作日`` are working days;
    ``90(自然日)``, ``90个自然日``, ``90天``, ``90日`` are calendar days;
    ``即办``, ``即时办结``, ``当场办结`` are 0 working days.
    Empty, ``无`` and ``/`` give None. Anything else raises :class:`RowError`.
    """
    if value is None or _is_empty(value):
        return None
    text = value.strip()
    if text in _IMMEDIATE:
        return TimeLimit(value=0, unit=LimitUnit.WORKING_DAY)
    m = _LIMIT_RE.match(text)
    if m is None:
        raise RowError(f"{text!r} is not a time limit like 30(工作日)")
    n = int(m["n"])
    if n > 3650:
        raise RowError(f"{text!r} is longer than 3650 days")
    zh_unit = m["u1"] or m["u2"]
    unit = _UNIT_BY_ZH[zh_unit] if zh_unit else LimitUnit.CALENDAR_DAY
    return TimeLimit(value=n, unit=unit)


# --------------------------------------------------------------------------------------------------------
# Materials


class _TextExtractor(HTMLParser):
    """Text of an HTML fragment, with a line break for each <br> and each closed block."""

    _BREAK_END = frozenset({"p", "li", "div", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"})
    _SKIP = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in self._SKIP:
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BREAK_END:
            self.parts.append("\n")
        elif tag in self._SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_to_text(value: str) -> str:
    parser = _TextExtractor()
    parser.feed(value)
    parser.close()
    # The parser already decoded character references; a second pass catches text that was escaped twice
    # by the portal (``&amp;nbsp;``), which is common in exported guides.
    text = "".join(parser.parts)
    if "&" in text:
        text = html.unescape(text)
    return text.replace("\xa0", " ").replace("\u3000", " ")


_NUMBERING = (
    r"(?:\d{1,2}\s*[、.．](?!\d)"
    r"|[（(]\s*(?:\d{1,2}|[一二三四五六七八九十]{1,3})\s*[)）]"
    r"|[\u2460-\u2473]"
    r"|[一二三四五六七八九十]{1,3}\s*、)"
)
# Split on line breaks and semicolons, and before numbering: any numbering after whitespace or a comma,
# colon or full stop; circled numbers anywhere; ``2、``, ``2.``, ``(2)`` right after text ("申请书2、身份证"),
# unless part of a number, a version ("V2.") or an ordinal ("第2、3项").
_SPLIT_RE = re.compile(
    rf"\n|[；;]|(?<=[\s。，,：:])(?={_NUMBERING})|(?=[\u2460-\u2473])"
    r"|(?<![\dA-Za-z第.．])(?=\d{1,2}\s*[、.．](?!\d))"
    r"|(?=[（(]\s*\d{1,2}\s*[)）])"
)
_LEADING_NUMBERING_RE = re.compile(rf"^(?:\s*{_NUMBERING})+\s*")
_TRAILING_PUNCT_RE = re.compile(r"[\s。．.，,；;、：:]+$")
_COPIES_RE = re.compile(r"(\d{1,3}|[一二两三四五六七八九十])\s*份(?![证额])")
_TRAILING_COPIES_RE = re.compile(
    r"\s*[（(]\s*(?:各|共)?\s*(?:\d{1,3}|[一二两三四五六七八九十])\s*份\s*[)）]$"
)
_OPTIONAL_WORDS = ("如有", "选填", "非必要", "必要时", "可选")
_CONDITION_CLAUSE_RE = re.compile(
    r"^(?P<cond>.+?的)\s*[，,]\s*(?:需|须|应|请|还需|另需)?\s*(?:提供|交验|提交)"
)
_PAREN_RE = re.compile(r"[（(]([^（）()]*)[)）]")
_CLAUSE_SPLIT_RE = re.compile(r"[，,]")
_NAME_MAX = 200
_NOTE_MAX = 2000


def _zh_number(text: str) -> int:
    value = chinese_number(text)
    if value is None:
        raise ValueError(f"{text!r} is not a number")
    return value


def _material_form(name: str) -> MaterialForm | None:
    if re.search(r"原件\s*[及和与、/]\s*复印件", name):
        return MaterialForm.ORIGINAL_AND_COPY
    if "复印件" in name:
        return MaterialForm.COPY
    if "原件" in name:
        return MaterialForm.ORIGINAL
    if "电子" in name:
        return MaterialForm.ELECTRONIC
    return None


def _condition(name: str) -> str | None:
    """The clause that makes a material optional or conditional, or None when it is always required."""
    m = _CONDITION_CLAUSE_RE.match(name)
    if m:
        return str(m["cond"]).strip()
    conditional_start = name.startswith(("如", "若")) and not name.startswith("如实")
    if conditional_start or any(w in name for w in _OPTIONAL_WORDS):
        inner: str
        for inner in _PAREN_RE.findall(name):
            if any(w in inner for w in _OPTIONAL_WORDS) or inner.startswith(("如", "若")):
                return inner.strip()
        clauses = [c.strip() for c in _CLAUSE_SPLIT_RE.split(name) if c.strip()]
        if conditional_start:
            return clauses[0] if clauses else name
        for clause in clauses:
            if any(w in clause for w in _OPTIONAL_WORDS):
                return clause
        return name
    return None


def _clean_name(raw: str) -> str:
    name = " ".join(raw.split())
    name = _LEADING_NUMBERING_RE.sub("", name)
    return _TRAILING_PUNCT_RE.sub("", name).strip()


def _material(name: str) -> Material:
    copies = 1
    m = _COPIES_RE.search(name)
    if m:
        n = _zh_number(m[1])
        if 0 <= n <= 100:
            copies = n
    shown = _TRAILING_COPIES_RE.sub("", name) or name
    condition = _condition(name)
    note: str | None = condition
    if len(shown) > _NAME_MAX:
        note = name
        shown = shown[:_NAME_MAX].rstrip()
    if note is not None and len(note) > _NOTE_MAX:
        note = note[: _NOTE_MAX - 1] + "…"
    return Material(
        name=shown,
        form=_material_form(name),
        copies=copies,
        required=condition is None,
        source=MaterialSource.APPLICANT,
        note=note,
    )


def parse_materials(value: str | list[str] | None) -> list[Material]:
    """The required materials of a guide.

    A list gives one material per string. A string is read as HTML-ish text: ``<br>`` and closing block tags
    end lines, other tags are dropped, entities decoded; the text is split on line breaks, on ``；``/``;`` and
    before numbering (``1、``, ``1.``, ``（1）``, ``①``, ``一、``). Numbering and trailing punctuation are
    trimmed, empty and ``无`` items dropped, duplicates kept once. ``form``, ``copies`` and ``required`` are
    guessed from the wording; the condition of an optional material goes into ``note``.
    """
    if value is None or _is_empty(value):
        return []
    pieces: list[str] = []
    if isinstance(value, str):
        text = _html_to_text(value)
        pieces = _SPLIT_RE.split(text)
    else:
        for v in value:
            if not isinstance(v, str):
                raise RowError(f"a material must be text, got {_short(v)}")
            pieces.append(v)
    out: list[Material] = []
    seen: set[str] = set()
    for piece in pieces:
        name = _clean_name(piece)
        if _is_empty(name) or name in seen:
            continue
        seen.add(name)
        out.append(_material(name))
    return out


# --------------------------------------------------------------------------------------------------------
# Guangdong portal guides

#: Guangdong keys and the ItemContent fields they feed.
GUANGDONG_FIELDS: dict[str, str] = {
    "TASK_CODE": "code",
    "matter_name": "name",
    "DEPT_NAME": "department",
    "AREA_CODE_TEXT": "region",
    "matter_type": "item_type",
    "matter_level": "level",
    "accept_standard": "conditions",
    "material_intro": "materials",
    "handle_time": "statutory_limit",
    "handle_time_limit": "promised_limit",
    "handle_location": "location",
    "consult_phone": "consult_phone",
    "complain_phone": "complaint_phone",
    "service_object_name": "audiences",
    "theme_category": "themes",
    "visit_number": "visits",
    "co_department": "co_departments",
}
_GUANGDONG_BY_FIELD = {v: k for k, v in GUANGDONG_FIELDS.items()}
_GUANGDONG_BY_FIELD["audience_detail"] = "service_object_name"
_GUANGDONG_BY_FIELD["legal_basis"] = "accept_standard"
_GUANGDONG_BY_FIELD["channels"] = "handle_location"
_GUANGDONG_REQUIRED = (
    "TASK_CODE",
    "matter_name",
    "DEPT_NAME",
    "AREA_CODE_TEXT",
    "matter_type",
    "matter_level",
)
_TITLE_RE = re.compile(r"《[^《》\n]{1,300}》")
_LOCATION_PREFIX_RE = re.compile(r"^\s*办理地点\s*[：:]\s*")
_NO_OFFICE = "无线下办理窗口"
_PHONE_RE = re.compile(
    r"(?<![\d])(?:(?:\+?86[-\s]?)?0\d{2,3}[-－—]?\d{7,8}(?:[-－转]\d{1,6})?|1[3-9]\d{9}|12345|400-?\d{3}-?\d{4})(?!\d)"
)
_PHONE_MAX = 200
_LONG_TEXT_MAX = 2000


def _gd_text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int | float | type(None)):
        raise RowError(f"field {key!r} must be text, got {_short(value)}")
    if value is None:
        return None
    text = str(value).strip()
    return None if text in _EMPTY_MARKERS else text


def _gd_list(raw: dict[str, Any], key: str) -> list[str]:
    value = raw.get(key)
    if _is_empty(value):
        return []
    if isinstance(value, str):
        items: list[Any] = re.split(r"[,，、;；|]", value)
    elif isinstance(value, list):
        items = value
    else:
        raise RowError(f"field {key!r} must be a list of text, got {_short(value)}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise RowError(f"field {key!r} must be a list of text, got item {_short(item)}")
        if not _is_empty(item) and item.strip() not in out:
            out.append(item.strip())
    return out


def _gd_limit(raw: dict[str, Any], key: str, warnings: list[str]) -> TimeLimit | None:
    text = _gd_text(raw, key)
    try:
        return parse_time_limit(text)
    except RowError as exc:
        warnings.append(f"field {key!r}: {exc}; left empty")
        return None


def _fit_phone(key: str, text: str | None, warnings: list[str]) -> str | None:
    if text is None or len(text) <= _PHONE_MAX:
        return text
    numbers = list(dict.fromkeys(_PHONE_RE.findall(text)))
    kept = "；".join(numbers)
    if numbers and len(kept) <= _PHONE_MAX:
        warnings.append(
            f"field {key!r} is longer than {_PHONE_MAX} characters; kept only the phone number(s) {kept} "
            f"(was: {text})"
        )
        return kept
    warnings.append(f"field {key!r} is longer than {_PHONE_MAX} characters; cut short (was: {text})")
    return text[: _PHONE_MAX - 1] + "…"


def _fit(key: str, text: str | None, limit: int, warnings: list[str]) -> str | None:
    if text is None or len(text) <= limit:
        return text
    warnings.append(f"field {key!r} is longer than {limit} characters; cut short")
    return text[: limit - 1] + "…"


def _legal_basis(conditions: str | None) -> str | None:
    if not conditions:
        return None
    titles = list(dict.fromkeys(_TITLE_RE.findall(conditions)))
    return "；".join(titles) or None


def guangdong_to_content(raw: dict[str, Any]) -> tuple[ItemContent, list[str]]:
    """Map one Guangdong portal guide to an item. Returns the item and warnings; raises :class:`RowError`."""
    unknown = [k for k in raw if k not in GUANGDONG_FIELDS]
    if unknown:
        raise RowError(f"unknown field(s): {', '.join(unknown)}")
    missing = [k for k in _GUANGDONG_REQUIRED if _is_empty(raw.get(k))]
    if missing:
        raise RowError(f"missing field(s): {', '.join(missing)}")
    warnings: list[str] = []

    matter_type = _gd_text(raw, "matter_type")
    item_type = ITEM_TYPE_BY_ZH.get(matter_type or "")
    if item_type is None:
        raise RowError(
            f"field 'matter_type': unknown item type {matter_type!r}; known: {', '.join(ITEM_TYPE_BY_ZH)}"
        )
    matter_level = _gd_text(raw, "matter_level")
    level = LEVEL_BY_ZH.get(matter_level or "")
    if level is None:
        raise RowError(
            f"field 'matter_level': unknown level {matter_level!r}; known: {', '.join(LEVEL_BY_ZH)}"
        )

    visits_text = _gd_text(raw, "visit_number")
    if visits_text is None:
        visits = 0
    elif visits_text.isascii() and visits_text.isdigit():
        visits = int(visits_text)
    else:
        raise RowError(f"field 'visit_number': {visits_text!r} is not a whole number")

    statutory = _gd_limit(raw, "handle_time", warnings)
    promised = _gd_limit(raw, "handle_time_limit", warnings)
    if statutory and promised and statutory.unit == promised.unit and promised.value > statutory.value:
        warnings.append(
            f"promised time limit {promised.value} {promised.unit.value} exceeds the statutory "
            f"{statutory.value} {statutory.unit.value}; promised limit dropped"
        )
        promised = None

    location = _gd_text(raw, "handle_location")
    if location is not None:
        location = None if location == _NO_OFFICE else _LOCATION_PREFIX_RE.sub("", location).strip()
        if location is not None and location in _EMPTY_MARKERS | {_NO_OFFICE}:
            location = None
    location = _fit("handle_location", location, _LONG_TEXT_MAX, warnings)

    objects = _gd_list(raw, "service_object_name")
    audiences: list[Audience] = []
    if "自然人" in objects:
        audiences.append(Audience.NATURAL_PERSON)
    if any(o != "自然人" for o in objects):
        audiences.append(Audience.LEGAL_PERSON)

    material_intro = raw.get("material_intro")
    if not (material_intro is None or isinstance(material_intro, str | list)):
        raise RowError(f"field 'material_intro' must be text or a list of text, got {_short(material_intro)}")
    try:
        materials = parse_materials(material_intro)
    except RowError as exc:
        raise RowError(f"field 'material_intro': {exc}") from None

    conditions = _gd_text(raw, "accept_standard")
    data: dict[str, Any] = {
        "code": _gd_text(raw, "TASK_CODE"),
        "name": _gd_text(raw, "matter_name"),
        "item_type": item_type,
        "department": _gd_text(raw, "DEPT_NAME"),
        "co_departments": _fit("co_department", _gd_text(raw, "co_department"), _LONG_TEXT_MAX, warnings),
        "region": _gd_text(raw, "AREA_CODE_TEXT"),
        "level": level,
        "audiences": audiences,
        "audience_detail": objects,
        "legal_basis": _legal_basis(conditions),
        "conditions": conditions,
        "materials": materials,
        "statutory_limit": statutory,
        "promised_limit": promised,
        "charges_fee": None,
        "location": location,
        "consult_phone": _fit_phone("consult_phone", _gd_text(raw, "consult_phone"), warnings),
        "complaint_phone": _fit_phone("complain_phone", _gd_text(raw, "complain_phone"), warnings),
        "channels": [Channel.ONLINE, Channel.OFFLINE] if location else [Channel.ONLINE],
        "visits": visits,
        "themes": _gd_list(raw, "theme_category"),
    }
    try:
        content = ItemContent.model_validate(data)
    except ValidationError as exc:
        raise RowError(_format_validation_error(exc, _GUANGDONG_BY_FIELD)) from None
    return content, warnings


# --------------------------------------------------------------------------------------------------------
# Our CSV

#: Columns of the ``tongban-csv`` format, in the order they are written. Every ItemContent field has one.
CSV_COLUMNS: list[str] = [
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
    "audiences",
    "audience_detail",
    "legal_basis",
    "conditions",
    "materials",
    "statutory_limit",
    "promised_limit",
    "charges_fee",
    "fees",
    "location",
    "office_hours",
    "consult_phone",
    "complaint_phone",
    "channels",
    "online_url",
    "visits",
    "situations",
    "situation_questions",
    "themes",
]
#: Columns a CSV header must have (the fields an item cannot do without).
CSV_REQUIRED_COLUMNS: tuple[str, ...] = (
    "code",
    "name",
    "item_type",
    "department",
    "region",
    "level",
    "audiences",
)
_CSV_LIST_COLUMNS = frozenset({"audiences", "audience_detail", "channels", "themes"})
_CSV_JSON_COLUMNS = frozenset({"materials", "situations", "situation_questions", "fees"})
_CSV_LIMIT_COLUMNS = frozenset({"statutory_limit", "promised_limit"})
_CSV_LIMIT_RE = re.compile(r"^(\d{1,6})(?:\s+(working_day|calendar_day))?$")


def _list_to_cell(values: list[str]) -> str:
    if any("|" in v or v != v.strip() for v in values) or (values and values[0].startswith("[")):
        return json.dumps(values, ensure_ascii=False)
    return "|".join(values)


def content_to_csv_row(content: ItemContent) -> dict[str, str]:
    """One item as a CSV record keyed by :data:`CSV_COLUMNS`; :func:`read_items` reads it back unchanged."""
    data = content.model_dump(mode="json")
    row: dict[str, str] = {}
    for col in CSV_COLUMNS:
        value = data.get(col)  # fields left out of dumps when empty are missing
        if value is None:
            row[col] = ""
        elif col in _CSV_LIST_COLUMNS:
            row[col] = _list_to_cell([str(v) for v in value])
        elif col in _CSV_JSON_COLUMNS:
            dumped = [obj.model_dump(mode="json", exclude_defaults=True) for obj in getattr(content, col)]
            row[col] = json.dumps(dumped, ensure_ascii=False) if dumped else ""
        elif col in _CSV_LIMIT_COLUMNS:
            row[col] = f"{value['value']} {value['unit']}"
        elif isinstance(value, bool):
            row[col] = "true" if value else "false"
        else:
            row[col] = str(value)
    return row


def _csv_cell(col: str, cell: str) -> Any:
    """The value of one non-empty CSV cell, ready for ItemContent validation."""
    if col in _CSV_LIST_COLUMNS:
        if cell.startswith("["):
            try:
                items = json.loads(cell)
            except json.JSONDecodeError as exc:
                raise RowError(f"field {col!r}: not a JSON array ({exc.msg})") from None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise RowError(f"field {col!r}: expected a JSON array of text")
            return items
        return [part.strip() for part in cell.split("|") if part.strip()]
    if col in _CSV_JSON_COLUMNS:
        try:
            items = json.loads(cell)
        except json.JSONDecodeError as exc:
            raise RowError(f"field {col!r}: not a JSON array ({exc.msg} at column {exc.colno})") from None
        if not isinstance(items, list):
            raise RowError(f"field {col!r}: expected a JSON array, got {_short(items)}")
        return items
    if col in _CSV_LIMIT_COLUMNS:
        m = _CSV_LIMIT_RE.match(cell)
        if m:
            return {"value": int(m[1]), "unit": m[2] or LimitUnit.WORKING_DAY.value}
        try:
            return parse_time_limit(cell)
        except RowError as exc:
            raise RowError(f"field {col!r}: {exc} or 30 working_day") from None
    return cell


def _csv_record_to_content(record: dict[str, str]) -> ItemContent:
    data: dict[str, Any] = {}
    for col, cell in record.items():
        text = cell.strip()
        if not text:
            continue
        data[col] = _csv_cell(col, text)
    try:
        return ItemContent.model_validate(data)
    except ValidationError as exc:
        raise RowError(_format_validation_error(exc)) from None


# --------------------------------------------------------------------------------------------------------
# Reading files


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise FileFormatError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise FileFormatError(f"{path}: permission denied") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot open ({exc.strerror or exc})") from None


def _check_text_file(path: Path) -> None:
    """Raise FileFormatError unless the file is non-empty UTF-8 text without NUL bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = 0
    line = 1
    blank = True
    with _open(path) as f:
        head = f.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise FileFormatError(f"{path}: file is UTF-16; save it as UTF-8")
        f.seek(0)
        while True:
            try:
                chunk = f.readline(_CHUNK)
            except OSError as exc:
                raise FileFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
            if not chunk:
                break
            nul = chunk.find(b"\0")
            if nul >= 0:
                raise FileFormatError(
                    f"{path}: looks like a binary file (NUL byte at byte offset {offset + nul}, line {line})"
                )
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = offset - pending + exc.start
                raise FileFormatError(
                    f"{path}: not valid UTF-8 (byte offset {bad}, line {line}); save the file as UTF-8"
                ) from None
            if blank and text.strip("\ufeff \t\r\n"):
                blank = False
            offset += len(chunk)
            if chunk.endswith(b"\n"):
                line += 1
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise FileFormatError(f"{path}: not valid UTF-8 (the file ends inside a character)") from None
    if offset == 0 or blank:
        raise FileFormatError(f"{path}: file is empty")


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per non-blank line; text is None for a line over MAX_LINE_BYTES."""
    with _open(path) as f:
        number = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 2)
            if not raw:
                return
            number += 1
            oversized = False
            if not raw.endswith(b"\n") and len(raw) > MAX_LINE_BYTES:
                oversized = True
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = f.readline(_CHUNK)
            body = raw.rstrip(b"\r\n")
            if oversized or len(body) > MAX_LINE_BYTES:
                yield number, None
                continue
            if number == 1:
                body = body.removeprefix(codecs.BOM_UTF8)
            text = body.decode("utf-8")
            if text.strip():
                yield number, text


def _parse_json_line(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, "not valid JSON: nested too deeply"
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(obj), "a number"
        )
        return None, f"expected a JSON object, got {kind}"
    return obj, None


def _too_long() -> str:
    return f"line is longer than {MAX_LINE_BYTES} bytes"


def _kind_of(record: dict[str, Any]) -> str | None:
    if "TASK_CODE" in record or "matter_name" in record:
        return GUANGDONG
    if "code" in record:
        return TONGBAN_JSONL
    return None


def detect_format(path: Path, first_record: dict[str, Any] | None = None) -> str:
    """``guangdong``, ``tongban-jsonl`` or ``tongban-csv``.

    A ``.csv`` file is ``tongban-csv``. Otherwise the first JSON object of the file (or ``first_record``)
    decides: ``TASK_CODE`` or ``matter_name`` means ``guangdong``, ``code`` means ``tongban-jsonl``.
    """
    if path.suffix.lower() == ".csv":
        return TONGBAN_CSV
    if first_record is None:
        for _number, text in _jsonl_lines(path):
            obj, _error = _parse_json_line(text) if text is not None else (None, None)
            if obj is not None:
                first_record = obj
                break
        else:
            raise FileFormatError(f"{path}: no JSON object found, so the format cannot be told")
    kind = _kind_of(first_record)
    if kind is None:
        keys = ", ".join(list(first_record)[:8]) or "none"
        raise FileFormatError(
            f"{path}: cannot tell the format: the first record has neither TASK_CODE/matter_name (guangdong) "
            f"nor code (tongban-jsonl); its keys are: {keys}"
        )
    return kind


def _code_of(value: object) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _read_jsonl(path: Path, fmt: str) -> Iterator[ParsedRow]:
    for number, text in _jsonl_lines(path):
        if text is None:
            yield ParsedRow(number, None, _too_long())
            continue
        obj, error = _parse_json_line(text)
        if obj is None:
            yield ParsedRow(number, None, error)
            continue
        if fmt == GUANGDONG:
            code = _code_of(obj.get("TASK_CODE"))
            try:
                content, warnings = guangdong_to_content(obj)
            except RowError as exc:
                yield ParsedRow(number, None, str(exc), code=code)
                continue
            yield ParsedRow(number, content, None, tuple(warnings), code=content.code)
        else:
            code = _code_of(obj.get("code"))
            try:
                content = ItemContent.model_validate(obj)
            except ValidationError as exc:
                yield ParsedRow(number, None, _format_validation_error(exc), code=code)
                continue
            yield ParsedRow(number, content, None, code=content.code)


def _csv_header(path: Path, header: list[str]) -> list[str]:
    names = [h.strip().removeprefix("\ufeff") for h in header]
    named = [n for n in names if n]
    unknown = [n for n in named if n not in CSV_COLUMNS]
    if unknown:
        raise FileFormatError(
            f"{path}: line 1: unknown column(s) in the CSV header: {', '.join(unknown)}; "
            f"known columns: {', '.join(CSV_COLUMNS)}"
        )
    doubled = sorted({n for n in named if named.count(n) > 1})
    if doubled:
        raise FileFormatError(
            f"{path}: line 1: column(s) given twice in the CSV header: {', '.join(doubled)}"
        )
    missing = [c for c in CSV_REQUIRED_COLUMNS if c not in named]
    if missing:
        raise FileFormatError(
            f"{path}: line 1: the CSV header lacks required column(s): {', '.join(missing)}"
        )
    return names


def _read_csv(path: Path) -> Iterator[ParsedRow]:
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header: list[str] | None = None
        last = 0
        while True:
            start = last + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                last = reader.line_num
                if header is None:
                    raise FileFormatError(
                        f"{path}: line {start}: cannot read the CSV header ({exc})"
                    ) from None
                yield ParsedRow(start, None, f"CSV syntax error: {exc}")
                continue
            last = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = _csv_header(path, cells)
                continue
            if len(cells) > len(header):
                yield ParsedRow(
                    start, None, f"row has {len(cells)} cells but the header has {len(header)} columns"
                )
                continue
            record: dict[str, str] = {}
            warnings: list[str] = []
            for name, cell in zip(header, cells, strict=False):
                if name:
                    record[name] = cell
                elif cell.strip():
                    warnings.append(f"value {_short(cell)!r} under a column without a name ignored")
            code = _code_of(record.get("code"))
            try:
                content = _csv_record_to_content(record)
            except RowError as exc:
                yield ParsedRow(start, None, str(exc), tuple(warnings), code=code)
                continue
            yield ParsedRow(start, content, None, tuple(warnings), code=content.code)


def read_items(path: Path, fmt: str | None = None) -> Iterator[ParsedRow]:
    """Stream the records of an import file as :class:`ParsedRow`; ``fmt`` None detects the format.

    Raises :class:`FileFormatError` at once (before any row) when the file cannot be read as a whole: missing,
    empty, binary, not UTF-8, a CSV without a proper header, or a format that cannot be told.
    Bad records do not raise: they come back as rows with ``error`` set, and reading goes on.
    """
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    _check_text_file(path)
    fmt = fmt or detect_format(path)
    if fmt == TONGBAN_CSV:
        rows = _read_csv(path)
        # Read the header now so that a bad header fails here rather than at the first row.
        first = next(rows, None)
        return _chain(first, rows)
    return _read_jsonl(path, fmt)


def _chain(first: ParsedRow | None, rest: Iterator[ParsedRow]) -> Iterator[ParsedRow]:
    if first is not None:
        yield first
        yield from rest
