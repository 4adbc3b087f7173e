"""The records the lineage store takes and gives back, and the errors it raises.

`RunStart` and `RunEnd` are what the caller knows at the two ends of a run; `Run` is the stored record,
both halves plus the store's own fields (id, timestamps, chain position). `Run` lists every field
explicitly rather than inheriting, so the stored record reads top to bottom in one place; a test keeps
the three in step.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "FINAL_STATUSES",
    "DuplicateRunError",
    "LineageError",
    "Run",
    "RunEnd",
    "RunStart",
    "UnknownRunError",
    "VerifyReport",
]

# A run that has been opened but not closed reads as "running"; closing it needs one of these.
FINAL_STATUSES = frozenset({"ok", "error", "cancelled", "interrupted"})


class LineageError(Exception):
    """Base class for errors raised by the lineage store."""


class UnknownRunError(LineageError, LookupError):
    """The run id is not an open run (never opened, or already closed)."""


class DuplicateRunError(LineageError, ValueError):
    """A run with this id already exists."""


class RunStart(msgspec.Struct, kw_only=True):
    """What is known when a run begins."""

    task: str  # "summarize", "draft_reply", ...
    template_id: str  # prompt template name, e.g. "summarize_email"
    template_hash: str  # content hash of the template file ("sha256:...")
    model_id: str
    weights_digest: str  # "sha256:..."
    backend: str  # "llama.cpp", "fake", ...
    parameters: dict[str, Any]  # max_tokens, temperature, seed ...
    input_digest: str  # "sha256:..." of the canonical input
    input: Any | None = None  # raw input, only where retention allows it
    client: str = "api"  # outlook | word | cli | api
    source_ref: str | None = None  # e.g. a Graph message id
    parent_id: str | None = None
    retrieved_chunks: list[dict[str, Any]] = []  # [{"id": ..., "score": ...}] for retrieval runs
    # The model profile (settings' `[models.NAME]`) and why the router chose it: {"route": task key,
    # "skipped": [{"profile", "reason"}], "fallback_from": [{"profile", "run_id", "error"}]}.
    profile: str | None = None
    routing: dict[str, Any] | None = None
    # What left the machine for a remote profile: {"policy", "masked": {CATEGORY: count}, "sent_digest"}.
    pii: dict[str, Any] | None = None
    cache_of: str | None = None  # a cached answer: the run whose output it repeats
    trace_id: str | None = None  # the OpenTelemetry trace of the request (32 hex digits), when tracing is on


class RunEnd(msgspec.Struct, kw_only=True):
    """What is known when a run ends."""

    status: str  # one of FINAL_STATUSES
    output: Any | None = None  # text or structured JSON
    validation: dict[str, Any] | None = None
    confidence: float | None = None
    error: str | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    # A remote server's own account of what it ran (OpenAI-compatible `model` and `system_fingerprint`).
    served_model: str | None = None
    system_fingerprint: str | None = None


class Run(msgspec.Struct, kw_only=True):
    """One AI run as stored: a closed, chained record, or an open one (status "running", no chain fields)."""

    id: str
    started_at: str  # ISO 8601 UTC, fixed width: "2025-01-31T09:00:00.000000Z"
    finished_at: str | None = None
    # From RunStart.
    task: str
    template_id: str
    template_hash: str
    model_id: str
    weights_digest: str
    backend: str
    parameters: dict[str, Any]
    input_digest: str
    input: Any | None = None
    client: str = "api"
    source_ref: str | None = None
    parent_id: str | None = None
    retrieved_chunks: list[dict[str, Any]] = []
    profile: str | None = None
    routing: dict[str, Any] | None = None
    pii: dict[str, Any] | None = None
    cache_of: str | None = None
    trace_id: str | None = None
    # From RunEnd ("running" until closed).
    status: str
    output: Any | None = None
    validation: dict[str, Any] | None = None
    confidence: float | None = None
    error: str | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    served_model: str | None = None
    system_fingerprint: str | None = None
    # The chain; None while the run is open. hash_v 2: the hash covers input and output by their digests.
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    hash_v: int | None = None
    # Content columns a retention purge or an erasure replaced by their digest (read back as None).
    purged: list[str] = []


class VerifyReport(msgspec.Struct, kw_only=True):
    """The outcome of re-deriving the chain: `problems` are human-readable lines, empty when `ok`."""

    ok: bool
    checked: int
    head_hash: str | None
    problems: list[str] = []
    # The chain of human review decisions (`reviews.py`), checked the same way.
    reviews_checked: int = 0
    reviews_head_hash: str | None = None
    # The chain of action and workflow events (proposals, decisions, effects, compensations).
    actions_checked: int = 0
    actions_head_hash: str | None = None
    # The chain of governance events (drift alarms, purges, erasures, legal holds, verifications).
    events_checked: int = 0
    events_head_hash: str | None = None
