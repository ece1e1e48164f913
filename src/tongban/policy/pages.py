"""HTML pages of the policy library (政策库) and the policy calculator (政策计算器), in zh-Hans and en.

The calculator is a plain form (no JavaScript needed): a person or an enterprise gives the facts it knows,
leaves the others empty, and sees every published item decided — eligible, not eligible, or undetermined
with the data that would decide it and who holds those data. Nothing it enters is stored; the form is
posted (not put in the address) so that personal facts stay out of logs and history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from tongban.core import auth
from tongban.core.errors import DomainError
from tongban.core.http import (
    ClockDep,
    DbSession,
    LanguageDep,
    csrf_form,
    public_with_principal,
    public_writing,
    render_page,
)
from tongban.core.i18n import Language
from tongban.policy import service
from tongban.policy.schemas import FieldOut, Level, MatchRequest

router = APIRouter(include_in_schema=False)
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Asking = Annotated[auth.Principal, Depends(public_writing)]
ENTITIES = ("person", "enterprise")
CALCULATOR = "/policies/calculator"


async def posted_form(request: Request) -> AsyncIterator[FormData]:
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


Posted = Annotated[FormData, Depends(posted_form)]


def _lang_code(lang: Language) -> str:
    return "en" if lang.code == "en" else "zh"


def _words(lang: Language) -> dict[str, Any]:
    _ = lang.gettext
    return {
        "levels": {
            "national": _("National"),
            "city": _("City"),
            "district": _("District"),
            "street": _("Street"),
        },
        "statuses": {
            "drafting": _("Being drafted"),
            "review": _("In review"),
            "published": _("In force"),
            "amended": _("Amended"),
            "repealed": _("Repealed"),
        },
        "supports": {
            "减免": _("Reduction"),
            "奖补": _("Award or subsidy"),
            "权益": _("Entitlement"),
            "资质": _("Qualification"),
        },
        "entities": {"person": _("Person"), "household": _("Household"), "enterprise": _("Enterprise")},
        "interpretations": {
            "official": _("Official interpretation"),
            "expert": _("Expert interpretation"),
            "media": _("Media interpretation"),
            "qa": _("Questions and answers"),
        },
    }


def yuan(fen: int | None) -> str:
    """Fen as yuan with two decimals, exactly (no float)."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


# --- the library ---------------------------------------------------------------------------------------


@router.get("/policies")
def library(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
    q: Annotated[str, Query(max_length=100)] = "",
    level: Level | None = None,
    department: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """The policy library: documents in force and earlier ones, searchable by words, level, department."""
    found = service.list_documents(
        session, principal, q=q, level=level or "", department=department, page=page, per_page=20
    )
    return render_page(
        request,
        lang,
        "policy/library.html",
        {
            "found": found,
            "q": q,
            "level": level or "",
            "department": department,
            "departments": service.departments(session, principal),
            "items": service.list_items(session, principal),
            "pages": max(1, -(-found.total // found.per_page)),
            **_words(lang),
        },
    )


@router.get("/policies/documents/{code}")
def document(
    request: Request,
    code: Annotated[str, Path(min_length=1, max_length=100)],
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
) -> Response:
    doc = service.get_document(session, principal, code)
    return render_page(request, lang, "policy/document.html", {"doc": doc, **_words(lang)})


# --- the calculator ------------------------------------------------------------------------------------


def _parse(field: FieldOut, raw: str, lang: Language) -> tuple[Any, str | None]:
    """A form value as the fact's type (None: left empty, unknown), or the problem in words."""
    _ = lang.gettext
    raw = raw.strip()
    if raw == "":
        return None, None
    kind = field.kind
    if kind == "bool":
        if raw in ("true", "false"):
            return raw == "true", None
        return None, _("Choose yes, no or not known.")
    if kind == "int":
        try:
            return int(raw), None
        except ValueError:
            return None, _("Enter a whole number.")
    if kind == "money":
        try:
            value = Decimal(raw.replace(",", "").replace("，", ""))
        except InvalidOperation:
            return None, _("Enter an amount in yuan, such as 1200 or 1200.50.")
        if not value.is_finite() or value != value.quantize(Decimal("0.01")) or abs(value) > 10**13:
            return None, _("Enter an amount in yuan with at most two decimals.")
        return int(value * 100), None
    if kind == "date":
        try:
            return dt.date.fromisoformat(raw).isoformat(), None
        except ValueError:
            return None, _("Enter a date as YYYY-MM-DD.")
    if len(raw) > 100:
        return None, _("Enter at most 100 characters.")
    return raw, None


def _calculator(
    request: Request,
    session: DbSession,
    lang: Language,
    clock: Any,
    entity: str,
    posted: dict[str, str] | None = None,
) -> Response:
    fields = service.calculator_fields(session, entity, clock=clock, lang=_lang_code(lang))
    problems: list[dict[str, str]] = []
    result = None
    status = 200
    if posted is not None:
        facts_columns: dict[str, Any] = {}
        for f in fields:
            value, problem = _parse(f, posted.get(f.column, ""), lang)
            if problem:
                problems.append({"target": f"f-{f.column}", "message": f"{f.label}: {problem}"})
            elif value is not None:
                facts_columns[f.column] = value
        if not problems:
            try:
                facts = service.facts_from_columns(session, entity, facts_columns, clock=clock)
                result = service.match(
                    session,
                    MatchRequest(entity=entity, facts=facts),
                    clock=clock,
                    lang=_lang_code(lang),
                )
            except DomainError as exc:
                problems.append({"target": "", "message": exc.detail})
        if problems:
            status = 422
    return render_page(
        request,
        lang,
        "policy/calculator.html",
        {
            "entity": entity,
            "entities": ENTITIES,
            "fields": fields,
            "posted": posted or {},
            "problems": problems,
            "result": result,
            "yuan": yuan,
            **_words(lang),
        },
        status=status,
    )


@router.get(CALCULATOR)
def calculator(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
    clock: ClockDep,
    entity: Annotated[str, Query(pattern="^(person|enterprise)$")] = "person",
) -> Response:
    """The policy calculator's form for a person or an enterprise."""
    return _calculator(request, session, lang, clock, entity)


@router.post(CALCULATOR, dependencies=[Depends(csrf_form)])
def calculate(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Asking,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Decide every published item on the facts posted, each condition explained; nothing is stored."""
    entity = form.get("entity")
    if entity not in ENTITIES:
        entity = "person"
    posted = {k: v for k, v in form.items() if isinstance(v, str)}
    return _calculator(request, session, lang, clock, str(entity), posted)
