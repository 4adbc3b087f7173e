"""The task pane as the server ships it: its unit tests (vitest), its types against the server's API, the
static files served from the API's own origin, and the build inside the Python package.

The end-to-end tests in real Chromium are in tests/e2e/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import bearer
from litestar.testing import TestClient

from deskpilot.addin_manifest import ASSETS_DIR, ICON_SIZES, render
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import TASKPANE_DIR, create_app
from deskpilot.server.core.token import read_token
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.process  # npm, node and a wheel build run as child processes

REPO = Path(__file__).resolve().parents[1]
PANE = REPO / "taskpane"
BASE = "http://127.0.0.1:8765"


def npm(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("npm")
    if exe is None:
        pytest.fail("npm is not installed: the task pane's tests need Node.js 20+ and npm (see README)")
    if not (PANE / "node_modules").is_dir():
        pytest.fail("taskpane/node_modules is missing: run `make setup`")
    return subprocess.run(
        [exe, *args],
        cwd=PANE,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHON": sys.executable, "CI": "1", "NO_COLOR": "1"},
    )


def test_vitest_unit_tests_of_the_host_glue_and_shared_logic_pass() -> None:
    result = npm("test")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Every suite ran: a test file that silently stopped running would otherwise go unnoticed.
    for suite in ("outlook", "word", "sse", "run", "shared", "workflow", "actions", "token", "auth"):
        assert f"{suite}.test.ts" in output, output
    assert re.search(r"Tests\s+\d+ passed", output), output


def test_the_panes_types_still_match_the_servers_api() -> None:
    """Regenerate the TypeScript types from this server's OpenAPI document and type-check the pane: a
    renamed or removed field on the server fails here, not in front of a user."""
    generated = npm("run", "gen:api")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    checked = npm("run", "typecheck")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture
def client(app_home: Path):  # type: ignore[no-untyped-def]
    if not (TASKPANE_DIR / "index.html").is_file():
        pytest.fail(
            f"the task pane is not built ({TASKPANE_DIR / 'index.html'} is missing): run `make setup`"
        )
    app = create_app(load_settings(home=app_home, https=False), backend=ScriptedBackend(["ok"]))
    # No token: Office loads the pane, its scripts and the add-in icons by URL, without our header.
    with TestClient(app, base_url=BASE) as c:
        yield c


def test_the_pane_office_js_and_icons_are_served_from_the_servers_own_origin(client: TestClient) -> None:
    page = client.get("/taskpane/index.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "no-cache" in page.headers["cache-control"]
    assert client.get("/taskpane/").text == page.text
    # Every script and stylesheet is a relative URL on this server: no CDN, works offline.
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and not [r for r in refs if re.match(r"[a-z]+:|//", r)], refs
    for ref in refs:
        r = client.get(f"/taskpane/{ref.removeprefix('./')}")
        assert r.status_code == 200, ref
    office = client.get("/taskpane/office-js/office.js")
    assert office.status_code == 200 and "javascript" in office.headers["content-type"]
    # office.js loads its host files and strings relative to itself: those must be there too.
    for path in ("outlook-web-16.01.js", "word-win32-16.01.js", "en-us/office_strings.js", "LICENSE.md"):
        assert client.get(f"/taskpane/office-js/{path}").status_code == 200, path
    assert client.get("/taskpane/office-js/excel-web-16.00.js").status_code == 404  # trimmed: not our hosts
    for size in ICON_SIZES:
        icon = client.get(f"/taskpane/assets/icon-{size}.png")
        assert icon.status_code == 200 and icon.content == (ASSETS_DIR / f"icon-{size}.png").read_bytes()
    assert client.get("/taskpane/assets/__init__.py").status_code == 404
    assert client.get("/taskpane/assets/../_icons.py").status_code == 404


def test_every_url_in_both_manifests_is_served(client: TestClient) -> None:
    for host in ("outlook", "word"):
        urls = set(re.findall(r'http://127\.0\.0\.1:8765[^"<\s]*', render(host, BASE).decode()))
        assert any("/taskpane/index.html" in u for u in urls) and any("/assets/icon-" in u for u in urls), (
            urls
        )
        for url in urls:
            r = client.get(url.removeprefix(BASE) or "/", follow_redirects=True)
            assert r.status_code == 200, url


def test_the_support_url_leads_to_the_pane_and_foreign_pages_cannot_load_it(
    client: TestClient, app_home: Path
) -> None:
    home = client.get("/", follow_redirects=False)
    assert home.status_code in (302, 307) and home.headers["location"] == "/taskpane/index.html"
    foreign = client.get("/taskpane/index.html", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    document = client.get("/openapi/openapi.json", headers=bearer(read_token(app_home / "token")))
    assert "/taskpane" not in document.json()["paths"]


def test_the_built_pane_is_inside_the_wheel(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("deskpilot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "deskpilot/server/static/taskpane/index.html" in names
    assert "deskpilot/server/static/taskpane/office-js/office.js" in names
    assert any(re.fullmatch(r"deskpilot/server/static/taskpane/app/index-[\w-]+\.js", n) for n in names)
    assert "deskpilot/addin_manifest/assets/icon-32.png" in names
    # The compliance and IT dashboard, a second entry of the same build (/dashboard/, `audit report`).
    assert "deskpilot/server/static/dashboard/index.html" in names
    assert any(re.fullmatch(r"deskpilot/server/static/dashboard/app/dashboard-[\w-]+\.js", n) for n in names)
