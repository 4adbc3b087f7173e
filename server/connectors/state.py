"""Durable sync state in SQLite (`<home>/graph-sync.db`, WAL): where each delta round stands, which Graph
items are in the index under which scope, quarantined payloads, and past runs. Never tokens.

A *scope* is one delta feed: a mail folder ("mail:<folder id>"), the drive ("drive") or the calendar
("calendar"). Its cursor holds either the next page of the round in progress (`next_link`) or the delta
link that starts the next round. The sync commits a page to the index first and then records the page
after it here: a crash between the two makes the next run fetch that page again, and applying a page
twice is harmless (documents are keyed by their Graph id). A *full* round (the first, or after a 410)
marks every item it sees with the round number; when it ends, the scope's items it did not see are
removed from the index, so a resync also catches deletions that happened while the link was stale.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from deskpilot.server.core.db import iso_utc, utc_now

__all__ = ["Cursor", "ItemRow", "SyncState"]

migrations = Migrations("deskpilot.connectors")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE IF NOT EXISTS cursors (
        scope TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', delta_link TEXT, next_link TEXT,
        round INTEGER NOT NULL DEFAULT 0, full INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL)""")
    db.execute("""CREATE TABLE IF NOT EXISTS items (
        source TEXT PRIMARY KEY, scope TEXT NOT NULL, kind TEXT NOT NULL, graph_id TEXT NOT NULL,
        parent TEXT, tag TEXT, seen_round INTEGER NOT NULL DEFAULT 0, indexed INTEGER NOT NULL DEFAULT 1,
        skipped TEXT, updated_at TEXT NOT NULL)""")
    db.execute("CREATE INDEX IF NOT EXISTS items_scope ON items(scope, seen_round)")
    db.execute("CREATE INDEX IF NOT EXISTS items_parent ON items(parent)")
    db.execute("""CREATE TABLE IF NOT EXISTS quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, kind TEXT NOT NULL, graph_id TEXT,
        payload TEXT NOT NULL, error TEXT NOT NULL, at TEXT NOT NULL, resolved_at TEXT)""")
    db.execute("CREATE INDEX IF NOT EXISTS quarantine_open ON quarantine(resolved_at, graph_id)")
    db.execute("""CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT,
        status TEXT NOT NULL, summary TEXT, error TEXT)""")


@migrations()
def m002_retries_windows_and_names(db: sqlite_utils.Database) -> None:
    """A skipped file's retry schedule and real size; a folder's name (paths are rebuilt from the parent
    chain, since delta leaves `parentReference.path` out); per scope the calendar window its delta link
    covers, when a throttled scope may go on, and when it last completed a round."""
    for column in ("name TEXT", "size INTEGER", "attempts INTEGER NOT NULL DEFAULT 0", "retry_at TEXT"):
        db.execute(f"ALTER TABLE items ADD COLUMN {column}")
    db.execute("CREATE INDEX IF NOT EXISTS items_retry ON items(retry_at)")
    for column in ("window_start TEXT", "deferred_until TEXT", "deferred_reason TEXT", "succeeded_at TEXT"):
        db.execute(f"ALTER TABLE cursors ADD COLUMN {column}")


def _now() -> str:
    return iso_utc(utc_now())


@dataclass
class Cursor:
    scope: str
    name: str
    delta_link: str | None
    next_link: str | None
    round: int
    full: bool
    window_start: str | None = None  # the calendar window the scope's delta link covers (ISO, UTC)
    deferred_until: str | None = None  # throttled: the scope waits until then (ISO, UTC)
    deferred_reason: str | None = None
    succeeded_at: str | None = None  # when a round of it last reached its delta link


@dataclass
class ItemRow:
    source: str
    scope: str
    kind: str
    graph_id: str
    parent: str | None
    tag: str | None
    indexed: bool
    name: str | None = None
    size: int | None = None
    skipped: str | None = None  # why a file is not in the index
    attempts: int = 0  # failed downloads in a row; a retry is due at `retry_at`
    retry_at: str | None = None

    def as_put(self) -> dict[str, Any]:
        """The row as `commit_page(put=...)` takes it: keeping an item as it is, marked seen."""
        return {
            "source": self.source,
            "scope": self.scope,
            "kind": self.kind,
            "graph_id": self.graph_id,
            "parent": self.parent,
            "tag": self.tag,
            "indexed": int(self.indexed),
            "name": self.name,
            "size": self.size,
            "skipped": self.skipped,
            "attempts": self.attempts,
            "retry_at": self.retry_at,
        }


