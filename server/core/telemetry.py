"""What the server measures as it works: Prometheus metrics observed live, and OpenTelemetry spans.

One `Telemetry` per composition root (`Services`), never the process-wide defaults: prometheus-client's
global registry and OpenTelemetry's global tracer provider can be set once per process, and tests build
many apps in one. The metrics observed here are the ones only this process sees as they happen (latency,
queue waits, errors, HTTP answers); counts that must survive restarts and include the worker process are
computed from the database at scrape time (server/ops/collectors.py).

Labels are bounded: task, model profile, error code, HTTP status and method, never an id.

Tracing is off unless `otel_endpoint` names an OTLP/HTTP receiver (or a test passes an exporter): then
each request is a trace (request -> admission -> model -> lineage), and the run's lineage record carries
its trace id (`trace_id`), so a record leads to its trace and a trace to its records. Off, the tracer is
OpenTelemetry's no-op one: no span is built, nothing is recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

from deskpilot.server.core.wire import DoneEvent, ErrorEvent, MetaEvent

__all__ = ["RunObserver", "Telemetry", "trace_id_of"]

log = logging.getLogger("deskpilot.telemetry")

# Seconds: a token on a laptop CPU comes in tens of milliseconds, a long answer takes a minute.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Telemetry:
    """The metrics registry and tracer of one app (or worker, or CLI command)."""

    def __init__(
        self,
        *,
        otel_endpoint: str | None = None,
        span_exporter: SpanExporter | None = None,
        sample_ratio: float = 1.0,
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # CPU seconds, resident memory, open files
        labels = ("task", "profile")
        self.ttft = Histogram(
            "deskpilot_run_ttft_seconds",
            "Time to the first token of a run that answered, per task and model profile",
            labels,
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.total = Histogram(
            "deskpilot_run_seconds",
            "Total time of a run that answered (the model's part), per task and model profile",
            labels,
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.queue = Histogram(
            "deskpilot_run_queue_wait_seconds",
            "Time a run waited for its model, per task and model profile",
            labels,
            registry=self.registry,
            buckets=_WAIT_BUCKETS,
        )
        self.run_errors = Counter(
            "deskpilot_run_errors", "AI requests that ended with an error event, per code", ("code",),
            registry=self.registry,
        )  # fmt: skip
        self.http = Counter(
            "deskpilot_http_responses",
            "HTTP responses, per method and status code",
            ("method", "status"),
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "deskpilot_http_request_seconds",
            "Time from a request to the end of its response (streams included), per method",
            ("method",),
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.tracing = otel_endpoint is not None or span_exporter is not None
        self._provider: TracerProvider | None = None
        if self.tracing:
            # By trace id, and a child follows its parent: a trace is kept whole or not at all.
            self._provider = TracerProvider(
                resource=Resource.create({"service.name": "deskpilot"}),
                sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
            )
            if span_exporter is not None:
                self._provider.add_span_processor(SimpleSpanProcessor(span_exporter))
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                self._provider.add_span_processor(
                    BatchSpanProcessor(OTLPSpanExporter(endpoint=otel_endpoint))
                )
            self.tracer: trace.Tracer = self._provider.get_tracer("deskpilot")
        else:
            self.tracer = trace.NoOpTracer()

    def observe_run(self) -> RunObserver:
        """What watches one AI request's events (runs.py) and records its latency and errors."""
        return RunObserver(self)

    def asgi(self, app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """Wrap an ASGI app: every HTTP request is counted by status, timed, and (tracing on) a root span."""

        async def measured(
            scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]
        ) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            method = str(scope.get("method", "GET"))
            status = "500"  # what an app that raised before answering amounts to

            async def sending(message: dict[str, object]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = str(message["status"])
                await send(message)

            began = time.perf_counter()
            with self.tracer.start_as_current_span(
                f"{method} request", kind=trace.SpanKind.SERVER, attributes={"http.request.method": method}
            ) as span:
                try:
                    await app(scope, receive, sending)
                finally:
                    span.set_attribute("http.response.status_code", int(status))
                    self.http.labels(method, status).inc()
                    self.http_seconds.labels(method).observe(time.perf_counter() - began)

        return measured

    @contextmanager
    def span(self, name: str, **attributes: str | int | float | bool) -> Iterator[trace.Span]:
        """A span around a block that does not yield (in a generator, use `tracer.start_span` and end it)."""
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    def shutdown(self) -> None:
        """Send the spans still buffered (a stopping server or worker)."""
        if self._provider is not None:
            self._provider.shutdown()


class RunObserver:
    """Watches the events of one AI request: `meta` names its task and profile, `done` carries its timings,
    `error` its code. The events are what the client sees, so the metrics count what the user got."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._t = telemetry
        self._labels: tuple[str, str] | None = None

    def saw(self, event: object) -> None:
        if isinstance(event, MetaEvent):
            self._labels = (event.task, event.profile or "none")
        elif isinstance(event, DoneEvent) and self._labels is not None:
            self._t.queue.labels(*self._labels).observe(event.queue_ms / 1000)
            self._t.total.labels(*self._labels).observe(event.total_ms / 1000)
            if event.ttft_ms is not None:
                self._t.ttft.labels(*self._labels).observe(event.ttft_ms / 1000)
        elif isinstance(event, ErrorEvent):
            self._t.run_errors.labels(event.code).inc()


def trace_id_of(span: trace.Span) -> str | None:
    """The span's trace id as OTLP and trace viewers write it (32 hex digits); None when tracing is off or
    the trace is not kept (sampled out), so a recorded trace id always leads to a trace."""
    context = span.get_span_context()
    return (
        trace.format_trace_id(context.trace_id) if context.is_valid and context.trace_flags.sampled else None
    )
