"""Who may use the server: the per-user token, Host and Origin parsed by the standard, and the folders
the user chose for indexing. Each test here reproduces a finding of issue 13 against the old code."""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import BASE, app_client, bearer, parse_sse
from litestar import Litestar
from litestar.testing import TestClient

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.cli import main
from deskpilot.server.core.token import TokenFile, ensure_token, read_token, rotate_token
from deskpilot.server.settings import load_settings
from deskpilot.server.web.security import canonical_host

pytestmark = pytest.mark.integration

SECRET = "the launch code is 4711-AZURE"


def make_app(home: Path, **settings: object) -> Litestar:
    index = DocumentIndex(home / "index", embedder=HashEmbedder())
    backend = ScriptedBackend(["It", " says", " so", " [1]."])
    return create_app(
        load_settings(home=home, https=False, ask_min_score=0.0, **settings), backend=backend, index=index
    )  # type: ignore[arg-type]


@pytest.fixture
def app(app_home: Path) -> Litestar:
    return make_app(app_home)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with app_client(app) as c:
        yield c


@pytest.fixture
def anonymous(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """Another local process: it reaches the port, but cannot read the user's token file."""
    with TestClient(app, base_url=BASE) as c:
        yield c


def wait_indexed(client: TestClient[Litestar], timeout: float = 60) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        status = client.get("/v1/index/status").json()
        if (status["indexing"] is None or status["indexing"]["phase"] == "done") and status["lastRun"]:
            return status  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


# -- the token ------------------------------------------------------------------------------------------


def _routes(app: Litestar) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, path parameters filled in."""
    found = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", ())):
            if method in ("OPTIONS", "HEAD"):
                continue
            found.append((method, re.sub(r"\{[^}]+\}", "x", route.path)))
    return found


OPEN = {("GET", "/healthz"), ("GET", "/"), ("GET", "/taskpane"), ("GET", "/dashboard")}


def test_every_route_but_healthz_and_the_pane_files_needs_the_token(
    app: Litestar, anonymous: TestClient[Litestar]
) -> None:
    routes = _routes(app)
    assert len(routes) > 30 and ("GET", "/openapi") in routes
    for method, path in routes:
        if (method, path) in OPEN or (method == "GET" and path.startswith(("/taskpane/", "/dashboard/"))):
            continue
        r = anonymous.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["code"] == "unauthorized" and r.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/taskpane/index.html").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["Bearer wrong", "Bearer ", "Basic dXNlcjpwYXNz", "bearer", "Token {token}", "Bearer {token}x"],
)
def test_a_wrong_token_is_401(app: Litestar, anonymous: TestClient[Litestar], authorization: str) -> None:
    token = read_token(app.state["services"].settings.token_path)
    r = anonymous.post(
        "/v1/summarize", json={"text": "hi"}, headers={"authorization": authorization.format(token=token)}
    )
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"


def test_the_token_in_any_case_of_bearer_is_let_in(app: Litestar, anonymous: TestClient[Litestar]) -> None:
    token = read_token(app.state["services"].settings.token_path)
    assert anonymous.get("/v1/models", headers={"authorization": f"BEARER {token}"}).status_code == 200


def test_two_authorization_headers_are_refused(app: Litestar, anonymous: TestClient[Litestar]) -> None:
    token = read_token(app.state["services"].settings.token_path)
    headers = [("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")]
    assert anonymous.get("/v1/models", headers=headers).status_code == 401


def test_the_token_file_is_created_owner_only_once(app_home: Path) -> None:
    path = app_home / "token"
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(ensure_token(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and len(tokens[0]) >= 40  # 32 random bytes
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in app_home.iterdir()] == ["token"]  # no staging file left behind
    os.chmod(path, 0o644)  # loosened by hand: owner-only again at the next start
    assert ensure_token(path) == tokens[0] and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotation_refuses_the_old_token_at_once_without_a_restart(
    app: Litestar, client: TestClient[Litestar]
) -> None:
    path = app.state["services"].settings.token_path
    old = read_token(path)
    assert client.get("/v1/models").status_code == 200
    new = rotate_token(path)
    assert new != old and stat.S_IMODE(path.stat().st_mode) == 0o600
    r = client.get("/v1/models")  # still presenting the old one
    assert r.status_code == 401 and "rotated" in r.json()["message"]
    assert client.get("/v1/models", headers=bearer(new)).status_code == 200


def test_token_rotate_and_show_on_the_command_line(app_home: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["token", "show"])
    assert shown.exit_code == 0, shown.output
    token = shown.output.strip()
    assert token == read_token(app_home / "token")
    assert runner.invoke(main, ["token", "show", "--path"]).output.strip() == str(app_home / "token")
    url = runner.invoke(main, ["token", "show", "--url"]).output.strip()
    assert url.endswith(f"/taskpane/index.html?token={token}")
    rotated = runner.invoke(main, ["token", "rotate"])
    assert rotated.exit_code == 0 and read_token(app_home / "token") not in (None, token)


def test_no_token_file_lets_nobody_in(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "token")
    assert tokens.current() is None and not tokens.matches(b"")
    ensure_token(tokens.path)
    assert tokens.matches(tokens.path.read_bytes().strip())
    tokens.path.unlink()
    assert not tokens.matches(b"anything")


# -- Host and Origin, parsed by the standard ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("localhost", "localhost"),
        ("LOCALHOST:8765", "localhost"),
        ("127.0.0.1:8765", "127.0.0.1"),
        ("[::1]:8765", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[::1]evil.com", None),
        ("127.0.0.1:evil", None),
        ("127.0.0.1:8765:1", None),
        ("127.0.0.1:99999", None),
        ("[::1", None),
        ("::1", None),
        ("127.000.000.001", None),
        ("user@localhost", None),
        ("", None),
    ],
)
def test_host_values_are_parsed_as_rfc_3986_says(host: str, name: str | None) -> None:
    assert canonical_host(host) == name


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"host": "[::1]evil.com"}, 400, "invalid_host"),
        ({"host": "127.0.0.1:evil"}, 400, "invalid_host"),
        ([("host", "127.0.0.1:8765"), ("host", "evil.example")], 400, "invalid_host"),
        ([("origin", "http://127.0.0.1:8765"), ("origin", "https://evil.example")], 403, "forbidden_origin"),
        ({"sec-fetch-site": "Cross-Site"}, 403, "forbidden_origin"),
        ({"sec-fetch-site": "CROSS-SITE"}, 403, "forbidden_origin"),
    ],
)
def test_host_and_origin_quirks_are_refused(
    client: TestClient[Litestar], headers: dict[str, str] | list[tuple[str, str]], status: int, code: str
) -> None:
    r = client.get("/v1/models", headers=headers)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text


def test_a_server_on_another_loopback_address_accepts_its_own_url(app_home: Path) -> None:
    app = make_app(app_home, host="127.0.0.2")
    with TestClient(app, base_url="http://127.0.0.2:8765") as c:
        token = read_token(app.state["services"].settings.token_path)
        headers = {**bearer(token), "origin": "http://127.0.0.2:8765"}
        assert c.get("/v1/models", headers=headers).status_code == 200
        assert c.get("/v1/models", headers={**headers, "host": "127.0.0.3:8765"}).status_code == 403


# -- folders the user chose -----------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that is not under the test's roots, holding an owner-only secret."""
    folder = tmp_path_factory.mktemp("private")
    secret = folder / "secret.txt"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    return folder


def test_indexing_outside_the_roots_is_403_and_reads_nothing(
    client: TestClient[Litestar], outside: Path
) -> None:
    r = client.post("/v1/index", json={"paths": [str(outside)]})
    assert r.status_code == 403 and r.json()["code"] == "path_not_allowed"
    assert client.get("/v1/index/status").json()["documents"] == 0
    events = parse_sse(client.post("/v1/ask", json={"question": "What is the launch code?"}).text)
    assert SECRET not in str(events)


def test_outside_missing_and_escaping_paths_get_the_same_answer(
    client: TestClient[Litestar], tmp_path: Path, outside: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "escape").symlink_to(outside)
    answers = {}
    for name, path in {
        "outside": outside,
        "missing outside": outside / "nope",
        "missing inside": docs / "nope",
        "link out": docs / "escape",
        "dot-dot out": docs / ".." / ".." / outside.name,
        "home": Path(client.app.state["services"].settings.home),
    }.items():
        r = client.post("/v1/index", json={"paths": [str(path)]})
        answers[name] = (
            r.status_code,
            r.json()["code"],
            r.json()["message"].replace(repr(str(path)), "PATH"),
        )
    assert len(set(answers.values())) == 1, answers
    assert next(iter(answers.values()))[0] == 403


def test_the_working_directory_is_not_indexed_for_an_empty_path(client: TestClient[Litestar]) -> None:
    r = client.post("/v1/index", json={"paths": [""]})
    assert r.status_code == 400
    assert client.get("/v1/index/status").json()["documents"] == 0


def test_links_inside_a_root_that_lead_out_are_not_read(
    client: TestClient[Litestar], tmp_path: Path, outside: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The picnic is at Riverside Park.")
    (docs / "secret.txt").symlink_to(outside / "secret.txt")
    (docs / "more").symlink_to(outside)
    assert client.post("/v1/index", json={"paths": [str(docs)]}).status_code == 202
    assert wait_indexed(client)["documents"] == 1
    events = parse_sse(client.post("/v1/ask", json={"question": "What is the launch code?"}).text)
    assert SECRET not in str(events)


def test_roots_the_user_adds_and_removes(client: TestClient[Litestar], app_home: Path, outside: Path) -> None:
    docs = outside  # not a root until the user adds it
    r = client.put("/v1/index/roots", json={"added": [str(docs)]})
    assert r.status_code == 200, r.text
    assert [root["source"] for root in r.json()["roots"]] == ["settings", "added"]
    assert stat.S_IMODE((app_home / "index-roots.json").stat().st_mode) == 0o600
    assert client.post("/v1/index", json={"paths": [str(docs)]}).status_code == 202
    wait_indexed(client)
    events = parse_sse(client.post("/v1/ask", json={"question": "What is the launch code?", "k": 1}).text)
    assert any(e == "sources" for e, _ in events)
    # Removed: its passages are no longer cited, though they are still in the index.
    assert client.put("/v1/index/roots", json={"added": []}).status_code == 200
    events = parse_sse(client.post("/v1/ask", json={"question": "What is the launch code?", "k": 1}).text)
    assert SECRET not in str(events) and all(e != "sources" or not d["sources"] for e, d in events)


@pytest.mark.parametrize("folder", ["/", "relative/folder", "{home}", "{home}/index", "{missing}"])
def test_folders_that_cannot_become_roots(
    client: TestClient[Litestar], app_home: Path, tmp_path: Path, folder: str
) -> None:
    app_home.mkdir(exist_ok=True)
    (app_home / "index").mkdir(exist_ok=True)
    given = folder.format(home=app_home, missing=tmp_path / "missing")
    r = client.put("/v1/index/roots", json={"added": [given]})
    assert r.status_code == 400 and r.json()["code"] == "bad_request", r.text


def test_the_index_command_reads_only_inside_the_roots(app_home: Path, outside: Path) -> None:
    runner = CliRunner()
    obj = {"embedder": HashEmbedder()}
    refused = runner.invoke(main, ["index", str(outside)], obj=obj)
    assert refused.exit_code == 1 and "not in a folder you chose" in refused.output
    added = runner.invoke(main, ["index", "--add-root", str(outside), str(outside)], obj=obj)
    assert added.exit_code == 0, added.output
    listed = runner.invoke(main, ["index", "--roots"], obj=obj)
    assert f"{outside.resolve()}\tadded" in listed.output
    assert runner.invoke(main, ["index", "--remove-root", str(outside)], obj=obj).exit_code == 0
    # Indexed before, no longer inside a root: not indexed again.
    again = runner.invoke(main, ["index"], obj=obj)
    assert again.exit_code == 1 and "none of the folders indexed before" in again.output
