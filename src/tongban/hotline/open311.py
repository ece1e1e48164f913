"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) over the hotline, under ``/open311/v2``.

Endpoints (each in XML, the spec's required format, and JSON, by the extension ``.xml`` / ``.json``; without
an extension the ``Accept`` header decides and XML is the default):

* ``GET /open311/discovery.{fmt}`` (also under ``/open311/v2``): the service discovery document;
* ``GET /open311/v2/services.{fmt}``: the active services;
* ``GET /open311/v2/services/{service_code}.{fmt}`` (also the singular ``service/...``): a definition;
* ``POST /open311/v2/requests.{fmt}``: file a request (form-encoded, with ``api_key``); the ticket enters the
  hotline like any other and the answer carries its ``service_request_id`` and ``token``;
* ``GET /open311/v2/tokens/{token}.{fmt}``: the ``service_request_id`` of a token;
* ``GET /open311/v2/requests.{fmt}``: requests, with the spec's filters (``service_request_id``,
  ``service_code``, ``start_date``, ``end_date``, ``status``) and the common ``page`` / ``page_size``
  extension; at most 1000 a page, 90 days by default;
* ``GET /open311/v2/requests/{service_request_id}.{fmt}``: one request.

``extensions=true`` adds ``extended_attributes`` (the hotline's own status among others) and ``notes`` (the
public steps of the ticket's history) to requests. Errors follow the spec (a list of ``code`` and
``description``; 403 for a missing or wrong key, 404 for what does not exist, 400 for the rest; 429 over a
key's rate). Requests are public: no name, phone number or email is ever returned.

Tolerated quirks of real clients: ``//`` in the path, ``api_key`` and ``jurisdiction_id`` in the query string
of a POST, the singular ``service/{code}`` path, time stamps without a time zone (taken as the city's).
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.routing import Match
from starlette.types import Scope

from tongban.core import audit
from tongban.core.auth import Principal, system_principal
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.errors import DomainError
from tongban.core.http import (
    ClockDep,
    DbSession,
    SealerDep,
    language,
    public,
    require,
    runtime,
)
from tongban.core.i18n import Language
from tongban.core.messages import N_
from tongban.hotline import apikeys
from tongban.hotline import repository as repo
from tongban.hotline import service as hotline_service
from tongban.hotline.models import Event, Service, Ticket
from tongban.hotline.schemas import ApiKeyOut, ApiKeyWrite, Contact, TicketWrite
from tongban.hotline.vocab import ADMIN, CHINA, CLOSED_STATUSES, STATUS_TEXT, Channel, RequestType

log = structlog.get_logger("tongban.open311")

#: Where GeoReport v2 is served.
BASE = "/open311/v2"
SPEC = "http://wiki.open311.org/GeoReport_v2"
FORMATS = ("xml", "json")
MEDIA_TYPES = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
#: The spec's response volume: 90 days, 1000 requests.
WINDOW = dt.timedelta(days=90)
MAX_REQUESTS = 1000
MAX_DESCRIPTION = 4000
_CLOSED = frozenset(s.value for s in CLOSED_STATUSES)
_STATUS_TEXT: dict[str, str] = {s.value: text for s, text in STATUS_TEXT.items()}

#: The spec's plural elements and the name of their items in XML.
_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
    "notes": "note",
}

#: What each public step of a ticket's history is called in ``notes`` (``extensions=true``).
ACTION_TEXT = {
    "received": N_("Request received"),
    "dispatched": N_("Sent to the responsible unit"),
    "redispatched": N_("Sent to another unit"),
    "signed": N_("Accepted by the responsible unit"),
    "replied": N_("The unit replied"),
    "original_replied": N_("The unit replied to the request this one was merged into"),
    "answered": N_("Answered directly by the hotline"),
    "revisited": N_("Return visit made"),
    "reopened": N_("Reopened after the return visit"),
    "original_closed": N_("The request this one was merged into was closed"),
    "merged": N_("Merged into another request about the same problem"),
    "cancelled": N_("Cancelled"),
}

#: Who files Open311 tickets: the platform on behalf of the key's client (no account, no permission).
OPEN311 = system_principal("open311", frozenset())


# --- errors and rendering ---------------------------------------------------------------------------------


@dataclass
class Open311Error(Exception):
    """An error answered in the spec's format: ``[(code, description), ...]`` with an HTTP status."""

    status: int
    errors: list[tuple[str, str]]
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, description: str, **headers: str) -> Open311Error:
    return Open311Error(status, [(str(status), description)], dict(headers))


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_BAD.sub("", str(value))


def _element(parent: ET.Element, name: str, value: Any) -> None:
    node = ET.SubElement(parent, name)
    _fill(node, name, value)


