"""Drift's tables in the lineage file (the `deskpilot.drift` migration set, append-only), and the reads of the
windows it compares.

None of them is chained: they are measurements, not the audit record. What is audited, an alarm raised or
cleared, goes to lineage's chained `audit_events` (`LineageStore.append_event`) in the same transaction.

- `drift_samples`: one input embedding per row (float32 blob), its task, time and embedder; never the text.
  Only the rows the windows can use are kept: a task's first `reference` samples and its last `window`.
- `drift_checks`: every check's value per signal, a time series a dashboard reads with plain SQL.
- `drift_state`: the latest value per task and signal, whether it is in alarm, and since when; a change of
  `alarm` here is what makes a lineage event, once per crossing, also across restarts.
- `drift_baselines`: where a task's reference restarts after an admin accepted its current state as the new
  normal (`rebaseline`): the time (inputs observed before it are not kept) and lineage's last run seq then
  (runs up to it are no longer read). A task without a row is compared from its first input and run.
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
    "Waiting",
    "add_samples",
    "baseline_of",
    "known_tasks",
    "output_windows",
    "restart_reference",
    "sample_windows",
    "waiting",
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


@DRIFT_TABLES()
def m002_drift_baselines(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS drift_baselines (
            task TEXT PRIMARY KEY,
            since_at TEXT NOT NULL,
            since_seq INTEGER NOT NULL,
            actor TEXT NOT NULL
        )
        """
    )


def known_tasks(conn: sqlite3.Connection) -> list[str]:
    """Every task drift knows: with input samples, runs that finished ok, or a reference restarted."""
    rows = conn.execute(
        "SELECT task FROM drift_samples UNION SELECT task FROM runs WHERE status = 'ok'"
        " UNION SELECT task FROM drift_baselines"
    ).fetchall()
    return sorted(row[0] for row in rows)


def baseline_of(conn: sqlite3.Connection, task: str) -> tuple[str, int] | None:
    """(since_at, since_seq) of the task's restarted reference; None while it is its first one."""
    row = conn.execute("SELECT since_at, since_seq FROM drift_baselines WHERE task = ?", [task]).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def restart_reference(conn: sqlite3.Connection, task: str, *, at: str, actor: str) -> tuple[list[str], int]:
    """Inside a write transaction: restart the task's reference from `at` and lineage's newest run, delete
    its input samples and its alarm state. Returns the signals that were in alarm and the samples deleted."""
    in_alarm = [
        str(row[0])
        for row in conn.execute(
            "SELECT signal FROM drift_state WHERE task = ? AND alarm ORDER BY signal", [task]
        ).fetchall()
    ]
    (since_seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM runs").fetchone()
    conn.execute(
        "INSERT OR REPLACE INTO drift_baselines (task, since_at, since_seq, actor) VALUES (?, ?, ?, ?)",
        [task, at, since_seq, actor],
    )
    deleted = conn.execute("DELETE FROM drift_samples WHERE task = ?", [task]).rowcount
    conn.execute("DELETE FROM drift_state WHERE task = ?", [task])
    return in_alarm, deleted


class Waiting(NamedTuple):
    """A task whose restarted reference has no signals yet: since when, by whom, and how many inputs and
    finished runs it has gathered since (both windows fill from these)."""

    task: str
    since: str
    actor: str
    inputs: int
    runs: int


def waiting(conn: sqlite3.Connection) -> list[Waiting]:
    """The tasks with a restarted reference and no signal measured since."""
    rows = conn.execute(
        "SELECT b.task, b.since_at, b.actor,"
        " (SELECT COUNT(*) FROM drift_samples s WHERE s.task = b.task),"
        " (SELECT COUNT(*) FROM runs r WHERE r.task = b.task AND r.status = 'ok' AND r.seq > b.since_seq)"
        " FROM drift_baselines b"
        " WHERE NOT EXISTS (SELECT 1 FROM drift_state d WHERE d.task = b.task) ORDER BY b.task"
    ).fetchall()
    return [Waiting(*row) for row in rows]


def add_samples(
    conn: sqlite3.Connection, rows: list[tuple[str, str, str, bytes]], *, reference: int, window: int
) -> None:
    """Insert (task, at, embedder, vector) rows inside a write transaction, then drop each task's samples
    that neither window will read again: those after its first `reference` and before its last `window`.
    An input observed before its task's reference was restarted (still queued then) is not inserted."""
    conn.executemany(
        "INSERT INTO drift_samples (task, at, embedder, vector) SELECT ?1, ?2, ?3, ?4"
        " WHERE NOT EXISTS (SELECT 1 FROM drift_baselines WHERE task = ?1 AND since_at > ?2)",
        rows,
    )
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
    """The task's first `reference` runs that finished ok (after its restarted reference's run seq, if
    any) and the last `window` after them (lineage order); None until both windows are full."""
    has_reviews = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'review_queue'").fetchone()
    reviewed = (
        "EXISTS (SELECT 1 FROM review_queue q WHERE q.run_id = r.id)" if has_reviews is not None else "0"
    )
    select = (
        f"SELECT r.seq, r.started_at, r.confidence, json_extract(r.output, '$.data'), {reviewed}"
        " FROM runs r WHERE r.task = ?1 AND r.status = 'ok'"
        " AND r.seq > COALESCE((SELECT since_seq FROM drift_baselines WHERE task = ?1), 0)"
    )
    ref = conn.execute(f"{select} ORDER BY r.seq LIMIT ?2", [task, reference]).fetchall()
    if len(ref) < reference:
        return None
    cur = conn.execute(
        f"{select} AND r.seq > ?2 ORDER BY r.seq DESC LIMIT ?3", [task, ref[-1][0], window]
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
