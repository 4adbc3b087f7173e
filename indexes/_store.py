"""SQLite metadata for the index: the source of truth.

Documents, their chunks (text, offsets, page) and each chunk's vector live in one SQLite file (WAL).
A document and all its chunks are written in one transaction, so after any crash a document is either
fully there with its recorded content hash, or still in its previous state (and its changed hash makes
the next run index it again). Chunk ids are AUTOINCREMENT: SQLite never hands out an id again once it
was committed, which lets FAISS use them as its ids and lets tombstones stay unambiguous.

`generation` counts committed changes; a process compares it with the generation its FAISS copy
reflects to know when another process (the CLI next to the server) has written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from sqlite_utils.migrations import Migrations

from deskpilot.indexes._types import Scope
from deskpilot.indexes.mentions import SQL_FUNCTION
from deskpilot.indexes.mentions import register as register_mentions

__all__ = ["MetadataStore", "utc_iso"]

migrations = Migrations("deskpilot.indexes")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        """CREATE TABLE IF NOT EXISTS documents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL UNIQUE,
            path TEXT,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            date TEXT,
            content_hash TEXT NOT NULL,
            size INTEGER,
            mtime_ns INTEGER,
            chunk_count INTEGER NOT NULL,
            indexed_at TEXT NOT NULL,
            extra TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS documents_path ON documents(path)")
    db.execute("CREATE INDEX IF NOT EXISTS documents_date ON documents(date)")
    db.execute(
        """CREATE TABLE IF NOT EXISTS chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            page INTEGER,
            text TEXT NOT NULL,
            vector BLOB NOT NULL
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id)")
    db.execute(
        """CREATE TABLE IF NOT EXISTS skipped (
            path TEXT PRIMARY KEY, reason TEXT NOT NULL, detail TEXT NOT NULL,
            size INTEGER, mtime_ns INTEGER, at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE TABLE IF NOT EXISTS roots (path TEXT PRIMARY KEY, exclude TEXT NOT NULL)")


def utc_iso(value: datetime | None) -> str | None:
    """Dates are stored as UTC ISO strings, so that string order is time order."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="seconds")


def _folder_prefix(folder: str) -> str:
    path = str(Path(folder).expanduser().absolute())
    sep = "\\" if "\\" in path and "/" not in path else "/"
    return path if path.endswith(sep) else path + sep


class MetadataStore:
    """One connection; the caller (DocumentIndex) serialises use with its lock."""

    def __init__(self, path: Path, *, model_id: str, dim: int) -> None:
        self.path = path
        if not path.exists():  # owner-only (it holds the documents' text); its -wal and -shm take its mode
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # Removed text is zeroed, not left in free pages: erasure and retention mean it is gone from the file.
        self.conn.execute("PRAGMA secure_delete=ON")
        register_mentions(self.conn)
        self.db = sqlite_utils.Database(self.conn)
        try:
            self._migrate(model_id, dim)
        except BaseException:
            self.conn.close()
            raise
        self.index_id = self.meta()["index_id"]

    def _migrate(self, model_id: str, dim: int) -> None:
        with self.write():
            migrations.apply(self.db)
            meta = self.meta()
            if "index_id" not in meta:
                self._set_meta(index_id=uuid.uuid4().hex, model=model_id, dim=str(dim), generation="0")
            elif meta["model"] != model_id or int(meta["dim"]) != dim:
                raise ValueError(
                    f"the index at {self.path.parent} holds vectors of {meta['model']} ({meta['dim']} dims), "
                    f"not {model_id} ({dim} dims): remove the folder to rebuild it"
                )

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction that takes SQLite's write lock at once (waiting for other writers)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[None]:
        """A read transaction: a consistent snapshot across several queries (WAL readers never block)."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")

    # -- meta --------------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def _set_meta(self, **values: str) -> None:
        self.conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def set_meta(self, **values: str) -> None:
        self._set_meta(**values)

    def generation(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def bump_generation(self) -> int:
        self.conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        return self.generation()

    # -- documents ---------------------------------------------------------------------------------

    def document(self, *, source: str | None = None, id: int | None = None) -> dict[str, Any] | None:
        column, value = ("source", source) if source is not None else ("id", id)
        cursor = self.conn.execute(f"SELECT * FROM documents WHERE {column} = ?", (value,))
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None

    def documents_under(self, folder: str) -> list[tuple[int, str]]:
        """(id, path) of file documents at `folder` or below it."""
        prefix = _folder_prefix(folder)
        exact = prefix.rstrip("/\\")
        return self.conn.execute(
            "SELECT id, path FROM documents WHERE path = ? OR substr(path, 1, ?) = ?",
            (exact, len(prefix), prefix),
        ).fetchall()

    def find_documents(
        self, *, mentioning: str | None, dated_before: str | None, source_prefix: str | None
    ) -> list[tuple[int, str]]:
        """(id, source) of documents that match every criterion given: the text (case-folded) appears in
        a chunk, the title or the metadata; dated (or, undated, indexed) before an ISO time; a source
        prefix."""
        clauses: list[str] = []
        params: list[Any] = []
        if mentioning is not None:
            needle = mentioning.casefold()
            # instr first (cheap), then the whole-address check (mentions.py) on what it found.
            found = "(instr(lower({0}), ?) AND " + SQL_FUNCTION + "({0}, ?))"
            clauses.append(
                f"({found.format('d.title')} OR {found.format('d.extra')} OR EXISTS (SELECT 1 FROM chunks c "
                f"WHERE c.document_id = d.id AND {found.format('c.text')}))"
            )
            params += [needle] * 6
        if dated_before is not None:
            clauses.append("COALESCE(d.date, d.indexed_at) < ?")
            params.append(dated_before)
        if source_prefix is not None:
            clauses.append("substr(d.source, 1, ?) = ?")
            params += [len(source_prefix), source_prefix]
        where = " AND ".join(clauses) or "1"
        return self.conn.execute(f"SELECT d.id, d.source FROM documents d WHERE {where}", params).fetchall()

    def chunk_ids(self, document_id: int) -> list[int]:
        return [
            r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE document_id = ?", (document_id,))
        ]

    def upsert_document(
        self,
        doc: dict[str, Any],
        chunks: Sequence[tuple[int, int, int | None, str]],
        vectors: np.ndarray | None,
    ) -> tuple[int, list[int], list[int]]:
        """Write a document; `vectors` None keeps its chunks (metadata-only change).

        Returns (document id, removed chunk ids, added chunk ids). Call inside `write()`.
        """
        old = self.document(source=doc["source"])
        removed: list[int] = []
        fields = {k: v for k, v in doc.items() if k != "source"}
        if old is None:
            names = ", ".join(doc)
            cursor = self.conn.execute(
                f"INSERT INTO documents ({names}) VALUES ({', '.join('?' * len(doc))})", list(doc.values())
            )
            document_id = int(cursor.lastrowid or 0)
        else:
            document_id = int(old["id"])
            if vectors is not None:
                removed = self.chunk_ids(document_id)
                self.conn.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
            else:
                fields["chunk_count"] = old["chunk_count"]
            assignments = ", ".join(f"{k} = ?" for k in fields)
            self.conn.execute(
                f"UPDATE documents SET {assignments} WHERE id = ?", [*fields.values(), document_id]
            )
        added: list[int] = []
        if vectors is not None:
            for seq, ((start, end, page, text), vector) in enumerate(zip(chunks, vectors, strict=True)):
                cursor = self.conn.execute(
                    'INSERT INTO chunks (document_id, seq, start, "end", page, text, vector) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (document_id, seq, start, end, page, text, vector.astype(np.float32).tobytes()),
                )
                added.append(int(cursor.lastrowid or 0))
        return document_id, removed, added

    def delete_document(self, document_id: int) -> list[int]:
        """Delete a document and its chunks; returns the removed chunk ids. Call inside `write()`."""
        removed = self.chunk_ids(document_id)
        self.conn.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
        self.conn.execute("DELETE FROM documents WHERE id = ?", (document_id,))
        return removed

    def touch_document(self, document_id: int, size: int, mtime_ns: int) -> None:
        self.conn.execute(
            "UPDATE documents SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, document_id)
        )

    def counts(self) -> tuple[int, int]:
        docs = self.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    # -- chunks and vectors ------------------------------------------------------------------------

    def all_chunk_ids(self) -> np.ndarray:
        rows = self.conn.execute("SELECT id FROM chunks ORDER BY id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(self, ids: np.ndarray, dim: int, batch: int = 900) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) read back from SQLite, for the ids that exist."""
        found_ids: list[int] = []
        blobs: list[bytes] = []
        values = [int(i) for i in ids]
        for i in range(0, len(values), batch):
            part = values[i : i + batch]
            rows = self.conn.execute(
                f"SELECT id, vector FROM chunks WHERE id IN ({', '.join('?' * len(part))})", part
            ).fetchall()
            for chunk_id, blob in rows:
                found_ids.append(chunk_id)
                blobs.append(blob)
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dim)
        return np.asarray(found_ids, dtype=np.int64), matrix

    def scope_chunk_ids(self, scope: Scope) -> np.ndarray:
        where: list[str] = []
        params: list[Any] = []
        if scope.folders:
            parts = []
            for folder in scope.folders:
                prefix = _folder_prefix(folder)
                parts.append("(d.path = ? OR substr(d.path, 1, ?) = ?)")
                params += [prefix.rstrip("/\\"), len(prefix), prefix]
            where.append("(" + " OR ".join(parts) + ")")
        if scope.document_ids:
            where.append(f"d.id IN ({', '.join('?' * len(scope.document_ids))})")
            params += list(scope.document_ids)
        if scope.sources:
            where.append(f"d.source IN ({', '.join('?' * len(scope.sources))})")
            params += list(scope.sources)
        if scope.since is not None:
            where.append("d.date >= ?")
            params.append(utc_iso(scope.since))
        if scope.until is not None:
            where.append("d.date <= ?")
            params.append(utc_iso(scope.until))
        sql = "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.conn.execute(sql, params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def hit_rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        cursor = self.conn.execute(
            'SELECT c.id AS chunk_id, c.document_id, c.start, c."end", c.page, c.text, d.source, d.path, '
            f"d.title, d.date FROM chunks c JOIN documents d ON d.id = c.document_id "
            f"WHERE c.id IN ({', '.join('?' * len(ids))})",
            list(ids),
        )
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}

    # -- skipped files and roots -------------------------------------------------------------------

    def skipped(self, path: str) -> dict[str, Any] | None:
        cursor = self.conn.execute("SELECT * FROM skipped WHERE path = ?", (path,))
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None

    def record_skipped(
        self, path: str, reason: str, detail: str, size: int | None, mtime_ns: int | None
    ) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO skipped (path, reason, detail, size, mtime_ns, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (path, reason, detail, size, mtime_ns, utc_iso(datetime.now(UTC))),
        )

    def clear_skipped(self, paths: Sequence[str]) -> None:
        self.conn.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in paths])

    def skipped_under(self, folder: str) -> list[str]:
        prefix = _folder_prefix(folder)
        rows = self.conn.execute(
            "SELECT path FROM skipped WHERE path = ? OR substr(path, 1, ?) = ?",
            (prefix.rstrip("/\\"), len(prefix), prefix),
        )
        return [r[0] for r in rows]

    def all_skipped(self, limit: int = 1000) -> list[tuple[str, str, str]]:
        return self.conn.execute(
            "SELECT path, reason, detail FROM skipped ORDER BY path LIMIT ?", (limit,)
        ).fetchall()

    def roots(self) -> dict[str, list[str]]:
        return {
            p: json.loads(e) for p, e in self.conn.execute("SELECT path, exclude FROM roots ORDER BY path")
        }

    def remember_root(self, path: str, exclude: Sequence[str]) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO roots (path, exclude) VALUES (?, ?)", (path, json.dumps(list(exclude)))
        )

    def forget_root(self, path: str) -> None:
        self.conn.execute("DELETE FROM roots WHERE path = ?", (path,))
