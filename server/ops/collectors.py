"""Metrics computed from the database when Prometheus scrapes, not counted in memory.

Workflows and actions run in the worker, a process of their own, and counters in memory would start again
from zero at every restart. What they did is in the lineage file (the action log, the workflow and action
tables, the runs, the reviews) and in the sync state, so each scrape reads it there: the figures are the
same whichever process answers and survive restarts. A counter here is a count of recorded rows, which only
grows (the tables are append-only or keep their rows), so Prometheus' `rate()` works on it.

Every label is from a bounded set: task, model profile, status, event, decision, kind. Never an id.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.lineage import LineageStore
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.ops.slo import SloReport, slo_report

__all__ = ["GpuCollector", "ModelQueueCollector", "StoredCollector"]

# Confidence of structured results: the review threshold (0.6 by default) falls on a bucket edge.
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
# What is still to be done in the outbox: approved or queued, not yet executed.
_OUTBOX_PENDING = ("approved", "queued", "executing")


class ModelQueueCollector(Collector):
    """Each loaded model profile's line: requests waiting and whether the model is busy (server process)."""

    def __init__(self, models: ModelRegistry) -> None:
        self._models = models

    def collect(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            "deskpilot_model_queue_waiting", "Requests waiting for the model, per profile", labels=["profile"]
        )
        busy = GaugeMetricFamily(
            "deskpilot_model_busy", "1 while the model is generating, per profile", labels=["profile"]
        )
        for name, host in sorted(self._models.built_hosts().items()):
            waiting.add_metric([name], host.gate.waiting)
            busy.add_metric([name], 1.0 if host.gate.busy else 0.0)
        yield waiting
        yield busy


class GpuCollector(Collector):
    """GPU utilisation and memory where torch has already been loaded with CUDA; absent otherwise (loading
    torch only to be scraped would cost seconds and hundreds of megabytes)."""

    def collect(self) -> Iterator[Metric]:
        torch = sys.modules.get("torch")
        # `cuda` is missing while another thread is still importing torch (the index warms up after start).
        cuda = getattr(torch, "cuda", None)
        if cuda is None or not cuda.is_available():
            return
        util = GaugeMetricFamily("deskpilot_gpu_utilization_ratio", "GPU utilisation (0-1)", labels=["gpu"])
        memory = GaugeMetricFamily(
            "deskpilot_gpu_memory_used_bytes", "GPU memory this process allocated", labels=["gpu"]
        )
        for index in range(cuda.device_count()):
            # Without NVML (pynvml missing) utilisation is left out; memory is still known.
            with contextlib.suppress(Exception):
                util.add_metric([str(index)], cuda.utilization(index) / 100)
            memory.add_metric([str(index)], float(cuda.memory_allocated(index)))
        yield util
        yield memory


class StoredCollector(Collector):
    """Orchestration, semantic quality, cost and SLO metrics, from the lineage file and the sync state."""

    def __init__(self, lineage: LineageStore, sync_db: Path) -> None:
        self._lineage = lineage
        self._reviews = ReviewQueue(lineage)
        self._sync_db = sync_db

    def collect(self) -> Iterator[Metric]:
        with self._lineage.reading() as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            yield from _runs(conn)
            yield _confidence(conn)
            yield from _faithful(conn)
            if "action_log" in tables:
                yield from _action_log(conn)
            if "workflows" in tables:
                yield _by_status(conn, "workflows", "deskpilot_workflows", "Workflows now in each status")
            if "actions" in tables:
                yield from _actions(conn)
        yield from _quality(self._reviews)
        yield from _slo(slo_report(self._lineage))
        if self._sync_db.exists():
            yield from _sync(self._sync_db)