def _fill(node: ET.Element, name: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _element(node, str(key), item)
    elif isinstance(value, list | tuple):
        for item in value:
            _element(node, _ITEMS.get(name, "item"), item)
    else:
        node.text = _text(value)


def render(
    fmt: str, root: str, payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``payload`` as JSON (as it is) or as XML under ``<root>`` (lists as the spec's plural elements)."""
    if fmt == "json":
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    else:
        top = ET.Element(root)
        _fill(top, root, payload)
        body = '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(top, encoding="unicode")
    return Response(
        body.encode("utf-8"), status_code=status, media_type=MEDIA_TYPES[fmt], headers=dict(headers or {})
    )


def error_response(fmt: str, exc: Open311Error) -> Response:
    payload = [{"code": code, "description": text} for code, text in exc.errors]
    return render(fmt, "errors", payload, status=exc.status, headers=exc.headers)


def _from_domain(exc: DomainError, lang: Language) -> Open311Error:
    """The spec's statuses: 404 what does not exist, 403 a refused key, 400 (almost) everything else."""
    status = {404: 404, 401: 403, 403: 403, 413: 413, 429: 429, 503: 503}.get(exc.status, 400)
    return _error(status, f"{lang.gettext(exc.title)}: {exc.detail}")


# --- the router -----------------------------------------------------------------------------------------

_SLASHES = re.compile(r"/{2,}")


class _TolerantRoute(APIRoute):
    """A route that also matches its path written with ``//`` (``/open311/v2//requests.json``, as clients
    that join a base ending in ``/`` with a path beginning with one send it)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path")
        if isinstance(path, str) and "//" in path:
            clean = _SLASHES.sub("/", path)
            if clean.startswith("/open311/"):
                scope = {**scope, "path": clean}
        return super().matches(scope)


router = APIRouter(tags=["open311"], route_class=_TolerantRoute)
#: The administrators' JSON API of the keys.
keys_router = APIRouter(prefix="/api/v1/hotline/api-keys", tags=["hotline"])


async def _api_key_rule(request: Request) -> None:
    """Rule of the Open311 POST: anyone with an API key (checked, and counted against the key's rate, in
    the handler, so that the refusal is written in the spec's error format)."""
    return None


_api_key_rule.__authz_rule__ = "open311-api-key"  # type: ignore[attr-defined]
Public = [Depends(public)]
WithKey = [Depends(_api_key_rule)]


def _lang(request: Request) -> Language:
    return language(request)


def _fmt(request: Request) -> str:
    """The format named by the path's extension; without one, what ``Accept`` prefers (XML by default)."""
    named = request.path_params.get("fmt")
    if named is None:
        accept = request.headers.get("accept", "").lower()
        return "json" if "json" in accept and "xml" not in accept.split("json")[0] else "xml"
    fmt = str(named).lower()
    if fmt not in FORMATS:
        lang = _lang(request)
        raise _error(404, lang.gettext("Unknown format %(fmt)s: use .xml or .json") % {"fmt": named})
    return fmt


def _param(request: Request, name: str, fields: Sequence[tuple[str, str]] = ()) -> str:
    """A parameter from the form (first) or the query string; an empty one counts as not given."""
    for key, value in fields:
        if key == name and value.strip():
            return value.strip()
    value = request.query_params.get(name, "")
    return value.strip()


def _jurisdiction(request: Request, fields: Sequence[tuple[str, str]] = ()) -> None:
    given = _param(request, "jurisdiction_id", fields)
    ours = runtime(request).settings.open311_jurisdiction
    if given and given.lower() != ours.lower():
        lang = _lang(request)
        raise _error(404, lang.gettext("jurisdiction_id %(given)s not found") % {"given": given[:100]})


def _answer(request: Request, work: Callable[[str], Response], *, session: Session | None = None) -> Response:
    """Run ``work(fmt)``; any error becomes the spec's error document (and the transaction is undone)."""
    fmt = "xml"
    try:
        fmt = _fmt(request)
        return work(fmt)
    except Open311Error as exc:
        if session is not None:
            session.rollback()
        return error_response(fmt, exc)
    except DomainError as exc:
        if session is not None:
            session.rollback()
        return error_response(fmt, _from_domain(exc, _lang(request)))
    except DataError:
        # A value the database cannot hold (out of range, a NUL character): the caller's input.
        if session is not None:
            session.rollback()
        lang = _lang(request)
        return error_response(
            fmt, _error(400, lang.gettext("A value is not acceptable (out of range, or a NUL character)"))
        )


# --- mapping --------------------------------------------------------------------------------------------


def _when(value: dt.datetime | None) -> str | None:
    """A w3 date-time in the city's time (``2026-03-02T17:00:00+08:00``)."""
    return value.astimezone(CHINA).isoformat(timespec="seconds") if value is not None else None


def _status(t: Ticket) -> str:
    return "closed" if t.status in _CLOSED else "open"


_ZIP = re.compile(r"(?:^|[\s,])(\d{5}(?:-\d{4})?|\d{6})\s*$")


def _zipcode(address: str) -> str:
    """The postal code at the end of an address (``..., 90026``; ``... 100020``), if it has one."""
    found = _ZIP.search(address)
    return found.group(1) if found else ""


@dataclass(frozen=True)
class _Context:
    lang: Language
    services: dict[str, Service]
    units: dict[str, tuple[str, str]]


def _context(session: Session, lang: Language, tickets: Sequence[Ticket]) -> _Context:
    services = {s.code: s for s in repo.services(session, active_only=False)}
    codes = {c for t in tickets for c in (t.lead_unit, t.replied_by_unit) if c}
    return _Context(lang=lang, services=services, units=repo.unit_names_of(session, codes))


def _unit_name(ctx: _Context, code: str | None) -> str | None:
    if not code:
        return None
    name, name_en = ctx.units.get(code, (code, ""))
    return name_en if ctx.lang.code == "en" and name_en else name


def _notice(ctx: _Context, t: Ticket) -> str | None:
    if t.status in _CLOSED:
        return None
    if t.due_at is not None:
        return ctx.lang.gettext("The responsible unit is to reply by %(due)s.") % {"due": _when(t.due_at)}
    return ctx.lang.gettext("The hotline sends the request to the unit responsible for it.")


def request_out(
    ctx: _Context, t: Ticket, *, events: Sequence[Event] | None = None, merged_ref: str = ""
) -> dict[str, Any]:
    """A ticket as a GeoReport v2 request. Only the problem and where it is: never who reported it. The
    description of tickets that did not come through Open311 is their subject (their text is the caller's
    own words, which may name people)."""
    service = ctx.services.get(t.service_code or "")
    fine = _STATUS_TEXT.get(t.status)
    attrs = t.attributes or {}
    out: dict[str, Any] = {
        "service_request_id": t.ref or "",
        "status": _status(t),
        "status_notes": ctx.lang.gettext(fine) if fine else t.status,
        "service_name": service.name if service else (t.service_code or ""),
        "service_code": t.service_code or "",
        "description": t.body if t.channel == Channel.OPEN311 else t.subject,
        "agency_responsible": _unit_name(ctx, t.replied_by_unit or t.lead_unit),
        "service_notice": _notice(ctx, t),
        "requested_datetime": _when(t.created_at),
        "updated_datetime": _when(t.closed_at if t.status in _CLOSED and t.closed_at else t.updated_at),
        "expected_datetime": _when(t.due_at),
        "address": t.address or None,
        "address_id": str(attrs.get(ADDRESS_ID) or "") or None,
        "zipcode": _zipcode(t.address) or None,
        "lat": t.lat,
        "long": t.lon,
        "media_url": t.media_url or None,
    }
    if events is not None:
        out["extended_attributes"] = {
            "hotline_status": t.status,
            "hotline_status_text": out["status_notes"],
            "channel": t.channel,
            "category": t.category_path or None,
            "deadline_class": t.deadline_class,
            "dispatch_count": t.dispatch_count,
            "reopen_count": t.reopen_count,
            "duplicate": t.merged_into_id is not None,
            "parent_service_request_id": merged_ref or None,
        }
        out["notes"] = [_note(ctx, e) for e in events]
    return out


def _note(ctx: _Context, e: Event) -> dict[str, Any]:
    """A public step of the history: when, what, and the status it left the ticket in. Free texts (replies,
    reasons) are not shown: these documents are public and the texts may name people."""
    summary = ACTION_TEXT.get(e.action)
    fine = _STATUS_TEXT.get(e.status_to)
    return {
        "datetime": _when(e.at),
        "type": e.action,
        "summary": ctx.lang.gettext(summary) if summary else e.action,
        "status": e.status_to,
        "description": ctx.lang.gettext(fine) if fine else e.status_to,
        "agency": _unit_name(ctx, e.unit),
    }


def _requests_out(
    session: Session, lang: Language, tickets: Sequence[Ticket], extensions: bool
) -> list[dict[str, Any]]:
    ctx = _context(session, lang, tickets)
    events: dict[int, list[Event]] = {}
    merged: dict[int, str] = {}
    if extensions:
        events = repo.public_events_of(session, [t.id for t in tickets])
        merged = repo.refs_of(session, [t.merged_into_id for t in tickets if t.merged_into_id])
    return [
        request_out(
            ctx,
            t,
            events=events.get(t.id, []) if extensions else None,
            merged_ref=merged.get(t.merged_into_id, "") if t.merged_into_id else "",
        )
        for t in tickets
    ]


def service_out(s: Service) -> dict[str, Any]:
    return {
        "service_code": s.code,
        "service_name": s.name,
        "description": s.description,
        "metadata": bool(s.attributes),
        "type": "realtime",
        "keywords": s.keywords,
        "group": s.group,
    }


def _is_list(datatype: str) -> bool:
    return datatype in ("singlevaluelist", "multivaluelist")


def _values(attr: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for v in attr.get("values") or []:
        if isinstance(v, Mapping):
            key = v.get("key", v.get("name", ""))
            out.append({"key": str(key), "name": str(v.get("name", key))})
        else:
            out.append({"key": str(v), "name": str(v)})
    return out


def attribute_out(n: int, attr: Mapping[str, Any]) -> dict[str, Any]:
    datatype = str(attr.get("datatype") or "string")
    out: dict[str, Any] = {
        "variable": bool(attr.get("variable", True)),
        "code": str(attr.get("code", "")),
        "datatype": datatype,
        "required": bool(attr.get("required", False)),
        "datatype_description": attr.get("datatype_description") or None,
        "order": int(attr.get("order") or n + 1),
        "description": str(attr.get("description") or ""),
    }
    if _is_list(datatype) or attr.get("values"):
        out["values"] = _values(attr)
    return out


def definition_out(s: Service) -> dict[str, Any]:
    attrs = [attribute_out(n, a) for n, a in enumerate(s.attributes or [])]
    attrs.sort(key=lambda a: (a["order"], a["code"]))
    return {"service_code": s.code, "attributes": attrs}


# --- reading --------------------------------------------------------------------------------------------
# (Stacked route decorators register bottom-up: the paths with an extension are tried first.)


@router.get(BASE + "/discovery", dependencies=Public)
@router.get("/open311/discovery", dependencies=Public)
@router.get(BASE + "/discovery.{fmt}", dependencies=Public)
@router.get("/open311/discovery.{fmt}", dependencies=Public)
def discovery(request: Request, session: DbSession, clock: ClockDep) -> Response:
    """The service discovery document (http://wiki.open311.org/Service_Discovery)."""

    def work(fmt: str) -> Response:
        lang = _lang(request)
        settings = runtime(request).settings
        changed = audit.list_events(session, target_type="hotline_service", limit=1)
        changeset = _when(changed[0].at if changed else clock.now())
        payload = {
            "changeset": changeset,
            "contact": lang.gettext("The 12345 hotline's administrators (the platform's help desk)."),
            "key_service": lang.gettext(
                "API keys for posting requests are issued by the hotline's administrators."
            ),
            "endpoints": [
                {
                    "specification": SPEC,
                    "url": settings.resolved_public_url() + BASE,
                    "changeset": changeset,
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }
        return render(fmt, "discovery", payload)

    return _answer(request, work)


@router.get(BASE + "/services", dependencies=Public)
@router.get(BASE + "/services.{fmt}", dependencies=Public)
def services(request: Request, session: DbSession) -> Response:
    """GET Service List: the services clients may file requests under."""

    def work(fmt: str) -> Response:
        _jurisdiction(request)
        rows = repo.services(session, active_only=True)
        return render(fmt, "services", [service_out(s) for s in rows])

    return _answer(request, work)


@router.get(BASE + "/service/{code}", dependencies=Public)
@router.get(BASE + "/services/{code}", dependencies=Public)
@router.get(BASE + "/service/{code}.{fmt}", dependencies=Public)
@router.get(BASE + "/services/{code}.{fmt}", dependencies=Public)
def service_definition(request: Request, session: DbSession) -> Response:
    """GET Service Definition: the attributes of a service (``service/{code}`` is accepted too)."""

    def work(fmt: str) -> Response:
        _jurisdiction(request)
        code = str(request.path_params.get("code", ""))
        row = repo.service(session, code) if len(code) <= 64 else None
        if row is None or not row.active:
            lang = _lang(request)
            raise _error(404, lang.gettext("service_code %(code)s not found") % {"code": code[:64]})
        return render(fmt, "service_definition", definition_out(row))

    return _answer(request, work)


@router.get(BASE + "/tokens/{token}", dependencies=Public)
@router.get(BASE + "/tokens/{token}.{fmt}", dependencies=Public)
def token(request: Request, session: DbSession) -> Response:
    """GET service_request_id from a token."""

    def work(fmt: str) -> Response:
        _jurisdiction(request)
        value = str(request.path_params.get("token", ""))
        t = repo.ticket_by_token(session, value) if 0 < len(value) <= 64 else None
        if t is None:
            lang = _lang(request)
            raise _error(404, lang.gettext("token %(token)s not found") % {"token": value[:64]})
        return render(fmt, "service_requests", [{"service_request_id": t.ref or "", "token": value}])

    return _answer(request, work)


_REF = re.compile(r"^[0-9A-Za-z]{1,32}$")
_TRUE = frozenset({"true", "1", "yes", "on"})


@router.get(BASE + "/requests/{sid}", dependencies=Public)
@router.get(BASE + "/requests/{sid}.{fmt}", dependencies=Public)
def one_request(request: Request, session: DbSession) -> Response:
    """GET Service Request: one request (a list of one, as the spec has it)."""

    def work(fmt: str) -> Response:
        _jurisdiction(request)
        lang = _lang(request)
        sid = str(request.path_params.get("sid", ""))
        found = repo.open311_requests_by_refs(session, [sid]) if _REF.match(sid) else []
        if not found:
            raise _error(404, lang.gettext("service_request_id %(id)s not found") % {"id": sid[:32]})
        extensions = _param(request, "extensions").lower() in _TRUE
        return render(fmt, "service_requests", _requests_out(session, lang, found, extensions))

    return _answer(request, work)


_W3 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2}|[+-]\d{2})?$"
)


def parse_w3(value: str) -> dt.datetime:
    """A W3C date-time (``2010-01-01T00:00:00Z``, ``...+08:00``, ``2010-01-01``); without a zone the city's
    time is meant. ``ValueError`` when it is none."""
    found = _W3.match(value.strip())
    if not found:
        raise ValueError(value)
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    tz: dt.tzinfo = CHINA
    if zone:
        if zone in ("Z", "z"):
            tz = dt.UTC
        else:
            digits = zone[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:] or 0)
            if hours > 23 or minutes > 59:
                raise ValueError(value)
            offset = dt.timedelta(hours=hours, minutes=minutes)
            tz = dt.timezone(offset if zone[0] == "+" else -offset)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    return dt.datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo=tz
    )


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@router.get(BASE + "/requests", dependencies=Public)
@router.get(BASE + "/requests.{fmt}", dependencies=Public)
def list_requests(request: Request, session: DbSession, clock: ClockDep) -> Response:
    """GET Service Requests with the spec's filters; ``service_request_id`` overrides the others."""

    def work(fmt: str) -> Response:
        _jurisdiction(request)
        lang = _lang(request)
        extensions = _param(request, "extensions").lower() in _TRUE
        refs = _list(_param(request, "service_request_id"))
        if refs:
            if len(refs) > MAX_REQUESTS:
                raise _error(
                    400, lang.gettext("At most %(n)s service_request_id at once") % {"n": MAX_REQUESTS}
                )
            found = repo.open311_requests_by_refs(session, [r for r in refs if _REF.match(r)])
            return render(fmt, "service_requests", _requests_out(session, lang, found, extensions))
        q = _query(request, lang, clock)
        found = repo.open311_requests(session, **q)
        return render(fmt, "service_requests", _requests_out(session, lang, found, extensions))

    return _answer(request, work)


def _query(request: Request, lang: Language, clock: Clock) -> dict[str, Any]:
    """The filters of GET Service Requests, checked (400 for what is not acceptable)."""
    codes = _list(_param(request, "service_code"))
    if len(codes) > 200 or any(len(c) > 64 for c in codes):
        raise _error(400, lang.gettext("service_code: at most 200 codes of up to 64 characters"))
    wanted = set()
    for s in _list(_param(request, "status").lower()):
        if s not in ("open", "closed"):
            raise _error(400, lang.gettext("status %(value)s: use open or closed") % {"value": s[:20]})
        wanted.add(s)
    dates: dict[str, dt.datetime] = {}
    for name in ("start_date", "end_date"):
        raw = _param(request, name)
        if raw:
            try:
                dates[name] = parse_w3(raw)
            except ValueError:
                message = lang.gettext("%(name)s %(value)s is not a w3 date-time (e.g. 2010-01-01T00:00:00Z)")
                raise _error(400, message % {"name": name, "value": raw[:40]}) from None
    start, end = dates.get("start_date"), dates.get("end_date")
    if start is None:
        end = end or clock.now()
        start = end - WINDOW
    elif end is None:
        end = start + WINDOW
    if end < start:
        raise _error(400, lang.gettext("end_date is before start_date"))
    if end - start > WINDOW:
        raise _error(400, lang.gettext("start_date and end_date may not span more than 90 days"))
    page, size = 1, MAX_REQUESTS
    for name, low, high in (("page", 1, 1_000_000), ("page_size", 1, MAX_REQUESTS)):
        raw = _param(request, name)
        if raw:
            if not raw.isdigit() or not low <= int(raw) <= high:
                message = lang.gettext("%(name)s: a whole number from %(low)s to %(high)s")
                raise _error(400, message % {"name": name, "low": low, "high": high})
            if name == "page":
                page = int(raw)
            else:
                size = int(raw)
    statuses: list[str] = []
    exclude: list[str] = []
    if wanted == {"closed"}:
        statuses = sorted(_CLOSED)
    elif wanted == {"open"}:
        exclude = sorted(_CLOSED)
    return {
        "service_codes": codes,
        "statuses": statuses,
        "exclude_statuses": exclude,
        "created_from": start,
        "created_to": end,
        "offset": (page - 1) * size,
        "limit": size,
    }


# --- POST Service Request ---------------------------------------------------------------------------------

#: Where the spec's ``address_id`` is kept among the ticket's attributes (no attribute code starts with @).
ADDRESS_ID = "@address_id"
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]*)\](\[\])?$")


