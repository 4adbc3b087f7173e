"""Workflows, actions and automations from the task pane, end to end: real headless Chromium, the real server
with the real embedded model, and, where actions must take effect, the queue's consumer (DESKPILOT_WORKER)
against the Graph stand-in on 127.0.0.1.

Approvals, review decisions and policy changes carry the person the pane knows: in Outlook the signed-in
user (office_double.js's userProfile), in Word the name and email entered in Settings. A change that
loosens approval applies only once the person confirms it in the pane.

Screenshots: automations-settings.png, workflow-progress.png, actions-view.png, confirm-loosening.png,
loosening-forbidden.png, identity-needed.png (test-artifacts/taskpane/).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ServerProcess
from graph_helpers import graph_env, graph_settings, sign_in, vault  # noqa: F401
from playwright.sync_api import Page, expect

from deskpilot.server.actions.outbox import Outbox, current_owner
from deskpilot.server.connectors.standin import StandIn, generate
from deskpilot.server.lineage import LineageStore

from .conftest import OUTLOOK_ITEM, Pane, PaneFactory
from .test_taskpane_e2e import INVOICE_ITEM, started

pytestmark = [pytest.mark.model, pytest.mark.e2e]

# The Outlook user (office_double.js's userProfile): the pane approves, reviews and changes policies as them.
REVIEWER, REVIEWER_ADDRESS = "Bob Lee", "bob@example.com"
# Who a Word user enters in Settings (Word cannot tell the pane).
WORD_USER, WORD_ADDRESS = "Megan Bowen", "megan@contoso.example"


def ews_id(rest_id: str) -> str:
    """The id as Office.js hands it to the pane (EWS form); the pane converts it back for Graph."""
    return rest_id.replace("-", "/").replace("_", "+")


def open_outlook(pane_factory: PaneFactory, server: ServerProcess, item: dict[str, Any]) -> Pane:
    pane = pane_factory(server).open("outlook", item=item)
    expect(pane.page.get_by_test_id("server-badge")).to_have_text("Ready")
    expect(pane.page.get_by_test_id("item")).to_contain_text(item["subject"])
    return pane


def automation(server: ServerProcess, name: str) -> dict[str, Any]:
    with server.client() as client:
        return dict(client.get(f"/v1/automations/{name}").json()["automation"])


def decisions(server: ServerProcess, action_id: str) -> list[tuple[str, str, str | None]]:
    """The action's history as (event, who, their address)."""
    with server.client() as client:
        history = client.get(f"/v1/actions/{action_id}").json()["history"]
    return [(h["event"], h["actor"], h["actorAddress"]) for h in history]


def automation_puts(page: Page) -> list[dict[str, Any]]:
    """Every PUT /v1/automations/{name} body the page sends, as it sends it."""
    bodies: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: (
            bodies.append(json.loads(r.post_data or "{}"))
            if r.method == "PUT" and "/v1/automations/" in r.url
            else None
        ),
    )
    return bodies


def workflow_posts(page: Page) -> list[dict[str, Any]]:
    """Every POST /v1/workflows body the page sends, as it sends it."""
    bodies: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: (
            bodies.append(json.loads(r.post_data or "{}"))
            if r.method == "POST" and r.url.endswith("/v1/workflows")
            else None
        ),
    )
    return bodies


def extract(pane: Pane, button: str) -> None:
    pane.page.get_by_role("button", name=button, exact=True).click()
    expect(pane.page.get_by_test_id("run")).to_have_attribute("data-phase", "done", timeout=180_000)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(generate(messages=3, files=0, events=0)) as graph:
        yield graph


