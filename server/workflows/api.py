"""HTTP for workflows, automations and trigger events.

`POST /v1/workflows` is the task pane's trigger: an event in the append-only log, dispatched to the
automation's workflow. Automations are changed at runtime (`PUT /v1/automations/{name}`): a kill switch
that holds queued actions and pauses workflows, and what releasing it puts back in line.

A policy change names the person who makes it (`actor`: `{name, address}`). One that loosens approval
(a kind to a less strict mode, a lower threshold, review off) needs `confirmLoosening: true` (else 409
`confirmation_required`, saying what would loosen), and is refused when IT set
`allow_loosening_approval = false` (403 `loosening_forbidden`). Webhook URLs in an automation's settings
must be allowed receivers (400 `webhook_not_allowed`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

import anyio
import msgspec
from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta, field

from deskpilot.server.actions.api import check_webhook, off_loop
from deskpilot.server.actions.outbox import LogEntry, UnknownAutomationError
from deskpilot.server.actions.policy import (
    Automation,
    AutomationUpdate,
    LooseningForbidden,
    LooseningNotConfirmed,
)
from deskpilot.server.core.db import MAX_SAFE_INT
from deskpilot.server.core.wire import NOT_BLANK, In, Out, Person
from deskpilot.server.settings import Settings
from deskpilot.server.web.errors import ApiError
from deskpilot.server.workflows.engine import UnknownWorkflowError, WorkflowRecord
from deskpilot.server.workflows.events import StoredEvent
from deskpilot.server.workflows.services import WorkflowServices

__all__ = ["AutomationPut", "Automations", "ConfirmationRequired", "LooseningNotAllowed", "Workflows"]

# Automation settings that name a webhook URL (definitions.py): checked like a proposed webhook.
_WEBHOOK_SETTINGS = ("financeWebhook", "escalationWebhook")


class ConfirmationRequired(ApiError):
    """409: the change loosens approval; send it again with `confirmLoosening: true` to confirm."""

    status_code = 409
    code = "confirmation_required"


class LooseningNotAllowed(ApiError):
    """403: IT does not allow loosening approval here (`allow_loosening_approval = false`)."""

    status_code = 403
    code = "loosening_forbidden"


class WorkflowIn(In):
    """Start an automation's workflow on an item from the task pane. `requestId` makes a retried request
    the same workflow."""

    # In the OpenAPI document: `inputs.text`, the message or notes to work on, is required (`start`).
    # Said with if/then, which the pane's type generator leaves out: its `inputs` stay a plain record.
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "properties": {
            "inputs": {
                "if": {"type": "object"},
                "then": {
                    "required": ["text"],
                    "properties": {"text": {"type": "string", "pattern": NOT_BLANK}},
                },
            }
        }
    }

    automation: str
    inputs: dict[str, Any]
    request_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    actor: Person | None = None  # the person who asks, if a person does ("taskpane" is logged otherwise)


class WorkflowsOut(Out):
    workflows: list[WorkflowRecord]


class WorkflowOut(Out):
    workflow: WorkflowRecord
    created: bool = False
    history: list[LogEntry] = field(default_factory=list)


class AutomationsOut(Out):
    automations: list[Automation]


class AutomationOut(Out):
    automation: Automation
    released: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)


class AutomationPut(AutomationUpdate, forbid_unknown_fields=True):
    """A partial update, by a person (required). `confirmLoosening`: the person confirmed a change that
    loosens approval (the pane asks first)."""

    actor: Person
    confirm_loosening: bool = False


class EventsOut(Out):
    events: list[StoredEvent]


class ReplayIn(In):
    since: Annotated[int, Meta(ge=0, le=MAX_SAFE_INT)] = 0


class ReplayOut(Out):
    events: int
    started: int


class Workflows(Controller):
    path = "/v1"
    tags = ("Workflows",)

    @get("/workflows", summary="Workflows, newest first")
    async def list_workflows(
        self,
        workflow_services: NamedDependency[WorkflowServices],
        status: FromQuery[str | None] = None,
        automation: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> WorkflowsOut:
        engine = workflow_services.engine
        return WorkflowsOut(
            workflows=await anyio.to_thread.run_sync(
                lambda: engine.list(status=status, automation=automation, limit=limit)
            )
        )

    @get("/workflows/{workflow_id:str}", summary="One workflow with its actions and audit history")
    async def workflow(
        self, workflow_id: FromPath[str], workflow_services: NamedDependency[WorkflowServices]
    ) -> WorkflowOut:
        services = workflow_services
        try:
            record = await off_loop(services.engine.get, workflow_id)
        except UnknownWorkflowError as exc:
            raise NotFoundException(str(exc)) from exc
        return WorkflowOut(workflow=record, history=await off_loop(services.outbox.history, workflow_id))

    @post(
        "/workflows", status_code=202, summary="Start an automation's workflow on an item (task pane trigger)"
    )
    async def start(
        self, data: JSONBody[WorkflowIn], workflow_services: NamedDependency[WorkflowServices]
    ) -> WorkflowOut:
        services = workflow_services
        if not isinstance(data.inputs.get("text"), str) or not data.inputs["text"].strip():
            raise ClientException("inputs.text: the message or notes to work on is required")
        try:
            automation = await off_loop(services.outbox.automation, data.automation)
        except UnknownAutomationError as exc:
            raise NotFoundException(str(exc)) from exc
        if automation.workflow is None:
            raise ClientException(f"automation {data.automation!r} has no workflow")
        if not automation.enabled:
            raise HTTPException(status_code=409, detail=f"automation {data.automation!r} is disabled")
        dedupe = f"taskpane:{data.request_id or uuid.uuid4().hex}"
        payload = {
            "automation": data.automation,
            "inputs": {**data.inputs, "source": "taskpane"},
            "actor": msgspec.to_builtins(data.actor) if data.actor else "taskpane",
        }

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
        since: Annotated[int, QueryParameter(ge=0, le=MAX_SAFE_INT)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> EventsOut:
        log = workflow_services.events
        return EventsOut(events=await anyio.to_thread.run_sync(lambda: log.list(since=since, limit=limit)))

    @post("/events/replay", status_code=200, summary="Dispatch events again; starts only what never started")
    async def replay(
        self, data: JSONBody[ReplayIn], workflow_services: NamedDependency[WorkflowServices]
    ) -> ReplayOut:
        log = workflow_services.events
        return ReplayOut(**await anyio.to_thread.run_sync(lambda: log.replay(since=data.since)))


class Automations(Controller):
    path = "/v1/automations"
    tags = ("Workflows",)

    @get("/", summary="Automations and their policies (kill switch, approval modes, daily budget)")
    async def list_automations(self, workflow_services: NamedDependency[WorkflowServices]) -> AutomationsOut:
        return AutomationsOut(automations=await off_loop(workflow_services.outbox.automations))

    @get("/{name:str}", summary="One automation")
    async def automation(
        self, name: FromPath[str], workflow_services: NamedDependency[WorkflowServices]
    ) -> AutomationOut:
        try:
            return AutomationOut(automation=await off_loop(workflow_services.outbox.automation, name))
        except UnknownAutomationError as exc:
            raise NotFoundException(str(exc)) from exc

    @put("/{name:str}", status_code=200, summary="Change an automation's policy at runtime (partial update)")
    async def update(
        self,
        name: FromPath[str],
        data: JSONBody[AutomationPut],
        workflow_services: NamedDependency[WorkflowServices],
        app_settings: NamedDependency[Settings],
    ) -> AutomationOut:
        services = workflow_services
        changes = {f: getattr(data, f) for f in AutomationUpdate.__struct_fields__}
        update = AutomationUpdate(**changes)
        if isinstance(data.settings, dict):
            for key in _WEBHOOK_SETTINGS:
                if data.settings.get(key) is not None:
                    await off_loop(check_webhook, app_settings, data.settings[key])
        try:
            automation, released = await anyio.to_thread.run_sync(
                lambda: services.outbox.update_automation(
                    name,
                    update,
                    data.actor,
                    confirm_loosening=data.confirm_loosening,
                    allow_loosening=app_settings.allow_loosening_approval,
                )
            )
        except UnknownAutomationError as exc:
            raise NotFoundException(str(exc)) from exc
        except LooseningForbidden as exc:
            raise LooseningNotAllowed(str(exc)) from exc
        except LooseningNotConfirmed as exc:
            raise ConfirmationRequired(
                f'{exc}. A person must confirm this: send the change again with "confirmLoosening": true.'
            ) from exc
        except ValueError as exc:
            raise ClientException(str(exc)) from exc
        resumed: list[str] = []
        if automation.enabled:
            resumed = await off_loop(services.engine.paused, name)

        def enqueue() -> None:
            for action_id in released:
                services.queue.execute(action_id)
            for workflow_id in resumed:
                services.queue.advance(workflow_id)

        await anyio.to_thread.run_sync(enqueue)
        return AutomationOut(automation=automation, released=released, resumed=resumed)
