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
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.lineage import LineageStore
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.ops.drift import DriftMonitor
from deskpilot.server.ops.slo import SloReport, slo_report

__all__ = ["DriftCollector", "GpuCollector", "ModelQueueCollector", "StoredCollector"]

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
        self._totals = _RunTotals()

    def collect(self) -> Iterator[Metric]:
        with self._lineage.reading() as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            totals = self._totals.update(conn)
            if "action_log" in tables:
                yield from _action_log(conn)
            if "workflows" in tables:
                yield _by_status(conn, "workflows", "deskpilot_workflows", "Workflows now in each status")
            if "actions" in tables:
                yield from _actions(conn)
        yield from _runs(totals)
        yield _confidence(totals)
        yield from _faithful(totals)
        yield from _quality(self._reviews)
        yield from _slo(slo_report(self._lineage))
        if self._sync_db.exists():
            yield from _sync(self._sync_db)


class DriftCollector(Collector):
    """Each task's drift signals as the last check left them (`drift_state`, server/ops/drift.py), and the
    inputs drift had to drop. Labels: task and signal names only; a task's fields are capped
    (`drift.MAX_FIELDS`)."""

    def __init__(self, lineage: LineageStore, monitor: DriftMonitor) -> None:
        self._lineage, self._monitor = lineage, monitor

    def collect(self) -> Iterator[Metric]:
        value = GaugeMetricFamily(
            "deskpilot_drift_value",
            "Drift signal at the last check: PSI, centroid cosine distance, or a rate's change",
            labels=["task", "signal"],
        )
        alarm = GaugeMetricFamily(
            "deskpilot_drift_alarm", "1 while a drift signal is over its threshold", labels=["task", "signal"]
        )
        with self._lineage.reading() as conn:
            rows = conn.execute("SELECT task, signal, value, alarm FROM drift_state ORDER BY 1, 2").fetchall()
        for task, signal, measured, alarmed in rows:
            value.add_metric([task, signal], measured)
            alarm.add_metric([task, signal], float(alarmed))
        yield value
        yield alarm
        yield CounterMetricFamily(
            "deskpilot_drift_inputs_dropped",
            "Inputs drift did not embed because its queue was full (since the server started)",
            value=self._monitor.dropped,
        )


class _RunTotals:
    """Runs, tokens, cost, confidence and faithfulness totals, kept up to date by reading only the runs
    appended since the last scrape: `runs` is append-only (triggers refuse UPDATE and DELETE) and rows
    enter it in `seq` order (one writer at a time), so a total over `seq <= last` never changes. A scrape
    over 100,000 runs thus reads them once, not every 15 seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self.runs: dict[tuple[str, str, str], list[float]] = {}  # count, tokens in, tokens out, cost
        self.confidence: dict[str, list[float]] = {}  # count, sum, then cumulative bucket counts
        self.faithful: dict[str, list[float]] = {}  # sentences written, supported, fallbacks

    def update(self, conn: sqlite3.Connection) -> _RunTotals:
        """Add the runs appended since the last call; a copy of the totals (scrapes may overlap)."""
        with self._lock:
            self._read(conn)
            copy = _RunTotals()
            copy.runs = {k: list(v) for k, v in self.runs.items()}
            copy.confidence = {k: list(v) for k, v in self.confidence.items()}
            copy.faithful = {k: list(v) for k, v in self.faithful.items()}
            return copy

    def _read(self, conn: sqlite3.Connection) -> None:
        (upto,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM runs").fetchone()
        if upto == self._last:
            return
        window = [self._last, upto]
        where = " WHERE seq > ? AND seq <= ?"
        for task, profile, status, *sums in conn.execute(
            "SELECT task, COALESCE(profile, 'embedded'), status, COUNT(*), COALESCE(SUM(tokens_in), 0),"
            f" COALESCE(SUM(tokens_out), 0), COALESCE(SUM(cost), 0.0) FROM runs{where} GROUP BY 1, 2, 3",
            window,
        ):
            _add(self.runs, (task, profile, status), sums)
        cases = ", ".join(f"SUM(confidence <= {le})" for le in _CONFIDENCE_BUCKETS)
        for task, *sums in conn.execute(
            f"SELECT task, COUNT(*), SUM(confidence), {cases} FROM runs{where}"
            " AND confidence IS NOT NULL GROUP BY task",
            window,
        ):
            _add(self.confidence, task, sums)
        for task, *sums in conn.execute(
            "SELECT task, SUM(json_extract(validation, '$.faithful.written')),"
            " SUM(json_extract(validation, '$.faithful.supported')),"
            f" SUM(json_extract(validation, '$.faithful.fallback')) FROM runs{where}"
            " AND json_extract(validation, '$.faithful.written') IS NOT NULL GROUP BY task",
            window,
        ):
            _add(self.faithful, task, sums)
        self._last = upto


def _add(totals: dict[Any, list[float]], key: Any, sums: list[float]) -> None:
    total = totals.setdefault(key, [0.0] * len(sums))
    for i, value in enumerate(sums):
        total[i] += value


def _runs(totals: _RunTotals) -> Iterator[Metric]:
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
    per_profile: dict[tuple[str, str], list[float]] = {}
    for (task, profile, status), (count, *sums) in sorted(totals.runs.items()):
        runs.add_metric([task, profile, status], count)
        _add(per_profile, (task, profile), sums)
    for (task, profile), (tokens_in, tokens_out, spent) in sorted(per_profile.items()):
        tokens.add_metric([task, profile, "in"], tokens_in)
        tokens.add_metric([task, profile, "out"], tokens_out)
        cost.add_metric([task, profile], spent)
    yield from (runs, tokens, cost)


def _confidence(totals: _RunTotals) -> Metric:
    found = HistogramMetricFamily(
        "deskpilot_confidence", "Confidence of structured results, per task", labels=["task"]
    )
    for task, (count, total, *cumulative) in sorted(totals.confidence.items()):
        buckets = [(str(le), n) for le, n in zip(_CONFIDENCE_BUCKETS, cumulative, strict=True)]
        found.add_metric([task], [*buckets, ("+Inf", count)], sum_value=total)
    return found


def _faithful(totals: _RunTotals) -> Iterator[Metric]:
    """Unsupported content: of the sentences a model wrote in summaries and answers, those the faithfulness
    check did not find in the sources (dropped, or replaced by a quote), and the answers it replaced whole."""
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
    for task, (written, supported, fallback) in sorted(totals.faithful.items()):
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