@pytest.mark.timeout(900)  # two models (server and consumer) on two shared cores
@pytest.mark.usefixtures("vault")
def test_follow_ups_start_from_the_pane_wait_for_a_review_then_an_approval_in_actions(
    pane_factory: PaneFactory, server_factory: type[ServerProcess], standin: StandIn
) -> None:
    sign_in(graph_settings(standin))
    server = started(server_factory(env={**graph_env(standin), "DESKPILOT_WORKER": "true"}))
    message_id = sorted(standin.tenant.messages)[0]
    pane = open_outlook(pane_factory, server, {**OUTLOOK_ITEM, "itemId": ews_id(message_id)})
    page = pane.page

    # Settings: a person approves every To Do task the follow-ups make (the default asks only when unsure).
    page.get_by_role("tab", name="Settings").click()
    followup = page.get_by_role("group", name="Meeting follow-up")
    expect(followup.get_by_label("Reply draft")).to_have_value("never")
    followup.get_by_label("To Do task").select_option("always")
    expect(page.get_by_test_id("automations-notice")).to_have_text("Meeting follow-up saved.")
    changed = automation(server, "meeting_followup")
    assert changed["approval"]["todo_task"] == "always" and changed["approval"]["draft_reply"] == "never"
    assert (changed["updatedBy"], changed["updatedByAddress"]) == (REVIEWER, REVIEWER_ADDRESS)
    pane.shot("automations-settings")

    # Mail: action items, then the workflow on this message; a double click starts one workflow.
    page.get_by_role("tab", name="Mail").click()
    posts = workflow_posts(page)
    extract(pane, "Action items")
    page.get_by_role("button", name="Create follow-ups").dblclick()
    panel = page.get_by_test_id("workflow")
    expect(panel).to_have_attribute("data-workflow-id", re.compile(r"^\w+$"))  # the server answered
    expect(page.get_by_role("button", name="Create follow-ups")).to_have_count(0)
    with server.client() as client:
        workflows = client.get("/v1/workflows").json()["workflows"]
    assert len(workflows) == 1, workflows
    assert panel.get_attribute("data-workflow-id") == workflows[0]["id"]
    assert len({p["requestId"] for p in posts}) == 1 and posts[0]["automation"] == "meeting_followup", posts
    inputs = workflows[0]["inputs"]
    assert inputs["messageId"] == message_id  # Office's EWS id, converted to the Graph id
    assert inputs["sender"] == "carol@example.com" and inputs["subject"] == OUTLOOK_ITEM["subject"]
    assert "Subject: Q3 numbers for the board pack" in inputs["text"] and "churn analysis" in inputs["text"]

    # The consumer reads the message with its own model run, then waits for a person.
    status = page.get_by_test_id("workflow-status")
    expect(status).to_have_text("Waiting for a review", timeout=300_000)
    steps = page.get_by_test_id("workflow-step")
    expect(steps).to_have_count(3)
    expect(steps.nth(0)).to_have_attribute("data-state", "done")
    expect(steps.nth(1)).to_have_attribute("data-state", "waiting")
    expect(steps.nth(2)).to_have_attribute("data-state", "todo")
    pane.shot("workflow-progress")
    with server.client() as client:
        review_id = client.get(f"/v1/workflows/{workflows[0]['id']}").json()["workflow"]["wait"]["review"]

    # The link opens that review in the queue, brought forward; the person corrects the items.
    page.get_by_test_id("workflow-review-link").click()
    expect(page.get_by_role("tab", name="Review")).to_have_attribute("aria-selected", "true")
    card = page.locator('[data-testid="review-item"][aria-current="true"]')
    expect(card).to_have_attribute("data-review-id", review_id)
    card.get_by_role("button", name="Edit").click()
    task = "Send the Q3 sales figures and churn analysis to Carol"
    card.get_by_label("Action items").fill(
        json.dumps([{"task": task, "owner": "Bob", "dueDate": "2026-11-24"}])
    )
    card.get_by_role("button", name="Save").click()
    expect(page.locator(f'[data-review-id="{review_id}"]')).to_have_count(0)

    # Back on the message: the draft reply needs no one; the To Do task waits for approval.
    page.get_by_role("tab", name="Mail").click()
    expect(status).to_have_text("Waiting for approval of 1 action", timeout=120_000)
    expect(page.locator('[data-testid="workflow-action"][data-status="pending_review"]')).to_contain_text(
        task
    )
    expect(page.locator('[data-testid="workflow-action"]')).to_have_count(2)

    # Actions: approve it; the consumer creates the task and the workflow completes.
    panel.get_by_role("button", name="Open Actions").click()
    pending = page.get_by_test_id("pending-action")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text(task)
    expect(pending).to_contain_text("due 2026-11-24")
    expect(page.get_by_test_id("action-counts")).to_contain_text("1 needs approval")
    expect(page.get_by_test_id("approver")).to_have_text(f"You approve as {REVIEWER} ({REVIEWER_ADDRESS}).")
    pane.shot("actions-view")
    pending.get_by_role("button", name="Approve").click()
    expect(page.get_by_test_id("actions-notice")).to_contain_text("Approved")
    expect(pending).to_have_count(0)
    done = page.locator('[data-testid="recent-action"]').filter(has_text=task)
    expect(done).to_have_attribute("data-status", "executed", timeout=120_000)
    expect(done).to_contain_text(f"approved by {REVIEWER}")

    page.get_by_role("tab", name="Mail").click()
    expect(panel).to_have_attribute("data-status", "completed", timeout=120_000)
    expect(status).to_have_text("Completed")
    expect(page.locator('[data-testid="workflow-action"][data-status="executed"]')).to_have_count(2)
    pane.shot("workflow-completed")
    effects = standin.tenant.effects()
    assert [e["title"] for e in effects if e["kind"] == "task"] == [task]
    assert [e for e in effects if e["kind"] == "draft"], effects
    assert pane.errors == []


