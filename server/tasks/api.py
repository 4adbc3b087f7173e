"""HTTP routes of the writing tasks. Thin: validate, admit, build a job, stream it (the work is in
`runs` and `inference`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import ServerSentEvent

from deskpilot.inference import Email, Job, draft_reply_job, rewrite_job, summarize_job
from deskpilot.inference.faithful import FaithfulChecker
from deskpilot.server.core.wire import EmailIn, PrepareOut
from deskpilot.server.runs import FaithfulCheck, RunExecutor, options_of
from deskpilot.server.settings import Settings
from deskpilot.server.tasks.faithful import summary_check
from deskpilot.server.tasks.wire import DraftReplyRequest, RewriteRequest, SummarizeRequest
from deskpilot.server.web.sse import sse_response

__all__ = ["AITasks", "as_email"]


def as_email(e: EmailIn) -> Email:
    return Email(body=e.body, subject=e.subject, sender=e.sender, to=tuple(e.to), cc=tuple(e.cc), date=e.date)


def _summarize_job(data: SummarizeRequest) -> Callable[[int], Job]:
    """The job, for a model's context length (its profile is chosen when the run starts)."""
    return lambda context_length: summarize_job(
        context_length=context_length,
        text=data.text,
        email=as_email(data.email) if data.email else None,
        thread=tuple(as_email(m) for m in data.thread),
        sentences=data.sentences,
        length=data.length,
    )


def _draft_job(data: DraftReplyRequest) -> Callable[[int], Job]:
    return lambda context_length: draft_reply_job(
        context_length=context_length,
        email=as_email(data.email),
        thread=tuple(as_email(m) for m in data.thread),
        tone=data.tone,
        length=data.length,
        instructions=data.instructions,
        signature=data.signature,
    )


def _rewrite_job(data: RewriteRequest) -> Callable[[int], Job]:
    return lambda context_length: rewrite_job(
        context_length=context_length,
        text=data.text,
        tone=data.tone,
        instructions=data.instructions,
    )


class AITasks(Controller):
    path = "/v1"
    tags = ("AI tasks",)

    async def _stream(
        self,
        executor: RunExecutor,
        task: str,
        job: Callable[[int], Job],
        data: SummarizeRequest | DraftReplyRequest | RewriteRequest,
        settings: Settings,
        stopping: asyncio.Event,
        check: FaithfulCheck | None = None,
    ) -> ServerSentEvent:
        options = options_of(data)
        run = await executor.admitted(
            lambda ticket: executor.execute(
                job,
                ticket=ticket,
                client=data.client,
                source_ref=data.source_ref,
                options=options,
                check=check,
            ),
            task=task,
            options=options,
        )
        return sse_response(
            run.events, release=run.release, keepalive=settings.keepalive_seconds, stopping=stopping
        )

    @post("/summarize", status_code=200, summary="Summarize text or an email thread (SSE stream)")
    async def summarize(
        self,
        data: JSONBody[SummarizeRequest],
        executor: NamedDependency[RunExecutor],
        checker: NamedDependency[FaithfulChecker],
        app_settings: NamedDependency[Settings],
        stopping: NamedDependency[asyncio.Event],
    ) -> ServerSentEvent:
        """The tokens stream as the model writes them; then a `grounded` event says which sentences the
        email supports, and which are quoted from it instead (see `tasks/faithful.py`)."""
        check = summary_check(checker, data)
        return await self._stream(
            executor, "summarize", _summarize_job(data), data, app_settings, stopping, check=check
        )

    @post(
        "/prepare", status_code=200, summary="Warm the model for a summary of this item (call when it opens)"
    )
    async def prepare(
        self, data: JSONBody[SummarizeRequest], executor: NamedDependency[RunExecutor]
    ) -> PrepareOut:
        """The task pane calls this when an item opens. While the model is idle it reads the item ahead
        of time, so that when the user clicks Summarize the first words appear at once. It gives way to
        any real request and records nothing: no output is produced."""
        return await executor.prepare("summarize", _summarize_job(data), options_of(data))

    @post("/draft-reply", status_code=200, summary="Draft a reply to an email (SSE stream)")
    async def draft_reply(
        self,
        data: JSONBody[DraftReplyRequest],
        executor: NamedDependency[RunExecutor],
        app_settings: NamedDependency[Settings],
        stopping: NamedDependency[asyncio.Event],
    ) -> ServerSentEvent:
        return await self._stream(executor, "draft_reply", _draft_job(data), data, app_settings, stopping)

    @post("/rewrite", status_code=200, summary="Rewrite a selected passage in a tone (SSE stream)")
    async def rewrite(
        self,
        data: JSONBody[RewriteRequest],
        executor: NamedDependency[RunExecutor],
        app_settings: NamedDependency[Settings],
        stopping: NamedDependency[asyncio.Event],
    ) -> ServerSentEvent:
        return await self._stream(executor, "rewrite", _rewrite_job(data), data, app_settings, stopping)
