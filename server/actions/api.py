"""HTTP for actions: propose, list, approve, reject, try again.

The server proposes, decides and enqueues; the consumer (`deskpilot worker`) executes. Every handler
commits to the outbox first and enqueues after, so a server killed in between loses nothing: the
worker's sweeper finds the committed action and enqueues it.

A person's decision (approve, reject, retry) names the person: `reviewer` is `{name, address}`, the
Office user as the task pane knows them, and the log records both. A proposal carries no confidence: the
server reads it from the run the proposal cites (`runId`). A webhook's URL must be an allowed receiver
(`destinations.py`), checked here after DNS resolution (400 `webhook_not_allowed`) and again when it runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import anyio
import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta

from deskpilot.server.actions._types import PARAMS_TYPES, WebhookParams
from deskpilot.server.actions.destinations import DestinationRefused, Destinations, HostNotFound
from deskpilot.server.actions.outbox import (
    ActionRecord,
    ActionStateError,
    LogEntry,
    Outbox,
    UnknownActionError,
    UnknownAutomationError,
)
from deskpilot.server.core.queue import TaskQueue
from deskpilot.server.core.wire import In, Out, Person
from deskpilot.server.settings import Settings
from deskpilot.server.web.errors import ApiError

__all__ = [
    "ActionIn",
    "ActionOut",
    "ActionsAPI",
    "DecisionIn",
    "WebhookNotAllowed",
    "check_webhook",
    "off_loop",
]


class WebhookNotAllowed(ApiError):
    """400: a webhook URL that is not an allowed receiver (`Settings.webhook_allow`), or does not resolve."""

    status_code = 400
    code = "webhook_not_allowed"


class ActionIn(In):
    """Propose an action. `origin` (default: the run, else the source item) scopes the idempotency key:
    the same kind, parameters and origin are one action. Its confidence is the cited run's (`runId`):
    none cited, or a run without one, is 0, so "below_threshold" asks a person. `actor`: the person who
    proposes it, if a person does ("taskpane" is logged otherwise)."""

    # In the OpenAPI document: `params` are those of the `kind` (checked in `propose`).
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "oneOf": [{"properties": {"kind": {"const": k}, "params": t}} for k, t in PARAMS_TYPES.items()]
    }

    kind: Literal["draft_reply", "calendar_event", "todo_task", "webhook", "file_document"]
    params: dict[str, Any]
    title: Annotated[str, Meta(min_length=1, max_length=300)] | None = None
    run_id: Annotated[str, Meta(max_length=200)] | None = None
    source_ref: str | None = None
    origin: Annotated[str, Meta(max_length=500)] | None = None
    automation: str = "taskpane"
    actor: Person | None = None


class DecisionIn(In):
    """A person's decision about one action: who (required), and why."""

    reviewer: Person
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


def check_webhook(settings: Settings, url: Any) -> None:
    """Refuse a webhook URL that is not an allowed receiver, with our error body (blocking: DNS)."""
    try:
        Destinations.from_settings(settings).check(url if isinstance(url, str) else "")
    except DestinationRefused as exc:
        raise WebhookNotAllowed(f"webhook URL refused: {exc}") from exc
    except HostNotFound as exc:
        raise WebhookNotAllowed(f"webhook URL refused: {exc}") from exc


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
        self,
        data: JSONBody[ActionIn],
        outbox: NamedDependency[Outbox],
        queue: NamedDependency[TaskQueue],
        app_settings: NamedDependency[Settings],
    ) -> ActionOut:
        origin = data.origin or data.run_id or data.source_ref or f"taskpane:{uuid.uuid4().hex}"
        title = data.title or data.kind.replace("_", " ")
        try:
            params = msgspec.convert(data.params, PARAMS_TYPES[data.kind])
        except msgspec.ValidationError as exc:
            raise ClientException(f"params for {data.kind}: {exc}") from exc
        if isinstance(params, WebhookParams):
            await off_loop(check_webhook, app_settings, params.url)
        try:
            record, created = await anyio.to_thread.run_sync(
                lambda: outbox.propose(
                    data.kind,
                    params,
                    title=title,
                    origin=origin,
                    automation=data.automation,
                    run_id=data.run_id,
                    actor=data.actor or "taskpane",
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
            lambda: outbox.decide(action_id, approve=approve, actor=data.reviewer, note=data.note)
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
        record = await _change(lambda: outbox.retry(action_id, actor=data.reviewer, note=data.note))
        await off_loop(queue.execute, action_id)
        return ActionOut(action=record)
