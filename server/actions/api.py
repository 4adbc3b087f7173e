"""HTTP for actions, workflows, automations and trigger events.

The server proposes, decides and enqueues; the consumer (`deskpilot worker`) executes. Every handler
commits to the outbox first and enqueues after, so a server killed in between loses nothing: the
worker's sweeper finds the committed action and enqueues it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
import msgspec
from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta

from ..lineage import LineageStore
from ..settings import Settings
from ..workflows.definitions import DEFINITIONS
from ..workflows.engine import UnknownWorkflowError, WorkflowEngine, WorkflowRecord
from ..workflows.events import EventLog, StoredEvent
from .outbox import ActionRecord, ActionStateError, LogEntry, Outbox, UnknownActionError, UnknownAutomationError
from .policy import Automation, AutomationUpdate
from .queue import TaskQueue

__all__ = ["ActionsAPI", "Automations", "Workflows", "WorkflowServices"]


@dataclass
class WorkflowServices:
    """The outbox, queue, engine and event log of one process that proposes and starts, but never runs
    a step (the server, `deskpilot sync`, `deskpilot events replay`): no model, no adapters."""

    outbox: Outbox
    queue: TaskQueue
    engine: WorkflowEngine
    events: EventLog

    @classmethod
    def create(cls, settings: Settings, lineage: LineageStore, queue: TaskQueue | None = None) -> WorkflowServices:
        outbox = Outbox(lineage)
        queue = queue or TaskQueue(settings)
        engine = WorkflowEngine(outbox, queue, DEFINITIONS, triage_labels=settings.triage_labels)
        return cls(outbox=outbox, queue=queue, engine=engine, events=EventLog(outbox, engine))

    def requeue(self, *, sweep: bool = False) -> dict[str, int]:
        """Put back in line what a crash left between the outbox and the queue (`recover`s of the outbox
        and the engine). Duplicates are harmless: claims decide. A `sweep` leaves alone what was queued
        in the last 30 s, which the queue is about to deliver."""
        found = self.outbox.recover(stale_seconds=30.0 if sweep else 0.0)
        released = self.outbox.release_budget_holds()
        for action_id in [*found["execute"], *released]:
            self.queue.execute(action_id)
        for action_id in found["compensate"]:
            self.queue.compensate(action_id)
        workflows = self.engine.recover(sweep=sweep)
        for workflow_id in workflows:
            self.queue.advance(workflow_id)
        return {"execute": len(found["execute"]) + len(released), "compensate": len(found["compensate"]),
                "workflows": len(workflows)}

    def review_decided(self, review_id: str) -> None:
        for workflow_id in self.engine.waiting_for_review(review_id):
            self.queue.advance(workflow_id)


class _In(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    pass


class _Out(msgspec.Struct, rename="camel", kw_only=True):
    pass


class ActionIn(_In):
    """Propose an action. `origin` (default: the run, else the source item) scopes the idempotency key:
    the same kind, parameters and origin are one action."""

    kind: Literal["draft_reply", "calendar_event", "todo_task", "webhook", "file_document"]
    params: dict[str, Any]
    title: Annotated[str, Meta(min_length=1, max_length=300)] | None = None
    run_id: str | None = None
    source_ref: str | None = None
    origin: Annotated[str, Meta(max_length=500)] | None = None
    confidence: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    automation: str = "taskpane"
    actor: Annotated[str, Meta(min_length=1, max_length=200)] = "taskpane"


class DecisionIn(_In):
    reviewer: Annotated[str, Meta(min_length=1, max_length=200)]
    note: Annotated[str, Meta(max_length=2_000)] | None = None


class ActionsOut(_Out):
    actions: list[ActionRecord]
    counts: dict[str, int]


class ActionOut(_Out):
    action: ActionRecord
    created: bool = False
    history: list[LogEntry] = []


class WorkflowIn(_In):
    """Start an automation's workflow on an item from the task pane. `requestId` makes a retried request
    the same workflow."""

    automation: str
    inputs: dict[str, Any]
    request_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    actor: Annotated[str, Meta(min_length=1, max_length=200)] = "taskpane"


class WorkflowsOut(_Out):
    workflows: list[WorkflowRecord]


class WorkflowOut(_Out):
    workflow: WorkflowRecord
    created: bool = False
    history: list[LogEntry] = []


class AutomationsOut(_Out):
    automations: list[Automation]


class AutomationOut(_Out):
    automation: Automation
    released: list[str] = []
    resumed: list[str] = []


class AutomationPut(AutomationUpdate, forbid_unknown_fields=True):
    actor: Annotated[str, Meta(min_length=1, max_length=200)] = "user"


class EventsOut(_Out):
    events: list[StoredEvent]


class ReplayIn(_In):
    since: Annotated[int, Meta(ge=0)] = 0


class ReplayOut(_Out):
    events: int
    started: int


_ActionStatus = Literal[
    "pending_review", "queued", "executing", "executed", "failed", "rejected", "held", "compensating",
    "compensated", "pending", "proposed",
]


def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    return anyio.to_thread.run_sync(lambda: fn(*args))


async def _change(change: Callable[[], ActionRecord]) -> ActionRecord:
    """A person's change to one action, off the event loop: 404 for an unknown action, 409 when its
    state does not allow the change."""
    try:
        return await anyio.to_thread.run_sync(change)
    except UnknownActionError as exc:
        raise NotFoundException(str(exc)) from exc
    except ActionStateError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc


class ActionsAPI(Controller):
    path = "/v1/actions"
    tags = ["Actions"]

    @get("/", summary="Actions, newest first (status: pending = waiting for a person)")
    async def list_actions(
        self,
        workflow_services: NamedDependency[WorkflowServices],
        status: FromQuery[_ActionStatus | None] = None,
        workflow: FromQuery[str | None] = None,
        automation: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> ActionsOut:
        outbox = workflow_services.outbox
        wanted = {"pending": "pending_review", "proposed": "pending_review"}.get(status or "", status)

        def read() -> ActionsOut:
            return ActionsOut(actions=outbox.list(status=wanted, workflow_id=workflow, automation=automation,
                                                  limit=limit), counts=outbox.counts())

        return await anyio.to_thread.run_sync(read)

    @post("/", status_code=201, summary="Propose an action; policy decides whether a person must approve it")
    async def propose(self, data: JSONBody[ActionIn], workflow_services: NamedDependency[WorkflowServices]) -> ActionOut:
        services = workflow_services
        origin = data.origin or data.run_id or data.source_ref or f"taskpane:{uuid.uuid4().hex}"
        title = data.title or data.kind.replace("_", " ")
        try:
            record, created = await anyio.to_thread.run_sync(lambda: services.outbox.propose(
                data.kind, data.params, title=title, origin=origin, automation=data.automation,
                run_id=data.run_id, confidence=data.confidence, actor=data.actor))
        except msgspec.ValidationError as exc:
            raise ClientException(f"params for {data.kind}: {exc}") from exc
        except UnknownAutomationError as exc:
            raise ClientException(str(exc)) from exc
        if created and record.status == "queued":
            await _off_loop(services.queue.execute, record.id)
        return ActionOut(action=record, created=created)

    @get("/{action_id:str}", summary="One action, with its audit history")
    async def action(self, action_id: FromPath[str], workflow_services: NamedDependency[WorkflowServices]) -> ActionOut:
        outbox = workflow_services.outbox
        try:
            record = await _off_loop(outbox.get, action_id)
        except UnknownActionError as exc:
            raise NotFoundException(str(exc)) from exc
        return ActionOut(action=record, history=await _off_loop(outbox.history, action_id))

    async def _decide(self, services: WorkflowServices, action_id: str, approve: bool, data: DecisionIn) -> ActionOut:
        record = await _change(lambda: services.outbox.decide(
            action_id, approve=approve, actor=data.reviewer.strip(), note=data.note))
        if approve:
            await _off_loop(services.queue.execute, action_id)
        elif record.workflow_id:
            await _off_loop(services.queue.advance, record.workflow_id)
        return ActionOut(action=record)

    @post("/{action_id:str}/approve", status_code=200, summary="Approve a pending action: it is queued")
    async def approve(self, action_id: FromPath[str], data: JSONBody[DecisionIn],
                      workflow_services: NamedDependency[WorkflowServices]) -> ActionOut:
        return await self._decide(workflow_services, action_id, True, data)

    @post("/{action_id:str}/reject", status_code=200, summary="Reject a pending action: it never runs")
    async def reject(self, action_id: FromPath[str], data: JSONBody[DecisionIn],
                     workflow_services: NamedDependency[WorkflowServices]) -> ActionOut:
        return await self._decide(workflow_services, action_id, False, data)

    @post("/{action_id:str}/retry", status_code=200,
          summary="Run a failed action again with a fresh retry budget (not one of a workflow's)")
    async def retry(self, action_id: FromPath[str], data: JSONBody[DecisionIn],
                    workflow_services: NamedDependency[WorkflowServices]) -> ActionOut:
        services = workflow_services
        record = await _change(lambda: services.outbox.retry(action_id, actor=data.reviewer.strip(), note=data.note))
        await _off_loop(services.queue.execute, action_id)
        return ActionOut(action=record)


class Workflows(Controller):
    path = "/v1"
    tags = ["Workflows"]

    @get("/workflows", summary="Workflows, newest first")
    async def list_workflows(
        self,
        workflow_services: NamedDependency[WorkflowServices],
        status: FromQuery[str | None] = None,
        automation: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> WorkflowsOut:
        engine = workflow_services.engine
        return WorkflowsOut(workflows=await anyio.to_thread.run_sync(
            lambda: engine.list(status=status, automation=automation, limit=limit)))

    @get("/workflows/{workflow_id:str}", summary="One workflow with its actions and audit history")
    async def workflow(self, workflow_id: FromPath[str], workflow_services: NamedDependency[WorkflowServices]) -> WorkflowOut:
        services = workflow_services
        try:
            record = await _off_loop(services.engine.get, workflow_id)
        except UnknownWorkflowError as exc:
            raise NotFoundException(str(exc)) from exc
        return WorkflowOut(workflow=record, history=await _off_loop(services.outbox.history, workflow_id))

    @post("/workflows", status_code=202, summary="Start an automation's workflow on an item (task pane trigger)")
    async def start(self, data: JSONBody[WorkflowIn], workflow_services: NamedDependency[WorkflowServices]) -> WorkflowOut:
        services = workflow_services
        if not isinstance(data.inputs.get("text"), str) or not data.inputs["text"].strip():
            raise ClientException("inputs.text: the message or notes to work on is required")
        try:
            automation = await _off_loop(services.outbox.automation, data.automation)
        except UnknownAutomationError as exc:
            raise NotFoundException(str(exc)) from exc
        if automation.workflow is None:
            raise ClientException(f"automation {data.automation!r} has no workflow")
        if not automation.enabled:
            raise HTTPException(status_code=409, detail=f"automation {data.automation!r} is disabled")
        dedupe = f"taskpane:{data.request_id or uuid.uuid4().hex}"
        payload = {"automation": data.automation, "inputs": {**data.inputs, "source": "taskpane"},
                   "actor": data.actor}

        def trigger() -> tuple[WorkflowRecord, bool]:
            seq, _ = services.events.append("taskpane", "taskpane.request", dedupe, payload)
            started = services.events.dispatch(seq)
            if not started:
                raise HTTPException(status_code=409, detail=f"automation {data.automation!r} is disabled")
            return started[0]

        record, created = await anyio.to_thread.run_sync(trigger)
        return WorkflowOut(workflow=record, created=created)

    @get("/events", summary="Trigger events (append-only), oldest first")
    async def events(
        self,
        workflow_services: NamedDependency[WorkflowServices],
        since: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> EventsOut:
        log = workflow_services.events
        return EventsOut(events=await anyio.to_thread.run_sync(lambda: log.list(since=since, limit=limit)))

    @post("/events/replay", status_code=200, summary="Dispatch events again; starts only what never started")
    async def replay(self, data: JSONBody[ReplayIn], workflow_services: NamedDependency[WorkflowServices]) -> ReplayOut:
        log = workflow_services.events
        return ReplayOut(**await anyio.to_thread.run_sync(lambda: log.replay(since=data.since)))


class Automations(Controller):
    path = "/v1/automations"
    tags = ["Workflows"]

    @get("/", summary="Automations and their policies (kill switch, approval modes, daily budget)")
    async def list_automations(self, workflow_services: NamedDependency[WorkflowServices]) -> AutomationsOut:
        return AutomationsOut(automations=await _off_loop(workflow_services.outbox.automations))

    @get("/{name:str}", summary="One automation")
    async def automation(self, name: FromPath[str], workflow_services: NamedDependency[WorkflowServices]) -> AutomationOut:
        try:
            return AutomationOut(automation=await _off_loop(workflow_services.outbox.automation, name))
        except UnknownAutomationError as exc:
            raise NotFoundException(str(exc)) from exc

    @put("/{name:str}", status_code=200, summary="Change an automation's policy at runtime (partial update)")
    async def update(self, name: FromPath[str], data: JSONBody[AutomationPut],
                     workflow_services: NamedDependency[WorkflowServices]) -> AutomationOut:
        services = workflow_services
        changes = {f: getattr(data, f) for f in AutomationUpdate.__struct_fields__}
        update = AutomationUpdate(**changes)
        try:
            automation, released = await anyio.to_thread.run_sync(
                lambda: services.outbox.update_automation(name, update, data.actor.strip()))
        except UnknownAutomationError as exc:
            raise NotFoundException(str(exc)) from exc
        except ValueError as exc:
            raise ClientException(str(exc)) from exc
        resumed: list[str] = []
        if automation.enabled:
            resumed = await _off_loop(services.engine.paused, name)

        def enqueue() -> None:
            for action_id in released:
                services.queue.execute(action_id)
            for workflow_id in resumed:
                services.queue.advance(workflow_id)

        await anyio.to_thread.run_sync(enqueue)
        return AutomationOut(automation=automation, released=released, resumed=resumed)

