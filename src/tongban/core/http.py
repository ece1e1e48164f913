"""Request-level building blocks shared by every domain's ``api.py`` and ``pages.py``.

* one database session per request, committed at the edge;
* the acting :class:`~tongban.core.auth.Principal` (bearer token or session cookie);
* an explicit authorisation rule on every route (``public`` or ``require(permission)``), checked by a test
  that walks all routes;
* CSRF: a signed double-submit token on every form and on cookie-authenticated API writes;
* the language of the page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData

from tongban.core import auth
from tongban.core.clock import Clock
from tongban.core.config import Settings
from tongban.core.crypto import Sealer
from tongban.core.db import WRITES, pool_capacity
from tongban.core.errors import Busy, DomainError, InvalidInput, Unauthenticated
from tongban.core.files import FileStore
from tongban.core.i18n import LANG_COOKIE, Language, get_language, negotiate
from tongban.core.templating import render

SESSION_COOKIE = "tongban_session"
CSRF_COOKIE = "tongban_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfFailed(DomainError):
    status = 403
    slug = "csrf-failed"
    title = "The form has expired"


@dataclass
class Runtime:
    """What the running application holds: settings, the database and the clock."""

    settings: Settings
    sessions: sessionmaker[Session]
    clock: Clock
    secret: str
    #: Seals personal data at rest (see :mod:`tongban.core.crypto`).
    sealer: Sealer
    #: Sealed files under ``<data_dir>/files`` (uploads, result documents).
    files: FileStore


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


@dataclass
class _DbGate:
    """Admission of requests to the database, awaited on the event loop (no worker thread is held).

    A request's session holds its connection from its first query (often in a dependency: the principal) to
    the commit, and between the dependencies and the handler it waits for a worker thread again. Without
    ``slots`` the worker threads could all be waiting for a pool connection while the requests holding the
    connections wait for a thread: nothing moves until the pool times out (200 concurrent submissions got
    500s after 30 s on both databases). ``writes`` (SQLite only) lets one writing request at a time begin
    its ``BEGIN IMMEDIATE`` (core/db.py ``WRITES``), so none waits in SQLite's busy handler holding a thread
    the writer needs.
    """

    slots: anyio.Semaphore | None
    writes: anyio.Lock | None


def _db_gate(request: Request) -> _DbGate:
    gate: _DbGate | None = getattr(request.app.state, "db_gate", None)
    if gate is None:  # made on the event loop: no race
        engine = getattr(request.app.state, "engine", None)
        capacity = pool_capacity(engine) if engine is not None else None
        gate = _DbGate(
            # Leave two connections for what runs outside requests (index warm-up, readiness checks).
            slots=anyio.Semaphore(max(1, capacity - 2)) if capacity else None,
            writes=anyio.Lock() if engine is not None and engine.dialect.name == "sqlite" else None,
        )
        request.app.state.db_gate = gate
    return gate


#: How long a writing request waits for its turn on SQLite before it is answered 503 (retry).
WRITE_WAIT_S = 30.0

#: ``openapi_extra`` of a GET route that writes (an audited look, a record made on first use): its
#: transaction is a writing one like a POST's, so on SQLite it begins with the write lock.
WRITES_ROUTE: dict[str, Any] = {"x-tongban-writes": True}


def _writes(request: Request) -> bool:
    if request.method not in SAFE_METHODS:
        return True
    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    return bool(extra.get("x-tongban-writes"))


async def db_admission(request: Request) -> AsyncIterator[None]:
    """Wait for the request's turn at the database (see :class:`_DbGate`); held until its session closes."""
    gate = _db_gate(request)
    async with AsyncExitStack() as stack:
        if gate.writes is not None and _writes(request):
            try:
                with anyio.fail_after(WRITE_WAIT_S):
                    await stack.enter_async_context(gate.writes)
            except TimeoutError:
                raise Busy(
                    f"the database is busy with other changes; retry in a few seconds "
                    f"(waited {WRITE_WAIT_S:.0f} s for the embedded database's writer)"
                ) from None
        if gate.slots is not None:
            await stack.enter_async_context(gate.slots)
        yield


