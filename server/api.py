"""HTTP routes of the AI tasks. Thin: validate, build a job, stream it (the work is in `runs` and `inference`)."""

from __future__ import annotations

import asyncio
import weakref

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent

from . import __version__
from deskpilot.inference import Email, Job, Ticket, draft_reply_job, rewrite_job, summarize_job

from .lineage import LineageStore, Run
from .model_host import ModelHost
from .runs import RunExecutor
from .schemas import (
    DraftReplyRequest,
    EmailIn,
    Health,
    ModelInfo,
    ModelsOut,
    PrepareOut,
    RewriteRequest,
    RunOut,
    SummarizeRequest,
)
from .settings import Settings
from .sse import sse_response

__all__ = ["AITasks", "Status"]


def _email(e: EmailIn) -> Email:
    return Email(body=e.body, subject=e.subject, sender=e.sender, to=tuple(e.to), cc=tuple(e.cc), date=e.date)


def _context_length(host: ModelHost) -> int:
    # Before the model has loaded we budget for the configured context; the backend re-checks exactly.
    return host.backend.info.context_length if host.backend else 4096


def _summarize_job(data: SummarizeRequest, executor: RunExecutor) -> Job:
    return summarize_job(
        context_length=_context_length(executor.host),
        text=data.text,
        email=_email(data.email) if data.email else None,
        thread=tuple(_email(m) for m in data.thread),
        sentences=data.sentences,
    )


def _stream(executor: RunExecutor, job: Job, ticket: Ticket, client: str, source_ref: str | None,
            settings: Settings, stopping: asyncio.Event) -> ServerSentEvent:
    events = executor.execute(job, ticket=ticket, client=client, source_ref=source_ref)
    # A client that leaves before the body starts never runs the stream: its place in line is freed when
    # the unstarted stream is collected.
    weakref.finalize(events, ticket.release)
    return sse_response(events, keepalive=settings.keepalive_seconds, stopping=stopping)


class AITasks(Controller):
    path = "/v1"
    tags = ["AI tasks"]

    @post("/summarize", status_code=200, summary="Summarize text or an email thread (SSE stream)")
    async def summarize(
        self, data: JSONBody[SummarizeRequest], executor: NamedDependency[RunExecutor], settings: NamedDependency[Settings],
        stopping: NamedDependency[asyncio.Event],
    ) -> ServerSentEvent:
        ticket = executor.admit()
        job = _summarize_job(data, executor)
        return _stream(executor, job, ticket, data.client, data.source_ref, settings, stopping)

    @post("/prepare", status_code=200, summary="Warm the model for a summary of this item (call when it opens)")
    async def prepare(self, data: JSONBody[SummarizeRequest], executor: NamedDependency[RunExecutor]) -> PrepareOut:
        """The task pane calls this when an item opens. While the model is idle it reads the item ahead
        of time, so that when the user clicks Summarize the first words appear at once. It gives way to
        any real request and records nothing: no output is produced."""
        return await executor.prepare(_summarize_job(data, executor))

    @post("/draft-reply", status_code=200, summary="Draft a reply to an email (SSE stream)")
    async def draft_reply(
        self, data: JSONBody[DraftReplyRequest], executor: NamedDependency[RunExecutor], settings: NamedDependency[Settings],
        stopping: NamedDependency[asyncio.Event],
    ) -> ServerSentEvent:
        ticket = executor.admit()
        job = draft_reply_job(
            context_length=_context_length(executor.host),
            email=_email(data.email),
            thread=tuple(_email(m) for m in data.thread),
            tone=data.tone,
            length=data.length,
            instructions=data.instructions,
            signature=data.signature,
        )
        return _stream(executor, job, ticket, data.client, data.source_ref, settings, stopping)

    @post("/rewrite", status_code=200, summary="Rewrite a selected passage in a tone (SSE stream)")
    async def rewrite(
        self, data: JSONBody[RewriteRequest], executor: NamedDependency[RunExecutor],
        settings: NamedDependency[Settings], stopping: NamedDependency[asyncio.Event],
    ) -> ServerSentEvent:
        ticket = executor.admit()
        job = rewrite_job(context_length=_context_length(executor.host), text=data.text, tone=data.tone,
                          instructions=data.instructions)
        return _stream(executor, job, ticket, data.client, data.source_ref, settings, stopping)

    @get("/runs/{run_id:str}", summary="One run's lineage record")
    async def run(self, run_id: FromPath[str], lineage: NamedDependency[LineageStore]) -> RunOut:
        run: Run | None = lineage.get_run(run_id)
        if run is None:
            raise NotFoundException(f"no run {run_id!r}")
        return RunOut.from_run(run)

    @get("/models", summary="The loaded model, its state and its queue")
    async def models(self, executor: NamedDependency[RunExecutor]) -> ModelsOut:
        host = executor.host
        models = []
        if host.backend is not None:
            info = host.backend.info
            models.append(ModelInfo(id=info.model_id, backend=info.backend, weights_digest=info.weights_digest,
                                    context_length=info.context_length,
                                    cost_per_1k_tokens=info.cost_per_1k_tokens))
        return ModelsOut(state=host.state, error=host.error, models=models, busy=host.gate.busy,
                         waiting=host.gate.waiting, max_waiting=host.gate.max_waiting)


class Status(Controller):
    tags = ["status"]

    @get("/healthz", summary="Liveness: answers as soon as the server is up, before the model has loaded")
    async def healthz(self, executor: NamedDependency[RunExecutor]) -> Health:
        return Health(status="ok", version=__version__, model=executor.host.state)
