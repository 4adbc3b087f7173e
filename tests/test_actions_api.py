"""The actions, workflows and automations API in process: wire shapes, clear 4xx, nothing lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_client
from litestar.testing import TestClient

from deskpilot.inference import ScriptedBackend
from deskpilot.server.actions.outbox import Outbox, current_owner
from deskpilot.server.app import create_app
from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.lineage import LineageStore
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

HOOK = {"url": "http://127.0.0.1:9/hook", "payload": {"a": 1}}
# People, as the task pane sends them (the Office user's name and address).
ALICE = {"name": "Alice", "address": "alice@contoso.example"}
BOB = {"name": " Bob ", "address": "bob@contoso.example"}
ADMIN = {"name": "IT Admin", "address": "it-admin@contoso.example"}


@pytest.fixture
def client(app_home: Path) -> Iterator[TestClient]:
    settings = load_settings(webhook_allow=("http://127.0.0.1:9/",))  # HOOK's receiver
    with app_client(create_app(settings, backend=ScriptedBackend(["ok"]))) as c:
        yield c


def queued_messages(app_home: Path) -> int:
    queue = TaskQueue.sqlite(load_settings())
    try:
        return queue.pending()
    finally:
        queue.close()


def test_propose_approve_and_the_queue_message(client: TestClient, app_home: Path) -> None:
    r = client.post("/v1/actions", json={"kind": "webhook", "params": HOOK, "runId": "run-1"})
    assert r.status_code == 201
    action = r.json()["action"]
    assert (
        action["status"] == "pending_review"
        and action["runId"] == "run-1"
        and action["key"].startswith("dp-")
    )
    assert queued_messages(app_home) == 0  # nothing runs before a person approves
    assert (
        client.post("/v1/actions", json={"kind": "webhook", "params": HOOK, "runId": "run-1"}).json()[
            "created"
        ]
        is False
    )
    pending = client.get("/v1/actions", params={"status": "pending"}).json()
    assert [a["id"] for a in pending["actions"]] == [action["id"]] and pending["counts"] == {
        "pending_review": 1
    }
    r = client.post(f"/v1/actions/{action['id']}/approve", json={"reviewer": ALICE})
    assert (
        r.status_code == 200
        and r.json()["action"]["status"] == "queued"
        and r.json()["action"]["approval"] == "Alice"
    )
    assert queued_messages(app_home) == 1
    again = client.post(f"/v1/actions/{action['id']}/reject", json={"reviewer": BOB})
    assert again.status_code == 409 and "not waiting for approval" in again.json()["message"]
    history = client.get(f"/v1/actions/{action['id']}").json()["history"]
    assert [(h["event"], h["actor"], h["actorAddress"]) for h in history] == [
        ("proposed", "taskpane", None),
        ("approved", "Alice", "alice@contoso.example"),
    ]
    assert history[1]["runId"] == "run-1" and history[1]["hash"].startswith("sha256:")


def test_a_failed_action_is_retried_by_a_person(client: TestClient, app_home: Path) -> None:
    action = client.post("/v1/actions", json={"kind": "webhook", "params": HOOK}).json()["action"]
    assert client.post(f"/v1/actions/{action['id']}/retry", json={"reviewer": ALICE}).status_code == 409
    client.post(f"/v1/actions/{action['id']}/approve", json={"reviewer": ALICE})
    with LineageStore(load_settings().db_path) as lineage:  # the worker's side: its last attempt failed
        outbox = Outbox(lineage)
        assert outbox.claim(action["id"], current_owner()) is not None
        outbox.attempt_failed(action["id"], current_owner(), "TransientError: webhook answered 503", None)
    messages = queued_messages(app_home)
    assert (
        client.post(f"/v1/actions/{action['id']}/retry", json={}).status_code == 400
    )  # who retries is required
    r = client.post(f"/v1/actions/{action['id']}/retry", json={"reviewer": BOB, "note": "receiver is back"})
    assert r.status_code == 200, r.text
    assert r.json()["action"]["status"] == "queued" and r.json()["action"]["failures"] == 0
    assert queued_messages(app_home) == messages + 1
    again = client.post(f"/v1/actions/{action['id']}/retry", json={"reviewer": BOB})
    assert again.status_code == 409 and "queued, not failed" in again.json()["message"]
    history = client.get(f"/v1/actions/{action['id']}").json()["history"]
    assert [(h["event"], h["actor"]) for h in history][-2:] == [("failed", "worker"), ("retried", "Bob")]
    assert history[-1]["detail"]["previous_error"] == "TransientError: webhook answered 503"
    assert history[-1]["detail"]["note"] == "receiver is back"
    assert client.post("/v1/actions/nope/retry", json={"reviewer": ALICE}).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"kind": "fax", "params": {}}, 400, "kind"),
        ({"kind": "webhook", "params": {"url": "x"}}, 400, "payload"),
        ({"kind": "todo_task", "params": {"title": "x", "colour": "red"}}, 400, "colour"),
        ({"kind": "todo_task", "params": {"title": "x"}, "confidence": 2}, 400, "confidence"),
        ({"kind": "todo_task", "params": {"title": "x"}, "automation": "nope"}, 400, "nope"),
    ],
)
def test_bad_proposals_get_a_clear_400(client: TestClient, body: dict, status: int, words: str) -> None:
    r = client.post("/v1/actions", json=body)
    assert r.status_code == status, r.text
    assert words in r.text
    assert client.get("/v1/actions").json()["actions"] == []


def test_unknown_ids_are_404(client: TestClient) -> None:
    assert client.get("/v1/actions/nope").status_code == 404
    assert client.post("/v1/actions/nope/approve", json={"reviewer": ALICE}).status_code == 404
    assert client.get("/v1/workflows/nope").status_code == 404
    assert client.get("/v1/automations/nope").status_code == 404
    assert client.put("/v1/automations/nope", json={"enabled": False, "actor": ADMIN}).status_code == 404
    assert client.post("/v1/actions/x/approve", json={}).status_code == 400  # reviewer is required


def test_automations_update_at_runtime_and_refuse_bad_values(client: TestClient) -> None:
    names = [a["name"] for a in client.get("/v1/automations").json()["automations"]]
    assert names == ["invoice_intake", "meeting_followup", "taskpane"]
    r = client.put("/v1/automations/taskpane", json={"approval": {"fax": "never"}, "actor": ADMIN})
    assert r.status_code == 400 and "fax" in r.json()["message"]
    r = client.put("/v1/automations/taskpane", json={"approval": {"webhook": "sometimes"}, "actor": ADMIN})
    assert r.status_code == 400
    r = client.put("/v1/automations/taskpane", json={"threshold": 3, "actor": ADMIN})
    assert r.status_code == 400 and "threshold" in r.json()["message"]
    r = client.put(
        "/v1/automations/taskpane",
        json={"approval": {"webhook": "never"}, "dailyBudget": 5, "actor": ADMIN, "confirmLoosening": True},
    )
    assert r.status_code == 200
    automation = r.json()["automation"]
    assert automation["approval"]["webhook"] == "never" and automation["dailyBudget"] == 5
    assert automation["approval"]["calendar_event"] == "always"  # untouched kinds keep their mode
    assert (automation["updatedBy"], automation["updatedByAddress"]) == (
        "IT Admin",
        "it-admin@contoso.example",
    )
    queued = client.post("/v1/actions", json={"kind": "webhook", "params": HOOK}).json()["action"]
    assert queued["status"] == "queued" and queued["approval"] == "policy"


def test_workflow_requests_from_the_task_pane(client: TestClient, app_home: Path) -> None:
    r = client.post("/v1/workflows", json={"automation": "meeting_followup", "inputs": {"subject": "x"}})
    assert r.status_code == 400 and "inputs.text" in r.json()["message"]
    body = {"automation": "meeting_followup", "inputs": {"text": "Ann sends the deck"}, "requestId": "r1"}
    first = client.post("/v1/workflows", json=body)
    assert first.status_code == 202 and first.json()["created"] is True
    second = client.post("/v1/workflows", json=body)
    assert (
        second.json()["workflow"]["id"] == first.json()["workflow"]["id"]
        and second.json()["created"] is False
    )
    events = client.get("/v1/events").json()["events"]
    assert [e["type"] for e in events] == ["taskpane.request"]
    assert client.get("/v1/workflows").json()["workflows"][0]["status"] == "running"
    assert queued_messages(app_home) == 1  # advance, for the worker
    client.put("/v1/automations/meeting_followup", json={"enabled": False, "actor": ADMIN})
    r = client.post("/v1/workflows", json={**body, "requestId": "r2"})
    assert r.status_code == 409 and "disabled" in r.json()["message"]
    assert (
        client.post("/v1/workflows", json={"automation": "taskpane", "inputs": {"text": "x"}}).status_code
        == 400
    )
    assert client.post("/v1/events/replay", json={}).json() == {"events": 1, "started": 0}
