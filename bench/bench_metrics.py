"""What metrics and tracing cost `POST /v1/summarize`, with the scripted (fake) backend: requests per second
with and without, in the same run.

Four apps in this process, each with its own app data folder, the same scripted backend (7 tokens) and
the full ASGI stack (guard, routing, SSE, lineage with its fsyncs), driven by Litestar's TestClient one
request at a time:
- bare: no measurement at all (a Telemetry whose HTTP wrapper and run observer do nothing);
- metrics: the default (live histograms and counters; tracing off, its no-op tracer);
- metrics + tracing: spans exported over OTLP/HTTP (batched) to a receiver on 127.0.0.1 (its own process);
- metrics + tracing 10%: the same with `otel_sample_ratio = 0.1`.
Short rounds rotate them, so drift (a shared CPU, the page cache) hits all equally; each
configuration's figure is the median of its rounds, and its rate over the whole run. Also: how long one
`/metrics` scrape takes once the lineage file holds every run the bench made (the collectors read it),
and how long the database collectors take over `--scrape-runs` runs (100,000 by default).

CPU time per request is reported too: on a shared machine it is the steadier figure. And the CPU time of
the measurement code alone per request (no server), which the machine's load barely moves.

Usage: python bench/bench_metrics.py [--rounds 60] [--requests 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import set_span_in_context
from prometheus_client import CollectorRegistry, generate_latest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import app_client  # noqa: E402

from deskpilot.indexes import DocumentIndex, HashEmbedder  # noqa: E402
from deskpilot.inference import ScriptedBackend  # noqa: E402
from deskpilot.server.app import create_app  # noqa: E402
from deskpilot.server.core.telemetry import RunObserver, Telemetry  # noqa: E402
from deskpilot.server.core.wire import DoneEvent, MetaEvent, TokenEvent, UsageOut  # noqa: E402
from deskpilot.server.lineage import LineageStore  # noqa: E402
from deskpilot.server.ops.collectors import StoredCollector  # noqa: E402
from deskpilot.server.services import Services  # noqa: E402
from deskpilot.server.settings import load_settings  # noqa: E402

EMAIL = {"from": "ana@example.com", "subject": "Q3", "body": "Please send the Q3 numbers by Friday."}
TOKENS = ["Ana", " wants", " the", " numbers", " by", " Friday", "."]


class _Bare(Telemetry):
    """No measurement: the baseline."""

    def asgi(self, app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        return app

    def observe_run(self) -> RunObserver:
        return _NoObserver(self)


class _NoObserver(RunObserver):
    def saw(self, event: object) -> None:
        pass


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that counts what it is sent."""

    received: Any = None  # a multiprocessing.Value: bytes received

    def do_POST(self) -> None:
        size = len(self.rfile.read(int(self.headers["Content-Length"])))
        with self.received.get_lock():
            self.received.value += size
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _receive(port: Any, received: Any) -> None:
    """The receiver, in a process of its own so that it does not take the benchmarked process' CPU."""
    _Receiver.received = received
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    port.value = server.server_address[1]
    server.serve_forever()


def make(home: Path, telemetry: Telemetry) -> Any:
    services = Services(
        load_settings(home=home, https=False),
        backend=ScriptedBackend(TOKENS),
        index=DocumentIndex(home / "index", embedder=HashEmbedder()),
        telemetry=telemetry,
    )
    return app_client(create_app(services))


def round_of(client: Any, requests: int) -> tuple[float, float]:
    """Requests per second (wall clock), and CPU milliseconds this process spent per request (all its
    threads: the app's, the client's, the span exporter's), which other load on the machine barely moves."""
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        r = client.post("/v1/summarize", json={"email": EMAIL, "cache": False})
        assert r.status_code == 200 and "event: done" in r.text, r.text
    return requests / (time.perf_counter() - began), (time.process_time() - cpu) * 1000 / requests


