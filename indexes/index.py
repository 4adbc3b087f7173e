"""DocumentIndex: incremental, crash-safe retrieval over files and text documents.

Design, in the order that matters for correctness:

* **SQLite is the source of truth.** `meta.db` holds documents, chunks (text, offsets, page) and every
  chunk's vector. A batch of documents is embedded first, outside any lock, then written in one
  transaction (old chunks deleted, new ones inserted, `generation` bumped). A kill -9 at any moment
  leaves each document either fully at its new content hash or fully at its old one.
* **FAISS is a cache of SQLite.** `vectors.faiss` is written atomically (temporary file, fsync,
  rename) at checkpoints and at the end of a run, never with uncommitted ids. On open, and whenever
  another process has bumped `generation`, the in-memory FAISS is reconciled with SQLite: ids SQLite
  has and FAISS lacks are added from the stored vectors (no re-embedding, no torch), ids FAISS has and
  SQLite lacks are removed (exact index) or tombstoned (HNSW). So a crash can make the file stale but
  never wrong: no orphan vectors, no missing chunks. Chunk ids are never reused (AUTOINCREMENT).
* **Deletes.** The exact index removes ids. HNSW cannot: removed ids become tombstones filtered out
  during the graph search (an `IDSelectorNot`), and past `compact_fraction` of the vectors the index
  is rebuilt from the live vectors. Rebuilds (also the flat -> HNSW switch past `hnsw_threshold`, and
  back below half of it) are built outside the lock and swapped in, then reconciled.
* **Incremental.** A file whose size and mtime are unchanged is not read; one whose bytes hash to the
  recorded content hash is not re-embedded. Files gone from an indexed folder (or now excluded) leave
  the index. Bad files are skipped with a reason and remembered, so an unchanged bad file is not
  parsed again.
* **Lazy.** Creating a DocumentIndex opens SQLite only. FAISS loads on first use; torch loads on the
  first embedding or `warm_up()`.

Thread-safe within a process (one lock around SQLite and FAISS, held for commits and searches, not
while embedding); several processes (the server and the CLI) may use one folder at the same time:
SQLite serialises their writes and each reconciles with the other's through `generation`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from deskpilot.indexes._chunking import Chunk, chunk_segments
from deskpilot.indexes._loaders import SkipFile, load_bytes
from deskpilot.indexes._paths import ExcludeRules, normalize_roots, walk
from deskpilot.indexes._store import MetadataStore, utc_iso
from deskpilot.indexes._types import (
    DocumentInfo,
    DocumentInput,
    Hit,
    IndexProgress,
    IndexSettings,
    IndexStatus,
    IndexSummary,
    Scope,
    SkippedFile,
    SkipReason,
)
from deskpilot.indexes._vectors import FLAT, HNSW, VectorIndex
from deskpilot.indexes.embedding import Embedder, SentenceTransformerEmbedder

__all__ = ["DocumentIndex", "ProgressCallback", "index_folder"]

ProgressCallback = Callable[[IndexProgress], None]

_VECTORS_FILE = "vectors.faiss"
_MAGIC = b"DESKPILOT-VECTORS-1\n"
_SNIPPET_CHARS = 320


def index_folder(home: Path) -> Path:
    """Where the index of an installation lives: `<Settings.home>/index`."""
    return Path(home) / "index"


@dataclass
class _Pending:
    """A document ready to commit: its row, its chunks, and whether they need new vectors."""

    doc: dict[str, Any]
    chunks: list[Chunk]
    embed: bool = True
    vectors: np.ndarray | None = None


@dataclass
class _Run:
    summary: IndexSummary
    progress: ProgressCallback | None
    started: float = field(default_factory=time.monotonic)
    batch: list[_Pending] = field(default_factory=list)
    batch_chunks: int = 0
    touches: list[tuple[int, int, int]] = field(default_factory=list)


def _private(path: str, flags: int) -> int:
    """`open`'s opener for the index's files: created readable by their owner only (0600)."""
    return os.open(path, flags, 0o600)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _parse_date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= _SNIPPET_CHARS:
        return flat
    cut = flat.rfind(" ", 0, _SNIPPET_CHARS)
    return flat[: cut if cut > _SNIPPET_CHARS // 2 else _SNIPPET_CHARS] + "…"


def _scope_is_empty(scope: Scope | None) -> bool:
    return scope is None or not (
        scope.folders or scope.document_ids or scope.sources or scope.since or scope.until
    )


class DocumentIndex:
    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        settings: IndexSettings | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.folder = Path(folder).absolute()
        # The index holds the documents' text: readable by its owner only, whatever the umask.
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.settings = settings or IndexSettings()
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder()
        self._store = MetadataStore(
            self.folder / "meta.db", model_id=self.embedder.model_id, dim=self.embedder.dim
        )
        self._lock = threading.RLock()  # SQLite connection and FAISS
        self._run_lock = threading.Lock()  # one index_paths at a time
        self._vectors: VectorIndex | None = None
        self._synced = -1  # the SQLite generation that self._vectors reflects
        self._dirty = False  # self._vectors is newer than the file
        self._last_save = time.monotonic()
        self._progress: IndexProgress | None = None
        self._closed = False
        for stale in self.folder.glob(_VECTORS_FILE + ".*.tmp"):  # a crash mid-save leaves these
            stale.unlink(missing_ok=True)

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> DocumentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Save the vectors if they changed, and close the database."""
        with self._lock:
            if self._closed:
                return
            try:
                self._save_locked()  # a failure only costs the next open a longer reconcile
            finally:
                self._store.close()
                self._closed = True

    def warm_up(self, *, background: bool = True) -> threading.Thread | None:
        """Load the vectors and the embedding model, in a daemon thread unless `background` is False."""

        def run() -> None:
            with self._lock:
                self._ensure_vectors_locked()
            self._maybe_restructure()
            self.embedder.warm_up()

        if not background:
            run()
            return None
        thread = threading.Thread(target=self._quietly, args=(run,), name="index-warm-up", daemon=True)
        thread.start()
        return thread

    @staticmethod
    def _quietly(fn: Callable[[], None]) -> None:
        with contextlib.suppress(Exception):  # a real use raises it again, to a caller that can report it
            fn()

    # -- vectors: load, reconcile, save, restructure -----------------------------------------------

    def _load_vectors_file(self) -> VectorIndex | None:
        path = self.folder / _VECTORS_FILE
        try:
            raw = np.fromfile(path, dtype=np.uint8)
        except FileNotFoundError:
            return None
        try:
            if raw[: len(_MAGIC)].tobytes() != _MAGIC:
                raise ValueError("not a vectors file")
            start = len(_MAGIC) + 4
            size = int.from_bytes(raw[len(_MAGIC) : start].tobytes(), "little")
            header = json.loads(raw[start : start + size].tobytes())
            if header["index_id"] != self._store.index_id or header["dim"] != self.embedder.dim:
                raise ValueError("vectors of another index")
            return VectorIndex.from_bytes(raw[start + size :], self.embedder.dim, **self._vector_params())
        except Exception:  # an unusable cache: rebuilt from SQLite by the reconcile that follows
            return None

    def _vector_params(self) -> dict[str, Any]:
        """VectorIndex's keyword arguments from the settings (use_gpu keeps its default: the GPU if any)."""
        s = self.settings
        return {
            "hnsw_threshold": s.hnsw_threshold,
            "hnsw_m": s.hnsw_m,
            "ef_construction": s.hnsw_ef_construction,
            "ef_search": s.hnsw_ef_search,
        }

    def _ensure_vectors_locked(self) -> VectorIndex:
        if self._closed:
            raise RuntimeError("the index is closed")
        if self._vectors is None:
            self._vectors = self._load_vectors_file() or VectorIndex(
                self.embedder.dim, **self._vector_params()
            )
            self._synced = -1
        if self._store.generation() != self._synced:
            with self._store.read():
                self._reconcile_locked()
        return self._vectors

    def _reconcile_locked(self) -> None:
        """Make FAISS hold exactly SQLite's chunk ids. Call inside a transaction of self._store."""
        vectors = self._vectors
        assert vectors is not None
        generation = self._store.generation()
        live = self._store.all_chunk_ids()
        have = vectors.all_ids()
        missing = np.setdiff1d(live, have)
        orphans = np.setdiff1d(have, live)
        if len(missing):
            ids, matrix = self._store.vectors(missing, self.embedder.dim)
            vectors.add(ids, matrix)
        if vectors.kind == FLAT:
            vectors.remove(orphans)
            vectors.set_tombstones(np.zeros(0, dtype=np.int64))
        else:
            vectors.set_tombstones(orphans)
        if len(missing) or (len(orphans) and vectors.kind == FLAT):
            self._dirty = True
        self._synced = generation

    def _save_locked(self) -> None:
        if self._vectors is None or not self._dirty:
            return
        data = self._vectors.to_bytes()
        header = json.dumps(
            {
                "index_id": self._store.index_id,
                "dim": self.embedder.dim,
                "model": self.embedder.model_id,
                "generation": self._synced,
                "kind": self._vectors.kind,
                "saved_at": utc_iso(_now()),
            }
        ).encode()
        target = self.folder / _VECTORS_FILE
        tmp = self.folder / f"{_VECTORS_FILE}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "wb", opener=_private) as f:
                f.write(_MAGIC + len(header).to_bytes(4, "little") + header)
                data.tofile(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._dirty = False
        self._last_save = time.monotonic()

    def save(self) -> None:
        """Restructure if due (flat <-> HNSW, compaction) and write the FAISS file (a checkpoint)."""
        with self._lock:
            self._ensure_vectors_locked()
        self._maybe_restructure()
        with self._lock:
            self._save_locked()

    def _maybe_restructure(self) -> None:
        """Switch flat <-> HNSW or compact HNSW tombstones when due; built outside the lock."""
        with self._lock:
            vectors = self._vectors
            if vectors is None or not vectors.needs_restructure(self.settings.compact_fraction):
                return
            ids, matrix = vectors.live_vectors()
        rebuilt = vectors.rebuilt(ids, matrix, vectors.target_kind(len(ids)))
        with self._lock:
            if self._closed:
                return
            self._vectors = rebuilt
            with self._store.read():
                self._reconcile_locked()  # commits made while it was being built
            self._dirty = True

    def _commit(
        self,
        items: Sequence[_Pending],
        *,
        touches: Sequence[tuple[int, int, int]] = (),
        delete_ids: Sequence[int] = (),
        clear_skipped: Sequence[str] = (),
    ) -> tuple[list[int], int, int]:
        """Write documents in one transaction, then apply the change to FAISS.

        Returns (document ids, chunks added, chunks removed).
        """
        with self._lock:
            vectors = self._ensure_vectors_locked()
            removed_ids: list[int] = []
            added_ids: list[int] = []
            added_vectors: list[np.ndarray] = []
            doc_ids: list[int] = []
            with self._store.write():
                if self._store.generation() != self._synced:
                    self._reconcile_locked()  # another process wrote since we last looked
                for document_id in delete_ids:
                    removed_ids += self._store.delete_document(document_id)
                for item in items:
                    rows = [(c.start, c.end, c.page, c.text) for c in item.chunks]
                    document_id, removed, added = self._store.upsert_document(
                        item.doc, rows, item.vectors if item.embed else None
                    )
                    doc_ids.append(document_id)
                    removed_ids += removed
                    added_ids += added
                    if added:
                        assert item.vectors is not None
                        added_vectors.append(item.vectors)
                for document_id, size, mtime_ns in touches:
                    self._store.touch_document(document_id, size, mtime_ns)
                self._store.clear_skipped(clear_skipped)
                changed = bool(removed_ids or added_ids or delete_ids)
                generation = self._store.bump_generation() if changed else self._synced
            # Committed. FAISS follows; if that fails the next use reconciles from SQLite.
            try:
                vectors.remove(removed_ids)
                if added_ids:
                    ids = np.asarray(added_ids, dtype=np.int64)
                    matrix = np.concatenate(added_vectors)
                    keep = ~np.isin(ids, removed_ids)  # one source twice in a batch: the last one wins
                    vectors.add(ids[keep], matrix[keep])
                self._synced = generation
            except BaseException:
                self._synced = -1
                raise
            self._dirty = self._dirty or changed
            return doc_ids, len(added_ids), len(removed_ids)

    def _embed(self, items: Sequence[_Pending]) -> None:
        texts = [c.text for item in items if item.embed for c in item.chunks]
        matrix = self.embedder.embed(texts) if texts else np.zeros((0, self.embedder.dim), np.float32)
        offset = 0
        for item in items:
            if item.embed:
                item.vectors = matrix[offset : offset + len(item.chunks)]
                offset += len(item.chunks)

    def _maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last_save >= self.settings.checkpoint_seconds:
            self.save()

    # -- documents given as text -------------------------------------------------------------------

    def add_document(
        self,
        source: str,
        text: str,
        *,
        title: str = "",
        date: datetime | None = None,
        kind: str = "text",
        metadata: dict[str, str] | None = None,
    ) -> DocumentInfo:
        """Index (or replace) a document given as text; `source` is the caller's stable reference."""
        item = DocumentInput(
            source=source, text=text, title=title, date=date, kind=kind, metadata=metadata or {}
        )
        return self.add_documents([item])[0]

    def add_documents(self, items: Iterable[DocumentInput]) -> list[DocumentInfo]:
        """Index documents given as text, embedding them in batches. Unchanged text is not re-embedded."""
        pending: list[_Pending] = []
        for item in items:
            pending.append(self._prepare_input(item))
        infos: list[DocumentInfo] = []
        batch: list[_Pending] = []
        size = 0
        for position, prepared in enumerate(pending):
            batch.append(prepared)
            size += len(prepared.chunks) if prepared.embed else 0
            if size >= self.settings.batch_chunks or position == len(pending) - 1:
                self._embed(batch)
                doc_ids, _, _ = self._commit(batch)
                infos += [self._info(i, changed=b.embed) for i, b in zip(doc_ids, batch, strict=True)]
                batch, size = [], 0
                self._maybe_checkpoint()
        return infos

    def _prepare_input(self, item: DocumentInput) -> _Pending:
        if (item.text is None) == (item.pages is None):
            raise ValueError("give exactly one of text and pages")
        segments: list[tuple[int | None, str]] = (
            [(None, item.text or "")] if item.pages is None else [(p.page, p.text) for p in item.pages]
        )
        digest = hashlib.sha256(msgspec.json.encode(segments)).hexdigest()
        with self._lock:
            old = self._store.document(source=item.source)
        if old is not None and old["path"] is not None:
            raise ValueError(f"{item.source!r} is a file in the index; index_paths maintains it")
        chunks = chunk_segments(segments, self.settings.chunk_chars, self.settings.chunk_overlap)
        doc = {
            "source": item.source,
            "path": None,
            "kind": item.kind,
            "title": item.title,
            "date": utc_iso(item.date),
            "content_hash": digest,
            "size": None,
            "mtime_ns": None,
            "chunk_count": len(chunks),
            "indexed_at": utc_iso(_now()),
            "extra": json.dumps(item.metadata, sort_keys=True),
        }
        same = old is not None and old["content_hash"] == digest
        if old is not None and same:
            doc["indexed_at"] = old["indexed_at"]
        return _Pending(doc, chunks, embed=not same)

    def remove_document(self, document: str | int) -> bool:
        """Remove a document by source reference (or file path) or by id; False if it was not there."""
        with self._lock:
            row = self._store.document(
                **({"id": document} if isinstance(document, int) else {"source": document})
            )
            if row is None:
                return False
            self._commit([], delete_ids=[int(row["id"])])
            return True

    def find_documents(
        self,
        *,
        mentioning: str | None = None,
        dated_before: datetime | None = None,
        source_prefix: str | None = None,
    ) -> list[str]:
        """Sources of the documents matching every criterion given (retention and erasure use it): text
        that mentions `mentioning` (case-insensitive: a chunk, the title or the metadata, e.g. a sender),
        a date (or, undated, the time it was indexed) before `dated_before`, a source prefix ("graph:")."""
        with self._lock, self._store.read():
            found = self._store.find_documents(
                mentioning=mentioning, dated_before=utc_iso(dated_before), source_prefix=source_prefix
            )
        return [source for _, source in found]

    def remove_documents(self, documents: Sequence[str]) -> int:
        """Remove these documents (by source reference or path) in one transaction; how many were there.

        The index's file is written with SQLite's secure_delete, and its write-ahead log is checkpointed
        and truncated after, so the removed text does not linger in free pages or in the log."""
        with self._lock:
            rows = [self._store.document(source=document) for document in documents]
            ids = [int(row["id"]) for row in rows if row is not None]
            if not ids:
                return 0
            self._commit([], delete_ids=ids)
            self._store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return len(ids)

    def document(self, document: str | int) -> DocumentInfo | None:
        with self._lock:
            row = self._store.document(
                **({"id": document} if isinstance(document, int) else {"source": document})
            )
        return None if row is None else self._info_from_row(row)

    def _info(self, document_id: int, *, changed: bool) -> DocumentInfo:
        with self._lock:
            row = self._store.document(id=document_id)
        assert row is not None
        return self._info_from_row(row, changed=changed)

    @staticmethod
    def _info_from_row(row: dict[str, Any], *, changed: bool = True) -> DocumentInfo:
        return DocumentInfo(
            id=row["id"],
            source=row["source"],
            path=row["path"],
            kind=row["kind"],
            title=row["title"],
            date=_parse_date(row["date"]),
            content_hash=row["content_hash"],
            chunks=row["chunk_count"],
            indexed_at=_parse_date(row["indexed_at"]) or _now(),
            changed=changed,
        )

    # -- files -------------------------------------------------------------------------------------

    def roots(self) -> dict[str, list[str]]:
        """Folders and files indexed so far, with the exclude patterns they were indexed with."""
        with self._lock:
            return self._store.roots()

    def index_paths(
        self,
        paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        exclude: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> IndexSummary:
        """Bring the index up to date with these files and folders (default: every root indexed so far).

        New and changed files are indexed, unchanged ones skipped cheaply, files that disappeared from
        these folders (or are now excluded) removed; unreadable files are skipped with a reason.
        `exclude` adds glob patterns to `settings.exclude` and is remembered with each root.
        """
        with self._run_lock:
            run = _Run(IndexSummary(), progress)
            try:
                self._index_run(run, paths, exclude, cancel)
            finally:
                run.summary.seconds = round(time.monotonic() - run.started, 3)
                last = self._progress or IndexProgress(phase="done")
                self._report(
                    run,
                    IndexProgress(
                        phase="done",
                        files_total=last.files_total,
                        files_done=last.files_done,
                        chunks_done=run.summary.chunks_added,
                    ),
                )
                self._progress = None
            with self._lock, self._store.write():
                self._store.set_meta(last_run=msgspec.json.encode(run.summary).decode())
            return run.summary

    def _report(self, run: _Run, progress: IndexProgress) -> None:
        self._progress = progress
        if run.progress is not None:
            run.progress(progress)

    def _index_run(
        self,
        run: _Run,
        paths: Sequence[str | os.PathLike[str]] | None,
        exclude: Sequence[str],
        cancel: threading.Event | None,
    ) -> None:
        summary = run.summary
        self._report(run, IndexProgress(phase="scanning"))
        if paths:
            jobs = [(root, list(exclude)) for root in normalize_roots(paths)]
        else:
            jobs = [(Path(p), [*patterns, *exclude]) for p, patterns in self.roots().items()]
        files, gone, stale_skips = self._scan(run, jobs)
        with self._lock:
            if gone or stale_skips:
                _, _, removed = self._commit([], delete_ids=gone, clear_skipped=stale_skips)
                summary.removed += len(gone)
                summary.chunks_removed += removed
            with self._store.write():
                for root, patterns in jobs:
                    if not root.exists():  # gone (or a typo): its documents just left the index
                        self._store.forget_root(str(root))
                    elif paths:
                        self._store.remember_root(str(root), patterns)
        total = len(files)
        for done, path in enumerate(files, start=1):
            if cancel is not None and cancel.is_set():
                summary.cancelled = True
                break
            self._index_file(run, path)
            if run.batch_chunks >= self.settings.batch_chunks:
                self._flush(run)
                self._maybe_checkpoint()
            self._report(
                run,
                IndexProgress(
                    phase="indexing",
                    files_total=total,
                    files_done=done,
                    chunks_done=summary.chunks_added + run.batch_chunks,
                    current=str(path),
                ),
            )
        self._flush(run)
        self._report(
            run,
            IndexProgress(
                phase="saving", files_total=total, files_done=total, chunks_done=summary.chunks_added
            ),
        )
        self.save()

    def _scan(self, run: _Run, jobs: list[tuple[Path, list[str]]]) -> tuple[list[Path], list[int], list[str]]:
        """(files to look at, ids of documents no longer there, skip records no longer relevant)."""
        files: list[Path] = []
        gone: list[int] = []
        stale_skips: list[str] = []
        for root, patterns in jobs:
            rules = ExcludeRules([*self.settings.exclude, *patterns], always=[self.folder])
            seen: set[str] = set()
            for path, supported in walk(root, rules):
                if supported:
                    files.append(path)
                    seen.add(str(path))
                elif path == root:
                    detail = f"no loader for {path.suffix or 'files without extension'}"
                    run.summary.skipped.append(
                        SkippedFile(path=str(path), reason=SkipReason.UNSUPPORTED, detail=detail)
                    )
                else:
                    run.summary.ignored += 1
            with self._lock:
                under = self._store.documents_under(str(root))
                gone += [doc_id for doc_id, p in under if p not in seen]
                stale_skips += [p for p in self._store.skipped_under(str(root)) if p not in seen]
            if not root.exists() and not under:
                run.summary.skipped.append(
                    SkippedFile(path=str(root), reason=SkipReason.NOT_FOUND, detail="no such file or folder")
                )
        return files, gone, stale_skips

    def _flush(self, run: _Run) -> None:
        if not run.batch and not run.touches:
            return
        self._embed(run.batch)
        _, added, removed = self._commit(
            run.batch, touches=run.touches, clear_skipped=[item.doc["source"] for item in run.batch]
        )
        run.summary.indexed += len(run.batch)
        run.summary.chunks_added += added
        run.summary.chunks_removed += removed
        run.batch, run.batch_chunks, run.touches = [], 0, []

    def _skip(
        self,
        run: _Run,
        path: Path,
        reason: SkipReason,
        detail: str,
        stat: os.stat_result | None,
        existing: dict[str, Any] | None,
    ) -> None:
        run.summary.skipped.append(SkippedFile(path=str(path), reason=reason, detail=detail))
        with self._lock:
            if existing is not None:  # it was indexed, and what it holds now cannot be: drop the old text
                _, _, removed = self._commit([], delete_ids=[int(existing["id"])])
                run.summary.removed += 1
                run.summary.chunks_removed += removed
            with self._store.write():
                self._store.record_skipped(
                    str(path),
                    reason,
                    detail,
                    stat.st_size if stat else None,
                    stat.st_mtime_ns if stat else None,
                )

    def _index_file(self, run: _Run, path: Path) -> None:
        key = str(path)
        with self._lock:
            existing = self._store.document(source=key)
            remembered = self._store.skipped(key)
        try:
            stat = path.stat()
        except OSError as exc:
            self._skip(run, path, SkipReason.UNREADABLE, exc.strerror or str(exc), None, existing)
            return
        if existing is not None and (existing["size"], existing["mtime_ns"]) == (
            stat.st_size,
            stat.st_mtime_ns,
        ):
            run.summary.unchanged += 1
            return
        if (
            existing is None
            and remembered
            and (remembered["size"], remembered["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
        ):
            run.summary.skipped.append(
                SkippedFile(path=key, reason=SkipReason(remembered["reason"]), detail=remembered["detail"])
            )
            return
        if stat.st_size == 0:
            self._skip(run, path, SkipReason.EMPTY, "0 bytes", stat, existing)
            return
        if stat.st_size > self.settings.max_file_bytes:
            self._skip(run, path, SkipReason.TOO_LARGE, f"{stat.st_size} bytes", stat, existing)
            return
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._skip(run, path, SkipReason.UNREADABLE, exc.strerror or str(exc), stat, existing)
            return
        digest = hashlib.sha256(data).hexdigest()
        if existing is not None and existing["content_hash"] == digest:
            run.touches.append((int(existing["id"]), stat.st_size, stat.st_mtime_ns))
            run.summary.unchanged += 1
            return
        try:
            loaded = load_bytes(data, path.suffix)
        except SkipFile as skip:
            self._skip(run, path, skip.reason, skip.detail, stat, existing)
            return
        chunks = chunk_segments(loaded.segments, self.settings.chunk_chars, self.settings.chunk_overlap)
        date = loaded.date or datetime.fromtimestamp(stat.st_mtime, UTC)
        doc = {
            "source": key,
            "path": key,
            "kind": loaded.kind,
            "title": loaded.title or path.stem,
            "date": utc_iso(date),
            "content_hash": digest,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "chunk_count": len(chunks),
            "indexed_at": utc_iso(_now()),
            "extra": json.dumps(loaded.extra, sort_keys=True),
        }
        run.batch.append(_Pending(doc, chunks))
        run.batch_chunks += len(chunks)

    # -- search ------------------------------------------------------------------------------------

    def search(
        self, query: str, k: int = 5, scope: Scope | None = None, min_score: float | None = None
    ) -> list[Hit]:
        """The `k` chunks most similar to `query`, best first, optionally within `scope`."""
        if not query.strip() or k <= 0:
            return []
        vector = self.embedder.embed([query])[0]  # outside the lock: this is the slow part
        return self.search_vector(vector, k, scope, min_score)

    def search_vector(
        self, vector: np.ndarray, k: int = 5, scope: Scope | None = None, min_score: float | None = None
    ) -> list[Hit]:
        vector = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            vectors = self._ensure_vectors_locked()
            allowed = None if scope is None or _scope_is_empty(scope) else self._store.scope_chunk_ids(scope)
            if allowed is not None and not len(allowed):
                return []
            few = allowed is not None and len(allowed) <= max(
                self.settings.exact_scope_limit, vectors.live // 20
            )
            if allowed is not None and vectors.kind == HNSW and few:
                # A filter that leaves few candidates starves the HNSW graph walk: scan them exactly.
                found_scores, found_ids = vectors.exact_among(vector, k, allowed)
            else:
                score_rows, id_rows = vectors.search(vector[None, :], k, allowed)
                found_scores, found_ids = score_rows[0], id_rows[0]
            keep = found_ids >= 0
            found_scores, found_ids = found_scores[keep], found_ids[keep]
            rows = self._store.hit_rows([int(i) for i in found_ids])
        hits: list[Hit] = []
        for chunk_id, score in zip(found_ids.tolist(), found_scores.tolist(), strict=True):
            row = rows.get(chunk_id)
            if row is None or (min_score is not None and score < min_score):
                continue
            hits.append(
                Hit(
                    chunk_id=chunk_id,
                    document_id=row["document_id"],
                    source=row["source"],
                    path=row["path"],
                    title=row["title"],
                    page=row["page"],
                    start=row["start"],
                    end=row["end"],
                    snippet=_snippet(row["text"]),
                    score=round(float(score), 6),
                    date=_parse_date(row["date"]),
                    text=row["text"],
                )
            )
        return hits

    # -- status and self-check ---------------------------------------------------------------------

    def status(self) -> IndexStatus:
        with self._lock:
            documents, chunks = self._store.counts()
            meta = self._store.meta()
            skipped = self._store.all_skipped()
            roots = list(self._store.roots())
            vectors = self._vectors
            return IndexStatus(
                folder=str(self.folder),
                model=self.embedder.model_id,
                documents=documents,
                chunks=chunks,
                vectors=vectors.ntotal if vectors else None,
                tombstones=vectors.tombstones if vectors else None,
                index_kind=vectors.kind if vectors else None,
                embedder_ready=self.embedder.is_ready,
                roots=roots,
                skipped=[SkippedFile(path=p, reason=SkipReason(r), detail=d) for p, r, d in skipped],
                indexing=self._progress,
                last_run=msgspec.json.decode(meta["last_run"], type=IndexSummary)
                if "last_run" in meta
                else None,
            )

    def verify(self) -> list[str]:
        """Problems found comparing FAISS with SQLite, after the reconcile an open does; [] is healthy."""
        problems: list[str] = []
        with self._lock:
            vectors = self._ensure_vectors_locked()
            with self._store.read():
                live = self._store.all_chunk_ids()
                have = vectors.all_ids()
                conn = self._store.conn
                bad_counts = conn.execute(
                    "SELECT d.id, d.chunk_count, count(c.id) FROM documents d LEFT JOIN chunks c "
                    "ON c.document_id = d.id GROUP BY d.id HAVING d.chunk_count != count(c.id)"
                ).fetchall()
                orphan_chunks = conn.execute(
                    "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
                ).fetchone()[0]
                sample = live[:: max(1, len(live) // 200)]
                sample_ids, stored = self._store.vectors(sample, self.embedder.dim)
            if len(np.unique(have)) != len(have):
                problems.append(f"{len(have) - len(np.unique(have))} duplicate ids in FAISS")
            missing = np.setdiff1d(live, have)
            if len(missing):
                problems.append(f"{len(missing)} chunks without a vector in FAISS")
            orphans = np.setdiff1d(have, live)
            tombstoned = np.intersect1d(orphans, vectors._dead)
            if len(orphans) != len(tombstoned) or (vectors.kind == FLAT and len(orphans)):
                problems.append(f"{len(orphans) - len(tombstoned)} orphan vectors in FAISS")
            for document_id, recorded, actual in bad_counts:
                problems.append(f"document {document_id} records {recorded} chunks but has {actual}")
            if orphan_chunks:
                problems.append(f"{orphan_chunks} chunks without a document")
            for chunk_id, vector in zip(sample_ids.tolist(), stored, strict=True):
                if not np.allclose(vectors._index.reconstruct(chunk_id), vector, atol=1e-6):
                    problems.append(f"chunk {chunk_id}: FAISS vector differs from the stored one")
                    break
        return problems
