"""Time from open to decision per review (the pane sends `openedAt` with the decision), and its median next
to the review rate in GET /v1/metrics/quality. In-process HTTP with a scripted model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import app_client, parse_sse
from litestar.testing import TestClient

from deskpilot.inference import GenerationRequest, ScriptedBackend, Token
from deskpilot.server.app import create_app
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

ANA = {"name": "Ana Silva", "address": "ana@example.com"}
TEXT = "Northwind Traders Ltd\n12 Harbour Road, Bristol BS1 4DJ\nInvoice date: 03/02/2025\nTotal due 102.00\n"


def unsure(request: GenerationRequest) -> list[Token]:
    text = json.dumps({"vendor": "Northwind Traders Ltd", "total": 102.0, "lineItems": []})
    return [Token(text[i : i + 4], -2.0) for i in range(0, len(text), 4)]  # low confidence: to review


@pytest.fixture
def client(app_home: Path) -> Iterator[TestClient]:
    settings = load_settings(home=app_home, https=False)
    with app_client(create_app(settings, backend=ScriptedBackend(unsure))) as c:
        yield c


def queued(client: TestClient) -> str:
    response = client.post("/v1/extract", json={"text": TEXT, "cache": False})
    result = next(data for name, data in parse_sse(response.text) if name == "result")
    assert isinstance(result, dict) and result["review"] is not None
    return str(result["review"]["id"])


def group(client: TestClient) -> dict:
    groups = client.get("/v1/metrics/quality").json()["groups"]
    return next(g for g in groups if g["task"] == "extract:invoice")


def test_the_median_time_to_decision_is_reported_next_to_the_review_rate(client: TestClient) -> None:
    ids = [queued(client) for _ in range(4)]
    assert (
        group(client)["reviewRate"],
        group(client)["reviewsTimed"],
        group(client)["medianReviewSeconds"],
    ) == (1.0, 0, None)
    now = datetime.now(UTC)
    for review_id, seconds in zip(ids[:3], (10, 40, 25), strict=True):
        opened = (now - timedelta(seconds=seconds)).isoformat()
        r = client.post(
            f"/v1/reviews/{review_id}", json={"decision": "accept", "reviewer": ANA, "openedAt": opened}
        )
        assert r.status_code == 200, r.text
    # A decision without `openedAt` counts as reviewed, not as timed.
    client.post(f"/v1/reviews/{ids[3]}", json={"decision": "accept", "reviewer": ANA})
    after = group(client)
    assert after["reviewed"] == 4 and after["reviewsTimed"] == 3
    assert after["medianReviewSeconds"] == pytest.approx(25, abs=2)


def test_opened_at_must_be_a_time(client: TestClient) -> None:
    review_id = queued(client)
    r = client.post(
        f"/v1/reviews/{review_id}", json={"decision": "accept", "reviewer": ANA, "openedAt": "yesterday"}
    )
    assert r.status_code == 400 and "openedAt" in r.text
    # A clock ahead of the server's counts as no time at all, never as negative time.
    ahead = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    r = client.post(
        f"/v1/reviews/{review_id}", json={"decision": "accept", "reviewer": ANA, "openedAt": ahead}
    )
    assert r.status_code == 200 and group(client)["medianReviewSeconds"] == 0