def _runs(conn: sqlite3.Connection) -> Iterator[Metric]:
    rows = conn.execute(
        "SELECT task, COALESCE(profile, 'embedded'), status, COUNT(*), COALESCE(SUM(tokens_in), 0),"
        " COALESCE(SUM(tokens_out), 0), COALESCE(SUM(cost), 0.0) FROM runs GROUP BY 1, 2, 3"
    ).fetchall()
    runs = CounterMetricFamily(
        "deskpilot_runs", "AI runs recorded in lineage, per task, model profile and status",
        labels=["task", "profile", "status"],
    )  # fmt: skip
    tokens = CounterMetricFamily(
        "deskpilot_tokens", "Tokens, per task, model profile and direction (in: prompt, out: completion)",
        labels=["task", "profile", "direction"],
    )  # fmt: skip
    cost = CounterMetricFamily(
        "deskpilot_cost", "Cost of the runs in the profiles' currency (local profiles cost 0)",
        labels=["task", "profile"],
    )  # fmt: skip
    totals: dict[tuple[str, str], list[float]] = {}
    for task, profile, status, count, tokens_in, tokens_out, spent in rows:
        runs.add_metric([task, profile, status], count)
        total = totals.setdefault((task, profile), [0, 0, 0.0])
        total[0] += tokens_in
        total[1] += tokens_out
        total[2] += spent
    for (task, profile), (tokens_in, tokens_out, spent) in sorted(totals.items()):
        tokens.add_metric([task, profile, "in"], tokens_in)
        tokens.add_metric([task, profile, "out"], tokens_out)
        cost.add_metric([task, profile], spent)
    yield from (runs, tokens, cost)


def _confidence(conn: sqlite3.Connection) -> Metric:
    cases = ", ".join(f"SUM(confidence <= {le})" for le in _CONFIDENCE_BUCKETS)
    found = HistogramMetricFamily(
        "deskpilot_confidence", "Confidence of structured results, per task", labels=["task"]
    )
    sql = (
        f"SELECT task, COUNT(*), SUM(confidence), {cases} FROM runs"
        " WHERE confidence IS NOT NULL GROUP BY task"
    )
    for task, count, total, *cumulative in conn.execute(sql).fetchall():
        buckets = [(str(le), n) for le, n in zip(_CONFIDENCE_BUCKETS, cumulative, strict=True)]
        found.add_metric([task], [*buckets, ("+Inf", count)], sum_value=total)
    return found


def _faithful(conn: sqlite3.Connection) -> Iterator[Metric]:
    """Unsupported content: of the sentences a model wrote in summaries and answers, those the faithfulness
    check did not find in the sources (dropped, or replaced by a quote), and the answers it replaced whole."""
    rows = conn.execute(
        "SELECT task, SUM(json_extract(validation, '$.faithful.written')),"
        " SUM(json_extract(validation, '$.faithful.supported')),"
        " SUM(json_extract(validation, '$.faithful.fallback')), COUNT(*) FROM runs"
        " WHERE json_extract(validation, '$.faithful.written') IS NOT NULL GROUP BY task"
    ).fetchall()
    sentences = CounterMetricFamily(
        "deskpilot_checked_sentences", "Sentences the faithfulness check judged, per task and verdict",
        labels=["task", "verdict"],
    )  # fmt: skip
    fallbacks = CounterMetricFamily(
        "deskpilot_checked_fallbacks", "Answers too little of which was supported, shown as source quotes",
        labels=["task"],
    )  # fmt: skip
    rate = GaugeMetricFamily(
        "deskpilot_unsupported_rate",
        "Share of written sentences the sources did not support",
        labels=["task"],
    )
    for task, written, supported, fallback, _runs in rows:
        sentences.add_metric([task, "supported"], supported)
        sentences.add_metric([task, "unsupported"], written - supported)
        fallbacks.add_metric([task], fallback)
        if written:
            rate.add_metric([task], (written - supported) / written)
    yield from (sentences, fallbacks, rate)


def _action_log(conn: sqlite3.Connection) -> Iterator[Metric]:
    """Workflow starts, completions, failures, compensations and step retries; action outcomes and retries:
    the chained action log's events, counted."""
    rows = conn.execute(
        "SELECT subject, event, COUNT(*) FROM action_log"
        " WHERE subject IN ('workflow', 'action') GROUP BY 1, 2"
    ).fetchall()
    workflow = CounterMetricFamily(
        "deskpilot_workflow_events",
        "Workflow events (workflow.started, .completed, .failed, .compensated, step.retry, ...)",
        labels=["event"],
    )  # fmt: skip
    action = CounterMetricFamily(
        "deskpilot_action_events", "Action events (approved, executed, failed, retried, compensated, ...)",
        labels=["event"],
    )  # fmt: skip
    for subject, event, count in rows:
        (workflow if subject == "workflow" else action).add_metric([event], count)
    yield workflow
    yield action


