"""Cross-cutting rules: every route has an authorisation rule, every form has CSRF, headers, ops endpoints."""

from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute


def _rules(dependant: Dependant) -> set[str]:
    found: set[str] = set()
    for dep in dependant.dependencies:
        rule = getattr(dep.call, "__authz_rule__", None)
        if rule:
            found.add(rule)
        found |= _rules(dep)
    return found


def _walk(routes: list[Any]) -> list[APIRoute]:
    found: list[APIRoute] = []
    for r in routes:
        if isinstance(r, APIRoute):
            found.append(r)
        elif hasattr(r, "original_router"):  # routers included into the app
            found += _walk(r.original_router.routes)
        elif hasattr(r, "routes") and not hasattr(r, "app"):
            found += _walk(r.routes)
    return found


def _routes(app: FastAPI) -> list[APIRoute]:
    return _walk(list(app.routes))


def test_every_route_declares_an_authorisation_rule(app: FastAPI) -> None:
    routes = _routes(app)
    assert len(routes) > 25
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if not _rules(r.dependant)]
    assert missing == [], f"routes without an authorisation rule: {missing}"
    # and the rules are real: the catalogue's writes are not public
    by_path = {(r.path, m): _rules(r.dependant) for r in _routes(app) for m in r.methods}
    assert by_path[("/api/v1/catalog/items", "POST")] == {"require:catalog:edit"}
    assert "require:catalog:publish" in by_path[("/staff/catalog/items/{code}/publish", "POST")]


def _has_csrf(dependant: Dependant) -> bool:
    return any(getattr(d.call, "__name__", "") == "csrf_form" or _has_csrf(d) for d in dependant.dependencies)


def test_every_html_form_post_checks_csrf(app: FastAPI, client: httpx.Client) -> None:
    # Open311 is authenticated by API key, not a form.
    posts = [r for r in _routes(app) if "POST" in r.methods and not r.path.startswith(("/api/", "/open311/"))]
    assert posts, "expected HTML form routes"
    for route in posts:
        assert _has_csrf(route.dependant), route.path
        path = route.path.replace("{code}", "X0000001")
        response = client.post(path, data={"username": "a", "password": "b"})
        assert response.status_code == 403, (path, response.status_code)
        assert "expired" in response.text or "过期" in response.text


def test_security_headers_and_request_id(client: httpx.Client) -> None:
    response = client.get("/", headers={"X-Request-ID": "req-abc-123"})
    assert response.status_code == 200
    headers = response.headers
    assert headers["x-request-id"] == "req-abc-123"
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "tongban_csrf=" in headers.get("set-cookie", "")
    assert "HttpOnly" in headers["set-cookie"]
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    assert generated != "req-abc-123"


def test_health_readiness_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    client.get("/catalog")
    metrics = client.get("/metrics").text
    assert 'tongban_http_requests_total{method="GET",route="/catalog",status="200"}' in metrics
    assert "tongban_http_request_duration_seconds_bucket" in metrics


def test_openapi_and_offline_docs(client: httpx.Client) -> None:
    spec: dict[str, Any] = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/catalog/items" in spec["paths"]
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/v1/catalog/items/{code}" in docs.text
    assert "cdn" not in docs.text.lower()


def test_unknown_page_is_a_friendly_404(client: httpx.Client) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def test_sign_in_is_throttled_after_repeated_failures(client: httpx.Client, session: Any, clock: Any) -> None:
    from tests.conftest import PASSWORD, make_account
    from tongban.core.auth import LOCKOUT_FAILURES, LOCKOUT_WINDOW

    make_account(session, clock, "editor1", ["catalog_editor"])
    session.commit()
    for _ in range(LOCKOUT_FAILURES):
        wrong = client.post("/api/v1/auth/login", json={"username": "editor1", "password": "guess"})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"].startswith("application/problem+json")
    locked = client.post("/api/v1/auth/login", json={"username": "editor1", "password": PASSWORD})
    assert locked.status_code == 429
    clock.advance(LOCKOUT_WINDOW)
    ok = client.post("/api/v1/auth/login", json={"username": "editor1", "password": PASSWORD})
    assert ok.status_code == 200
