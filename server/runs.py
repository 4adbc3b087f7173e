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
import threading
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import anyio
import msgspec
from opentelemetry.trace import set_span_in_context

from deskpilot.inference import (
    Backend,
    BackendError,
    BackendInfo,
    ContextOverflow,
    Finished,
    GenerationRequest,
    Job,
    ModelBusy,
    Ticket,
    Token,
    input_digest,
)
from deskpilot.inference.extraction import Generated
from deskpilot.inference.faithful import Faithful
from deskpilot.server.core.model_host import ModelHost
from deskpilot.server.core.telemetry import Telemetry, trace_id_of
from deskpilot.server.core.wire import (
    DoneEvent,
    ErrorEvent,
    GroundedDroppedOut,
    GroundedEvent,
    GroundedSentenceOut,
    MetaEvent,
    PrepareOut,
    ProgressEvent,
    ResultEvent,
    RunIn,
    SourceSentenceOut,
    TokenEvent,
    UsageOut,
)
from deskpilot.server.lineage import LineageStore, Run, RunEnd, RunStart
from deskpilot.server.models.cache import ResultCache, cache_key
from deskpilot.server.models.privacy import Egress, PiiBlocked, Privacy
from deskpilot.server.models.registry import ModelRegistry, UnknownProfile
from deskpilot.server.models.router import Candidate, NoRoute, Plan, Router
from deskpilot.server.models.usage import Budgets, run_cost

__all__ = [
    "FaithfulCheck",
    "JobSource",
    "RunExecutor",
    "RunOptions",
    "Structured",
    "StructuredOutcome",
    "options_of",
]

log = logging.getLogger("deskpilot.runs")

Event = MetaEvent | TokenEvent | DoneEvent | ErrorEvent | ProgressEvent | ResultEvent | GroundedEvent

# A structured run reports progress every this many tokens (a few times a second on a laptop CPU).
PROGRESS_EVERY = 16


class StructuredOutcome(msgspec.Struct, kw_only=True):
    """What a structured task made of a generation: the `result` event, and what lineage records."""

    event: ResultEvent | GroundedEvent
    output: Any
    validation: dict[str, Any]
    confidence: float


class Structured(Protocol):
    """A task whose output is structured (extraction, triage). `finish` runs on a worker thread once the
    model is done (it may read or write the database) and turns the generation into an outcome."""

    def finish(self, run_id: str, start: RunStart, generated: Generated) -> StructuredOutcome: ...


class FaithfulCheck:
    """The check after a text run (a summary, an answer): its tokens stream as they come, and once the
    model is done `check(text)` runs on a worker thread; its verdict is a `grounded` event before `done`,
    and lineage keeps it as the run's validation (what was dropped and why). The run's output stays the
    model's own text, so a cached answer is checked again the same way.

    `prepare` (embedding the source's sentences) starts on a thread at the first token (`begin`), so that
    the check after the last token has little left to do; not earlier, where it would slow the reading
    of the prompt and with it the first words."""

    def __init__(
        self, check: Callable[[str], Faithful], *, prepare: Callable[[], object] | None = None
    ) -> None:
        self.check = check
        self.prepare = prepare
        self._preparing: threading.Thread | None = None

    def begin(self) -> None:
        """Start `prepare` (once)."""
        if self.prepare is not None and self._preparing is None:
            self._preparing = threading.Thread(target=self.prepare, name="faithful-prepare", daemon=True)
            self._preparing.start()

    def finish(self, run_id: str, start: RunStart, generated: Generated) -> StructuredOutcome:
        began = time.perf_counter()
        if self._preparing is not None:
            self._preparing.join()
        faithful = self.check(generated.text)
        ms = round((time.perf_counter() - began) * 1000, 2)
        return StructuredOutcome(
            event=grounded_event(run_id, start.task, faithful, ms),
            output=generated.text,
            validation={"faithful": faithful.record(), "check_ms": ms},
            confidence=faithful.supported / faithful.written if faithful.written else 0.0,
        )