@dataclass(frozen=True)
class Fields:
    """The fields of a POST (form, or a JSON object), with the query string's after them; ``problem`` when
    the body could not be read."""

    pairs: list[tuple[str, str]]
    problem: str = ""


def _flatten(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        if key == "attribute" and isinstance(value, Mapping):
            for code, v in value.items():
                if isinstance(v, list):
                    pairs += [(f"attribute[{code}][]", _text(x)) for x in v]
                else:
                    pairs.append((f"attribute[{code}]", _text(v)))
        elif isinstance(value, list):
            pairs += [(str(key), _text(x)) for x in value]
        elif value is not None:
            pairs.append((str(key), _text(value)))
    return pairs


async def read_fields(request: Request) -> Fields:
    """The POST's fields: ``application/x-www-form-urlencoded`` as the spec says, multipart, or a JSON
    object (``attribute`` as an object) as some clients send."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    query = list(request.query_params.multi_items())
    pairs: list[tuple[str, str]] = []
    try:
        if kind == "application/json":
            data = json.loads(await request.body() or b"{}")
            if not isinstance(data, dict):
                return Fields(query, "the JSON body is not an object")
            pairs = _flatten(data)
        elif kind in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
            async with request.form(max_files=5, max_fields=500) as form:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        continue  # media are given as media_url
                    pairs.append((key, value))
        else:
            return Fields(query, f"unsupported Content-Type {kind[:60]}")
    except (MultiPartException, ValueError, UnicodeDecodeError) as exc:
        return Fields(query, f"the body could not be read ({str(exc)[:100]})")
    return Fields(pairs + query)


FieldsDep = Annotated[Fields, Depends(read_fields)]


def _single(fields: Sequence[tuple[str, str]], name: str) -> str:
    for key, value in fields:
        if key == name and value.strip():
            return value.strip()
    return ""


def _number(lang: Language, name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not low <= value <= high:
        message = lang.gettext("%(name)s %(value)s: a number from %(low)s to %(high)s")
        raise _error(400, message % {"name": name, "value": raw[:30], "low": low, "high": high})
    return value


def _attributes(lang: Language, service: Service, fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``attribute[code]=value`` and ``attribute[code][]=value`` checked against the service definition."""
    given: dict[str, list[str]] = {}
    for key, value in fields:
        found = _ATTRIBUTE.match(key)
        if found:
            given.setdefault(found.group(1), []).append(value.strip())
    defs = {str(a.get("code")): a for a in service.attributes or []}
    out: dict[str, Any] = {}
    problems: list[str] = []
    for code in given:
        if code not in defs:
            problems.append(
                lang.gettext("attribute[%(code)s]: service %(service)s has no such attribute")
                % {"code": code[:64], "service": service.code}
            )
    for code, attr in defs.items():
        if not attr.get("variable", True):
            continue
        datatype = str(attr.get("datatype") or "string")
        values = [v for v in given.get(code, []) if v]
        if not values:
            if attr.get("required"):
                problems.append(lang.gettext("attribute[%(code)s] is required") % {"code": code})
            continue
        if datatype != "multivaluelist" and len(values) > 1:
            problems.append(lang.gettext("attribute[%(code)s] takes one value") % {"code": code})
            continue
        keys = {v["key"] for v in _values(attr)}
        if datatype == "multivaluelist":
            unknown = [v for v in values if v not in keys]
            if unknown:
                problems.append(_not_listed(lang, code, unknown[0]))
            out[code] = list(dict.fromkeys(values))
            continue
        value = values[0]
        if datatype == "singlevaluelist" and value not in keys:
            problems.append(_not_listed(lang, code, value))
        elif datatype == "number":
            try:
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError(value)
                out[code] = int(number) if number.is_integer() and abs(number) < 2**53 else number
            except ValueError:
                problems.append(lang.gettext("attribute[%(code)s]: not a number") % {"code": code})
            continue
        elif datatype == "datetime":
            try:
                out[code] = _when(parse_w3(value))
            except ValueError:
                problems.append(lang.gettext("attribute[%(code)s]: not a date-time") % {"code": code})
            continue
        elif len(value) > MAX_DESCRIPTION:
            problems.append(lang.gettext("attribute[%(code)s]: too long") % {"code": code})
        out[code] = value
    if problems:
        raise Open311Error(400, [("400", p) for p in problems])
    return out


def _not_listed(lang: Language, code: str, value: str) -> str:
    return lang.gettext("attribute[%(code)s]: %(value)s is not one of its values") % {
        "code": code,
        "value": value[:64],
    }


_FIELD_NAMES = {"lon": "long", "body": "description", "address": "address_string", "media_url": "media_url"}


def ticket_from(lang: Language, service: Service, fields: Sequence[tuple[str, str]]) -> TicketWrite:
    """The hotline ticket of a POST's fields (400 for what the spec or the hotline does not accept)."""
    for key, value in fields:
        if "\x00" in key or "\x00" in value:
            raise _error(400, lang.gettext("%(field)s: NUL characters are not allowed") % {"field": key[:80]})
    lat_raw, lon_raw = _single(fields, "lat"), _single(fields, "long")
    address = _single(fields, "address_string")
    address_id = _single(fields, "address_id")
    if bool(lat_raw) != bool(lon_raw):
        raise _error(400, lang.gettext("lat and long must be given together"))
    if not (lat_raw or address or address_id):
        raise _error(400, lang.gettext("A location is required: lat and long, address_string or address_id"))
    lat = _number(lang, "lat", lat_raw, -90, 90) if lat_raw else None
    lon = _number(lang, "long", lon_raw, -180, 180) if lon_raw else None
    if len(address) > 500 or len(address_id) > 100:
        raise _error(400, lang.gettext("address_string or address_id is too long"))
    description = _single(fields, "description")
    if len(description) > MAX_DESCRIPTION:
        raise _error(400, lang.gettext("description: at most 4000 characters"))
    media_url = _single(fields, "media_url")
    if media_url and (not re.match(r"^https?://\S+$", media_url, re.IGNORECASE) or len(media_url) > 1000):
        raise _error(400, lang.gettext("media_url: an http(s) address of up to 1000 characters"))
    attributes = _attributes(lang, service, fields)
    if address_id:
        attributes[ADDRESS_ID] = address_id
    name = " ".join(p for p in (_single(fields, "first_name"), _single(fields, "last_name")) if p)
    phone = _single(fields, "phone")
    if phone:
        phone = re.sub(r"[\s().-]", "", phone)
        if not re.fullmatch(r"\+?[0-9]{3,20}", phone):
            raise _error(400, lang.gettext("phone: not a phone number"))
    email = _single(fields, "email")
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise _error(400, lang.gettext("email: not an email address"))
    try:
        contact = Contact(
            name=name[:100],
            phone=phone or None,
            email=email[:200] or None,
            device_id=_single(fields, "device_id")[:200],
        )
        return TicketWrite(
            channel=Channel.OPEN311,
            request_type=RequestType.REQUEST,
            subject=service.name[:300],
            body=description or f"{service.name} ({service.code})",
            contact=contact,
            address=address,
            lat=lat,
            lon=lon,
            service_code=service.code,
            attributes=attributes,
            media_url=media_url,
        )
    except ValidationError as exc:
        problems = []
        for e in exc.errors()[:10]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "contact")
            problems.append(f"{_FIELD_NAMES.get(where, where) or 'request'}: {e.get('msg', '')}")
        raise Open311Error(400, [("400", p) for p in problems]) from None


