"""Issue 13's findings about files and inputs, each a test that failed before the fix: private files, limits
on request heads (a real uvicorn on 127.0.0.1), no 500 from any input, one error body, and an OpenAPI
document that says what the server does."""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import app_client, free_port, parse_sse
from litestar import Litestar, get
from litestar.testing import TestClient
from uvicorn_thread import UvicornThread

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.core.private import make_private
from deskpilot.server.core.token import read_token
from deskpilot.server.settings import load_settings
from deskpilot.server.web.hygiene import json_depth_exceeds
from deskpilot.server.web.openapi import openapi_document
from deskpilot.server.web.runner import uvicorn_config

pytestmark = pytest.mark.integration


def make_app(home: Path, **settings: Any) -> Litestar:
    index = DocumentIndex(home / "index", embedder=HashEmbedder())
    backend = ScriptedBackend(["Ana", " wants", " the", " numbers", "."])
    return create_app(load_settings(home=home, https=False, **settings), backend=backend, index=index)


@pytest.fixture
def client(app_home: Path) -> Iterator[TestClient[Litestar]]:
    with app_client(make_app(app_home)) as c:
        yield c


def assert_error_body(response: Any, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == status, body
    assert body["code"] == code and body["message"], body
    assert not {"status_code", "detail"} & set(body), body  # Litestar's own shape, never ours
    return body


# --- private files --------------------------------------------------------------------------------------


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A typical umask (022: files 0644, folders 0755), whatever the test process had."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(home: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(home.stat().st_mode)}
    for path in home.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(home))] = stat.S_IMODE(path.stat().st_mode)
    return found


def not_private(home: Path) -> dict[str, str]:
    return {
        name: oct(mode)
        for name, mode in modes(home).items()
        if mode != (0o700 if (home / name).is_dir() else 0o600)
    }


