"""GET routes that write (audited looks, records made on first use) are marked so their transaction is a
writing one: on SQLite it begins with the write lock instead of failing when another request committed."""

from __future__ import annotations

from fastapi.routing import APIRoute

from tongban.core.http import WRITES_ROUTE
from tongban.intake import api, pages


def test_get_routes_that_write_are_marked() -> None:
    marked = {
        r.path
        for router in (api.router, pages.router)
        for r in router.routes
        if isinstance(r, APIRoute) and "GET" in r.methods and (r.openapi_extra or {}) == WRITES_ROUTE
    }
    assert {
        "/api/v1/me/profile",
        "/api/v1/intake/profiles/{profile_id}",
        "/api/v1/intake/applications/{receipt_no}",
        "/api/v1/intake/applications/{receipt_no}/documents/{document_id}",
        "/staff/intake/applications/{receipt_no}",
    } <= marked
