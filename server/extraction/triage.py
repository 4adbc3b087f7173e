"""Triage runs, finished: the model's label blended with what the embeddings say, and review when unsure.

`ClassificationTask` is the `Structured` finisher of a classification run (the HTTP API's and the
workflows'). With a `TriagePrior` (from `TriageMemory.prepare`: zero-shot over the label descriptions and
the nearest corrected examples), the answer is the blend of the three (`inference/extraction/triage.py`);
without one, it is the model's. A result below the review threshold is queued for review, and the message
is held by the triage memory, to become a labelled example once a person decides.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from deskpilot.inference.extraction import Generated, finish_classification
from deskpilot.inference.extraction.classify import Classification, DescribedLabel, TriageLabel, triage_labels
from deskpilot.inference.extraction.triage import (
    MODEL_WEIGHT,
    ZERO_SHOT_WEIGHT,
    Blend,
    blend,
    model_distribution,
)
from deskpilot.server.core.wire import FieldOut, ResultEvent, ReviewRef, ValidationOut
from deskpilot.server.extraction.review_queue import ReviewQueue
from deskpilot.server.extraction.triage_memory import TriageMemory, TriagePrior
from deskpilot.server.extraction.wire import ClassifyOut, NearestOut
from deskpilot.server.lineage import RunStart
from deskpilot.server.runs import StructuredOutcome

__all__ = ["ClassificationTask", "blend_prior", "classify_out"]


def blend_prior(result: Classification, prior: TriagePrior) -> Blend:
    """The model's answer blended with the zero-shot and neighbour distributions of `prior`."""
    parts = {
        "model": model_distribution(prior.ids, result.label, result.confidence),
        "zeroShot": prior.zero_shot,
        "neighbours": prior.neighbours,
    }
    weights = {"model": MODEL_WEIGHT, "zeroShot": ZERO_SHOT_WEIGHT, "neighbours": prior.neighbour_weight}
    return blend(prior.ids, parts, weights)


class ClassificationTask:
    """Finishes a classification run. `prior` and `memory` come together (the HTTP API passes both; a
    workflow step, which has no embedder at hand, neither): with them the answer is blended and a
    reviewed message becomes an example."""

    def __init__(
        self,
        labels: Sequence[str | DescribedLabel],
        reviews: ReviewQueue,
        threshold: float,
        *,
        text: str = "",
        prior: TriagePrior | None = None,
        memory: TriageMemory | None = None,
    ) -> None:
        self.labels: list[TriageLabel] = triage_labels(labels)
        self.ids = [label.id for label in self.labels]
        self.reviews, self.threshold = reviews, threshold
        self.text, self.prior, self.memory = text, prior, memory
        self.blend: Blend | None = None  # set by `finish` when there was a prior
        self.model: Classification | None = None  # the model's own answer, set by `finish`

    def _answer(self, generated: Generated) -> tuple[str, float, list[str], bool]:
        result = finish_classification(self.ids, generated, review_threshold=self.threshold)
        self.model = result
        if self.prior is None:
            return result.label, result.confidence, result.review_reasons, result.repaired
        self.blend = blend_prior(result, self.prior)
        confidence = self.blend.confidence
        reasons = list(result.review_reasons) if result.repaired else []
        if confidence < self.threshold:
            reasons.append(f"confidence {confidence:.2f} is below the review threshold {self.threshold:.2f}")
        return self.blend.label, confidence, reasons, result.repaired

    def finish(self, run_id: str, start: RunStart, generated: Generated) -> StructuredOutcome:
        label, confidence, reasons, repaired = self._answer(generated)
        data = {"label": label}
        token_confidence = self.model.confidence if self.model else confidence
        fields = {
            "label": FieldOut(confidence=confidence, token_confidence=token_confidence, repaired=repaired)
        }
        review = None
        if reasons:
            item = self.reviews.enqueue(
                run_id=run_id,
                task=start.task,
                template_id=start.template_id,
                model_id=start.model_id,
                reasons=reasons,
                confidence=confidence,
                proposed=data,
                fields=msgspec.to_builtins(fields),
                spec={"labels": self.ids},
                source_text=self.text,
            )
            review = ReviewRef(id=item.id, reasons=reasons)
            if self.memory is not None and self.prior is not None:
                self.memory.hold(review_id=item.id, run_id=run_id, text=self.text, vector=self.prior.vector)
        problems = reasons if repaired else []
        event = ResultEvent(
            run_id=run_id,
            task=start.task,
            schema=None,
            data=data,
            confidence=confidence,
            fields=fields,
            validation=ValidationOut(valid=True, repaired=repaired, problems=problems),
            review=review,
        )
        recorded = {
            "valid": True,
            "repaired": repaired,
            "problems": problems,
            "labels": self.ids,
            "model": {"label": self.model.label, "confidence": self.model.confidence} if self.model else None,
            "blend": msgspec.to_builtins(self.blend) if self.blend else None,
            "nearest": self.prior.nearest if self.prior else [],
            "review": {"queued": review is not None, "id": review and review.id, "reasons": reasons},
        }
        return StructuredOutcome(
            event=event,
            output={"data": data, "raw": generated.text},
            validation=recorded,
            confidence=confidence,
        )


def classify_out(result: ResultEvent, task: ClassificationTask) -> ClassifyOut:
    """The answer of POST /v1/classify: the label, its name, and what the blend made of it."""
    label = str(result.data["label"])
    names = {item.id: item.display for item in task.labels}
    nearest = task.prior.nearest if task.prior else []
    return ClassifyOut(
        run_id=result.run_id,
        label=label,
        confidence=result.confidence,
        labels=task.ids,
        review=result.review,
        name=names.get(label, label),
        model_label=task.model.label if task.model else None,
        scores=task.blend.scores if task.blend else None,
        nearest=[NearestOut(example_id=i, label=lab, similarity=sim) for i, lab, sim in nearest],
    )
