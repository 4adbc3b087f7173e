"""The lineage schema, as append-only named migrations on one sqlite-utils `Migrations` set.

To change the schema, append a new function at the bottom; never edit or reorder one that has shipped,
because databases in the field have recorded it as applied. `LineageStore` applies them all inside one
write transaction (so two processes opening a fresh file cannot race), which means a migration here must
be transactional: no VACUUM, no journal_mode changes.

A new chained table (reviews, actions) needs the three chain columns exactly as `runs` has them
(`seq INTEGER PRIMARY KEY AUTOINCREMENT`, `prev_hash TEXT`, `hash TEXT NOT NULL UNIQUE`) and
`_append_only_triggers()`; `_chain.append_chained()` and `_chain.verify_chain()` then work on it as-is.
Adding a nullable column to a chained table is safe: NULL columns are left out of the hash.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["migrations"]

migrations = Migrations("deskpilot.lineage")


def _append_only_triggers(db: Database, table: str) -> None:
    # Not a defence against someone with the file (they can drop the triggers: that is what the hash
    # chain is for), but it stops an UPDATE typed into a SQLite browser or a buggy migration.
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER {table}_append_only_{event.lower()} BEFORE {event} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are hash-chained audit records'); END"
        )


@migrations()
def m001_runs(db: Database) -> None:
    # JSON-valued columns hold JSON text (read them with `->>` / json_extract in any SQLite tool).
    db.execute(
        """
        CREATE TABLE runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            task TEXT NOT NULL,
            template_id TEXT NOT NULL,
            template_hash TEXT NOT NULL,
            model_id TEXT NOT NULL,
            weights_digest TEXT NOT NULL,
            backend TEXT NOT NULL,
            parameters TEXT NOT NULL,
            input_digest TEXT NOT NULL,
            input TEXT,
            client TEXT NOT NULL,
            source_ref TEXT,
            parent_id TEXT,
            retrieved_chunks TEXT NOT NULL,
            status TEXT NOT NULL,
            output TEXT,
            validation TEXT,
            confidence REAL,
            error TEXT,
            ttft_ms REAL,
            total_ms REAL,
            tokens_in INTEGER,
            tokens_out INTEGER,
            cost REAL,
            prev_hash TEXT,
            hash TEXT NOT NULL UNIQUE
        )
        """
    )
    db.execute("CREATE INDEX runs_started_at ON runs (started_at)")
    db.execute("CREATE INDEX runs_parent_id ON runs (parent_id)")
    # At most one successor per row, and one genesis: a fork is refused by the schema, not only by locking.
    db.execute("CREATE UNIQUE INDEX runs_one_successor ON runs (coalesce(prev_hash, ''))")
    _append_only_triggers(db, "runs")


@migrations()
def m002_open_runs(db: Database) -> None:
    # The journal of runs in progress: written at open, deleted in the transaction that appends the
    # chained row. Not chained itself; whatever is left here after a crash is closed as "interrupted".
    db.execute(
        """
        CREATE TABLE open_runs (
            id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            start TEXT NOT NULL
        )
        """
    )
