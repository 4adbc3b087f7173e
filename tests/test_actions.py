"""Outbox, policies and workflows, in process: the state machine with fake adapters and a recording queue.

The real consumer, the real receivers and kill -9 are in test_actions_process.py; here every path of
the logic runs fast and deterministically.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from fakes import RecordingQueue, ScriptedAI, fake_adapters

from deskpilot.server.actions._types import PermanentError, TransientError, idempotency_key
from deskpilot.server.actions.outbox import ActionStateError, Outbox, current_owner
from deskpilot.server.actions.policy import AutomationUpdate, MailRule
from deskpilot.server.lineage import LineageStore
from deskpilot.server.settings import Settings, load_settings
from deskpilot.server.worker import WorkerRuntime
from deskpilot.server.workflows.events import EventLog

pytestmark = pytest.mark.unit

HOOK = {"url": "http://127.0.0.1:9/hook", "payload": {"a": 1}}


@pytest.fixture
def settings(app_home: Path) -> Settings:
    return load_settings(action_backoff_seconds=0.01)


@pytest.fixture
def runtime(settings: Settings):  # type: ignore[no-untyped-def]
    queue = RecordingQueue()
    ai = ScriptedAI()
    rt = WorkerRuntime(settings, adapters=fake_adapters(), ai=ai, queue=queue)  # type: ignore[arg-type]
    ai.lineage = rt.lineage  # its answers are runs in lineage, whose confidence proposals cite
    yield rt
    rt.close()


def test_the_same_proposal_is_one_action_and_its_key_is_content_derived(runtime: WorkerRuntime) -> None:
    a, created = runtime.outbox.propose("webhook", HOOK, title="t", origin="run-1", actor="me")
    b, again = runtime.outbox.propose("webhook", dict(HOOK), title="other title", origin="run-1", actor="me")
    c, _ = runtime.outbox.propose("webhook", HOOK, title="t", origin="run-2", actor="me")
    assert created and not again and a.id == b.id and c.id != a.id
    assert a.key == idempotency_key("webhook", HOOK, "run-1")


def test_unknown_params_are_refused(runtime: WorkerRuntime) -> None:
    with pytest.raises(msgspec.ValidationError):
        runtime.outbox.propose(
            "webhook", {"url": "x", "payload": {}, "colour": 1}, title="t", origin="o", actor="me"
        )


def test_approval_modes(runtime: WorkerRuntime) -> None:
    outbox = runtime.outbox
    webhook, _ = outbox.propose("webhook", HOOK, title="t", origin="o", actor="me")  # always
    draft, _ = outbox.propose(
        "draft_reply", {"messageId": "m", "body": "b"}, title="t", origin="o", actor="me"
    )
    runtime.ai.confidence = 0.5
    unsure = runtime.ai.classify("x", ["a"])["runId"]
    runtime.ai.confidence = 0.9
    sure = runtime.ai.classify("y", ["a"])["runId"]
    low, _ = outbox.propose("todo_task", {"title": "x"}, title="t", origin="o", actor="me", run_id=unsure)
    high, _ = outbox.propose("todo_task", {"title": "y"}, title="t", origin="o", actor="me", run_id=sure)
    assert (low.confidence, high.confidence) == (0.5, 0.9)  # the cited runs'
    none, _ = outbox.propose("todo_task", {"title": "z"}, title="t", origin="o", actor="me")
    assert none.status == "pending_review" and none.confidence == 0.0  # no run cited: a person decides
    assert (webhook.status, draft.status, low.status, high.status) == (
        "pending_review",
        "queued",
        "pending_review",
        "queued",
    )
    assert draft.approval == "policy"
    outbox.update_automation(
        "taskpane", AutomationUpdate(approval={"webhook": "never"}), "admin", confirm_loosening=True
    )
    later, _ = outbox.propose("webhook", HOOK, title="t", origin="o2", actor="me")
    assert later.status == "queued"


def test_approve_runs_once_and_reject_never(runtime: WorkerRuntime) -> None:
    outbox, queue = runtime.outbox, runtime.queue
    a, _ = outbox.propose("webhook", HOOK, title="t", origin="o", actor="me")
    b, _ = outbox.propose("webhook", {**HOOK, "payload": {"b": 2}}, title="t", origin="o", actor="me")
    outbox.decide(a.id, approve=True, actor="alice")
    outbox.decide(b.id, approve=False, actor="alice", note="no")
    with pytest.raises(ActionStateError):
        outbox.decide(a.id, approve=False, actor="alice")
    for _ in range(3):  # duplicate queue messages do nothing
        queue.execute(a.id)
        queue.execute(b.id)
    results = queue.drain()
    assert [r["did"] for r in results].count("executed") == 1
    assert runtime.adapters["webhook"].calls == 1  # type: ignore[attr-defined]
    assert outbox.get(a.id).status == "executed" and outbox.get(b.id).status == "rejected"
    events = [h.event for h in outbox.history(a.id)]
    assert events == ["proposed", "approved", "executed"]
    assert outbox.history(a.id)[1].actor == "alice"
    assert runtime.lineage.verify().ok and runtime.lineage.verify().actions_checked >= 5


def test_transient_failures_retry_with_backoff_then_fail(runtime: WorkerRuntime) -> None:
    adapter = runtime.adapters["draft_reply"]
    adapter.fail.extend([TransientError, TransientError])  # type: ignore[attr-defined]
    a, _ = runtime.outbox.propose(
        "draft_reply", {"messageId": "m", "body": "b"}, title="t", origin="o", actor="me"
    )
    runtime.queue.execute(a.id)
    import time

    for _ in range(20):
        runtime.queue.drain()
        if runtime.outbox.get(a.id).status == "executed":
            break
        time.sleep(0.02)
    record = runtime.outbox.get(a.id)
    assert record.status == "executed" and record.attempts == 3
    assert [h.event for h in runtime.outbox.history(a.id)].count("retry") == 2
    adapter.always_fail = PermanentError  # type: ignore[attr-defined]
    b, _ = runtime.outbox.propose(
        "draft_reply", {"messageId": "m2", "body": "b"}, title="t", origin="o", actor="me"
    )
    runtime.queue.execute(b.id)
    runtime.queue.drain()
    assert runtime.outbox.get(b.id).status == "failed"


def test_a_person_retries_a_failed_action_with_a_fresh_budget(runtime: WorkerRuntime) -> None:
    outbox, queue, adapter = runtime.outbox, runtime.queue, runtime.adapters["webhook"]
    outbox.update_automation(
        "taskpane", AutomationUpdate(approval={"webhook": "never"}), "admin", confirm_loosening=True
    )
    adapter.always_fail = PermanentError  # type: ignore[attr-defined]
    a, _ = outbox.propose("webhook", HOOK, title="t", origin="o", actor="me")
    queue.execute(a.id)
    queue.drain()
    failed = outbox.get(a.id)
    assert failed.status == "failed" and failed.failures == 1 and failed.error
    with pytest.raises(ActionStateError, match="not failed"):
        outbox.retry(
            outbox.propose("webhook", {**HOOK, "payload": {"b": 1}}, title="t", origin="o", actor="me")[0].id,
            actor="alice",
        )
    adapter.always_fail = None  # type: ignore[attr-defined]  # the receiver is fixed
    again = outbox.retry(a.id, actor="alice", note="receiver fixed")
    assert (again.status, again.failures, again.error) == ("queued", 0, None)
    with pytest.raises(ActionStateError):  # a second click while it is queued
        outbox.retry(a.id, actor="bob")
    queue.execute(a.id)
    queue.execute(a.id)
    queue.drain()
    done = outbox.get(a.id)
    assert done.status == "executed" and done.attempts == 2 and list(adapter.effects) == [a.key]  # type: ignore[attr-defined]
    history = outbox.history(a.id)
    assert [h.event for h in history] == ["proposed", "approved", "failed", "retried", "executed"]
    assert history[3].actor == "alice" and history[3].detail["note"] == "receiver fixed"
    assert "receiver said no" in history[3].detail["previous_error"]
    assert runtime.lineage.verify().ok


def test_the_default_retry_budget_rides_out_a_receiver_down_for_seven_minutes(app_home: Path) -> None:
    rt = WorkerRuntime(load_settings(), adapters=fake_adapters(), ai=ScriptedAI(), queue=RecordingQueue())  # type: ignore[arg-type]
    try:
        for _ in range(200):  # jitter: each delay lies between half and all of its ceiling
            delays = []
            while (delay := rt._backoff(len(delays) + 1)) is not None:
                delays.append(delay)
            assert len(delays) == 9 and max(delays) <= 300  # the 10th failure is final
            assert 7 * 60 - 15 <= sum(delays) <= 810
    finally:
        rt.close()


def test_kill_switch_holds_then_releases(runtime: WorkerRuntime) -> None:
    outbox = runtime.outbox
    outbox.update_automation(
        "taskpane", AutomationUpdate(approval={"webhook": "never"}), "admin", confirm_loosening=True
    )
    ids = [
        outbox.propose("webhook", {**HOOK, "payload": {"n": n}}, title="t", origin="o", actor="me")[0].id
        for n in range(4)
    ]
    for i in ids:
        runtime.queue.execute(i)
    runtime.queue.drain(limit=2)
    outbox.update_automation("taskpane", AutomationUpdate(enabled=False), "admin")
    runtime.queue.drain()
    assert [outbox.get(i).status for i in ids] == ["executed", "executed", "held", "held"]
    assert len(runtime.adapters["webhook"].effects) == 2  # type: ignore[attr-defined]
    _, released = outbox.update_automation("taskpane", AutomationUpdate(enabled=True), "admin")
    assert sorted(released) == sorted(ids[2:])
    for i in released:
        runtime.queue.execute(i)
    runtime.queue.drain()
    assert {outbox.get(i).status for i in ids} == {"executed"}


def test_daily_budget(runtime: WorkerRuntime) -> None:
    outbox = runtime.outbox
    outbox.update_automation(
        "taskpane",
        AutomationUpdate(approval={"webhook": "never"}, daily_budget=2),
        "admin",
        confirm_loosening=True,
    )
    ids = [
        outbox.propose("webhook", {**HOOK, "payload": {"n": n}}, title="t", origin="o", actor="me")[0].id
        for n in range(3)
    ]
    for i in ids:
        runtime.queue.execute(i)
    runtime.queue.drain()
    assert [outbox.get(i).status for i in ids] == ["executed", "executed", "held"]
    assert "budget" in (outbox.get(ids[2]).reason or "")
    _, released = outbox.update_automation("taskpane", AutomationUpdate(daily_budget=3), "admin")
    assert released == [ids[2]]


def test_recover_requeues_actions_of_a_dead_owner(runtime: WorkerRuntime) -> None:
    outbox = runtime.outbox
    a, _ = outbox.propose("draft_reply", {"messageId": "m", "body": "b"}, title="t", origin="o", actor="me")
    dead = "somehost-that-is-this:999999:1"
    import socket

    dead = f"{socket.gethostname()}:999999:1"
    assert outbox.claim(a.id, dead) is not None
    assert outbox.claim(a.id, current_owner()) is None  # taken
    found = outbox.recover()
    assert found["execute"] == [a.id] and outbox.get(a.id).status == "queued"
    live, _ = outbox.propose(
        "draft_reply", {"messageId": "m2", "body": "b"}, title="t", origin="o", actor="me"
    )
    assert outbox.claim(live.id, current_owner()) is not None
    assert live.id not in outbox.recover()["execute"]  # our own claim is alive


def test_invoice_workflow_end_to_end_with_a_webhook(runtime: WorkerRuntime) -> None:
    outbox, engine, queue = runtime.outbox, runtime.engine, runtime.queue
    outbox.update_automation(
        "invoice_intake",
        AutomationUpdate(
            settings={"financeWebhook": "http://127.0.0.1:9/f"},
            approval={"webhook": "never", "todo_task": "never"},
        ),
        "admin",
        confirm_loosening=True,
    )
    record, created = engine.start(
        "invoice_intake", {"text": "Invoice INV-7 ... total 120 EUR"}, origin="t1", actor="me"
    )
    assert created and record is not None
    queue.drain()
    done = engine.get(record.id)
    assert done.status == "completed", done
    assert sorted(a.kind for a in done.actions) == ["todo_task", "webhook"]
    assert {a.status for a in done.actions} == {"executed"}
    todo = runtime.adapters["todo_task"].effects  # type: ignore[attr-defined]
    assert len(todo) == 1 and "Contoso" in next(iter(todo.values()))["params"].title
    events = [h.event for h in outbox.history(record.id)]
    assert events[0] == "workflow.started" and events[-1] == "workflow.completed"
    again, created = engine.start("invoice_intake", {"text": "x"}, origin="t1", actor="me")
    assert not created and again is not None and again.id == record.id


def test_a_step_that_fails_for_good_compensates_earlier_effects(runtime: WorkerRuntime) -> None:
    outbox, engine, queue = runtime.outbox, runtime.engine, runtime.queue
    outbox.update_automation(
        "invoice_intake",
        AutomationUpdate(
            settings={"financeWebhook": "http://127.0.0.1:9/f"},
            approval={"webhook": "never", "todo_task": "never"},
        ),
        "admin",
        confirm_loosening=True,
    )
    runtime.adapters["webhook"].always_fail = PermanentError  # type: ignore[attr-defined]
    record, _ = engine.start("invoice_intake", {"text": "Invoice"}, origin="t2", actor="me")
    assert record is not None
    queue.drain()
    done = engine.get(record.id)
    assert done.status == "compensated", done
    statuses = {a.kind: a.status for a in done.actions}
    assert statuses == {"todo_task": "compensated", "webhook": "failed"}
    assert runtime.adapters["todo_task"].effects == {}  # type: ignore[attr-defined]
    events = [h.event for h in outbox.history(record.id)]
    assert "workflow.failed" in events and events[-1] == "workflow.compensated"
    failed = next(a for a in done.actions if a.status == "failed")
    with pytest.raises(ActionStateError, match="start the workflow again"):  # its workflow undid the rest
        outbox.retry(failed.id, actor="alice")


def test_step_exceptions_retry_then_succeed(runtime: WorkerRuntime) -> None:
    import time

    runtime.ai.fail_next = 2
    record, _ = runtime.engine.start("meeting_followup", {"text": "notes"}, origin="t3", actor="me")
    assert record is not None
    for _ in range(50):
        runtime.queue.drain()
        if runtime.engine.get(record.id).status != "running":
            break
        time.sleep(0.02)
    done = runtime.engine.get(record.id)
    assert done.status == "waiting" and done.step_name == "review"  # meeting follow-up always asks a person
    assert [h.event for h in runtime.outbox.history(record.id)].count("step.retry") == 2


def test_human_step_waits_resumes_and_escalates(runtime: WorkerRuntime, settings: Settings) -> None:
    from deskpilot.server.extraction.review_queue import ReviewQueue

    engine, queue, outbox = runtime.engine, runtime.queue, runtime.outbox
    runtime.ai.data = {
        "actionItems": [
            {"task": "Send the deck", "owner": "Ann", "dueDate": "2026-12-02"},
            {"task": "Book a room", "owner": None, "dueDate": None},
        ]
    }
    outbox.update_automation(
        "meeting_followup",
        AutomationUpdate(
            settings={"reviewTimeoutHours": 0.0001}, approval={"todo_task": "never", "draft_reply": "never"}
        ),
        "admin",
        confirm_loosening=True,
    )
    record, _ = engine.start(
        "meeting_followup",
        {"text": "notes", "messageId": "msg-1", "subject": "Sync"},
        origin="t4",
        actor="me",
    )
    assert record is not None
    queue.drain(include_delayed=False)
    waiting = engine.get(record.id)
    assert waiting.status == "waiting" and waiting.wait and waiting.wait["review"]
    item = ReviewQueue(runtime.lineage).get(waiting.wait["review"])
    assert item is not None and item.source_text == "notes"  # the reviewer sees what was read
    import time

    time.sleep(0.5)  # past the 0.36 s deadline
    queue.drain()
    escalated = engine.get(record.id)
    assert escalated.status == "waiting" and escalated.wait and escalated.wait["escalated"]
    escalation = [a for a in escalated.actions if a.step == "review:escalation"]
    assert len(escalation) == 1 and escalation[0].kind == "todo_task"
    assert "step.escalated" in [h.event for h in outbox.history(record.id)]
    ReviewQueue(runtime.lineage).decide(
        escalated.wait["review"], decision="accept", reviewer="bob", final=runtime.ai.data
    )
    for workflow_id in engine.waiting_for_review(escalated.wait["review"]):
        queue.advance(workflow_id)
    queue.drain()
    done = engine.get(record.id)
    assert done.status == "completed", done
    follow = [a for a in done.actions if a.step == "follow_up"]
    assert sorted(a.kind for a in follow) == ["draft_reply", "todo_task", "todo_task"]
    assert all(a.confidence == 1.0 for a in follow)  # a person accepted them
    draft = next(a for a in follow if a.kind == "draft_reply")
    assert "Send the deck" in draft.params["body"] and "Ann" in draft.params["body"]


def test_kill_switch_pauses_workflows_and_disabled_triggers_start_nothing(runtime: WorkerRuntime) -> None:
    outbox, engine, queue = runtime.outbox, runtime.engine, runtime.queue
    record, _ = engine.start("invoice_intake", {"text": "Invoice"}, origin="t5", actor="me")
    assert record is not None
    outbox.update_automation("invoice_intake", AutomationUpdate(enabled=False), "admin")
    queue.drain()
    assert engine.get(record.id).status == "waiting" and runtime.ai.calls == []
    none, created = engine.start("invoice_intake", {"text": "Invoice"}, origin="t6", actor="me")
    assert none is None and not created
    outbox.update_automation("invoice_intake", AutomationUpdate(enabled=True), "admin")
    for workflow_id in engine.paused("invoice_intake"):
        queue.advance(workflow_id)
    queue.drain()
    assert engine.get(record.id).status == "completed"


def test_mail_rule_events_dedupe_and_replay(runtime: WorkerRuntime) -> None:
    outbox, engine, queue = runtime.outbox, runtime.engine, runtime.queue
    events = EventLog(outbox, engine)
    outbox.update_automation(
        "invoice_intake",
        AutomationUpdate(
            rule=MailRule(folder="Inbox", sender="@contoso.com", label="invoice"), enabled=False
        ),
        "admin",
    )
    mail = {"text": "Invoice 7", "folder": "Inbox", "sender": "billing@contoso.com", "messageId": "m-1"}
    seq, created = events.append("graph", "mail.received", "graph:message:m-1", mail)
    again, created_again = events.append("graph", "mail.received", "graph:message:m-1", mail)
    assert created and not created_again and seq == again
    other, _ = events.append(
        "graph", "mail.received", "graph:message:m-2", {**mail, "sender": "x@fabrikam.com"}
    )
    assert events.dispatch(seq) == [] and events.dispatch(other) == []  # disabled: nothing starts
    outbox.update_automation("invoice_intake", AutomationUpdate(enabled=True), "admin")
    assert events.replay() == {"events": 2, "started": 1}
    assert events.replay() == {"events": 2, "started": 0}
    [workflow] = engine.list()
    assert workflow.inputs["source"] == "mail_rule" and workflow.event_seq == seq
    runtime.ai.label = "newsletter"
    queue.drain()
    assert engine.get(workflow.id).status == "skipped"


def test_outbox_survives_reopening(settings: Settings) -> None:
    lineage = LineageStore(settings.db_path)
    outbox = Outbox(lineage)
    a, _ = outbox.propose("webhook", HOOK, title="t", origin="o", actor="me")
    lineage.close()
    lineage = LineageStore(settings.db_path)
    try:
        assert Outbox(lineage).get(a.id).status == "pending_review"
        assert len(Outbox(lineage).automations()) == 3
    finally:
        lineage.close()


def test_audit_exports_and_verifies_the_action_log(runtime: WorkerRuntime, settings: Settings) -> None:
    import json

    from click.testing import CliRunner

    from deskpilot.server.cli import main

    a, _ = runtime.outbox.propose("webhook", HOOK, title="t", origin="run-9", run_id="run-9", actor="me")
    runtime.outbox.decide(a.id, approve=True, actor="alice")
    runner = CliRunner()
    result = runner.invoke(main, ["audit", "export", "--table", "actions"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    mine = [r for r in rows if r["subject_id"] == a.id]
    assert [(r["event"], r["actor"], r["run_id"]) for r in mine] == [
        ("proposed", "me", "run-9"),
        ("approved", "alice", "run-9"),
    ]
    assert mine[0]["detail"]["params"]["url"] == HOOK["url"] and mine[1]["prev_hash"] == mine[0]["hash"]
    verify = runner.invoke(main, ["audit", "verify"])
    assert verify.exit_code == 0 and "action log:" in verify.output
    with runtime.lineage.transaction() as conn:  # tamper: the triggers refuse, so drop them first
        conn.execute("DROP TRIGGER action_log_append_only_update")
        conn.execute("UPDATE action_log SET actor = 'mallory' WHERE actor = 'alice'")
    verify = runner.invoke(main, ["audit", "verify"])
    assert verify.exit_code == 1 and "action_log" in verify.output


def test_crashes_do_not_use_up_the_retry_budget(runtime: WorkerRuntime) -> None:
    import socket

    outbox = runtime.outbox
    a, _ = outbox.propose("draft_reply", {"messageId": "m", "body": "b"}, title="t", origin="o", actor="me")
    for n in range(8):  # eight workers died holding it
        assert outbox.claim(a.id, f"{socket.gethostname()}:99999{n}:1") is not None
        assert outbox.recover()["execute"] == [a.id]
    runtime.adapters["draft_reply"].fail.append(TransientError)  # type: ignore[attr-defined]
    runtime.queue.execute(a.id)
    runtime.queue.drain()
    record = outbox.get(a.id)
    assert record.status == "executed" and record.attempts == 10 and record.failures == 1
