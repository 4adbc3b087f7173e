"""`LineageStore`: open and close runs, read them back, verify the chain, export it.

The design is described in the package docstring (`deskpilot.server.lineage`).
"""

from __future__ import annotations

import csv
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, TextIO, TypeVar

import msgspec
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from deskpilot.server.core.db import create_private, iso_utc, rows_as_dicts, utc_now
from deskpilot.server.lineage._chain import (
    CONTENT_COLUMNS,
    append_chained,
    is_tombstone,
    rest_digest,
    tombstone,
    verify_chain,
)
from deskpilot.server.lineage._migrations import migrations
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

__all__ = ["LineageStore"]

# Columns whose values are JSON documents; stored as JSON text, decoded on the way out.
_JSON_COLUMNS = frozenset(
    {"parameters", "input", "retrieved_chunks", "output", "validation", "routing", "pii"}
)
_RUN_FIELD_NAMES = [field.name for field in msgspec.structs.fields(Run)]
_SELECT_JOURNAL = "SELECT id, started_at, start FROM open_runs"
_INTERRUPTED = RunEnd(
    status="interrupted",
    error="the process ended before this run was closed; recorded at the next start-up",
)
_StructT = TypeVar("_StructT", RunStart, RunEnd)


class LineageStore:
    """The audit store for AI runs, in one SQLite file (WAL). Safe to share between threads.

    Every method blocks on disk I/O (a write commits with an fsync), so async code calls it through a
    worker thread (`anyio.to_thread.run_sync`) rather than on the event loop.

    `clock` returns the current time; tests pass a fake one. `busy_timeout` is how long a write waits for
    another process holding the file's write lock (the task queue shares the database).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._busy_timeout = busy_timeout
        # One connection for every write and point read, shared by all threads behind one lock: appends
        # must serialize anyway (each needs the head the previous one wrote), and a single connection
        # is the cheapest way to get that within a process. Scans use their own connection (_snapshot).
        self._lock = threading.RLock()
        create_private(self.path)
        conn = sqlite3.connect(self.path, timeout=busy_timeout, check_same_thread=False)
        # execute_plugins=False: sqlite-utils plugins have no business on the audit connection.
        self._db: Database | None = Database(conn, execute_plugins=False)
        try:
            self._db.enable_wal()
            # FULL: a run that open_run() returned must survive a power cut, not only a crash.
            self._db.execute("PRAGMA synchronous=FULL")
            # A retention purge or an erasure must not leave the removed text in free pages of the file.
            self._db.execute("PRAGMA secure_delete=ON")
            with self._write():
                migrations.apply(self._db)
        except BaseException:
            self.close()
            raise

    # -- writing -----------------------------------------------------------------------------------

    def open_run(self, start: RunStart, run_id: str | None = None) -> str:
        """Record that a run began and return its id. Durable when this returns."""
        start = _validated(start, RunStart)
        run_id = run_id or uuid.uuid4().hex
        started_at = iso_utc(self._clock())
        with self._write() as conn:
            taken = conn.execute(
                "SELECT 1 FROM runs WHERE id = ? UNION ALL SELECT 1 FROM open_runs WHERE id = ?",
                [run_id, run_id],
            ).fetchone()
            if taken:
                raise DuplicateRunError(f"a run with id {run_id!r} already exists")
            conn.execute(
                "INSERT INTO open_runs (id, started_at, start) VALUES (?, ?, ?)",
                [run_id, started_at, msgspec.json.encode(start).decode()],
            )
        return run_id

    def close_run(self, run_id: str, end: RunEnd) -> Run:
        """Append the finished run to the chain, in the same transaction that removes it from the journal."""
        end = _validated(end, RunEnd)
        if end.status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {sorted(FINAL_STATUSES)}, not {end.status!r}")
        with self._write() as conn:
            journal = conn.execute(_SELECT_JOURNAL + " WHERE id = ?", [run_id]).fetchone()
            if journal is None:
                closed = conn.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone()
                raise UnknownRunError(f"run {run_id!r} is {'already closed' if closed else 'not known'}")
            stored = self._append_run(conn, journal, end)
        return _run_from_row(stored)

    def recover_interrupted(self) -> int:
        """Close every run left open by a previous process as "interrupted"; return how many.

        Call it once at server start-up, before any run is opened: it cannot tell a run left over from a
        crash from one that another live process has open on the same file.
        """
        with self._write() as conn:
            leftovers = conn.execute(_SELECT_JOURNAL + " ORDER BY started_at, id").fetchall()
            for journal in leftovers:
                self._append_run(conn, journal, _INTERRUPTED)
        return len(leftovers)

    def _append_run(
        self, conn: sqlite3.Connection, journal: tuple[str, str, str], end: RunEnd
    ) -> dict[str, Any]:
        run_id, started_at, start_json = journal
        start = msgspec.json.decode(start_json, type=RunStart)
        row: dict[str, Any] = {"id": run_id, "started_at": started_at, "finished_at": iso_utc(self._clock())}
        row |= msgspec.structs.asdict(start) | msgspec.structs.asdict(end)
        stored = self._append_chained(conn, "runs", _encode_json_columns(row))
        conn.execute("DELETE FROM open_runs WHERE id = ?", [run_id])
        return stored

    def _append_chained(self, conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> dict[str, Any]:
        # The one way rows enter a chained table; later chained tables (reviews, actions) use it too.
        return append_chained(conn, table, row)

    # -- reading -----------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run | None:
        """The run with this id, closed or still running (status "running"), or None."""
        with self._lock:
            return self._find(self._connection(), run_id)

    def iter_runs(self, since: datetime | None = None) -> Iterator[Run]:
        """Closed runs in chain order, optionally only those started at or after `since`.

        Reads one consistent snapshot on its own connection, so it never blocks writers and a long
        export sees none of the runs appended while it runs. Runs still open are not yielded: they are
        not part of the audit record until they close.
        """
        sql, params = "SELECT * FROM runs", []
        if since is not None:
            sql += " WHERE started_at >= ?"
            params.append(iso_utc(since))
        with self._snapshot() as conn:
            for row in rows_as_dicts(conn.execute(sql + " ORDER BY seq", params)):
                yield _run_from_row(row)

    def usage(self, since: datetime) -> list[dict[str, Any]]:
        """Tokens and cost of the runs started at or after `since`, summed per model profile and task:
        `{"profile", "task", "runs", "tokens_in", "tokens_out", "cost"}`. Runs that answered from the
        result cache cost nothing and count as runs; runs before profiles existed count as "embedded"."""
        sql = (
            "SELECT COALESCE(profile, 'embedded') AS profile, task, COUNT(*) AS runs,"
            " COALESCE(SUM(tokens_in), 0) AS tokens_in, COALESCE(SUM(tokens_out), 0) AS tokens_out,"
            " COALESCE(SUM(cost), 0.0) AS cost FROM runs WHERE started_at >= ?"
            " GROUP BY COALESCE(profile, 'embedded'), task ORDER BY 1, 2"
        )
        with self._snapshot() as conn:
            return list(rows_as_dicts(conn.execute(sql, [iso_utc(since)])))

    def verify(self, *, anchors: Iterable[str] = ()) -> VerifyReport:
        """Re-derive every hash in seq order and report edits, deletions and broken links.

        `anchors` are head hashes recorded outside this file earlier (what `deskpilot audit verify`
        printed). Each must still be in the chain; one that is not means the chain was rewritten from
        before that point with recomputed hashes, which the chain cannot reveal on its own.
        """
        with self._snapshot() as conn:
            # Feature packages add their chained tables with their own migrations (`migrate`); a file
            # no feature has opened yet does not have them, and has nothing in them to verify.
            present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            events, events_head, problems = verify_chain(conn, "audit_events", id_column="kind", noun="event")
            purged = _purged_rows(conn)
            checked, head_hash, run_problems = verify_chain(
                conn, "runs", id_column="id", noun="run", purged=purged["runs"]
            )
            problems += run_problems
            reviews, reviews_head, review_problems = verify_chain(
                conn, "reviews", id_column="id", noun="review", purged=purged["reviews"]
            )
            problems += review_problems
            actions, actions_head = 0, None
            if "action_log" in present:
                actions, actions_head, action_problems = verify_chain(
                    conn, "action_log", id_column="id", noun="action log entry"
                )
                problems += action_problems
            events, events_head, event_problems = verify_chain(
                conn, "audit_events", id_column="kind", noun="event"
            )
            problems += event_problems
            chained = [name for name in ("runs", "reviews", "action_log", "audit_events") if name in present]
            union = " UNION ALL ".join(f"SELECT 1 FROM {name} WHERE hash = ?" for name in chained)
            for anchor in anchors:
                found = conn.execute(union, [anchor] * len(chained)).fetchone()
                if found is None:
                    problems.append(
                        f"runs: anchor {anchor} is not in the chain: "
                        "the rows up to it were rewritten or removed"
                    )
        return VerifyReport(
            ok=not problems,
            checked=checked,
            head_hash=head_hash,
            problems=problems,
            reviews_checked=reviews,
            reviews_head_hash=reviews_head,
            actions_checked=actions,
            actions_head_hash=actions_head,
            events_checked=events,
            events_head_hash=events_head,
        )

    def export(self, out: TextIO, fmt: Literal["jsonl", "csv"], since: datetime | None = None) -> int:
        """Write closed runs to `out` as JSON Lines or CSV and return how many were written.

        CSV has a header row of Run field names; JSON-valued fields are JSON text and NULL is an empty
        cell. Open a file for CSV with `newline=""`.
        """
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"unknown export format {fmt!r}: use 'jsonl' or 'csv'")
        count = 0
        if fmt == "jsonl":
            encoder = msgspec.json.Encoder()
            for run in self.iter_runs(since):
                out.write(encoder.encode(run).decode() + "\n")
                count += 1
            return count
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_RUN_FIELD_NAMES)
        for run in self.iter_runs(since):
            writer.writerow(_csv_cells(run))
            count += 1
        return count

    # The other chained tables, exported as stored (JSON-text columns decoded in JSON Lines).
    _TABLES: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "reviews": ("decided_at", ("changes", "final")),
        "actions": ("at", ("detail",)),  # the action and workflow log: `action_log`
        "events": ("at", ("details",)),  # governance: drift, purges, erasures, legal holds, verifications
    }

    def export_table(
        self, out: TextIO, fmt: Literal["jsonl", "csv"], table: str, since: datetime | None = None
    ) -> int:
        """Write the chained `reviews` or action log (`actions`) rows, oldest first, hashes included."""
        if table not in self._TABLES:
            raise ValueError(f"unknown table {table!r}: use one of {sorted(self._TABLES)}")
        stamp, json_columns = self._TABLES[table]
        name = {"actions": "action_log", "events": "audit_events"}.get(table, table)
        sql, params = f"SELECT * FROM {name}", []
        if since is not None:
            sql, params = f"{sql} WHERE {stamp} >= ?", [iso_utc(since)]
        count = 0
        with self._snapshot() as conn:
            cursor = conn.execute(sql + " ORDER BY seq", params)
            columns = [c[0] for c in cursor.description]
            writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
            if writer is not None:
                writer.writerow(columns)
            for row in rows_as_dicts(cursor):
                if writer is not None:
                    writer.writerow(["" if row[c] is None else row[c] for c in columns])
                else:
                    for column in json_columns:
                        if row.get(column) is not None:
                            row[column] = msgspec.json.decode(row[column])
                    out.write(msgspec.json.encode(row).decode() + "\n")
                count += 1
        return count

    # -- plumbing ----------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> LineageStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction on the lineage file for the working tables beside the chain (actions,
        workflows, events): their state changes and the chained record of them commit together."""
        return self._write()

    def reading(self) -> AbstractContextManager[sqlite3.Connection]:
        """A consistent read-only snapshot (its own connection; never blocks writers)."""
        return self._snapshot()

    def append_chained(self, conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> dict[str, Any]:
        """Append to a chained table inside `transaction()`."""
        return self._append_chained(conn, table, row)

    def migrate(self, migrations: Migrations) -> None:
        """Apply a feature's own migration set to this file, in one write transaction like lineage's."""
        with self._write():
            self._connection()  # refuse after close()
            assert self._db is not None
            migrations.apply(self._db)

    def record_event(self, kind: str, details: dict[str, Any], *, actor: str = "deskpilot") -> dict[str, Any]:
        """Append a governance event (drift alarm, purge, erasure, legal hold, verification) to the chained
        `audit_events` table and return it as stored (`details` decoded)."""
        with self._write() as conn:
            return self.append_event(conn, kind, details, actor=actor)

    def append_event(
        self, conn: sqlite3.Connection, kind: str, details: dict[str, Any], *, actor: str = "deskpilot"
    ) -> dict[str, Any]:
        """`record_event` inside a `transaction()` the caller holds, so the event commits with its effect."""
        row = {
            "id": uuid.uuid4().hex,
            "at": iso_utc(self._clock()),
            "kind": kind,
            "actor": actor,
            "details": msgspec.json.encode(details, order="sorted").decode(),
        }
        stored = append_chained(conn, "audit_events", row)
        return stored | {"details": msgspec.json.decode(stored["details"])}

    def purge(
        self, conn: sqlite3.Connection, table: str, seqs: Iterable[int], columns: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Replace the content columns of these rows with their digests ("purged sha256:..."), inside a
        `transaction()` the caller holds and in which it chains the purge entry (`append_event`) with what
        this returns under `details["purged"][table]`, so that `verify()` accounts for every purged row.

        Returns {"columns": [...], "v2": [seq...], "v1": [{"seq", "hash", "rest"}...]}: a v2 row still
        verifies by its digests; a v1 row (written before content hashes) cannot be re-derived once its
        text is gone, so the entry keeps its hash and a digest of the rest of the row.
        """
        content = CONTENT_COLUMNS[table]
        wanted = tuple(columns) if columns is not None else content
        if not set(wanted) <= set(content):
            raise ValueError(f"{table} has no content column(s) {sorted(set(wanted) - set(content))}")
        done: dict[str, Any] = {"columns": list(wanted), "v2": [], "v1": []}
        select = f"SELECT * FROM {table} WHERE seq = ?"
        for seq in seqs:
            row = next(iter(rows_as_dicts(conn.execute(select, [seq]))), None)
            if row is None:
                continue
            live = {c: tombstone(row[c]) for c in wanted if row[c] is not None and not is_tombstone(row[c])}
            if not live:
                continue
            if row.get("hash_v") == 2:
                done["v2"].append(seq)
            else:
                done["v1"].append({"seq": seq, "hash": row["hash"], "rest": rest_digest(row, table)})
            assignments = ", ".join(f"{c} = ?" for c in live)
            conn.execute(f"UPDATE {table} SET {assignments} WHERE seq = ?", [*live.values(), seq])
        return done

    def record_verification(self, report: VerifyReport, *, actor: str) -> dict[str, Any]:
        """Chain the outcome of a `verify()`: when it ran, whether it passed, and the heads it saw."""
        details = msgspec.structs.asdict(report) | {"problems": report.problems[:20]}
        return self.record_event("audit.verify", details, actor=actor)

    def events(
        self, *, kinds: Iterable[str] = (), since: datetime | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Governance events, newest first, optionally of some kinds and since a time."""
        sql, params = "SELECT * FROM audit_events WHERE 1", []
        kinds = list(kinds)
        if kinds:
            sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            params += kinds
        if since is not None:
            sql += " AND at >= ?"
            params.append(iso_utc(since))
        with self._snapshot() as conn:
            rows = list(rows_as_dicts(conn.execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])))
        return [row | {"details": msgspec.json.decode(row["details"])} for row in rows]

    def now(self) -> datetime:
        """The store's clock (tests pass one), for the times the tables beside the chain record."""
        return self._clock()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise LineageError("the lineage store is closed")
        return self._db.conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, serialized within the process by the lock and across processes by SQLite.

        IMMEDIATE takes the file's write lock before the first read, so the head an append reads is still
        the head when it inserts; a deferred BEGIN (what `db.atomic()` issues) could instead fail with
        SQLITE_BUSY halfway when another process wrote in between.
        """
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # An error may already have ended the transaction; rolling back again would hide it.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A short-lived read-only connection inside one read transaction: a consistent WAL snapshot."""
        self._connection()  # refuse reads after close()
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    @staticmethod
    def _find(conn: sqlite3.Connection, run_id: str) -> Run | None:
        for row in rows_as_dicts(conn.execute("SELECT * FROM runs WHERE id = ?", [run_id])):
            return _run_from_row(row)
        for row in rows_as_dicts(conn.execute("SELECT * FROM open_runs WHERE id = ?", [run_id])):
            start = msgspec.json.decode(row["start"])
            return msgspec.convert(
                {"id": row["id"], "started_at": row["started_at"], "status": "running"} | start, Run
            )
        return None