@pytest.mark.usefixtures("loose_umask")
def test_a_fresh_install_is_private_after_start_indexing_and_a_run(app_home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The picnic is at Riverside Park on Saturday.\n" * 20)
    with app_client(make_app(app_home)) as c:
        assert not_private(app_home) == {}
        assert c.post("/v1/index", json={"paths": [str(docs)]}).status_code == 202
        deadline = time.monotonic() + 60
        while (status := c.get("/v1/index/status").json())["lastRun"] is None:
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        events = parse_sse(c.post("/v1/summarize", json={"text": "Please send the numbers."}).text)
        assert events[-1][0] == "done"
        assert c.get(f"/v1/runs/{events[0][1]['runId']}").status_code == 200
    names = set(modes(app_home))
    assert {"deskpilot.db", "token", "index"} <= names and any(n.startswith("index/") for n in names)
    assert not_private(app_home) == {}


@pytest.mark.usefixtures("loose_umask")
def test_an_install_made_readable_by_others_is_fixed_at_start(app_home: Path) -> None:
    (app_home / "logs").mkdir(parents=True)
    (app_home / "logs" / "install.log").write_text("installed\n")
    (app_home / "deskpilot.db").touch()
    for path, mode in [(app_home, 0o755), (app_home / "logs", 0o755)]:
        os.chmod(path, mode)
    for path in (app_home / "logs" / "install.log", app_home / "deskpilot.db"):
        os.chmod(path, 0o644)
    assert not_private(app_home) != {}
    with app_client(make_app(app_home)):
        pass
    assert not_private(app_home) == {}


def test_make_private_leaves_links_and_what_they_point_at(tmp_path: Path) -> None:
    outside = tmp_path / "schemas-elsewhere"
    outside.mkdir()
    os.chmod(outside, 0o755)  # whatever the umask
    (outside / "invoice.json").write_text("{}")
    os.chmod(outside / "invoice.json", 0o644)
    home = tmp_path / "home"
    home.mkdir()
    (home / "schemas").symlink_to(outside)
    make_private(home)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755
    assert stat.S_IMODE((outside / "invoice.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


# --- no 500 from any input, one error body ---------------------------------------------------------------


def test_a_body_field_named_like_a_dependency_is_a_400(client: TestClient[Litestar]) -> None:
    r = client.put(
        "/v1/automations/taskpane", json={"settings": 5, "actor": {"name": "Ana", "address": "a@b.co"}}
    )
    assert assert_error_body(r, 400, "invalid_request")["field"] == "settings"


def test_no_dependency_is_named_like_a_request_body_field(client: TestClient[Litestar]) -> None:
    """Litestar reports a body field that fails validation and shares a dependency's name as a failed
    dependency (a 500): no top-level field of any request may have a dependency's name."""
    app: Litestar = client.app
    document = openapi_document(app)
    schemas = document["components"]["schemas"]
    fields: set[str] = set()
    for item in document["paths"].values():
        for operation in item.values():
            ref = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            name = ref.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            fields |= set(schemas.get(name, {}).get("properties", {}))
    assert fields and not set(app.dependencies) & fields


@pytest.mark.parametrize("since", [2**63, 2**64 + 1, 2**53])
def test_a_sequence_number_beyond_what_sqlite_and_json_hold_is_a_400(
    client: TestClient[Litestar], since: int
) -> None:
    r = client.get("/v1/events", params={"since": since})
    assert assert_error_body(r, 400, "invalid_request")["field"] == "since"
    r = client.post("/v1/events/replay", json={"since": since})
    assert assert_error_body(r, 400, "invalid_request")["field"] == "since"
    assert client.get("/v1/events", params={"since": 2**53 - 1}).status_code == 200


def test_other_numbers_that_reach_sqlite_are_bounded(client: TestClient[Litestar]) -> None:
    """Found by the longer fuzz run (bench/bench_fuzz.py): both were OverflowErrors, 500s."""
    r = client.post("/v1/ask", json={"question": "picnic?", "scope": {"documentIds": [2**70]}})
    assert assert_error_body(r, 400, "invalid_request")["field"] == "scope.documentIds[0]"
    ana = {"name": "Ana", "address": "ana@example.com"}
    r = client.put("/v1/automations/taskpane", json={"dailyBudget": 2**64, "actor": ana})
    assert assert_error_body(r, 400, "invalid_request")["field"] == "dailyBudget"


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_json_nested_deeper_than_the_limit_is_a_400(client: TestClient[Litestar], opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    for depth in (65, 1_000, 100_000):
        body = b'{"text": ' + opener * depth + b"1" + closer * depth + b"}"
        r = client.post("/v1/summarize", content=body, headers={"content-type": "application/json"})
        assert "nested deeper than 64" in assert_error_body(r, 400, "invalid_request")["message"]
    # 64 levels is not too deep (that body is wrong in another way).
    body = b'{"text": ' + b"[" * 63 + b"]" * 63 + b"}"
    r = client.post("/v1/summarize", content=body, headers={"content-type": "application/json"})
    assert "nested" not in assert_error_body(r, 400, "invalid_request")["message"]


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert not json_depth_exceeds(b'{"a": "' + b"[" * 100 + b'"}', 64)
    assert not json_depth_exceeds(b'{"a": "\\"' + b"[" * 100 + b'"}', 64)
    assert json_depth_exceeds(b"[" * 65 + b"]" * 65, 64)
    assert not json_depth_exceeds(b"[" * 64 + b"]" * 64, 64)
    assert not json_depth_exceeds(b"[[]]" * 1_000, 64)


def test_a_nul_byte_in_a_folder_to_index_is_a_400(client: TestClient[Litestar], tmp_path: Path) -> None:
    """Found by the longer fuzz run: os.path raised ValueError (a 500) for a root with a NUL in it."""
    for method, path, body in [
        ("PUT", "/v1/index/roots", {"added": [f"{tmp_path}/a\x00b"]}),
        ("POST", "/v1/index", {"paths": [f"{tmp_path}/a\x00b"]}),
    ]:
        r = client.request(method, path, json=body)
        assert assert_error_body(r, 400, "invalid_request")["field"].endswith("[0]")


def test_a_home_folder_of_no_user_is_refused_like_any_other_path(client: TestClient[Litestar]) -> None:
    """Found by bench/bench_fuzz.py: `~nosuchuser` made pathlib raise RuntimeError, a 500."""
    r = client.post("/v1/index", json={"paths": ["~nosuchuser\x83/docs"]})
    assert_error_body(r, 403, "path_not_allowed")
    r = client.put("/v1/index/roots", json={"added": ["~nosuchuser\x83/docs"]})
    assert_error_body(r, 400, "bad_request")


@pytest.mark.parametrize("path", ["/taskpane/%00", "/taskpane/assets/%00.png", "/v1/runs/%00"])
def test_a_nul_byte_in_the_path_is_a_400(client: TestClient[Litestar], path: str) -> None:
    assert_error_body(client.get(path), 400, "invalid_path")


def test_an_unexpected_error_answers_the_error_body_and_says_nothing_of_its_cause(app_home: Path) -> None:
    @get("/v1/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret detail from the database")

    app = make_app(app_home)
    app.register(boom)
    with app_client(app) as c:
        body = assert_error_body(c.get("/v1/boom"), 500, "internal_error")
    assert "secret" not in body["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x", "sentences": "3"}, "sentences"),  # a string is not a number
        ({"text": "x", "sentences": True}, "sentences"),
        ({"text": 5}, "text"),
    ],
)
def test_request_bodies_are_decoded_strictly(client: TestClient[Litestar], body: object, field: str) -> None:
    r = client.post("/v1/prepare", json=body)
    assert assert_error_body(r, 400, "invalid_request")["field"] == field


def test_a_missing_body_is_said_so(client: TestClient[Litestar]) -> None:
    body = assert_error_body(client.post("/v1/prepare"), 400, "invalid_request")
    assert body["message"] == "invalid request: a JSON body is required"  # Litestar said "'data'"


def test_a_date_is_a_date_and_an_integral_number_an_integer(client: TestClient[Litestar]) -> None:
    r = client.post("/v1/ask", json={"question": "picnic?", "scope": {"until": 0}})
    assert assert_error_body(r, 400, "invalid_request")["field"] == "scope.until"
    assert client.post("/v1/prepare", json={"text": "x", "sentences": 3.0}).status_code == 200


def test_options_lists_every_method_of_the_path(client: TestClient[Litestar]) -> None:
    for path, methods in [
        ("/v1/workflows", "GET, OPTIONS, POST"),
        ("/v1/automations/taskpane", "GET, OPTIONS, PUT"),
        ("/v1/index/roots", "GET, OPTIONS, PUT"),
    ]:
        r = client.options(path)
        assert r.status_code == 204 and r.headers["allow"] == methods, (path, r.headers)


# --- the OpenAPI document -------------------------------------------------------------------------------


@pytest.fixture
def document(client: TestClient[Litestar]) -> dict[str, Any]:
    r = client.get("/openapi")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    assert doc == client.get("/openapi/openapi.json").json()
    return doc


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = document["components"][kind][name]
    return node


def test_every_error_status_is_documented_with_the_one_error_body(document: dict[str, Any]) -> None:
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for method, path, operation in operations(document):
        errors = {s: resolve(document, r) for s, r in operation["responses"].items() if s[0] in "45"}
        assert {"400", "403"} <= set(errors), (method, path)
        assert ("401" in errors) == (path != "/healthz"), (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
        if "requestBody" in operation:
            assert "413" in errors, (method, path)
        for status, response in errors.items():
            assert response["content"] == {"application/json": {"schema": error_body}}, (method, path, status)
    answers = {(m, p): set(o["responses"]) for m, p, o in operations(document)}
    assert {"429", "503"} <= answers["POST", "/v1/summarize"] and "409" in answers["POST", "/v1/index"]
    assert set(resolve(document, error_body)["required"]) == {"code", "message"}


def test_streams_are_documented_as_event_streams_with_their_events(document: dict[str, Any]) -> None:
    streams = {
        "/v1/summarize": {"meta", "token", "grounded", "done", "error"},
        "/v1/ask": {"sources", "meta", "token", "grounded", "done", "error"},
        "/v1/extract": {"meta", "progress", "token", "result", "done", "error"},
    }
    for path, events in streams.items():
        content = document["paths"][path]["post"]["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"]
        one_of = content["text/event-stream"]["schema"]["oneOf"]
        assert {e["properties"]["event"]["const"] for e in one_of} == events
        for event in one_of:
            data = event["properties"]["data"]
            assert data["contentMediaType"] == "application/json"
            assert resolve(document, data["contentSchema"])["type"] == "object"
    assert document["x-sse-events"]["token"] == "TokenEvent"


def test_requests_that_reject_unknown_fields_say_so(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("SummarizeRequest", "EmailIn", "ExtractRequest", "AskRequest", "IndexRequest", "Person"):
        assert schemas[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in schemas["ModelsOut"]  # responses may grow


def test_text_or_email_is_one_of_exactly_two(document: dict[str, Any]) -> None:
    for name in ("SummarizeRequest", "ExtractRequest", "ClassifyRequest"):
        branches = document["components"]["schemas"][name]["oneOf"]
        assert [b["required"] for b in branches] == [["text"], ["email"]], name
        assert branches[0]["properties"]["text"]["type"] == "string"  # present and not null


# --- limits on the request head (a real uvicorn on 127.0.0.1) ---------------------------------------------


class LiveServer:
    def __init__(self, home: Path, **settings: Any) -> None:
        self.port = free_port()
        self.app = make_app(home, port=self.port, **settings)
        self.uvicorn = UvicornThread(uvicorn_config(self.app, self.app.state["services"].settings)).start()
        token = read_token(home / "token")
        self.head = f"Host: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {token}\r\n".encode()

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(10)
        return sock

    def stop(self) -> None:
        self.uvicorn.stop()


def read_all(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.fixture
def live(app_home: Path) -> Iterator[LiveServer]:
    server = LiveServer(
        app_home, max_header_bytes=8_192, max_headers=20, header_timeout_seconds=1.0, idle_timeout_seconds=1.0
    )
    yield server
    server.stop()


def test_a_request_within_the_limits_is_served(live: LiveServer) -> None:
    with live.connect() as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\n" + live.head + b"X-Pad: " + b"a" * 4_000 + b"\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + live.head + b"Connection: close\r\n\r\n")  # kept alive
        assert read_all(sock).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"a" * 100_000 + b"\r\n",  # one header too large
        b"".join(b"X-Many-%d: 1\r\n" % i for i in range(30)),  # too many headers
        b"".join(b"X-Mid-%d: %s\r\n" % (i, b"a" * 500) for i in range(18)),  # too many bytes in all
    ],
)
def test_headers_beyond_the_limits_are_a_431_with_the_error_body(live: LiveServer, headers: bytes) -> None:
    with live.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + live.head + headers + b"\r\n")
        status, body = status_and_body(read_all(sock))
    assert status == 431 and b'"code":"headers_too_large"' in body


def test_a_header_that_never_ends_is_cut_off(live: LiveServer) -> None:
    """200 MB of one header value: the server answers and closes after the limit, not after 200 MB."""
    with live.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + live.head + b"X-Endless: ")
        sent = 0
        with pytest.raises(OSError):  # reset or broken pipe: the server closed the connection
            while sent < 200_000_000:
                sock.sendall(b"a" * 1_000_000)
                sent += 1_000_000
    assert sent < 50_000_000


def test_headers_that_trickle_in_are_cut_off_after_the_header_timeout(live: LiveServer) -> None:
    with live.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer = b""
        with pytest.raises(OSError):
            for i in range(40):  # a header every 0.2 s: 8 s if nothing stopped it
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
                time.sleep(0.2)
            answer = read_all(sock)
        answer = answer or read_all(sock)
    assert time.monotonic() - started < 4
    status, body = status_and_body(answer)
    assert status == 408 and b'"code":"request_timeout"' in body


def test_an_idle_connection_is_closed(live: LiveServer) -> None:
    with live.connect() as sock:
        started = time.monotonic()
        assert read_all(sock) == b""  # closed without a word
    assert time.monotonic() - started < 4


def test_what_is_not_http_is_a_400_with_the_error_body(live: LiveServer) -> None:
    with live.connect() as sock:
        sock.sendall(b"\x00\x01 not http\r\n\r\n")
        status, body = status_and_body(read_all(sock))
    assert status == 400 and b'"code":"invalid_request"' in body