class _NullExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def instrumentation_cost(iterations: int = 20_000) -> dict[str, float]:
    """CPU microseconds the measurement code itself adds to one summary, outside any server: what the HTTP
    wrapper and the run observer record (metrics), the five spans of a request built and ended, and
    their OTLP encoding (what the exporter's thread does before it posts them). Steady where the shared
    machine makes the end-to-end figures noisy."""
    metrics = Telemetry()
    events = [
        MetaEvent(run_id="r", task="summarize", model="m", backend="b", template="t", truncated=False,
                  profile="p"),
        *[TokenEvent(text=t) for t in TOKENS],
        DoneEvent(run_id="r", usage=UsageOut(prompt_tokens=1, completion_tokens=7, finish_reason="stop"),
                  queue_ms=1.0, ttft_ms=2.0, total_ms=3.0),
    ]  # fmt: skip

    def measured() -> None:
        observe = metrics.observe_run()
        for event in events:
            observe.saw(event)
        metrics.http.labels("POST", "200").inc()
        metrics.http_seconds.labels("POST").observe(0.01)

    kept = InMemorySpanExporter()
    _request_spans(Telemetry(span_exporter=kept).tracer)
    spans = kept.get_finished_spans()  # one request's, as the exporter gets them
    null_tracer = Telemetry(span_exporter=_NullExporter()).tracer
    cost = {}
    for name, work in (
        ("metrics_us_per_request", measured),
        ("tracing_spans_us_per_request", lambda: _request_spans(null_tracer)),
        ("tracing_otlp_encode_us_per_request", lambda: encode_spans(spans).SerializePartialToString()),
    ):
        began = time.process_time()
        for _ in range(iterations):
            work()
        cost[name] = round((time.process_time() - began) / iterations * 1e6, 1)
    return cost


def _request_spans(tracer: Any) -> None:
    """The spans of one summary, built as the server builds them (core/telemetry.py, runs.py)."""
    with tracer.start_as_current_span("POST request"):
        with tracer.start_as_current_span("admission"):
            pass
        model = tracer.start_span("model", attributes={"task": "summarize", "profile": "embedded"})
        for name in ("lineage.open", "lineage.close"):
            with tracer.start_as_current_span(name, context=set_span_in_context(model)):
                pass
        model.set_attribute("run_id", "0" * 32)
        model.end()


