"""Platform endpoints: health, readiness, metrics, sign-in for API clients, API documentation."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from tongban.core import auth, migrate
from tongban.core.calendar import working_calendar
from tongban.core.errors import DomainError, InvalidInput
from tongban.core.http import (
    ClockDep,
    DbSession,
    LanguageDep,
    authenticated,
    problem_response,
    public,
    render_page,
    runtime,
)

router = APIRouter()


class NotReady(DomainError):
    status = 503
    slug = "not-ready"
    title = "Not ready"


@router.get("/healthz", dependencies=[Depends(public)], tags=["operations"])
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[Depends(public)], tags=["operations"])
def readyz(request: Request, session: DbSession) -> dict[str, Any]:
    """Readiness: the database answers, its schema is at the newest migration, the search index is built."""
    session.execute(text("SELECT 1"))
    engine = request.app.state.engine
    current = migrate.is_current(engine)
    if not current:
        raise NotReady("the database schema is not at the newest migration; run `tongban db upgrade`")
    if getattr(request.app.state, "knowledge_index_warming", False):
        raise NotReady("the search index is being built")
    return {"status": "ready", "database": engine.dialect.name}


@router.get("/metrics", dependencies=[Depends(public)], tags=["operations"], include_in_schema=False)
def metrics() -> PlainTextResponse:
    return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class LoginOut(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105 - not a secret
    expires_at: dt.datetime


class MeOut(BaseModel):
    username: str
    display_name: str
    roles: list[str]
    permissions: list[str]


@router.post(
    "/api/v1/auth/login",
    dependencies=[Depends(public)],
    tags=["auth"],
    response_model=LoginOut,
    responses={401: {"description": "wrong username or password"}, 429: {"description": "locked out"}},
)
def api_login(
    body: LoginIn, request: Request, session: DbSession, clock: ClockDep
) -> LoginOut | JSONResponse:
    """Exchange a username and password for a bearer token (send it as ``Authorization: Bearer …``)."""
    client = request.client.host if request.client else None
    account = auth.authenticate(
        session, username=body.username, password=body.password, clock=clock, client_ip=client
    )
    if account is None:
        # Returned, not raised: the failure just recorded must be committed for throttling to work.
        return problem_response(
            401, "unauthenticated", "Authentication required", "wrong username or password"
        )
    token, row = auth.start_session(
        session, account, clock=clock, hours=runtime(request).settings.session_hours
    )
    return LoginOut(token=token, expires_at=row.expires_at)


@router.post("/api/v1/auth/logout", status_code=204, tags=["auth"])
def api_logout(
    request: Request, session: DbSession, principal: Annotated[auth.Principal, Depends(authenticated)]
) -> None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        auth.end_session(session, header[7:].strip())


@router.get("/api/v1/auth/me", tags=["auth"])
def api_me(principal: Annotated[auth.Principal, Depends(authenticated)]) -> MeOut:
    return MeOut(
        username=principal.username,
        display_name=principal.display_name,
        roles=list(principal.roles),
        permissions=sorted(principal.permissions),
    )


class DeadlineOut(BaseModel):
    start: dt.date
    days: int
    unit: str
    deadline: dt.date


@router.get("/api/v1/calendar/deadline", dependencies=[Depends(public)], tags=["calendar"])
def deadline(session: DbSession, start: dt.date, days: int, unit: str = "working_day") -> DeadlineOut:
    """The deadline of a time limit that starts on ``start`` (the day of acceptance is not counted)."""
    cal = working_calendar(session)
    if unit == "working_day":
        end = cal.add_working_days(start, days)
    elif unit == "calendar_day":
        end = cal.add_calendar_days(start, days)
    else:
        raise InvalidInput("unit must be working_day or calendar_day")
    return DeadlineOut(start=start, days=days, unit=unit, deadline=end)


@router.get("/api/docs", dependencies=[Depends(public)], include_in_schema=False, response_class=HTMLResponse)
def api_docs(request: Request, lang: LanguageDep) -> HTMLResponse:
    """The API reference, rendered on the server from the OpenAPI document (no CDN, no scripts)."""
    spec = request.app.openapi()
    return render_page(request, lang, "api_docs.html", {"spec": spec})
