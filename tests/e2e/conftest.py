"""Fixtures for driving the task pane in real headless Chromium (Debian's `chromium`, no browser download).

The pane is served by a real `deskpilot serve --http` (tests/conftest.py's ServerProcess) with the real
embedded model, and opened as Office opens it: at the start URL of the add-in manifest `deskpilot install`
writes, which carries the server's per-user access token. Office.js is replaced by a test double
(office_double.js) through Playwright's routing, so the pane's own code, including its host glue, runs
unchanged over a scripted mailbox item or document.
Screenshots go to test-artifacts/taskpane/ (git-ignored).
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from deskpilot.addin_manifest import Host, render

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "taskpane"
DOUBLE = (Path(__file__).with_name("office_double.js")).read_text()
PANE_BUILD = REPO / "server" / "static" / "taskpane" / "index.html"

# Debian's Chromium (apt-get install chromium; `make test` installs it when missing and running as root).
CHROMIUM = os.environ.get("DESKPILOT_CHROMIUM", "/usr/bin/chromium")
# The flags the machine notes give for a closed network: no background connections, no GPU, no sandbox
# (root in a container), a fresh profile per launch (Playwright passes its own --user-data-dir).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
]

# Records, inside the page, what the user sees: the output's text after every DOM change, with the run's
# phase and a timestamp, and the time of every click; so "progressively" and "time to first word" are
# measured in the page, not through the test's polling.
RECORDER = """
window.__pane = { clicks: [], texts: [] };
document.addEventListener("click", () => window.__pane.clicks.push(performance.now()), true);
new MutationObserver(() => {
  const out = document.querySelector('[data-testid="run-output"]');
  const run = document.querySelector('[data-testid="run"]');
  const text = out ? out.textContent : null;
  const log = window.__pane.texts;
  const last = log[log.length - 1];
  const phase = run ? run.getAttribute("data-phase") : null;
  if (text !== null && (!last || last[1] !== text || last[2] !== phase)) {
    log.push([performance.now(), text, phase]);
  }
}).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
"""

EMAIL_BODY = """Hi Bob,

The board meeting moved to Thursday 10 am. I need the Q3 sales figures and the churn analysis from your \
team by Tuesday evening so that finance can check them on Wednesday. Please also confirm whether the \
Lisbon office numbers are final.

Thanks,
Carol

________________________________
From: Bob Lee <bob@example.com>
Sent: Monday, November 16, 2026 4:02 PM
To: Carol Diaz <carol@example.com>
Subject: RE: Q3 numbers for the board pack

Carol, the Q3 numbers will be ready next week; Lisbon is still checking two invoices.
"""

OUTLOOK_ITEM = {
    "subject": "Q3 numbers for the board pack",
    "from": ["Carol Diaz", "carol@example.com"],
    "to": [["Bob Lee", "bob@example.com"]],
    "body": EMAIL_BODY,
}


# The model shares two CPU cores with everything else in CI: give streams time (a failure still fails).
expect.set_options(timeout=30_000)


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in the main thread
# while it is started, and every later test that runs a loop of its own (asyncio.run, pytest-asyncio)
# would fail with "Cannot run the event loop while another loop is running". It stops after tests/e2e.
@pytest.fixture(scope="package")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package when run as root, "
            "or set DESKPILOT_CHROMIUM to a Chromium/Chrome binary"
        )
    if not PANE_BUILD.is_file():
        pytest.fail(f"the task pane is not built ({PANE_BUILD} is missing): run `make setup`")
    browser = playwright_session.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def artifacts() -> Path:
    # Overwritten state by state (fixed names), so a run of a few tests keeps the others' pictures.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def start_url(host: Host, server: ServerProcess, token: str | None) -> str:
    """Where Office opens the pane: the SourceLocation of the manifest rendered for this server and token."""
    manifest = render(host, server.base_url, token).decode()
    (url,) = set(re.findall(r'<SourceLocation DefaultValue="([^"]+)"', manifest))
    return html.unescape(url)


class Pane:
    """The task pane in one browser page, opened inside a pretend Outlook or Word."""

    def __init__(self, page: Page, server: ServerProcess, artifacts: Path) -> None:
        self.page = page
        self.server = server
        self.base_url = server.base_url
        self.artifacts = artifacts
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.route(
            "**/taskpane/office-js/office.js",
            lambda route: route.fulfill(body=DOUBLE, content_type="text/javascript"),
        )
        page.add_init_script(RECORDER)

    def open(
        self,
        host: Host = "outlook",
        *,
        item: dict[str, Any] | None = None,
        document: dict[str, str] | None = None,
        sets: dict[str, str] | None = None,
        background: str = "#ffffff",
        prefs: dict[str, Any] | None = None,
        with_token: bool = True,
    ) -> Pane:
        """Open the pane at its manifest's start URL: with the server's token as `deskpilot install` writes
        it, or (`with_token=False`) as a page opened without it."""
        config = {
            "host": host,
            "item": item or OUTLOOK_ITEM,
            "document": document or {},
            "sets": sets or {"Mailbox": "1.8", "WordApi": "1.4"},
            "theme": {"bodyBackgroundColor": background},
        }
        script = f"window.__officeDouble = {json.dumps(config)};"
        if prefs is not None:
            script += f"localStorage.setItem('deskpilot.prefs.v1', {json.dumps(json.dumps(prefs))});"
        self.page.add_init_script(script)
        self.page.goto(start_url(host, self.server, self.server.token if with_token else None))
        return self

    def texts(self) -> list[tuple[float, str, str | None]]:
        return [tuple(x) for x in self.page.evaluate("window.__pane.texts")]  # type: ignore[misc]

    def clicks(self) -> list[float]:
        return list(self.page.evaluate("window.__pane.clicks"))

    def office_calls(self) -> list[list[Any]]:
        return list(self.page.evaluate("window.__officeCalls"))

    def output(self) -> str:
        return self.page.get_by_test_id("run-output").inner_text()

    def run_id(self) -> str:
        href = self.page.get_by_role("link", name="Lineage record").get_attribute("href") or ""
        assert href.startswith("/v1/runs/"), href
        return href.rsplit("/", 1)[1]

    def shot(self, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        # Finished transitions (the tab indicator slides) and a steady caret, so a screenshot shows a state.
        self.page.screenshot(path=str(path), full_page=True, animations="disabled")
        return path


PaneFactory = Callable[..., Pane]


@pytest.fixture
def pane_factory(browser: Browser, artifacts: Path) -> Iterator[PaneFactory]:
    contexts = []

    def make(server: ServerProcess, *, width: int = 320, height: int = 640) -> Pane:
        # ~320 px is the narrowest Office task pane.
        context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
        context.set_default_timeout(30_000)
        contexts.append(context)
        return Pane(context.new_page(), server, artifacts)

    yield make
    for context in contexts:
        context.close()
