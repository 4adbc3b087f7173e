"""Durable multi-step workflows: state in SQLite, steps run by the queue's consumer.

A workflow is a definition (a list of steps) plus one row in `workflows`: which step it is on, the JSON
context every finished step wrote its output into, and what it waits for. `advance(id)` is the only
thing that moves it, and it runs as a queue task: it claims the row (one owner at a time, like an
action), runs steps until one has to wait, then releases it. Every step's outcome is committed before
the next step starts, so a worker killed mid-step re-runs that step and nothing before it.

Steps come in three kinds:
- `task`: a function of the context (triage, extraction, checks). Re-running it must be harmless: AI
  steps make a new lineage run, nothing else. An exception is retried with exponential backoff
  (`workflow_step_retries`), then the workflow fails.
- `review`: a person. The step returns `Wait(review=id, hours)` and the workflow sleeps until the review
  is decided (the reviews API advances it) or the deadline passes, which escalates once (an escalation
  action, logged) and waits again.
- `actions`: proposes actions (the outbox decides approval by policy) and waits until each one is
  executed, rejected or failed. One that failed for good fails the workflow.

A workflow that fails for good compensates: every action its completed steps executed is undone, newest
first (`compensating` -> `compensated`), and the log says why. A disabled automation (kill switch)
pauses its workflows before their next step; re-enabling resumes them.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from deskpilot.server.actions.outbox import (
    LEASE_SECONDS,
    ActionRecord,
    Actor,
    Outbox,
    claim_lapsed,
    current_owner,
)
from deskpilot.server.actions.policy import Automation
from deskpilot.server.core.db import iso_utc_from_timestamp, rows_as_dicts
from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.settings import TriageLabelSetting
from deskpilot.server.workflows._tables import WORKFLOWS_TABLES
from deskpilot.server.workflows.ai import WorkflowAI

__all__ = [
    "Definition",
    "Step",
    "StepContext",
    "Stop",
    "UnknownWorkflowError",
    "Wait",
    "WorkflowEngine",
    "WorkflowRecord",
]

log = logging.getLogger("deskpilot.workflows")

WorkflowStatus = Literal[
    "running", "waiting", "completed", "skipped", "rejected", "failed", "compensating", "compensated"
]
ACTIVE = ("running", "waiting", "compensating")


class UnknownWorkflowError(LookupError):
    pass


@dataclass
class Wait:
    """The step is not finished: come back when `review` is decided (or at the deadline)."""

    review: str | None = None
    hours: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stop:
    """End the workflow here without failing it: "skipped" (not for us), "rejected" (a person said no),
    or "completed"."""

    status: Literal["skipped", "rejected", "completed"]
    reason: str


@dataclass
class Proposal:
    """An action a step proposes. `run_id`: the lineage run its content came from, whose confidence
    (or review) policy weighs; None: the workflow's latest run."""

    kind: str
    params: dict[str, Any]
    title: str
    run_id: str | None = None


class StepContext:
    """What a step function sees. `outputs` holds every earlier step's output by step name."""

    def __init__(
        self, engine: WorkflowEngine, row: dict[str, Any], automation: Automation, step: str
    ) -> None:
        self.engine, self.workflow_id, self.step, self.automation = engine, row["id"], step, automation
        context = msgspec.json.decode(row["context"])
        self.inputs: dict[str, Any] = context.get("inputs", {})
        self.outputs: dict[str, Any] = context.get("outputs", {})
        self.wait: dict[str, Any] = msgspec.json.decode(row["wait"]) if row["wait"] else {}
        self.settings = automation.settings

    @property
    def ai(self) -> WorkflowAI:
        """The model, for the steps that use it (an engine built without one cannot run them)."""
        if self.engine.ai is None:
            raise RuntimeError("this workflow engine has no model (WorkflowAI) for its AI steps")
        return self.engine.ai

    @property
    def reviews(self) -> ReviewQueue:
        """The review queue, for the steps that wait for a person."""
        if self.engine.reviews is None:
            raise RuntimeError("this workflow engine has no review queue for its review steps")
        return self.engine.reviews


