"""Browser tests: the real app on a loopback port, driven by headless Chromium (Debian's
chromium package) through Playwright. Outside CI they skip when Chromium is absent; in CI
(CI set) a missing browser fails them."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

from cli.wiring import Services, web_app
from config import Settings
from flagging.storage.engine import Database
from hl7.handler import MessageHandler

CHROMIUM = Path(os.environ.get("FLAGGING_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"Chromium is missing at {CHROMIUM}: .ci/run installs it (apt chromium)")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save their screenshots: a temporary folder, or the README's
    (FLAGGING_SCREENSHOTS=docs/screenshots ./scripts/test tests/browser) when asked."""
    asked = os.environ.get("FLAGGING_SCREENSHOTS", "")
    folder = Path(asked) if asked else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module."""
    _require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def live_server(db: Database, settings: Settings, handler: MessageHandler) -> Iterator[str]:
    """The web app on 127.0.0.1 and a free port, in a thread; stopped after the test."""
    server = make_server("127.0.0.1", 0, web_app(Services(settings, db, handler)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    """A fresh browser context (no cookies) at a laptop's size."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        base_url=live_server,
        locale="en-GB",
        timezone_id="Europe/London",
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()
