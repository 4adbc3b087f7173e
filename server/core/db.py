"""What every SQLite store here shares: one timestamp format and rows as dicts.

Deskpilot keeps several tables in one SQLite file (lineage, reviews, actions, workflows) and the sync
state in another. Times are stored as text in one format, fixed-width ISO 8601 in UTC with microseconds
and a `Z` (`2026-12-07T06:29:50.123456Z`), so that text order is time order and a `WHERE at >= ?` works in
any SQLite tool. Rows written before this format existed are rewritten by each store's migrations,
except in hash-chained tables, whose rows are never changed: there the old text stays as it was hashed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_SAFE_INT",
    "create_private",
    "iso_utc",
    "iso_utc_from_timestamp",
    "normalize_iso",
    "rows_as_dicts",
    "utc_now",
]

# The largest integer a request may give where it reaches a query: SQLite stores 64-bit integers (binding a
# larger one raised OverflowError, a 500), and JSON clients such as the task pane (JavaScript) hold integers
# exactly up to 2**53 - 1 only (Number.MAX_SAFE_INTEGER). Say it in the type, `Meta(le=MAX_SAFE_INT)`, and
# the OpenAPI document says it too: exactly, as floats hold it (they cannot hold 2**63 - 1).
MAX_SAFE_INT = 2**53 - 1


def create_private(path: Path) -> None:
    """Create an empty database file readable by its owner only (0600), if there is none, before SQLite
    opens it: SQLite creates a missing file with the umask's mode, and its -wal and -shm files take the
    mode of the database (core/private.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """The one stored time format. Naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_utc_from_timestamp(ts: float) -> str:
    return iso_utc(datetime.fromtimestamp(ts, UTC))


def normalize_iso(text: str | None) -> str | None:
    """An ISO 8601 time in any of the formats older versions wrote, in the one format (for migrations)."""
    if text is None:
        return None
    return iso_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def rows_as_dicts(cursor: sqlite3.Cursor) -> Iterator[dict[str, Any]]:
    columns = [column[0] for column in cursor.description]
    return (dict(zip(columns, values, strict=True)) for values in cursor)
