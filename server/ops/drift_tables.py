"""Drift's tables in the lineage file (the `deskpilot.drift` migration set, append-only), and the reads of the
windows it compares.

None of them is chained: they are measurements, not the audit record. What is audited, an alarm raised or
cleared, goes to lineage's chained `audit_events` (`LineageStore.append_event`) in the same transaction.

- `drift_samples`: one input embedding per row (float32 blob), its task, time and embedder; never the text.
  Only the rows the windows can use are kept: a task's first `reference` samples and its last `window`.
- `drift_checks`: every check's value per signal, a time series a dashboard reads with plain SQL.
- `drift_state`: the latest value per task and signal, whether it is in alarm, and since when; a change of
  `alarm` here is what makes a lineage event, once per crossing, also across restarts.
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

import msgspec
import numpy as np
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = [
    "DRIFT_TABLES",
    "OutputRow",
    "OutputWindows",
    "SampleWindows",
    "add_samples",
    "output_windows",
    "sample_windows",
]

DRIFT_TABLES = Migrations("deskpilot.drift")


@DRIFT_TABLES()
def m001_drift(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS drift_samples (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task TEXT NOT NULL,
            at TEXT NOT NULL,
            embedder TEXT NOT NULL,
            vector BLOB NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS drift_samples_task ON drift_samples (task, embedder, id)")
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS drift_checks (
            at TEXT NOT NULL,
            task TEXT NOT NULL,
            signal TEXT NOT NULL,
            value REAL NOT NULL,
            threshold REAL NOT NULL,
            alarm INTEGER NOT NULL,
            reference_n INTEGER NOT NULL,
            current_n INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS drift_checks_at ON drift_checks (at)")
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS drift_state (
            task TEXT NOT NULL,
            signal TEXT NOT NULL,
            value REAL NOT NULL,
            threshold REAL NOT NULL,
            alarm INTEGER NOT NULL,
            since TEXT,
            at TEXT NOT NULL,
            reference_n INTEGER NOT NULL,
            current_n INTEGER NOT NULL,
            PRIMARY KEY (task, signal)
        )
        """
    )


def add_samples(
    conn: sqlite3.Connection, rows: list[tuple[str, str, str, bytes]], *, reference: int, window: int
) -> None:
    """Insert (task, at, embedder, vector) rows inside a write transaction, then drop each task's samples
    that neither window will read again: those after its first `reference` and before its last `window`."""
    conn.executemany("INSERT INTO drift_samples (task, at, embedder, vector) VALUES (?, ?, ?, ?)", rows)
    for task, embedder in {(task, embedder) for task, _, embedder, _ in rows}:
        # Both bounds are NULL (nothing deleted) until the task has more than reference + window samples.
        conn.execute(
            "DELETE FROM drift_samples WHERE task = ?1 AND embedder = ?2"
            " AND id > (SELECT id FROM drift_samples WHERE task = ?1 AND embedder = ?2"
            "           ORDER BY id LIMIT 1 OFFSET ?3)"
            " AND id <= (SELECT id FROM drift_samples WHERE task = ?1 AND embedder = ?2"
            "            ORDER BY id DESC LIMIT 1 OFFSET ?4)",
            [task, embedder, reference - 1, window],
        )


class SampleWindows(NamedTuple):
    """A task's reference and current input embeddings (rows), and when each window begins and ends."""

    reference: np.ndarray
    current: np.ndarray
    span: dict[str, Any]
    last_id: int


def sample_windows(
    conn: sqlite3.Connection, task: str, *, reference: int, window: int
) -> SampleWindows | None:
    """The first `reference` samples of the task and the last `window` after them, from its newest
    embedder (vectors of two models do not compare); None until both windows are full."""
    found = conn.execute(
        "SELECT embedder, MAX(id) FROM drift_samples WHERE task = ? GROUP BY embedder ORDER BY MAX(id) DESC",
        [task],
    ).fetchone()
    if found is None:
        return None
    embedder, last_id = found
    ref = conn.execute(
        "SELECT id, at, vector FROM drift_samples WHERE task = ? AND embedder = ? ORDER BY id LIMIT ?",
        [task, embedder, reference],
    ).fetchall()
    if len(ref) < reference:
        return None
    cur = conn.execute(
        "SELECT id, at, vector FROM drift_samples WHERE task = ? AND embedder = ? AND id > ?"
        " ORDER BY id DESC LIMIT ?",
        [task, embedder, ref[-1][0], window],
    ).fetchall()[::-1]
    if len(cur) < window:
        return None
    return SampleWindows(
        reference=_matrix(ref),
        current=_matrix(cur),
        span=_span(ref[0][1], ref[-1][1], cur[0][1], cur[-1][1]),
        last_id=int(last_id),
    )


def _matrix(rows: list[Any]) -> np.ndarray:
    return np.stack([np.frombuffer(row[2], dtype=np.float32) for row in rows])


def _span(ref_from: str, ref_to: str, cur_from: str, cur_to: str) -> dict[str, Any]:
    return {"reference": {"from": ref_from, "to": ref_to}, "current": {"from": cur_from, "to": cur_to}}


class OutputRow(NamedTuple):
    """What drift reads of a finished run: its confidence, its structured data, and whether it went to
    review."""

    confidence: float | None
    data: Any
    reviewed: bool


class OutputWindows(NamedTuple):
    """A task's reference and current runs, when each window begins and ends, and the newest run's seq."""

    reference: list[OutputRow]
    current: list[OutputRow]
    span: dict[str, Any]
    last_seq: int


def output_windows(
    conn: sqlite3.Connection, task: str, *, reference: int, window: int
) -> OutputWindows | None:
    """The task's first `reference` runs that finished ok and the last `window` after them (lineage
    order); None until both windows are full."""
    has_reviews = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'review_queue'").fetchone()
    reviewed = (
        "EXISTS (SELECT 1 FROM review_queue q WHERE q.run_id = r.id)" if has_reviews is not None else "0"
    )
    select = (
        f"SELECT r.seq, r.started_at, r.confidence, json_extract(r.output, '$.data'), {reviewed}"
        " FROM runs r WHERE r.task = ? AND r.status = 'ok'"
    )
    ref = conn.execute(f"{select} ORDER BY r.seq LIMIT ?", [task, reference]).fetchall()
    if len(ref) < reference:
        return None
    cur = conn.execute(
        f"{select} AND r.seq > ? ORDER BY r.seq DESC LIMIT ?", [task, ref[-1][0], window]
    ).fetchall()[::-1]
    if len(cur) < window:
        return None
    return OutputWindows(
        reference=[_output(row) for row in ref],
        current=[_output(row) for row in cur],
        span=_span(ref[0][1], ref[-1][1], cur[0][1], cur[-1][1]),
        last_seq=int(cur[-1][0]),
    )


def _output(row: tuple[Any, ...]) -> OutputRow:
    _, _, confidence, data, reviewed = row
    # json_extract gives an object or array back as JSON text, a string or number as itself.
    decoded = msgspec.json.decode(data) if isinstance(data, str) and data.startswith(("{", "[")) else data
    return OutputRow(confidence=confidence, data=decoded, reviewed=bool(reviewed))
