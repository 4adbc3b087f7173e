"""The server's document index, the folders it may read (`roots.py`), and the one indexing run it may
have going, on a worker thread."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio

from deskpilot.indexes import DocumentIndex
from deskpilot.server.documents.roots import IndexRoots

__all__ = ["Indexer"]


class Indexer:
    """The server's index, its roots, and the one indexing run it may have going, on a worker thread."""

    def __init__(self, index: DocumentIndex, roots: IndexRoots) -> None:
        self.index = index
        self.roots = roots
        self._run: asyncio.Task[object] | None = None

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.done()

    def start(self, paths: list[Path], exclude: list[str]) -> None:
        self._run = asyncio.create_task(
            anyio.to_thread.run_sync(lambda: self.index.index_paths(paths, exclude=exclude))
        )

    async def finish(self) -> None:
        """Wait for the indexing run, if one is going (it stops at its next file once the index closes)."""
        if self._run is not None:
            await asyncio.gather(self._run, return_exceptions=True)
