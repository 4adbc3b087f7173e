"""Keep an index current: re-run the (cheap, incremental) index run whenever a watched file changes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from deskpilot.indexes._loaders import SUPPORTED_SUFFIXES
from deskpilot.indexes._paths import ExcludeRules, normalize_roots
from deskpilot.indexes._types import IndexSummary
from deskpilot.indexes.index import DocumentIndex, ProgressCallback

__all__ = ["watch"]


def watch(
    index: DocumentIndex,
    paths: Sequence[str | os.PathLike[str]] | None = None,
    *,
    exclude: Sequence[str] = (),
    stop: threading.Event | None = None,
    on_summary: Callable[[IndexSummary], None] | None = None,
    progress: ProgressCallback | None = None,
    debounce_ms: int = 1500,
    force_polling: bool | None = None,
) -> None:
    """Block, re-indexing `paths` (default: every root indexed so far) after each burst of relevant
    file changes, until `stop` is set.

    A run stats every file but reads only changed ones, so re-running it whole is simpler and as
    safe as tracking single events (a rename is a delete plus a create; editors save via temp files).
    Events for excluded paths, unsupported types and the index's own folder are ignored, so saving
    the index never triggers another run.
    """
    import watchfiles

    if paths:
        jobs = {root: list(exclude) for root in normalize_roots(paths)}
    else:
        jobs = {Path(p): [*patterns, *exclude] for p, patterns in index.roots().items()}
    rules = {
        root: ExcludeRules([*index.settings.exclude, *patterns], always=[index.folder])
        for root, patterns in jobs.items()
    }

    def relevant(_change: watchfiles.Change, raw: str) -> bool:
        path = Path(raw)
        root = next((r for r in rules if path == r or r in path.parents), None)
        if root is None or rules[root].excluded(path, root):
            return False
        # A deleted folder arrives as one event for a path without a suffix: it may hold documents.
        return path.suffix.lower() in SUPPORTED_SUFFIXES or not path.suffix

    watched = [str(r) for r in rules if r.exists()]
    if not watched:
        raise FileNotFoundError("none of the paths to watch exists")
    for _changes in watchfiles.watch(
        *watched,
        watch_filter=relevant,
        stop_event=stop,
        debounce=debounce_ms,
        raise_interrupt=False,
        force_polling=force_polling,
    ):
        summary = index.index_paths(paths or None, exclude=exclude, progress=progress, cancel=stop)
        if on_summary is not None:
            on_summary(summary)