def _rate_headers(check: apikeys.KeyCheck) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(check.limit), "X-RateLimit-Remaining": str(check.remaining)}


@router.post(BASE + "/requests", dependencies=WithKey)
@router.post(BASE + "/requests.{fmt}", dependencies=WithKey)
def post_request(
    request: Request, fields: FieldsDep, session: DbSession, clock: ClockDep, sealer: SealerDep
) -> Response:
    """POST Service Request: file a request with an API key (form-encoded; ``api_key`` and
    ``jurisdiction_id`` may be in the query string)."""

    def work(fmt: str) -> Response:
        lang = _lang(request)
        pairs = fields.pairs
        _jurisdiction(request, pairs)
        check = apikeys.check_key_apart(runtime(request).sessions, _single(pairs, "api_key"), clock=clock)
        if check.refused:
            message = {
                "missing": N_("api_key was not provided"),
                "revoked": N_("The api_key has been revoked"),
            }.get(check.refused, N_("Invalid api_key"))
            raise _error(403, lang.gettext(message))
        if check.limited:
            message = lang.gettext("Too many requests with this api_key: at most %(n)s a minute; retry later")
            limited = _error(429, message % {"n": check.limit})
            limited.headers.update(_rate_headers(check))
            limited.headers["Retry-After"] = str(check.retry_after)
            raise limited
        try:
            if fields.problem:
                raise _error(
                    400, lang.gettext("The request could not be read: %(why)s") % {"why": fields.problem}
                )
            code = _single(pairs, "service_code")
            if not code:
                raise _error(400, lang.gettext("service_code was not provided"))
            service = repo.service(session, code) if len(code) <= 64 else None
            if service is None or not service.active:
                raise _error(404, lang.gettext("service_code %(code)s not found") % {"code": code[:64]})
            write = ticket_from(lang, service, pairs)
            created = _create(session, write, check, sealer=sealer, clock=clock)
        except Open311Error as exc:
            exc.headers.update(_rate_headers(check))
            raise
        notice = lang.gettext("Received by the 12345 hotline as request %(ref)s.") % {"ref": created.ref}
        payload = [
            {
                "service_request_id": created.ref,
                "token": created.token,
                "service_notice": notice,
                "account_id": None,
            }
        ]
        return render(fmt, "service_requests", payload, headers=_rate_headers(check))

    return _answer(request, work, session=session)


