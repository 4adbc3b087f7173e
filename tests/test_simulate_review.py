"""The simulated reviewer with the real embedded model: made-up receipts (tests/data/receipts) go through
the HTTP app in order, and every result sent to review is corrected with its labels through
`POST /v1/reviews/{id}`; the decisions are then in the review queue and the lineage chain.

Kept to three receipts on two busy cores: one llama.cpp thread, a 1536-token context."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_client

from deskpilot.inference.extraction import BUILT_IN
from deskpilot.inference.extraction.evaluate import FIELD_MAPS, load_dataset
from deskpilot.server.app import create_app
from deskpilot.server.extraction.plots import learning_curves
from deskpilot.server.extraction.simulate import ExtractionSimulation, simulate
from deskpilot.server.settings import load_settings

pytestmark = pytest.mark.model

RECEIPTS = Path(__file__).parent / "data" / "receipts" / "receipts.jsonl"


@pytest.fixture(scope="module")
def backend() -> Iterator[object]:
    from deskpilot.inference.llama import LlamaCppBackend

    llama = LlamaCppBackend(context_length=1536, threads=1)
    yield llama
    llama.close()


def test_the_simulated_reviewer_corrects_through_the_review_api(
    app_home: Path, backend: object, tmp_path: Path
) -> None:
    examples = load_dataset(RECEIPTS.read_text(encoding="utf-8").splitlines())[:3]
    fields = {k: v for k, v in FIELD_MAPS["invoice"].items() if k in ("company", "address", "date", "total")}
    app = create_app(load_settings(), backend=backend)
    with app_client(app) as client:
        result = simulate(
            ExtractionSimulation(BUILT_IN["invoice"], fields), examples, client, name="extraction"
        )
        decided = [
            r
            for status in ("accepted", "edited")
            for r in client.get("/v1/reviews", params={"status": status}).json()["reviews"]
        ]
        assert client.get("/v1/reviews").json()["reviews"] == []  # nothing left pending
    assert [s.item for s in result.steps] == ["r1", "r2", "r3"]
    reviewed = [s for s in result.steps if s.reviewed]
    assert reviewed and len(decided) == len(reviewed)
    assert all(s.decision in ("accept", "edit") for s in reviewed)
    # What the reviewer kept is right by the labels, whether they accepted or edited.
    task = ExtractionSimulation(BUILT_IN["invoice"], fields)
    for review in decided:
        assert any(task.right(e, review["decision"]["final"]) for e in examples)
    curves = result.curves()
    assert all(len(c) == 3 for c in curves.values())
    png = learning_curves(tmp_path / "curves.png", curves, title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