# The governance events that purge content; their `details["purged"]` is what `purge()` returned, per table.
PURGING_EVENTS = ("retention.purge", "audit.erase")


def _purged_rows(conn: sqlite3.Connection) -> dict[str, dict[int, dict[str, Any]]]:
    """Per chained table, each row a chained purge entry accounts for: seq -> {} (v2) or {hash, rest} (v1)."""
    out: dict[str, dict[int, dict[str, Any]]] = {table: {} for table in CONTENT_COLUMNS}
    marks = ", ".join("?" for _ in PURGING_EVENTS)
    for (details,) in conn.execute(
        f"SELECT details FROM audit_events WHERE kind IN ({marks})", PURGING_EVENTS
    ):
        for table, done in (msgspec.json.decode(details).get("purged") or {}).items():
            if table in out:
                out[table].update({seq: {} for seq in done.get("v2", [])})
                out[table].update({entry["seq"]: entry for entry in done.get("v1", [])})
    return out


def _validated(value: _StructT, kind: type[_StructT]) -> _StructT:
    """Type-check a struct the caller built (Struct constructors do not), and make its values plain JSON.

    A wrong type fails here with msgspec's message naming the field, instead of being stored.
    """
    try:
        return msgspec.convert(msgspec.to_builtins(value), kind)
    except TypeError as exc:  # a value with no JSON form, e.g. an object in `input`
        raise ValueError(f"{kind.__name__}: {exc}") from exc


def _encode_json_columns(row: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (msgspec.json.encode(value).decode() if name in _JSON_COLUMNS and value is not None else value)
        for name, value in row.items()
    }


def _run_from_row(row: dict[str, Any]) -> Run:
    purged = [name for name in CONTENT_COLUMNS["runs"] if is_tombstone(row.get(name))]
    fields = {
        name: (
            None
            if name in purged
            else msgspec.json.decode(value)
            if name in _JSON_COLUMNS and value is not None
            else value
        )
        for name, value in row.items()
    }
    return msgspec.convert(fields | {"purged": purged}, Run)


def _csv_cells(run: Run) -> list[str]:
    cells = []
    for name in _RUN_FIELD_NAMES:
        value = getattr(run, name)
        if value is None:
            cells.append("")
        elif name in _JSON_COLUMNS:
            cells.append(msgspec.json.encode(value).decode())
        else:
            cells.append(str(value))
    return cells
