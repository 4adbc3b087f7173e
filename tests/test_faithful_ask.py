"""Grounded /v1/ask: the answer is checked against the passages it cites, and when it is not supported
the answer is the passage sentences that best match the question, quoted and cited. The question set
is tests/data/ask (documents written for it; see its README)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import app_client, parse_sse
from litestar.testing import TestClient

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data" / "ask"
QUESTIONS = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines() if line]


def indexed(client: TestClient[Any], folder: Path) -> None:
    shutil.copytree(DATA, folder, ignore=shutil.ignore_patterns("*.jsonl", "README.md"))
    assert client.post("/v1/index", json={"paths": [str(folder)]}).status_code == 202
    deadline = time.monotonic() + 240
    while True:
        status = client.get("/v1/index/status").json()
        running = status["indexing"] is not None and status["indexing"]["phase"] != "done"
        if not running and status["lastRun"] is not None:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["documents"] == 3, status


def ask(client: TestClient[Any], question: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The `grounded` event and the sources; no `grounded` when nothing relevant was found (no model)."""
    events = parse_sse(client.post("/v1/ask", json={"question": question, "k": 3}).text)
    names = [e for e, _ in events]
    if events[0][1]["model"] == "none":
        assert names == ["meta", "token", "sources", "done"] and not events[-2][1]["sources"]
        return None, []
    assert names[-3:] == ["grounded", "sources", "done"], names
    return events[-3][1], events[-2][1]["sources"]


@pytest.fixture
def client(app_home: Path, tmp_path: Path) -> Iterator[TestClient[Any]]:
    # The model invents a company and cites a passage that says something else.
    backend = ScriptedBackend(["Globex Industries requires", " 30 days notice", " by fax [1]."])
    index = DocumentIndex(app_home / "index", embedder=HashEmbedder())
    settings = load_settings(home=app_home, https=False, ask_min_score=0.05)
    with app_client(create_app(settings, backend=backend, index=index)) as c:
        indexed(c, tmp_path / "docs")
        yield c


def test_an_invented_answer_is_replaced_by_the_cited_sources_own_sentences(client: TestClient[Any]) -> None:
    question = QUESTIONS[0]
    assert question["expect"] == "90 days"
    grounded, sources = ask(client, question["question"])
    assert grounded is not None and grounded["fallback"] is True and grounded["supported"] == 0
    assert [d["text"] for d in grounded["dropped"]] == [
        "Globex Industries requires 30 days notice by fax [1]."
    ]
    assert grounded["sentences"] and all(s["kind"] == "quoted" for s in grounded["sentences"])
    by_number = {s["number"]: s for s in sources}
    for s in grounded["sentences"]:
        cited = by_number[s["sourceSentence"]["part"]]  # each quote is cited with its passage's number
        assert s["text"] in " ".join(cited["snippet"].split()) or cited["source"].endswith(".txt")
    assert "90 days written notice" in " ".join(s["text"] for s in grounded["sentences"])
    run = client.get(f"/v1/runs/{grounded['runId']}").json()
    assert run["validation"]["faithful"]["fallback"] is True


@pytest.mark.model
def test_answer_support_on_the_question_set_with_the_real_model(
    app_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The embedded model and MiniLM over the question set: prints how many answers were supported as
    the model wrote them, and checks that every final answer holds the phrase its question expects."""
    settings = load_settings(home=app_home, https=False)
    rows = []
    with app_client(create_app(settings)) as client:
        indexed(client, tmp_path / "docs")
        for q in QUESTIONS:
            grounded, _ = ask(client, q["question"])
            sentences = grounded["sentences"] if grounded else []
            final = " ".join(s["text"] for s in sentences)
            rows.append((q, grounded or {}, q["expect"].lower() in final.lower()))
    supported = sum(g.get("written", 0) > 0 and g["supported"] == g["written"] for _, g, _ in rows)
    holds = sum(ok for _, _, ok in rows)
    with capsys.disabled():
        print(
            f"\nanswers supported as written: {supported}/{len(rows)}; final answer holds the fact: {holds}"
        )
        for q, g, ok in rows:
            checked = f"{g['supported']}/{g['written']} fallback={g['fallback']}" if g else "nothing found"
            print(f"  {'ok  ' if ok else 'MISS'} {checked} {q['question']}")
    assert holds >= len(rows) - 2
