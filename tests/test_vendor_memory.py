"""Vendor memory: a person's correction changes the next answer for the same vendor, through the HTTP API,
and deleting the learnt example undoes that. In-process HTTP with a scripted model and a calibration
written for the test (made-up receipts from tests/data/receipts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_client, parse_sse
from litestar.testing import TestClient

from deskpilot.inference import GenerationRequest, ScriptedBackend, Token
from deskpilot.inference.extraction.calibration import Calibration, CalibrationStore, IsotonicMap
from deskpilot.inference.extraction.evaluate import load_dataset
from deskpilot.server.app import create_app
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

ANA = {"name": "Ana Silva", "address": "ana@example.com"}
RECEIPTS = {
    e.id: e
    for e in load_dataset((Path(__file__).parent / "data/receipts/receipts.jsonl").read_text().splitlines())
}
# What the person wants this shop called and where, which neither the model nor the extractors say.
KEPT = {"vendor": "Orchard Lane Hardware (Westbridge)", "vendorAddress": "14 Orchard Lane, Westbridge 40210"}


def wrong_vendor(request: GenerationRequest) -> list[Token]:
    text = json.dumps({"vendor": "TAX INVOICE", "vendorAddress": None, "total": 1.0, "lineItems": []})
    return [Token(text[i : i + 4], -0.3) for i in range(0, len(text), 4)]


def unsure() -> IsotonicMap:
    return IsotonicMap([0.0], [0.3], 10)


@pytest.fixture
def client(app_home: Path) -> Iterator[TestClient]:
    settings = load_settings(home=app_home, https=False)
    # Every candidate of the extractors or the model is unsure: a remembered value is likelier.
    maps = {f: {s: unsure() for s in ("model", "extractor", "agree", "none")} for f in KEPT}
    calibration = Calibration(
        profile="embedded",
        template="extract_invoice@v2",
        schema="invoice@v1",
        fitted_on="test",
        documents=0,
        maps=maps,
    )
    CalibrationStore(app_home / "calibration", None).save(calibration)
    with app_client(create_app(settings, backend=ScriptedBackend(wrong_vendor))) as c:
        yield c


def extract(client: TestClient, receipt: str) -> dict:
    r = client.post("/v1/extract", json={"text": RECEIPTS[receipt].text, "cache": False})
    result = next(data for name, data in parse_sse(r.text) if name == "result")
    assert isinstance(result, dict) and result["review"] is not None, result
    return result


def test_a_correction_changes_the_next_answer_for_the_vendor_and_deleting_it_undoes_that(
    client: TestClient,
) -> None:
    first = extract(client, "r1")
    assert first["data"]["vendor"] != KEPT["vendor"]
    r = client.post(
        f"/v1/reviews/{first['review']['id']}", json={"decision": "edit", "reviewer": ANA, "fields": KEPT}
    )
    assert r.status_code == 200, r.text
    # The same shop again, another day: the person's correction is the answer now.
    second = extract(client, "r3")
    assert {f: second["data"][f] for f in KEPT} == KEPT
    assert second["fields"]["vendor"].get("source", "model") == "memory"
    # Another shop is not this one.
    other = extract(client, "r2")
    assert other["data"]["vendor"] != KEPT["vendor"]
    # The example is listed, linked to its review and run, with where the vendor's fields sit.
    examples = client.get("/v1/vendors/examples").json()["examples"]
    assert len(examples) == 1 and examples[0]["reviewId"] == first["review"]["id"]
    assert examples[0]["runId"] == first["runId"] and examples[0]["vendor"] == KEPT["vendor"]
    # Forgetting it undoes the change.
    assert client.delete(f"/v1/vendors/examples/{examples[0]['id']}").status_code == 204
    assert client.get("/v1/vendors/examples").json()["examples"] == []
    third = extract(client, "r5")
    assert (
        third["data"]["vendor"] != KEPT["vendor"]
        and third["fields"]["vendor"].get("source", "model") != "memory"
    )
    assert client.delete(f"/v1/vendors/examples/{examples[0]['id']}").status_code == 404


def test_a_rejected_review_teaches_nothing(client: TestClient) -> None:
    first = extract(client, "r1")
    client.post(f"/v1/reviews/{first['review']['id']}", json={"decision": "reject", "reviewer": ANA})
    assert client.get("/v1/vendors/examples").json()["examples"] == []
    assert extract(client, "r3")["fields"]["vendor"].get("source", "model") != "memory"