def _by_status(conn: sqlite3.Connection, table: str, name: str, doc: str) -> Metric:
    gauge = GaugeMetricFamily(name, doc, labels=["status"])
    for status, count in conn.execute(f"SELECT status, COUNT(*) FROM {table} GROUP BY status").fetchall():
        gauge.add_metric([status], count)
    return gauge


def _actions(conn: sqlite3.Connection) -> Iterator[Metric]:
    yield _by_status(conn, "actions", "deskpilot_actions", "Actions now in each status")
    marks = ", ".join("?" * len(_OUTBOX_PENDING))
    (depth,) = conn.execute(
        f"SELECT COUNT(*) FROM actions WHERE status IN ({marks})", _OUTBOX_PENDING
    ).fetchone()
    yield GaugeMetricFamily(
        "deskpilot_outbox_depth", "Actions approved or queued, not yet executed", value=depth
    )
    (failures,) = conn.execute("SELECT COALESCE(SUM(failures), 0) FROM actions").fetchone()
    yield CounterMetricFamily(
        "deskpilot_action_failed_attempts", "Failed execution attempts of actions (each one is retried)",
        value=failures,
    )  # fmt: skip


def _quality(reviews: ReviewQueue) -> Iterator[Metric]:
    """Review and override rates per task, from the same figures as GET /v1/metrics/quality."""
    per_task: dict[str, dict[str, int]] = {}
    for row in reviews.quality():
        counts = per_task.setdefault(row.task, {"runs": 0, "queued": 0, "accept": 0, "edit": 0, "reject": 0})
        counts["runs"] += row.runs
        counts["queued"] += row.queued
        counts["accept"] += row.accepted
        counts["edit"] += row.edited
        counts["reject"] += row.rejected
    structured = CounterMetricFamily(
        "deskpilot_structured_runs", "Structured results that finished", labels=["task"]
    )
    queued = CounterMetricFamily(
        "deskpilot_reviews_queued", "Structured results sent to review", labels=["task"]
    )
    decisions = CounterMetricFamily(
        "deskpilot_review_decisions", "Review decisions, per task and decision", labels=["task", "decision"]
    )
    review_rate = GaugeMetricFamily(
        "deskpilot_review_rate", "Share of structured results sent to review", labels=["task"]
    )
    override_rate = GaugeMetricFamily(
        "deskpilot_override_rate", "Share of reviewed results a person edited or rejected", labels=["task"]
    )
    for task, c in sorted(per_task.items()):
        structured.add_metric([task], c["runs"])
        queued.add_metric([task], c["queued"])
        for decision in ("accept", "edit", "reject"):
            decisions.add_metric([task, decision], c[decision])
        if c["runs"]:
            review_rate.add_metric([task], c["queued"] / c["runs"])
        reviewed = c["accept"] + c["edit"] + c["reject"]
        if reviewed:
            override_rate.add_metric([task], (c["edit"] + c["reject"]) / reviewed)
    yield from (structured, queued, decisions, review_rate, override_rate)


def _slo(report: SloReport) -> Iterator[Metric]:
    for slo in (report.workflow_availability, report.sync_latency):
        name = f"deskpilot_slo_{slo.name}"
        yield GaugeMetricFamily(f"{name}_ratio", f"{slo.description}: over the window", value=_nan(slo.value))
        yield GaugeMetricFamily(f"{name}_objective", f"{slo.description}: the objective", value=slo.objective)
        yield GaugeMetricFamily(
            f"{name}_error_budget_remaining", f"{slo.description}: share of the error budget left",
            value=_nan(slo.budget_remaining),
        )  # fmt: skip


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _sync(path: Path) -> Iterable[Metric]:
    """Graph sync runs per status and items skipped (too large, unsupported, failing), from the sync state."""
    runs = CounterMetricFamily(
        "deskpilot_sync_runs", "Microsoft 365 sync runs, per status", labels=["status"]
    )
    skipped = GaugeMetricFamily(
        "deskpilot_sync_items_skipped", "Synced items not indexed (skipped), per kind", labels=["kind"]
    )
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "runs" in tables:
            for status, count in conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"):
                runs.add_metric([status], count)
        if "items" in tables:
            rows: list[Any] = conn.execute(
                "SELECT kind, COUNT(*) FROM items WHERE skipped IS NOT NULL GROUP BY kind"
            ).fetchall()
            for kind, count in rows:
                skipped.add_metric([kind], count)
    return [runs, skipped]
