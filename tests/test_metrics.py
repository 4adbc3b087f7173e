"""`GET /metrics` in process: the scrape parses with prometheus-client's own parser, moves as requests,
workflows, actions and reviews happen, stays behind the token, and no label value is an id."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_client, parse_sse
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from samples import ANA, EMAIL, INVOICE, INVOICE_TEXT

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import BackendError, GenerationRequest, ScriptedBackend, Token
from deskpilot.server.app import create_app
from deskpilot.server.connectors.state import ItemRow, SyncState
from deskpilot.server.core.db import iso_utc
from deskpilot.server.lineage import LineageStore
from deskpilot.server.ops.collectors import StoredCollector
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

HOOK = {"url": "http://127.0.0.1:9/hook", "payload": {"a": 1}}
# Anything that looks like an id: 32 hex digits (run, trace), a UUID, a Graph id, a long opaque token.
ID_LIKE = re.compile(r"[0-9a-f]{16,}|[0-9a-f]{8}-[0-9a-f]{4}-|AAMk|dp-[0-9a-f]")


def model(request: GenerationRequest) -> list[Token]:
    """A summary for text tasks, the invoice JSON for extraction."""
    if request.json_schema is not None:
        text = json.dumps(INVOICE)
        return [Token(text[i : i + 4], -0.01) for i in range(0, len(text), 4)]
    return [Token(t) for t in ["Ana", " wants", " the", " numbers", "."]]


@pytest.fixture
def client(app_home: Path) -> Iterator[TestClient]:
    settings = load_settings(home=app_home, https=False, webhook_allow=("http://127.0.0.1:9/",))
    index = DocumentIndex(app_home / "index", embedder=HashEmbedder())
    with app_client(create_app(settings, backend=ScriptedBackend(model), index=index)) as c:
        yield c


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels, parsed by prometheus-client itself."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def summarize(client: TestClient) -> None:
    r = client.post("/v1/summarize", json={**EMAIL, "cache": False})
    assert r.status_code == 200 and "event: done" in r.text, r.text


def test_requests_move_latency_runs_tokens_and_http_counts(client: TestClient) -> None:
    before = scrape(client)
    assert value(before, "process_resident_memory_bytes") > 0 and ("process_cpu_seconds_total", ()) in before
    summarize(client)
    summarize(client)
    after = scrape(client)
    labels = {"task": "summarize", "profile": "embedded"}
    assert value(after, "deskpilot_run_seconds_count", **labels) == 2
    assert value(after, "deskpilot_run_ttft_seconds_count", **labels) == 2
    assert value(after, "deskpilot_run_queue_wait_seconds_count", **labels) == 2
    assert value(after, "deskpilot_runs_total", status="ok", **labels) == 2
    assert value(after, "deskpilot_tokens_total", direction="out", **labels) == 10
    assert value(after, "deskpilot_cost_total", **labels) == 0.0
    assert value(after, "deskpilot_http_responses_total", method="POST", status="200") == 2
    # The loaded model's line: nobody waits now, and the model is idle.
    assert value(after, "deskpilot_model_queue_waiting", profile="embedded") == 0
    assert ("deskpilot_model_busy", (("profile", "embedded"),)) in after
    # The SLO gauges: two fast synchronous runs, no workflow has ended yet (NaN).
    assert value(after, "deskpilot_slo_sync_latency_ratio") == 1.0
    assert value(after, "deskpilot_slo_sync_latency_error_budget_remaining") == 1.0


def test_errors_are_counted_by_code(client: TestClient) -> None:
    r = client.post("/v1/summarize", json={**EMAIL, "profile": "nope"})
    assert r.status_code == 400
    r = client.get("/v1/runs/unknown")
    assert r.status_code == 404
    samples = scrape(client)
    assert value(samples, "deskpilot_http_responses_total", method="POST", status="400") == 1
    assert value(samples, "deskpilot_http_responses_total", method="GET", status="404") == 1


def test_workflows_and_actions_move_the_orchestration_metrics(client: TestClient) -> None:
    before = scrape(client)
    assert value(before, "deskpilot_workflow_events_total", event="workflow.started") == 0
    body = {"automation": "meeting_followup", "inputs": {"text": "Ann sends the deck"}, "requestId": "r1"}
    assert client.post("/v1/workflows", json=body).status_code == 202
    action = client.post("/v1/actions", json={"kind": "webhook", "params": HOOK}).json()["action"]
    assert client.post(f"/v1/actions/{action['id']}/approve", json={"reviewer": ANA}).status_code == 200
    after = scrape(client)
    assert value(after, "deskpilot_workflow_events_total", event="workflow.started") == 1
    assert value(after, "deskpilot_workflows", status="running") == 1
    assert value(after, "deskpilot_action_events_total", event="approved") == 1
    assert value(after, "deskpilot_actions", status="queued") == 1
    assert value(after, "deskpilot_outbox_depth") == 1


def test_reviews_move_the_quality_metrics(client: TestClient) -> None:
    summarize(client)  # a checked summary has a confidence too, but it is not a reviewable result
    r = client.post("/v1/extract", json={"text": INVOICE_TEXT, "schema": "invoice"})
    assert r.status_code == 200
    result = next(data for name, data in parse_sse(r.text) if name == "result")
    review = result["review"]
    assert review is not None, result
    mid = scrape(client)
    task = "extract:invoice"
    assert value(mid, "deskpilot_structured_runs_total", task=task) == 1
    assert value(mid, "deskpilot_reviews_queued_total", task=task) == 1
    assert value(mid, "deskpilot_review_rate", task=task) == 1.0
    assert value(mid, "deskpilot_confidence_count", task=task) == 1
    assert ("deskpilot_structured_runs_total", (("task", "summarize"),)) not in mid
    assert ("deskpilot_override_rate", (("task", task),)) not in mid  # nothing reviewed yet
    decision = {"decision": "edit", "reviewer": ANA, "fields": {"total": 102}}
    assert client.post(f"/v1/reviews/{review['id']}", json=decision).status_code == 200
    after = scrape(client)
    assert value(after, "deskpilot_review_decisions_total", task=task, decision="edit") == 1
    assert value(after, "deskpilot_override_rate", task=task) == 1.0


def test_no_label_value_is_an_id(client: TestClient) -> None:
    summarize(client)
    client.post("/v1/extract", json={"text": INVOICE_TEXT, "schema": "invoice", "sourceRef": "AAMk-7"})
    client.post("/v1/actions", json={"kind": "webhook", "params": HOOK, "runId": "run-1"})
    samples = scrape(client)
    values = {v for _, labels in samples for _, v in labels}
    assert "summarize" in values and not [v for v in values if ID_LIKE.search(v)]
    # Only label names from bounded sets (the bucket bound `le` aside).
    allowed = {"task", "profile", "status", "code", "method", "event", "decision", "direction", "kind", "gpu"}
    allowed |= {"verdict"}
    assert {k for _, labels in samples for k, _ in labels} <= allowed | {"le"}


def test_metrics_need_the_token(client: TestClient) -> None:
    r = client.get("/metrics", headers={"authorization": ""})
    assert r.status_code == 401


def test_each_app_has_its_own_registry(app_home: Path, tmp_path: Path) -> None:
    """Two apps in one process (as the tests build them) neither collide nor see each other's counts."""
    apps = [
        create_app(load_settings(home=tmp_path / f"h{i}", https=False), backend=ScriptedBackend(["x"]))
        for i in range(2)
    ]
    with app_client(apps[0]) as one, app_client(apps[1]) as two:
        summarize(one)
        assert value(scrape(one), "deskpilot_run_seconds_count", task="summarize", profile="embedded") == 1
        assert value(scrape(two), "deskpilot_run_seconds_count", task="summarize", profile="embedded") == 0


