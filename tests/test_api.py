"""The HTTP API in-process with a scripted backend: validation, security checks, SSE shape, lineage links."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_client, parse_sse
from litestar import Litestar
from litestar.testing import TestClient

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import BackendError, ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

EMAIL = {"from": "ana@example.com", "subject": "Budget", "body": "Please send the numbers by Friday."}


def make_app(home: Path, backend: object, **settings: object) -> Litestar:
    # The index gets a torch-free embedder: these tests are about the HTTP layer.
    index = DocumentIndex(home / "index", embedder=HashEmbedder())
    return create_app(load_settings(home=home, https=False, **settings), backend=backend, index=index)  # type: ignore[arg-type]


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(["Ana", " wants", " the", " numbers", " by", " Friday", "."])


@pytest.fixture
def client(app_home: Path, backend: ScriptedBackend) -> Iterator[TestClient]:
    with app_client(make_app(app_home, backend)) as c:
        yield c


def test_summarize_streams_meta_tokens_done_and_records_the_run(client: TestClient) -> None:
    r = client.post("/v1/summarize", json={"email": EMAIL, "client": "outlook", "sourceRef": "AAMk-1"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    names = [e for e, _ in events]
    assert names[0] == "meta" and names[-1] == "done" and names.count("token") == 7
    meta, done = events[0][1], events[-1][1]
    assert "".join(d["text"] for e, d in events if e == "token") == "Ana wants the numbers by Friday."
    run = client.get(f"/v1/runs/{meta['runId']}").json()
    assert run["status"] == "ok" and run["output"] == "Ana wants the numbers by Friday."
    assert run["templateId"] == "summarize@v1" and run["templateHash"].startswith("sha256:")
    assert run["client"] == "outlook" and run["sourceRef"] == "AAMk-1"
    assert run["tokensOut"] == done["usage"]["completionTokens"] == 7
    assert run["input"] is None and run["inputDigest"].startswith("sha256:")  # no retention by default


def test_inputs_are_kept_only_when_retention_allows(app_home: Path, backend: ScriptedBackend) -> None:
    with app_client(make_app(app_home, backend, retain_inputs=True)) as c:
        run_id = parse_sse(c.post("/v1/summarize", json={"text": "keep me"}).text)[0][1]["runId"]
        assert c.get(f"/v1/runs/{run_id}").json()["input"]["text"] == "keep me"


def test_draft_reply_streams(client: TestClient, backend: ScriptedBackend) -> None:
    r = client.post("/v1/draft-reply", json={"email": EMAIL, "tone": "friendly", "length": "short"})
    assert [e for e, _ in parse_sse(r.text)][-1] == "done"
    assert "friendly" in backend.requests[-1].messages[1].content


def test_unknown_run_is_404(client: TestClient) -> None:
    r = client.get("/v1/runs/nope")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ('{"text": 5}', "text", "Expected `str | null`, got `int`"),
        ('{"email": {"subject": "x"}}', "email", "missing required field `body`"),
        ('{"email": {"body": "x", "to": [3]}}', "email.to[0]", "Expected `str`"),
        ('{"text": "a", "sentences": 99}', "sentences", "<= 10"),
        ('{"tekst": "a"}', None, "unknown field `tekst`"),
        ("{}", None, "give exactly one of `text` or `email`"),
        ('{"text": "   "}', None, "`text` is empty"),
        ("{not json", None, "malformed"),
        ("[1, 2]", None, "Expected `object`"),
    ],
)
def test_bad_requests_get_400_saying_what_is_wrong(
    client: TestClient, body: str, field: str | None, says: str
) -> None:
    r = client.post("/v1/summarize", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert says in r.json()["message"]
    assert r.json().get("field") == field


def test_oversize_body_is_413(app_home: Path, backend: ScriptedBackend) -> None:
    with app_client(make_app(app_home, backend, max_body_bytes=10_000)) as c:
        r = c.post("/v1/summarize", json={"text": "x" * 20_000})
        assert r.status_code == 413 and "10,000 bytes" in r.json()["message"]
        assert c.post("/v1/summarize", json={"text": "x" * 5_000}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"host": "evil.example"}, "forbidden_host"),
        ({"host": "127.0.0.1.evil.example:8765"}, "forbidden_host"),
        ({"origin": "https://evil.example"}, "forbidden_origin"),
        ({"origin": "null"}, "forbidden_origin"),
        ({"origin": "http://localhost:9999"}, "forbidden_origin"),
        ({"sec-fetch-site": "cross-site"}, "forbidden_origin"),
    ],
)
def test_foreign_hosts_and_origins_get_403(client: TestClient, headers: dict[str, str], code: str) -> None:
    for method, path in (("POST", "/v1/summarize"), ("GET", "/healthz"), ("GET", "/v1/models")):
        r = client.request(method, path, json={"text": "hi"} if method == "POST" else None, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == code, (path, r.text)


@pytest.mark.parametrize(
    "origin", [None, "http://localhost:8765", "http://127.0.0.1:8765", "http://[::1]:8765"]
)
def test_own_origin_and_no_origin_are_allowed(client: TestClient, origin: str | None) -> None:
    headers = {"origin": origin, "sec-fetch-site": "same-origin"} if origin else {}
    assert client.post("/v1/summarize", json={"text": "hi"}, headers=headers).status_code == 200


def test_keepalive_comments_flow_while_the_model_is_quiet(app_home: Path) -> None:
    slow = ScriptedBackend(["late", " words"], first_delay=0.6)
    with app_client(make_app(app_home, slow, keepalive_seconds=0.1)) as c:
        events = parse_sse(c.post("/v1/summarize", json={"text": "hi"}).text)
    first_token = next(i for i, (e, _) in enumerate(events) if e == "token")
    assert sum(1 for e, d in events[:first_token] if e == "comment" and d == "keep-alive") >= 3
    # The run is recorded after "done"; a keep-alive may still go out meanwhile on a busy machine.
    assert [e for e, _ in events if e != "comment"][-1] == "done"


def test_backend_failure_is_an_error_event_and_recorded(app_home: Path) -> None:
    broken = ScriptedBackend(fail_with=BackendError("weights are corrupt"))
    with app_client(make_app(app_home, broken)) as c:
        events = parse_sse(c.post("/v1/summarize", json={"text": "hi"}).text)
        assert events[-1] == (
            "error",
            {"code": "backend_error", "message": "model profile 'embedded': weights are corrupt"},
        )
        run = c.get(f"/v1/runs/{events[0][1]['runId']}").json()
        assert run["status"] == "error" and "weights are corrupt" in run["error"]


def test_a_model_that_failed_to_load_gives_503(app_home: Path) -> None:
    def cannot_load() -> ScriptedBackend:
        time.sleep(0.3)  # still loading when the first request arrives: it waits, then learns in-stream
        raise BackendError("model file not found: /nowhere.gguf")

    with app_client(make_app(app_home, cannot_load)) as c:
        events = parse_sse(c.post("/v1/summarize", json={"text": "hi"}).text)
        assert events == [
            (
                "error",
                {
                    "code": "model_unavailable",
                    "message": "model profile 'embedded': the model could not be loaded: "
                    "model file not found: /nowhere.gguf",
                },
            )
        ]
        models = c.get("/v1/models").json()
        assert models["state"] == "failed" and "nowhere.gguf" in models["error"]
        r = c.post("/v1/summarize", json={"text": "hi"})
        assert r.status_code == 503 and r.headers["retry-after"] == "30"
        assert c.get("/healthz").json()["model"] == "failed"


def test_shutdown_ends_open_streams_with_an_error_event(app_home: Path) -> None:
    slow = ScriptedBackend([f" w{i}" for i in range(200)], delay=0.05)
    app = make_app(app_home, slow)
    with app_client(app) as c:
        threading.Timer(0.3, app.state.stopping.set).start()
        events = parse_sse(c.post("/v1/summarize", json={"text": "hi"}).text)
        assert events[-1][0] == "error" and events[-1][1]["code"] == "shutdown"
        assert 0 < sum(e == "token" for e, _ in events) < 200
        run = c.get(f"/v1/runs/{events[0][1]['runId']}").json()
        assert run["status"] == "cancelled"
    assert slow.active == 0 and slow.cancelled == 1


def test_openapi_document_describes_the_api(client: TestClient) -> None:
    doc = client.get("/openapi/openapi.json").json()
    assert {"/v1/summarize", "/v1/draft-reply", "/v1/runs/{run_id}", "/v1/models", "/healthz"} <= set(
        doc["paths"]
    )
    schemas = doc["components"]["schemas"]
    assert "sourceRef" in next(s for n, s in schemas.items() if n.endswith("SummarizeRequest"))["properties"]


def test_prepare_warms_exactly_the_prompt_a_summary_will_use(
    client: TestClient, backend: ScriptedBackend
) -> None:
    body = {"email": EMAIL, "sentences": 2}
    r = client.post("/v1/prepare", json=body)
    assert r.status_code == 200 and r.json()["prepared"] is True and r.json()["cachedTokens"] > 0
    client.post("/v1/summarize", json=body)
    assert backend.prepared[-1] == backend.requests[-1]  # same messages and parameters, token for token
    assert client.post("/v1/prepare", json={"tekst": "x"}).status_code == 400


def test_prepare_never_waits_for_a_busy_model(app_home: Path) -> None:
    slow = ScriptedBackend([f" w{i}" for i in range(30)], delay=0.02)
    with app_client(make_app(app_home, slow)) as c:
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(r=c.post("/v1/summarize", json={"text": "a"})))
        thread.start()
        deadline = time.monotonic() + 5
        while not c.get("/v1/models").json()["busy"]:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        r = c.post("/v1/prepare", json={"text": "b"})
        assert r.json() == {"prepared": False, "reason": "the model is busy", "cachedTokens": 0, "ms": 0.0}
        thread.join()
        assert slow.prepared == []


def test_rewrite_streams_and_is_recorded(client: TestClient, backend: ScriptedBackend) -> None:
    text = "We cannot ship on Friday because QA found two bugs."
    r = client.post(
        "/v1/rewrite", json={"text": text, "tone": "formal", "instructions": "Shorter.", "client": "word"}
    )
    events = parse_sse(r.text)
    assert events[0][0] == "meta" and events[-1][0] == "done"
    prompt = backend.requests[-1].messages[1].content
    assert text in prompt and "formal" in prompt and "Shorter." in prompt
    run = client.get(f"/v1/runs/{events[0][1]['runId']}").json()
    assert run["task"] == "rewrite" and run["templateId"] == "rewrite@v1" and run["client"] == "word"
    bad = client.post("/v1/rewrite", json={"text": "  "})
    assert bad.status_code == 400 and "`text` is empty" in bad.json()["message"]
