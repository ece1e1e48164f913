"""Test fixtures. The suite runs against SQLite (default) or PostgreSQL (``TONGBAN_TEST_DATABASE_URL``).

The schema is built by the Alembic migrations. Each test runs inside one outer transaction on one
connection that is rolled back afterwards; the application under test (served over real HTTP by uvicorn
in a thread) is bound to that same connection, so what a request commits is only a savepoint.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from tongban.core import auth
from tongban.core.clock import FixedClock
from tongban.core.config import Settings
from tongban.core.db import make_engine
from tongban.core.migrate import upgrade
from tongban.web.app import create_app

# Passwords in tests are throwaway: argon2id with the least costs (the defaults take ~0.2 s a hash on 2
# cores, and the suite signs in thousands of times). Every Settings() in the tests, subprocesses included,
# reads these; the production defaults are tested in tests/test_config.py.
os.environ.setdefault("TONGBAN_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("TONGBAN_PASSWORD_HASH_MEMORY_KIB", "64")
os.environ.setdefault("TONGBAN_PASSWORD_HASH_PARALLELISM", "1")
Settings().configure_password_hashing()

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GUIDES = SHARED_DATA / "service_guides" / "guides.jsonl"
PASSWORD = "correct horse battery staple"
#: A Monday in a year the holiday package knows.
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run in each language once across the two passes: the Chinese runs on SQLite, the
    English on PostgreSQL (``TONGBAN_TEST_ALL_LOCALES=1`` runs both everywhere). What a page shows and
    how it reads does not depend on the database; the flows behind the pages run on both backends in
    every pass through their HTTP tests, and browser tests without a language run in both passes."""
    if os.environ.get("TONGBAN_TEST_ALL_LOCALES"):
        return
    postgres = (os.environ.get("TONGBAN_TEST_DATABASE_URL") or "").startswith("postgresql")
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        language = params.get("locale") or params.get("lang")
        browser = item.get_closest_marker("browser") is not None
        if browser and isinstance(language, str) and language.startswith("en") != postgres:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def database_url(tmp_dir: Path) -> str:
    return os.environ.get("TONGBAN_TEST_DATABASE_URL") or f"sqlite:///{tmp_dir / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The migrated test database. On PostgreSQL each test run gets a database of its own next to the
    configured one (dropped afterwards), so runs on one server never disturb each other."""
    url = Settings(database_url=database_url(tmp_path_factory.mktemp("db"))).resolved_database_url()
    admin: Engine | None = None
    name = ""
    if url.startswith("postgresql"):
        name = f"test_run_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = url.rsplit("/", 1)[0] + f"/{name}"
    eng = make_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    s = sessions()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _fresh_quality_cache() -> None:
    """Each test's data is rolled back afterwards: figures cached by an earlier test must not leak."""
    from tongban.rating import service as rating_service

    rating_service.clear_cache()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture(scope="session")
def app_and_url(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    """One real uvicorn server for the whole session; each test rebinds it to its own transaction."""
    data_dir = tmp_path_factory.mktemp("data")
    settings = Settings(
        data_dir=data_dir,
        database_url=str(engine.url.render_as_string(hide_password=False)),
        log_json=True,
        log_level="WARNING",
    )
    app = create_app(settings, engine=engine)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def app(app_and_url: tuple[FastAPI, str], sessions: sessionmaker[Session], clock: FixedClock) -> FastAPI:
    application = app_and_url[0]
    application.state.runtime.sessions = sessions
    application.state.runtime.clock = clock
    # The node's search index follows this test's database, which is rolled back afterwards.
    application.state.knowledge_index = None
    return application


@pytest.fixture
def base_url(app: FastAPI, app_and_url: tuple[FastAPI, str]) -> str:
    return app_and_url[1]


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30, follow_redirects=False) as c:
        yield c


def make_account(session: Session, clock: FixedClock, username: str, roles: list[str]) -> auth.Principal:
    account = auth.create_account(
        session, username=username, password=PASSWORD, roles=roles, display_name=username.title(), clock=clock
    )
    return auth.Principal(
        account_id=account.id,
        username=account.username,
        display_name=account.display_name,
        roles=tuple(account.roles),
        permissions=auth.permissions_for(account.roles),
    )


def bearer(client: httpx.Client, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def csrf(html: str) -> str:
    """The CSRF token of the (first) form in a page."""
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, "form without a CSRF token"
    return match.group(1)


def staff_login(client: httpx.Client, username: str) -> None:
    """Sign ``username`` in through the staff login form; the client keeps the session cookie."""
    form = client.get("/staff/login")
    response = client.post(
        "/staff/login",
        data={
            "username": username,
            "password": PASSWORD,
            "next": "/staff",
            "csrf_token": csrf(form.text),
        },
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/staff"