def add_workflows(store: LineageStore, statuses: dict[str, int]) -> None:
    """Workflows that ended as given, written as the engine leaves them (a working table, not the chain)."""
    now = iso_utc(store.now())
    with store.transaction() as conn:
        for status, count in statuses.items():
            for i in range(count):
                conn.execute(
                    "INSERT INTO workflows (id, definition, automation, origin, status, context, created_at,"
                    " updated_at) VALUES (?, 'invoice_intake@1', 'invoice_intake', ?, ?, '{}', ?, ?)",
                    [f"{status}-{i}", f"test:{status}:{i}", status, now, now],
                )


def test_slo_availability_and_latency_with_the_error_budget(client: TestClient) -> None:
    store: LineageStore = client.app.state["services"].lineage
    client.get("/v1/workflows")  # the workflow tables exist once the app used them
    add_workflows(store, {"completed": 995, "skipped": 2, "rejected": 1, "failed": 2, "running": 7})
    summarize(client)
    r = client.get("/v1/slo", params={"windowDays": 7})
    assert r.status_code == 200, r.text
    slo = r.json()
    availability, latency = slo["workflowAvailability"], slo["syncLatency"]
    # 998 ended as designed of 1000 that ended (running ones are not counted); the objective allows 5 bad.
    assert (availability["total"], availability["good"], availability["budgetSpent"]) == (1000, 998, 2)
    assert availability["objective"] == 0.995 and availability["value"] == pytest.approx(0.998)
    assert availability["budgetTotal"] == pytest.approx(5.0)
    assert availability["budgetRemaining"] == pytest.approx(0.6)
    assert (latency["total"], latency["good"], latency["budgetRemaining"]) == (1, 1, 1.0)
    assert slo["latencyTargetMs"] == 2000.0
    samples = scrape(client)
    assert value(samples, "deskpilot_slo_workflow_availability_ratio") == pytest.approx(0.998)
    assert value(samples, "deskpilot_slo_workflow_availability_error_budget_remaining") == pytest.approx(0.6)
    # Three more failures overspend the budget: the remaining share goes negative.
    add_workflows(store, {"compensated": 4})
    assert client.get("/v1/slo").json()["workflowAvailability"]["budgetRemaining"] < 0


