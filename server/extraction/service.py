"""Extraction and triage runs, finished: validate, check, score, and queue for review what needs a person.

`ExtractionTask` and `ClassificationTask` (in `triage.py`) are the `Structured` finishers
`RunExecutor.execute` calls when a run ends; the HTTP API and the workflows' model steps use the same
ones, so a result is recorded and reviewed the same way whoever asked for it.

Where a calibration exists for the run's model profile and prompt template (`CalibrationStore`: the
user's own under `<home>/calibration`, else the one shipped for the embedded model), an extraction is
finished by the hybrid (`inference/extraction/hybrid.py`): per field the model's or the extractors' value,
by calibrated probability, or what a person kept for the same vendor before (`vendor_memory.py`), and
review when the document's probability is below the threshold that the target precision sets. Without
one, the fixed `review_threshold` applies to the raw confidence. Every extraction queued for review is
held by the vendor memory, which learns from its decision.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec

from deskpilot.inference.extraction import (
    ExtractionResult,
    ExtractionSchema,
    Generated,
    find_facts,
    finish_extraction,
)
from deskpilot.inference.extraction.calibration import CalibrationStore
from deskpilot.inference.extraction.hybrid import choose, review_reasons
from deskpilot.server.core.model_host import ModelHost
from deskpilot.server.core.wire import FieldOut, NormalizedOut, ResultEvent, ReviewRef, RuleOut, ValidationOut
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.extraction.triage import ClassificationTask  # where it lives now; re-exported
from deskpilot.server.extraction.vendor_memory import Proposal
from deskpilot.server.lineage import RunStart
from deskpilot.server.runs import StructuredOutcome

__all__ = ["ClassificationTask", "ExtractionTask", "calibration_store", "model_context"]

DEFAULT_TARGET_PRECISION = 0.95


@lru_cache(maxsize=8)
def calibration_store(home: Path | None) -> CalibrationStore:
    """The calibrations of the app data folder `home` (and those shipped); one store per folder, so each
    file is read once."""
    return CalibrationStore(None if home is None else home / "calibration")


def model_context(host: ModelHost) -> tuple[int, Callable[[str], int] | None]:
    """The context to budget for and the tokenizer to count with (none yet while the model loads: the
    job then counts bytes, which never under-counts)."""
    backend = host.backend
    if backend is None:
        return 4096, None
    return backend.info.context_length, backend.count_tokens


def _lineage(value: Any) -> Any:
    return msgspec.to_builtins(value)


class ExtractionTask:
    """Finishes an extraction run: validate, check, score, and queue it for review when it needs a person."""

    def __init__(
        self,
        schema: ExtractionSchema,
        text: str,
        reviews: ReviewQueue,
        threshold: float,
        *,
        calibrations: CalibrationStore | None = None,
        target_precision: float = DEFAULT_TARGET_PRECISION,
    ) -> None:
        """`threshold`: the review threshold where no calibration applies; `calibrations` (default: the
        shipped ones) and `target_precision` where one does."""
        self.schema, self.text, self.reviews, self.threshold = schema, text, reviews, threshold
        self.calibrations = calibrations or calibration_store(None)
        self.target_precision = target_precision
        self.proposals: dict[str, Proposal] = {}  # the vendor memory's, once `result` ran

    def result(
        self, generated: Generated, *, profile: str = "embedded", template: str = "", model_id: str = ""
    ) -> ExtractionResult:
        """The finished result; by the hybrid where a calibration of `profile` and `template`, fitted with
        the model `model_id`, exists."""
        result = finish_extraction(
            self.schema, text=self.text, generated=generated, review_threshold=self.threshold
        )
        calibration = self.calibrations.get(profile, template) if template else None
        if calibration is None or not calibration.applies_to(self.schema.schema_id, model_id):
            return result
        self.proposals = self.reviews.vendors.propose(self.text)
        chosen = choose(
            self.schema,
            result,
            text=self.text,
            facts=find_facts(self.text),
            calibration=calibration,
            memory={field: (p.value, p.probability) for field, p in self.proposals.items()},
        )
        threshold = calibration.threshold(self.target_precision)
        return msgspec.structs.replace(chosen, review_reasons=review_reasons(chosen, calibration, threshold))

    def finish(self, run_id: str, start: RunStart, generated: Generated) -> StructuredOutcome:
        result = self.result(
            generated,
            profile=start.profile or "embedded",
            template=start.template_id,
            model_id=start.model_id,
        )
        fields = {
            path: msgspec.convert(r, FieldOut, from_attributes=True) for path, r in result.fields.items()
        }
        review = None
        if result.review_reasons:
            item = self.reviews.enqueue(
                run_id=run_id,
                task=start.task,
                template_id=start.template_id,
                model_id=start.model_id,
                reasons=result.review_reasons,
                confidence=result.confidence,
                proposed=result.data,
                fields=msgspec.to_builtins(fields),
                spec={"schema": self.schema.name, "schema_id": self.schema.schema_id},
                source_text=self.text,
            )
            review = ReviewRef(id=item.id, reasons=result.review_reasons)
            self.reviews.vendors.hold(
                run_id=run_id,
                review_id=item.id,
                text=self.text,
                proposed={field: p.value for field, p in self.proposals.items()},
            )
        validation = ValidationOut(
            valid=True,
            repaired=result.repaired,
            problems=result.problems,
            rules=[msgspec.convert(r, RuleOut, from_attributes=True) for r in result.rules],
            normalized=[msgspec.convert(c, NormalizedOut, from_attributes=True) for c in result.normalized],
        )
        event = ResultEvent(
            run_id=run_id,
            task=start.task,
            schema=result.schema,
            data=result.data,
            confidence=result.confidence,
            fields=fields,
            validation=validation,
            review=review,
        )
        recorded = {
            "valid": True,
            "repaired": result.repaired,
            "problems": result.problems,
            "rules": _lineage(result.rules),
            "normalized": _lineage(result.normalized),
            "fields": _lineage(result.fields),
            "schema": result.schema,
            "review": {
                "queued": review is not None,
                "id": review and review.id,
                "reasons": result.review_reasons,
            },
        }
        return StructuredOutcome(
            event=event,
            output={"data": result.data, "raw": generated.text},
            validation=recorded,
            confidence=result.confidence,
        )
