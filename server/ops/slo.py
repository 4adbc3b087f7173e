"""The service level objectives, computed from lineage over a window, with what is left of the error budget.

- Workflow availability (objective 99.5%): of the workflows that reached an end in the window, the share
  that ended as designed: completed, or stopped on purpose (skipped by a rule, rejected by a person). A
  workflow that failed, or had to be compensated, spent error budget. Those still running are not counted.
- Synchronous latency (objective: 95% under 2 s): of the AI runs a person waited for (every client but the
  workflow engine) that answered in the window, the share whose first token came within 2 s of the model
  starting (lineage's `ttft_ms`; for an answer with no stream, its total time). Queue waits are not in
  lineage and not in this figure; `/metrics` has them (`deskpilot_run_queue_wait_seconds`).

The error budget is what the objective allows to go wrong: (1 - objective) x events. `budget_remaining` is
the share of it not yet spent (negative once the objective is missed); None where nothing was counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from deskpilot.server.core.db import iso_utc
from deskpilot.server.core.wire import Out
from deskpilot.server.lineage import LineageStore

__all__ = ["LATENCY_TARGET_MS", "Slo", "SloReport", "slo_report"]

AVAILABILITY_OBJECTIVE = 0.995
LATENCY_OBJECTIVE = 0.95
LATENCY_TARGET_MS = 2000.0
DEFAULT_WINDOW = timedelta(days=28)

_WORKFLOW_GOOD = ("completed", "skipped", "rejected")
_WORKFLOW_BAD = ("failed", "compensated")


class Slo(Out):
    name: str
    description: str
    objective: float
    total: int  # events counted in the window
    good: int
    value: float | None  # good / total
    budget_total: float  # events the objective allows to be bad
    budget_spent: int
    budget_remaining: float | None  # share of the budget left; negative once the objective is missed


class SloReport(Out):
    since: str  # ISO 8601 UTC
    until: str
    workflow_availability: Slo
    sync_latency: Slo
    latency_target_ms: float = LATENCY_TARGET_MS


def slo_report(lineage: LineageStore, window: timedelta = DEFAULT_WINDOW) -> SloReport:
    """Both objectives over the `window` that ends now (the store's clock)."""
    until = lineage.now()
    since = until - window
    good, bad = _workflows(lineage, since)
    fast, answered = _latency(lineage, since)
    return SloReport(
        since=iso_utc(since),
        until=iso_utc(until),
        workflow_availability=_slo(
            "workflow_availability",
            "Workflows that ended as designed",
            AVAILABILITY_OBJECTIVE,
            good=good,
            total=good + bad,
        ),
        sync_latency=_slo(
            "sync_latency",
            f"Synchronous AI runs with their first token within {LATENCY_TARGET_MS / 1000:g} s",
            LATENCY_OBJECTIVE,
            good=fast,
            total=answered,
        ),
    )


def _slo(name: str, description: str, objective: float, *, good: int, total: int) -> Slo:
    allowed = (1 - objective) * total
    spent = total - good
    remaining = None if total == 0 else 1 - spent / allowed
    return Slo(
        name=name,
        description=description,
        objective=objective,
        total=total,
        good=good,
        value=good / total if total else None,
        budget_total=round(allowed, 6),
        budget_spent=spent,
        budget_remaining=remaining,
    )


def _workflows(lineage: LineageStore, since: datetime) -> tuple[int, int]:
    """Workflows that ended well and badly, by when they last changed (their end), in the window."""
    with lineage.reading() as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'workflows'").fetchone() is None:
            return 0, 0
        counts = dict(
            conn.execute(
                "SELECT status, COUNT(*) FROM workflows WHERE updated_at >= ? GROUP BY status",
                [iso_utc(since)],
            ).fetchall()
        )
    return sum(counts.get(s, 0) for s in _WORKFLOW_GOOD), sum(counts.get(s, 0) for s in _WORKFLOW_BAD)


def _latency(lineage: LineageStore, since: datetime) -> tuple[int, int]:
    """Synchronous runs that answered in the window, and how many of them were fast enough."""
    with lineage.reading() as conn:
        row = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(COALESCE(ttft_ms, total_ms) < ?), 0) FROM runs"
            " WHERE status = 'ok' AND client != 'workflow' AND started_at >= ?",
            [LATENCY_TARGET_MS, iso_utc(since)],
        ).fetchone()
    answered, fast = row
    return int(fast), int(answered)
