"""HTTP for actions: propose, list, approve, reject, try again.

The server proposes, decides and enqueues; the consumer (`deskpilot worker`) executes. Every handler
commits to the outbox first and enqueues after, so a server killed in between loses nothing: the
worker's sweeper finds the committed action and enqueues it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta

from deskpilot.server.actions.outbox import (
    ActionRecord,
    ActionStateError,
    LogEntry,
    Outbox,
    UnknownActionError,
    UnknownAutomationError,
)
from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.core.wire import In, Out

__all__ = ["ActionIn", "ActionOut", "ActionsAPI", "DecisionIn", "off_loop"]


class ActionIn(In):
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


class DecisionIn(In):
    reviewer: Annotated[str, Meta(min_length=1, max_length=200)]
    note: Annotated[str, Meta(max_length=2_000)] | None = None


class ActionsOut(Out):
    actions: list[ActionRecord]
    counts: dict[str, int]


class ActionOut(Out):
    action: ActionRecord
    created: bool = False
    history: list[LogEntry] = msgspec.field(default_factory=list)


_ActionStatus = Literal[
    "pending_review",
    "queued",
    "executing",
    "executed",
    "failed",
    "rejected",
    "held",
    "compensating",
    "compensated",
    "pending",
    "proposed",
]


def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
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
    tags = ("Actions",)

    @get("/", summary="Actions, newest first (status: pending = waiting for a person)")
    async def list_actions(
        self,
        outbox: NamedDependency[Outbox],
        status: FromQuery[_ActionStatus | None] = None,
        workflow: FromQuery[str | None] = None,
        automation: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> ActionsOut:
        wanted = {"pending": "pending_review", "proposed": "pending_review"}.get(status or "", status)

        def read() -> ActionsOut:
            return ActionsOut(
                actions=outbox.list(status=wanted, workflow_id=workflow, automation=automation, limit=limit),
                counts=outbox.counts(),
            )

        return await anyio.to_thread.run_sync(read)

    @post("/", status_code=201, summary="Propose an action; policy decides whether a person must approve it")
    async def propose(
        self, data: JSONBody[ActionIn], outbox: NamedDependency[Outbox], queue: NamedDependency[TaskQueue]
    ) -> ActionOut:
        origin = data.origin or data.run_id or data.source_ref or f"taskpane:{uuid.uuid4().hex}"
        title = data.title or data.kind.replace("_", " ")
        try:
            record, created = await anyio.to_thread.run_sync(
                lambda: outbox.propose(
                    data.kind,
                    data.params,
                    title=title,
                    origin=origin,
                    automation=data.automation,
                    run_id=data.run_id,
                    confidence=data.confidence,
                    actor=data.actor,
                )
            )
        except msgspec.ValidationError as exc:
            raise ClientException(f"params for {data.kind}: {exc}") from exc
        except UnknownAutomationError as exc:
            raise ClientException(str(exc)) from exc
        if created and record.status == "queued":
            await off_loop(queue.execute, record.id)
        return ActionOut(action=record, created=created)

    @get("/{action_id:str}", summary="One action, with its audit history")
    async def action(self, action_id: FromPath[str], outbox: NamedDependency[Outbox]) -> ActionOut:
        try:
            record = await off_loop(outbox.get, action_id)
        except UnknownActionError as exc:
            raise NotFoundException(str(exc)) from exc
        return ActionOut(action=record, history=await off_loop(outbox.history, action_id))

    async def _decide(
        self, outbox: Outbox, queue: TaskQueue, action_id: str, approve: bool, data: DecisionIn
    ) -> ActionOut:
        record = await _change(
            lambda: outbox.decide(action_id, approve=approve, actor=data.reviewer.strip(), note=data.note)
        )
        if approve:
            await off_loop(queue.execute, action_id)
        elif record.workflow_id:
            await off_loop(queue.advance, record.workflow_id)
        return ActionOut(action=record)

    @post("/{action_id:str}/approve", status_code=200, summary="Approve a pending action: it is queued")
    async def approve(
        self,
        action_id: FromPath[str],
        data: JSONBody[DecisionIn],
        outbox: NamedDependency[Outbox],
        queue: NamedDependency[TaskQueue],
    ) -> ActionOut:
        return await self._decide(outbox, queue, action_id, True, data)

    @post("/{action_id:str}/reject", status_code=200, summary="Reject a pending action: it never runs")
    async def reject(
        self,
        action_id: FromPath[str],
        data: JSONBody[DecisionIn],
        outbox: NamedDependency[Outbox],
        queue: NamedDependency[TaskQueue],
    ) -> ActionOut:
        return await self._decide(outbox, queue, action_id, False, data)

    @post(
        "/{action_id:str}/retry",
        status_code=200,
        summary="Run a failed action again with a fresh retry budget (not one of a workflow's)",
    )
    async def retry(
        self,
        action_id: FromPath[str],
        data: JSONBody[DecisionIn],
        outbox: NamedDependency[Outbox],
        queue: NamedDependency[TaskQueue],
    ) -> ActionOut:
        record = await _change(lambda: outbox.retry(action_id, actor=data.reviewer.strip(), note=data.note))
        await off_loop(queue.execute, action_id)
        return ActionOut(action=record)
