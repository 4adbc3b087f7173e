"""The outbox's tables in the lineage file, as the `deskpilot.actions` migration set (append-only).

`actions` is the outbox: mutable working state, one row per idempotency key, so the same action proposed
twice is one row. `action_log` is the hash-chained audit record of every change to it. `automations`
holds the runtime policies. The first migration creates what a database from before the feature
packages does not have yet (those databases got these tables from lineage's m005).
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from deskpilot.server.core.db import normalize_iso
from deskpilot.server.lineage import append_only_triggers

__all__ = ["ACTIONS_TABLES"]

ACTIONS_TABLES = Migrations("deskpilot.actions")


@ACTIONS_TABLES()
def m001_actions(db: Database) -> None:
    # Times that the queue compares (`*_ts`) are epoch seconds; the rest are ISO 8601 UTC text.
    # `attempts` counts every start (a worker killed mid-action makes one too); `failures` only the
    # attempts that failed, which is what the retry budget is about.
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS actions (
            id TEXT PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            params TEXT NOT NULL,
            title TEXT NOT NULL,
            origin TEXT NOT NULL,
            run_id TEXT,
            workflow_id TEXT,
            step TEXT,
            automation TEXT NOT NULL,
            confidence REAL,
            status TEXT NOT NULL,
            approval TEXT,
            reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            next_attempt_ts REAL,
            owner TEXT,
            lease_ts REAL,
            effect TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            queued_ts REAL,
            started_ts REAL,
            executed_at TEXT
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS actions_status ON actions (status, next_attempt_ts)")
    db.execute("CREATE INDEX IF NOT EXISTS actions_workflow ON actions (workflow_id)")
    db.execute("CREATE INDEX IF NOT EXISTS actions_automation_day ON actions (automation, executed_at)")
    # The audit record of every proposal, decision, execution, compensation and policy change, chained
    # like `runs` and linked to the run (and workflow) it belongs to.
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS action_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            at TEXT NOT NULL,
            subject TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            run_id TEXT,
            workflow_id TEXT,
            automation TEXT,
            detail TEXT NOT NULL,
            prev_hash TEXT,
            hash TEXT NOT NULL UNIQUE
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS action_log_subject ON action_log (subject_id)")
    db.execute("CREATE INDEX IF NOT EXISTS action_log_run ON action_log (run_id)")
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS action_log_one_successor ON action_log (coalesce(prev_hash, ''))"
    )
    append_only_triggers(db, "action_log")
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS automations (
            name TEXT PRIMARY KEY,
            workflow TEXT,
            enabled INTEGER NOT NULL,
            rule TEXT NOT NULL,
            approval TEXT NOT NULL,
            threshold REAL NOT NULL,
            daily_budget INTEGER,
            settings TEXT NOT NULL,
            enabled_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            updated_by TEXT NOT NULL
        )
        """
    )


@ACTIONS_TABLES()
def m002_one_time_format(db: Database) -> None:
    # Before 0.2 these were written with milliseconds; now every stored time has one format
    # (core/db.py). `action_log` is chained: its rows stay as they were hashed.
    _rewrite_times(db, "actions", "id", ("created_at", "updated_at", "executed_at"))
    _rewrite_times(db, "automations", "name", ("enabled_at", "updated_at"))


def _rewrite_times(db: Database, table: str, key: str, columns: tuple[str, ...]) -> None:
    for row in db.execute(f"SELECT {key}, {', '.join(columns)} FROM {table}").fetchall():
        values = [normalize_iso(v) for v in row[1:]]
        if values != list(row[1:]):
            sets = ", ".join(f"{c} = ?" for c in columns)
            db.execute(f"UPDATE {table} SET {sets} WHERE {key} = ?", [*values, row[0]])


@ACTIONS_TABLES()
def m003_people(db: Database) -> None:
    # A person's changes (approvals, policy changes) carry their email address besides their name. The
    # columns are nullable: older rows have none, and a chained row's hash leaves NULL columns out, so
    # the rows of `action_log` written before keep their hashes.
    if "actor_address" not in {c.name for c in db["action_log"].columns}:
        db.execute("ALTER TABLE action_log ADD COLUMN actor_address TEXT")
    if "updated_by_address" not in {c.name for c in db["automations"].columns}:
        db.execute("ALTER TABLE automations ADD COLUMN updated_by_address TEXT")
