"""The workflow AI contract (`deskpilot.server.workflows.ai.WorkflowAI`), run over every implementation.

What a workflow step relies on: `classify` answers with one of the labels it was given, a confidence and
the id of the run that produced it; `extract` answers with data shaped by the named schema, a confidence,
the review it queued (if any) and the rules it checked; a schema that does not exist is a `StepFailed`,
which the engine records as the step's failure; `close` may be called more than once.

Implementations: `ScriptedAI`, the fake the logic tests use (`unit`); the real `ModelAI` on the scripted
backend (`unit`: the whole run, lineage and review path without weights) and on llama.cpp (`model`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from fakes import ScriptedAI

from deskpilot.inference import ScriptedBackend
from deskpilot.inference.extraction import BUILT_IN
from deskpilot.server.lineage import LineageStore
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.settings import load_settings
from deskpilot.server.workflows.ai import ModelAI, StepFailed, WorkflowAI

INVOICE = """Fabrikam Office Supplies Ltd
12 Harbour Road, Leeds LS1 4AB

Invoice number: INV-2231
Invoice date: 2026-11-02
Due date: 2026-12-02

Paper A4, 10 boxes        45.00
Subtotal                  45.00
VAT 20%                    9.00
Total due (GBP)           54.00
"""
LABELS = ["invoice", "meeting_notes", "other"]


def _model_ai(backend: Any) -> Callable[[LineageStore], WorkflowAI]:
    def build(lineage: LineageStore) -> WorkflowAI:
        settings = load_settings()
        return ModelAI(ModelRegistry(settings, backends={"embedded": backend}), lineage, settings)

    return build


def _llama() -> Any:
    from deskpilot.inference.llama import LlamaCppBackend

    return LlamaCppBackend(threads=2)


AIS = [
    pytest.param(lambda lineage: ScriptedAI(), id="scripted", marks=pytest.mark.unit),
    pytest.param(_model_ai(ScriptedBackend), id="model-ai-scripted-backend", marks=pytest.mark.unit),
    pytest.param(_model_ai(_llama), id="model-ai-llama.cpp", marks=pytest.mark.model),
]


@pytest.fixture(params=AIS)
def ai(request: pytest.FixtureRequest, app_home: Any) -> Iterator[WorkflowAI]:
    with LineageStore(load_settings().db_path) as lineage:
        made: WorkflowAI = request.param(lineage)
        yield made
        made.close()


def test_classify_answers_with_one_of_the_labels(ai: WorkflowAI) -> None:
    first = ai.classify(INVOICE, LABELS, source_ref="graph:message:1")
    second = ai.classify("Notes from Monday's planning call.", ["meeting_notes", "other"])
    assert first["label"] in LABELS and second["label"] in ["meeting_notes", "other"]
    for answer in (first, second):
        assert set(answer) == {"runId", "label", "confidence"}
        assert 0.0 <= answer["confidence"] <= 1.0 and answer["runId"]
    assert first["runId"] != second["runId"]


def test_extract_answers_with_data_shaped_by_the_schema(ai: WorkflowAI) -> None:
    answer = ai.extract("invoice", INVOICE, source_ref="graph:message:1")
    assert set(answer) == {"runId", "schema", "data", "confidence", "review", "reasons", "rules"}
    assert answer["schema"] == BUILT_IN["invoice"].schema_id and answer["runId"]
    fields = {f.encode_name for f in msgspec.structs.fields(BUILT_IN["invoice"].struct)}
    assert answer["data"] and set(answer["data"]) <= fields
    assert 0.0 <= answer["confidence"] <= 1.0
    assert answer["review"] is None or isinstance(answer["review"], str)
    assert all(isinstance(reason, str) for reason in answer["reasons"])
    assert all(set(rule) == {"rule", "status", "message"} for rule in answer["rules"])


def test_an_unknown_schema_is_a_failed_step(ai: WorkflowAI) -> None:
    with pytest.raises(StepFailed, match="no schema 'purchase_order'"):
        ai.extract("purchase_order", INVOICE)


def test_close_may_be_repeated(ai: WorkflowAI) -> None:
    ai.close()
    ai.close()
