"""HTML pages of the catalogue: citizens browse and read items; staff create, edit, review and publish."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from tongban.catalog import forms, service, vocab
from tongban.catalog.repository import ItemFilter
from tongban.catalog.schemas import ItemContent, TimeLimit
from tongban.catalog.vocab import Audience, ItemType, Level, LimitUnit, Status
from tongban.core import auth
from tongban.core.calendar import working_calendar
from tongban.core.errors import DomainError
from tongban.core.http import (
    ClockDep,
    DbSession,
    LanguageDep,
    csrf_form,
    public_with_principal,
    render_page,
    require,
)
from tongban.core.templating import DISPLAY_TZ
from tongban.core.workdays import WorkingCalendar

router = APIRouter(include_in_schema=False)
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Editor = Annotated[auth.Principal, Depends(require("catalog:edit"))]
Reviewer = Annotated[auth.Principal, Depends(require("catalog:review"))]
Publisher = Annotated[auth.Principal, Depends(require("catalog:publish"))]
PAGE_SIZE = 20

#: Links higher domains add to an item's page without the catalogue knowing them (intake: "apply online"
#: when the item has a published application form): ``(session, item code) -> [(href, message id)]``.
ITEM_LINKS: list[Callable[[Session, str], list[tuple[str, str]]]] = []


async def posted_form(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(posted_form)]


def _vocab_context(lang_code: str) -> dict[str, Any]:
    return {
        "label": lambda code: vocab.label(code, lang_code),
        "theme_label": lambda theme: vocab.theme_label(theme, lang_code),
        "item_types": [t.value for t in ItemType],
        "levels": [lv.value for lv in Level],
        "audience_codes": [a.value for a in Audience],
        "channel_codes": [c.value for c in vocab.Channel],
        "material_forms": [f.value for f in vocab.MaterialForm],
        "material_sources": [s.value for s in vocab.MaterialSource],
        "limit_units": [u.value for u in LimitUnit],
    }


def _deadline(cal: WorkingCalendar, limit: TimeLimit | None, today: dt.date) -> dt.date | None:
    """When an application accepted today would be due; None when the calendar does not cover it."""
    if limit is None or limit.value == 0:
        return None
    try:
        if limit.unit == LimitUnit.WORKING_DAY:
            return cal.add_working_days(today, limit.value)
        return cal.add_calendar_days(today, limit.value)
    except DomainError:
        return None


@router.get("/catalog")
def browse(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Anyone,
    q: Annotated[str | None, Query(max_length=100)] = None,
    theme: Annotated[str | None, Query(max_length=200)] = None,
    department: Annotated[str | None, Query(max_length=200)] = None,
    audience: Annotated[str | None, Query(max_length=40)] = None,
    item_type: Annotated[str | None, Query(max_length=40)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    # A form sends every field, empty ones included; an empty or unknown choice means "any".
    audience = audience if audience in {a.value for a in Audience} else None
    item_type = item_type if item_type in {t.value for t in ItemType} else None
    filters = ItemFilter(
        q=(q or "").strip() or None,
        theme=theme or None,
        department=department or None,
        audience=audience,
        item_type=item_type,
        status=Status.PUBLISHED.value,
    )
    result = service.list_items(session, auth.ANONYMOUS, filters=filters, page=page, page_size=PAGE_SIZE)
    params = {
        k: v
        for k, v in {
            "q": filters.q,
            "theme": filters.theme,
            "department": filters.department,
            "audience": filters.audience,
            "item_type": filters.item_type,
        }.items()
        if v
    }
    pages = service.page_count(result)

    def page_url(n: int) -> str:
        return "/catalog?" + urlencode({**params, "page": n})

    context = {
        "result": result,
        "filters": filters,
        "facets": service.facets(session),
        "pages": pages,
        "page_url": page_url,
        **_vocab_context(lang.code),
    }
    template = "catalog/_results.html" if request.headers.get("hx-request") else "catalog/browse.html"
    return render_page(request, lang, template, context)


@router.get("/catalog/items/{code}")
def item_page(
    request: Request, code: str, session: DbSession, lang: LanguageDep, principal: Anyone
) -> Response:
    item = service.get_item(session, auth.ANONYMOUS, code)
    today = request.app.state.runtime.clock.now().astimezone(DISPLAY_TZ).date()
    content = item.content
    calendar = working_calendar(session)
    context = {
        "item": item,
        "c": content,
        "today": today,
        "promised_due": _deadline(calendar, content.promised_limit, today),
        "statutory_due": _deadline(calendar, content.statutory_limit, today),
        "item_links": [link for links in ITEM_LINKS for link in links(session, code)],
        **_vocab_context(lang.code),
    }
    return render_page(request, lang, "catalog/item.html", context)


# --- Staff -----------------------------------------------------------------------------------------


@router.get("/staff/catalog")
def staff_list(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    q: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    status = status if status in {s.value for s in Status} else None
    filters = ItemFilter(q=(q or "").strip() or None, status=status)
    result = service.list_items(session, principal, filters=filters, page=page, page_size=50)
    params = {k: v for k, v in {"q": filters.q, "status": filters.status}.items() if v}
    context = {
        "result": result,
        "q": filters.q or "",
        "status": filters.status or "",
        "statuses": [s.value for s in Status],
        "pages": service.page_count(result),
        "page_url": lambda n: "/staff/catalog?" + urlencode({**params, "page": n}),
        **_vocab_context(lang.code),
    }
    return render_page(request, lang, "catalog/staff_list.html", context)


def _edit_page(
    request: Request,
    lang: Any,
    *,
    values: dict[str, Any],
    errors: list[tuple[str, str]],
    item: Any,
    status: int = 200,
) -> Response:
    context = {"v": values, "errors": errors, "item": item, **_vocab_context(lang.code)}
    return render_page(request, lang, "catalog/edit.html", context, status=status)


@router.get("/staff/catalog/new")
def new_form(request: Request, lang: LanguageDep, principal: Editor) -> Response:
    return _edit_page(request, lang, values=forms.content_to_form(None), errors=[], item=None)


@router.post("/staff/catalog/new", dependencies=[Depends(csrf_form)])
def create(
    request: Request, session: DbSession, clock: ClockDep, lang: LanguageDep, principal: Editor, form: Posted
) -> Response:
    data = forms.form_to_data(form)
    content, errors = forms.validate(data)
    if content is None:
        return _edit_page(
            request, lang, values=forms.with_blank_rows(data), errors=errors, item=None, status=422
        )
    try:
        service.create_item(session, principal, content, clock=clock, note=str(form.get("note", ""))[:2000])
    except DomainError as exc:
        errors = [("code", exc.detail)]
        return _edit_page(
            request, lang, values=forms.with_blank_rows(data), errors=errors, item=None, status=exc.status
        )
    return RedirectResponse(f"/staff/catalog/items/{content.code}", status_code=303)


@router.get("/staff/catalog/items/{code}")
def staff_item(
    request: Request, code: str, session: DbSession, lang: LanguageDep, principal: Editor
) -> Response:
    item, working = service.get_working_copy(session, principal, code)
    versions = service.list_versions(session, principal, code)
    pending = next((v for v in versions if v.version == item.pending_version), None)
    context = {
        "item": item,
        "c": working,
        "versions": versions,
        "pending": pending,
        **_vocab_context(lang.code),
    }
    return render_page(request, lang, "catalog/staff_item.html", context)


@router.get("/staff/catalog/items/{code}/edit")
def edit_form(
    request: Request, code: str, session: DbSession, lang: LanguageDep, principal: Editor
) -> Response:
    item, working = service.get_working_copy(session, principal, code)
    values = forms.content_to_form(working)
    values["expected_version"] = item.version
    return _edit_page(request, lang, values=values, errors=[], item=item)


@router.post("/staff/catalog/items/{code}/edit", dependencies=[Depends(csrf_form)])
def save(
    request: Request,
    code: str,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Editor,
    form: Posted,
) -> Response:
    item, working = service.get_working_copy(session, principal, code)
    data = forms.keep_unedited(forms.form_to_data(form), working)
    data["code"] = code
    content, errors = forms.validate(data)
    expected = str(form.get("expected_version", ""))
    if content is None:
        values = forms.with_blank_rows(data) | {"expected_version": expected}
        return _edit_page(request, lang, values=values, errors=errors, item=item, status=422)
    try:
        service.update_item(
            session,
            principal,
            code,
            content,
            clock=clock,
            note=str(form.get("note", ""))[:2000],
            expected_version=int(expected) if expected.isdigit() else None,
        )
    except DomainError as exc:
        values = forms.with_blank_rows(data) | {"expected_version": expected}
        return _edit_page(
            request, lang, values=values, errors=[("item", exc.detail)], item=item, status=exc.status
        )
    return RedirectResponse(f"/staff/catalog/items/{code}", status_code=303)


def _action(code: str) -> RedirectResponse:
    return RedirectResponse(f"/staff/catalog/items/{code}", status_code=303)


@router.post("/staff/catalog/items/{code}/submit", dependencies=[Depends(csrf_form)])
def submit(code: str, session: DbSession, clock: ClockDep, principal: Editor, form: Posted) -> Response:
    service.submit_for_review(session, principal, code, clock=clock, note=str(form.get("note", ""))[:2000])
    return _action(code)


@router.post("/staff/catalog/items/{code}/publish", dependencies=[Depends(csrf_form)])
def publish(code: str, session: DbSession, clock: ClockDep, principal: Publisher, form: Posted) -> Response:
    service.publish_item(session, principal, code, clock=clock, note=str(form.get("note", ""))[:2000])
    return _action(code)


@router.post("/staff/catalog/items/{code}/reject", dependencies=[Depends(csrf_form)])
def reject(code: str, session: DbSession, clock: ClockDep, principal: Reviewer, form: Posted) -> Response:
    service.reject_item(session, principal, code, clock=clock, note=str(form.get("note", ""))[:2000])
    return _action(code)


@router.post("/staff/catalog/items/{code}/withdraw", dependencies=[Depends(csrf_form)])
def withdraw(code: str, session: DbSession, clock: ClockDep, principal: Publisher, form: Posted) -> Response:
    service.withdraw_item(session, principal, code, clock=clock, note=str(form.get("note", ""))[:2000])
    return _action(code)


@router.get("/staff/catalog/items/{code}/versions/{version}")
def version_page(
    request: Request, code: str, version: int, session: DbSession, lang: LanguageDep, principal: Editor
) -> Response:
    content: ItemContent = service.get_version_content(session, principal, code, version)
    item, _ = service.get_working_copy(session, principal, code)
    context = {"item": item, "c": content, "version": version, **_vocab_context(lang.code)}
    return render_page(request, lang, "catalog/version.html", context)


@router.get("/staff/catalog/check")
def check_page(request: Request, session: DbSession, lang: LanguageDep, principal: Editor) -> Response:
    report = service.check_consistency(session)
    return render_page(request, lang, "catalog/check.html", {"report": report, **_vocab_context(lang.code)})
