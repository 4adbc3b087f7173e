"""A scripted session for the dashboard's tests (tests/test_dashboard.py, tests/e2e/test_dashboard_e2e.py):
the real app with the scripted backend, used over HTTP as the pane and a reviewer use it, hour by hour on
the lineage store's clock, so the charts have several buckets of real records.

What it leaves in lineage: summaries on the embedded model and on a priced "remote" one (one answered
from the result cache), invoice extractions (each sent to
review: the scripted total breaks subtotal + tax = total), one review corrected and one approved, drift
checks and a drift alarm, a legal hold and a retention purge event, and a recorded verification.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from conftest import parse_sse

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import GenerationRequest, ScriptedBackend, Token
from deskpilot.server.core.db import iso_utc
from deskpilot.server.lineage import LineageStore
from deskpilot.server.services import Services
from deskpilot.server.settings import load_settings

__all__ = [
    "DRIFT_COLUMNS",
    "MovingClock",
    "Session",
    "model",
    "run_session",
    "session_services",
    "session_start",
    "write_drift_checks",
]

ANA = {"name": "Ana Silva", "address": "ana@example.com"}
INVOICE = {
    "vendor": "Northwind Traders Ltd",
    "invoiceNumber": "NW-2041",
    "currency": "GBP",
    "subtotal": 85.0,
    "tax": 17.0,
    "total": 120.0,  # fails the rule subtotal + tax = total: always reviewed
}
INVOICE_TEXT = "Northwind Traders Ltd\nInvoice No: NW-2041\nSubtotal 85.00\nVAT 17.00\nTotal due GBP 102.00\n"
# The drift monitor's table beside the chain (server/ops/drift.py), column for column.
DRIFT_COLUMNS = (
    "at TEXT, task TEXT, signal TEXT, value REAL, threshold REAL, alarm INTEGER, reference_n INTEGER,"
    " current_n INTEGER"
)


def model(request: GenerationRequest) -> list[Token]:
    """A summary for text tasks, the invoice JSON for extraction."""
    if request.json_schema is not None:
        text = json.dumps(INVOICE)
        return [Token(text[i : i + 4], -0.01) for i in range(0, len(text), 4)]
    return [Token(t) for t in ["Ana", " wants", " the", " numbers", "."]]


# A priced remote profile beside the embedded model, so that cost is not zero everywhere; the scripted
# backend answers for it (no request leaves the machine).
PRICED = {
    "backend": "openai",
    "base_url": "https://models.example.test/v1",
    "model": "big",
    "pii": "allow",
    "price_in_per_1k": 1.0,
    "price_out_per_1k": 2.0,
}


class MovingClock:
    """The lineage store's clock: it stands still until the session moves it on by an hour."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, hours: float = 1.0) -> None:
        self.now += timedelta(hours=hours)


def session_start(hours: int = 6) -> datetime:
    """`hours` before now (5 past the hour): the session ends within the last hours, in every period the
    page offers."""
    return datetime.now(UTC).replace(minute=5, second=0, microsecond=0) - timedelta(hours=hours)


def session_services(home: Path, clock: MovingClock, **settings: Any) -> Services:
    """The app's collaborators for the session: scripted models, lineage on `clock`, a torch-free index."""
    settings_ = load_settings(home=home, https=False, models={"big": PRICED}, **settings)
    return Services(
        settings_,
        backends={
            "embedded": ScriptedBackend(model, first_delay=0.002),
            "big": ScriptedBackend(model, first_delay=0.004, model_id="big"),
        },
        lineage=LineageStore(settings_.db_path, clock=clock),
        index=DocumentIndex(home / "index", embedder=HashEmbedder()),
    )


@dataclass
class Session:
    summaries: int = 0
    cache_hits: int = 0
    extractions: int = 0
    reviewed: list[str] = field(default_factory=list)  # decisions, in order
    drift_rows: int = 0


def _summarize(client: httpx.Client, body: str, *, cache: bool, profile: str | None = None) -> None:
    email = {"from": "ana@example.com", "subject": "Q3", "body": body}
    r = client.post("/v1/summarize", json={"email": email, "cache": cache, "profile": profile})
    assert r.status_code == 200 and "event: done" in r.text, r.text


def _extract(client: httpx.Client) -> str:
    r = client.post("/v1/extract", json={"text": INVOICE_TEXT, "schema": "invoice", "cache": False})
    assert r.status_code == 200 and "event: result" in r.text, r.text
    result = next(data for name, data in parse_sse(r.text) if name == "result")
    assert isinstance(result, dict) and result["review"] is not None, result
    return str(result["review"]["id"])


def write_drift_checks(store: LineageStore, rows: list[tuple[str, str, float, float, bool]]) -> None:
    """Drift checks as the drift monitor leaves them (a table beside the chain): (task, signal, value,
    threshold, alarm) at the store's clock."""
    with store.transaction() as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS drift_checks ({DRIFT_COLUMNS})")
        for task, signal, value, threshold, alarm in rows:
            conn.execute(
                "INSERT INTO drift_checks (at, task, signal, value, threshold, alarm, reference_n, current_n)"
                " VALUES (?, ?, ?, ?, ?, ?, 200, 50)",
                [iso_utc(store.now()), task, signal, value, threshold, int(alarm)],
            )


def run_session(client: httpx.Client, store: LineageStore, clock: MovingClock) -> Session:
    """Four hours of work, an hour apart on the store's clock, then a verification."""
    done = Session()
    reviews: list[str] = []
    for hour in range(4):
        _summarize(client, f"Please send the Q3 numbers by Friday (hour {hour}).", cache=True)
        _summarize(client, f"Summarize the board pack (hour {hour}).", cache=False, profile="big")
        done.summaries += 2
        reviews.append(_extract(client))
        done.extractions += 1
        write_drift_checks(store, [("extract:invoice", "confidence_psi", 0.05 + 0.1 * hour, 0.25, hour >= 3)])
        done.drift_rows += 1
        clock.advance()
    # The same email again: answered from the result cache (a run of its own, with no model time).
    _summarize(client, "Please send the Q3 numbers by Friday (hour 3).", cache=True)
    done.summaries += 1
    done.cache_hits += 1
    corrected = {"decision": "edit", "reviewer": ANA, "fields": {"total": 102}}
    r = client.post(f"/v1/reviews/{reviews[0]}", json=corrected)
    assert r.status_code == 200, r.text
    r = client.post(f"/v1/reviews/{reviews[1]}", json={"decision": "accept", "reviewer": ANA})
    assert r.status_code == 200, r.text
    done.reviewed += ["edit", "accept"]
    store.record_event("drift.alarm", {"task": "extract:invoice", "signal": "confidence_psi", "value": 0.35})
    store.record_event("hold.set", {"matter": "M-17", "scope": "sender-hash:3f2a"}, actor="it-admin")
    store.record_event("retention.purge", {"runs": 0, "before": "2026-01-01"}, actor="deskpilot retention")
    r = client.post("/v1/audit/verify")
    assert r.status_code == 200 and r.json()["ok"], r.text
    return done
