"""Documents over HTTP: /v1/index, /v1/index/status and grounded /v1/ask with citations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_client, parse_sse
from corpus import FACTS, make_corpus
from httpx_sse import connect_sse
from litestar.testing import TestClient

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.documents.api import NOTHING_FOUND
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration


def wait_indexed(get_status, timeout: float = 120) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        status = get_status()
        indexed = status["indexing"] is None or status["indexing"]["phase"] == "done"
        if indexed and status["lastRun"] is not None:
            return status  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(["The", " picnic", " is", " at", " Riverside", " Park", " [1]."])


@pytest.fixture
def client(app_home: Path, backend: ScriptedBackend) -> Iterator[TestClient]:
    index = DocumentIndex(app_home / "index", embedder=HashEmbedder())
    app = create_app(
        load_settings(home=app_home, https=False, ask_min_score=0.05), backend=backend, index=index
    )
    with app_client(app) as c:
        yield c


def test_index_then_ask_cites_the_document_that_holds_the_answer(
    client: TestClient, backend: ScriptedBackend, tmp_path: Path
) -> None:
    docs = make_corpus(tmp_path / "docs", per_type=2)
    r = client.post("/v1/index", json={"paths": [str(tmp_path / "docs")]})
    assert r.status_code == 202 and r.json()["started"] is True
    status = wait_indexed(lambda: client.get("/v1/index/status").json())
    assert status["documents"] == len(docs) and status["chunks"] >= len(docs)

    target = next(d for d in docs if d.fact == FACTS[0][0])
    events = parse_sse(client.post("/v1/ask", json={"question": FACTS[0][1], "k": 3, "client": "word"}).text)
    names = [e for e, _ in events]
    assert names[0] == "meta" and names[-2:] == ["sources", "done"] and "token" in names
    sources = events[-2][1]["sources"]
    assert [s["number"] for s in sources] == list(range(1, len(sources) + 1))
    assert str(target.path) in {s["source"] for s in sources}
    # The model saw the numbered passages, the fact among them.
    prompt = backend.requests[-1].messages[1].content
    assert "[1]" in prompt and FACTS[0][0] in prompt and FACTS[0][1] in prompt
    run = client.get(f"/v1/runs/{events[0][1]['runId']}").json()
    assert run["task"] == "ask" and run["templateId"] == "ask@v1"
    assert [c["id"] for c in run["retrievedChunks"]] and all("score" in c for c in run["retrievedChunks"])


def test_nothing_relevant_says_so_without_asking_the_model(
    client: TestClient, backend: ScriptedBackend, tmp_path: Path
) -> None:
    make_corpus(tmp_path / "docs", per_type=1)
    client.post("/v1/index", json={"paths": [str(tmp_path / "docs")]})
    wait_indexed(lambda: client.get("/v1/index/status").json())
    events = parse_sse(client.post("/v1/ask", json={"question": "zygote quasar xylophone"}).text)
    assert "".join(d["text"] for e, d in events if e == "token") == NOTHING_FOUND
    assert events[-2] == ("sources", {"sources": []})
    assert backend.requests == []
    run = client.get(f"/v1/runs/{events[0][1]['runId']}").json()
    assert run["status"] == "ok" and run["modelId"] == "none" and run["output"] == NOTHING_FOUND


def test_scope_restricts_the_sources(client: TestClient, tmp_path: Path) -> None:
    docs = make_corpus(tmp_path / "docs", per_type=2)
    client.post("/v1/index", json={"paths": [str(tmp_path / "docs")]})
    wait_indexed(lambda: client.get("/v1/index/status").json())
    target = next(d for d in docs if d.kind == "md")
    folder = str(target.path.parent)
    events = parse_sse(
        client.post("/v1/ask", json={"question": target.question, "scope": {"folders": [folder]}}).text
    )
    sources = events[-2][1]["sources"]
    assert str(target.path) in {s["source"] for s in sources}
    assert all(s["source"].startswith(folder) for s in sources)


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/v1/index", {"paths": ["/no/such/folder"]}, 403, "'/no/such/folder' is not in a folder you chose"),
        ("/v1/index", {"paths": []}, 400, "length >= 1"),
        ("/v1/index", {"paths": [""]}, 400, "length >= 1"),
        ("/v1/ask", {"question": ""}, 400, "length >= 1"),
        ("/v1/ask", {"question": "   "}, 400, "`question` is empty"),
        ("/v1/ask", {"question": "x", "k": 0}, 400, ">= 1"),
        ("/v1/ask", {"question": "x", "scope": {"folder": "a"}}, 400, "unknown field `folder`"),
    ],
)
def test_bad_requests(client: TestClient, path: str, body: dict, status: int, says: str) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status and says in r.json()["message"], r.text


def test_one_indexing_run_at_a_time(client: TestClient, tmp_path: Path) -> None:
    make_corpus(tmp_path / "docs", per_type=4)
    assert client.post("/v1/index", json={"paths": [str(tmp_path / "docs")]}).status_code == 202
    second = client.post("/v1/index", json={"paths": [str(tmp_path / "docs")]})
    assert second.status_code in (202, 409)  # 202 only if the first run already finished
    if second.status_code == 409:
        assert "already in progress" in second.json()["message"]
    wait_indexed(lambda: client.get("/v1/index/status").json())


@pytest.mark.model
def test_ask_over_real_embeddings_and_the_real_model(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs = make_corpus(tmp_path / "docs", per_type=2)
    srv = server_factory()
    srv.wait_healthy()
    srv.wait_model()
    with srv.client() as client:
        assert client.post("/v1/index", json={"paths": [str(tmp_path / "docs")]}).status_code == 202
        status = wait_indexed(lambda: client.get("/v1/index/status").json(), timeout=240)
        assert status["documents"] == len(docs) and status["embedderReady"]
        for fact, question in FACTS[:3]:
            target = next(d for d in docs if d.fact == fact)
            with connect_sse(client, "POST", "/v1/ask", json={"question": question}) as source:
                events = [(sse.event, sse.json()) for sse in source.iter_sse()]
            assert [e for e, _ in events][-2:] == ["sources", "done"]
            assert sum(e == "token" for e, _ in events) > 1
            assert str(target.path) in {s["source"] for s in events[-2][1]["sources"]}, (question, events[-2])


class BrokenIndex(DocumentIndex):
    def search(self, *args: object, **kwargs: object) -> list:  # type: ignore[override]
        raise OSError("the index file is unreadable")


def test_a_failing_search_answers_503_and_gives_its_place_in_line_back(app_home: Path) -> None:
    """Each failed /v1/ask once kept a place in the model's line forever: after max_queue + 1 of them,
    every request got 429."""
    settings = load_settings(home=app_home, https=False, max_queue=2)
    index = BrokenIndex(app_home / "index", embedder=HashEmbedder())
    with app_client(create_app(settings, backend=ScriptedBackend(["ok"]), index=index)) as client:
        for _ in range(settings.max_queue + 3):
            r = client.post("/v1/ask", json={"question": "How much notice is needed?"})
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "index_unavailable" and "unreadable" in r.json()["message"]
        models = client.get("/v1/models").json()
        assert models["waiting"] == 0 and models["busy"] is False
        events = parse_sse(client.post("/v1/summarize", json={"text": "Still answering."}).text)
        assert [e for e, _ in events][-1] == "done"
