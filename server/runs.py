"""Run a job: wait for the model, stream it, time it, and record it in lineage whatever happens.

This is the one place where a generation meets the outside world: backends only yield
tokens; here we open the lineage run before the model starts (so a crash still leaves a trace), measure
queue wait, time to first token and total time, and close the run as ok, error or cancelled. HTTP and the
CLI both consume `execute()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import anyio
import msgspec

from deskpilot.inference import (
    Backend,
    BackendError,
    BackendInfo,
    ContextOverflow,
    Finished,
    Job,
    ModelBusy,
    Ticket,
    Token,
    input_digest,
)
from deskpilot.inference.extraction import Generated
from deskpilot.server.core.model_host import ModelHost
from deskpilot.server.core.wire import (
    DoneEvent,
    ErrorEvent,
    MetaEvent,
    PrepareOut,
    ProgressEvent,
    ResultEvent,
    TokenEvent,
    UsageOut,
)
from deskpilot.server.lineage import LineageStore, RunEnd, RunStart

__all__ = ["RunExecutor", "Structured", "StructuredOutcome"]

log = logging.getLogger("deskpilot.runs")

Event = MetaEvent | TokenEvent | DoneEvent | ErrorEvent | ProgressEvent | ResultEvent

# A structured run reports progress every this many tokens (a few times a second on a laptop CPU).
PROGRESS_EVERY = 16


class StructuredOutcome(msgspec.Struct, kw_only=True):
    """What a structured task made of a generation: the `result` event, and what lineage records."""

    event: ResultEvent
    output: Any
    validation: dict[str, Any]
    confidence: float


class Structured(Protocol):
    """A task whose output is structured (extraction, triage). `finish` runs on a worker thread once the
    model is done (it may read or write the database) and turns the generation into an outcome."""

    def finish(self, run_id: str, start: RunStart, generated: Generated) -> StructuredOutcome: ...


# The events of an admitted run: a run's own `Event`s, and whatever an endpoint adds (`/v1/ask`: sources).
E = TypeVar("E")


class Admitted(NamedTuple, Generic[E]):
    """An admitted run's events, and how to give its place in line back (idempotent; a no-op once the
    run holds the model)."""

    events: AsyncGenerator[E, None]
    release: Callable[[], None]


class RunExecutor:
    def __init__(self, host: ModelHost, lineage: LineageStore, *, retain_inputs: bool = False) -> None:
        self.host = host
        self.lineage = lineage
        self.retain_inputs = retain_inputs

    async def prepare(self, job: Job) -> PrepareOut:
        """Warm the model for `job` while it is idle; never delays a real request (see `Backend.prepare`)."""
        backend, gate = self.host.backend, self.host.gate
        if backend is None:
            return PrepareOut(prepared=False, reason="the model is still loading")
        if gate.busy or gate.waiting:
            return PrepareOut(prepared=False, reason="the model is busy")
        started = time.perf_counter()
        try:
            async with gate.slot():
                cached = await backend.prepare(job.request, should_stop=lambda: gate.waiting > 0)
        except ModelBusy:
            return PrepareOut(prepared=False, reason="the model is busy")
        except ContextOverflow as exc:
            return PrepareOut(prepared=False, reason=str(exc))
        return PrepareOut(
            prepared=True, cached_tokens=cached, ms=round((time.perf_counter() - started) * 1000, 1)
        )

    async def answer_without_model(
        self,
        job: Job,
        text: str,
        *,
        client: str = "api",
        source_ref: str | None = None,
        retrieved: list[dict[str, Any]] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """A fixed answer that needed no model (nothing relevant was retrieved), recorded like any run."""
        run_id = await anyio.to_thread.run_sync(
            self.lineage.open_run,
            RunStart(
                task=job.task,
                template_id=job.template.template_id,
                template_hash=job.template.content_hash,
                model_id="none",
                weights_digest="none",
                backend="none",
                parameters={"answered_without_model": True},
                input_digest=input_digest(job.input),
                input=job.input if self.retain_inputs else None,
                client=client,
                source_ref=source_ref,
                retrieved_chunks=retrieved or [],
            ),
        )
        await anyio.to_thread.run_sync(
            self.lineage.close_run,
            run_id,
            RunEnd(status="ok", output=text, total_ms=0.0, tokens_in=0, tokens_out=0),
        )
        yield MetaEvent(
            run_id=run_id,
            task=job.task,
            model="none",
            backend="none",
            template=job.template.template_id,
            truncated=False,
        )
        yield TokenEvent(text=text)
        yield DoneEvent(
            run_id=run_id,
            queue_ms=0.0,
            ttft_ms=0.0,
            total_ms=0.0,
            usage=UsageOut(prompt_tokens=0, completion_tokens=0, finish_reason="stop"),
        )

    def admit(self) -> Ticket:
        """Before a response starts: 503 if the model failed to load, 429 if the line is full."""
        self.host.check_available()
        return self.host.gate.reserve()

    async def admitted(
        self,
        build: Callable[[Ticket], AsyncGenerator[E, None] | Awaitable[AsyncGenerator[E, None]]],
    ) -> Admitted[E]:
        """The one admission path of every AI endpoint, in one order: a place in line first (429 or 503
        before any work is done), then `build(ticket)` prepares the run (retrieval, tokenizing, building
        the job) and returns its events. If preparing fails, the place is given back at once.

        Whoever serves the events calls `release` when its response is over, sent or cut short (the SSE
        response does, after its body): a client that leaves before the body starts never runs the
        events, so their own `finally` cannot give the place back. A stream collected unstarted gives it
        back too, as a last resort."""
        ticket = self.admit()
        try:
            built = build(ticket)
            events = await built if inspect.isawaitable(built) else built
        except BaseException:
            ticket.release()
            raise
        weakref.finalize(events, ticket.release)
        return Admitted(events, ticket.release)

    async def execute(
        self,
        job: Job,
        *,
        ticket: Ticket | None = None,
        client: str = "api",
        source_ref: str | None = None,
        retrieved: list[dict[str, Any]] | None = None,
        structured: Structured | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Events of one run. `ticket` (from `admit`) is this run's place in line; released when it ends.

        With `structured`, the tokens are not sent: `progress` events report how far the model is, then
        `structured.finish` turns the output into a `result` event, and lineage records its validation
        results and confidence with the run.

        The lineage run is opened before the model starts and closed however the run ends: ok, error (sent
        as an `error` event), or cancelled (the client went away or the server stopped).
        """
        try:
            backend = await self.host.ready()
        except BackendError as exc:
            if ticket is not None:
                ticket.release()
            yield ErrorEvent(code="model_unavailable", message=str(exc))
            return
        info = backend.info
        start = self._run_start(job, info, client=client, source_ref=source_ref, retrieved=retrieved)
        # Lineage writes are durable (fsync), so they run on a worker thread, not on the event loop.
        run = _Run(await self._open(start), start)
        yield MetaEvent(
            run_id=run.id,
            task=job.task,
            model=info.model_id,
            backend=info.backend,
            template=job.template.template_id,
            truncated=job.truncated,
        )
        try:
            # aclosing: when the client leaves mid-stream, the model's part is closed at once (decoding
            # stops, the gate is released) before the run is recorded as cancelled.
            async with contextlib.aclosing(self._generate(backend, job, ticket, run, structured)) as events:
                async for event in events:
                    yield event
        except (GeneratorExit, asyncio.CancelledError):
            run.cancelled()
            raise
        except Exception as exc:
            run.end, error = _failure(run.id, exc)
            yield error
        finally:
            if ticket is not None:
                ticket.release()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.lineage.close_run, run.id, run.end)

    async def _open(self, start: RunStart) -> str:
        """Open the run in lineage on a worker thread. A client that leaves meanwhile cancels the wait,
        not the write: the run is then closed as cancelled as soon as the write is done, so no run is
        left open until the next start marks it interrupted."""
        run_id = uuid.uuid4().hex
        opening = asyncio.ensure_future(anyio.to_thread.run_sync(self.lineage.open_run, start, run_id))
        try:
            await asyncio.shield(opening)
        except asyncio.CancelledError:
            end = RunEnd(status="cancelled", error="the client went away before the model started")

            def close_when_open(done: asyncio.Future[str]) -> None:
                if not done.cancelled() and done.exception() is None:
                    asyncio.get_running_loop().run_in_executor(None, self.lineage.close_run, run_id, end)

            opening.add_done_callback(close_when_open)
            raise
        return run_id

    def _run_start(
        self,
        job: Job,
        info: BackendInfo,
        *,
        client: str,
        source_ref: str | None,
        retrieved: list[dict[str, Any]] | None,
    ) -> RunStart:
        """What lineage records of a run before the model starts."""
        return RunStart(
            task=job.task,
            template_id=job.template.template_id,
            template_hash=job.template.content_hash,
            model_id=info.model_id,
            weights_digest=info.weights_digest,
            backend=info.backend,
            parameters={**job.request.parameters(), "truncated": job.truncated, **job.parameters},
            input_digest=input_digest(job.input),
            input=job.input if self.retain_inputs else None,
            client=client,
            source_ref=source_ref,
            retrieved_chunks=retrieved or [],
        )

    async def _generate(
        self, backend: Backend, job: Job, ticket: Ticket | None, run: _Run, structured: Structured | None
    ) -> AsyncGenerator[Event, None]:
        """The model's part of a run: a place at the model, the stream (tokens, or progress for a structured
        run), then the structured outcome and `done`. `run.end` is ok from when the output is complete."""
        accepted = time.perf_counter()
        if structured is not None and self.host.gate.busy:
            yield ProgressEvent(stage="waiting")
        max_tokens = job.request.max_tokens
        async with self.host.gate.slot(ticket):
            started = time.perf_counter()
            stream = backend.stream(job.request)
            try:
                async for item in stream:
                    if isinstance(item, Finished):
                        usage = item.usage
                        break
                    run.took(item, started, keep=structured is not None)
                    if structured is None:
                        yield TokenEvent(text=item.text)
                    elif len(run.tokens) % PROGRESS_EVERY == 1:
                        yield _progress(run.parts, len(run.tokens), max_tokens)
            finally:
                with anyio.CancelScope(shield=True):
                    await stream.aclose()  # stops decoding before the gate is released
        total = (time.perf_counter() - started) * 1000
        run.end = RunEnd(
            status="ok",
            output="".join(run.parts),
            ttft_ms=run.ttft,
            total_ms=total,
            cost=0.0,
            tokens_in=usage.prompt_tokens,
            tokens_out=usage.completion_tokens,
        )
        if structured is not None:
            yield ProgressEvent(stage="checking", tokens=len(run.tokens), max_tokens=max_tokens)
            outcome = await run.finish(structured, usage.finish_reason)
            yield outcome.event
        yield DoneEvent(
            run_id=run.id,
            queue_ms=round((started - accepted) * 1000, 2),
            ttft_ms=run.ttft and round(run.ttft, 2),
            total_ms=round(total, 2),
            usage=UsageOut(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                finish_reason=usage.finish_reason,
            ),
        )


