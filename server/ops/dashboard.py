"""What the compliance and IT dashboard (`/dashboard/`) and the auditor's report show, read from lineage.

`dashboard_data(lineage, since, bucket)` gathers every view in one read: latency (time to first token and
total time, p50 and p95), cost and tokens per model profile, review and override rates, per time bucket;
the service level objectives (`slo.py`); drift (the `drift_checks` rows the drift monitor writes beside
the chain, and its alarms); the state of the hash chains with the last recorded verification; and the
retention, erasure and legal hold events. The live dashboard fetches it from `GET /v1/dashboard`; `deskpilot
audit report` embeds the same document in a self-contained HTML file (`report.py`); the routes are in
`dashboard_api.py`.

Everything is aggregated in SQL, so the cost grows with the number of buckets, not of runs: percentiles
are nearest-rank, taken with window functions over each bucket's sorted values. Times are grouped on the
stored ISO text (`2026-12-07T17:03:09.123456Z`), whose prefix is the hour or the day, in UTC.

Latency counts the runs that answered (`ok`) and were not repeats from the result cache: a cached answer
takes no model time, and counting it would pull the percentiles down as the cache hit rate rises, hiding a
slower model. Cost counts every run, cached ones included (they cost nothing).

The chain heads are read as stored (the last row of each chained table), which is cheap; checking them is
`POST /v1/audit/verify` (or `deskpilot audit verify`), which re-derives every hash and records the outcome
as an `audit.verify` event, the one the dashboard shows as the last verification.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from deskpilot.server.core.db import iso_utc, rows_as_dicts
from deskpilot.server.core.wire import Out
from deskpilot.server.extraction.review_queue import STRUCTURED_RUN
from deskpilot.server.lineage import LineageStore
from deskpilot.server.ops.retention import Retention, RetentionStatus
from deskpilot.server.ops.slo import SloReport, slo_report

__all__ = [
    "DEFAULT_SPAN",
    "GOVERNANCE_KINDS",
    "Bucket",
    "ChainHead",
    "ChainStatus",
    "CostPoint",
    "Dashboard",
    "DriftCheck",
    "GovernanceEvent",
    "LatencyPoint",
    "QualityPoint",
    "Verification",
    "dashboard_data",
    "parse_rfc3339",
    "parse_since",
    "verify_and_record",
]

Bucket = Literal["hour", "day"]

# How far back the dashboard looks when it is not told.
DEFAULT_SPAN = timedelta(days=30)
DRIFT_KINDS = ("drift.alarm", "drift.cleared", "drift.rebaselined")
GOVERNANCE_KINDS = ("retention.purge", "audit.erase", "hold.set", "hold.released")
# Lists, unlike buckets, grow with what happened: the newest this many are shown.
MAX_LIST = 500
# The chained tables whose heads the chain status shows, as lineage names them; a table a feature has not
# created yet on this file is left out.
CHAINS = ("runs", "reviews", "action_log", "audit_events")

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
# The start of a row's bucket, as ISO text, from its stored ISO time (fixed SQL, chosen by `bucket`).
_BUCKET_SQL = {
    "hour": "substr({0}, 1, 13) || ':00:00Z'",
    "day": "substr({0}, 1, 10) || 'T00:00:00Z'",
}


class LatencyPoint(Out):
    at: str  # the bucket's start, ISO 8601 UTC
    runs: int  # runs that answered without the cache
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    total_p50_ms: float | None
    total_p95_ms: float | None


class CostPoint(Out):
    at: str
    profile: str  # the model profile; "embedded" for runs recorded before profiles existed
    runs: int
    tokens_in: int
    tokens_out: int
    cost: float


class QualityPoint(Out):
    at: str
    structured: int  # structured results that finished (extractions, classifications)
    queued: int  # of them, sent to a person for review
    review_rate: float | None  # queued / structured
    decided: int  # review decisions taken in the bucket
    overridden: int  # of them, rejections and edits that changed a value
    override_rate: float | None  # overridden / decided


class DriftCheck(Out):
    at: str
    task: str
    signal: str
    value: float
    threshold: float
    alarm: bool
    reference_n: int
    current_n: int


class GovernanceEvent(Out):
    """A chained governance event as stored: `details` never holds the personal data it is about."""

    at: str
    kind: str
    actor: str
    details: dict[str, Any]
    hash: str


class ChainHead(Out):
    chain: str  # the chained table: runs, reviews, action_log, audit_events
    rows: int
    head_hash: str | None


class ChainStatus(Out):
    heads: list[ChainHead]
    last_verification: GovernanceEvent | None  # the newest `audit.verify` event


class Dashboard(Out):
    generated_at: str
    since: str
    until: str
    bucket: Bucket
    latency: list[LatencyPoint]
    cost: list[CostPoint]
    quality: list[QualityPoint]
    slo: SloReport
    drift_checks: list[DriftCheck]  # oldest first
    drift_events: list[GovernanceEvent]  # newest first
    chain: ChainStatus
    governance: list[GovernanceEvent]  # retention purges, erasures, legal holds; newest first
    retention: RetentionStatus | None = None  # the policy, the legal hold and the last purge


class Verification(Out):
    """What `POST /v1/audit/verify` found, and the event that records it."""

    ok: bool
    problems: list[str]
    heads: list[ChainHead]
    event: GovernanceEvent


def parse_since(text: str | None, now: datetime) -> datetime:
    """An ISO 8601 date or date-time (UTC unless it has an offset); `DEFAULT_SPAN` before `now` if None."""
    if text is None:
        return now - DEFAULT_SPAN
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"since={text!r} is not an ISO 8601 date or date-time (examples: 2026-01-31, 2026-01-31T09:30Z)"
        ) from None
    return _utc(moment)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 date-time in UTC, as the API documents `since`: a date, a time and an offset (`Z` or
    `+01:00`); ValueError names what is wrong."""
    if _RFC3339.fullmatch(text) is None:
        raise ValueError(f"since={text!r} is not an RFC 3339 date-time (example: 2026-11-01T00:00:00Z)")
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"since={text!r} is not a valid date-time: {exc}") from None
    return _utc(moment)


