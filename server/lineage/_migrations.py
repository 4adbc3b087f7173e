"""The lineage schema, as append-only named migrations on one sqlite-utils `Migrations` set.

To change the schema, append a new function at the bottom; never edit or reorder one that has shipped,
because databases in the field have recorded it as applied. `LineageStore` applies them all inside one
write transaction (so two processes opening a fresh file cannot race), which means a migration here must
be transactional: no VACUUM, no journal_mode changes.

A new chained table (reviews, actions) needs the three chain columns exactly as `runs` has them
(`seq INTEGER PRIMARY KEY AUTOINCREMENT`, `prev_hash TEXT`, `hash TEXT NOT NULL UNIQUE`) and
`append_only_triggers()`; `_chain.append_chained()` and `_chain.verify_chain()` then work on it as-is.
Adding a nullable column to a chained table is safe: NULL columns are left out of the hash. For runs and
reviews, whose UPDATE guard lets only a retention purge through (m011), call `purge_only_update_trigger()`
again in that migration so the guard covers the new column too.

Tables that belong to a feature are that feature's own migration set, applied by the feature's store on
the same file through `LineageStore.migrate()`: `deskpilot.actions` (server/actions/_tables.py) and
`deskpilot.workflows` (server/workflows/_tables.py). Their tables were this set's m005 until the
feature packages existed; a database that applied m005 keeps it recorded here, and the feature sets
create a table only where it is missing.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["append_only_triggers", "migrations", "purge_only_update_trigger"]

migrations = Migrations("deskpilot.lineage")


def append_only_triggers(db: Database, table: str) -> None:
    # Not a defence against someone with the file (they can drop the triggers: that is what the hash
    # chain is for), but it stops an UPDATE typed into a SQLite browser or a buggy migration.
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS {table}_append_only_{event.lower()} BEFORE {event} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are hash-chained audit records'); END"
        )


def purge_only_update_trigger(db: Database, table: str, content: tuple[str, ...]) -> None:
    """Replace `table`'s no-UPDATE trigger with one that allows exactly a retention purge: a content column
    set to its tombstone ("purged sha256:..."), nothing else changed. A later migration that adds a column
    to such a table calls this again, so the new column is covered too."""
    others = [c.name for c in db[table].columns if c.name not in content]
    changed = [f"NEW.{c} IS NOT OLD.{c}" for c in others]
    changed += [
        f"(NEW.{c} IS NOT OLD.{c} AND substr(NEW.{c}, 1, 14) IS NOT 'purged sha256:')" for c in content
    ]
    db.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_update")
    db.execute(
        f"CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table} WHEN {' OR '.join(changed)} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are hash-chained audit records; only a "
        "retention purge may replace content with its digest'); END"
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
    append_only_triggers(db, "runs")


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


@migrations()
def m003_reviews(db: Database) -> None:
    # Human review decisions: chained and append-only like runs, linked to the run they judge. `changes`
    # is the field-level diff ([{path, before, after}]) and `final` the document after review (JSON text).
    # task/template_id/model_id are copied from the run so that a decision reads on its own in an audit.
    db.execute(
        """
        CREATE TABLE reviews (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            review_id TEXT NOT NULL UNIQUE,
            run_id TEXT NOT NULL,
            decided_at TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            decision TEXT NOT NULL,
            changes TEXT NOT NULL,
            final TEXT,
            note TEXT,
            task TEXT NOT NULL,
            template_id TEXT NOT NULL,
            model_id TEXT NOT NULL,
            prev_hash TEXT,
            hash TEXT NOT NULL UNIQUE
        )
        """
    )
    db.execute("CREATE INDEX reviews_run_id ON reviews (run_id)")
    db.execute("CREATE UNIQUE INDEX reviews_one_successor ON reviews (coalesce(prev_hash, ''))")
    append_only_triggers(db, "reviews")


@migrations()
def m004_review_queue(db: Database) -> None:
    # The work list of results waiting for a person: mutable state, not audit (the decision is in
    # `reviews`). One item per run at most.
    db.execute(
        """
        CREATE TABLE review_queue (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            status TEXT NOT NULL,
            task TEXT NOT NULL,
            template_id TEXT NOT NULL,
            model_id TEXT NOT NULL,
            reasons TEXT NOT NULL,
            confidence REAL,
            proposed TEXT NOT NULL,
            fields TEXT NOT NULL,
            spec TEXT NOT NULL,
            decided_at TEXT
        )
        """
    )
    db.execute("CREATE INDEX review_queue_status ON review_queue (status, created_at)")


# m005 was the actions and workflows tables, which moved to their own sets (see the module docstring):
# databases that applied it keep that name recorded, so the next migration here is m006.


@migrations()
def m006_reviewer_address(db: Database) -> None:
    # A review decision names the person by their email address besides their name (the Office user, as
    # the task pane knows them). Nullable: decisions recorded before have none, and a chained row's hash
    # leaves NULL columns out, so their hashes still verify.
    if "reviewer_address" not in {c.name for c in db["reviews"].columns}:
        db.execute("ALTER TABLE reviews ADD COLUMN reviewer_address TEXT")


@migrations()
def m007_model_profiles(db: Database) -> None:
    # Which model profile answered a run and why (routing, fallbacks), what personal data was masked before
    # text left the machine (categories and counts, never values), what a remote server said it ran, and
    # the run a cached answer repeats. Nullable, so every existing row's hash still verifies.
    have = {c.name for c in db["runs"].columns}
    for column in ("profile", "routing", "pii", "served_model", "system_fingerprint", "cache_of"):
        if column not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS runs_profile_started ON runs (profile, started_at)")


@migrations()
def m008_trace_id(db: Database) -> None:
    # The OpenTelemetry trace a run belongs to (server/core/telemetry.py), so a record leads to its trace
    # and a trace to its records. Nullable (tracing is off by default): existing rows' hashes still verify.
    if "trace_id" not in {c.name for c in db["runs"].columns}:
        db.execute("ALTER TABLE runs ADD COLUMN trace_id TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS runs_trace_id ON runs (trace_id)")


@migrations()
def m009_review_source_text(db: Database) -> None:
    # The text a queued review's run read, so the pane can show it beside the fields while a person
    # decides, whether or not the run kept its input (`retain_inputs`). Working state, not audit: the
    # decision sets it back to NULL, so it is kept only while a person needs it.
    if "source_text" not in {c.name for c in db["review_queue"].columns}:
        db.execute("ALTER TABLE review_queue ADD COLUMN source_text TEXT")


@migrations()
def m010_audit_events(db: Database) -> None:
    # Governance events, chained and append-only like runs (named audit_events: the workflow engine's
    # trigger table on this file is `events`): a drift alarm and its clearing, a retention
    # purge or a subject's erasure (what went, by content hash), a legal hold set or released, a chain
    # verification and its result. `details` is JSON text; it never holds the personal data an event is
    # about (an erasure names the subject by a salted hash, not the address).
    db.execute(
        """
        CREATE TABLE audit_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT,
            hash TEXT NOT NULL UNIQUE
        )
        """
    )
    db.execute("CREATE INDEX audit_events_kind_at ON audit_events (kind, at)")
    db.execute("CREATE UNIQUE INDEX audit_events_one_successor ON audit_events (coalesce(prev_hash, ''))")
    append_only_triggers(db, "audit_events")


@migrations()
def m011_content_hashes(db: Database) -> None:
    # From here on runs and reviews are hashed over the digests of their content columns (hash_v = 2,
    # _chain.CONTENT_COLUMNS), so retention can purge the text and the chain still verifies. Older rows
    # keep hash_v NULL (v1, hashed over the text); a purge of one records its hash in the chained purge
    # entry. The UPDATE guard now lets exactly that purge through.
    for table, content in (
        ("runs", ("input", "output")),
        ("reviews", ("changes", "final", "note")),
    ):
        if "hash_v" not in {c.name for c in db[table].columns}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN hash_v INTEGER")
        purge_only_update_trigger(db, table, content)
