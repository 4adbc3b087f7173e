"""Triage over HTTP, in-process, with a scripted model and the hash embedder: described labels from
settings and per request reach the prompt; the zero-shot scores blend with the model's answer; a review
decision becomes an example that changes the next answer for a similar email, and deleting the example
undoes it; retention decides whether an example keeps its text (and so whether it is shown as few-shot)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import app_client
from litestar.testing import TestClient

from deskpilot.indexes import HashEmbedder
from deskpilot.inference import GenerationRequest, ScriptedBackend, Token
from deskpilot.server.app import create_app
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.integration

ANA = {"name": "Ana Silva", "address": "ana@example.com"}
LABELS = [
    {"id": "billing", "name": "Billing", "description": "invoices payments amounts due refunds receipts"},
    {"id": "travel", "name": "Travel", "description": "flights hotels trains trips itineraries journeys"},
    {"id": "facilities", "name": "Facilities", "description": "office rooms desks building keys cleaning"},
]
# Two wordings of one kind of email that no description fits, and one unlike them.
GAS = "Weekly gas storage nomination for the Katy hub: volumes attached, confirm by noon."
GAS_AGAIN = "Weekly gas storage nomination for the Katy hub: revised volumes attached, confirm by noon."
TRIP = "Your flights and hotels for the trip to Oslo: itinerary attached."


class Model:
    """Always writes `label`, unsure (so everything goes to review), and keeps every prompt it saw."""

    def __init__(self) -> None:
        self.label = "billing"
        self.logprob = -1.5
        self.prompts: list[str] = []

    def __call__(self, request: GenerationRequest) -> list[Token]:
        self.prompts.append(request.messages[-1].content)
        return [Token(json.dumps(self.label), self.logprob)]


@pytest.fixture
def model() -> Model:
    return Model()


def make_client(app_home: Path, model: Model, **settings: Any) -> TestClient:
    app = create_app(
        load_settings(home=app_home, https=False, **settings),
        backend=ScriptedBackend(model),
        embedder=HashEmbedder(),
    )
    return app_client(app)


@pytest.fixture
def client(app_home: Path, model: Model) -> Iterator[TestClient]:
    with make_client(app_home, model, retain_inputs=True) as c:
        yield c


def classify(http: TestClient, text: str, labels: object = LABELS) -> dict[str, Any]:
    r = http.post("/v1/classify", json={"text": text, "labels": labels})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def correct(http: TestClient, answer: dict[str, Any], label: str) -> None:
    review = answer["review"]["id"]
    body: dict[str, Any] = {"decision": "accept", "reviewer": ANA}
    if label != answer["label"]:
        body = {"decision": "edit", "reviewer": ANA, "fields": {"label": label}}
    assert http.post(f"/v1/reviews/{review}", json=body).status_code == 200


def test_described_labels_per_request_reach_the_prompt_and_the_zero_shot_scores(
    client: TestClient, model: Model
) -> None:
    answer = classify(client, TRIP)
    prompt = model.prompts[-1]
    assert "- billing: invoices payments" in prompt and "- travel: flights hotels" in prompt
    # The model said billing, unsure; the descriptions say travel, and the blend follows them.
    assert answer["modelLabel"] == "billing" and answer["label"] == "travel" and answer["name"] == "Travel"
    assert set(answer["scores"]) == {"billing", "travel", "facilities"}
    run = client.get(f"/v1/runs/{answer['runId']}").json()
    assert run["validation"]["blend"]["parts"]["zeroShot"]["travel"] > 0.5
    assert run["validation"]["model"] == {"label": "billing", "confidence": pytest.approx(0.2231, abs=1e-3)}
    # Bare ids and described labels mix; a repeated id is refused.
    mixed = classify(client, TRIP, ["fyi", LABELS[1]])
    assert mixed["labels"] == ["fyi", "travel"]
    r = client.post("/v1/classify", json={"text": "x", "labels": [LABELS[0], "billing"]})
    assert r.status_code == 400 and "distinct" in r.text


def test_described_labels_in_settings(app_home: Path, model: Model) -> None:
    home_config = app_home / "config.toml"
    app_home.mkdir(parents=True, exist_ok=True)
    home_config.write_text(
        'triage_labels = ["invoice", {id = "travel", name = "Travel", description = "flights and hotels"}]\n'
    )
    with make_client(app_home, model) as http:
        answer = http.post("/v1/classify", json={"text": TRIP}).json()
    assert answer["labels"] == ["invoice", "travel"] and answer["label"] == "travel"
    assert "- travel: flights and hotels" in model.prompts[-1] and "- invoice: a bill" in model.prompts[-1]


def test_a_correction_changes_the_next_answer_for_a_similar_email_and_deleting_it_undoes_that(
    client: TestClient, model: Model
) -> None:
    before = classify(client, GAS)
    assert before["label"] != "facilities" and before["nearest"] == []
    correct(client, before, "facilities")
    examples = client.get("/v1/triage/examples").json()["examples"]
    assert len(examples) == 1 and examples[0]["label"] == "facilities"
    assert examples[0]["runId"] == before["runId"] and examples[0]["text"] == GAS
    after = classify(client, GAS_AGAIN)
    assert after["label"] == "facilities" and after["nearest"][0]["exampleId"] == examples[0]["id"]
    assert "category: facilities" in model.prompts[-1] and GAS in model.prompts[-1]  # few-shot
    # An unlike email is not pulled along.
    assert classify(client, TRIP)["label"] == "travel"
    assert client.delete(f"/v1/triage/examples/{examples[0]['id']}").status_code == 204
    assert client.delete(f"/v1/triage/examples/{examples[0]['id']}").status_code == 404
    forgotten = classify(client, GAS_AGAIN)
    assert forgotten["label"] == before["label"] and forgotten["nearest"] == []
    assert "category: facilities" not in model.prompts[-1]


def test_a_rejected_review_teaches_nothing(client: TestClient) -> None:
    answer = classify(client, GAS)
    r = client.post(f"/v1/reviews/{answer['review']['id']}", json={"decision": "reject", "reviewer": ANA})
    assert r.status_code == 200
    assert client.get("/v1/triage/examples").json()["examples"] == []


def test_without_retention_an_example_keeps_no_text_and_is_never_shown_to_the_model(
    app_home: Path, model: Model
) -> None:
    with make_client(app_home, model, retain_inputs=False) as http:
        correct(http, classify(http, GAS), "facilities")
        (example,) = http.get("/v1/triage/examples").json()["examples"]
        assert example["text"] is None and example["digest"].startswith("sha256:")
        after = classify(http, GAS_AGAIN)
    assert after["label"] == "facilities"  # its vector still votes
    assert GAS not in model.prompts[-1] and "category:" not in model.prompts[-1]