def _utc(moment: datetime) -> datetime:
    """`moment` in UTC (naive: taken as UTC); one outside what UTC can show (year 1 with an offset) is
    refused by name."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"since={moment.isoformat()} is out of range") from None


def dashboard_data(
    lineage: LineageStore, since: datetime, bucket: Bucket = "day", retention: Retention | None = None
) -> Dashboard:
    """Every view of the dashboard from `since` until now (the store's clock), in buckets of an hour or
    a day, and `retention`'s status where given. Blocks on the database: async callers run it on a worker
    thread."""
    until = lineage.now()
    start = iso_utc(since)
    with lineage.reading() as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        latency = _latency(conn, start, bucket)
        cost = _cost(conn, start, bucket)
        quality = _quality(conn, start, bucket)
        drift = _drift_checks(conn, start) if "drift_checks" in tables else []
        heads = _heads(conn, tables)
    drift_events = lineage.events(kinds=DRIFT_KINDS, since=since, limit=MAX_LIST)
    governance = lineage.events(kinds=GOVERNANCE_KINDS, since=since, limit=MAX_LIST)
    verified = lineage.events(kinds=["audit.verify"], limit=1)
    return Dashboard(
        generated_at=iso_utc(until),
        since=start,
        until=iso_utc(until),
        bucket=bucket,
        latency=latency,
        cost=cost,
        quality=quality,
        slo=slo_report(lineage, max(until - since, timedelta(seconds=1))),
        drift_checks=drift,
        drift_events=[_event(e) for e in drift_events],
        chain=ChainStatus(heads=heads, last_verification=_event(verified[0]) if verified else None),
        governance=[_event(e) for e in governance],
        retention=retention.status() if retention is not None else None,
    )


def verify_and_record(lineage: LineageStore, *, actor: str) -> Verification:
    """Re-derive every chain (`LineageStore.verify`) and chain the outcome as an `audit.verify` event."""
    report = lineage.verify()
    event = lineage.record_verification(report, actor=actor)
    with lineage.reading() as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        heads = _heads(conn, tables)
    return Verification(ok=report.ok, problems=report.problems, heads=heads, event=_event(event))


# -- the queries -------------------------------------------------------------------------------------------


_Percentiles = tuple[int, float | None, float | None]


def _percentiles(
    conn: sqlite3.Connection, column: str, start: str, bucket: Bucket
) -> dict[str, _Percentiles]:
    """`{bucket: (count, p50, p95)}` of one latency column: nearest rank, ceil(p * n), over each bucket."""
    at = _BUCKET_SQL[bucket].format("started_at")
    sql = f"""
        WITH ranked AS (
            SELECT {at} AS at, {column} AS v,
                   ROW_NUMBER() OVER (PARTITION BY {at} ORDER BY {column}) AS i,
                   COUNT(*) OVER (PARTITION BY {at}) AS n
            FROM runs
            WHERE started_at >= ? AND status = 'ok' AND cache_of IS NULL AND {column} IS NOT NULL
        )
        SELECT at, MAX(n),
               MAX(CASE WHEN i = (50 * n + 99) / 100 THEN v END),
               MAX(CASE WHEN i = (95 * n + 99) / 100 THEN v END)
        FROM ranked GROUP BY at
    """
    return {at: (n, p50, p95) for at, n, p50, p95 in conn.execute(sql, [start])}


def _latency(conn: sqlite3.Connection, start: str, bucket: Bucket) -> list[LatencyPoint]:
    ttft = _percentiles(conn, "ttft_ms", start, bucket)
    total = _percentiles(conn, "total_ms", start, bucket)
    points = []
    for at in sorted(ttft.keys() | total.keys()):
        t_count, t50, t95 = ttft.get(at, (0, None, None))
        a_count, a50, a95 = total.get(at, (0, None, None))
        points.append(
            LatencyPoint(
                at=at,
                runs=max(t_count, a_count),
                ttft_p50_ms=t50,
                ttft_p95_ms=t95,
                total_p50_ms=a50,
                total_p95_ms=a95,
            )
        )
    return points


def _cost(conn: sqlite3.Connection, start: str, bucket: Bucket) -> list[CostPoint]:
    at = _BUCKET_SQL[bucket].format("started_at")
    sql = (
        f"SELECT {at} AS at, COALESCE(profile, 'embedded') AS profile, COUNT(*) AS runs,"
        " COALESCE(SUM(tokens_in), 0) AS tokens_in, COALESCE(SUM(tokens_out), 0) AS tokens_out,"
        " COALESCE(SUM(cost), 0.0) AS cost FROM runs WHERE started_at >= ? GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return [CostPoint(**row) for row in rows_as_dicts(conn.execute(sql, [start]))]


def _quality(conn: sqlite3.Connection, start: str, bucket: Bucket) -> list[QualityPoint]:
    """Review rate by when the run started; override rate by when the decision was taken. A structured
    result is one that can go to review (`STRUCTURED_RUN`)."""
    run_at = _BUCKET_SQL[bucket].format("r.started_at")
    queued: dict[str, tuple[int, int]] = {}
    for at, structured, sent in conn.execute(
        f"SELECT {run_at}, COUNT(*), COUNT(q.id) FROM runs r LEFT JOIN review_queue q ON q.run_id = r.id"
        f" WHERE r.started_at >= ? AND r.status = 'ok' AND {STRUCTURED_RUN}"
        " GROUP BY 1",
        [start],
    ):
        queued[at] = (structured, sent)
    decided_at = _BUCKET_SQL[bucket].format("decided_at")
    decided: dict[str, tuple[int, int]] = {}
    for at, count, overridden in conn.execute(
        f"SELECT {decided_at}, COUNT(*),"
        " SUM(decision = 'reject' OR (json_valid(changes) AND json_array_length(changes) > 0))"
        " FROM reviews WHERE decided_at >= ? GROUP BY 1",
        [start],
    ):
        decided[at] = (count, int(overridden or 0))
    points = []
    for at in sorted(queued.keys() | decided.keys()):
        structured, sent = queued.get(at, (0, 0))
        count, overridden = decided.get(at, (0, 0))
        points.append(
            QualityPoint(
                at=at,
                structured=structured,
                queued=sent,
                review_rate=sent / structured if structured else None,
                decided=count,
                overridden=overridden,
                override_rate=overridden / count if count else None,
            )
        )
    return points


def _drift_checks(conn: sqlite3.Connection, start: str) -> list[DriftCheck]:
    """The newest `MAX_LIST` drift checks since `start`, oldest first (the drift monitor's own table)."""
    sql = (
        "SELECT * FROM (SELECT at, task, signal, value, threshold, alarm, reference_n, current_n"
        " FROM drift_checks WHERE at >= ? ORDER BY at DESC LIMIT ?) ORDER BY at"
    )
    return [
        DriftCheck(**(row | {"alarm": bool(row["alarm"])}))
        for row in rows_as_dicts(conn.execute(sql, [start, MAX_LIST]))
    ]


def _heads(conn: sqlite3.Connection, tables: set[str]) -> list[ChainHead]:
    heads = []
    for chain in CHAINS:
        if chain not in tables:
            continue
        (rows,) = conn.execute(f"SELECT COUNT(*) FROM {chain}").fetchone()
        head = conn.execute(f"SELECT hash FROM {chain} ORDER BY seq DESC LIMIT 1").fetchone()
        heads.append(ChainHead(chain=chain, rows=rows, head_hash=head[0] if head else None))
    return heads


def _event(row: dict[str, Any]) -> GovernanceEvent:
    return GovernanceEvent(
        at=row["at"], kind=row["kind"], actor=row["actor"], details=row["details"], hash=row["hash"]
    )
