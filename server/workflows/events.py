"""Triggers, normalised: an append-only event table that starts workflows, and can be replayed.

Every trigger becomes one row in `events` before anything acts on it: new mail from the Graph sync
("mail.received", deduplicated by message id, so a sync page applied twice after a crash is one
event) and a request from the task pane ("taskpane.request", deduplicated by its request id).
`dispatch(seq)` then starts the workflow of every enabled automation whose rule matches, once per
(event, automation): the workflow's origin is "event:<seq>:<automation>", unique in `workflows`. So
replaying events (`deskpilot events replay`, e.g. after re-enabling an automation or fixing a rule)
starts what did not start before and never starts anything twice.
"""

from __future__ import annotations

import builtins
from typing import Any

import msgspec

from deskpilot.server.actions.outbox import Actor, Outbox
from deskpilot.server.core.db import iso_utc_from_timestamp, rows_as_dicts
from deskpilot.server.core.wire import Person
from deskpilot.server.workflows.engine import WorkflowEngine, WorkflowRecord

__all__ = ["EventLog", "StoredEvent"]


class StoredEvent(msgspec.Struct, kw_only=True, rename="camel"):
    seq: int
    at: str
    source: str
    type: str
    dedupe: str
    payload: dict[str, Any]


class EventLog:
    def __init__(self, outbox: Outbox, engine: WorkflowEngine) -> None:
        self.outbox, self.engine, self.lineage = outbox, engine, outbox.lineage

    def append(self, source: str, type_: str, dedupe: str, payload: dict[str, Any]) -> tuple[int, bool]:
        """Record a trigger; (seq, created). The same dedupe key again is the existing event."""
        with self.lineage.transaction() as conn:
            found = conn.execute("SELECT seq FROM events WHERE dedupe = ?", [dedupe]).fetchone()
            if found:
                return int(found[0]), False
            cursor = conn.execute(
                "INSERT INTO events (at, source, type, dedupe, payload) VALUES (?, ?, ?, ?, ?)",
                [
                    iso_utc_from_timestamp(self.outbox.clock()),
                    source,
                    type_,
                    dedupe,
                    msgspec.json.encode(payload).decode(),
                ],
            )
            return int(cursor.lastrowid or 0), True

    def get(self, seq: int) -> StoredEvent:
        with self.lineage.reading() as conn:
            rows = list(rows_as_dicts(conn.execute("SELECT * FROM events WHERE seq = ?", [seq])))
        if not rows:
            raise LookupError(f"no event {seq}")
        return _event(rows[0])

    def list(self, *, since: int = 0, limit: int = 1000) -> list[StoredEvent]:
        with self.lineage.reading() as conn:
            rows = rows_as_dicts(
                conn.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", [since, limit])
            )
            return [_event(r) for r in rows]

    def dispatch(self, seq: int) -> builtins.list[tuple[WorkflowRecord, bool]]:  # `list` is the method above
        """Start what this event triggers (idempotent): [(workflow, created)]."""
        event = self.get(seq)
        started: list[tuple[WorkflowRecord, bool]] = []
        if event.type == "taskpane.request":
            name = event.payload["automation"]
            record, created = self.engine.start(
                name,
                event.payload["inputs"],
                origin=f"event:{seq}:{name}",
                actor=_actor(event.payload.get("actor")),
                event_seq=seq,
            )
            if record is not None:
                started.append((record, created))
        elif event.type == "mail.received":
            mail = event.payload
            for automation in self.outbox.automations():
                if not automation.enabled or automation.workflow is None:
                    continue
                if not automation.rule.matches(mail.get("folder", ""), mail.get("sender", "")):
                    continue
                inputs = {**mail, "source": "mail_rule", "expectLabel": automation.rule.label}
                record, created = self.engine.start(
                    automation.name,
                    inputs,
                    origin=f"event:{seq}:{automation.name}",
                    actor="rule",
                    event_seq=seq,
                )
                if record is not None:
                    started.append((record, created))
        return started

    def replay(self, *, since: int = 0) -> dict[str, int]:
        """Dispatch every event after `since` again: {"events": replayed, "started": new workflows}."""
        events = started = 0
        last = since
        while batch := self.list(since=last, limit=500):
            for event in batch:
                events += 1
                started += sum(1 for _, created in self.dispatch(event.seq) if created)
                last = event.seq
        return {"events": events, "started": started}


def _actor(value: Any) -> Actor:
    """Who asked, as the event recorded it: a person ({name, address}), or a role (events before 0.3)."""
    if isinstance(value, dict):
        try:
            return msgspec.convert(value, Person)
        except msgspec.ValidationError:
            return "taskpane"
    return value if isinstance(value, str) and value else "taskpane"


def _event(row: dict[str, Any]) -> StoredEvent:
    return msgspec.convert({**row, "payload": msgspec.json.decode(row["payload"])}, StoredEvent)