def db_session(
    request: Request, _admitted: Annotated[None, Depends(db_admission, scope="function")]
) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on any error."""
    factory = runtime(request).sessions
    # Writes take SQLite's write lock when they begin (core/db.py, WRITES); reads stay concurrent.
    session = factory(execution_options={WRITES: True}) if _writes(request) else factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_clock(request: Request) -> Clock:
    return runtime(request).clock


#: scope="function": commit before the response is sent, so a failed commit is never reported as success.
DbSession = Annotated[Session, Depends(db_session, scope="function")]
ClockDep = Annotated[Clock, Depends(get_clock)]


def get_sealer(request: Request) -> Sealer:
    return runtime(request).sealer


SealerDep = Annotated[Sealer, Depends(get_sealer)]


def get_files(request: Request) -> FileStore:
    return runtime(request).files


FilesDep = Annotated[FileStore, Depends(get_files)]


def _token_from(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), "bearer"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None, None


def current_principal(request: Request, session: DbSession) -> auth.Principal:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, auth.Principal):
        return cached
    token, via = _token_from(request)
    principal = auth.ANONYMOUS
    if token:
        principal = auth.resolve_session(session, token, clock=runtime(request).clock) or auth.ANONYMOUS
    request.state.principal = principal
    request.state.auth_via = via if principal.is_authenticated else None
    return principal


# --- CSRF -----------------------------------------------------------------------------------------------


def csrf_cookie_value(request: Request) -> str:
    """The browser's CSRF cookie, or a new one (the middleware sets it on the response)."""
    value = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf_cookie", None)
    if not value:
        value = secrets.token_urlsafe(24)
        request.state.new_csrf_cookie = value
    return str(value)


def csrf_token(request: Request) -> str:
    """The token to embed in forms: an HMAC of the browser's CSRF cookie under the server secret."""
    cookie = csrf_cookie_value(request)
    return hmac.new(runtime(request).secret.encode(), cookie.encode(), hashlib.sha256).hexdigest()


