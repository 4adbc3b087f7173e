"""The shipped workflows end to end: the real model in the real consumer, the Graph stand-in and a webhook
receiver on 127.0.0.1, started from the HTTP API the task pane uses."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ServerProcess
from graph_helpers import graph_env, graph_settings, sign_in, vault  # noqa: F401
from webhook_receiver import WebhookReceiver

from deskpilot.server.actions.secrets import WebhookSecrets
from deskpilot.server.connectors.standin import StandIn, generate
from deskpilot.server.lineage import LineageStore

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("vault")]
ADMIN = {"name": "IT Admin", "address": "it-admin@contoso.example"}  # a person, as the pane sends one
# The reviewers who decide the workflows' review steps.
MEGAN = {"name": "Megan Bowen", "address": "megan@contoso.example"}
FIN_OPS = {"name": "Finance Operations", "address": "fin-ops@contoso.example"}

INVOICE = """From: billing@fabrikam.example
Subject: Invoice INV-2231

Fabrikam Office Supplies Ltd
12 Harbour Road, Leeds LS1 4AB

Invoice number: INV-2231
Invoice date: 2026-11-02
Due date: 2026-12-02

Paper A4, 10 boxes        45.00
Toner cartridges x2       60.00
Subtotal                 105.00
VAT 20%                   21.00
Total due (GBP)          126.00
"""

NOTES = """Hi team, thanks for today's planning call. Follow-ups:
- Ann will send the revised budget to finance by Friday.
- Lee will book the room for the December offsite.
- I will draft the customer letter next week.
Best, Megan"""


def wait_for(
    client: httpx.Client, workflow_id: str, statuses: set[str], timeout: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workflow: dict[str, Any] = client.get(f"/v1/workflows/{workflow_id}").json()["workflow"]
        if workflow["status"] in statuses:
            return workflow
        time.sleep(0.2)
    raise TimeoutError(f"workflow {workflow_id} is {workflow['status']} at {workflow['stepName']}")


@pytest.fixture
def standin() -> Any:
    with StandIn(generate(messages=10, files=0, events=0)) as graph:
        yield graph


def test_meeting_follow_up_waits_for_a_person_then_creates_tasks_and_a_draft(
    standin: StandIn, app_home: Path
) -> None:
    sign_in(graph_settings(standin))
    server = ServerProcess(app_home, env={**graph_env(standin), "DESKPILOT_WORKER": "true"})
    try:
        server.wait_healthy(30)
        message_id = sorted(standin.tenant.messages)[0]
        with server.client() as client:
            r = client.put(
                "/v1/automations/meeting_followup",
                json={
                    "approval": {"todo_task": "never", "draft_reply": "never"},
                    "actor": ADMIN,
                    "confirmLoosening": True,
                },
            )
            assert r.status_code == 200
            r = client.post(
                "/v1/workflows",
                json={
                    "automation": "meeting_followup",
                    "requestId": "req-1",
                    "inputs": {"text": NOTES, "messageId": message_id, "subject": "Planning call"},
                },
            )
            assert r.status_code == 202, r.text
            workflow = r.json()["workflow"]
            again = client.post(
                "/v1/workflows",
                json={"automation": "meeting_followup", "requestId": "req-1", "inputs": {"text": NOTES}},
            ).json()
            assert again["workflow"]["id"] == workflow["id"] and again["created"] is False
            waiting = wait_for(client, workflow["id"], {"waiting", "failed", "compensated", "completed"})
            assert waiting["status"] == "waiting" and waiting["stepName"] == "review", waiting
            review = client.get(f"/v1/reviews/{waiting['wait']['review']}").json()
            assert standin.tenant.effects() == []  # nothing happens before the person decides
            items = [
                {"task": "Send the revised budget to finance", "owner": "Ann", "dueDate": None},
                {"task": "Book the room for the December offsite", "owner": "Lee", "dueDate": None},
            ]
            r = client.post(
                f"/v1/reviews/{review['id']}",
                json={"decision": "edit", "reviewer": MEGAN, "fields": {"actionItems": items}},
            )
            assert r.status_code == 200, r.text
            done = wait_for(client, workflow["id"], {"completed", "failed", "compensated"})
            assert done["status"] == "completed", done
            kinds = sorted(a["kind"] for a in done["actions"])
            assert kinds == ["draft_reply", "todo_task", "todo_task"]
            assert {a["status"] for a in done["actions"]} == {"executed"}
            history = client.get(f"/v1/workflows/{workflow['id']}").json()["history"]
        effects = standin.tenant.effects()
        titles = sorted(e.get("title", "") for e in effects if e["kind"] == "task")
        assert titles == sorted(i["task"] for i in items)
        [draft] = [e for e in effects if e["kind"] == "draft"]
        body = standin.tenant.messages[draft["id"]].body
        assert "Book the room" in body and "Ann" in body
        events = [h["event"] for h in history]
        assert (
            events[0] == "workflow.started"
            and "step.waiting" in events
            and events[-1] == "workflow.completed"
        )
        extract_run = done["outputs"]["extract"]["runId"]
        assert any(h["runId"] == extract_run for h in history if h["event"] == "step.completed")
        with LineageStore(app_home / "deskpilot.db") as lineage:
            assert lineage.get_run(extract_run).client == "workflow"
            assert lineage.verify().ok
    finally:
        server.stop(signal.SIGINT)


def test_invoice_intake_compensates_the_approver_task_when_the_finance_webhook_fails_for_good(
    standin: StandIn, app_home: Path
) -> None:
    sign_in(graph_settings(standin))
    WebhookSecrets().set("finance", "s3cret")
    with WebhookReceiver(secret=b"s3cret") as hook:
        hook.fail_always("/hooks/finance", 400)
        allow = {"DESKPILOT_WEBHOOK_ALLOW": hook.url.rsplit("/", 1)[0] + "/"}  # the receiver, by address
        server = ServerProcess(app_home, env={**graph_env(standin), "DESKPILOT_WORKER": "true", **allow})
        try:
            server.wait_healthy(30)
            with server.client() as client:
                r = client.put(
                    "/v1/automations/invoice_intake",
                    json={
                        "approval": {"todo_task": "never", "webhook": "never"},
                        "settings": {
                            "financeWebhook": hook.url + "/finance",
                            "financeWebhookSecret": "finance",
                        },
                        "actor": ADMIN,
                        "confirmLoosening": True,
                    },
                )
                assert r.status_code == 200, r.text
                r = client.post(
                    "/v1/workflows",
                    json={
                        "automation": "invoice_intake",
                        "inputs": {"text": INVOICE, "subject": "Invoice INV-2231"},
                    },
                )
                workflow = r.json()["workflow"]
                state = wait_for(client, workflow["id"], {"waiting", "completed", "compensated", "failed"})
                if state["status"] == "waiting":  # the model was unsure: a person accepts it
                    assert state["wait"]["review"]
                    r = client.post(
                        f"/v1/reviews/{state['wait']['review']}",
                        json={"decision": "accept", "reviewer": FIN_OPS},
                    )
                    assert r.status_code == 200, r.text
                done = wait_for(client, workflow["id"], {"completed", "compensated", "failed"})
                assert done["status"] == "compensated", done
                by_kind = {a["kind"]: a for a in done["actions"]}
                assert by_kind["todo_task"]["status"] == "compensated"
                assert by_kind["webhook"]["status"] == "failed" and "400" in by_kind["webhook"]["error"]
                history = [
                    h["event"] for h in client.get(f"/v1/workflows/{workflow['id']}").json()["history"]
                ]
            [task] = [e for e in standin.tenant.effects(include_gone=True) if e["kind"] == "task"]
            assert task["gone"] and task["id"] == by_kind["todo_task"]["effect"]["ref"]
            assert by_kind["todo_task"]["params"]["title"].startswith("Approve invoice")
            assert hook.effects() == []
            assert "workflow.failed" in history and history[-1] == "workflow.compensated"
        finally:
            server.stop(signal.SIGINT)
