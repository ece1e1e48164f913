"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

import tongban
from tongban.catalog import api as catalog_api
from tongban.catalog import pages as catalog_pages
from tongban.consult import api as consult_api
from tongban.consult import pages as consult_pages
from tongban.core.clock import Clock, SystemClock
from tongban.core.config import Settings
from tongban.core.db import make_engine, make_sessionmaker
from tongban.core.errors import DomainError, Unauthenticated
from tongban.core.files import FileStore
from tongban.core.http import Runtime, language, render_page
from tongban.core.http import problem_response as problem
from tongban.core.logging import configure_logging
from tongban.hotline import analysis_pages as hotline_analysis_pages
from tongban.hotline import api as hotline_api
from tongban.hotline import assistant as hotline_assistant
from tongban.hotline import open311 as hotline_open311
from tongban.hotline import pages as hotline_pages
from tongban.intake import api as intake_api
from tongban.intake import bundle_pages as intake_bundle_pages
from tongban.intake import pages as intake_pages
from tongban.intake import staff_pages as intake_staff_pages
from tongban.knowledge import api as knowledge_api
from tongban.knowledge import pages as knowledge_pages
from tongban.policy import api as policy_api
from tongban.policy import pages as policy_pages
from tongban.rating import api as rating_api
from tongban.rating import pages as rating_pages
from tongban.rating import quality_pages as rating_quality_pages
from tongban.web import api as web_api
from tongban.web import pages as web_pages
from tongban.web.middleware import EdgeMiddleware

log = structlog.get_logger("tongban.web")
PROBLEM = "application/problem+json"


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in {"/healthz", "/readyz"}


def _html_error(request: Request, status: int, title: str, detail: str) -> Response:
    context = {"status": status, "title": title, "detail": detail}
    return render_page(request, language(request), "error.html", context, status=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        if _wants_json(request):
            return problem(
                exc.status, exc.slug, exc.title, exc.detail, instance=request.url.path, **exc.extra
            )
        if isinstance(exc, Unauthenticated) and request.method == "GET":
            return RedirectResponse(f"/staff/login?next={request.url.path}", status_code=303)
        lang = language(request)
        return _html_error(request, exc.status, lang.gettext(exc.title), exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:10])
        if _wants_json(request):
            return problem(422, "invalid-input", "Invalid input", detail, errors=errors)
        return _html_error(request, 422, language(request).gettext("Invalid input"), detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        detail = str(exc.detail)
        if _wants_json(request):
            return problem(exc.status_code, title.lower().replace(" ", "-"), title, detail)
        return _html_error(request, exc.status_code, language(request).gettext(title), detail)

    @app.exception_handler(IntegrityError)
    async def integrity(request: Request, exc: IntegrityError) -> Response:
        log.warning("integrity_error", error=str(exc.orig)[:300])
        return problem(409, "conflict", "Conflict", "the change conflicts with a concurrent one; retry it")

    @app.exception_handler(DataError)
    async def bad_data(request: Request, exc: DataError) -> Response:
        # A value the database cannot hold (a NUL character, a number out of range): the caller's input.
        log.warning("data_error", error=str(exc.orig)[:300])
        detail = "a value is not acceptable to the database (out of range, or a NUL character)"
        if _wants_json(request):
            return problem(422, "invalid-input", "Invalid input", detail)
        lang = language(request)
        return _html_error(request, 422, lang.gettext("Invalid input"), detail)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", path=request.url.path)
        if _wants_json(request):
            return problem(
                500, "internal-error", "Internal error", "an unexpected error occurred; it was logged"
            )
        lang = language(request)
        return _html_error(
            request, 500, lang.gettext("Internal error"), lang.gettext("An unexpected error occurred.")
        )

    @app.exception_handler(OperationalError)
    async def unavailable(request: Request, exc: OperationalError) -> Response:
        log.error("database_unavailable", error=str(exc.orig)[:300])
        return problem(503, "unavailable", "Service unavailable", "the database is unavailable; retry later")


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, engine: Any = None
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    settings.configure_password_hashing()
    engine = engine or make_engine(settings.resolved_database_url())
    runtime = Runtime(
        settings=settings,
        sessions=make_sessionmaker(engine),
        clock=clock or SystemClock(),
        secret=settings.resolved_secret(),
        sealer=(sealer := settings.sealer()),
        files=FileStore(settings.data_dir / "files", sealer),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        knowledge_api.start_warmup(_app)
        outbox_loop = intake_api.start_outbox_loop(_app)  # departments' webhooks, notices (off: interval 0)
        yield
        if outbox_loop is not None:
            outbox_loop.stop()
        engine.dispose()

    app = FastAPI(
        title="tongban API",
        version=tongban.__version__,
        description="One-stop government services (一网通办). Errors are RFC 9457 problem+json.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.engine = engine
    _install_error_handlers(app)
    # Open311 first: its routes are matched before the others' (each router included later costs a match).
    hotline_open311.install(app)
    static = resources.files("tongban.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    for router in (
        web_api.router,
        catalog_api.router,
        knowledge_api.router,
        consult_api.router,
        intake_api.router,
        rating_api.router,
        hotline_api.router,
        hotline_assistant.router,
        hotline_analysis_pages.api_router,
        policy_api.router,
        web_pages.router,
        catalog_pages.router,
        knowledge_pages.router,
        consult_pages.router,
        intake_pages.router,
        intake_staff_pages.router,
        intake_bundle_pages.router,
        rating_pages.router,
        rating_quality_pages.router,
        hotline_pages.router,
        hotline_analysis_pages.router,
        policy_pages.router,
    ):
        app.include_router(router)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        https=settings.https,
    )
    return app
