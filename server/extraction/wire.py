"""Wire types of extraction, triage and review: msgspec Structs, camelCase on the wire.

The SSE event payloads (`progress`, `result`) are in `schemas.py` with the other events. A result's `data`
keeps the schema's own field names (a custom schema's names are whatever its author chose).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from deskpilot.server.core.wire import (
    NOT_BLANK,
    Client,
    EmailIn,
    In,
    Out,
    Person,
    ReviewRef,
    RunIn,
    ShortText,
)

__all__ = [
    "ChangeOut",
    "ClassifyOut",
    "ClassifyRequest",
    "DecisionOut",
    "ExtractRequest",
    "LabelIn",
    "NearestOut",
    "QualityGroupOut",
    "QualityOut",
    "ReviewDecisionIn",
    "ReviewOut",
    "ReviewsOut",
    "SchemaOut",
    "SchemasOut",
    "TriageExampleOut",
    "TriageExamplesOut",
    "VendorExampleOut",
    "VendorExamplesOut",
]

SchemaName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
Label = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
# In the OpenAPI document: what `__post_init__` refuses as blank.
_Text = Annotated[str, Meta(extra_json_schema={"pattern": NOT_BLANK})]


class LabelIn(In):
    """A triage label described for one request: `id` is what the result records, `name` what people
    read, `description` what the label means (the zero-shot classifier and the prompt read it), and
    `examples` a few texts that belong to it."""

    id: Label
    name: Annotated[str, Meta(max_length=80)] = ""
    description: Annotated[str, Meta(max_length=1_000)] = ""
    examples: Annotated[list[Annotated[str, Meta(max_length=2_000)]], Meta(max_length=10)] = msgspec.field(
        default_factory=list
    )


# Distinct labels (`classify` refuses a repeated id): bare ids, or described labels, or both.
_Labels = Annotated[
    list[Label | LabelIn], Meta(min_length=2, max_length=20, extra_json_schema={"uniqueItems": True})
]


class _Source(RunIn):
    """Either `text`, or an `email` (its headers and body are what the model reads)."""

    exactly_one_of = ("text", "email")
    # An email's body is not blank.
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "if": {"required": ["email"], "properties": {"email": {"type": "object"}}},
        "then": {"properties": {"email": {"properties": {"body": {"pattern": NOT_BLANK}}}}},
    }

    text: _Text | None = None
    email: EmailIn | None = None
    client: Client = "api"
    source_ref: ShortText | None = None  # e.g. the Outlook item id, kept in lineage

    def __post_init__(self) -> None:
        if (self.text is None) == (self.email is None):
            raise ValueError("give exactly one of `text` or `email`")
        if self.text is not None and not self.text.strip():
            raise ValueError("`text` is empty")
        if self.email is not None and not self.email.body.strip():
            raise ValueError("`email.body` is empty")


class ExtractRequest(_Source):
    schema: SchemaName = "invoice"  # a built-in schema or a custom one from the schemas folder


class ClassifyRequest(_Source):
    # The labels to choose from; the configured `triage_labels` when absent.
    labels: _Labels | None = None


class NearestOut(Out):
    """A corrected example like the message (GET /v1/triage/examples lists them)."""

    example_id: str
    label: str
    similarity: float  # cosine of the two messages' embeddings


class ClassifyOut(Out):
    run_id: str
    label: str  # the label's id
    confidence: float  # of the blended answer (the model's alone where there is no embedder)
    labels: list[str]  # the ids it chose from
    review: ReviewRef | None = None
    name: str = ""  # the label's display name
    model_label: str | None = None  # what the model alone answered
    scores: dict[str, float] | None = None  # the blended probability of every label
    # Corrected examples most like the message, most similar first.
    nearest: list[NearestOut] = msgspec.field(default_factory=list)


class TriageExampleOut(Out):
    """A labelled example that triage learnt from a review decision."""

    id: str
    run_id: str  # the classification run (lineage)
    review_id: str  # the review whose decision labelled it
    created_at: str
    label: str
    labelled_at: str
    text: str | None  # None unless inputs are retained (`retain_inputs`)
    digest: str  # of the input, as lineage records it


class TriageExamplesOut(Out):
    examples: list[TriageExampleOut]


class SchemaOut(Out):
    name: str
    version: int
    description: str
    origin: str  # "built-in" or the file it came from
    template: str
    content_hash: str
    json_schema: dict[str, Any] | None = None  # in GET /v1/schemas/{name} only


class SchemasOut(Out):
    schemas: list[SchemaOut]
    problems: dict[str, str]  # files in the schemas folder that could not be used, and why


# --- review ---------------------------------------------------------------------------------------------


class ReviewDecisionIn(In):
    """accept: keep the result as proposed. edit: keep it with `fields` changed (top-level fields of the
    result; a list is replaced whole). reject: the result is unusable. `reviewer`: the person who decides
    (the Office user's name and email address, as the task pane knows them); lineage records both."""

    # `fields` (not empty) with an edit, and only then.
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"decision": {"const": "edit"}}},
        "then": {"required": ["fields"], "properties": {"fields": {"type": "object", "minProperties": 1}}},
        "else": {"properties": {"fields": {"type": "null"}}},
    }

    decision: Literal["accept", "edit", "reject"]
    reviewer: Person
    fields: dict[str, Any] | None = None
    note: Annotated[str, Meta(max_length=2_000)] | None = None
    # When the pane opened this review (ISO 8601; UTC if no offset): the time from open to decision is
    # kept per review, and GET /v1/metrics/quality reports its median.
    opened_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.decision == "edit" and not self.fields:
            raise ValueError("an edit needs `fields` with the corrected values")
        if self.decision != "edit" and self.fields is not None:
            raise ValueError(f"`fields` go with an edit, not with {self.decision!r}")