def scrape_at_scale(runs: int) -> dict[str, Any]:
    """One scrape of the database collectors when lineage holds `runs` closed runs: a mix of summaries
    (with their faithfulness check) and extractions (with a confidence). The rows are written straight
    into the table (placeholder hashes): the scrape reads them and never checks the chain."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp), https=False)
        with LineageStore(settings.db_path) as lineage:
            rows = [_row(i) for i in range(runs)]
            with lineage.transaction() as conn:
                columns = list(rows[0])
                conn.executemany(
                    f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [[row[c] for c in columns] for row in rows],
                )
            registry = CollectorRegistry()
            registry.register(StoredCollector(lineage, settings.sync_db_path))
            began = time.perf_counter()
            generate_latest(registry)  # the first scrape reads every run once
            first_ms = (time.perf_counter() - began) * 1000
            times = []
            for _ in range(5):
                began = time.perf_counter()
                body = generate_latest(registry)
                times.append((time.perf_counter() - began) * 1000)
    return {
        "scrape_runs": runs,
        "scrape_ms_first_at_scale": round(first_ms, 1),
        "scrape_ms_at_scale": round(statistics.median(times), 1),
        "scrape_bytes": len(body),
    }


def _row(i: int) -> dict[str, Any]:
    summary = i % 3 != 0
    digest = "sha256:" + "0" * 64
    return {
        "id": f"{i:032x}",
        "started_at": "2026-12-01T09:00:00.000000Z",
        "finished_at": "2026-12-01T09:00:01.000000Z",
        "task": "summarize" if summary else "extract:invoice",
        "template_id": "t",
        "template_hash": digest,
        "model_id": "m",
        "weights_digest": digest,
        "backend": "llama.cpp",
        "parameters": "{}",
        "input_digest": digest,
        "client": "outlook",
        "retrieved_chunks": "[]",
        "status": "ok" if i % 50 else "error",
        "validation": json.dumps({"faithful": {"written": 3, "supported": 2 + i % 2, "fallback": False}})
        if summary
        else json.dumps({"valid": True}),
        "confidence": None if summary else (i % 100) / 100,
        "ttft_ms": 300.0 + i % 2000,
        "total_ms": 1500.0 + i % 3000,
        "tokens_in": 400,
        "tokens_out": 60,
        "cost": 0.0,
        "profile": "embedded",
        "prev_hash": f"h{i - 1}" if i else None,
        "hash": f"h{i}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--scrape-runs", type=int, default=100_000, help="runs in the file a scrape reads")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    port, received = multiprocessing.Value("i", 0), multiprocessing.Value("q", 0)
    receiver = multiprocessing.Process(target=_receive, args=(port, received), daemon=True)
    receiver.start()
    while port.value == 0:
        time.sleep(0.01)
    endpoint = f"http://127.0.0.1:{port.value}/v1/traces"
    with tempfile.TemporaryDirectory() as tmp:
        configs = {
            "bare": _Bare(),
            "metrics": Telemetry(),
            "metrics+tracing": Telemetry(otel_endpoint=endpoint),
            "metrics+tracing 10%": Telemetry(otel_endpoint=endpoint, sample_ratio=0.1),
        }
        clients = {name: make(Path(tmp) / name, t) for name, t in configs.items()}
        for client in clients.values():
            client.__enter__()
        try:
            for client in clients.values():
                round_of(client, 20)  # warm-up: imports, first lineage writes
            rates: dict[str, list[float]] = {name: [] for name in clients}
            cpu: dict[str, list[float]] = {name: [] for name in clients}
            names = list(clients)
            for i in range(args.rounds):
                # Each configuration takes each place in the order equally often.
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    rate, cpu_ms = round_of(clients[name], args.requests)
                    rates[name].append(rate)
                    cpu[name].append(cpu_ms)
            scrape_ms = []
            for _ in range(10):
                began = time.perf_counter()
                assert clients["metrics"].get("/metrics").status_code == 200
                scrape_ms.append((time.perf_counter() - began) * 1000)
        finally:
            for client in clients.values():
                client.__exit__(None, None, None)
    receiver.terminate()
    median = {name: statistics.median(r) for name, r in rates.items()}
    cpu_ms = {name: statistics.median(c) for name, c in cpu.items()}
    # Over the whole run: all requests over all the time (1 / mean of the rounds' seconds per request).
    overall = {name: len(r) / sum(1 / v for v in r) for name, r in rates.items()}
    runs = 20 + args.rounds * args.requests
    result = {
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "req_per_s": {name: round(v, 1) for name, v in median.items()},
        "req_per_s_overall": {name: round(v, 1) for name, v in overall.items()},
        "lost_pct_median": {
            name: round((1 - median[name] / median["bare"]) * 100, 2) for name in median if name != "bare"
        },
        "lost_pct_overall": {
            name: round((1 - overall[name] / overall["bare"]) * 100, 2) for name in overall if name != "bare"
        },
        "cpu_ms_per_request_median": {name: round(v, 3) for name, v in cpu_ms.items()},
        # Throughput lost where the server is CPU-bound: 1 - bare CPU per request / this CPU per request.
        "lost_pct_cpu": {
            name: round((1 - cpu_ms["bare"] / cpu_ms[name]) * 100, 2) for name in cpu_ms if name != "bare"
        },
        "scrape_ms_median": round(statistics.median(scrape_ms), 1),
        "runs_in_lineage_at_scrape": runs,
        "otlp_bytes_received": received.value,
    }
    result |= instrumentation_cost()
    result |= scrape_at_scale(args.scrape_runs)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