def _csrf_valid(request: Request, presented: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not presented:
        return False
    expected = hmac.new(runtime(request).secret.encode(), cookie.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, presented)


async def posted_form(request: Request) -> AsyncIterator[FormData]:
    """The posted form, read once (with ``csrf_form``) and closed after the request (its uploaded files'
    temporary copies removed): a page's ``Depends(posted_form)``."""
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


async def csrf_form(request: Request) -> None:
    """Guard of every HTML form post."""
    if request.method in SAFE_METHODS:
        return
    form = await request.form()
    value = form.get(CSRF_FIELD)
    if not _csrf_valid(request, value if isinstance(value, str) else None):
        raise CsrfFailed("the form could not be verified; reload the page and try again")
    request.state.csrf_verified = True


# --- Authorisation rules -----------------------------------------------------------------------------


def _rule(name: str, check: Callable[..., Any]) -> Callable[..., Any]:
    check.__authz_rule__ = name  # type: ignore[attr-defined]
    return check


def _public(request: Request) -> None:
    return None


#: The rule of routes anyone may call (citizens' pages, health checks, login).
public = _rule("public", _public)


def require(permission: str) -> Callable[..., auth.Principal]:
    """Rule: the caller must be signed in with ``permission``. Cookie-authenticated writes need CSRF too."""

    def dependency(
        request: Request, principal: Annotated[auth.Principal, Depends(current_principal)]
    ) -> auth.Principal:
        principal.require(permission)
        _check_csrf(request)
        return principal

    return _rule(f"require:{permission}", dependency)


def _check_csrf(request: Request) -> None:
    if (
        request.method not in SAFE_METHODS
        and getattr(request.state, "auth_via", None) == "cookie"
        and not getattr(request.state, "csrf_verified", False)  # a form post checked by csrf_form
        and not _csrf_valid(request, request.headers.get(CSRF_HEADER))
    ):
        raise CsrfFailed(f"send the {CSRF_HEADER} header with cookie-authenticated writes")


def _holder(
    request: Request, principal: Annotated[auth.Principal, Depends(current_principal)]
) -> auth.Principal:
    if not principal.is_authenticated:
        raise Unauthenticated("sign in to do this")
    _check_csrf(request)
    return principal


#: Rule: any signed-in account acting on its own records (its profile, its applications); what it may
#: touch is checked in the service. Cookie-authenticated writes need CSRF.
own_records = _rule("own-records", _holder)


def signed_in(
    request: Request, principal: Annotated[auth.Principal, Depends(current_principal)]
) -> auth.Principal:
    if not principal.is_authenticated:
        raise Unauthenticated("sign in to do this")
    return principal


#: Rule: any signed-in account.
authenticated = _rule("authenticated", signed_in)


def principal_or_anonymous(
    principal: Annotated[auth.Principal, Depends(current_principal)],
) -> auth.Principal:
    return principal


#: Rule: anyone; what they see depends on who they are (checked in the service).
public_with_principal = _rule("public", principal_or_anonymous)


def _anyone_writing(
    request: Request, principal: Annotated[auth.Principal, Depends(current_principal)]
) -> auth.Principal:
    _check_csrf(request)
    return principal


#: Rule: anyone may write (e.g. rate an anonymous consultation); the service checks what they may touch.
#: Cookie-authenticated writes need CSRF.
public_writing = _rule("public", _anyone_writing)

# --- departments, notices, documents ---
WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _webhook_signed(request: Request) -> None:
    if not all(request.headers.get(h) for h in WEBHOOK_HEADERS):
        raise Unauthenticated(
            "this address takes signed webhooks only: "
            "send webhook-id, webhook-timestamp and webhook-signature"
        )


#: Rule: another system's request authenticated only by its Standard Webhooks signature (no account, no
#: session, no CSRF: a browser cannot forge the HMAC). The rule requires the signature headers; the handler
#: must verify the signature against the sender's secret, and the timestamp against the platform's clock,
#: before it reads or changes anything.
signed_webhook = _rule("signed-webhook", _webhook_signed)


# --- Language ----------------------------------------------------------------------------------------


def language(request: Request) -> Language:
    code = negotiate(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )
    return get_language(code)


LanguageDep = Annotated[Language, Depends(language)]


def problem_response(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem+json response (for handlers that must return rather than raise)."""
    body = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


# --- Pages -------------------------------------------------------------------------------------------


def render_page(
    request: Request,
    lang: Language,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    """Render a full HTML page with what every page needs (CSRF token, principal, language links)."""
    principal = getattr(request.state, "principal", None) or auth.ANONYMOUS
    path = request.url.path
    query = request.url.query
    here = path + (f"?{query}" if query else "")
    ctx = {
        "request": request,
        "principal": principal,
        "csrf_token": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "here": here,
        **(context or {}),
    }
    return HTMLResponse(render(template, lang, ctx), status_code=status)


# --- Idempotent writes -------------------------------------------------------------------------------


async def raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def idempotent(
    request: Request,
    session: Session,
    principal: auth.Principal,
    body: bytes,
    produce: Callable[[], tuple[int, Any]],
) -> Any:
    """Run ``produce`` once per ``Idempotency-Key``; a retry gets the first response again."""
    import json

    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse

    from tongban.core import idempotency

    key = request.headers.get("idempotency-key")
    if not key:
        status, payload = produce()
        return JSONResponse(jsonable_encoder(payload), status_code=status)
    method, path = request.method, request.url.path
    stored = idempotency.lookup(
        session, key=key, actor=principal.username, method=method, path=path, body=body
    )
    sealer = runtime(request).sealer
    context = f"core_idempotency:{principal.username}:{key}"
    if stored is not None:
        # Responses are sealed (they may carry personal data); rows from before sealing are plain JSON.
        text = sealer.open(stored.body, context) if stored.body.startswith("v1.") else stored.body
        response = JSONResponse(json.loads(text), status_code=stored.status)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    status, payload = produce()
    encoded = jsonable_encoder(payload)
    idempotency.remember(
        session,
        key=key,
        actor=principal.username,
        method=method,
        path=path,
        body=body,
        status=status,
        response_body=sealer.seal(json.dumps(encoded, ensure_ascii=False), context),
        clock=runtime(request).clock,
    )
    return JSONResponse(encoded, status_code=status)


def parse_if_match(value: str | None) -> int | None:
    """The version number in an ``If-Match`` header carrying one of our weak ETags (``W/"<id>-<n>"``)."""
    if value is None:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"').rsplit("-", 1)[-1])
    except ValueError:
        raise InvalidInput("If-Match must be an ETag returned by this API") from None
