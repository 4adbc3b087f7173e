"""A scripted session for the dashboard's tests (tests/test_dashboard.py, tests/e2e/test_dashboard_e2e.py):
the real app with scripted models, used over HTTP as the pane and a reviewer use it, hour by hour on the
lineage store's clock, so that the charts have several buckets of real records.

What it leaves in lineage: summaries on the embedded model and on a priced remote profile (one answered
from the result cache); invoice extractions, each sent to review (the scripted total breaks subtotal + tax
= total), of which one is corrected and one approved; drift checks by the drift monitor itself (GET
/v1/drift after each hour), which alarms when the model starts leaving the currency out and clears when it
stops; a legal hold set and released, a retention purge and an erasure (server/ops/retention.py); a
verification (POST /v1/audit/verify).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from conftest import parse_sse
from samples import ANA, INVOICE, INVOICE_TEXT

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import GenerationRequest, ScriptedBackend, Token
from deskpilot.server.lineage import LineageStore
from deskpilot.server.ops.retention import Retention
from deskpilot.server.services import Services
from deskpilot.server.settings import load_settings

__all__ = ["DRIFTING_SIGNAL", "MovingClock", "ScriptedModel", "Session", "run_session", "session_services"]

# The drift monitor compares the first 20 finished runs of a task with its last 20 (its smallest windows).
WINDOW = 20
DRIFTING_SIGNAL = "null_rate:currency"
# A priced remote profile beside the embedded model, so that cost is not zero everywhere; a scripted
# backend answers for it (no request leaves the machine).
PRICED = {
    "backend": "openai",
    "base_url": "https://models.example.test/v1",
    "model": "big",
    "pii": "allow",
    "price_in_per_1k": 1.0,
    "price_out_per_1k": 2.0,
}


class ScriptedModel:
    """A summary for text tasks, the invoice for extraction; without its currency while `drifting`."""

    def __init__(self) -> None:
        self.drifting = False

    def __call__(self, request: GenerationRequest) -> list[Token]:
        if request.json_schema is not None:
            text = json.dumps(INVOICE | {"currency": None} if self.drifting else INVOICE)
            return [Token(text[i : i + 4], -0.01) for i in range(0, len(text), 4)]
        return [Token(t) for t in ["Ana", " wants", " the", " numbers", "."]]


class MovingClock:
    """The lineage store's clock: it stands still until the session moves it on by an hour. By default it
    starts 6 hours before now (5 past the hour), so the session lies within every period the page offers."""

    def __init__(self, start: datetime | None = None) -> None:
        ago = datetime.now(UTC).replace(minute=5, second=0, microsecond=0) - timedelta(hours=6)
        self.start = start or ago
        self.now = self.start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, hours: float = 1.0) -> None:
        self.now += timedelta(hours=hours)


def session_services(home: Path, clock: MovingClock, model: ScriptedModel, **settings: Any) -> Services:
    """The app's collaborators for the session: scripted models, lineage on `clock`, a torch-free index,
    the drift monitor's smallest windows, checked only when the session asks."""
    settings_ = load_settings(
        home=home,
        https=False,
        models={"big": PRICED},
        drift_reference_size=WINDOW,
        drift_window_size=WINDOW,
        drift_check_every=1_000_000,  # only the session's own checks (GET /v1/drift), at the end of each hour
        retention_inputs_days=1,
        **settings,
    )
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


# Per hour: how many extractions with the currency, then how many without.
_HOURS = [(WINDOW, 0), (WINDOW // 2, WINDOW // 2), (0, WINDOW // 2), (WINDOW, 0)]


def run_session(
    client: httpx.Client, store: LineageStore, clock: MovingClock, model: ScriptedModel
) -> Session:
    """Four hours of work on the store's clock; the drift monitor checks at the end of each hour."""
    done = Session()
    reviews: list[str] = []
    for hour, (normal, drifting) in enumerate(_HOURS):
        _summarize(client, f"Please send the Q3 numbers by Friday (hour {hour}).", cache=True)
        _summarize(client, f"Summarize the board pack (hour {hour}).", cache=False, profile="big")
        done.summaries += 2
        for model.drifting, count in ((False, normal), (True, drifting)):
            reviews += [_extract(client) for _ in range(count)]
            done.extractions += count
        model.drifting = False
        assert client.get("/v1/drift").status_code == 200
        clock.advance()
    # The same email again: answered from the result cache (a run of its own, with no model time).
    _summarize(client, f"Please send the Q3 numbers by Friday (hour {len(_HOURS) - 1}).", cache=True)
    done.summaries += 1
    done.cache_hits += 1
    corrected = {"decision": "edit", "reviewer": ANA, "fields": {"total": 102}}
    r = client.post(f"/v1/reviews/{reviews[0]}", json=corrected)
    assert r.status_code == 200, r.text
    r = client.post(f"/v1/reviews/{reviews[1]}", json={"decision": "accept", "reviewer": ANA})
    assert r.status_code == 200, r.text
    done.reviewed += ["edit", "accept"]
    # Governance through the real retention code: a legal hold set and released, then a purge of inputs
    # older than a day (the session's runs are hours old: nothing yet) and a subject's erasure.
    retention = Retention(store, load_settings(home=store.path.parent, https=False, retention_inputs_days=1))
    retention.set_hold("Matter M-17", actor="it-admin")
    retention.release_hold("Matter M-17 closed", actor="it-admin")
    retention.purge(actor="it-admin")
    retention.erase("ana@example.com", actor="dpo")
    r = client.post("/v1/audit/verify")
    assert r.status_code == 200 and r.json()["ok"], r.text
    return done
