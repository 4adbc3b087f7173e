"""Microsoft 365 sync status in the Status tab, end to end: real headless Chromium at Office's narrowest pane
(320 px), the real server (`deskpilot serve`, the embedded model loaded) signed in to the Graph stand-in on
127.0.0.1, whose tenant flags one file as malware (403 `malwareDetected`, the stand-in's `blocked` option)
and has a followed SharePoint site with a document library. A sync from the server's API indexes
everything else; the pane lists each scope (mail folders, OneDrive, the library, the calendar) with its
last success, and OneDrive's "N skipped" opens to the flagged file with its reason and its next retry.

Screenshot: sync-status.png (test-artifacts/taskpane/).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import ServerProcess
from graph_helpers import graph_env, graph_settings, sign_in, vault  # noqa: F401
from playwright.sync_api import expect

from deskpilot.server.connectors.standin import StandIn, generate

from .conftest import PaneFactory
from .test_taskpane_e2e import started

pytestmark = [pytest.mark.model, pytest.mark.e2e]


def synced(server: ServerProcess, timeout: float = 180.0) -> dict[str, Any]:
    """Start a sync through the API and wait for it to finish; its status."""
    with server.client() as client:
        r = client.post("/v1/sync")
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + timeout
        while (status := client.get("/v1/sync/status").json())["running"]:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
    return dict(status)


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("vault")
def test_the_status_tab_shows_each_scope_and_a_skipped_file_with_its_reason(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    with StandIn(generate(seed=31, messages=3, files=5, events=2)) as standin:
        flagged = sorted((f for f in standin.tenant.files.values() if f.marker), key=lambda f: f.id)[0]
        standin.tenant.blocked[flagged.id] = "malware"
        site = standin.tenant.add_site("Marketing")
        library = standin.tenant.library(site)
        standin.tenant.add_file("plan.txt", b"Launch plan. Reference plan-marker.", library=library.id)
        sign_in(graph_settings(standin))
        server = started(server_factory(env=graph_env(standin)))
        status = synced(server)
        assert status["lastRun"]["status"] == "ok", status
        scopes = {s["scope"]: s for s in status["scopes"]}
        drive = scopes["drive"]
        assert (
            drive["skipped"][0]["name"] == flagged.name and drive["skipped"][0]["reason"] == "malwareDetected"
        )

        pane = pane_factory(server).open("outlook")
        page = pane.page
        expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
        page.get_by_role("tab", name="Status").click()
        expect(page.get_by_test_id("sync-scope")).to_have_count(len(scopes))
        onedrive = page.locator('[data-testid="sync-scope"][data-scope="drive"]')
        expect(onedrive).to_contain_text("OneDrive")
        expect(onedrive.get_by_test_id("sync-scope-state")).to_have_text("synced just now")
        sharepoint = page.locator(f'[data-testid="sync-scope"][data-scope="drive:{library.id}"]')
        expect(sharepoint).to_contain_text("Marketing / Documents SharePoint")
        expect(sharepoint.get_by_test_id("sync-scope-state")).to_have_text("synced just now")
        calendar = page.locator('[data-testid="sync-scope"][data-scope="calendar"]')
        expect(calendar.get_by_test_id("sync-scope-state")).to_have_text("synced just now")
        expect(calendar.get_by_test_id("sync-skipped")).to_have_count(0)

        skipped = onedrive.get_by_test_id("sync-skipped")
        expect(skipped.get_by_text(f"{drive['skippedCount']} skipped")).to_be_visible()
        item = skipped.get_by_text(f"{flagged.name}: flagged as malware by Microsoft 365, next retry at ")
        expect(item).to_be_hidden()  # folded until asked for
        skipped.get_by_text(f"{drive['skippedCount']} skipped").click()
        expect(item).to_be_visible()
        pane.shot("sync-status")
        assert pane.errors == []
