"""Extraction and triage over HTTP: `POST /v1/extract` (SSE) and `POST /v1/classify` (JSON).

The work is in `deskpilot.inference.extraction`; here a run is wired to the executor (gate, lineage) and
its result to the review queue. Extraction streams (`meta`, `progress`, `result`, `done`) because it takes
seconds and the task pane shows which field the model is on. Classification answers with plain JSON: its
output is one label of a few tokens, there is nothing to show while it runs, and a JSON answer lets every
failure be an HTTP status the client already handles.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import msgspec
from deskpilot.inference import Email
from deskpilot.inference.extraction import (
    Classification,
    ExtractionResult,
    ExtractionSchema,
    Generated,
    SchemaError,
    classify_job,
    extraction_job,
    finish_classification,
    finish_extraction,
    list_schemas,
    load_schema,
)
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent

from .extraction_schemas import ClassifyOut, ClassifyRequest, ExtractRequest, SchemaOut, SchemasOut
from .lineage import ReviewQueue, RunStart
from .model_host import ModelHost
from .runs import RunExecutor, StructuredOutcome
from .schemas import ErrorEvent, FieldOut, NormalizedOut, ResultEvent, ReviewRef, RuleOut, ValidationOut
from .settings import Settings
from .sse import sse_response

__all__ = ["ClassificationTask", "Extraction", "ExtractionTask"]


def _as_text(data: ExtractRequest | ClassifyRequest) -> str:
    if data.text is not None:
        return data.text
    assert data.email is not None
    e = data.email
    return Email(
        body=e.body, subject=e.subject, sender=e.sender, to=tuple(e.to), cc=tuple(e.cc), date=e.date
    ).render()


def _context(host: ModelHost) -> tuple[int, Callable[[str], int] | None]:
    """The context to budget for and the tokenizer to count with (none yet while the model loads: the
    job then counts bytes, which never under-counts)."""
    backend = host.backend
    if backend is None:
        return 4096, None
    return backend.info.context_length, getattr(backend, "count_tokens", None)


def _lineage(value: Any) -> Any:
    return msgspec.to_builtins(value)


class ExtractionTask:
    """Finishes an extraction run: validate, check, score, and queue it for review when it needs a person."""

    def __init__(self, schema: ExtractionSchema, text: str, reviews: ReviewQueue, threshold: float) -> None:
        self.schema, self.text, self.reviews, self.threshold = schema, text, reviews, threshold

    def result(self, generated: Generated) -> ExtractionResult:
        return finish_extraction(
            self.schema, text=self.text, generated=generated, review_threshold=self.threshold
        )

    def finish(self, run_id: str, start: RunStart, generated: Generated) -> StructuredOutcome:
        result = self.result(generated)
        fields = {
            path: msgspec.convert(r, FieldOut, from_attributes=True) for path, r in result.fields.items()
        }
        review = None
        if result.review_reasons:
            item = self.reviews.enqueue(
                run_id=run_id,
                task=start.task,
                template_id=start.template_id,
                model_id=start.model_id,
                reasons=result.review_reasons,
                confidence=result.confidence,
                proposed=result.data,
                fields=msgspec.to_builtins(fields),
                spec={"schema": self.schema.name, "schema_id": self.schema.schema_id},
            )
            review = ReviewRef(id=item.id, reasons=result.review_reasons)
        validation = ValidationOut(
            valid=True,
            repaired=result.repaired,
            problems=result.problems,
            rules=[msgspec.convert(r, RuleOut, from_attributes=True) for r in result.rules],
            normalized=[msgspec.convert(c, NormalizedOut, from_attributes=True) for c in result.normalized],
        )
        event = ResultEvent(
            run_id=run_id,
            task=start.task,
            schema=result.schema,
            data=result.data,
            confidence=result.confidence,
            fields=fields,
            validation=validation,
            review=review,
        )
        recorded = {
            "valid": True,
            "repaired": result.repaired,
            "problems": result.problems,
            "rules": _lineage(result.rules),
            "normalized": _lineage(result.normalized),
            "fields": _lineage(result.fields),
            "schema": result.schema,
            "review": {
                "queued": review is not None,
                "id": review and review.id,
                "reasons": result.review_reasons,
            },
        }
        return StructuredOutcome(
            event=event,
            output={"data": result.data, "raw": generated.text},
            validation=recorded,
            confidence=result.confidence,
        )


class ClassificationTask:
    def __init__(self, labels: list[str], reviews: ReviewQueue, threshold: float) -> None:
        self.labels, self.reviews, self.threshold = labels, reviews, threshold

    def finish(self, run_id: str, start: RunStart, generated: Generated) -> StructuredOutcome:
        result: Classification = finish_classification(
            self.labels, generated, review_threshold=self.threshold
        )
        data = {"label": result.label}
        fields = {
            "label": FieldOut(
                confidence=result.confidence, token_confidence=result.confidence, repaired=result.repaired
            )
        }
        review = None
        if result.review_reasons:
            item = self.reviews.enqueue(
                run_id=run_id,
                task=start.task,
                template_id=start.template_id,
                model_id=start.model_id,
                reasons=result.review_reasons,
                confidence=result.confidence,
                proposed=data,
                fields=msgspec.to_builtins(fields),
                spec={"labels": self.labels},
            )
            review = ReviewRef(id=item.id, reasons=result.review_reasons)
        problems = result.review_reasons if result.repaired else []
        event = ResultEvent(
            run_id=run_id,
            task=start.task,
            schema=None,
            data=data,
            confidence=result.confidence,
            fields=fields,
            validation=ValidationOut(valid=True, repaired=result.repaired, problems=problems),
            review=review,
        )
        recorded = {
            "valid": True,
            "repaired": result.repaired,
            "problems": problems,
            "labels": self.labels,
            "review": {
                "queued": review is not None,
                "id": review and review.id,
                "reasons": result.review_reasons,
            },
        }
        return StructuredOutcome(
            event=event,
            output={"data": data, "raw": generated.text},
            validation=recorded,
            confidence=result.confidence,
        )


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
}


class Extraction(Controller):
    path = "/v1"
    tags = ["Extraction"]

    @post("/extract", status_code=200, summary="Extract structured fields with a schema (SSE stream)")
    async def extract(
        self,
        data: JSONBody[ExtractRequest],
        executor: NamedDependency[RunExecutor],
        settings: NamedDependency[Settings],
        stopping: NamedDependency[asyncio.Event],
        reviews: NamedDependency[ReviewQueue],
    ) -> ServerSentEvent:
        schema = find_schema(data.schema, settings.schemas_path)
        text = _as_text(data)
        context_length, count_tokens = _context(executor.host)
        # Off the event loop: tokenizing a long input to fit it to the context takes a moment.
        job = await anyio.to_thread.run_sync(
            lambda: extraction_job(
                schema, text=text, context_length=context_length, count_tokens=count_tokens
            )
        )
        ticket = executor.admit()
        task = ExtractionTask(schema, text, reviews, settings.review_threshold)
        events = executor.execute(
            job, ticket=ticket, client=data.client, source_ref=data.source_ref, structured=task
        )
        weakref.finalize(events, ticket.release)  # a client gone before the body starts frees its place
        return sse_response(events, keepalive=settings.keepalive_seconds, stopping=stopping)

    @post("/classify", status_code=200, summary="Triage text or an email into one of the labels (JSON)")
    async def classify(
        self,
        data: JSONBody[ClassifyRequest],
        executor: NamedDependency[RunExecutor],
        settings: NamedDependency[Settings],
        reviews: NamedDependency[ReviewQueue],
    ) -> ClassifyOut:
        labels = list(data.labels or settings.triage_labels)
        try:
            context_length, count_tokens = _context(executor.host)
            job = await anyio.to_thread.run_sync(
                lambda: classify_job(
                    text=_as_text(data),
                    labels=labels,
                    context_length=context_length,
                    count_tokens=count_tokens,
                )
            )
        except ValueError as exc:
            raise ClientException(str(exc)) from exc
        ticket = executor.admit()
        task = ClassificationTask(labels, reviews, settings.review_threshold)
        # Read the run to its end, not just to its result: the run is closed in lineage when the stream
        # finishes, and a client that asks for it right after the answer must find it closed.
        result: ResultEvent | None = None
        events = executor.execute(
            job, ticket=ticket, client=data.client, source_ref=data.source_ref, structured=task
        )
        async with aclosing(events):
            async for event in events:
                if isinstance(event, ErrorEvent):
                    raise HTTPException(status_code=_STATUS.get(event.code, 500), detail=event.message)
                if isinstance(event, ResultEvent):
                    result = event
        if result is None:
            raise HTTPException(status_code=500, detail="the run ended without a result")
        return ClassifyOut(
            run_id=result.run_id,
            label=result.data["label"],
            confidence=result.confidence,
            labels=labels,
            review=result.review,
        )

    @get("/schemas", summary="The extraction schemas: built-in and from the schemas folder")
    async def schemas(self, settings: NamedDependency[Settings]) -> SchemasOut:
        found, problems = list_schemas(settings.schemas_path)
        return SchemasOut(schemas=[_schema_out(s) for s in found], problems=problems)

    @get("/schemas/{name:str}", summary="One extraction schema with its JSON Schema")
    async def schema(self, name: FromPath[str], settings: NamedDependency[Settings]) -> SchemaOut:
        try:
            return _schema_out(load_schema(name, settings.schemas_path), with_json_schema=True)
        except SchemaError as exc:
            raise NotFoundException(str(exc)) from exc