def grounded_event(run_id: str, task: str, faithful: Faithful, check_ms: float) -> GroundedEvent:
    def sentence(s: Any) -> SourceSentenceOut | None:
        if s is None:
            return None
        return SourceSentenceOut(index=s.index, part=s.part, start=s.start, end=s.end, text=s.text)

    return GroundedEvent(
        run_id=run_id,
        task=task,
        sentences=[
            GroundedSentenceOut(
                text=k.text, kind=k.kind, source_sentence=sentence(k.source), score=round(k.score, 3)
            )
            for k in faithful.sentences
        ],
        dropped=[
            GroundedDroppedOut(text=d.text, reason=d.reason, replaced_by=d.replaced_by)
            for d in faithful.dropped
        ],
        written=faithful.written,
        supported=faithful.supported,
        fallback=faithful.fallback,
        check_ms=check_ms,
    )


# The events of an admitted run: a run's own `Event`s, and whatever an endpoint adds (`/v1/ask`: sources).
E = TypeVar("E")


class Admitted(NamedTuple, Generic[E]):
    """An admitted run's events, and how to give its place in line back (idempotent; a no-op once the
    run holds the model)."""

    events: AsyncGenerator[E, None]
    release: Callable[[], None]


class RunOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a request may ask of routing: a profile by name (instead of the task's route), that its input
    is sensitive (it never goes to a remote profile), and whether a recorded answer may be reused."""

    profile: str | None = None
    sensitive: bool = False
    cache: bool = True


def options_of(request: RunIn) -> RunOptions:
    return RunOptions(profile=request.profile, sensitive=request.sensitive, cache=request.cache)


# A job, or what builds it for a model's context length (so a fallback with a smaller context still fits).
JobSource = Job | Callable[[int], Job]


class _FellThrough(Exception):
    """An attempt failed before its first token and another profile may take the request."""

    def __init__(self, run_id: str | None, reason: str) -> None:
        super().__init__(reason)
        self.run_id = run_id


class RunExecutor:
    def __init__(
        self,
        models: ModelRegistry,
        lineage: LineageStore,
        *,
        retain_inputs: bool = False,
        result_cache: bool = True,
        telemetry: Telemetry | None = None,
        on_input: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """`on_input(task, input)` sees every request's input before routing (the drift monitor's hook:
        it must only queue, it is on the request's path)."""
        self.models = models
        self.on_input = on_input
        self.telemetry = telemetry or Telemetry()
        self.lineage = lineage
        self.retain_inputs = retain_inputs
        self.budgets = Budgets(models.profiles, models.routes, lineage)
        self.router = Router(models, self.budgets)
        self.cache = ResultCache(lineage) if result_cache else None
        self.privacy = Privacy()

    @property
    def host(self) -> ModelHost:
        """The host of the default route's first profile (the model `/healthz` and `/v1/models` report)."""
        return self.router.primary("default")

    async def prepare(self, task: str, source: JobSource, options: RunOptions | None = None) -> PrepareOut:
        """Warm the model a `task` request would go to first, while it is idle; never delays a real
        request (see `Backend.prepare`)."""
        options = options or RunOptions()
        try:
            host = self.router.primary(task, options.profile)
        except UnknownProfile as exc:
            return PrepareOut(prepared=False, reason=str(exc))
        job = source if isinstance(source, Job) else source(host.context_length())
        backend, gate = host.backend, host.gate
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
        start = RunStart(
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
        )
        run_id = await anyio.to_thread.run_sync(self.lineage.open_run, start)
        end = RunEnd(status="ok", output=text, total_ms=0.0, tokens_in=0, tokens_out=0)
        await anyio.to_thread.run_sync(self.lineage.close_run, run_id, end)
        meta = MetaEvent(
            run_id=run_id,
            task=job.task,
            model="none",
            backend="none",
            template=job.template.template_id,
            truncated=False,
        )
        for event in _fixed_answer(meta, text, total_ms=0.0):
            yield event

    def admit(self, task: str = "default", options: RunOptions | None = None) -> Ticket:
        """Before a response starts: 400 for an unknown profile, 429 when every profile's budget is spent
        (`NoRoute`), 503 if the first profile failed to load, 429 if its line is full."""
        options = options or RunOptions()
        with self.telemetry.span("admission", task=task):
            plan = self.router.plan(
                task, input_tokens=0, sensitive=options.sensitive, profile=options.profile
            )
            host = plan.candidates[0].host
            host.check_available()
            return host.gate.reserve()

    async def admitted(
        self,
        build: Callable[[Ticket], AsyncGenerator[E, None] | Awaitable[AsyncGenerator[E, None]]],
        *,
        task: str = "default",
        options: RunOptions | None = None,
    ) -> Admitted[E]:
        """The one admission path of every AI endpoint, in one order: a place in line first (4xx or 503
        before any work is done), then `build(ticket)` prepares the run (retrieval, tokenizing, building
        the job) and returns its events. If preparing fails, the place is given back at once.

        Whoever serves the events calls `release` when its response is over, sent or cut short (the SSE
        response does, after its body): a client that leaves before the body starts never runs the
        events, so their own `finally` cannot give the place back. A stream collected unstarted gives it
        back too, as a last resort."""
        ticket = self.admit(task, options)
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
        job: JobSource,
        *,
        ticket: Ticket | None = None,
        client: str = "api",
        source_ref: str | None = None,
        retrieved: list[dict[str, Any]] | None = None,
        structured: Structured | None = None,
        check: FaithfulCheck | None = None,
        options: RunOptions | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Events of one request. `ticket` (from `admit`) is its place in line; released when it ends.

        The router orders the profiles that may answer; each is tried in turn until one produces its first
        token. Every attempt is a lineage run of its own, opened before its model starts (so a crash still
        leaves a trace) and closed as ok, error or cancelled; an attempt that failed before its first token
        is closed as an error and the request goes on with the next profile, whose `meta` event and
        lineage record name the profile that failed and why. Nothing is retried after the first token.

        With `structured`, the tokens are not sent: `progress` events report how far the model is, then
        `structured.finish` turns the output into a `result` event, and lineage records its validation
        results and confidence with the run.

        With `check` (a text run), the tokens are sent, and after the last one the check's `grounded`
        event says which sentences stand; lineage records it as the run's validation.
        """
        options = options or RunOptions()
        observe = self.telemetry.observe_run()
        first = job if isinstance(job, Job) else job(self.host.context_length())
        try:
            plan = self.router.plan(
                self.router.route_key(first.task, client),
                input_tokens=_estimate_tokens(first),
                sensitive=options.sensitive,
                profile=options.profile,
            )
        except (NoRoute, UnknownProfile) as exc:
            if ticket is not None:
                ticket.release()
            error = ErrorEvent(code=getattr(exc, "code", "unknown_profile"), message=str(exc))
            observe.saw(error)
            yield error
            return
        if self.on_input is not None:
            self.on_input(first.task, first.input)
        fallbacks: list[dict[str, Any]] = []
        try:
            for i, candidate in enumerate(plan.candidates):
                if ticket is not None and ticket.gate is not candidate.host.gate:
                    ticket.release()  # routed elsewhere than admitted: wait in that profile's line instead
                    ticket = None
                attempt = _Attempt(
                    candidate,
                    plan,
                    fallbacks,
                    last=i == len(plan.candidates) - 1,
                    options=options,
                    check=check,
                )
                try:
                    async for event in self._attempt(
                        attempt, job, ticket, client, source_ref, retrieved, structured
                    ):
                        observe.saw(event)
                        yield event
                    return
                except _FellThrough as exc:
                    fallbacks.append({"profile": candidate.name, "run_id": exc.run_id, "error": str(exc)})
                    ticket = None
        finally:
            if ticket is not None:
                ticket.release()

    async def _attempt(
        self,
        attempt: _Attempt,
        source: JobSource,
        ticket: Ticket | None,
        client: str,
        source_ref: str | None,
        retrieved: list[dict[str, Any]] | None,
        structured: Structured | None,
    ) -> AsyncGenerator[Event, None]:
        """One profile's try: its model, the PII policy, a lineage run, the stream."""
        candidate = attempt.candidate
        try:
            backend = await candidate.host.ready()
            job = source if isinstance(source, Job) else source(backend.info.context_length)
            egress = await self.privacy.egress(candidate, job.request)
        except (BackendError, PiiBlocked) as exc:
            reason = f"model profile {candidate.name!r}: {exc}"
            if not attempt.last:
                raise _FellThrough(None, reason) from exc
            code = "pii_blocked" if isinstance(exc, PiiBlocked) else "model_unavailable"
            yield ErrorEvent(code=code, message=reason)
            return
        info = backend.info
        # Not the current span: this generator yields, and a context attached here would leak into the
        # consumer's; its lineage children name it as their parent instead.
        span = self.telemetry.tracer.start_span(
            "model", attributes={"task": job.task, "profile": candidate.name}
        )
        start = self._run_start(job, info, client=client, source_ref=source_ref, retrieved=retrieved)
        start = msgspec.structs.replace(
            start,
            profile=candidate.name,
            routing=attempt.routing(),
            pii=egress.record if egress else None,
            trace_id=trace_id_of(span),
        )
        key = self._cache_key(attempt, start, structured)
        if (hit := await self._cached(key)) is not None:
            span.end()
            async for event in self._from_cache(job, start, hit, attempt.check):
                yield event
            return
        # Lineage writes are durable (fsync), so they run on a worker thread, not on the event loop.
        with self.telemetry.tracer.start_as_current_span("lineage.open", context=set_span_in_context(span)):
            run = _Run(await self._open(start), start)
        span.set_attribute("run_id", run.id)  # from the trace to the lineage record
        yield MetaEvent(
            run_id=run.id,
            task=job.task,
            model=info.model_id,
            backend=info.backend,
            template=job.template.template_id,
            truncated=job.truncated,
            profile=candidate.name,
            fallback=attempt.fallback_note(),
            masked=egress.masked if egress else None,
        )
        breaker = self.router.breaker(candidate.name)
        request = egress.request if egress else job.request
        # `done` is sent once the run is closed in lineage (and its answer in the result cache): a client
        # that reads `done` and asks for the run, or asks again, finds both.
        done: DoneEvent | None = None
        try:
            # aclosing: when the client leaves mid-stream, the model's part is closed at once (decoding
            # stops, the gate is released) before the run is recorded as cancelled.
            generate = self._generate(backend, job, request, ticket, run, structured, attempt, egress)
            async with contextlib.aclosing(generate) as events:
                async for event in events:
                    if isinstance(event, DoneEvent):
                        done = event
                    else:
                        yield event
            breaker.succeeded()
        except (GeneratorExit, asyncio.CancelledError):
            run.cancelled()
            raise
        except Exception as exc:
            if isinstance(exc, BackendError) and not isinstance(exc, ContextOverflow):
                breaker.failed()
            if not run.parts and not attempt.last and isinstance(exc, BackendError):
                run.end = RunEnd(status="error", error=f"{exc} (went on to the next profile)")
                raise _FellThrough(run.id, f"model profile {candidate.name!r}: {exc}") from exc
            run.end, error = _failure(run.id, exc, candidate.name)
            yield error
        finally:
            span.set_attribute("status", run.end.status)
            with (
                anyio.CancelScope(shield=True),
                self.telemetry.tracer.start_as_current_span(
                    "lineage.close", context=set_span_in_context(span)
                ),
            ):
                await anyio.to_thread.run_sync(self.lineage.close_run, run.id, run.end)
            span.end()
            self.budgets.spent()
        if done is not None:
            await self._remember(key, run, structured)
            yield done

    async def _cached(self, key: str | None) -> Run | None:
        """The recorded run that answers `key`, if any."""
        if key is None or self.cache is None:
            return None
        return await anyio.to_thread.run_sync(self.cache.get, key)

    async def _remember(self, key: str | None, run: _Run, structured: Structured | None) -> None:
        """Put a closed run's answer in the result cache, where it may be reused."""
        if key is not None and self.cache is not None and run.cacheable(structured):
            await anyio.to_thread.run_sync(self.cache.put, key, run.id)

    def _cache_key(self, attempt: _Attempt, start: RunStart, structured: Structured | None) -> str | None:
        """The result cache's key for this run, or None when it may not be cached or reused."""
        if self.cache is None or structured is not None or not attempt.options.cache or attempt.fallbacks:
            return None
        return cache_key(
            profile=attempt.candidate.name,
            weights_digest=start.weights_digest,
            template_hash=start.template_hash,
            input_digest=start.input_digest,
            parameters=start.parameters,
        )

    async def _from_cache(
        self, job: Job, start: RunStart, original: Run, check: FaithfulCheck | None
    ) -> AsyncGenerator[Event, None]:
        """Answer with a recorded result: a run of its own that points to the original (`cache_of`),
        checked again when the request asks for a check."""
        began = time.perf_counter()
        text = str(original.output)
        start = msgspec.structs.replace(start, cache_of=original.id)
        run_id = await anyio.to_thread.run_sync(self.lineage.open_run, start)
        outcome = None
        if check is not None:
            generated = Generated(text=text, tokens=(), finish_reason="stop")
            outcome = await anyio.to_thread.run_sync(check.finish, run_id, start, generated)
        total = (time.perf_counter() - began) * 1000
        end = RunEnd(
            status="ok",
            output=text,
            total_ms=total,
            ttft_ms=total,
            tokens_in=0,
            tokens_out=0,
            cost=0.0,
            validation=outcome.validation if outcome else None,
            confidence=outcome.confidence if outcome else None,
        )
        await anyio.to_thread.run_sync(self.lineage.close_run, run_id, end)
        meta = MetaEvent(
            run_id=run_id,
            task=job.task,
            model=start.model_id,
            backend=start.backend,
            template=job.template.template_id,
            truncated=job.truncated,
            profile=start.profile,
            cached_from=original.id,
            masked=(start.pii or {}).get("masked"),
        )
        for event in _fixed_answer(
            meta, text, total_ms=round(total, 2), extra=outcome.event if outcome else None
        ):
            yield event

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
        self,
        backend: Backend,
        job: Job,
        request: GenerationRequest,
        ticket: Ticket | None,
        run: _Run,
        structured: Structured | None,
        attempt: _Attempt,
        egress: Egress | None,
    ) -> AsyncGenerator[Event, None]:
        """The model's part of a run: a place at the model, the stream (tokens, or progress for a structured
        run), then the structured outcome and `done`. `run.end` is ok from when the output is complete.
        With masked personal data, the output's placeholders are restored as it streams."""
        gate = attempt.candidate.host.gate
        accepted = time.perf_counter()
        if structured is not None and gate.busy:
            yield ProgressEvent(stage="waiting")
        max_tokens = request.max_tokens
        restore = egress.restorer() if egress else None
        async with gate.slot(ticket):
            started = time.perf_counter()
            stream = backend.stream(request)
            try:
                async for item in stream:
                    if isinstance(item, Finished):
                        usage = item.usage
                        break
                    if restore is not None:
                        item = Token(restore.feed(item.text), item.logprob)
                    for event in run.took(item, started, structured, max_tokens):
                        yield event
                    if attempt.check is not None:
                        attempt.check.begin()
                if restore is not None and (rest := restore.flush()):
                    for event in run.took(Token(rest), started, structured, max_tokens):
                        yield event
            finally:
                with anyio.CancelScope(shield=True):
                    await stream.aclose()  # stops decoding before the gate is released
        total = (time.perf_counter() - started) * 1000
        info = backend.info
        run.finish_reason = usage.finish_reason
        run.end = RunEnd(
            status="ok",
            output="".join(run.parts),
            ttft_ms=run.ttft,
            total_ms=total,
            cost=run_cost(attempt.candidate.profile, usage.prompt_tokens, usage.completion_tokens),
            tokens_in=usage.prompt_tokens,
            tokens_out=usage.completion_tokens,
            served_model=info.served_model,
            system_fingerprint=info.system_fingerprint,
        )
        if structured is not None:
            yield ProgressEvent(stage="checking", tokens=len(run.tokens), max_tokens=max_tokens)
        if (post := structured or attempt.check) is not None:
            outcome = await run.finish(post, usage.finish_reason)
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


