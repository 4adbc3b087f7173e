"""What every SQLite store here shares: one timestamp format and rows as dicts.

Deskpilot keeps several tables in one SQLite file (lineage, reviews, actions, workflows) and the sync
state in another. Times are stored as text in one format, fixed-width ISO 8601 in UTC with microseconds
and a `Z` (`2026-12-07T06:29:50.123456Z`), so that text order is time order and a `WHERE at >= ?` works in
any SQLite tool. Rows written before this format existed are rewritten by each store's migrations,
except in hash-chained tables, whose rows are never changed: there the old text stays as it was hashed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

__all__ = ["iso_utc", "iso_utc_from_timestamp", "normalize_iso", "rows_as_dicts", "utc_now"]


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
