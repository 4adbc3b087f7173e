"""Triage with the real embedded model and the real MiniLM embedder (model tier): the simulated reviewer
on a small slice of made-up emails, through the HTTP app; and a correction that changes the answer for a
similar email, undone by deleting the example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import app_client

from deskpilot.server.app import create_app
from deskpilot.server.cli import main
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.model

ANA = {"name": "Ana Silva", "address": "ana@example.com"}
LABELS = [
    {"id": "billing", "name": "Billing", "description": "invoices, payments, amounts due and receipts"},
    {"id": "scheduling", "name": "Scheduling", "description": "meetings, calls and times to meet"},
    {"id": "gas_desk", "name": "Gas desk", "description": "the trading desk's own reports"},
]
NOMINATION = "Weekly nomination for the Katy storage hub: injection volumes attached, confirm by noon."
NOMINATION_AGAIN = "Weekly nomination for the Katy storage hub: revised injection volumes attached."
EMAILS = [
    ("billing", "Invoice 2231", "Please find invoice 2231 for 540.00 USD attached, due on 30 June."),
    ("scheduling", "Call on Tuesday?", "Could we set up a call on Tuesday at 10 to go through the plan?"),
    ("gas_desk", "Katy nomination", NOMINATION),
    ("gas_desk", "Katy nomination", NOMINATION_AGAIN),
]


def test_the_simulated_reviewer_runs_triage_through_the_real_model(tmp_path: Path) -> None:
    dataset = tmp_path / "emails.jsonl"
    dataset.write_text(
        "".join(json.dumps({"label": g, "subject": s, "body": b}) + "\n" for g, s, b in EMAILS)
    )
    labels = tmp_path / "labels.toml"
    labels.write_text(
        "".join(
            f'[[labels]]\nid = "{x["id"]}"\nname = "{x["name"]}"\ndescription = "{x["description"]}"\n\n'
            for x in LABELS
        )
    )
    args = [
        "eval",
        "triage",
        str(dataset),
        "--labels",
        str(labels),
        "--simulate-review",
        "--plots",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    answers = results["answers"]
    assert [a["gold"] for a in answers] == [e[0] for e in EMAILS]
    assert all(a["model"] in {x["id"] for x in LABELS} for a in answers)
    # The last email is nearly the one before, which the reviewer labelled: memory answers it.
    assert answers[-1]["nearest"] and answers[-1]["blend"] == "gas_desk"
    assert (tmp_path / "triage-simulated-review.png").is_file()


def test_a_correction_changes_the_answer_for_a_similar_email_with_the_real_model(app_home: Path) -> None:
    settings = load_settings(home=app_home, https=False, retain_inputs=True)
    with app_client(create_app(settings)) as http:

        def classify(text: str) -> dict:  # type: ignore[type-arg]
            r = http.post("/v1/classify", json={"text": text, "labels": LABELS, "cache": False})
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

        baseline = classify(NOMINATION_AGAIN)  # before any correction
        before = classify(NOMINATION)
        review = before["review"] or pytest.fail(f"an unsure answer goes to review: {before}")
        body = {"decision": "edit", "reviewer": ANA, "fields": {"label": "gas_desk"}}
        if before["label"] == "gas_desk":
            body = {"decision": "accept", "reviewer": ANA}
        assert http.post(f"/v1/reviews/{review['id']}", json=body).status_code == 200
        after = classify(NOMINATION_AGAIN)
        assert after["label"] == "gas_desk" and after["nearest"][0]["label"] == "gas_desk"
        assert after["scores"]["gas_desk"] > baseline["scores"]["gas_desk"]
        (example,) = http.get("/v1/triage/examples").json()["examples"]
        assert http.delete(f"/v1/triage/examples/{example['id']}").status_code == 204
        forgotten = classify(NOMINATION_AGAIN)
        assert forgotten["nearest"] == [] and forgotten["label"] == baseline["label"]
        assert forgotten["scores"] == pytest.approx(baseline["scores"], abs=1e-3)
