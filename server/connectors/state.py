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


@dataclass
class ItemRow:
    source: str
    scope: str
    kind: str
    graph_id: str
    parent: str | None
    tag: str | None
    indexed: bool


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
        row = self.conn.execute(
            "SELECT scope, name, delta_link, next_link, round, full FROM cursors WHERE scope = ?", (scope,)
        ).fetchone()
        return Cursor(row[0], row[1], row[2], row[3], row[4], bool(row[5])) if row else None

    def cursors(self) -> list[Cursor]:
        rows = self.conn.execute(
            "SELECT scope, name, delta_link, next_link, round, full FROM cursors ORDER BY scope"
        )
        return [Cursor(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

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

    def rename(self, scope: str, name: str) -> None:
        with self.write():
            self.conn.execute("UPDATE cursors SET name = ? WHERE scope = ?", (name, scope))

    def drop_scope(self, scope: str) -> None:
        with self.write():
            self.conn.execute("DELETE FROM cursors WHERE scope = ?", (scope,))
            self.conn.execute("DELETE FROM items WHERE scope = ?", (scope,))

    # -- items -----------------------------------------------------------------------------------------

    def item(self, source: str) -> ItemRow | None:
        row = self.conn.execute(
            "SELECT source, scope, kind, graph_id, parent, tag, indexed FROM items WHERE source = ?",
            (source,),
        ).fetchone()
        return ItemRow(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6])) if row else None

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
                "updated_at) VALUES (:source, :scope, :kind, :graph_id, :parent, :tag, :round, :indexed, "
                ":skipped, :at) ON CONFLICT(source) DO UPDATE SET scope = excluded.scope, "
                "kind = excluded.kind, parent = excluded.parent, tag = excluded.tag, "
                "seen_round = excluded.seen_round, indexed = excluded.indexed, skipped = excluded.skipped, "
                "updated_at = excluded.updated_at",
                [
                    {
                        "parent": None,
                        "tag": None,
                        "indexed": 1,
                        "skipped": None,
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
                    "UPDATE cursors SET delta_link = ?, next_link = NULL, full = 0, updated_at = ? "
                    "WHERE scope = ?",
                    (delta_link, at, scope),
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
        rows = self.conn.execute(
            "SELECT source, scope, kind, graph_id, parent, tag, indexed FROM items WHERE parent = ?",
            (parent_id,),
        )
        return [ItemRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]

    def skipped(self, limit: int = 100) -> list[tuple[str, str]]:
        return self.conn.execute(
            "SELECT source, skipped FROM items WHERE skipped IS NOT NULL ORDER BY source LIMIT ?", (limit,)
        ).fetchall()

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
