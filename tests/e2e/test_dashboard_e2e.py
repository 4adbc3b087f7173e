"""The compliance and IT dashboard and the auditor's report in real headless Chromium, over real records: the
app under uvicorn on 127.0.0.1 with the scripted backend, after the scripted session of
tests/dashboard_session.py (summaries, extractions, reviews, drift checks, governance events, a
verification), hour by hour on the lineage store's clock.

The live page is opened as `deskpilot dashboard` prints it (the token in the URL fragment); each view is
shown, its text and drawn charts checked, and screenshot. The report (`deskpilot audit report`) is opened
from file:// and must make no request at all.
Screenshots: test-artifacts/dashboard/ (git-ignored) and each test's tmp_path.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import REPO, bearer, free_port
from dashboard_session import (
    MovingClock,
    ScriptedModel,
    Session,
    run_session,
    session_services,
)
from playwright.sync_api import Browser, Page, expect
from uvicorn_thread import UvicornThread, plain_config

from deskpilot.server.app import create_app
from deskpilot.server.cli import main
from deskpilot.server.core.token import read_token
from deskpilot.server.ops.cli import dashboard_url

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO / "test-artifacts" / "dashboard"
DASHBOARD_BUILD = REPO / "server" / "static" / "dashboard" / "index.html"
# Each view: its tab, and text it must show from the session's records.
VIEWS = {
    "slo": ("SLOs", ["Service level objectives", "objective met"]),
    "latency": ("Latency", ["Latency", "First token p95"]),
    "cost": ("Cost", ["Cost and tokens", "embedded", "big"]),
    "quality": ("Review", ["70 of 70 structured results reviewed (100.0%)", "1 of 2 decisions"]),
    "drift": (
        "Drift",
        ["0 in alarm at their last check", "null_rate:currency", "drift.alarm", "drift.cleared"],
    ),
    "chain": ("Chain", ["intact", "audit_events", "retention.purge", "hold.set", "no legal hold", "1 day"]),
}
CHARTS = {
    "latency": ["chart-latency"],
    "cost": ["chart-cost", "chart-tokens"],
    "quality": ["chart-quality"],
    "drift": ["chart-drift"],
}


class LiveApp:
    """The app under a real uvicorn on 127.0.0.1, its lineage on a clock the session moves."""

    def __init__(self, home: Path) -> None:
        self.clock, self.model = MovingClock(), ScriptedModel()
        services = session_services(home, self.clock, self.model, port=free_port(), worker=False)
        self.settings, self.lineage = services.settings, services.lineage
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.uvicorn = UvicornThread(plain_config(create_app(services), self.settings.port))

    def __enter__(self) -> LiveApp:
        self.uvicorn.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uvicorn.stop()
        self.lineage.close()

    @property
    def token(self) -> str:
        token = read_token(self.settings.token_path)
        assert token
        return token


@pytest.fixture
def live(app_home: Path) -> Iterator[tuple[LiveApp, Session]]:
    if not DASHBOARD_BUILD.is_file():
        pytest.fail(f"the dashboard is not built ({DASHBOARD_BUILD} is missing): run `make setup`")
    with LiveApp(app_home) as app, httpx.Client(base_url=app.url, headers=bearer(app.token)) as client:
        yield app, run_session(client, app.lineage, app.clock, app.model)


def shot(page: Page, name: str, tmp_path: Path) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    shutil.copyfile(path, ARTIFACTS / path.name)
    return path


def drawn_paths(page: Page, test_id: str) -> int:
    """How many SVG paths with geometry the chart drew."""
    return int(
        page.evaluate(
            "id => [...document.querySelectorAll(`[data-testid='${id}'] path`)]"
            ".filter(p => (p.getAttribute('d') || '').length > 3).length",
            test_id,
        )
    )


def check_view(page: Page, view: str) -> None:
    section = page.get_by_test_id(f"view-{view}")
    expect(section).to_be_visible()
    for text in VIEWS[view][1]:
        expect(section).to_contain_text(text)
    for chart in CHARTS.get(view, []):
        expect(page.get_by_test_id(chart)).to_be_visible()
        assert drawn_paths(page, chart) >= 1, chart


def test_each_view_of_the_live_dashboard(
    browser: Browser, live: tuple[LiveApp, Session], tmp_path: Path
) -> None:
    app, _ = live
    context = browser.new_context(viewport={"width": 1100, "height": 800}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    requests: list[tuple[str, str | None]] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
    page.goto(dashboard_url(app.url, app.token))
    expect(page.get_by_test_id("view-slo")).to_be_visible()
    # The token left the address at once, never went to the server in a URL, and went in the header.
    assert "token" not in page.url and page.url == f"{app.url}/dashboard/"
    assert all(app.token not in url for url, _ in requests), requests
    data_calls = [auth for url, auth in requests if "/v1/dashboard?" in url]
    assert data_calls and all(auth == f"Bearer {app.token}" for auth in data_calls)
    for view, (tab, _) in VIEWS.items():
        page.get_by_role("tab", name=tab).click()
        check_view(page, view)
        shot(page, f"dashboard-{view}", tmp_path)
    # Verify now: the chain is re-derived, the outcome recorded and shown.
    before = len(app.lineage.events(kinds=["audit.verify"]))
    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_test_id("verify-result")).to_contain_text("Every chain is intact.")
    assert len(app.lineage.events(kinds=["audit.verify"])) == before + 1
    expect(page.get_by_test_id("last-verification")).to_contain_text("by dashboard")
    # Every chain as verified: the events chain's head is the verification's own record.
    expect(page.get_by_test_id("chain-heads")).not_to_contain_text("grew")
    shot(page, "dashboard-verified", tmp_path)
    assert errors == []
    context.close()


def test_without_the_token_the_page_says_how_to_open_it(
    browser: Browser, live: tuple[LiveApp, Session], tmp_path: Path
) -> None:
    app, _ = live
    context = browser.new_context(viewport={"width": 900, "height": 500})
    page = context.new_page()
    page.goto(f"{app.url}/dashboard/")
    expect(page.get_by_test_id("dashboard-error")).to_contain_text("open it with `deskpilot dashboard`")
    expect(page.get_by_test_id("view-slo")).to_have_count(0)
    shot(page, "dashboard-no-token", tmp_path)
    context.close()


def test_the_report_opens_from_a_file_with_no_request(
    browser: Browser, live: tuple[LiveApp, Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = live
    monkeypatch.setenv("DESKPILOT_RETENTION_INPUTS_DAYS", "1")  # the policy the live app runs with
    out = tmp_path / "report.html"
    since = (app.clock.start - timedelta(hours=1)).isoformat()
    result = CliRunner().invoke(
        main, ["audit", "report", "--since", since, "--bucket", "hour", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    context = browser.new_context(viewport={"width": 1100, "height": 800}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    expect(page.get_by_test_id("report")).to_be_visible()
    for view in VIEWS:
        check_view(page, view)
    # The same views, without the live page's controls.
    expect(page.get_by_role("button", name="Verify now")).to_have_count(0)
    expect(page.get_by_role("tab")).to_have_count(0)
    shot(page, "report", tmp_path)
    assert requests == [out.as_uri()], requests
    assert errors == []
    context.close()
