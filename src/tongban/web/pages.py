"""The portal's own pages: home, language switch, staff sign-in, staff desk, audit trail."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from tongban.catalog import service as catalog_service
from tongban.catalog import vocab
from tongban.catalog.vocab import Audience
from tongban.core import audit, auth
from tongban.core.http import (
    SESSION_COOKIE,
    ClockDep,
    DbSession,
    LanguageDep,
    csrf_form,
    current_principal,
    public,
    public_with_principal,
    render_page,
    require,
    runtime,
    signed_in,
)
from tongban.core.i18n import LANG_COOKIE, LOCALES

router = APIRouter(include_in_schema=False)
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]


def _safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site relative paths are followed after a redirect (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


@router.get("/")
def home(request: Request, session: DbSession, lang: LanguageDep, principal: Anyone) -> Response:
    facets = catalog_service.facets(session)
    return render_page(
        request,
        lang,
        "home.html",
        {
            "facets": facets,
            "audiences": [a.value for a in Audience],
            "theme_label": lambda theme: vocab.theme_label(theme, lang.code),
            "label": lambda code: vocab.label(code, lang.code),
        },
    )


@router.get("/lang/{code}", dependencies=[Depends(public)])
def switch_language(request: Request, code: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in LOCALES:
        secure = runtime(request).settings.https
        response.set_cookie(
            LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", secure=secure, httponly=True
        )
    return response


@router.get("/staff/login")
def login_form(request: Request, lang: LanguageDep, principal: Anyone, next: str | None = None) -> Response:
    return render_page(request, lang, "login.html", {"next": _safe_next(next, "/staff"), "error": None})


@router.post("/staff/login", dependencies=[Depends(public), Depends(csrf_form)])
def login(
    request: Request,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=500)] = "/staff",
) -> Response:
    client = request.client.host if request.client else None
    account = auth.authenticate(
        session, username=username.strip(), password=password, clock=clock, client_ip=client
    )
    if account is None:
        return render_page(
            request,
            lang,
            "login.html",
            {"next": _safe_next(next, "/staff"), "error": lang.gettext("Wrong username or password.")},
            status=401,
        )
    settings = runtime(request).settings
    token, _row = auth.start_session(session, account, clock=clock, hours=settings.session_hours)
    audit.record(
        session,
        actor=account.username,
        action="auth.login",
        target_type="account",
        target_id=account.username,
        clock=clock,
    )
    response = RedirectResponse(_safe_next(next, "/staff"), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.https,
    )
    return response


@router.post("/staff/logout", dependencies=[Depends(csrf_form)])
def logout(
    request: Request,
    session: DbSession,
    clock: ClockDep,
    principal: Annotated[auth.Principal, Depends(signed_in)],
) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        auth.end_session(session, token)
    audit.record(
        session,
        actor=principal,
        action="auth.logout",
        target_type="account",
        target_id=principal.username,
        clock=clock,
    )
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/staff")
def staff_home(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Annotated[auth.Principal, Depends(signed_in)],
) -> Response:
    counts = catalog_service.status_counts(session)
    return render_page(request, lang, "staff_home.html", {"counts": counts})


@router.get("/staff/audit")
def audit_trail(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Annotated[auth.Principal, Depends(require("audit:read"))],
    target: str | None = None,
) -> Response:
    events = audit.list_events(session, target_id=target or None, limit=200)
    return render_page(request, lang, "audit.html", {"events": events, "target": target or ""})


__all__ = ["current_principal", "router"]
