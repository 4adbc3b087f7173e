"""The index's public value types: msgspec Structs, camelCase on the wire, snake_case in Python."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import msgspec

__all__ = [
    "DEFAULT_EXCLUDES",
    "DocumentInfo",
    "DocumentInput",
    "Hit",
    "IndexProgress",
    "IndexSettings",
    "IndexStatus",
    "IndexSummary",
    "PageText",
    "Scope",
    "SkipReason",
    "SkippedFile",
]

# Never worth indexing: hidden files and folders (.git, .venv), Office lock files (~$report.docx),
# temporary files and dependency folders. Patterns without "/" match any path component below the
# indexed folder; patterns with "/" match the whole path.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".*",
    "~$*",
    "*.tmp",
    "*.temp",
    "__pycache__",
    "node_modules",
    "Thumbs.db",
    "desktop.ini",
)


class _Wire(msgspec.Struct, kw_only=True, rename="camel"):
    pass


class SkipReason(enum.StrEnum):
    """Why a file was not indexed. Stable strings: the task pane shows them."""

    EMPTY = "empty"  # 0 bytes
    BINARY = "binary"  # a text-typed file (.txt, .md, .html) that holds binary data
    CORRUPT = "corrupt"  # the parser could not read it
    ENCRYPTED = "encrypted"  # password-protected
    NO_TEXT = "no_text"  # readable, but there is no text in it (a scanned PDF, an empty document)
    TOO_LARGE = "too_large"  # larger than IndexSettings.max_file_bytes
    UNREADABLE = "unreadable"  # the operating system refused to read it (permissions, locks)
    UNSUPPORTED = "unsupported"  # a file named explicitly whose type has no loader
    NOT_FOUND = "not_found"  # a file or folder named explicitly that does not exist


class IndexSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Tuning knobs. The defaults suit all-MiniLM-L6-v2 (256 word pieces) on a laptop CPU."""

    # Chunks are at most this many characters, cut at paragraph, line, sentence or word boundaries and
    # overlapping by `chunk_overlap`. 600 characters are ~130 word pieces of English: the length
    # all-MiniLM-L6-v2 was trained on, and far enough under its 256-piece cut-off that denser text
    # (numbers, other languages) is not silently truncated.
    chunk_chars: int = 600
    chunk_overlap: int = 100
    # Above this many live vectors the exact (flat) index becomes HNSW; below half of it, flat again.
    hnsw_threshold: int = 20_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 256  # recall@10 0.98 at 50k chunks; the graph walk is <1 ms of a ~15 ms query
    # HNSW cannot remove vectors; removed chunks stay as tombstones filtered at search time until they
    # exceed this fraction of the vectors, then the index is rebuilt from the live vectors.
    compact_fraction: float = 0.2
    # A scoped search on an HNSW index whose scope holds at most this many chunks (or under 5% of
    # them) scans those exactly: a selective filter starves the graph walk (recall drops), while a
    # few thousand vectors scan in a few milliseconds.
    exact_scope_limit: int = 5_000
    # Chunks embedded together (sentence-transformers sorts a batch by length, so bigger is better)
    # and committed together; a commit is also the unit that a crash can lose.
    batch_chunks: int = 256
    max_file_bytes: int = 100 * 1024 * 1024
    # The FAISS file is a cache of the vectors in SQLite, saved at most this often during a run.
    checkpoint_seconds: float = 60.0
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES


class Scope(_Wire, forbid_unknown_fields=True):
    """Restricts a search. Every criterion given must hold; a list matches any of its entries."""

    folders: list[str] = []
    # Row ids: positive, and at most what SQLite and JSON clients hold (a larger one was an OverflowError).
    document_ids: list[Annotated[int, msgspec.Meta(ge=1, le=2**53 - 1)]] = []
    sources: list[str] = []
    # Document dates (the email's Date, the document's modified date, else the file's mtime).
    # Naive datetimes are taken as UTC.
    since: datetime | None = None
    until: datetime | None = None


class PageText(_Wire):
    """One page (or one undivided part) of a document given as text; `page` is 1-based or None."""

    text: str
    page: int | None = None


class DocumentInput(_Wire, forbid_unknown_fields=True):
    """A document given as text rather than as a file, e.g. an email synced from Microsoft Graph.

    `source` is the caller's stable reference (e.g. "graph:message:AAMk…"); adding the same source
    again replaces the document, and re-embeds only if its text changed. Give `text`, or `pages`
    when page numbers should appear in citations.
    """

    source: str
    text: str | None = None
    pages: list[PageText] | None = None
    title: str = ""
    date: datetime | None = None
    kind: str = "text"
    metadata: dict[str, str] = {}


class Hit(_Wire):
    chunk_id: int
    document_id: int
    # A file path, or the caller's reference for a document added as text (e.g. "graph:message:AAMk…").
    source: str
    path: str | None
    title: str
    # 1-based page for paged formats (PDF), else None.
    page: int | None
    # Character offsets of the chunk in the document's extracted text (for .txt and .md files that is
    # the file's own text).
    start: int
    end: int
    snippet: str
    # Cosine similarity, higher is better.
    score: float
    date: datetime | None = None
    # The whole chunk, for grounding an answer (the snippet is for display).
    text: str = ""


class SkippedFile(_Wire):
    path: str
    reason: SkipReason
    detail: str = ""


class IndexSummary(_Wire):
    indexed: int = 0  # new or changed documents (re)embedded
    unchanged: int = 0
    removed: int = 0  # documents that left the index: deleted, excluded or now unreadable files
    skipped: list[SkippedFile] = []
    ignored: int = 0  # files in the folders whose type has no loader
    chunks_added: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0
    cancelled: bool = False

    def line(self) -> str:
        """One human line: "indexed 3, unchanged 40, removed 1, skipped 2 (corrupt 1, empty 1)"."""
        reasons: dict[str, int] = {}
        for skipped in self.skipped:
            reasons[skipped.reason] = reasons.get(skipped.reason, 0) + 1
        detail = f" ({', '.join(f'{r} {n}' for r, n in sorted(reasons.items()))})" if reasons else ""
        text = (
            f"indexed {self.indexed}, unchanged {self.unchanged}, removed {self.removed}, "
            f"skipped {len(self.skipped)}{detail}; {self.chunks_added} chunks added, "
            f"{self.chunks_removed} removed in {self.seconds:.1f} s"
        )
        return text + (" (cancelled)" if self.cancelled else "")


class IndexProgress(_Wire):
    phase: str  # "scanning", "indexing", "saving", "done"
    files_total: int = 0
    files_done: int = 0
    chunks_done: int = 0
    current: str | None = None


class DocumentInfo(_Wire):
    id: int
    source: str
    path: str | None
    kind: str
    title: str
    date: datetime | None
    content_hash: str
    chunks: int
    indexed_at: datetime
    # True when the last add changed the indexed text (False: same text, nothing re-embedded).
    changed: bool = True


class IndexStatus(_Wire):
    folder: str
    model: str
    documents: int
    chunks: int
    # FAISS state, None until the vectors are loaded (search, indexing or warm_up load them).
    vectors: int | None
    tombstones: int | None
    index_kind: str | None  # "flat" (exact) or "hnsw"
    embedder_ready: bool
    roots: list[str] = []
    skipped: list[SkippedFile] = []
    indexing: IndexProgress | None = None
    last_run: IndexSummary | None = None
