"""A queued review carries the text its run read (`sourceText` on GET /v1/reviews) while it waits for a
person, with the server's default `retain_inputs` off, and the decision clears it from the queue table:
the text is kept only as long as a person needs it. In-process app, scripted backend, real SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import app_client, parse_sse
from litestar.testing import TestClient

from deskpilot.inference import GenerationRequest, ScriptedBackend, Token
from deskpilot.server.app import create_app
from deskpilot.server.lineage import LineageStore
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

ANA = {"name": "Ana Silva", "address": "ana@example.com"}
TEXT = "Northwind Traders Ltd\nInvoice No: NW-2041\nInvoice date: 03/02/2025\nTotal due GBP 102.00\n"


class Unsure:
    """A scripted model that writes `output` with a low probability per token, so results go to review."""

    def __init__(self) -> None:
        self.output: object = {"vendor": "Northwind Traders Ltd", "invoiceNumber": "NW-2041", "total": 102.0}

    def __call__(self, request: GenerationRequest) -> list[Token]:
        text = json.dumps(self.output)
        return [Token(text[i : i + 4], -2.0) for i in range(0, len(text), 4)]


@pytest.fixture
def model() -> Unsure:
    return Unsure()


@pytest.fixture
def client(app_home: Path, model: Unsure) -> Iterator[TestClient]:
    settings = load_settings(home=app_home, https=False)
    assert not settings.retain_inputs  # the default this is about
    with (
        LineageStore(app_home / "deskpilot.db") as store,
        app_client(create_app(settings, backend=ScriptedBackend(model), lineage=store)) as c,
    ):
        yield c


def stored_source(app_home: Path, review_id: str) -> tuple[str, str | None]:
    with closing(sqlite3.connect(app_home / "deskpilot.db")) as conn:
        sql = "SELECT status, source_text FROM review_queue WHERE id = ?"
        row = conn.execute(sql, [review_id]).fetchone()
    assert row is not None, f"no review_queue row {review_id}"
    return row


def test_a_queued_extraction_carries_its_source_until_decided(client: TestClient, app_home: Path) -> None:
    r = client.post("/v1/extract", json={"text": TEXT, "schema": "invoice"})
    assert r.status_code == 200, r.text
    result = next(data for name, data in parse_sse(r.text) if name == "result")
    assert result["review"] is not None, result
    review_id = result["review"]["id"]
    run = client.get(f"/v1/runs/{result['runId']}").json()
    assert run["input"] is None  # the run record does not keep it (retain_inputs off) ...
    item = client.get(f"/v1/reviews/{review_id}").json()
    assert item["sourceText"] == TEXT  # ... the review does, while it waits
    assert client.get("/v1/reviews").json()["reviews"][0]["sourceText"] == TEXT
    assert stored_source(app_home, review_id) == ("pending", TEXT)

    decided = client.post(f"/v1/reviews/{review_id}", json={"decision": "accept", "reviewer": ANA})
    assert decided.status_code == 200, decided.text
    assert decided.json()["sourceText"] is None
    assert stored_source(app_home, review_id) == ("accepted", None)
    listed = client.get("/v1/reviews", params={"status": "accepted"}).json()["reviews"]
    assert [(i["id"], i["sourceText"]) for i in listed] == [(review_id, None)]


def test_a_queued_classification_carries_its_source_until_decided(
    client: TestClient, model: Unsure, app_home: Path
) -> None:
    model.output = "fyi"
    body = "Please see the attached file about the Friday offsite."
    r = client.post("/v1/classify", json={"text": body, "labels": ["fyi", "urgent"]})
    assert r.status_code == 200, r.text
    unsure = r.json()
    assert unsure["review"], unsure
    review_id = unsure["review"]["id"]
    assert client.get(f"/v1/reviews/{review_id}").json()["sourceText"] == body
    other = "urgent" if unsure["label"] == "fyi" else "fyi"  # the blend may have chosen either
    client.post(
        f"/v1/reviews/{review_id}", json={"decision": "edit", "reviewer": ANA, "fields": {"label": other}}
    ).raise_for_status()
    assert stored_source(app_home, review_id) == ("edited", None)
