"""The model, for workflow steps in the consumer process: classification and extraction as plain calls.

The same `RunExecutor` and structured tasks the HTTP API uses, so a workflow's AI output is recorded in
lineage exactly like a request's (client "workflow", source_ref the triggering item), and an extraction
below the review threshold lands in the same review queue. The model loads on first use (a worker that
only sends webhooks never loads it) and runs on one event loop thread of its own, because the consumer's
worker threads are not async.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any, Protocol

from anyio.from_thread import BlockingPortal, start_blocking_portal
from opentelemetry import context as otel_context

from deskpilot.inference import Job
from deskpilot.inference.extraction import SchemaError, classify_job, extraction_job, load_schema
from deskpilot.inference.extraction.classify import DescribedLabel
from deskpilot.server.core.telemetry import Telemetry
from deskpilot.server.core.wire import ErrorEvent, ResultEvent
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.extraction.service import ClassificationTask, ExtractionTask, calibration_store
from deskpilot.server.lineage import LineageStore
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.runs import RunExecutor, Structured
from deskpilot.server.settings import Settings

__all__ = ["ModelAI", "StepFailed", "WorkflowAI"]


class StepFailed(RuntimeError):
    """The model could not produce a result (busy, failed to load, input too long)."""


class WorkflowAI(Protocol):
    """The model as workflow steps see it: plain calls that return JSON-able dicts (stored in the
    workflow's context). `ModelAI` is the real one; tests use a scripted one (`tests/fakes.py`)."""

    def classify(
        self, text: str, labels: Sequence[str | DescribedLabel], source_ref: str | None = None
    ) -> dict[str, Any]: ...

    def extract(self, schema_name: str, text: str, source_ref: str | None = None) -> dict[str, Any]: ...

    def close(self) -> None: ...


class ModelAI:
    def __init__(
        self,
        models: ModelRegistry,
        lineage: LineageStore,
        settings: Settings,
        *,
        telemetry: Telemetry | None = None,
    ) -> None:
        """`models`: the profiles (their models load on first use, on this object's own event loop);
        `telemetry`: the worker's, so a step's runs belong to the trace of the task that ran the step."""
        self.settings, self.lineage, self.models = settings, lineage, models
        self.telemetry = telemetry
        self.reviews = ReviewQueue(lineage)
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._executor: RunExecutor | None = None

    def _ready(self) -> tuple[BlockingPortal, RunExecutor]:
        with self._lock:
            if self._portal is None or self._executor is None:
                self._portal = self._stack.enter_context(start_blocking_portal())
                self._executor = RunExecutor(
                    self.models,
                    self.lineage,
                    retain_inputs=self.settings.retain_inputs,
                    result_cache=self.settings.result_cache,
                    telemetry=self.telemetry,
                )
            return self._portal, self._executor

    def _run(self, job: Job, task: Structured, source_ref: str | None) -> ResultEvent:
        portal, executor = self._ready()
        # The caller's trace (a worker task's span): the portal's event loop thread does not inherit it.
        caller = otel_context.get_current()

        async def run() -> ResultEvent:
            token = otel_context.attach(caller)
            try:
                return await collect()
            finally:
                otel_context.detach(token)

        async def collect() -> ResultEvent:
            result: ResultEvent | None = None
            async for event in executor.execute(
                job, client="workflow", source_ref=source_ref, structured=task
            ):
                if isinstance(event, ErrorEvent):
                    raise StepFailed(f"{event.code}: {event.message}")
                if isinstance(event, ResultEvent):
                    result = event
            if result is None:
                raise StepFailed("the run ended without a result")
            return result

        return portal.call(run)

    def _context(self) -> tuple[int, Callable[[str], int]]:
        portal, executor = self._ready()
        backend = portal.call(executor.host.ready)
        return backend.info.context_length, backend.count_tokens

    def classify(
        self, text: str, labels: Sequence[str | DescribedLabel], source_ref: str | None = None
    ) -> dict[str, Any]:
        context_length, count = self._context()
        job = classify_job(text=text, labels=labels, context_length=context_length, count_tokens=count)
        task = ClassificationTask(labels, self.reviews, self.settings.review_threshold, text=text)
        result = self._run(job, task, source_ref)
        return {"runId": result.run_id, "label": result.data["label"], "confidence": result.confidence}

    def extract(self, schema_name: str, text: str, source_ref: str | None = None) -> dict[str, Any]:
        try:
            schema = load_schema(schema_name, self.settings.schemas_path)
        except SchemaError as exc:
            raise StepFailed(str(exc)) from exc
        context_length, count = self._context()
        job = extraction_job(schema, text=text, context_length=context_length, count_tokens=count)
        task = ExtractionTask(
            schema,
            text,
            self.reviews,
            self.settings.review_threshold,
            calibrations=calibration_store(self.settings.home),
            target_precision=self.settings.review_target_precision,
        )
        result = self._run(job, task, source_ref)
        return {
            "runId": result.run_id,
            "schema": result.schema,
            "data": result.data,
            "confidence": result.confidence,
            "review": result.review.id if result.review else None,
            "reasons": result.review.reasons if result.review else [],
            "rules": [
                {"rule": r.rule, "status": r.status, "message": r.message} for r in result.validation.rules
            ],
        }

    def close(self) -> None:
        with self._lock:
            if self._portal is not None and self._executor is not None:
                self._portal.call(self._executor.models.aclose)
            self._stack.close()
            self._portal = self._executor = None
