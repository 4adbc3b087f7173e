"""Faithful summaries over HTTP: tokens stream as before, then a `grounded` event (before `done`) says per
sentence whether it is the model's and supported or a quote, and points to its source sentence; lineage
keeps what was dropped. The `headline` length. The scripted model plants a hallucination."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_client, parse_sse
from litestar.testing import TestClient

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

BODY = (
    "Hi team,\n\nPriya will update the project plan by Friday. Please reply by Wednesday if you cannot "
    "attend.\nThe budget for the pilot is $12,500, approved by Dana Ortiz.\n\nThanks,\nLee"
)
SUMMARY = [
    "Marco will update the project plan by Wednesday.",  # the recombination of true words
    " The budget for the pilot is $12,500,",
    " approved by Dana Ortiz.",
]


def client_for(home: Path, script: list[str]) -> TestClient:
    index = DocumentIndex(home / "index", embedder=HashEmbedder())
    settings = load_settings(home=home, https=False)
    return app_client(create_app(settings, backend=ScriptedBackend(script), index=index))


@pytest.fixture
def client(app_home: Path) -> Iterator[TestClient]:
    with client_for(app_home, SUMMARY) as c:
        yield c


def test_a_summary_streams_then_says_which_sentences_stand(client: TestClient) -> None:
    events = parse_sse(client.post("/v1/summarize", json={"email": {"body": BODY}}).text)
    names = [e for e, _ in events]
    assert names[0] == "meta" and names[-2:] == ["grounded", "done"] and names.count("token") == 3
    assert "".join(d["text"] for e, d in events if e == "token") == "".join(SUMMARY)  # streamed as written
    grounded = events[-2][1]
    assert grounded["task"] == "summarize" and grounded["runId"] == events[0][1]["runId"]
    assert grounded["written"] == 2 and grounded["supported"] == 1 and grounded["fallback"] is False
    quoted, generated = grounded["sentences"]
    assert quoted["kind"] == "quoted" and quoted["text"] == "Priya will update the project plan by Friday."
    source = quoted["sourceSentence"]
    assert source["part"] == 0 and BODY[source["start"] : source["end"]] == quoted["text"]
    assert generated["kind"] == "generated" and generated["text"] == SUMMARY[1].strip() + SUMMARY[2]
    assert "$12,500" in BODY[generated["sourceSentence"]["start"] : generated["sourceSentence"]["end"]]
    [dropped] = grounded["dropped"]
    assert dropped["text"] == SUMMARY[0] and dropped["replacedBy"] == source["index"]
    assert "marco" in dropped["reason"] and "wed" in dropped["reason"]

    run = client.get(f"/v1/runs/{grounded['runId']}").json()
    assert run["output"] == "".join(SUMMARY)  # what the model wrote
    faithful = run["validation"]["faithful"]
    # Which sentence was dropped and why, by position and kind: no words of the email in lineage.
    [recorded] = faithful["dropped"]
    assert recorded["position"] == 0 and recorded["missing"] == ["day", "name"] and faithful["supported"] == 1
    assert recorded["replaced_by"] == source["index"] and "Marco" not in str(run["validation"])
    assert run["confidence"] == 0.5


def test_a_cached_summary_is_checked_again(client: TestClient) -> None:
    body = {"text": BODY}
    first = parse_sse(client.post("/v1/summarize", json=body).text)
    again = parse_sse(client.post("/v1/summarize", json=body).text)
    assert again[0][1]["cachedFrom"] == first[0][1]["runId"]
    assert [e for e, _ in again] == ["meta", "token", "grounded", "done"]
    assert again[2][1]["sentences"] == first[-2][1]["sentences"]
    run = client.get(f"/v1/runs/{again[0][1]['runId']}").json()
    assert run["validation"]["faithful"]["dropped"][0]["missing"] == ["day", "name"]


def test_nothing_supported_falls_back_to_the_emails_key_sentences(app_home: Path) -> None:
    with client_for(app_home, ["Acme Corp will buy Globex on 3 June for $4 million."]) as c:
        events = parse_sse(c.post("/v1/summarize", json={"text": BODY, "sentences": 2}).text)
    grounded = events[-2][1]
    assert grounded["fallback"] is True and grounded["supported"] == 0
    assert len(grounded["sentences"]) == 2
    for s in grounded["sentences"]:
        assert (
            s["kind"] == "quoted"
            and BODY[s["sourceSentence"]["start"] : s["sourceSentence"]["end"]] == s["text"]
        )


def test_headline_is_one_line_with_its_own_template(app_home: Path) -> None:
    with client_for(app_home, ["Pilot budget of $12,500 approved\n", "Second line is dropped"]) as c:
        events = parse_sse(c.post("/v1/summarize", json={"text": BODY, "length": "headline"}).text)
        run = c.get(f"/v1/runs/{events[0][1]['runId']}").json()
    grounded = events[-2][1]
    assert [(s["kind"], s["text"]) for s in grounded["sentences"]] == [
        ("generated", "Pilot budget of $12,500 approved")
    ]
    assert [d["reason"] for d in grounded["dropped"]] == ["a headline is one line"]
    assert run["templateId"] == "summarize_headline@v1"


def test_a_headline_that_must_be_quoted_is_cut_to_twelve_words(app_home: Path) -> None:
    long_body = (
        "The quarterly review of every regional office will take place in the main hall on the "
        "second floor next month.\nBring your reports."
    )
    with client_for(app_home, ["Zurich office closes in 2031"]) as c:
        events = parse_sse(c.post("/v1/summarize", json={"text": long_body, "length": "headline"}).text)
    [headline] = events[-2][1]["sentences"]
    assert headline["kind"] == "quoted" and len(headline["text"].split()) == 12
    assert long_body.startswith(headline["text"])


def test_headline_is_a_documented_length(client: TestClient) -> None:
    r = client.post("/v1/summarize", json={"text": BODY, "length": "tweet"})
    assert r.status_code == 400
    document = client.get("/openapi/openapi.json").json()
    assert document["x-sse-events"]["grounded"] == "GroundedEvent"
    length = document["components"]["schemas"]["SummarizeRequest"]["properties"]["length"]
    assert set(length["enum"]) == {"sentences", "headline"}
