"""The outbox: every action's durable state, and the audit record of every change to it.

Why an outbox and not just Huey
    Huey delivers at most once when a worker dies mid-task: the task was taken off the queue when it
    started, and nothing puts it back. So the truth about an action lives here, in SQLite, and the queue
    only carries "look at action X now". A task that runs twice, or for an action that is not due, does
    nothing: every transition is a conditional UPDATE in one `BEGIN IMMEDIATE` transaction (`claim`
    moves `queued` to `executing` for exactly one owner). What a dead worker was doing is found by
    `recover()` (run when a worker or the server starts, and by the worker's sweeper): an action
    `executing` under an owner whose process is gone goes back to `queued`, and runs again. Running
    again is safe because each adapter is idempotent at the receiver (look up before create, or the
    receiver's idempotency marker): at most one effect per key, and with recovery, exactly one.

Lifecycle
    proposed -> pending_review | approved -> queued -> executing -> executed | failed -> compensating ->
    compensated; also rejected (by a person), held (kill switch or daily budget; back to queued when
    released). "proposed" and "approved" are moments, recorded in the log, not resting states.

Lineage
    Each transition appends to the chained `action_log` in the same transaction that makes it, with the
    actor (a person's name and email address, or "policy", "workflow", the worker), the run that
    proposed the action and its workflow.

Confidence
    A proposal's confidence is read here, from the lineage run it cites (`runs.confidence`; 1.0 when a
    person accepted or edited that run's result in review), never taken from the caller. No run, an
    unknown one or one without a confidence is 0: "below_threshold" then always asks a person.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

import msgspec

from deskpilot.server.actions._tables import ACTIONS_TABLES
from deskpilot.server.actions._types import PARAMS_TYPES, Effect, idempotency_key
from deskpilot.server.actions.policy import (
    DEFAULT_AUTOMATIONS,
    Automation,
    AutomationUpdate,
    LooseningForbidden,
    LooseningNotConfirmed,
    from_row,
    loosenings,
    needs_person,
    to_row,
)
from deskpilot.server.core.db import iso_utc_from_timestamp, rows_as_dicts
from deskpilot.server.core.wire import Person
from deskpilot.server.lineage import LineageStore

__all__ = [
    "ActionRecord",
    "ActionStateError",
    "Actor",
    "LogEntry",
    "Outbox",
    "UnknownActionError",
    "UnknownAutomationError",
    "claim_lapsed",
    "current_owner",
    "owner_alive",
]

Status = Literal[
    "pending_review",
    "queued",
    "executing",
    "executed",
    "failed",
    "rejected",
    "held",
    "compensating",
    "compensated",
]
# A worker on another machine (a team server) cannot be checked by pid: its claim expires instead.
LEASE_SECONDS = 600.0
# Who makes a change: a person (name and address), or a process by its role ("policy", "workflow").
Actor = Person | str


class UnknownActionError(LookupError):
    pass


class UnknownAutomationError(LookupError):
    pass


class ActionStateError(RuntimeError):
    """The action is not in a state that allows this (e.g. approving an executed action): HTTP 409."""


class ActionRecord(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    key: str
    kind: str
    params: dict[str, Any]
    title: str
    origin: str
    run_id: str | None
    workflow_id: str | None
    step: str | None
    automation: str
    confidence: float | None  # the cited run's (see the module docstring), never the proposer's
    status: Status
    approval: str | None  # who approved: a person's name, or "policy"
    reason: str | None  # why it waits, was held or rejected
    attempts: int  # starts, including ones a crash cut short
    failures: int  # attempts that failed (the retry budget counts these)
    effect: Effect | None
    error: str | None
    created_at: str
    updated_at: str
    executed_at: str | None
    queued_ts: float | None
    started_ts: float | None


class LogEntry(msgspec.Struct, kw_only=True, rename="camel"):
    """One row of the chained `action_log`."""

    seq: int
    id: str
    at: str
    subject: str  # action, workflow, automation
    subject_id: str
    event: str
    actor: str  # a person's name, or a process's role
    actor_address: str | None = None  # a person's email address (None: a process, or a row before 0.3)
    run_id: str | None = None
    workflow_id: str | None = None
    automation: str | None = None
    detail: dict[str, Any]
    prev_hash: str | None = None
    hash: str


def _proc_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not mistaken."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


_OWNER = f"{socket.gethostname()}:{os.getpid()}:{_proc_start(os.getpid())}"


def current_owner() -> str:
    global _OWNER
    pid = os.getpid()
    if f":{pid}:" not in _OWNER:  # forked since import
        _OWNER = f"{socket.gethostname()}:{pid}:{_proc_start(pid)}"
    return _OWNER


def owner_alive(owner: str | None) -> bool | None:
    """True/False for a process on this machine; None for one elsewhere (only its lease can tell)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started in ("?", _proc_start(pid))


