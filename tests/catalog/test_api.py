"""The catalogue's JSON API over real HTTP."""

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tests.factories import item, item_data
from tongban.catalog import service
from tongban.catalog.models import CatalogItem
from tongban.core.clock import FixedClock

PROBLEM = "application/problem+json"


@pytest.fixture
def staff(session: Session, clock: FixedClock) -> None:
    make_account(session, clock, "editor1", ["catalog_editor"])
    make_account(session, clock, "reviewer1", ["catalog_reviewer"])
    session.commit()


def _count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CatalogItem)) or 0


def test_list_and_get_published_items(client: httpx.Client, session: Session, clock: FixedClock) -> None:
    service.import_item(session, item(), actor="op", clock=clock, source="t")
    service.import_item(
        session, item(code="11110000TEST0002", name="出生登记"), actor="op", clock=clock, source="t"
    )
    session.commit()
    page = client.get("/api/v1/catalog/items", params={"q": "出生"}).json()
    assert page["total"] == 1
    assert page["items"][0]["code"] == "11110000TEST0002"
    got = client.get("/api/v1/catalog/items/11110000TEST0001")
    assert got.status_code == 200
    assert got.headers["etag"] == 'W/"11110000TEST0001-1"'
    assert got.json()["content"]["materials"][1]["source"] == "e_licence"


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/v1/catalog/items/NOPE0000", 404),
        ("/api/v1/catalog/items?page_size=1000", 422),
        ("/api/v1/catalog/items?audience=martian", 422),
        ("/api/v1/catalog/items?status=draft", 401),
        ("/api/v1/catalog/consistency", 401),
        ("/api/v1/calendar/deadline?start=2027-03-01&days=5", 422),
        ("/api/v1/calendar/deadline?start=not-a-date&days=5", 422),
    ],
)
def test_errors_are_problem_json(client: httpx.Client, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"].startswith("/problems/")


def test_deadline_endpoint(client: httpx.Client) -> None:
    body = client.get("/api/v1/calendar/deadline", params={"start": "2026-09-29", "days": 3}).json()
    assert body["deadline"] > "2026-10-07"


def test_writes_need_authentication(client: httpx.Client, session: Session) -> None:
    response = client.post("/api/v1/catalog/items", json={"content": item_data()})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert _count(session) == 0


def test_create_is_idempotent_with_a_key(client: httpx.Client, session: Session, staff: None) -> None:
    headers = bearer(client, "editor1") | {"Idempotency-Key": "create-food-licence-1"}
    first = client.post("/api/v1/catalog/items", json={"content": item_data(), "note": "n"}, headers=headers)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == "/api/v1/catalog/items/11110000TEST0001"
    retry = client.post("/api/v1/catalog/items", json={"content": item_data(), "note": "n"}, headers=headers)
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    other = client.post("/api/v1/catalog/items", json={"content": item_data(name="别的")}, headers=headers)
    assert other.status_code == 409
    assert _count(session) == 1
    # Without a key, a second create is a conflict on the code, not a duplicate
    again = client.post(
        "/api/v1/catalog/items", json={"content": item_data()}, headers=bearer(client, "editor1")
    )
    assert again.status_code == 409
    assert _count(session) == 1


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"colour": "red"}, "colour"),
        ({"name": "名" * 201}, "name"),
        ({"code": "a b"}, "code"),
        ({"audiences": []}, "audiences"),
        ({"item_type": "magic"}, "item_type"),
        ({"materials": [{"name": "x", "source": "e_licence"}]}, "source_ref"),
        ({"statutory_limit": {"value": 5}, "promised_limit": {"value": 9}}, "promised"),
    ],
)
def test_bad_content_is_rejected_and_nothing_stored(
    client: httpx.Client, session: Session, staff: None, change: dict[str, object], where: str
) -> None:
    response = client.post(
        "/api/v1/catalog/items", json={"content": item_data(**change)}, headers=bearer(client, "editor1")
    )
    assert response.status_code == 422
    assert where in response.text
    assert _count(session) == 0


def test_review_flow_and_optimistic_locking(client: httpx.Client, session: Session, staff: None) -> None:
    ed, rv = bearer(client, "editor1"), bearer(client, "reviewer1")
    assert client.post("/api/v1/catalog/items", json={"content": item_data()}, headers=ed).status_code == 201
    etag = client.get("/api/v1/catalog/items/11110000TEST0001", headers=ed).headers["etag"]
    changed = {"content": item_data(visits=1), "note": "需到现场核验"}
    ok = client.put("/api/v1/catalog/items/11110000TEST0001", json=changed, headers=ed | {"If-Match": etag})
    assert ok.status_code == 200
    assert ok.json()["version"] == 2
    stale = client.put(
        "/api/v1/catalog/items/11110000TEST0001",
        json={"content": item_data(visits=2)},
        headers=ed | {"If-Match": etag},
    )
    assert stale.status_code == 412
    assert (
        client.post("/api/v1/catalog/items/11110000TEST0001/submit", json={}, headers=ed).status_code == 200
    )
    assert (
        client.post("/api/v1/catalog/items/11110000TEST0001/publish", json={}, headers=ed).status_code == 403
    )
    published = client.post("/api/v1/catalog/items/11110000TEST0001/publish", json={"note": "ok"}, headers=rv)
    assert published.status_code == 200
    assert published.json()["status"] == "published"
    assert client.get("/api/v1/catalog/items/11110000TEST0001").json()["content"]["visits"] == 1
    versions = client.get("/api/v1/catalog/items/11110000TEST0001/versions", headers=ed).json()
    assert [v["version"] for v in versions] == [2, 1]
    assert client.get("/api/v1/catalog/items/11110000TEST0001/versions", headers=None).status_code == 401


def test_cookie_session_writes_need_the_csrf_header(client: httpx.Client, staff: None) -> None:
    token = bearer(client, "editor1")["Authorization"].split()[1]
    client.cookies.set("tongban_session", token)
    response = client.post("/api/v1/catalog/items", json={"content": item_data()})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_oversized_body_is_refused(client: httpx.Client, staff: None) -> None:
    body = b'{"content": "' + b"x" * 2_100_000 + b'"}'
    response = client.post(
        "/api/v1/catalog/items",
        content=body,
        headers=bearer(client, "editor1") | {"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)


def test_malformed_json_is_a_422(client: httpx.Client, staff: None) -> None:
    response = client.post(
        "/api/v1/catalog/items",
        content=b"{not json",
        headers=bearer(client, "editor1") | {"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)


def test_consistency_api(client: httpx.Client, session: Session, clock: FixedClock, staff: None) -> None:
    service.import_item(session, item(), actor="op", clock=clock, source="t")
    service.import_item(
        session,
        item(
            code="11110000TEST0009",
            region="天津市",
            department="天津市市场监督管理局",
            visits=2,
            promised_limit={"value": 10, "unit": "working_day"},
        ),
        actor="op",
        clock=clock,
        source="t",
    )
    session.commit()
    report = client.get("/api/v1/catalog/consistency", headers=bearer(client, "editor1")).json()
    assert report["groups_inconsistent"] == 1
    assert report["totals"]["promised_limit"] == 1
    assert report["totals"]["materials"] == 0
