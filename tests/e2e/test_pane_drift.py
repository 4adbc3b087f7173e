"""The drift banner in the Status tab, end to end: real headless Chromium at Office's narrowest pane (320 px)
and the real server (`deskpilot serve`, the embedded model loaded) over a lineage file with triage runs.
While the current window's labels are the usual mix, the tab shows no banner; once newsletters take over,
Refresh brings a warning that says in words what drifted and since when.

Screenshot: drift-banner.png (test-artifacts/taskpane/).
"""

from __future__ import annotations

import pytest
from conftest import ServerProcess
from playwright.sync_api import expect
from test_drift import USUAL, triage

from deskpilot.server.lineage import LineageStore

from .conftest import PaneFactory
from .test_taskpane_e2e import started

pytestmark = [pytest.mark.model, pytest.mark.e2e]

WINDOWS = {"DESKPILOT_DRIFT_REFERENCE_SIZE": "20", "DESKPILOT_DRIFT_WINDOW_SIZE": "20"}


@pytest.mark.timeout(600)
def test_the_status_tab_warns_while_triage_labels_have_drifted(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    server = server_factory(env=WINDOWS)
    with LineageStore(server.home / "deskpilot.db") as store:
        triage(store, 20 + 20, USUAL)
        started(server)
        pane = pane_factory(server).open("outlook")
        page = pane.page
        expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
        page.get_by_role("tab", name="Status").click()
        expect(page.get_by_test_id("status")).to_be_visible()
        expect(page.get_by_test_id("drift-banner")).to_have_count(0)

        triage(store, 20, ["newsletter", "newsletter", "newsletter", "invoice"])
        page.get_by_role("button", name="Refresh").click()
        banner = page.get_by_test_id("drift-banner")
        expect(banner).to_contain_text("Results may be less reliable")
        expect(banner).to_contain_text(
            "Triage is choosing different labels than it used to (noticed just now)."
        )
        expect(banner).to_contain_text("Compared with each task's first 20 requests")
        pane.shot("drift-banner")
    assert pane.errors == []