def claim_lapsed(owner: str | None, lease_ts: float | None, now: float) -> bool:
    """Whether a claim no longer holds: nobody's, its process on this machine is gone, or (a worker on
    another machine) its lease has run out. The one rule for actions, compensations and workflows."""
    if not owner:
        return True
    alive = owner_alive(owner)
    return alive is False or (alive is None and (lease_ts or 0) < now)


def _record(row: dict[str, Any]) -> ActionRecord:
    data = dict(row)
    data["params"] = msgspec.json.decode(data["params"])
    data["effect"] = msgspec.json.decode(data["effect"]) if data["effect"] else None
    for gone in ("next_attempt_ts", "owner", "lease_ts"):
        data.pop(gone, None)
    return msgspec.convert({_camel(k): v for k, v in data.items()}, ActionRecord)


def _who(actor: Actor) -> tuple[str, str | None]:
    return (actor.name, actor.address) if isinstance(actor, Person) else (actor, None)


def _cited_confidence(conn: sqlite3.Connection, run_id: str | None) -> tuple[float, str]:
    """The confidence of the run a proposal cites, and where it came from."""
    if not run_id:
        return 0.0, "no run cited"
    review = conn.execute(
        "SELECT decision FROM reviews WHERE run_id = ? ORDER BY seq DESC LIMIT 1", [run_id]
    ).fetchone()
    if review is not None:
        return (1.0, "accepted in review") if review[0] in ("accept", "edit") else (0.0, "rejected in review")
    run = conn.execute("SELECT status, confidence FROM runs WHERE id = ?", [run_id]).fetchone()
    if run is None:
        return 0.0, "no such run"
    if run[0] != "ok" or run[1] is None:
        return 0.0, "the run has no confidence"
    return float(run[1]), "run"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class Outbox:
    """Actions, automations and their log, on the lineage database. Safe to share between threads and
    processes (every change is one IMMEDIATE transaction)."""

    def __init__(self, lineage: LineageStore, *, clock: Callable[[], float] = time.time) -> None:
        self.lineage = lineage
        self.clock = clock
        lineage.migrate(ACTIONS_TABLES)
        with lineage.transaction() as conn:
            known = {r[0] for r in conn.execute("SELECT name FROM automations")}
            now = iso_utc_from_timestamp(clock())
            for automation in DEFAULT_AUTOMATIONS:
                if automation.name not in known:
                    row = to_row(
                        msgspec.structs.replace(
                            automation, enabled_at=now, updated_at=now, updated_by="deskpilot"
                        )
                    )
                    conn.execute(
                        f"INSERT INTO automations ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()),
                    )

    # -- the log ---------------------------------------------------------------------------------------

    def _log(
        self,
        conn: sqlite3.Connection,
        event: str,
        *,
        subject: str,
        subject_id: str,
        actor: Actor,
        run_id: str | None = None,
        workflow_id: str | None = None,
        automation: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        name, address = _who(actor)
        self.lineage.append_chained(
            conn,
            "action_log",
            {
                "id": uuid.uuid4().hex,
                "at": iso_utc_from_timestamp(self.clock()),
                "subject": subject,
                "subject_id": subject_id,
                "event": event,
                "actor": name,
                "actor_address": address,
                "run_id": run_id,
                "workflow_id": workflow_id,
                "automation": automation,
                "detail": msgspec.json.encode(detail or {}, order="sorted").decode(),
            },
        )

    def _log_action(
        self, conn: sqlite3.Connection, row: dict[str, Any], event: str, actor: Actor, **detail: Any
    ) -> None:
        self._log(
            conn,
            event,
            subject="action",
            subject_id=row["id"],
            actor=actor,
            run_id=row["run_id"],
            workflow_id=row["workflow_id"],
            automation=row["automation"],
            detail={"kind": row["kind"], "key": row["key"], **detail},
        )

    def log_workflow(
        self, conn: sqlite3.Connection, workflow: dict[str, Any], event: str, actor: Actor, **detail: Any
    ) -> None:
        context = workflow.get("context_obj") or {}
        self._log(
            conn,
            event,
            subject="workflow",
            subject_id=workflow["id"],
            actor=actor,
            run_id=detail.pop("run_id", None) or context.get("runId"),
            workflow_id=workflow["id"],
            automation=workflow["automation"],
            detail={"definition": workflow["definition"], **detail},
        )

    def history(self, subject_id: str) -> list[LogEntry]:
        """The chained log entries about an action, workflow or automation, oldest first."""
        with self.lineage.reading() as conn:
            rows = list(
                rows_as_dicts(
                    conn.execute("SELECT * FROM action_log WHERE subject_id = ? ORDER BY seq", [subject_id])
                )
            )
        return [
            msgspec.convert(
                {_camel(k): v for k, v in row.items()} | {"detail": msgspec.json.decode(row["detail"])},
                LogEntry,
            )
            for row in rows
        ]

    # -- automations -----------------------------------------------------------------------------------

    def automations(self) -> list[Automation]:
        with self.lineage.reading() as conn:
            conn.row_factory = sqlite3.Row
            return [from_row(r) for r in conn.execute("SELECT * FROM automations ORDER BY name")]

    def automation(self, name: str, conn: sqlite3.Connection | None = None) -> Automation:
        if conn is None:
            with self.lineage.reading() as reader:
                return self.automation(name, reader)
        rows = list(rows_as_dicts(conn.execute("SELECT * FROM automations WHERE name = ?", [name])))
        if not rows:
            raise UnknownAutomationError(f"no automation {name!r}")
        return from_row(rows[0])

    def update_automation(
        self,
        name: str,
        update: AutomationUpdate,
        actor: Actor,
        *,
        confirm_loosening: bool = False,
        allow_loosening: bool = True,
    ) -> tuple[Automation, list[str]]:
        """Apply a partial update; returns the automation and the ids of held actions it released.

        A change that loosens approval (`policy.loosenings`) raises LooseningForbidden when
        `allow_loosening` is false, and LooseningNotConfirmed unless `confirm_loosening`; either way
        nothing changes. The log records what was loosened, and that it was confirmed."""
        update.check()
        who, address = _who(actor)
        changes = {k: v for k, v in msgspec.structs.asdict(update).items() if v is not msgspec.UNSET}
        released: list[str] = []
        with self.lineage.transaction() as conn:
            current = self.automation(name, conn)
            # Maps merge: naming one action kind (or one setting) leaves the others as they were; a
            # setting set to null is removed.
            if "approval" in changes:
                changes["approval"] = {**current.approval, **changes["approval"]}
            if "settings" in changes:
                merged = {**current.settings, **changes["settings"]}
                changes["settings"] = {k: v for k, v in merged.items() if v is not None}
            now = iso_utc_from_timestamp(self.clock())
            new = msgspec.structs.replace(
                current, **changes, updated_at=now, updated_by=who, updated_by_address=address
            )
            loosened = loosenings(current, new)
            if loosened and not allow_loosening:
                raise LooseningForbidden(
                    f"loosening the approval of {name!r} is not allowed on this computer "
                    f"(allow_loosening_approval is false): {'; '.join(loosened)}",
                    loosened,
                )
            if loosened and not confirm_loosening:
                raise LooseningNotConfirmed(
                    f"this change loosens the approval of {name!r}: {'; '.join(loosened)}", loosened
                )
            if new.enabled and not current.enabled:
                new = msgspec.structs.replace(new, enabled_at=now)
            row = to_row(new)
            conn.execute(
                f"UPDATE automations SET {', '.join(f'{k} = ?' for k in row)} WHERE name = ?",
                [*row.values(), name],
            )
            self._log(
                conn,
                "automation.updated",
                subject="automation",
                subject_id=name,
                actor=actor,
                automation=name,
                detail={"changes": msgspec.to_builtins(changes)}
                | ({"loosened": loosened, "confirmed": True} if loosened else {}),
            )
            if new.enabled:
                released = self._release_held(conn, name, actor)
        return new, released

    def _release_held(self, conn: sqlite3.Connection, automation: str, actor: Actor) -> list[str]:
        ids = []
        for row in list(
            rows_as_dicts(
                conn.execute("SELECT * FROM actions WHERE automation = ? AND status = 'held'", [automation])
            )
        ):
            now = self.clock()
            conn.execute(
                "UPDATE actions SET status = 'queued', reason = NULL, queued_ts = ?, "
                "next_attempt_ts = NULL, updated_at = ? WHERE id = ?",
                [now, iso_utc_from_timestamp(now), row["id"]],
            )
            self._log_action(conn, row, "released", actor)
            ids.append(row["id"])
        return ids

    def release_budget_holds(self) -> list[str]:
        """Held for the budget on an earlier day: the new day's budget applies (called by the sweeper)."""
        today = iso_utc_from_timestamp(self.clock())[:10]
        released: list[str] = []
        with self.lineage.transaction() as conn:
            for (name,) in list(
                conn.execute(
                    "SELECT DISTINCT automation FROM actions WHERE status = 'held' "
                    "AND reason LIKE 'daily budget%' AND substr(updated_at, 1, 10) < ?",
                    [today],
                )
            ):
                if self.automation(name, conn).enabled:
                    released += self._release_held(conn, name, "policy")
        return released

    # -- proposals and decisions -----------------------------------------------------------------------

    def propose(
        self,
        kind: str,
        params: Any,
        *,
        title: str,
        origin: str,
        automation: str = "taskpane",
        run_id: str | None = None,
        workflow_id: str | None = None,
        step: str | None = None,
        certain: bool = False,
        actor: Actor,
    ) -> tuple[ActionRecord, bool]:
        """Record a proposed action and decide its approval by policy. Returns (action, created): the same
        proposal again (same kind, parameters and origin) is the existing action.

        Its confidence is that of the run it cites (`run_id`; see the module docstring). `certain` is for
        what the server proposes from fixed content, not from a model's output (a workflow's escalation
        of an overdue review): confidence 1.0. No request from a client can set it."""
        if kind not in PARAMS_TYPES:
            raise ValueError(f"unknown action kind {kind!r}; known: {sorted(PARAMS_TYPES)}")
        params = msgspec.convert(msgspec.to_builtins(params), PARAMS_TYPES[kind])
        key = idempotency_key(kind, params, origin)
        with self.lineage.transaction() as conn:
            existing = list(rows_as_dicts(conn.execute("SELECT * FROM actions WHERE key = ?", [key])))
            if existing:
                return _record(existing[0]), False
            policy = self.automation(automation, conn)
            now = self.clock()
            confidence, source = (
                (1.0, "the server's own proposal") if certain else _cited_confidence(conn, run_id)
            )
            person = needs_person(policy, kind, confidence)
            row = {
                "id": uuid.uuid4().hex,
                "key": key,
                "kind": kind,
                "params": msgspec.json.encode(params).decode(),
                "title": title,
                "origin": origin,
                "run_id": run_id,
                "workflow_id": workflow_id,
                "step": step,
                "automation": automation,
                "confidence": confidence,
                "status": "pending_review" if person else "queued",
                "approval": None if person else "policy",
                "reason": f"approval {policy.approval.get(kind, 'always')}" if person else None,
                "attempts": 0,
                "created_at": iso_utc_from_timestamp(now),
                "updated_at": iso_utc_from_timestamp(now),
                "queued_ts": None if person else now,
            }
            conn.execute(
                f"INSERT INTO actions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            full = {
                **row,
                "failures": 0,
                "effect": None,
                "error": None,
                "executed_at": None,
                "started_ts": None,
            }
            self._log_action(
                conn,
                full,
                "proposed",
                actor,
                title=title,
                params=msgspec.to_builtins(params),
                confidence=confidence,
                confidence_from=source,
                origin=origin,
            )
            if not person:
                self._log_action(
                    conn,
                    full,
                    "approved",
                    "policy",
                    mode=policy.approval.get(kind, "always"),
                    threshold=policy.threshold,
                )
        return _record(full), True

    def decide(self, action_id: str, *, approve: bool, actor: Actor, note: str | None = None) -> ActionRecord:
        with self.lineage.transaction() as conn:
            row = self._row(conn, action_id)
            if row["status"] != "pending_review":
                raise ActionStateError(f"action {action_id} is {row['status']}, not waiting for approval")
            now = self.clock()
            if approve:
                conn.execute(
                    "UPDATE actions SET status = 'queued', approval = ?, reason = NULL, queued_ts = ?, "
                    "updated_at = ? WHERE id = ?",
                    [_who(actor)[0], now, iso_utc_from_timestamp(now), action_id],
                )
            else:
                conn.execute(
                    "UPDATE actions SET status = 'rejected', reason = ?, updated_at = ? WHERE id = ?",
                    [note or "rejected", iso_utc_from_timestamp(now), action_id],
                )
            self._log_action(conn, row, "approved" if approve else "rejected", actor, note=note)
            return _record(self._row(conn, action_id))

    def retry(self, action_id: str, *, actor: Actor, note: str | None = None) -> ActionRecord:
        """A person runs a failed action again: back to the queue with a fresh retry budget. Its key is
        unchanged, so an attempt that took effect before it failed still makes no second effect. A failed
        action of a workflow cannot: the workflow undid its other steps when it failed."""
        with self.lineage.transaction() as conn:
            row = self._row(conn, action_id)
            if row["status"] != "failed":
                raise ActionStateError(f"action {action_id} is {row['status']}, not failed")
            if row["workflow_id"]:
                raise ActionStateError(
                    f"action {action_id} belongs to workflow {row['workflow_id']}, which undid "
                    "its steps when it failed; start the workflow again instead"
                )
            now = self.clock()
            conn.execute(
                "UPDATE actions SET status = 'queued', failures = 0, error = NULL, reason = NULL, "
                "next_attempt_ts = NULL, queued_ts = ?, updated_at = ? WHERE id = ?",
                [now, iso_utc_from_timestamp(now), action_id],
            )
            self._log_action(conn, row, "retried", actor, note=note, previous_error=row["error"])
            return _record(self._row(conn, action_id))

    # -- execution -------------------------------------------------------------------------------------

    def claim(self, action_id: str, owner: str) -> ActionRecord | None:
        """Take a queued, due action for execution, or hold it (kill switch, budget). None: nothing to do."""
        with self.lineage.transaction() as conn:
            row = self._row(conn, action_id)
            now = self.clock()
            if row["status"] != "queued" or (row["next_attempt_ts"] or 0) > now:
                return None
            policy = self.automation(row["automation"], conn)
            reason = None
            if not policy.enabled:
                reason = "automation disabled (kill switch)"
            elif policy.daily_budget is not None:
                day = iso_utc_from_timestamp(now)[:10]
                spent = conn.execute(
                    "SELECT count(*) FROM actions WHERE automation = ? AND executed_at >= ? AND status IN "
                    "('executed', 'compensating', 'compensated')",
                    [row["automation"], day],
                ).fetchone()[0]
                if spent >= policy.daily_budget:
                    reason = f"daily budget of {policy.daily_budget} spent"
            if reason:
                conn.execute(
                    "UPDATE actions SET status = 'held', reason = ?, updated_at = ? WHERE id = ?",
                    [reason, iso_utc_from_timestamp(now), action_id],
                )
                self._log_action(conn, row, "held", "policy", reason=reason)
                return None
            conn.execute(
                "UPDATE actions SET status = 'executing', owner = ?, lease_ts = ?, attempts = attempts + 1, "
                "started_ts = coalesce(started_ts, ?), updated_at = ? WHERE id = ?",
                [owner, now + LEASE_SECONDS, now, iso_utc_from_timestamp(now), action_id],
            )
            return _record(self._row(conn, action_id))

    def executed(self, action_id: str, owner: str, effect: Effect) -> ActionRecord:
        with self.lineage.transaction() as conn:
            row = self._owned(conn, action_id, owner, "executing")
            now = self.clock()
            conn.execute(
                "UPDATE actions SET status = 'executed', effect = ?, error = NULL, owner = NULL, "
                "lease_ts = NULL, executed_at = ?, updated_at = ? WHERE id = ?",
                [
                    msgspec.json.encode(effect).decode(),
                    iso_utc_from_timestamp(now),
                    iso_utc_from_timestamp(now),
                    action_id,
                ],
            )
            self._log_action(
                conn, row, "executed", "worker", effect=msgspec.to_builtins(effect), attempt=row["attempts"]
            )
            return _record(self._row(conn, action_id))

    def attempt_failed(self, action_id: str, owner: str, error: str, retry_in: float | None) -> ActionRecord:
        """A failed attempt: back to the queue after `retry_in` seconds, or failed for good (None)."""
        with self.lineage.transaction() as conn:
            row = self._owned(conn, action_id, owner, "executing")
            now = self.clock()
            if retry_in is None:
                conn.execute(
                    "UPDATE actions SET status = 'failed', error = ?, owner = NULL, lease_ts = NULL, "
                    "failures = failures + 1, updated_at = ? WHERE id = ?",
                    [error, iso_utc_from_timestamp(now), action_id],
                )
                self._log_action(conn, row, "failed", "worker", error=error, attempt=row["attempts"])
            else:
                conn.execute(
                    "UPDATE actions SET status = 'queued', error = ?, owner = NULL, lease_ts = NULL, "
                    "failures = failures + 1, next_attempt_ts = ?, updated_at = ? WHERE id = ?",
                    [error, now + retry_in, iso_utc_from_timestamp(now), action_id],
                )
                self._log_action(
                    conn,
                    row,
                    "retry",
                    "worker",
                    error=error,
                    attempt=row["attempts"],
                    retry_in=round(retry_in, 3),
                )
            return _record(self._row(conn, action_id))

    # -- compensation ----------------------------------------------------------------------------------

    def request_compensation(self, action_ids: Iterable[str], actor: Actor, reason: str) -> list[str]:
        """Mark executed actions for undoing; returns those now `compensating` (to enqueue)."""
        out = []
        with self.lineage.transaction() as conn:
            for action_id in action_ids:
                row = self._row(conn, action_id)
                if row["status"] == "executed":
                    conn.execute(
                        "UPDATE actions SET status = 'compensating', reason = ?, owner = NULL, "
                        "updated_at = ? WHERE id = ?",
                        [reason, iso_utc_from_timestamp(self.clock()), action_id],
                    )
                    self._log_action(conn, row, "compensation_requested", actor, reason=reason)
                    out.append(action_id)
                elif row["status"] == "compensating":
                    out.append(action_id)
        return out

    def claim_compensation(self, action_id: str, owner: str) -> ActionRecord | None:
        with self.lineage.transaction() as conn:
            row = self._row(conn, action_id)
            now = self.clock()
            if row["status"] != "compensating" or not claim_lapsed(row["owner"], row["lease_ts"], now):
                return None
            conn.execute(
                "UPDATE actions SET owner = ?, lease_ts = ?, updated_at = ? WHERE id = ?",
                [owner, now + LEASE_SECONDS, iso_utc_from_timestamp(now), action_id],
            )
            return _record(self._row(conn, action_id))

    def compensated(self, action_id: str, owner: str, error: str | None = None) -> ActionRecord:
        with self.lineage.transaction() as conn:
            row = self._owned(conn, action_id, owner, "compensating")
            now = self.clock()
            if error is None:
                conn.execute(
                    "UPDATE actions SET status = 'compensated', owner = NULL, lease_ts = NULL, "
                    "updated_at = ? WHERE id = ?",
                    [iso_utc_from_timestamp(now), action_id],
                )
                self._log_action(conn, row, "compensated", "worker")
            else:  # stays compensating: the sweeper tries again
                conn.execute(
                    "UPDATE actions SET owner = NULL, lease_ts = NULL, error = ?, next_attempt_ts = ?, "
                    "updated_at = ? WHERE id = ?",
                    [error, now + 5.0, iso_utc_from_timestamp(now), action_id],
                )
                self._log_action(conn, row, "compensation_retry", "worker", error=error)
            return _record(self._row(conn, action_id))

    # -- recovery --------------------------------------------------------------------------------------

    def recover(self, *, stale_seconds: float = 0.0) -> dict[str, list[str]]:
        """After a crash: actions whose worker is gone go back to the queue. Returns what to enqueue:
        {"execute": [...], "compensate": [...]}: every due queued action (due for `stale_seconds` at
        least: the sweeper leaves alone what the queue is about to deliver) and every compensation."""
        now = self.clock()
        with self.lineage.transaction() as conn:
            for row in list(rows_as_dicts(conn.execute("SELECT * FROM actions WHERE status = 'executing'"))):
                if claim_lapsed(row["owner"], row["lease_ts"], now):
                    conn.execute(
                        "UPDATE actions SET status = 'queued', owner = NULL, lease_ts = NULL, "
                        "updated_at = ? WHERE id = ?",
                        [iso_utc_from_timestamp(now), row["id"]],
                    )
                    self._log_action(conn, row, "recovered", "worker", dead_owner=row["owner"])
            execute = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM actions WHERE status = 'queued' AND "
                    "max(coalesce(next_attempt_ts, 0), coalesce(queued_ts, 0)) <= ? ORDER BY queued_ts",
                    [now - stale_seconds],
                )
            ]
            compensate = []
            for row in rows_as_dicts(
                conn.execute(
                    "SELECT id, owner, lease_ts, next_attempt_ts FROM actions WHERE status = 'compensating'"
                )
            ):
                if (row["next_attempt_ts"] or 0) > now:
                    continue
                if claim_lapsed(row["owner"], row["lease_ts"], now):
                    compensate.append(row["id"])
        return {"execute": execute, "compensate": compensate}

    # -- reading ---------------------------------------------------------------------------------------

    def _owned(self, conn: sqlite3.Connection, action_id: str, owner: str, status: str) -> dict[str, Any]:
        """The action's row, if it is still `status` under `owner`'s claim (a recovery may have taken it)."""
        row = self._row(conn, action_id)
        if row["status"] != status or row["owner"] != owner:
            raise ActionStateError(f"action {action_id} is no longer ours ({row['status']})")
        return row

    @staticmethod
    def _row(conn: sqlite3.Connection, action_id: str) -> dict[str, Any]:
        rows = list(rows_as_dicts(conn.execute("SELECT * FROM actions WHERE id = ?", [action_id])))
        if not rows:
            raise UnknownActionError(f"no action {action_id!r}")
        return rows[0]

    def get(self, action_id: str) -> ActionRecord:
        with self.lineage.reading() as conn:
            return _record(self._row(conn, action_id))

    def list(
        self,
        *,
        status: str | None = None,
        workflow_id: str | None = None,
        automation: str | None = None,
        limit: int = 100,
    ) -> list[ActionRecord]:
        clauses, params = [], []
        for column, value in (("status", status), ("workflow_id", workflow_id), ("automation", automation)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.lineage.reading() as conn:
            rows = rows_as_dicts(
                conn.execute(
                    f"SELECT * FROM actions {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                    [*params, limit],
                )
            )
            return [_record(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.lineage.reading() as conn:
            return dict(conn.execute("SELECT status, count(*) FROM actions GROUP BY status").fetchall())