class _Attempt:
    """One profile's try at a request, and what routing recorded on the way to it."""

    def __init__(
        self,
        candidate: Candidate,
        plan: Plan,
        fallbacks: list[dict[str, Any]],
        *,
        last: bool,
        options: RunOptions,
        check: FaithfulCheck | None = None,
    ) -> None:
        self.candidate, self.plan, self.fallbacks, self.last, self.options = (
            candidate,
            plan,
            fallbacks,
            last,
            options,
        )
        self.check = check

    def routing(self) -> dict[str, Any]:
        """Why this profile (lineage's `routing`)."""
        out: dict[str, Any] = {"route": self.plan.route}
        if self.plan.skipped:
            out["skipped"] = self.plan.skipped
        if self.fallbacks:
            out["fallback_from"] = list(self.fallbacks)
        return out

    def fallback_note(self) -> str | None:
        """For the `meta` event: which profiles failed before this one answered, and why."""
        if not self.fallbacks:
            return None
        return "; ".join(f["error"] for f in self.fallbacks)


def _fixed_answer(meta: MetaEvent, text: str, *, total_ms: float, extra: Event | None = None) -> list[Event]:
    """The events of an answer known without generating: meta, the text as one token, (a check's event,)
    done."""
    return [
        meta,
        TokenEvent(text=text),
        *([extra] if extra is not None else []),
        DoneEvent(
            run_id=meta.run_id,
            queue_ms=0.0,
            ttft_ms=total_ms,
            total_ms=total_ms,
            usage=UsageOut(prompt_tokens=0, completion_tokens=0, finish_reason="stop"),
        ),
    ]