class ChangeOut(Out):
    path: str
    before: Any
    after: Any


class DecisionOut(Out):
    id: str
    decision: Literal["accept", "edit", "reject"]
    reviewer: str  # the person's name
    reviewer_address: str | None  # their email address (None on decisions recorded before 0.3)
    decided_at: str
    changes: list[ChangeOut]  # the field-level diff, proposed -> final
    final: dict[str, Any] | None
    note: str | None
    hash: str  # the decision's hash in the lineage chain


class ReviewOut(Out):
    id: str
    run_id: str
    created_at: str
    status: Literal["pending", "accepted", "edited", "rejected"]
    task: str
    template_id: str
    model_id: str
    reasons: list[str]
    confidence: float | None
    data: dict[str, Any]  # the result as proposed
    fields: dict[str, Any]  # per-field confidence, as in the `result` event
    decision: DecisionOut | None = None
    source_text: str | None = None  # the text the run read, while the item is pending (null once decided)


class ReviewsOut(Out):
    reviews: list[ReviewOut]


class QualityGroupOut(Out):
    task: str
    template_id: str  # name@version of the prompt template
    model_id: str
    runs: int
    queued: int
    reviewed: int
    accepted: int
    edited: int
    rejected: int
    override_rate: float | None  # (edited + rejected) / reviewed
    fields_reviewed: int
    fields_changed: int
    field_override_rate: float | None
    review_rate: float | None  # queued / runs: the share of results sent to a person
    reviews_timed: int  # decisions sent with `openedAt`
    median_review_seconds: float | None  # median time from open to decision, over those


class VendorExampleOut(Out):
    """What extraction learnt from one review: the vendor's name and address as the person kept them, and
    where they sit in the document's first lines (field -> [first line, number of lines])."""

    id: str
    review_id: str
    run_id: str
    created_at: str
    learnt_at: str | None
    vendor: str | None
    address: str | None
    layout: dict[str, list[int]]


class VendorExamplesOut(Out):
    examples: list[VendorExampleOut]


class QualityOut(Out):
    groups: list[QualityGroupOut]


def convert_out(value: Any, kind: type[msgspec.Struct]) -> Any:
    """A stored record (snake_case attributes) as its camelCase wire twin."""
    return msgspec.convert(value, kind, from_attributes=True)
