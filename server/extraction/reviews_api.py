"""Human review over HTTP: the queue, decisions, and the override rate they add up to.

`POST /v1/reviews/{id}` validates an edit the way the model's output was validated (the schema's Struct,
then the same normalisation), so a reviewer cannot store what the schema forbids, and an edit that changes
nothing is refused (that is an accept). The decision names the person who makes it (`reviewer`:
`{name, address}`, the Office user as the task pane knows them, like an action's approval), and goes to
the chained `reviews` table with both and the field diff (`ReviewQueue.decide`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from deskpilot.inference.extraction.rules import normalize_document
from deskpilot.server.extraction.api import find_schema
from deskpilot.server.extraction.review_queue import (
    ReviewDecided,
    ReviewItem,
    ReviewQueue,
    UnknownReviewError,
    field_changes,
)
from deskpilot.server.extraction.wire import (
    DecisionOut,
    QualityGroupOut,
    QualityOut,
    ReviewDecisionIn,
    ReviewOut,
    ReviewsOut,
    VendorExampleOut,
    VendorExamplesOut,
    convert_out,
)
from deskpilot.server.settings import Settings

__all__ = ["Reviews"]

Status = Literal["pending", "accepted", "edited", "rejected"]


def _review_out(item: ReviewItem) -> ReviewOut:
    decision = None
    if item.decision is not None:
        decision = convert_out(item.decision, DecisionOut)
    return ReviewOut(
        id=item.id,
        run_id=item.run_id,
        created_at=item.created_at,
        status=item.status,
        task=item.task,
        template_id=item.template_id,
        model_id=item.model_id,
        reasons=item.reasons,
        confidence=item.confidence,
        data=item.proposed,
        fields=item.fields,
        decision=decision,
        source_text=item.source_text,
    )


def _edited(item: ReviewItem, fields: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The proposal with the reviewer's values, validated and normalised like the model's output."""
    unknown = sorted(fields.keys() - item.proposed.keys())
    if unknown:
        raise ClientException(f"unknown field(s) {unknown}; the result has {sorted(item.proposed)}")
    edited = {**item.proposed, **fields}
    if "labels" in item.spec:
        if edited["label"] not in item.spec["labels"]:
            raise ClientException(f"label must be one of {item.spec['labels']}")
        return edited
    schema = find_schema(item.spec["schema"], settings.schemas_path)
    try:
        checked: dict[str, Any] = msgspec.to_builtins(msgspec.convert(edited, schema.struct))
    except msgspec.ValidationError as exc:
        raise ClientException(f"the edited result does not fit the {schema.name} schema: {exc}") from exc
    normalize_document(schema, checked)
    return checked


class Reviews(Controller):
    path = "/v1"
    tags = ("Review",)

    @get("/reviews", summary="Results queued for human review, newest first")
    async def reviews(
        self,
        reviews: NamedDependency[ReviewQueue],
        status: FromQuery[Status | None] = "pending",
        task: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> ReviewsOut:
        items = await anyio.to_thread.run_sync(lambda: reviews.items(status=status, task=task, limit=limit))
        return ReviewsOut(reviews=[_review_out(i) for i in items])

    @get("/reviews/{review_id:str}", summary="One review item, with its decision once decided")
    async def review(self, review_id: FromPath[str], reviews: NamedDependency[ReviewQueue]) -> ReviewOut:
        item = await anyio.to_thread.run_sync(reviews.get, review_id)
        if item is None:
            raise NotFoundException(f"no review item {review_id!r}")
        return _review_out(item)

    @post("/reviews/{review_id:str}", status_code=200, summary="Accept, edit or reject a queued result")
    async def decide(
        self,
        review_id: FromPath[str],
        data: JSONBody[ReviewDecisionIn],
        reviews: NamedDependency[ReviewQueue],
        app_settings: NamedDependency[Settings],
        review_decided: NamedDependency[Callable[[str], None]],
    ) -> ReviewOut:
        item = await anyio.to_thread.run_sync(reviews.get, review_id)
        if item is None:
            raise NotFoundException(f"no review item {review_id!r}")
        if item.status != "pending":
            raise HTTPException(
                status_code=409, detail=f"review item {review_id} was already decided ({item.status})"
            )
        final: dict[str, Any] | None = item.proposed
        if data.decision == "edit":
            assert data.fields is not None
            final = _edited(item, data.fields, app_settings)
            if not field_changes(item.proposed, final):
                raise ClientException("the edit changes nothing; accept the result instead")
        elif data.decision == "reject":
            final = None
        try:
            await anyio.to_thread.run_sync(
                lambda: reviews.decide(
                    review_id,
                    decision=data.decision,
                    reviewer=data.reviewer,
                    final=final,
                    note=data.note,
                    opened_at=data.opened_at,
                )
            )
        except UnknownReviewError as exc:
            raise NotFoundException(str(exc)) from exc
        except ReviewDecided as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        # A workflow waiting for this decision (its human step) goes on.
        await anyio.to_thread.run_sync(review_decided, review_id)
        decided = await anyio.to_thread.run_sync(reviews.get, review_id)
        assert decided is not None
        return _review_out(decided)

    @get(
        "/metrics/quality",
        summary="Review rate, override rate and median time to decision per task, template version and model",
    )
    async def quality(self, reviews: NamedDependency[ReviewQueue]) -> QualityOut:
        rows = await anyio.to_thread.run_sync(reviews.quality)
        return QualityOut(groups=[convert_out(row, QualityGroupOut) for row in rows])

    @get(
        "/vendors/examples",
        summary="What extraction learnt from reviews: each vendor's corrected name and address",
    )
    async def vendor_examples(
        self,
        reviews: NamedDependency[ReviewQueue],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> VendorExamplesOut:
        found = await anyio.to_thread.run_sync(lambda: reviews.vendors.examples(limit))
        return VendorExamplesOut(examples=[convert_out(e, VendorExampleOut) for e in found])

    @delete("/vendors/examples/{example_id:str}", summary="Forget one learnt example for good")
    async def forget_vendor_example(
        self, example_id: FromPath[str], reviews: NamedDependency[ReviewQueue]
    ) -> None:
        if not await anyio.to_thread.run_sync(reviews.vendors.delete, example_id):
            raise NotFoundException(f"no vendor example {example_id!r}")
