"""The shared real browser: Playwright driving Debian's Chromium (never a downloaded one)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


#: The one Playwright and Chromium of the session, with how many fixture instances hold them. Test modules
#: outside tests/web import the fixture below (``browser = web.browser``), which makes each of them a
#: fixture of its own; Playwright's sync API cannot run twice at once, so they all share this one.
_SHARED: dict[str, Any] = {"users": 0}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium (see .ci/run)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    if not _SHARED["users"]:
        from playwright.sync_api import expect

        # Assertions wait up to 20 s (Playwright's default is 5): CI runs both backends at once on 2 cores,
        # and a first answer may embed the knowledge first. A passing check returns as soon as it holds.
        expect.set_options(timeout=20_000)
        playwright = sync_playwright().start()
        _SHARED["playwright"] = playwright
        _SHARED["browser"] = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    _SHARED["users"] += 1
    try:
        yield _SHARED["browser"]
    finally:
        _SHARED["users"] -= 1
        if not _SHARED["users"]:
            _SHARED.pop("browser").close()
            _SHARED.pop("playwright").stop()
