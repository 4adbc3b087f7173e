"""Retention, erasure and legal hold on real files: the lineage database, the document index (hash
embedder) and the sync state, with the clock moved by the test.

What must hold: content past its retention period goes and nothing else does; `verify()` passes after a
purge and after an erasure; each is a chained event; a legal hold blocks both; and the erased address is no
longer anywhere in the bytes of the files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from test_lineage import make_end, make_start

from deskpilot.indexes import DocumentIndex
from deskpilot.indexes._types import DocumentInput
from deskpilot.indexes.embedding import HashEmbedder
from deskpilot.indexes.mentions import mentions
from deskpilot.server.connectors.state import SyncState
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.extraction.triage_memory import TriageMemory
from deskpilot.server.lineage import LineageStore, Run
from deskpilot.server.ops.retention import LegalHold, Retention, subject_digest
from deskpilot.server.settings import Settings, load_settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
ANN = "ann.lee@contoso.com"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class World:
    """One app data folder: lineage, review list, triage examples, index and sync state, on one clock."""

    def __init__(self, home: Path, **policy: Any) -> None:
        self.clock = Clock()
        self.settings: Settings = load_settings(home=home, https=False, retain_inputs=True, **policy)
        self.lineage = LineageStore(self.settings.db_path, clock=self.clock)
        self.reviews = ReviewQueue(self.lineage)
        self.triage = TriageMemory(self.lineage, HashEmbedder(), retain_text=True)
        self.index = DocumentIndex(home / "index", embedder=HashEmbedder())
        SyncState(self.settings.sync_db_path).close()
        self.retention = Retention(self.lineage, self.settings, index=lambda: self.index)

    def run(self, text: str, output: Any = "A summary.", task: str = "summarize") -> Run:
        run_id = self.lineage.open_run(make_start(task=task, input={"text": text}))
        return self.lineage.close_run(run_id, make_end(output=output))

    def reviewed(self, text: str, vendor: str) -> Run:
        run = self.run(text, output={"vendor": vendor}, task="extract")
        item = self.reviews.enqueue(
            run_id=run.id,
            task="extract",
            template_id="t",
            model_id="m",
            reasons=["low confidence"],
            confidence=0.4,
            proposed={"vendor": vendor},
            fields={},
            spec={},
            source_text=text,
        )
        self.reviews.decide(item.id, decision="edit", reviewer="Bo", final={"vendor": vendor + " Ltd"})
        return run

    def quarantine(self, graph_id: str, payload: str) -> None:
        state = SyncState(self.settings.sync_db_path)
        try:
            state.quarantine("mail", "message", graph_id, payload.encode(), "bad date")
        finally:
            state.close()

    def close(self) -> None:
        self.index.close()
        self.lineage.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(
        tmp_path / "home",
        retention_inputs_days=30,
        retention_outputs_days=90,
        retention_examples_days=30,
        retention_synced_days=365,
    )
    yield w
    w.close()


def mail(source: str, text: str, date: datetime, sender: str = "bo@fabrikam.com") -> DocumentInput:
    return DocumentInput(
        source=source, text=text, title="Mail", date=date, kind="email", metadata={"sender": sender}
    )


def test_purge_removes_what_is_past_its_period_and_keeps_the_rest(world: World) -> None:
    old = world.run("Invoice 1 from Ann, please pay by Friday")
    old_review = world.reviewed("INVOICE Contoso 42", "Contoso")
    world.index.add_documents(
        [
            mail("graph:message:old", "The 2024 budget", T0 - timedelta(days=400)),
            mail("graph:message:new", "The 2026 budget", T0 - timedelta(days=10)),
        ]
    )
    world.index.add_documents(
        [DocumentInput(source="/docs/plan.txt", text="A local file", date=T0 - timedelta(days=999))]
    )
    world.clock.now = T0 + timedelta(days=40)  # inputs (30 d) are due; outputs (90 d) are not yet
    recent = world.run("A newer email")

    report = world.retention.purge()

    assert (report.runs_inputs, report.runs_outputs, report.reviews) == (2, 0, 0)
    assert report.documents == 1  # the synced mail older than 365 days; local files are not "synced"
    after = world.lineage.get_run(old.id)
    assert (
        after is not None
        and after.input is None
        and after.output == "A summary."
        and after.purged == ["input"]
    )
    kept = world.lineage.get_run(recent.id)
    assert kept is not None and kept.input == {"text": "A newer email"}
    assert sorted(
        s for s in ["graph:message:old", "graph:message:new", "/docs/plan.txt"] if world.index.document(s)
    ) == [
        "/docs/plan.txt",
        "graph:message:new",
    ]
    assert world.lineage.verify().ok
    [event] = world.lineage.events(kinds=["retention.purge"])
    assert event["actor"] == "retention policy" and event["details"]["counts"]["runs_inputs"] == 2
    assert event["hash"] == report.event

    world.clock.now = T0 + timedelta(days=100)  # now the outputs and the review decision are due
    report = world.retention.purge()  # and the input of the run made at day 40, 60 days old now
    assert (report.runs_inputs, report.runs_outputs, report.reviews) == (1, 2, 1)
    record = world.reviews.records(old_review.id)[0]
    assert record.decision == "edit" and record.changes == [] and record.final is None
    quality = {row.task: row for row in world.reviews.quality()}
    assert quality["extract"].edited == 1  # the decision still counts after its content went
    assert world.lineage.verify().ok


def test_examples_age_out(world: World) -> None:
    run = world.run("Weekly newsletter", task="classify")
    with world.lineage.transaction() as conn:
        conn.execute(
            "INSERT INTO triage_examples (id, run_id, review_id, created_at, label, text, digest, embedder, "
            "vector) VALUES ('e1', ?, 'q1', ?, 'newsletter', 'Weekly newsletter', 'd', 'hash', x'00')",
            [run.id, "2026-01-01T09:00:00.000000Z"],
        )
    world.clock.now = T0 + timedelta(days=20)
    assert world.retention.purge().examples == 0
    world.clock.now = T0 + timedelta(days=31)
    assert world.retention.purge().examples == 1
    with world.lineage.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM triage_examples").fetchone() == (0,)


def test_the_worker_purges_on_schedule_and_not_more_often(world: World) -> None:
    world.run("Old input")
    world.clock.now = T0 + timedelta(days=31)
    first = world.retention.purge_if_due()
    assert first is not None and first.runs_inputs == 1
    world.run("Another input")
    world.clock.now += timedelta(minutes=30)  # within retention_check_seconds (1 h): not due
    assert world.retention.purge_if_due() is None
    world.clock.now += timedelta(hours=1)
    assert world.retention.purge_if_due() is not None
    assert len(world.lineage.events(kinds=["retention.purge"])) == 2


def test_no_policy_means_nothing_is_purged(tmp_path: Path) -> None:
    w = World(tmp_path / "home")
    try:
        w.run("Kept for ever")
        w.clock.now = T0 + timedelta(days=3650)
        assert w.retention.purge_if_due() is None
        report = w.retention.purge()
        assert report.total() == 0 and report.cutoffs == {}
    finally:
        w.close()


def test_a_dry_run_counts_and_changes_nothing(world: World) -> None:
    run = world.run(f"Please call {ANN}")
    world.clock.now = T0 + timedelta(days=31)
    assert world.retention.purge(dry_run=True).runs_inputs == 1
    assert world.retention.erase(ANN, actor="dpo", dry_run=True).runs == 1
    kept = world.lineage.get_run(run.id)
    assert kept is not None and kept.input == {"text": f"Please call {ANN}"}
    assert world.lineage.events() == []


def test_erase_removes_a_subject_everywhere_and_verify_still_passes(world: World, tmp_path: Path) -> None:
    about_ann = world.run(f"From: {ANN.upper()}\nCan we meet on Tuesday?")
    answer_to_ann = world.run("Reply to the meeting", output=f"Dear Ann ({ANN}), Tuesday works.")
    reviewed = world.reviewed(f"INVOICE\nBill to {ANN}", "Contoso")
    other = world.run("From: bo@fabrikam.com\nLunch?")
    namesakes = world.run(f"Cc: jo{ANN}, {ANN}.au and {ANN.replace('@', '2@')}")
    world.index.add_documents(
        [
            mail("graph:message:1", "Agenda for Tuesday", T0, sender=ANN),
            mail("graph:message:2", f"Forwarding {ANN}'s note", T0),
            mail("graph:message:3", "Nothing about her", T0),
            mail("graph:message:4", "For Joann", T0, sender="jo" + ANN),
        ]
    )
    world.quarantine("AAMk1", f'{{"from": "{ANN}", "receivedDateTime": "yesterday"}}')
    world.quarantine("AAMk2", '{"from": "bo@fabrikam.com"}')

    dry = world.retention.erase(ANN, actor="dpo@contoso.com", dry_run=True)
    report = world.retention.erase(f"  {ANN.title()} ", actor="dpo@contoso.com")
    assert msgspec.structs.replace(dry, dry_run=False) == msgspec.structs.replace(report, event=None)

    assert (report.runs, report.reviews, report.review_items, report.documents, report.quarantined) == (
        3,
        1,
        1,
        2,
        1,
    )
    assert report.subject_digest == subject_digest(ANN)
    for run in (about_ann, answer_to_ann, reviewed):
        gone = world.lineage.get_run(run.id)
        assert gone is not None and gone.input is None and gone.output is None
    for run in (other, namesakes):  # another person, and addresses that only contain hers
        untouched = world.lineage.get_run(run.id)
        assert untouched is not None and untouched.purged == [] and untouched.input == run.input
    assert world.index.document("graph:message:3") is not None
    assert world.index.document("graph:message:4") is not None
    assert world.index.document("graph:message:1") is None and world.index.document("graph:message:2") is None
    assert world.lineage.verify().ok
    [event] = world.lineage.events(kinds=["audit.erase"])
    assert event["actor"] == "dpo@contoso.com" and event["details"]["subject"] == report.subject_digest
    assert event["details"]["counts"]["quarantined"] == 1 and event["details"]["counts"]["documents"] == 2
    assert ANN not in str(event["details"])

    # Gone from the bytes, not only from the rows: secure_delete, and the logs were checkpointed.
    world.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert not mentions(path.read_bytes().decode("latin-1"), ANN), path  # joann.lee@... stays
    world.lineage = LineageStore(world.settings.db_path)
    world.index = DocumentIndex(tmp_path / "home" / "index", embedder=HashEmbedder())


def test_erase_refuses_what_is_not_an_address(world: World) -> None:
    for bad in ("", "ann", "ann @contoso.com", "@"):
        with pytest.raises(ValueError, match="not an email address"):
            world.retention.erase(bad, actor="dpo")


def test_a_legal_hold_blocks_purge_and_erase_until_released(world: World) -> None:
    run = world.run(f"Mail from {ANN}")
    world.clock.now = T0 + timedelta(days=31)
    with pytest.raises(ValueError, match="reason"):
        world.retention.set_hold("  ", actor="legal")
    hold = world.retention.set_hold("Matter 2026-14: Contoso v. Fabrikam", actor="legal@contoso.com")
    assert world.retention.hold() == hold
    with pytest.raises(LegalHold, match="Matter 2026-14"):
        world.retention.purge()
    with pytest.raises(LegalHold, match="legal hold is in place"):
        world.retention.erase(ANN, actor="dpo")
    assert world.retention.purge_if_due() is None  # the worker skips quietly
    kept = world.lineage.get_run(run.id)
    assert kept is not None and kept.input is not None

    assert world.retention.release_hold("Matter closed", actor="legal@contoso.com")
    assert not world.retention.release_hold("again", actor="legal@contoso.com")
    assert world.retention.hold() is None
    assert world.retention.purge().runs_inputs == 1
    kinds = [event["kind"] for event in world.lineage.events()]
    assert kinds == ["retention.purge", "hold.released", "hold.set"]
    assert world.lineage.verify().ok


def test_tampering_with_a_purge_entry_is_caught(world: World) -> None:
    world.run("Old input")
    world.clock.now = T0 + timedelta(days=31)
    world.retention.purge()
    with closing(sqlite3.connect(world.settings.db_path)) as conn, conn:
        conn.execute("DROP TRIGGER audit_events_append_only_delete")
        conn.execute("DELETE FROM audit_events WHERE kind = 'retention.purge'")
    problems = world.lineage.verify().problems
    assert any("purged without a chained purge entry" in p for p in problems), problems
    assert any("audit_events" in p and "deleted" in p for p in problems), problems


def test_the_worker_sweep_purges_what_is_due(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakes import RecordingQueue, ScriptedAI, fake_adapters

    from deskpilot.server.worker import WorkerRuntime

    home = tmp_path / "home"
    with LineageStore(home / "deskpilot.db") as lineage:
        run = lineage.close_run(lineage.open_run(make_start(input={"text": "Old mail"})), make_end())
    settings = load_settings(home=home, https=False, retention_inputs_days=0)
    runtime = WorkerRuntime(
        settings,
        adapters=fake_adapters(),  # type: ignore[arg-type]
        ai=ScriptedAI(),  # type: ignore[arg-type]
        queue=RecordingQueue(),
    )
    try:
        report = runtime.purge_due()
        assert report is not None and report.runs_inputs == 1
        assert runtime.purge_due() is None  # the next is due in retention_check_seconds
        purged = runtime.lineage.get_run(run.id)
        assert purged is not None and purged.purged == ["input"]
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (f"From: {ANN.upper()}", True),
        (f"<{ANN}>, bo@fabrikam.com", True),
        (f"Write to {ANN}.", True),  # a full stop ends the sentence, not the domain
        (f'{{"from": "{ANN}"}}', True),
        (f"jo{ANN}", False),
        (f"{ANN}.au", False),
        (f"{ANN}-mail.example", False),
        (f"x.{ANN}", False),
        ("ann.lee at contoso.com", False),
        (None, False),
    ],
)
def test_an_address_is_found_whole_and_never_inside_another(text: str | None, found: bool) -> None:
    assert mentions(text, ANN) is found


def test_drifts_embeddings_of_inputs_follow_the_inputs_period(world: World) -> None:
    from deskpilot.server.ops.drift_tables import DRIFT_TABLES

    world.lineage.migrate(DRIFT_TABLES)
    with world.lineage.transaction() as conn:
        for day in (0, 20, 40):
            at = (T0 + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            conn.execute(
                "INSERT INTO drift_samples (task, at, embedder, vector) "
                "VALUES ('summarize', ?, 'hash', x'00')",
                [at],
            )
    world.clock.now = T0 + timedelta(days=55)  # inputs are kept 30 days: the samples of days 0 and 20 go
    assert world.retention.purge(dry_run=True).drift_samples == 2
    assert world.retention.purge().drift_samples == 2
    with world.lineage.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM drift_samples").fetchone() == (1,)
