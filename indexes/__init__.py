"""Retrieval over the user's documents: loaders, chunking, embeddings, FAISS, SQLite metadata.

    from deskpilot.indexes import DocumentIndex, Scope, index_folder

    index = DocumentIndex(index_folder(settings.home))
    index.warm_up()                          # background: loads FAISS and the embedding model
    summary = index.index_paths(["~/Documents"], exclude=["*/Private/*"])
    index.add_document("graph:message:AAMk…", text, title=subject, date=sent)
    loaded = load_bytes(data, ".docx")      # bytes from elsewhere (a OneDrive download) -> text segments
    hits = index.search("when does the warranty end?", k=5, scope=Scope(folders=["~/Documents/Legal"]))

Importing this package does not import torch, sentence-transformers or FAISS; see `index.py` for the
design of incremental indexing, deletes and crash consistency.
"""

from deskpilot.indexes._loaders import SUPPORTED_SUFFIXES, LoadedDocument, SkipFile, html_to_text, load_bytes
from deskpilot.indexes._types import (
    DEFAULT_EXCLUDES,
    DocumentInfo,
    DocumentInput,
    Hit,
    IndexProgress,
    IndexSettings,
    IndexStatus,
    IndexSummary,
    PageText,
    Scope,
    SkippedFile,
    SkipReason,
)
from deskpilot.indexes.embedding import (
    Embedder,
    EmbedderError,
    HashEmbedder,
    SentenceTransformerEmbedder,
    bundled_model_path,
)
from deskpilot.indexes.index import DocumentIndex, ProgressCallback, index_folder

__all__ = [
    "DEFAULT_EXCLUDES",
    "SUPPORTED_SUFFIXES",
    "DocumentIndex",
    "DocumentInfo",
    "DocumentInput",
    "Embedder",
    "EmbedderError",
    "HashEmbedder",
    "Hit",
    "IndexProgress",
    "IndexSettings",
    "IndexStatus",
    "IndexSummary",
    "LoadedDocument",
    "PageText",
    "ProgressCallback",
    "Scope",
    "SentenceTransformerEmbedder",
    "SkipFile",
    "SkipReason",
    "SkippedFile",
    "bundled_model_path",
    "html_to_text",
    "index_folder",
    "load_bytes",
]
