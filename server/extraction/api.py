"""Extraction and triage over HTTP: `POST /v1/extract` (SSE) and `POST /v1/classify` (JSON).

The work is in `deskpilot.inference.extraction`; here a run is wired to the executor (gate, lineage) and
its result to the review queue. Extraction streams (`meta`, `progress`, `result`, `done`) because it takes
seconds and the task pane shows which field the model is on. Classification answers with plain JSON: its
output is one label of a few tokens, there is nothing to show while it runs, and a JSON answer lets every
failure be an HTTP status the client already handles.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import anyio
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent

from deskpilot.inference import Email, Ticket
from deskpilot.inference.extraction import (
    ExtractionSchema,
    SchemaError,
    classify_job,
    extraction_job,
    list_schemas,
    load_schema,
    triage_labels,
)
from deskpilot.server.core.wire import ErrorEvent, ResultEvent
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.extraction.service import ExtractionTask, calibration_store, model_context
from deskpilot.server.extraction.triage import ClassificationTask, classify_out
from deskpilot.server.extraction.triage_memory import TriageMemory
from deskpilot.server.extraction.wire import (
    ClassifyOut,
    ClassifyRequest,
    ExtractRequest,
    SchemaOut,
    SchemasOut,
)
from deskpilot.server.runs import Event, RunExecutor, options_of
from deskpilot.server.settings import Settings
from deskpilot.server.web.sse import sse_response

__all__ = ["Extraction", "find_schema"]


def _as_text(data: ExtractRequest | ClassifyRequest) -> str:
    if data.text is not None:
        return data.text
    assert data.email is not None
    e = data.email
    return Email(
        body=e.body, subject=e.subject, sender=e.sender, to=tuple(e.to), cc=tuple(e.cc), date=e.date
    ).render()


def find_schema(name: str, folder: Path) -> ExtractionSchema:
    try:
        return load_schema(name, folder)
    except SchemaError as exc:
        raise ClientException(str(exc)) from exc


def _schema_out(schema: ExtractionSchema, *, with_json_schema: bool = False) -> SchemaOut:
    return SchemaOut(
        name=schema.name,
        version=schema.version,
        description=schema.description,
        origin=schema.origin,
        template=schema.template,
        content_hash=schema.content_hash,
        json_schema=schema.json_schema if with_json_schema else None,
    )


# Errors a run reports in-stream, as the HTTP status a JSON endpoint answers with.
_STATUS = {
    "busy": 429,
    "model_unavailable": 503,
    "shutdown": 503,
    "input_too_long": 413,
    "backend_error": 503,
    "budget_exhausted": 429,
    "no_model": 503,
    "unknown_profile": 400,
    "pii_blocked": 422,
}


class Extraction(Controller):
    path = "/v1"
    tags = ("Extraction",)

    @post("/extract", status_code=200, summary="Extract structured fields with a schema (SSE stream)")
    async def extract(
        self,
        data: JSONBody[ExtractRequest],
        executor: NamedDependency[RunExecutor],
        app_settings: NamedDependency[Settings],
        stopping: NamedDependency[asyncio.Event],
        reviews: NamedDependency[ReviewQueue],
    ) -> ServerSentEvent:
        schema = find_schema(data.schema, app_settings.schemas_path)
        text = _as_text(data)
        context_length, count_tokens = model_context(executor.router.primary("extract", data.profile))

        async def build(ticket: Ticket) -> AsyncGenerator[Event, None]:
            # Off the event loop: tokenizing a long input to fit it to the context takes a moment.
            job = await anyio.to_thread.run_sync(
                lambda: extraction_job(
                    schema, text=text, context_length=context_length, count_tokens=count_tokens
                )
            )
            task = ExtractionTask(
                schema,
                text,
                reviews,
                app_settings.review_threshold,
                calibrations=calibration_store(app_settings.home),
                target_precision=app_settings.review_target_precision,
            )
            return executor.execute(
                job,
                ticket=ticket,
                client=data.client,
                source_ref=data.source_ref,
                structured=task,
                options=options,
            )

        options = options_of(data)
        run = await executor.admitted(build, task="extract", options=options)
        return sse_response(
            run.events, release=run.release, keepalive=app_settings.keepalive_seconds, stopping=stopping
        )

    @post("/classify", status_code=200, summary="Triage text or an email into one of the labels (JSON)")
    async def classify(
        self,
        data: JSONBody[ClassifyRequest],
        executor: NamedDependency[RunExecutor],
        app_settings: NamedDependency[Settings],
        reviews: NamedDependency[ReviewQueue],
        triage: NamedDependency[TriageMemory],
    ) -> ClassifyOut:
        try:
            labels = triage_labels(data.labels or app_settings.triage_labels)
        except ValueError as exc:
            raise ClientException(str(exc)) from exc
        text = _as_text(data)
        context_length, count_tokens = model_context(executor.router.primary("classify", data.profile))
        # Off the event loop: the zero-shot and example scores embed the message.
        prior = await anyio.to_thread.run_sync(triage.prepare, text, labels)
        task = ClassificationTask(
            labels, reviews, app_settings.review_threshold, text=text, prior=prior, memory=triage
        )

        async def build(ticket: Ticket) -> AsyncGenerator[Event, None]:
            job = await anyio.to_thread.run_sync(
                lambda: classify_job(
                    text=text,
                    labels=labels,
                    context_length=context_length,
                    count_tokens=count_tokens,
                    few_shot=prior.few_shot,
                )
            )
            return executor.execute(
                job,
                ticket=ticket,
                client=data.client,
                source_ref=data.source_ref,
                structured=task,
                options=options,
            )

        options = options_of(data)
        run = await executor.admitted(build, task="classify", options=options)
        # Read the run to its end, not just to its result: the run is closed in lineage when the stream
        # finishes, and a client that asks for it right after the answer must find it closed.
        result: ResultEvent | None = None
        try:
            async with aclosing(run.events) as events:
                async for event in events:
                    if isinstance(event, ErrorEvent):
                        raise HTTPException(status_code=_STATUS.get(event.code, 500), detail=event.message)
                    if isinstance(event, ResultEvent):
                        result = event
        finally:
            run.release()
        if result is None:
            raise HTTPException(status_code=500, detail="the run ended without a result")
        return classify_out(result, task)

    @get("/schemas", summary="The extraction schemas: built-in and from the schemas folder")
    async def schemas(self, app_settings: NamedDependency[Settings]) -> SchemasOut:
        found, problems = list_schemas(app_settings.schemas_path)
        return SchemasOut(schemas=[_schema_out(s) for s in found], problems=problems)

    @get("/schemas/{name:str}", summary="One extraction schema with its JSON Schema")
    async def schema(self, name: FromPath[str], app_settings: NamedDependency[Settings]) -> SchemaOut:
        try:
            return _schema_out(load_schema(name, app_settings.schemas_path), with_json_schema=True)
        except SchemaError as exc:
            raise NotFoundException(str(exc)) from exc