@dataclass
class Step:
    name: str
    kind: Literal["task", "review", "actions"]
    run: Callable[[StepContext], Any]
    when: Callable[[StepContext], bool] | None = None


@dataclass
class Definition:
    name: str
    version: int
    description: str
    steps: list[Step]

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"


class WorkflowRecord(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    definition: str
    automation: str
    origin: str
    event_seq: int | None
    status: WorkflowStatus
    step: int
    step_name: str | None
    steps: list[str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    wait: dict[str, Any] | None
    attempts: int
    error: str | None
    created_at: str
    updated_at: str
    actions: list[ActionRecord] = []


class WorkflowEngine:
    def __init__(
        self,
        outbox: Outbox,
        queue: TaskQueue,
        definitions: dict[str, Definition],
        *,
        ai: WorkflowAI | None = None,
        reviews: ReviewQueue | None = None,
        step_retries: int = 3,
        backoff_seconds: float = 1.0,
        triage_labels: tuple[str | TriageLabelSetting, ...] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.triage_labels = triage_labels
        self.outbox, self.queue, self.definitions = outbox, queue, definitions
        self.lineage = outbox.lineage
        self.ai, self.reviews = ai, reviews
        self.lineage.migrate(WORKFLOWS_TABLES)
        self.step_retries, self.backoff_seconds = step_retries, backoff_seconds
        self.rng = rng or random.Random()

    @property
    def clock(self) -> Callable[[], float]:
        return self.outbox.clock

    # -- starting --------------------------------------------------------------------------------------

    def start(
        self,
        automation_name: str,
        inputs: dict[str, Any],
        *,
        origin: str,
        actor: Actor,
        event_seq: int | None = None,
    ) -> tuple[WorkflowRecord | None, bool]:
        """Start the automation's workflow once per `origin` (an event, a task pane request). Returns
        (workflow, created); (None, False) when the automation is disabled: it enqueues nothing."""
        with self.lineage.transaction() as conn:
            automation = self.outbox.automation(automation_name, conn)
            if automation.workflow is None or automation.workflow not in self.definitions:
                raise ValueError(f"automation {automation_name!r} has no workflow")
            found = list(rows_as_dicts(conn.execute("SELECT * FROM workflows WHERE origin = ?", [origin])))
            if found:
                return self._record(found[0]), False
            if not automation.enabled:
                return None, False
            definition = self.definitions[automation.workflow]
            now = iso_utc_from_timestamp(self.clock())
            row = {
                "id": uuid.uuid4().hex,
                "definition": definition.id,
                "automation": automation_name,
                "origin": origin,
                "event_seq": event_seq,
                "status": "running",
                "step": 0,
                "context": msgspec.json.encode({"inputs": inputs, "outputs": {}}).decode(),
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            conn.execute(
                f"INSERT INTO workflows ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            self.outbox.log_workflow(conn, row, "workflow.started", actor, origin=origin, event_seq=event_seq)
            record = self._record({**row, "wait": None, "error": None})
        self.queue.advance(record.id)
        return record, True

    # -- advancing (the consumer) ----------------------------------------------------------------------

    def _claim(self, workflow_id: str, owner: str) -> dict[str, Any] | None:
        with self.lineage.transaction() as conn:
            row = self._row(conn, workflow_id)
            now = self.clock()
            if row["status"] not in ACTIVE or (row["next_attempt_ts"] or 0) > now:
                return None
            if not claim_lapsed(row["owner"], row["lease_ts"], now):
                return None
            conn.execute(
                "UPDATE workflows SET owner = ?, lease_ts = ? WHERE id = ?",
                [owner, now + LEASE_SECONDS, workflow_id],
            )
            return self._row(conn, workflow_id)

    def _save(
        self,
        row: dict[str, Any],
        owner: str,
        *,
        event: str | None = None,
        actor: str = "worker",
        release: bool = False,
        **detail: Any,
    ) -> None:
        with self.lineage.transaction() as conn:
            current = self._row(conn, row["id"])
            if current["owner"] != owner:
                raise RuntimeError(f"workflow {row['id']} is no longer ours")
            row["updated_at"] = iso_utc_from_timestamp(self.clock())
            columns = (
                "status",
                "step",
                "context",
                "attempts",
                "next_attempt_ts",
                "wait",
                "error",
                "updated_at",
            )
            conn.execute(
                f"UPDATE workflows SET {', '.join(f'{c} = ?' for c in columns)}"
                f"{', owner = NULL, lease_ts = NULL' if release else ''} WHERE id = ?",
                [*(row.get(c) for c in columns), row["id"]],
            )
            if event:
                self.outbox.log_workflow(conn, row, event, actor, **detail)

    def advance(self, workflow_id: str) -> dict[str, Any]:
        owner = current_owner()
        row = self._claim(workflow_id, owner)
        if row is None:
            return {"workflow": workflow_id, "did": "nothing"}
        try:
            return self._advance(row, owner)
        except BaseException:
            # Leave it claimable at once (a crash leaves it to recovery, which sees the owner gone).
            with self.lineage.transaction() as conn:
                conn.execute(
                    "UPDATE workflows SET owner = NULL, lease_ts = NULL WHERE id = ? AND owner = ?",
                    [workflow_id, owner],
                )
            raise

    def _advance(self, row: dict[str, Any], owner: str) -> dict[str, Any]:
        definition = self.definitions[row["definition"].split("@")[0]]
        did: list[str] = []
        while True:
            automation = self.outbox.automation(row["automation"])
            if row["status"] == "compensating":
                return self._compensate(row, owner, did)
            if not automation.enabled:
                row["status"], row["wait"] = "waiting", '{"automation": "disabled"}'
                self._save(row, owner, event="workflow.paused", release=True, reason="automation disabled")
                return {"workflow": row["id"], "did": [*did, "paused"]}
            if row["step"] >= len(definition.steps):
                row["status"], row["wait"] = "completed", None
                self._save(row, owner, event="workflow.completed", release=True)
                return {"workflow": row["id"], "did": [*did, "completed"]}
            step = definition.steps[row["step"]]
            ctx = StepContext(self, row, automation, step.name)
            if step.when is not None and not step.when(ctx):
                self._finish_step(row, ctx, step, {"skipped": True})
                self._save(row, owner, event="step.skipped", step=step.name)
                continue
            try:
                outcome = self._run_step(step, ctx, row)
            except Exception as exc:  # a step that raises: retry with backoff, then fail and compensate
                return self._step_failed(row, owner, step, exc, did)
            if isinstance(outcome, Wait):
                return self._wait(row, owner, step, ctx, outcome, did)
            if isinstance(outcome, Stop):
                row["status"], row["wait"], row["error"] = outcome.status, None, None
                self._save(
                    row,
                    owner,
                    event=f"workflow.{outcome.status}",
                    release=True,
                    step=step.name,
                    reason=outcome.reason,
                )
                return {"workflow": row["id"], "did": [*did, outcome.status]}
            if isinstance(outcome, _Failed):
                return self._fail(row, owner, step, outcome.reason, did)
            self._finish_step(row, ctx, step, outcome)
            self._save(row, owner, event="step.completed", step=step.name, run_id=_run_of(outcome))
            did.append(step.name)

    def _finish_step(self, row: dict[str, Any], ctx: StepContext, step: Step, output: Any) -> None:
        ctx.outputs[step.name] = output
        row["context"] = msgspec.json.encode({"inputs": ctx.inputs, "outputs": ctx.outputs}).decode()
        row["step"] += 1
        row["attempts"], row["next_attempt_ts"], row["wait"], row["error"] = 0, None, None, None
        row["status"] = "running"

    def _run_step(self, step: Step, ctx: StepContext, row: dict[str, Any]) -> Any:
        if step.kind == "actions":
            return self._actions_step(step, ctx, row)
        if step.kind == "review":
            return self._review_step(step, ctx)
        return step.run(ctx)

    # -- actions steps ---------------------------------------------------------------------------------

    def _actions_step(self, step: Step, ctx: StepContext, row: dict[str, Any]) -> Any:
        proposals: list[Proposal] = step.run(ctx)
        records = []
        for proposal in proposals:
            record, created = self.outbox.propose(
                proposal.kind,
                proposal.params,
                title=proposal.title,
                origin=f"{row['id']}:{step.name}",
                automation=row["automation"],
                # The run the content came from: the step's own answer, else the workflow's latest run; a
                # run id in the trigger's inputs last (it came with the request).
                run_id=proposal.run_id or _last_run(ctx.outputs) or _text(ctx.inputs.get("runId")),
                workflow_id=row["id"],
                step=step.name,
                actor="workflow",
            )
            if created and record.status == "queued":
                self.queue.execute(record.id)
            records.append(record)
        by_status = {r.id: r.status for r in records}
        if any(s in ("pending_review", "queued", "executing", "held") for s in by_status.values()):
            return Wait(detail={"actions": list(by_status)})
        failed = [r for r in records if r.status == "failed"]
        if failed:
            return _Failed(f"action {failed[0].kind} failed for good: {failed[0].error}")
        return {"actions": {r.id: r.status for r in records}}

    # -- review steps ----------------------------------------------------------------------------------

    def _review_step(self, step: Step, ctx: StepContext) -> Any:
        waiting = ctx.wait.get("review")
        if waiting is None:
            return step.run(ctx)  # a Wait naming a review, or the output when none is needed
        item = ctx.reviews.get(waiting)
        if item is None or item.status == "pending":
            return Wait(review=waiting, hours=ctx.wait.get("hours"))
        if item.status == "rejected":
            return Stop(
                "rejected", f"review {waiting} rejected by {item.decision.reviewer if item.decision else '?'}"
            )
        final = item.decision.final if item.decision else item.proposed
        return {
            "review": waiting,
            "decision": item.status,
            "data": final,
            "reviewer": item.decision.reviewer if item.decision else None,
        }

    def _wait(
        self, row: dict[str, Any], owner: str, step: Step, ctx: StepContext, wait: Wait, did: list[str]
    ) -> dict[str, Any]:
        now = self.clock()
        state: dict[str, Any] = dict(ctx.wait)
        if wait.review is not None:
            state["review"] = wait.review
            state["hours"] = wait.hours
            if "deadline" not in state and wait.hours:
                state["deadline"] = now + wait.hours * 3600
        state.update(wait.detail)
        new = msgspec.json.encode(state).decode()
        event = None if row["wait"] == new and row["status"] == "waiting" else "step.waiting"
        row["status"], row["wait"] = "waiting", new
        escalate = (
            state.get("deadline") is not None and now >= state["deadline"] and not state.get("escalated")
        )
        if escalate:  # once: then it waits for the person without reminders piling up
            state["escalated"] = True
            state["escalatedAt"] = iso_utc_from_timestamp(now)
            row["wait"] = msgspec.json.encode(state).decode()
            self._save(row, owner, event="step.escalated", step=step.name, review=state.get("review"))
            self._escalate(row, ctx, step, state)
        self._save(
            row,
            owner,
            event=event,
            release=True,
            step=step.name,
            **{k: v for k, v in state.items() if k in ("review", "actions", "deadline")},
        )
        if state.get("deadline") is not None and not state.get("escalated"):
            self.queue.advance(row["id"], delay=max(0.0, state["deadline"] - now) + 0.05)
        return {"workflow": row["id"], "did": [*did, "escalated" if escalate else "waiting"]}

    def _escalate(self, row: dict[str, Any], ctx: StepContext, step: Step, state: dict[str, Any]) -> None:
        """Overdue review: a To Do task (or the escalation webhook, if configured) for whoever escalations
        go to, proposed like any action so policy and lineage apply."""
        subject = ctx.inputs.get("subject") or row["definition"]
        hook = ctx.settings.get("escalationWebhook")
        if hook:
            kind, params = (
                "webhook",
                {
                    "url": hook,
                    "secret": ctx.settings.get("escalationWebhookSecret"),
                    "payload": {
                        "type": "deskpilot.review.overdue",
                        "workflowId": row["id"],
                        "review": state.get("review"),
                        "subject": subject,
                    },
                },
            )
        else:
            kind, params = (
                "todo_task",
                {
                    "title": f"Overdue review: {subject}"[:250],
                    "body": f"Deskpilot workflow {row['id']} has waited for review {state.get('review')} "
                    "past its deadline.",
                    "listName": ctx.settings.get("escalationList"),
                },
            )
        record, created = self.outbox.propose(
            kind,
            params,
            title=f"Escalate overdue review ({subject})"[:200],
            origin=f"{row['id']}:{step.name}:escalation",
            automation=row["automation"],
            workflow_id=row["id"],
            step=f"{step.name}:escalation",
            actor="workflow",
            certain=True,  # fixed content, not a model's output: the escalation itself is not in doubt
        )
        if created and record.status == "queued":
            self.queue.execute(record.id)

    # -- failure and compensation ----------------------------------------------------------------------

    def _step_failed(
        self, row: dict[str, Any], owner: str, step: Step, exc: Exception, did: list[str]
    ) -> dict[str, Any]:
        row["attempts"] += 1
        error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "workflow %s step %s failed (attempt %d): %s", row["id"], step.name, row["attempts"], error
        )
        if row["attempts"] < self.step_retries:
            delay = self.backoff_seconds * 2 ** (row["attempts"] - 1) * (0.5 + self.rng.random() / 2)
            row["next_attempt_ts"], row["error"] = self.clock() + delay, error
            self._save(
                row,
                owner,
                event="step.retry",
                release=True,
                step=step.name,
                error=error,
                attempt=row["attempts"],
                retry_in=round(delay, 3),
            )
            self.queue.advance(row["id"], delay=delay)
            return {"workflow": row["id"], "did": [*did, "retry"]}
        return self._fail(row, owner, step, error, did)

    def _fail(
        self, row: dict[str, Any], owner: str, step: Step, error: str, did: list[str]
    ) -> dict[str, Any]:
        row["status"], row["error"], row["wait"], row["next_attempt_ts"] = "compensating", error, None, None
        self._save(row, owner, event="workflow.failed", step=step.name, error=error)
        return self._compensate(row, owner, [*did, "failed"])

    def _compensate(self, row: dict[str, Any], owner: str, did: list[str]) -> dict[str, Any]:
        """Undo every executed action of this workflow, newest first, then settle as compensated."""
        actions = self.outbox.list(workflow_id=row["id"], limit=10_000)
        executed = [
            a.id
            for a in sorted(actions, key=lambda a: a.executed_at or "", reverse=True)
            if a.status in ("executed", "compensating")
        ]
        for action_id in self.outbox.request_compensation(
            executed, "workflow", f"workflow failed: {row['error']}"
        ):
            self.queue.compensate(action_id)
        # Actions still waiting for a person or the queue will never be needed now.
        with self.lineage.transaction() as conn:
            for action in actions:
                if action.status in ("pending_review", "held", "queued"):
                    conn.execute(
                        "UPDATE actions SET status = 'rejected', reason = ?, updated_at = ? WHERE id = ? "
                        "AND status IN ('pending_review', 'held', 'queued')",
                        ["workflow failed", iso_utc_from_timestamp(self.clock()), action.id],
                    )
        remaining = [
            a for a in self.outbox.list(workflow_id=row["id"], limit=10_000) if a.status == "compensating"
        ]
        if remaining:
            row["wait"] = msgspec.json.encode({"compensating": [a.id for a in remaining]}).decode()
            self._save(row, owner, release=True)
            return {"workflow": row["id"], "did": [*did, "compensating"]}
        row["status"], row["wait"] = "compensated", None
        self._save(row, owner, event="workflow.compensated", release=True, undone=[a for a in executed])
        return {"workflow": row["id"], "did": [*did, "compensated"]}

    # -- wake-ups from outside -------------------------------------------------------------------------

    def waiting_for_review(self, review_id: str) -> list[str]:
        with self.lineage.reading() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM workflows WHERE status = 'waiting' "
                    "AND json_extract(wait, '$.review') = ?",
                    [review_id],
                )
            ]

    def paused(self, automation: str) -> list[str]:
        with self.lineage.reading() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM workflows WHERE automation = ? AND status = 'waiting' "
                    "AND json_extract(wait, '$.automation') = 'disabled'",
                    [automation],
                )
            ]

    def recover(self, *, sweep: bool = False) -> list[str]:
        """Workflows to advance after a crash or restart: every active one whose owner is gone and whose
        retry time has come (advance() itself decides whether there is anything to do). A `sweep` (the
        worker's periodic pass) skips workflows waiting for a person whose deadline has not come: their
        wake-up is already scheduled, or comes with the decision."""
        now = self.clock()
        out = []
        with self.lineage.reading() as conn:
            for row in rows_as_dicts(
                conn.execute(
                    "SELECT id, owner, lease_ts, next_attempt_ts, status, wait FROM workflows "
                    "WHERE status IN ('running', 'waiting', 'compensating')"
                )
            ):
                if (row["next_attempt_ts"] or 0) > now:
                    continue
                if sweep and row["status"] == "waiting":
                    wait = msgspec.json.decode(row["wait"]) if row["wait"] else {}
                    if "review" in wait and (wait.get("escalated") or (wait.get("deadline") or 0) > now):
                        continue
                if claim_lapsed(row["owner"], row["lease_ts"], now):
                    out.append(row["id"])
        return out

    # -- reading ---------------------------------------------------------------------------------------

    @staticmethod
    def _row(conn: sqlite3.Connection, workflow_id: str) -> dict[str, Any]:
        rows = list(rows_as_dicts(conn.execute("SELECT * FROM workflows WHERE id = ?", [workflow_id])))
        if not rows:
            raise UnknownWorkflowError(f"no workflow {workflow_id!r}")
        return rows[0]

    def _record(self, row: dict[str, Any], actions: list[ActionRecord] | None = None) -> WorkflowRecord:
        definition = self.definitions.get(row["definition"].split("@")[0])
        steps = [s.name for s in definition.steps] if definition else []
        context = msgspec.json.decode(row["context"])
        return WorkflowRecord(
            id=row["id"],
            definition=row["definition"],
            automation=row["automation"],
            origin=row["origin"],
            event_seq=row.get("event_seq"),
            status=row["status"],
            step=row["step"],
            step_name=steps[row["step"]] if row["step"] < len(steps) else None,
            steps=steps,
            inputs=context.get("inputs", {}),
            outputs=context.get("outputs", {}),
            wait=msgspec.json.decode(row["wait"]) if row.get("wait") else None,
            attempts=row["attempts"],
            error=row.get("error"),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            actions=actions or [],
        )

    def get(self, workflow_id: str) -> WorkflowRecord:
        with self.lineage.reading() as conn:
            row = self._row(conn, workflow_id)
        return self._record(row, self.outbox.list(workflow_id=workflow_id, limit=1000))

    def list(
        self, *, status: str | None = None, automation: str | None = None, limit: int = 100
    ) -> list[WorkflowRecord]:
        clauses, params = [], []
        for column, value in (("status", status), ("automation", automation)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.lineage.reading() as conn:
            rows = list(
                rows_as_dicts(
                    conn.execute(
                        f"SELECT * FROM workflows {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                        [*params, limit],
                    )
                )
            )
        return [self._record(r) for r in rows]


@dataclass
class _Failed:
    reason: str


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _run_of(output: Any) -> str | None:
    return output.get("runId") if isinstance(output, dict) else None


def _last_run(outputs: dict[str, Any]) -> str | None:
    for output in reversed(list(outputs.values())):
        if isinstance(output, dict) and output.get("runId"):
            return str(output["runId"])
    return None