def test_slo_with_nothing_counted_has_no_value(client: TestClient) -> None:
    slo = client.get("/v1/slo").json()
    assert (
        slo["workflowAvailability"]["value"] is None
        and slo["workflowAvailability"]["budgetRemaining"] is None
    )
    assert client.get("/v1/slo", params={"windowDays": 0}).status_code == 400


def test_unsupported_content_is_counted_from_the_faithfulness_checks(client: TestClient) -> None:
    r = client.post("/v1/summarize", json={**EMAIL, "cache": False})
    meta = next(data for name, data in parse_sse(r.text) if name == "meta")
    checked = client.get(f"/v1/runs/{meta['runId']}").json()["validation"]["faithful"]
    assert checked["written"] >= 1
    samples = scrape(client)
    supported = value(samples, "deskpilot_checked_sentences_total", task="summarize", verdict="supported")
    unsupported = value(samples, "deskpilot_checked_sentences_total", task="summarize", verdict="unsupported")
    assert (supported, unsupported) == (checked["supported"], checked["written"] - checked["supported"])
    assert value(samples, "deskpilot_unsupported_rate", task="summarize") == unsupported / checked["written"]
    assert value(samples, "deskpilot_checked_fallbacks_total", task="summarize") == int(checked["fallback"])


def test_totals_kept_across_scrapes_match_a_fresh_read(client: TestClient) -> None:
    """The run totals are read incrementally (only runs appended since the last scrape): after several
    scrapes they equal what a collector reading the whole table at once finds."""
    for _ in range(3):
        summarize(client)
        scrape(client)
    client.post("/v1/extract", json={"text": INVOICE_TEXT, "schema": "invoice"})
    kept = scrape(client)
    services = client.app.state["services"]
    registry = CollectorRegistry()
    registry.register(StoredCollector(services.lineage, services.settings.sync_db_path))
    fresh = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    prefixes = (
        "deskpilot_runs",
        "deskpilot_tokens",
        "deskpilot_cost",
        "deskpilot_confidence",
        "deskpilot_checked",
    )
    assert value(kept, "deskpilot_runs_total", task="summarize", profile="embedded", status="ok") == 3
    mine = {k: v for k, v in kept.items() if k[0].startswith(prefixes)}
    assert mine and mine == {k: v for k, v in fresh.items() if k[0].startswith(prefixes)}


def test_a_failed_generation_is_counted_by_its_error_code(app_home: Path) -> None:
    backend = ScriptedBackend(["Ana", " wants"], fail_with=BackendError("the model crashed"), fail_after=1)
    settings = load_settings(home=app_home, https=False)
    index = DocumentIndex(app_home / "index", embedder=HashEmbedder())
    with app_client(create_app(settings, backend=backend, index=index)) as client:
        r = client.post("/v1/summarize", json={**EMAIL, "cache": False})
        assert r.status_code == 200 and [e for e, _ in parse_sse(r.text)][-1] == "error"
        samples = scrape(client)
    assert value(samples, "deskpilot_run_errors_total", code="backend_error") == 1
    labels = {"task": "summarize", "profile": "embedded"}
    assert value(samples, "deskpilot_runs_total", status="error", **labels) == 1
    assert value(samples, "deskpilot_run_seconds_count", **labels) == 0  # only answers are timed


def test_sync_runs_and_skipped_items_come_from_the_sync_state(client: TestClient) -> None:
    settings = client.app.state["services"].settings
    state = SyncState(settings.sync_db_path)
    try:
        done = state.start_run()
        state.finish_run(done, "ok", {"indexed": 2})
        state.finish_run(state.start_run(), "error", {}, error="signed out")
        files = [
            ItemRow(
                source=f"graph:file:{i}",
                scope="drive",
                kind="file",
                graph_id=str(i),
                parent=None,
                tag=None,
                indexed=skipped is None,
                skipped=skipped,
            ).as_put()
            for i, skipped in enumerate(["too large", "unsupported type", None])
        ]
        state.commit_page("drive", 1, put=files)
    finally:
        state.close()
    samples = scrape(client)
    assert value(samples, "deskpilot_sync_runs_total", status="ok") == 1
    assert value(samples, "deskpilot_sync_runs_total", status="error") == 1
    assert value(samples, "deskpilot_sync_items_skipped", kind="file") == 2
