"""New mail from a real Graph sync (stand-in on 127.0.0.1) becomes trigger events that start workflows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import RecordingQueue
from graph_helpers import graph_settings, sign_in, vault  # noqa: F401

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.server.actions.outbox import Outbox
from deskpilot.server.actions.policy import AutomationUpdate, MailRule
from deskpilot.server.connectors.graph import GraphClient
from deskpilot.server.connectors.standin import StandIn, generate
from deskpilot.server.connectors.state import SyncState
from deskpilot.server.connectors.sync import GraphSync, SyncSummary
from deskpilot.server.lineage import LineageStore
from deskpilot.server.workflows.services import WorkflowServices
from deskpilot.server.workflows.triggers import MailTrigger

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("vault")]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[DocumentIndex]:
    with DocumentIndex(tmp_path / "home" / "index", embedder=HashEmbedder()) as ix:
        yield ix


def test_new_mail_matching_a_rule_starts_its_workflow_once(index: DocumentIndex) -> None:
    with StandIn(generate(messages=30, files=0, events=0)) as standin:
        settings = graph_settings(standin)
        auth = sign_in(settings)
        lineage = LineageStore(settings.db_path)
        queue = RecordingQueue()
        trigger = MailTrigger(WorkflowServices.create(settings, lineage, queue).events)  # type: ignore[arg-type]
        Outbox(lineage).update_automation(
            "invoice_intake",
            AutomationUpdate(rule=MailRule(folder="inbox", sender="@fabrikam.example", label="invoice")),
            "admin",
        )

        def sync() -> SyncSummary:
            client, state = GraphClient(auth, settings), SyncState(settings.sync_db_path)
            try:
                return GraphSync(client, index, state, settings, on_new_mail=trigger).run()
            finally:
                client.close()
                state.close()

        try:
            first = sync()
            assert first.indexed > 0 and first.new_mail == 0  # a first sync is history, not new mail
            t = standin.tenant
            inbox, archive = t.folder("Inbox"), t.folder("Archive")
            invoice = t.add_message(
                inbox.id,
                "Invoice 2231",
                "Please pay 120 EUR by Dec 1.",
                sender=("Billing", "billing@fabrikam.example"),
            )
            t.add_message(inbox.id, "Lunch?", "Tacos", sender=("Lee Gu", "lee.gu@contoso.example"))
            t.add_message(archive.id, "Old invoice", "x", sender=("Billing", "billing@fabrikam.example"))
            second = sync()
            assert second.new_mail == 3
            events = trigger.events.list()
            assert [e.type for e in events] == ["mail.received"] * 3
            workflows = trigger.events.engine.list()
            assert len(workflows) == 1
            [workflow] = workflows
            assert workflow.inputs["messageId"] == invoice.id and workflow.inputs["source"] == "mail_rule"
            assert workflow.inputs["expectLabel"] == "invoice" and "120 EUR" in workflow.inputs["text"]
            assert [m[0] for m in queue.messages] == ["advance_workflow"]
            # The same page applied again (a crash before its link was saved) is the same events.
            trigger([{**e.payload} for e in events])
            assert len(trigger.events.list()) == 3 and len(trigger.events.engine.list()) == 1
            assert sync().new_mail == 0
        finally:
            lineage.close()