@dataclass(frozen=True)
class _Created:
    ref: str
    token: str | None


def _create(
    session: Session, write: TicketWrite, check: apikeys.KeyCheck, *, sealer: Sealer, clock: Clock
) -> _Created:
    out = hotline_service.create_ticket(
        session,
        OPEN311,
        write,
        sealer=sealer,
        clock=clock,
        api_key_id=check.key_id,
        actor=f"open311:{check.name}"[:100],
    )
    row = session.get(Ticket, out.id)  # in the session already: no query
    return _Created(ref=out.ref, token=row.token if row is not None else None)


# --- what matches nothing ---------------------------------------------------------------------------------


@router.api_route(
    "/open311/{rest:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    dependencies=Public,
    include_in_schema=False,
)
def not_found(request: Request) -> Response:
    """Anything else under ``/open311``: the spec's 404 (or 405 for a known resource with another method)."""
    path = _SLASHES.sub("/", request.url.path)
    fmt = "json" if path.lower().endswith(".json") else "xml"
    lang = _lang(request)
    allowed = {
        m
        for r in router.routes
        if isinstance(r, APIRoute) and r.endpoint is not not_found and r.path_regex.match(path)
        for m in r.methods or ()
    }
    if allowed:
        message = lang.gettext("Method %(method)s is not allowed here") % {"method": request.method}
        return error_response(fmt, _error(405, message, Allow=", ".join(sorted(allowed))))
    return error_response(fmt, _error(404, lang.gettext("No such resource: %(path)s") % {"path": path[:200]}))