class _Run:
    """One run as lineage will close it: what the model has made so far, and how the run ends."""

    def __init__(self, run_id: str, start: RunStart) -> None:
        self.id = run_id
        self.start = start
        self.end = RunEnd(status="cancelled")
        self.parts: list[str] = []
        self.tokens: list[Token] = []  # kept for structured runs only
        self.ttft: float | None = None

    def took(self, token: Token, started: float, *, keep: bool) -> None:
        if self.ttft is None:
            self.ttft = (time.perf_counter() - started) * 1000
        self.parts.append(token.text)
        if keep:
            self.tokens.append(token)

    async def finish(self, structured: Structured, finish_reason: str) -> StructuredOutcome:
        """The structured outcome of the complete output, made on a worker thread (it may use the database);
        lineage records its output, validation results and confidence with the run."""
        generated = Generated(text="".join(self.parts), tokens=self.tokens, finish_reason=finish_reason)
        outcome = await anyio.to_thread.run_sync(structured.finish, self.id, self.start, generated)
        self.end = msgspec.structs.replace(
            self.end, output=outcome.output, validation=outcome.validation, confidence=outcome.confidence
        )
        return outcome

    def cancelled(self) -> None:
        if self.end.status != "ok":  # a run that finished stays finished if the client leaves at the end
            self.end = RunEnd(
                status="cancelled",
                output="".join(self.parts),
                ttft_ms=self.ttft,
                error="the client went away or the server stopped",
            )


