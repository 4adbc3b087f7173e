"""Triage's pure parts: described labels, the prompt they make, the zero-shot and neighbour classifiers,
and the blend (with the hash embedder: similar wording, similar vectors, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from deskpilot.indexes import HashEmbedder
from deskpilot.inference.extraction import FewShot, TriageLabel, classify_job, triage_labels
from deskpilot.inference.extraction.triage import (
    NEIGHBOUR_MAX_WEIGHT,
    Neighbour,
    blend,
    label_texts,
    model_distribution,
    neighbour_scores,
    neighbour_weight,
    zero_shot_scores,
)
from deskpilot.server.settings import TriageLabelSetting

pytestmark = pytest.mark.unit

EMBED = HashEmbedder()
BILLING = TriageLabel(
    id="billing", name="Billing", description="invoices payments amounts due refunds and receipts"
)
TRAVEL = TriageLabel(
    id="travel", name="Travel", description="flights hotels trains trips and itineraries for journeys"
)


def test_bare_ids_keep_working_and_the_defaults_are_described() -> None:
    labels = triage_labels(["invoice", "fyi", "spam_like"])
    assert [label.id for label in labels] == ["invoice", "fyi", "spam_like"]
    assert "bill" in labels[0].description and labels[0].display == "Invoice"
    assert labels[2].description == "" and labels[2].display == "spam like"


def test_described_labels_from_settings_or_requests_are_kept_as_written() -> None:
    setting = TriageLabelSetting(
        id="travel", name="Trips", description="journeys", examples=("Flight LH 400",)
    )
    labels = triage_labels([setting, "invoice"])
    assert labels[0] == TriageLabel(
        id="travel", name="Trips", description="journeys", examples=("Flight LH 400",)
    )


@pytest.mark.parametrize("labels", [["one"], ["a", "a"], ["Bad Label", "ok"], [TRAVEL, TRAVEL]])
def test_labels_must_be_two_or_more_distinct_simple_ids(labels: list[str | TriageLabel]) -> None:
    with pytest.raises(ValueError, match="labels must be 2 or more distinct ids"):
        triage_labels(labels)


def test_the_prompt_shows_names_descriptions_and_few_shot_examples_and_the_grammar_only_ids() -> None:
    shots = [FewShot(text="Your refund of 20 EUR " + "x" * 900, label="billing")]
    job = classify_job(text="Hotel booking", labels=[BILLING, TRAVEL], context_length=4096, few_shot=shots)
    prompt = job.request.messages[1].content
    assert "- billing: invoices payments" in prompt and "- travel: flights hotels" in prompt
    assert "Your refund of 20 EUR" in prompt and "category: billing" in prompt and "[...]" in prompt
    assert prompt.index("category: billing") < prompt.index("Hotel booking")  # examples before the message
    assert job.request.json_schema == {"enum": ["billing", "travel"]}
    assert job.parameters == {"labels": ["billing", "travel"], "fewShot": ["billing"]}
    named = classify_job(
        text="x", labels=[TriageLabel(id="hr", name="People team"), "fyi"], context_length=4096
    )
    assert "- hr (People team)\n" in named.request.messages[1].content


def test_a_label_is_its_description_and_examples_in_embedding_space() -> None:
    assert label_texts(TriageLabel(id="a", name="A", description="d", examples=("e1",))) == ["d", "e1"]
    assert label_texts(TriageLabel(id="needs_reply")) == ["needs reply"]


def test_zero_shot_prefers_the_label_whose_description_the_message_resembles() -> None:
    labels = [EMBED.embed(label_texts(label)) for label in (BILLING, TRAVEL)]
    bill = zero_shot_scores(EMBED.embed(["the invoice payments and amounts due this month"])[0], labels)
    trip = zero_shot_scores(EMBED.embed(["your flights and hotels for the trip"])[0], labels)
    assert bill.sum() == pytest.approx(1.0) and bill[0] > 0.9 and trip[1] > 0.9


def test_neighbours_vote_by_similarity_and_weigh_only_when_something_similar_was_seen() -> None:
    examples = EMBED.embed(
        ["quarterly gas trading report for the west desk", "lunch on friday with the team"]
    )
    near = EMBED.embed(["quarterly gas trading report for the east desk"])[0]
    votes, nearest = neighbour_scores(near, examples, ["business", "social"], ["business", "social", "other"])
    assert votes.argmax() == 0 and nearest[0] == Neighbour(
        0, "business", pytest.approx(nearest[0].similarity)
    )
    assert neighbour_weight(nearest) > 1.0
    far = EMBED.embed(["zebra xylophone quantum"])[0]
    _, nothing_like = neighbour_scores(far, examples, ["business", "social"], ["business", "social"])
    assert neighbour_weight(nothing_like) == 0.0
    assert neighbour_weight([Neighbour(0, "x", 0.99)]) == NEIGHBOUR_MAX_WEIGHT
    # Examples of labels not offered are ignored; none at all is a uniform vote with no weight.
    uniform, none = neighbour_scores(near, examples, ["gone", "gone"], ["business", "social"])
    assert list(uniform) == [0.5, 0.5] and none == [] and neighbour_weight(none) == 0.0


def test_the_blend_is_the_weighted_mean_of_the_parts() -> None:
    ids = ["a", "b", "c"]
    model = model_distribution(ids, "a", 0.4)
    assert model == pytest.approx([0.6, 0.2, 0.2])
    result = blend(ids, {"model": model, "zeroShot": [0.1, 0.8, 0.1]}, {"model": 1.0, "zeroShot": 1.0})
    assert result.label == "b" and result.confidence == pytest.approx(0.5)
    assert result.scores == {"a": 0.35, "b": 0.5, "c": 0.15} and set(result.parts) == {"model", "zeroShot"}
    only_model = blend(ids, {"model": model, "neighbours": [0, 0, 1]}, {"model": 1.0, "neighbours": 0.0})
    assert only_model.label == "a"
    with pytest.raises(ValueError, match="nothing to blend"):
        blend(ids, {"model": model}, {"model": 0.0})
    assert np.isclose(sum(result.scores.values()), 1.0)
