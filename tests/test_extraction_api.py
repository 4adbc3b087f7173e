"""Extraction, triage and review over HTTP, in-process with a scripted backend: the SSE shape, lineage
records, the review queue, decisions chained in lineage with their diff, the override rate, and 4xx."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import app_client, parse_sse
from litestar.testing import TestClient
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from deskpilot.inference import GenerationRequest, ScriptedBackend, Token
from deskpilot.server.app import create_app
from deskpilot.server.core.wire import Person
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.lineage import LineageStore
from deskpilot.server.lineage._chain import append_chained
from deskpilot.server.lineage._migrations import m001_runs, m002_open_runs, m003_reviews, m004_review_queue
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

# Who decides a review: the Office user, as the task pane knows them.
ANA = {"name": "Ana Silva", "address": "ana@example.com"}
BO = {"name": "Bo Chen", "address": "bo@example.com"}

TEXT = """Northwind Traders Ltd
12 Harbour Road, Bristol BS1 4DJ
Invoice No: NW-2041
Invoice date: 03/02/2025
Due date: 05/03/2025
Subtotal 85.00
VAT 17.00
Total due GBP 102.00
"""
GOOD = {
    "vendor": "Northwind Traders Ltd",
    "vendorAddress": "12 Harbour Road, Bristol BS1 4DJ",
    "invoiceNumber": "NW-2041",
    "issueDate": "03/02/2025",
    "dueDate": "05/03/2025",
    "currency": "GBP",
    "subtotal": 85.0,
    "tax": 17.0,
    "total": 102.0,
    "lineItems": [],
}


class Model:
    """What the scripted model writes next: a JSON document (or a label) and how sure it is per token."""

    def __init__(self) -> None:
        self.output: object = GOOD
        self.logprob = -0.01

    def __call__(self, request: GenerationRequest) -> list[Token]:
        text = json.dumps(self.output)
        return [Token(text[i : i + 4], self.logprob) for i in range(0, len(text), 4)]


@pytest.fixture
def model() -> Model:
    return Model()


@pytest.fixture
def store(app_home: Path) -> Iterator[LineageStore]:
    with LineageStore(app_home / "deskpilot.db") as s:
        yield s


@pytest.fixture
def client(app_home: Path, model: Model, store: LineageStore) -> Iterator[TestClient]:
    settings = load_settings(home=app_home, https=False)
    with app_client(create_app(settings, backend=ScriptedBackend(model), lineage=store)) as c:
        yield c


def extract(http: TestClient, **body: object) -> list[tuple[str, dict]]:
    r = http.post("/v1/extract", json={"text": TEXT, **body})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    return parse_sse(r.text)  # type: ignore[return-value]


def result_of(events: list[tuple[str, dict]]) -> dict:
    return next(data for name, data in events if name == "result")


def test_extract_streams_meta_progress_result_done_and_records_validation(client: TestClient) -> None:
    events = extract(client, schema="invoice", client="outlook", sourceRef="AAMk-7")
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-2:] == ["result", "done"] and "token" not in names
    progress = [data for name, data in events if name == "progress"]
    assert progress[-1]["stage"] == "checking"
    named = {p["field"] for p in progress if p["stage"] == "generating"} - {None}
    assert named and named <= set(GOOD)  # which field the model is writing
    result = result_of(events)
    assert result["data"]["issueDate"] == "2025-02-03" and result["data"]["total"] == 102.0
    assert result["schema"] == "invoice@v1" and result["review"] is None and result["confidence"] > 0.9
    assert result["fields"]["total"]["crossCheck"] == "agrees"
    # the labelled total was the extractors' value, held to by the grammar; the vendor the model chose
    assert result["fields"]["total"]["source"] == "extractor" and "source" not in result["fields"]["vendor"]
    assert {r["rule"] for r in result["validation"]["rules"]} >= {"total_is_subtotal_plus_tax", "date_parses"}
    run = client.get(f"/v1/runs/{result['runId']}").json()
    assert run["task"] == "extract:invoice" and run["templateId"] == "extract_invoice@v2"
    assert run["status"] == "ok" and run["confidence"] == result["confidence"]
    assert run["output"]["data"] == result["data"] and json.loads(run["output"]["raw"]) == GOOD
    assert run["validation"]["valid"] and not run["validation"]["review"]["queued"]
    assert run["parameters"]["schema"] == "invoice@v1" and run["parameters"]["schema_hash"].startswith(
        "sha256:"
    )
    assert run["parameters"]["json_schema"] and run["parameters"]["logprobs"]
    assert run["client"] == "outlook" and run["sourceRef"] == "AAMk-7"


def test_a_low_confidence_result_reaches_the_review_queue(client: TestClient, model: Model) -> None:
    model.logprob = -2.0
    result = result_of(extract(client))
    assert result["confidence"] < 0.6 and result["review"] is not None
    assert any("below the review threshold" in reason for reason in result["review"]["reasons"])
    queue = client.get("/v1/reviews").json()["reviews"]
    assert [item["id"] for item in queue] == [result["review"]["id"]]
    item = queue[0]
    assert item["runId"] == result["runId"] and item["status"] == "pending" and item["data"] == result["data"]
    assert item["task"] == "extract:invoice" and item["templateId"] == "extract_invoice@v2"
    assert item["modelId"] == "fake-model" and item["fields"]["total"]["confidence"] < 0.6
    run = client.get(f"/v1/runs/{result['runId']}").json()
    assert run["validation"]["review"] == {"queued": True, "id": item["id"], "reasons": item["reasons"]}


def test_a_failed_rule_reaches_the_review_queue_however_sure_the_model_is(
    client: TestClient, model: Model
) -> None:
    model.output = {**GOOD, "total": 120.0}
    result = result_of(extract(client))
    assert result["review"] and any(
        r.startswith("rule failed: total_is_subtotal_plus_tax") for r in result["review"]["reasons"]
    )
    assert result["fields"]["total"]["failedRules"] == ["total_is_subtotal_plus_tax"]


def test_a_review_edit_is_chained_in_lineage_with_its_diff(
    client: TestClient, model: Model, store: LineageStore, app_home: Path
) -> None:
    model.output = {**GOOD, "total": 120.0, "dueDate": None}
    result = result_of(extract(client))
    review_id = result["review"]["id"]
    r = client.post(
        f"/v1/reviews/{review_id}",
        json={
            "decision": "edit",
            "reviewer": ANA,
            "fields": {"total": 102, "dueDate": "5 March 2025"},
            "note": "total misread",
        },
    )
    assert r.status_code == 200, r.text
    decision = r.json()["decision"]
    assert r.json()["status"] == "edited"
    assert (decision["reviewer"], decision["reviewerAddress"]) == ("Ana Silva", "ana@example.com")
    assert decision["changes"] == [
        {"path": "dueDate", "before": None, "after": "2025-03-05"},
        {"path": "total", "before": 120.0, "after": 102.0},
    ]
    assert decision["final"]["total"] == 102.0 and decision["final"]["dueDate"] == "2025-03-05"
    # In lineage: a chained decision linked to the run, and the chain verifies.
    report = store.verify()
    assert report.ok and report.reviews_checked == 1 and report.reviews_head_hash == decision["hash"]
    with closing(sqlite3.connect(app_home / "deskpilot.db")) as conn:
        row = conn.execute(
            "SELECT run_id, reviewer, reviewer_address, decision, changes, final ->> '$.total', task, "
            "template_id FROM reviews"
        ).fetchone()
    assert row[:4] == (result["runId"], "Ana Silva", "ana@example.com", "edit")
    assert json.loads(row[4])[1] == {"path": "total", "before": 120.0, "after": 102.0}
    assert row[5:] == (102.0, "extract:invoice", "extract_invoice@v2")
    assert client.get("/v1/reviews").json()["reviews"] == []  # no longer pending
    assert client.get("/v1/reviews", params={"status": "edited"}).json()["reviews"][0]["id"] == review_id


def test_a_changed_decision_in_the_database_is_detected(
    client: TestClient, model: Model, store: LineageStore, app_home: Path
) -> None:
    model.logprob = -2.0
    review_id = result_of(extract(client))["review"]["id"]
    client.post(f"/v1/reviews/{review_id}", json={"decision": "accept", "reviewer": ANA})
    with closing(sqlite3.connect(app_home / "deskpilot.db")) as conn:
        conn.execute("DROP TRIGGER reviews_append_only_update")  # what someone with the file could do
        conn.execute("UPDATE reviews SET reviewer = 'mallory'")
        conn.commit()
    report = store.verify()
    assert not report.ok and any("reviews seq 1" in p and "hash mismatch" in p for p in report.problems)


def test_the_override_rate_follows_the_decisions(client: TestClient, model: Model) -> None:
    model.logprob = -2.0
    ids = [result_of(extract(client))["review"]["id"] for _ in range(4)]

    def group() -> dict:
        groups = client.get("/v1/metrics/quality").json()["groups"]
        return next(g for g in groups if g["task"] == "extract:invoice")

    assert group() | {} == group()
    first = group()
    assert (first["runs"], first["queued"], first["reviewed"], first["overrideRate"]) == (4, 4, 0, None)
    assert first["templateId"] == "extract_invoice@v2" and first["modelId"] == "fake-model"
    client.post(f"/v1/reviews/{ids[0]}", json={"decision": "accept", "reviewer": ANA})
    assert (group()["reviewed"], group()["overrideRate"], group()["fieldOverrideRate"]) == (1, 0.0, 0.0)
    client.post(f"/v1/reviews/{ids[1]}", json={"decision": "edit", "reviewer": ANA, "fields": {"tax": 16.0}})
    after_edit = group()
    assert (after_edit["edited"], after_edit["overrideRate"]) == (1, 0.5)
    assert after_edit["fieldsChanged"] == 1 and after_edit["fieldsReviewed"] == 20
    client.post(f"/v1/reviews/{ids[2]}", json={"decision": "reject", "reviewer": BO})
    assert group()["overrideRate"] == pytest.approx(2 / 3, abs=1e-4)
    model.logprob = -0.01
    extract(client)  # a confident run: counted, not queued
    assert (group()["runs"], group()["queued"]) == (5, 4)


def test_classify_answers_json_and_unsure_labels_go_to_review(client: TestClient, model: Model) -> None:
    model.output = "newsletter"
    r = client.post(
        "/v1/classify",
        json={
            "email": {
                "from": "news@shop.example",
                "subject": "Deals",
                "body": "This week's deals. Unsubscribe here.",
            }
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == "newsletter" and body["confidence"] > 0.9 and body["review"] is None
    assert body["labels"] == ["invoice", "contract", "meeting_request", "action_needed", "fyi", "newsletter"]
    run = client.get(f"/v1/runs/{body['runId']}").json()
    assert run["task"] == "classify" and run["output"]["data"] == {"label": "newsletter"}
    assert run["parameters"]["labels"] == body["labels"] and run["confidence"] == body["confidence"]
    model.output, model.logprob = "fyi", -1.0
    unsure = client.post(
        "/v1/classify", json={"text": "Please see the attached file.", "labels": ["fyi", "urgent"]}
    ).json()
    # The model's "fyi" at 0.37 is blended with the labels' zero-shot scores (test_triage_api.py): unsure.
    assert unsure["modelLabel"] == "fyi" and unsure["review"]
    other = "urgent" if unsure["label"] == "fyi" else "fyi"
    edit = client.post(
        f"/v1/reviews/{unsure['review']['id']}",
        json={"decision": "edit", "reviewer": ANA, "fields": {"label": other}},
    )
    assert edit.json()["decision"]["changes"] == [
        {"path": "label", "before": unsure["label"], "after": other}
    ]
    bad = client.post(
        f"/v1/reviews/{unsure['review']['id']}",
        json={"decision": "edit", "reviewer": ANA, "fields": {"label": "spam"}},
    )
    assert bad.status_code == 409  # decided already, whatever the edit


def test_a_custom_schema_from_the_schemas_folder(client: TestClient, model: Model, app_home: Path) -> None:
    folder = app_home / "schemas"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ticket.json").write_text(
        json.dumps(
            {
                "title": "Ticket",
                "type": "object",
                "properties": {
                    "customer": {"type": "string", "maxLength": 60},
                    "priority": {"enum": ["low", "high"], "type": "string"},
                },
            }
        )
    )
    (folder / "bad.json").write_text(
        '{"type": "object", "properties": {"n": {"type": "number", "minimum": 1}}}'
    )
    listed = client.get("/v1/schemas").json()
    assert "ticket" in [s["name"] for s in listed["schemas"]] and "minimum" in listed["problems"]["bad.json"]
    published = client.get("/v1/schemas/ticket").json()["jsonSchema"]
    assert published["$defs"]["Ticket"]["properties"]["customer"]["anyOf"][0]["maxLength"] == 60
    model.output = {"customer": "Northwind", "priority": "high"}
    result = result_of(extract(client, schema="ticket"))
    assert result["data"] == {"customer": "Northwind", "priority": "high"} and result["schema"] == "ticket@v1"
    assert client.get(f"/v1/runs/{result['runId']}").json()["templateId"] == "extract_custom@v1"


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/v1/extract", {"text": "x", "schema": "nope"}, 400, "no schema 'nope'"),
        ("/v1/extract", {"text": "x", "schema": "Bad Name"}, 400, "schema"),
        ("/v1/extract", {"text": "   "}, 400, "`text` is empty"),
        ("/v1/extract", {"text": "x", "email": {"body": "y"}}, 400, "exactly one of"),
        ("/v1/extract", {"text": "x", "shema": "invoice"}, 400, "unknown field `shema`"),
        ("/v1/classify", {"text": "x", "labels": ["only"]}, 400, "length >= 2"),
        ("/v1/classify", {"text": "x", "labels": ["a", "a"]}, 400, "distinct"),
        ("/v1/classify", {"text": "x", "labels": ["Not OK", "b"]}, 400, "labels"),
    ],
)
def test_bad_extraction_requests_get_4xx(
    client: TestClient, path: str, body: dict, status: int, says: str
) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert says in r.json()["message"]


def test_bad_review_decisions_get_4xx(client: TestClient, model: Model) -> None:
    model.logprob = -2.0
    review_id = result_of(extract(client))["review"]["id"]
    url = f"/v1/reviews/{review_id}"
    cases = [
        ({"decision": "edit", "reviewer": ANA}, 400, "needs `fields`"),
        ({"decision": "accept", "reviewer": ANA, "fields": {"total": 1}}, 400, "go with an edit"),
        ({"decision": "edit", "reviewer": ANA, "fields": {"totl": 1}}, 400, "unknown field(s) ['totl']"),
        (
            {"decision": "edit", "reviewer": ANA, "fields": {"total": "lots"}},
            400,
            "does not fit the invoice",
        ),
        ({"decision": "edit", "reviewer": ANA, "fields": {"total": 102.0}}, 400, "changes nothing"),
        ({"decision": "maybe", "reviewer": ANA}, 400, "decision"),
        # A person: a name and an email address, nothing else.
        ({"decision": "accept", "reviewer": "ana"}, 400, "Expected `object`, got `str`"),
        ({"decision": "accept", "reviewer": {"name": "Ana"}}, 400, "required field `address`"),
        ({"decision": "accept", "reviewer": {**ANA, "name": "  "}}, 400, "reviewer.name"),
        ({"decision": "accept", "reviewer": {**ANA, "address": "ana"}}, 400, "reviewer.address"),
        ({"decision": "accept", "reviewer": {**ANA, "role": "boss"}}, 400, "unknown field `role`"),
        ({"decision": "accept"}, 400, "required field `reviewer`"),
    ]
    for body, status, says in cases:
        r = client.post(url, json=body)
        assert (r.status_code, says in r.json()["message"]) == (status, True), (body, r.text)
    assert client.get(url).json()["status"] == "pending"  # none of them decided anything
    assert client.post(url, json={"decision": "accept", "reviewer": ANA}).status_code == 200
    again = client.post(url, json={"decision": "reject", "reviewer": BO})
    assert again.status_code == 409 and "already decided" in again.json()["message"]
    assert client.post("/v1/reviews/nope", json={"decision": "accept", "reviewer": ANA}).status_code == 404
    assert client.get("/v1/reviews/nope").status_code == 404
    assert client.get("/v1/reviews", params={"status": "lost"}).status_code == 400
    assert client.get("/v1/schemas/nope").status_code == 404


@pytest.mark.unit
def test_review_decisions_from_before_stay_readable_and_verified(tmp_path: Path) -> None:
    """A database whose `reviews` has no `reviewer_address` yet (0.2): opening it adds the column, the
    decision recorded before keeps its hash and reads back with its name alone, and a new one has both."""
    db_path = tmp_path / "deskpilot.db"
    old = Migrations("deskpilot.lineage")
    for migration in (m001_runs, m002_open_runs, m003_reviews, m004_review_queue):
        old()(migration)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        old.apply(Database(conn))
        conn.execute("BEGIN IMMEDIATE")
        before = append_chained(
            conn,
            "reviews",
            {
                "id": "d-old",
                "review_id": "r-old",
                "run_id": "run-old",
                "decided_at": "2026-11-30T08:15:02.000000Z",
                "reviewer": "ana",
                "decision": "accept",
                "changes": "[]",
                "final": '{"x": 1}',
                "task": "extract:invoice",
                "template_id": "extract_invoice@v2",
                "model_id": "m",
            },
        )
        conn.execute("COMMIT")
    with LineageStore(db_path) as store:  # migrates: m006 adds the column
        reviews = ReviewQueue(store)
        item = reviews.enqueue(
            run_id="run-new",
            task="extract:invoice",
            template_id="extract_invoice@v2",
            model_id="m",
            reasons=["low confidence"],
            confidence=0.4,
            proposed={"x": 1},
            fields={},
            spec={},
        )
        reviews.decide(item.id, decision="reject", reviewer=Person(**BO), final=None)
        old_record, new_record = reviews.records()
        assert (old_record.reviewer, old_record.reviewer_address, old_record.hash) == (
            "ana",
            None,
            before["hash"],
        )
        assert (new_record.reviewer, new_record.reviewer_address) == ("Bo Chen", "bo@example.com")
        report = store.verify()
        assert report.ok and report.reviews_checked == 2, report.problems
