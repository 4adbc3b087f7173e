"""How the stand-in's handlers answer early: raise `Reply` (any status), or `graph_error(...)` for Graph's
error envelope `{"error": {"code", "message", "innerError"}}`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["Reply", "graph_error"]


class Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status,
        {"error": {"code": code, "message": message, "innerError": {"date": datetime.now(UTC).isoformat()}}},
        headers,
    )
