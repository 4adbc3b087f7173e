"""The workflow engine's tables in the lineage file, as the `deskpilot.workflows` migration set.

`workflows` is each workflow's durable state; `events` the append-only, replayable trigger log. The first
migration creates what a database from before the feature packages does not have yet (those databases
got these tables from lineage's m005).
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from deskpilot.server.core.db import normalize_iso
from deskpilot.server.lineage import append_only_triggers

__all__ = ["WORKFLOWS_TABLES"]

WORKFLOWS_TABLES = Migrations("deskpilot.workflows")


@WORKFLOWS_TABLES()
def m001_workflows_and_events(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS workflows (
            id TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            automation TEXT NOT NULL,
            origin TEXT NOT NULL UNIQUE,
            event_seq INTEGER,
            status TEXT NOT NULL,
            step INTEGER NOT NULL DEFAULT 0,
            context TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ts REAL,
            wait TEXT,
            owner TEXT,
            lease_ts REAL,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS workflows_status ON workflows (status, next_attempt_ts)")
    # Triggers, normalised: append-only, replayable. `dedupe` makes a re-delivered trigger (a sync page
    # applied twice after a crash) one event.
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            source TEXT NOT NULL,
            type TEXT NOT NULL,
            dedupe TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL
        )
        """
    )
    append_only_triggers(db, "events")


@WORKFLOWS_TABLES()
def m002_one_time_format(db: Database) -> None:
    # Before 0.2 these were written with milliseconds; now every stored time has one format
    # (core/db.py). `events` is append-only: its rows stay as they were written.
    for row in db.execute("SELECT id, created_at, updated_at FROM workflows").fetchall():
        db.execute(
            "UPDATE workflows SET created_at = ?, updated_at = ? WHERE id = ?",
            [normalize_iso(row[1]), normalize_iso(row[2]), row[0]],
        )