# --- the administrators' API of the keys ----------------------------------------------------------------

Admin = Annotated[Principal, Depends(require(ADMIN))]


@keys_router.get("")
def list_api_keys(session: DbSession, principal: Admin) -> list[ApiKeyOut]:
    """Every Open311 API key (the keys themselves are never shown again)."""
    return apikeys.list_keys(session, principal)


@keys_router.post("", status_code=201)
def issue_api_key(body: ApiKeyWrite, session: DbSession, principal: Admin, clock: ClockDep) -> ApiKeyOut:
    """Issue a key to a client: the answer's ``key`` is shown this once; only its digest is kept."""
    return apikeys.issue_key(session, principal, body, clock=clock)


@keys_router.post("/{key_id}/revoke")
def revoke_api_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: DbSession, principal: Admin, clock: ClockDep
) -> ApiKeyOut:
    """Revoke a key: its requests are refused from now on (audited)."""
    return apikeys.revoke_key(session, principal, key_id, clock=clock)


def install(app: FastAPI) -> None:
    """Serve Open311 on ``app`` (``/open311/...``) and the keys' API (``/api/v1/hotline/api-keys``).

    Call it after the application's own error handlers are installed: errors raised outside the Open311
    handlers (the database admission's 503, an unexpected 500) are then answered in the spec's format under
    ``/open311/`` and as before everywhere else."""
    app.include_router(keys_router)
    app.include_router(router)
    for exc_class in (DomainError, Exception):
        app.add_exception_handler(exc_class, _errors_under_open311(app.exception_handlers.get(exc_class)))


def _errors_under_open311(
    previous: Callable[..., Any] | None,
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        path = _SLASHES.sub("/", request.url.path)
        if not path.startswith("/open311/"):
            if previous is None:
                raise exc
            answer = previous(request, exc)
            return await answer if inspect.isawaitable(answer) else answer  # type: ignore[no-any-return]
        fmt = "json" if path.lower().endswith(".json") else "xml"
        lang = _lang(request)
        if isinstance(exc, DomainError):
            return error_response(fmt, _from_domain(exc, lang))
        log.exception("unhandled_error", path=request.url.path)
        return error_response(fmt, _error(500, lang.gettext("An unexpected error occurred.")))

    return handler