# The error codes of a failed run, for the client; the first class that matches names the error.
_ERROR_CODES: tuple[tuple[type[Exception], str], ...] = (
    (ModelBusy, "busy"),
    (ContextOverflow, "input_too_long"),
    (BackendError, "backend_error"),
)


def _failure(run_id: str, exc: Exception) -> tuple[RunEnd, ErrorEvent]:
    """How a run that raised `exc` ends, in lineage and for the client. Call it in the `except` block:
    an unexpected error is logged with its traceback and reaches the client only as "internal"."""
    for kind, code in _ERROR_CODES:
        if isinstance(exc, kind):
            return RunEnd(status="error", error=str(exc)), ErrorEvent(code=code, message=str(exc))
    log.exception("run %s failed", run_id)
    return (
        RunEnd(status="error", error=f"internal error: {exc}"),
        ErrorEvent(code="internal", message="internal error; see the server log"),
    )


_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


def _progress(parts: list[str], tokens: int, max_tokens: int) -> ProgressEvent:
    """Progress of a structured run, naming the last JSON key the model has written."""
    text = "".join(parts)
    keys = _KEY.findall(text[-400:])
    return ProgressEvent(
        stage="generating", tokens=tokens, max_tokens=max_tokens, field=keys[-1] if keys else None
    )