_CURSOR = (
    "SELECT scope, name, delta_link, next_link, round, full, window_start, deferred_until, deferred_reason, "
    "succeeded_at FROM cursors"
)
_ITEM = (
    "SELECT source, scope, kind, graph_id, parent, tag, indexed, name, size, skipped, attempts, retry_at "
    "FROM items"
)


def _cursor(row: Sequence[Any]) -> Cursor:
    return Cursor(row[0], row[1], row[2], row[3], row[4], bool(row[5]), *row[6:])


def _item(row: Sequence[Any]) -> ItemRow:
    return ItemRow(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), *row[7:])


class SyncState:
    """One connection, used by one sync at a time (the sync lock) plus readers (status)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.db = sqlite_utils.Database(self.conn)
        with self.write():
            migrations.apply(self.db)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- cursors ---------------------------------------------------------------------------------------

    def cursor(self, scope: str) -> Cursor | None:
        row = self.conn.execute(f"{_CURSOR} WHERE scope = ?", (scope,)).fetchone()
        return _cursor(row) if row else None

    def cursors(self) -> list[Cursor]:
        return [_cursor(r) for r in self.conn.execute(f"{_CURSOR} ORDER BY scope")]

    def begin_full_round(self, scope: str, name: str) -> Cursor:
        """Forget the scope's links and start a round that enumerates everything."""
        with self.write():
            self.conn.execute(
                "INSERT INTO cursors(scope, name, round, full, updated_at) VALUES (?, ?, 1, 1, ?) "
                "ON CONFLICT(scope) DO UPDATE SET name = excluded.name, delta_link = NULL, next_link = NULL, "
                "round = round + 1, full = 1, updated_at = excluded.updated_at",
                (scope, name, _now()),
            )
        cursor = self.cursor(scope)
        assert cursor is not None
        return cursor

    def set_window(self, scope: str, start: str) -> None:
        """The calendar window's start the round now beginning covers (it is part of the delta token)."""
        with self.write():
            self.conn.execute("UPDATE cursors SET window_start = ? WHERE scope = ?", (start, scope))

    def defer(self, scope: str, until: str, reason: str) -> None:
        """The scope stays where it is until `until` (throttled beyond its budget); then it goes on."""
        with self.write():
            self.conn.execute(
                "UPDATE cursors SET deferred_until = ?, deferred_reason = ?, updated_at = ? WHERE scope = ?",
                (until, reason, _now(), scope),
            )

    def rename(self, scope: str, name: str) -> None:
        with self.write():
            self.conn.execute("UPDATE cursors SET name = ? WHERE scope = ?", (name, scope))

    def drop_scope(self, scope: str) -> None:
        with self.write():
            self.conn.execute("DELETE FROM cursors WHERE scope = ?", (scope,))
            self.conn.execute("DELETE FROM items WHERE scope = ?", (scope,))

    # -- items -----------------------------------------------------------------------------------------

    def item(self, source: str) -> ItemRow | None:
        row = self.conn.execute(f"{_ITEM} WHERE source = ?", (source,)).fetchone()
        return _item(row) if row else None

    def commit_page(
        self,
        scope: str,
        round_: int,
        *,
        put: Sequence[dict[str, Any]] = (),
        forget: Sequence[str] = (),
        next_link: str | None = None,
        delta_link: str | None = None,
    ) -> None:
        """Record a page that is in the index, in one transaction: its items, the items it removed, and where
        the round goes on (`next_link`) or that it ended (`delta_link`). Neither link: items only."""
        at = _now()
        with self.write():
            self.conn.executemany(
                "INSERT INTO items(source, scope, kind, graph_id, parent, tag, seen_round, indexed, skipped, "
                "name, size, attempts, retry_at, updated_at) VALUES (:source, :scope, :kind, :graph_id, "
                ":parent, :tag, :round, :indexed, :skipped, :name, :size, :attempts, :retry_at, :at) "
                "ON CONFLICT(source) DO UPDATE SET scope = excluded.scope, "
                "kind = excluded.kind, parent = excluded.parent, tag = excluded.tag, "
                "seen_round = excluded.seen_round, indexed = excluded.indexed, skipped = excluded.skipped, "
                "name = excluded.name, size = excluded.size, attempts = excluded.attempts, "
                "retry_at = excluded.retry_at, updated_at = excluded.updated_at",
                [
                    {
                        "parent": None,
                        "tag": None,
                        "indexed": 1,
                        "skipped": None,
                        "name": None,
                        "size": None,
                        "attempts": 0,
                        "retry_at": None,
                        **r,
                        "round": round_,
                        "at": at,
                    }
                    for r in put
                ],
            )
            self.conn.executemany("DELETE FROM items WHERE source = ?", [(s,) for s in forget])
            if delta_link is not None:
                self.conn.execute(
                    "UPDATE cursors SET delta_link = ?, next_link = NULL, full = 0, updated_at = ?, "
                    "succeeded_at = ?, deferred_until = NULL, deferred_reason = NULL WHERE scope = ?",
                    (delta_link, at, at, scope),
                )
                # Page-level drift has no item to re-fetch: a round that completes has got past it.
                self.conn.execute(
                    "UPDATE quarantine SET resolved_at = ? WHERE scope = ? AND kind = 'page' "
                    "AND resolved_at IS NULL",
                    (at, scope),
                )
            elif next_link is not None:
                self.conn.execute(
                    "UPDATE cursors SET next_link = ?, updated_at = ? WHERE scope = ?", (next_link, at, scope)
                )

    def unseen(self, scope: str, round_: int) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT source FROM items WHERE scope = ? AND seen_round < ?", (scope, round_)
            )
        ]

    def in_scope(self, scope: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT source FROM items WHERE scope = ?", (scope,))]

    def children(self, parent_id: str) -> list[ItemRow]:
        return [_item(r) for r in self.conn.execute(f"{_ITEM} WHERE parent = ?", (parent_id,))]

    def skipped(self, limit: int = 100) -> list[tuple[str, str]]:
        return self.conn.execute(
            "SELECT source, skipped FROM items WHERE skipped IS NOT NULL ORDER BY source LIMIT ?", (limit,)
        ).fetchall()

    def skipped_items(self, scope: str, limit: int = 50) -> list[ItemRow]:
        """The scope's files not in the index, those with a retry first (for the sync status)."""
        rows = self.conn.execute(
            f"{_ITEM} WHERE scope = ? AND skipped IS NOT NULL ORDER BY retry_at IS NULL, retry_at, source "
            "LIMIT ?",
            (scope, limit),
        )
        return [_item(r) for r in rows]

    def skipped_count(self, scope: str) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM items WHERE scope = ? AND skipped IS NOT NULL", (scope,)
        ).fetchone()
        return int(row[0])

    def due_retries(self, now: str) -> list[ItemRow]:
        """Skipped files whose next download attempt is due."""
        rows = self.conn.execute(
            f"{_ITEM} WHERE retry_at IS NOT NULL AND retry_at <= ? ORDER BY retry_at", (now,)
        )
        return [_item(r) for r in rows]

    # -- quarantine ------------------------------------------------------------------------------------

    def quarantine(self, scope: str, kind: str, graph_id: str | None, payload: bytes, error: str) -> int:
        with self.write():
            if graph_id:  # one open entry per item: the latest payload and error
                self.conn.execute(
                    "DELETE FROM quarantine WHERE graph_id = ? AND kind = ? AND resolved_at IS NULL",
                    (graph_id, kind),
                )
            cur = self.conn.execute(
                "INSERT INTO quarantine(scope, kind, graph_id, payload, error, at) VALUES (?, ?, ?, ?, ?, ?)",
                (scope, kind, graph_id, payload.decode("utf-8", "replace"), error, _now()),
            )
            return int(cur.lastrowid or 0)

    def open_quarantine(self) -> list[tuple[int, str, str, str | None]]:
        """(id, scope, kind, graph id) of quarantined payloads not yet repaired."""
        return self.conn.execute(
            "SELECT id, scope, kind, graph_id FROM quarantine WHERE resolved_at IS NULL ORDER BY id"
        ).fetchall()

    def resolve(self, kind: str, graph_id: str) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE quarantine SET resolved_at = ? WHERE kind = ? AND graph_id = ? "
                "AND resolved_at IS NULL",
                (_now(), kind, graph_id),
            )

    def quarantined_count(self) -> int:
        return int(
            self.conn.execute("SELECT count(*) FROM quarantine WHERE resolved_at IS NULL").fetchone()[0]
        )

    # -- runs ------------------------------------------------------------------------------------------

    def start_run(self) -> int:
        with self.write():
            # A run still "running" here was killed: it is not running now.
            self.conn.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
            cur = self.conn.execute("INSERT INTO runs(started_at, status) VALUES (?, 'running')", (_now(),))
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any], error: str | None = None) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ?, error = ? WHERE id = ?",
                (_now(), status, json.dumps(summary), error, run_id),
            )

    def last_run(self) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, started_at, finished_at, status, summary, error FROM runs "
            "WHERE status != 'running' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "started_at": row[1],
            "finished_at": row[2],
            "status": row[3],
            "summary": json.loads(row[4]) if row[4] else None,
            "error": row[5],
        }