@pytest.mark.timeout(600)
def test_the_kill_switch_stops_a_start_from_the_pane_and_actions_are_approved_or_rejected(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    # No consumer: a started workflow stays at its first step, an approved action stays queued.
    server = started(server_factory())
    pane = open_outlook(pane_factory, server, INVOICE_ITEM)
    page = pane.page

    page.get_by_role("tab", name="Settings").click()
    intake = page.get_by_role("group", name="Invoice intake")
    intake.get_by_role("switch").click()
    expect(intake).to_have_attribute("data-enabled", "false")
    assert automation(server, "invoice_intake")["enabled"] is False

    page.get_by_role("tab", name="Mail").click()
    extract(pane, "Invoice fields")
    page.get_by_role("button", name="Send to invoice intake").click()
    expect(page.get_by_test_id("workflow-disabled")).to_contain_text("Invoice intake is switched off")
    page.get_by_role("button", name="Turn it on in Settings").click()
    intake = page.locator('[data-testid="automation"][data-name="invoice_intake"]')
    expect(intake).to_have_attribute("data-enabled", "false")
    intake.get_by_role("switch").click()
    expect(intake).to_have_attribute("data-enabled", "true")

    page.get_by_role("tab", name="Mail").click()
    page.get_by_role("button", name="Send to invoice intake").click()
    panel = page.get_by_test_id("workflow")
    expect(panel).to_have_attribute("data-status", "running")  # from the server's answer: it has the workflow
    expect(page.get_by_test_id("workflow-status")).to_have_text("Triage the message…")
    expect(page.get_by_test_id("workflow-step").first).to_have_attribute("data-state", "running")
    with server.client() as client:
        [workflow] = client.get("/v1/workflows").json()["workflows"]
    assert (
        workflow["automation"] == "invoice_intake" and workflow["inputs"]["sender"] == "billing@contoso.com"
    )

    # Two proposals a person must approve (calendar events always ask); one approved, one rejected.
    with server.client() as client:
        for subject in ("Invoice review with Contoso", "Call Contoso billing"):
            r = client.post(
                "/v1/actions",
                json={
                    "kind": "calendar_event",
                    "title": subject,
                    "params": {
                        "subject": subject,
                        "start": "2026-12-01T10:00:00",
                        "end": "2026-12-01T10:30:00",
                    },
                },
            )
            assert r.status_code == 201 and r.json()["action"]["status"] == "pending_review", r.text
    page.get_by_role("tab", name="Actions").click()
    pending = page.get_by_test_id("pending-action")
    expect(pending).to_have_count(2)
    expect(page.get_by_test_id("action-counts")).to_contain_text("2 needs approval")
    pending.filter(has_text="Call Contoso billing").get_by_role("button", name="Reject").click()
    expect(pending).to_have_count(1)
    pending.filter(has_text="Invoice review with Contoso").get_by_role("button", name="Approve").click()
    expect(pending).to_have_count(0)
    recent = page.get_by_test_id("recent-action")
    expect(recent.filter(has_text="Invoice review with Contoso")).to_have_attribute("data-status", "queued")
    expect(recent.filter(has_text="Call Contoso billing")).to_have_attribute("data-status", "rejected")
    expect(page.get_by_test_id("action-counts")).to_contain_text("1 queued")
    with server.client() as client:
        actions = {a["title"]: a for a in client.get("/v1/actions").json()["actions"]}
    assert actions["Invoice review with Contoso"]["status"] == "queued"
    assert actions["Invoice review with Contoso"]["approval"] == REVIEWER
    assert actions["Call Contoso billing"]["status"] == "rejected"
    # The history names the Outlook user who decided: name and address.
    for title, event in (("Invoice review with Contoso", "approved"), ("Call Contoso billing", "rejected")):
        assert decisions(server, actions[title]["id"])[-1] == (event, REVIEWER, REVIEWER_ADDRESS), title

    # The consumer's side, as it would be after the receiver refused every attempt: the action failed.
    # A person tries it again from the pane once the problem is fixed; it goes back to the queue.
    failed_id = actions["Invoice review with Contoso"]["id"]
    with LineageStore(server.home / "deskpilot.db") as lineage:
        outbox = Outbox(lineage)
        assert outbox.claim(failed_id, current_owner()) is not None
        outbox.attempt_failed(failed_id, current_owner(), "TransientError: Graph answered 503", None)
    card = recent.filter(has_text="Invoice review with Contoso")
    expect(card).to_have_attribute("data-status", "failed", timeout=10_000)  # the view refreshes by itself
    expect(card.get_by_test_id("action-reason")).to_contain_text("Graph answered 503")
    expect(recent.filter(has_text="Call Contoso billing").get_by_test_id("retry-action")).to_have_count(0)
    card.get_by_role("button", name="Try again").click()
    expect(card).to_have_attribute("data-status", "queued")
    expect(page.get_by_test_id("actions-notice")).to_contain_text(
        "Trying “Invoice review with Contoso” again"
    )
    expect(card.get_by_test_id("retry-action")).to_have_count(0)
    assert decisions(server, failed_id)[-2:] == [
        ("failed", "worker", None),
        ("retried", REVIEWER, REVIEWER_ADDRESS),
    ]
    assert pane.errors == []


def propose_event(server: ServerProcess, subject: str) -> dict[str, Any]:
    """A calendar event a person must approve (calendar events always ask), proposed by a client."""
    with server.client() as client:
        r = client.post(
            "/v1/actions",
            json={
                "kind": "calendar_event",
                "title": subject,
                "params": {"subject": subject, "start": "2026-12-01T10:00:00", "end": "2026-12-01T10:30:00"},
            },
        )
    assert r.status_code == 201 and r.json()["action"]["status"] == "pending_review", r.text
    return dict(r.json()["action"])


@pytest.mark.timeout(600)
def test_a_loosening_change_asks_first_and_applies_only_once_confirmed(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    server = started(server_factory())
    pane = open_outlook(pane_factory, server, INVOICE_ITEM)
    page = pane.page
    puts = automation_puts(page)
    page.get_by_role("tab", name="Settings").click()
    intake = page.get_by_role("group", name="Invoice intake")
    webhook = intake.get_by_label("Webhook")
    expect(webhook).to_have_value("always")
    dialog = page.get_by_test_id("confirm-loosening")

    # Always ask -> Don't ask: the server wants a confirmation; the pane shows what would loosen.
    webhook.select_option("never")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("loosened")).to_have_text("Webhook: from “Always ask” to “Don't ask”")
    expect(dialog).to_contain_text("Invoice intake")
    pane.shot("confirm-loosening")
    # Cancel: nothing changes, on the server or on screen.
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(webhook).to_have_value("always")
    expect(page.get_by_test_id("automations-notice")).to_have_count(0)
    before = automation(server, "invoice_intake")
    assert before["approval"]["webhook"] == "always" and before["updatedBy"] != REVIEWER, before

    # Again, and confirm: the same change goes again with the confirmation, and applies.
    webhook.select_option("never")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Loosen approval").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_test_id("automations-notice")).to_have_text("Invoice intake saved.")
    expect(webhook).to_have_value("never")
    after = automation(server, "invoice_intake")
    assert after["approval"] == {**before["approval"], "webhook": "never"}, after
    assert (after["updatedBy"], after["updatedByAddress"]) == (REVIEWER, REVIEWER_ADDRESS)

    # Tightening never asks.
    webhook.select_option("always")
    expect(page.get_by_test_id("automations-notice")).to_have_text("Invoice intake saved.")
    expect(dialog).to_have_count(0)
    assert automation(server, "invoice_intake")["approval"]["webhook"] == "always"

    person = {"name": REVIEWER, "address": REVIEWER_ADDRESS}
    loosen = {"approval": {**before["approval"], "webhook": "never"}, "actor": person}
    assert puts == [
        loosen,  # 409: asked, cancelled
        loosen,  # 409: asked, confirmed
        {**loosen, "confirmLoosening": True},
        {"approval": before["approval"], "actor": person},
    ], puts
    assert pane.errors == []


@pytest.mark.timeout(600)
def test_where_it_forbids_loosening_the_pane_says_so_and_changes_nothing(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    server = started(server_factory(env={"DESKPILOT_ALLOW_LOOSENING_APPROVAL": "false"}))
    pane = open_outlook(pane_factory, server, INVOICE_ITEM)
    page = pane.page
    page.get_by_role("tab", name="Settings").click()
    intake = page.get_by_role("group", name="Invoice intake")
    intake.get_by_label("Webhook").select_option("never")
    problem = intake.get_by_test_id("problem")
    expect(problem).to_have_attribute("data-code", "loosening_forbidden")
    expect(problem).to_contain_text("Your IT department does not allow loosening approvals")
    expect(problem).to_contain_text("webhook: always -> never")  # the server's message says what
    expect(page.get_by_test_id("confirm-loosening")).to_have_count(0)
    expect(intake.get_by_label("Webhook")).to_have_value("always")
    pane.shot("loosening-forbidden")
    assert automation(server, "invoice_intake")["approval"]["webhook"] == "always"
    # Tightening is still allowed.
    intake.get_by_label("To Do task").select_option("always")
    expect(page.get_by_test_id("automations-notice")).to_have_text("Invoice intake saved.")
    assert automation(server, "invoice_intake")["approval"]["todo_task"] == "always"
    assert pane.errors == []


@pytest.mark.timeout(600)
def test_in_word_the_pane_asks_who_you_are_before_anyone_approves(
    pane_factory: PaneFactory, server_factory: type[ServerProcess]
) -> None:
    server = started(server_factory())
    action = propose_event(server, "Contract review with Fabrikam")
    pane = pane_factory(server).open("word", document={"body": "Supply agreement", "selection": ""})
    page = pane.page
    expect(page.get_by_test_id("server-badge")).to_have_text("Ready")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(f"{r.method} {r.url}"))

    # Word cannot say who the user is and nothing was entered: approving is off, and says where to go.
    page.get_by_role("tab", name="Actions").click()
    pending = page.get_by_test_id("pending-action")
    expect(pending).to_have_count(1)
    notice = page.get_by_test_id("identity-needed")
    expect(notice).to_contain_text("Word doesn't tell Deskpilot who you are")
    expect(pending.get_by_role("button", name="Approve")).to_be_disabled()
    expect(pending.get_by_role("button", name="Reject")).to_be_disabled()
    pane.shot("identity-needed")

    # Settings: the automations cannot be changed either, until a name and an email are entered.
    notice.get_by_role("button", name="Open Settings").click()
    name = page.get_by_role("textbox", name="Your name")
    expect(name).to_be_focused()
    expect(page.get_by_test_id("automations").get_by_test_id("identity-needed")).to_be_visible()
    expect(page.get_by_role("group", name="Invoice intake").get_by_label("Webhook")).to_be_disabled()
    name.fill(WORD_USER)
    email = page.get_by_role("textbox", name="Your email")
    email.fill("megan")
    expect(page.get_by_text("Enter an email address, like name@example.com.")).to_be_visible()
    expect(page.get_by_role("group", name="Invoice intake").get_by_label("Webhook")).to_be_disabled()
    email.fill(WORD_ADDRESS)
    expect(page.get_by_test_id("identity")).to_have_text(
        f"Deskpilot records you as {WORD_USER} ({WORD_ADDRESS})."
    )
    expect(page.get_by_role("group", name="Invoice intake").get_by_label("Webhook")).to_be_enabled()
    # Nothing that needs a person was sent while the pane did not know who decides.
    decided = ("/v1/actions/", "/v1/automations/")
    assert [r for r in sent if r.startswith(("PUT", "POST")) and any(p in r for p in decided)] == []

    # Now approving names that person, and the action's history records both.
    page.get_by_role("tab", name="Actions").click()
    expect(page.get_by_test_id("approver")).to_have_text(f"You approve as {WORD_USER} ({WORD_ADDRESS}).")
    pending.get_by_role("button", name="Approve").click()
    expect(pending).to_have_count(0)
    assert decisions(server, action["id"])[-1] == ("approved", WORD_USER, WORD_ADDRESS)
    # Kept for the next time the pane opens on this computer.
    stored = json.loads(page.evaluate("localStorage.getItem('deskpilot.prefs.v1')"))
    assert (stored["name"], stored["address"]) == (WORD_USER, WORD_ADDRESS)
    assert pane.errors == []
