"""Traces: request -> admission -> model -> lineage as OpenTelemetry spans, the trace id in the run's lineage
record (and the run id on the trace), off by default, and sent over OTLP/HTTP to a real receiver on
127.0.0.1 when `otel_endpoint` is set."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import app_client, parse_sse
from fakes import RecordingQueue, ScriptedAI, fake_adapters
from litestar.testing import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.core.telemetry import Telemetry
from deskpilot.server.lineage import LineageStore
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.services import Services
from deskpilot.server.settings import SettingsError, load_settings
from deskpilot.server.worker import WorkerRuntime
from deskpilot.server.workflows.ai import ModelAI

pytestmark = pytest.mark.integration

EMAIL = {
    "email": {"from": "ana@example.com", "subject": "Q3", "body": "Please send the Q3 numbers by Friday."}
}


def make_client(home: Path, telemetry: Telemetry | None = None, **settings: object) -> TestClient:
    services = Services(
        load_settings(home=home, https=False, **settings),
        backend=ScriptedBackend(["Ana", " wants", " the", " numbers", "."]),
        index=DocumentIndex(home / "index", embedder=HashEmbedder()),
        telemetry=telemetry,
    )
    return app_client(create_app(services))


def summarize(client: TestClient) -> dict:
    r = client.post("/v1/summarize", json={**EMAIL, "cache": False})
    assert r.status_code == 200, r.text
    meta = next(data for name, data in parse_sse(r.text) if name == "meta")
    run = client.get(f"/v1/runs/{meta['runId']}")
    assert run.status_code == 200
    return run.json()  # type: ignore[no-any-return]


def test_a_request_is_one_trace_and_its_run_records_the_trace_id(app_home: Path) -> None:
    exporter = InMemorySpanExporter()
    with make_client(app_home, Telemetry(span_exporter=exporter)) as client:
        run = summarize(client)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    request = next(s for name, s in spans.items() if name == "POST request")
    admission, model = spans["admission"], spans["model"]
    opened, closed = spans["lineage.open"], spans["lineage.close"]
    trace_ids = {s.context.trace_id for s in (request, admission, model, opened, closed)}
    assert len(trace_ids) == 1
    # request -> admission, request -> model -> lineage (open and close).
    assert request.parent is None
    assert admission.parent.span_id == request.context.span_id  # type: ignore[union-attr]
    assert model.parent.span_id == request.context.span_id  # type: ignore[union-attr]
    assert opened.parent.span_id == closed.parent.span_id == model.context.span_id  # type: ignore[union-attr]
    assert request.attributes["http.response.status_code"] == 200  # type: ignore[index]
    assert model.attributes == {
        "task": "summarize",
        "profile": "embedded",
        "status": "ok",
        "run_id": run["id"],
    }
    # From the record to its trace, and from the trace to its record.
    assert run["traceId"] == f"{request.context.trace_id:032x}"


def test_tracing_is_off_by_default(app_home: Path) -> None:
    telemetry = Telemetry()
    assert not telemetry.tracing
    with make_client(app_home, telemetry) as client:
        run = summarize(client)
    assert run["traceId"] is None


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces endpoint: keeps every POSTed ExportTraceServiceRequest."""

    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        type(self).received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    received: list[ExportTraceServiceRequest] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()


def test_otel_endpoint_sends_the_spans_over_otlp_http(
    app_home: Path, receiver: tuple[str, list[ExportTraceServiceRequest]]
) -> None:
    url, received = receiver
    with make_client(app_home, otel_endpoint=url) as client:
        run = summarize(client)
    # Shutting the app down flushes the batch (Services.aclose -> Telemetry.shutdown).
    spans = [
        span
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = sorted(span.name for span in spans)
    # Two requests (the summary, the run's record), each a trace; the summary's has its four children.
    assert names == sorted(
        ["POST request", "GET request", "admission", "model", "lineage.open", "lineage.close"]
    )
    model = next(span for span in spans if span.name == "model")
    assert model.trace_id.hex() == run["traceId"]
    service = {a.key: a.value.string_value for a in received[0].resource_spans[0].resource.attributes}
    assert service["service.name"] == "deskpilot"


def test_worker_tasks_are_traces_of_their_own(app_home: Path) -> None:
    exporter = InMemorySpanExporter()
    runtime = WorkerRuntime(
        load_settings(),
        adapters=fake_adapters(),  # type: ignore[arg-type]
        ai=ScriptedAI(),  # type: ignore[arg-type]
        queue=RecordingQueue(),
        telemetry=Telemetry(span_exporter=exporter),
    )
    try:
        draft, _ = runtime.outbox.propose(
            "draft_reply", {"messageId": "m", "body": "b"}, title="t", origin="o", actor="me"
        )
        assert draft.status == "queued"  # policy approves drafts
        assert runtime.execute_action(draft.id)["did"] == "executed"
        workflow, _ = runtime.engine.start("meeting_followup", {"text": "notes"}, origin="t1", actor="me")
        assert workflow is not None
        did = runtime.advance_workflow(workflow.id)["did"]
    finally:
        runtime.close()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    execute, advance = spans["action.execute"], spans["workflow.advance"]
    assert execute.attributes == {"action_id": draft.id, "did": "executed"}
    # The steps that ran, up to the human review meeting follow-ups always wait for.
    assert advance.attributes == {"workflow_id": workflow.id, "did": ",".join(did)} and did
    assert execute.parent is None and execute.context.trace_id != advance.context.trace_id


def test_a_workflow_steps_model_run_belongs_to_its_tasks_trace(app_home: Path) -> None:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(span_exporter=exporter)
    settings = load_settings()
    with LineageStore(settings.db_path) as lineage:
        models = ModelRegistry(settings, backends={"embedded": ScriptedBackend})
        ai = ModelAI(models, lineage, settings, telemetry=telemetry)
        try:
            with telemetry.span("workflow.advance") as task:
                answer = ai.classify("Invoice INV-1, total 54.00 GBP", ["invoice", "other"])
        finally:
            ai.close()
        run = lineage.get_run(answer["runId"])
    spans = {s.name: s for s in exporter.get_finished_spans()}
    model = spans["model"]
    assert model.parent is not None and model.parent.span_id == task.get_span_context().span_id
    assert run is not None and run.client == "workflow"
    assert run.trace_id == f"{task.get_span_context().trace_id:032x}"


def test_a_sampled_out_trace_is_neither_exported_nor_recorded(app_home: Path) -> None:
    exporter = InMemorySpanExporter()
    with make_client(app_home, Telemetry(span_exporter=exporter, sample_ratio=0.0)) as client:
        run = summarize(client)
    assert exporter.get_finished_spans() == () and run["traceId"] is None
    with pytest.raises(SettingsError, match="otel_sample_ratio"):
        load_settings(otel_sample_ratio=1.5)
