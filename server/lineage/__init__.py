"""Lineage: the append-only, hash-chained audit record of every AI run.

Every output Deskpilot produces has to answer, later and to someone who was not there: which model
(weights digest), which prompt template (content hash), which parameters, which input (digest, and the
raw text where retention allows), which retrieved chunks, what came out, how long it took, and whether
it succeeded. This package keeps that record in the app's SQLite file, in tables that any SQLite tool
opens; JSON-valued columns hold JSON text (`SELECT output ->> '$' FROM runs` gives the text back).

Two tables, two jobs
    `open_runs` is a journal. `open_run()` writes one row there and commits before the model starts, so
    an accepted request is on disk even if the process dies mid-generation. `close_run()` then appends
    the full record to `runs` and deletes the journal row in the same transaction: a run is always in
    exactly one of the two tables. At start-up `recover_interrupted()` closes whatever a crash left in
    the journal as status "interrupted". Chained rows are never updated, which is why the journal exists:
    the one row per run in `runs` is written once, complete. Triggers refuse UPDATE and DELETE on `runs`.

Why a hash chain
    Each `runs` row carries `hash = sha256(version prefix, prev_hash, canonical JSON of the row)` with
    `prev_hash` the hash of the row before it (the exact formula is in `_chain.py`, so an auditor can
    re-check a copy of the file without this code). Changing any stored value of any row, or removing
    one, no longer adds up. `seq` is AUTOINCREMENT, so numbers are never reused and SQLite's own
    `sqlite_sequence` remembers the highest one ever issued.

What `verify()` detects
    It re-derives every hash in seq order from one consistent snapshot and reports, naming the seq and
    run id: a row whose content no longer matches its hash (edited); a seq gap or a prev_hash that does
    not match the row before (deleted or re-linked in the middle); a chain that does not start at seq 1
    with no prev_hash (broken genesis); and fewer rows than `sqlite_sequence` says were written (the
    newest rows deleted). It also returns the head hash.

Limits, plainly
    The chain proves consistency, not authenticity: someone who can write the file and run this code can
    rewrite every row from the tampered one onward, recompute the hashes and fix `sqlite_sequence`, and
    `verify()` will pass. What catches that is the head hash kept somewhere else: record what
    `deskpilot audit verify` prints (in a ticket, a SIEM, a signed email) and pass it back later as an
    anchor (`verify(anchors=...)`, `--anchor`). A chain that still contains the anchor and verifies is
    the recorded one up to that point; a rewritten one no longer contains it. Runs still in `open_runs`
    are not chained yet and can be altered unnoticed until they close. Rows written since m011 cover
    input and output by their digest (v2), so a retention purge or an erasure (server/ops/retention.py)
    can replace the text with a tombstone and the row still verifies; readers get None (`Run.purged`
    names the columns, `decode_content` reads a purged review column as its default).
    `recover_interrupted()` stamps the recovery time as `finished_at`, not the moment of the crash.

Concurrency
    One store per process, safe to call from any thread: writes and point reads share one connection
    behind a lock, and each write is a single `BEGIN IMMEDIATE` transaction, so appends serialize (also
    against other processes on the same file) and the chain cannot fork; a unique index on `prev_hash`
    makes a fork impossible even for a writer that ignores all this. Scans (`iter_runs`, `export`,
    `verify`) read a WAL snapshot on their own connection and never block writers.

Reviews
    People review low-confidence structured results: `ReviewQueue` (`reviews.py`) keeps the work list in
    `review_queue` and appends each decision, with the reviewer and a field-level diff, to the chained
    `reviews` table, which `verify()` checks like `runs`.

Migrations
    Append-only named functions on one sqlite-utils `Migrations("deskpilot.lineage")` set, applied when
    the store opens (`_migrations.py`). New tables, including further chained ones, are new functions
    at the end.
"""

from deskpilot.server.lineage._chain import decode_content, is_tombstone
from deskpilot.server.lineage._migrations import append_only_triggers
from deskpilot.server.lineage._types import (
    FINAL_STATUSES,
    DuplicateRunError,
    LineageError,
    Run,
    RunEnd,
    RunStart,
    UnknownRunError,
    VerifyReport,
)
from deskpilot.server.lineage.store import LineageStore

__all__ = [
    "FINAL_STATUSES",
    "DuplicateRunError",
    "LineageError",
    "LineageStore",
    "Run",
    "RunEnd",
    "RunStart",
    "UnknownRunError",
    "VerifyReport",
    "append_only_triggers",
    "decode_content",
    "is_tombstone",
]