def _estimate_tokens(job: Job) -> int:
    """The prompt's size for routing rules, without a tokenizer (about 4 characters a token)."""
    return sum(len(m.content) for m in job.request.messages) // 4


class _Run:
    """One run as lineage will close it: what the model has made so far, and how the run ends."""

    def __init__(self, run_id: str, start: RunStart) -> None:
        self.id = run_id
        self.start = start
        self.end = RunEnd(status="cancelled")
        self.parts: list[str] = []
        self.tokens: list[Token] = []  # kept for structured runs only
        self.ttft: float | None = None
        self.finish_reason: str | None = None

    def took(
        self, token: Token, started: float, structured: Structured | None, max_tokens: int
    ) -> list[Event]:
        """Take a token; the events it makes: itself, or for a structured run now and then progress."""
        if self.ttft is None:
            self.ttft = (time.perf_counter() - started) * 1000
        self.parts.append(token.text)
        if structured is None:
            return [TokenEvent(text=token.text)] if token.text else []
        self.tokens.append(token)
        if len(self.tokens) % PROGRESS_EVERY == 1:
            return [_progress(self.parts, len(self.tokens), max_tokens)]
        return []

    def cacheable(self, structured: Structured | None) -> bool:
        """A text answer the model completed (stopped, or reached the request's token limit, which the same
        request would reach again); never an error or a cancelled one."""
        return structured is None and self.end.status == "ok" and self.finish_reason in ("stop", "length")

    async def finish(self, structured: Structured | FaithfulCheck, finish_reason: str) -> StructuredOutcome:
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


def _failure(run_id: str, exc: Exception, profile: str) -> tuple[RunEnd, ErrorEvent]:
    """How a run that raised `exc` ends, in lineage and for the client, naming the model profile. Call it
    in the `except` block: an unexpected error is logged with its traceback and reaches the client only
    as "internal"."""
    for kind, code in _ERROR_CODES:
        if isinstance(exc, kind):
            message = f"model profile {profile!r}: {exc}"
            return RunEnd(status="error", error=message), ErrorEvent(code=code, message=message)
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
